//! The counter files of one namespace, opened once and read at every
//! sample: what a run pays per side and tick, so it is kept small.
//!
//! Where a read's time went before this file kept layouts (a fresh
//! namespace on this 2-core VM, 20,000 reads; `twlab bench --only
//! counters` gives the whole in a lab namespace): the kernel producing the
//! text ~23 µs (`netstat` 13–15, `snmp` 5, `stat/nf_conntrack` 1.1–1.6,
//! `nf_conntrack_count` and `_max` 1.1 each), finding each of the 337 keys
//! in a map ~35 µs, cloning that map for the caller ~12 µs. Now each file
//! keeps its layout ([`Fields`]), the keys are put in order once per
//! layout, and a reading is built from that order in one pass. Opening
//! the files is no longer paid either: an open proc file stays bound to the
//! namespace it was opened in, so the files are opened from a thread inside
//! the namespace and read from any thread.
//!
//! Each file is read with `pread` from offset 0 (no `lseek`), into one
//! buffer kept between reads, until it returns 0: a short read is not the
//! end of a proc file (a seq_file gives at most its own page-sized buffer
//! per read, and the conntrack table has a row per CPU). Reading at offset 0
//! makes the kernel produce the file afresh. Conntrack's statistics stay a
//! proc file, not ctnetlink's `IPCTNL_MSG_CT_GET_STATS_CPU`: the dump took
//! 1.6 µs here against 1.1–1.6 µs for the file, and the file is the very
//! text an SSH host gives.

use super::parse::Fields;
use super::{CT_TIMEOUTS, FILES, KernelCounters, Kind, timeout_key};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// One file's source of fields.
struct Source {
    path: String,
    kind: Kind,
    /// `None` for a setting read once at opening (the conntrack timeouts).
    file: Option<File>,
    fields: Fields,
}

/// The counter files of one namespace, opened once and read again at every
/// sample.
///
/// The conntrack timeouts are settings, not counters: they are read when
/// the files are opened (a run's sysctls are in force by then) and given
/// with every read. A file that does not exist (no conntrack module, an
/// older kernel) is left out.
pub struct CounterFiles {
    sources: Vec<Source>,
    /// Every field as `(source, index)`, sorted by key (equal keys in
    /// reading order, so the later wins as in a map filled in order).
    order: Vec<(usize, usize)>,
    /// The order is out of date: a layout changed, or a parse failed.
    stale: bool,
    /// Reused between reads (the largest file, netstat, is ~4 KB).
    buf: Vec<u8>,
}

impl CounterFiles {
    /// The files of the calling thread's namespace.
    pub fn open_here() -> Result<CounterFiles, String> {
        Self::open("/proc/thread-self/net")
    }

    /// The files with the net directory given (see [`super::read_from`]).
    pub fn open(net_dir: &str) -> Result<CounterFiles, String> {
        let open = |path: String| match File::open(&path) {
            Ok(f) => Ok(Some((path, f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{path}: {e}")),
        };
        let mut files = CounterFiles {
            sources: Vec::with_capacity(FILES.len() + CT_TIMEOUTS.len()),
            order: Vec::new(),
            stale: true,
            buf: vec![0; 8192],
        };
        for (_, path, kind) in FILES {
            if let Some((path, file)) = open(path.replace("NET", net_dir))? {
                files.sources.push(Source {
                    path,
                    kind: *kind,
                    file: Some(file),
                    fields: Fields::default(),
                });
            }
        }
        for t in CT_TIMEOUTS {
            let Some((path, file)) = open(format!(
                "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_{t}"
            ))?
            else {
                continue;
            };
            let kind = Kind::Value(timeout_key(t));
            let mut fields = Fields::default();
            let text = read_all(&file, &mut files.buf).map_err(|e| format!("{path}: {e}"))?;
            fields
                .parse(kind, text)
                .map_err(|e| format!("{path}: {e}"))?;
            files.sources.push(Source {
                path,
                kind,
                file: None,
                fields,
            });
        }
        Ok(files)
    }

    /// Every counter, as the kernel gives it now (the timeouts as opened).
    pub fn read(&mut self) -> Result<KernelCounters, String> {
        for s in &mut self.sources {
            let Some(file) = &s.file else { continue };
            let text = read_all(file, &mut self.buf).map_err(|e| format!("{}: {e}", s.path))?;
            match s.fields.parse(s.kind, text) {
                Ok(changed) => self.stale |= changed,
                Err(e) => {
                    self.stale = true;
                    return Err(format!("{}: {e}", s.path));
                }
            }
        }
        if self.stale {
            self.sort_keys();
        }
        let sources = &self.sources;
        // Collected in key order, which `from_iter` finds sorted in one pass
        // and builds the tree from without searching it.
        Ok(self
            .order
            .iter()
            .filter_map(|&(s, i)| {
                let fields = &sources.get(s)?.fields;
                Some((fields.keys.get(i)?.clone(), (*fields.values.get(i)?)?))
            })
            .collect())
    }

    /// Put every field in key order (after a layout changed).
    fn sort_keys(&mut self) {
        let sources = &self.sources;
        self.order.clear();
        for (s, source) in sources.iter().enumerate() {
            self.order
                .extend((0..source.fields.keys.len()).map(|i| (s, i)));
        }
        let key = |&(s, i): &(usize, usize)| sources[s].fields.keys[i].as_str();
        self.order.sort_by(|a, b| key(a).cmp(key(b)));
        self.stale = false;
    }
}

/// The whole of `file`, read from its start into `buf` (grown as needed).
fn read_all<'b>(file: &File, buf: &'b mut Vec<u8>) -> io::Result<&'b str> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize((2 * len).max(8192), 0);
        }
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    std::str::from_utf8(&buf[..len]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
