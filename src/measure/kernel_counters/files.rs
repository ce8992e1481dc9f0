//! The counter files of one namespace, opened once and read at every
//! sample: what a run pays per side and tick, so it is kept small.
//!
//! Where a read's time went before this file kept layouts (a fresh
//! namespace on this 2-core VM, 20,000 reads; `twlab bench --only
//! counters` gives the whole in a lab namespace): the kernel producing the
//! text ~20–23 µs (`netstat` 13–15, `snmp` 5, `stat/nf_conntrack` 1.1–1.6,
//! `nf_conntrack_count` and `_max` 1.1 each), finding each of the 337 keys
//! in a map ~35 µs, cloning that map for the caller ~12 µs: ~70 µs. Now
//! each file keeps its layout ([`Fields`]), the keys are sorted once per
//! layout, and the last reading's values are set in place by walking its
//! keys and the sorted fields side by side (no key searched or allocated);
//! the caller gets a copy of it. ~35 µs: the kernel ~19, the copy (337
//! `String`s, which [`KernelCounters`] is made of) and its drop ~10, the
//! parse ~5. Opening the files is not paid at each read either: an open
//! proc file stays bound to the namespace it was opened in, so the files
//! are opened from a thread inside the namespace and read from any thread.
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
    /// Where each key's fields end in `order` (one key, one group).
    groups: Vec<usize>,
    /// The order is out of date: a layout changed, or a parse failed.
    stale: bool,
    /// The last reading, whose values are set in place while the same keys
    /// have values, and which each read gives a copy of.
    reading: KernelCounters,
    /// Per group: whether its key is in `reading`.
    present: Vec<bool>,
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
            groups: Vec::new(),
            stale: true,
            reading: KernelCounters::new(),
            present: Vec::new(),
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
        if !self.set_values() {
            self.rebuild();
        }
        Ok(self.reading.clone())
    }

    /// Set the values of the last reading in place, walking its keys and
    /// the groups in the same order: no key is searched or allocated.
    /// False if the keys with a value are not those of the last reading.
    fn set_values(&mut self) -> bool {
        if self.present.len() != self.groups.len() {
            return false;
        }
        let mut slots = self.reading.values_mut();
        let mut start = 0;
        for (g, &end) in self.groups.iter().enumerate() {
            let value = group_value(&self.order, &self.sources, start..end);
            start = end;
            match (value, self.present[g]) {
                (Some(v), true) => match slots.next() {
                    Some(slot) => *slot = v,
                    None => return false,
                },
                (None, false) => {}
                _ => return false,
            }
        }
        slots.next().is_none()
    }

    /// Build the reading afresh from the groups (after a layout changed or
    /// a key gained or lost its value).
    fn rebuild(&mut self) {
        let mut start = 0;
        let mut entries = Vec::with_capacity(self.groups.len());
        self.present.clear();
        for &end in &self.groups {
            let value = group_value(&self.order, &self.sources, start..end);
            let key = self
                .order
                .get(start)
                .and_then(|&(s, i)| self.sources.get(s)?.fields.keys.get(i));
            start = end;
            match (key, value) {
                (Some(key), Some(v)) => {
                    entries.push((key.clone(), v));
                    self.present.push(true);
                }
                _ => self.present.push(false),
            }
        }
        // In key order already: `from_iter` finds it sorted in one pass.
        self.reading = entries.into_iter().collect();
    }

    /// Read every file as [`CounterFiles::read`] does and parse nothing:
    /// the bytes the kernel gave. What this costs is the kernel's share of
    /// a read, the floor `twlab bench --only counters` sets beside it.
    pub fn read_unparsed(&mut self) -> Result<usize, String> {
        let mut bytes = 0;
        for s in &self.sources {
            let Some(file) = &s.file else { continue };
            bytes += read_all(file, &mut self.buf)
                .map_err(|e| format!("{}: {e}", s.path))?
                .len();
        }
        Ok(bytes)
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
        self.groups.clear();
        for n in 1..=self.order.len() {
            if n == self.order.len() || key(&self.order[n]) != key(&self.order[n - 1]) {
                self.groups.push(n);
            }
        }
        self.present.clear();
        self.stale = false;
    }
}

/// The value of the key whose fields are `order[group]`: the last of them
/// that has one.
fn group_value(
    order: &[(usize, usize)],
    sources: &[Source],
    group: std::ops::Range<usize>,
) -> Option<u64> {
    order.get(group)?.iter().rev().find_map(|&(s, i)| {
        let fields = &sources.get(s)?.fields;
        *fields.values.get(i)?
    })
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
