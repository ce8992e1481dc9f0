//! `samples.jsonl`: every sample, appended and flushed as it is taken, so
//! an interrupted or crashed run loses nothing it had measured.
//!
//! The file only ever ends in a complete line: an append that fails (a
//! full disk may take half a line) is cut back to the last complete line
//! before the error returns. A file that ends in a cut line all the same
//! (twlab killed mid-write, a file from an older twlab) is read without
//! that line, with a warning; and is cut back to its last complete line
//! before anything is appended to it.

use super::SAMPLES_FILE;
use crate::common::counts::{Counts, Source};
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One line of `samples.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    pub variant: String,
    /// 1-based repeat number.
    pub repeat: u32,
    pub run_id: String,
    pub host: Side,
    pub source: Source,
    /// `true` for the snapshot taken right after the client stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_final: bool,
    /// The counts: with several client hosts, on the client side, their sum.
    pub counts: Counts,
    /// With several client hosts (`client.hosts`), on the client side: each
    /// host's own counts, in host order (`counts` is their sum). Empty
    /// otherwise, and then not written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_client: Vec<Counts>,
    /// On the server side's final socket sample: how many distinct client
    /// addresses the server's socket counts of the run have seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<u64>,
}

/// Appends samples to `samples.jsonl`, one written line each.
pub struct SampleWriter {
    path: PathBuf,
    out: File,
    /// The file's length up to its last complete line.
    len: u64,
}

impl SampleWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        Self::create_file(dir, SAMPLES_FILE)
    }

    /// A writer of another JSON-lines file of the run directory (the
    /// kernel's counters, [`super::KERNEL_FILE`]), with the same guarantees.
    pub fn create_file(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(name);
        let fail = |e| Error::io(path.display(), e);
        let mut out = File::options()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(fail)?;
        let len = complete_len(&mut out).map_err(fail)?;
        if len < out.metadata().map_err(fail)?.len() {
            errln!(
                "twlab: {}: its last line is cut (a write that did not finish); it is removed before samples are appended",
                path.display()
            );
            out.set_len(len).map_err(fail)?;
        }
        Ok(SampleWriter { path, out, len })
    }

    /// Write one sample, a whole line or nothing: on a failed write (a full
    /// disk) the file is cut back to its last complete line.
    pub fn append(&mut self, sample: &Sample) -> Result<()> {
        self.append_value(sample)
    }

    /// The directory the file is in.
    pub fn dir(&self) -> Option<&Path> {
        self.path.parent()
    }

    /// Write one value as a line, a whole line or nothing.
    pub fn append_value<T: Serialize>(&mut self, sample: &T) -> Result<()> {
        let mut line = serde_json::to_string(sample)
            .map_err(|e| Error::env(format!("cannot encode sample: {e}")))?;
        line.push('\n');
        match self.out.write_all(line.as_bytes()) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                let mut msg = e.to_string();
                if let Err(cut) = self.out.set_len(self.len) {
                    msg.push_str(&format!(
                        "; and cutting it back to its last complete line failed: {cut}"
                    ));
                }
                Err(Error::env(format!("{}: {msg}", self.path.display())))
            }
        }
    }
}

/// The length of `file` up to and with its last newline (0 without one).
fn complete_len(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Read every sample of a run directory. A last line without its newline
/// is a write that did not finish: it is skipped, with a warning naming the
/// file; any other line that does not parse is an error naming its line.
pub fn read_samples(dir: &Path) -> Result<Vec<Sample>> {
    read_jsonl(dir, SAMPLES_FILE)
}

/// Read every line of the JSON-lines file `name` of a run directory (none
/// when there is no such file), as [`read_samples`] does.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Vec<T>> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    if complete.len() < text.len() {
        errln!(
            "twlab: {}:{}: the last line is cut (a write that did not finish); skipped",
            path.display(),
            complete.lines().count() + 1
        );
    }
    complete
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::invalid(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64) -> Sample {
        Sample {
            t,
            variant: "v".into(),
            repeat: 1,
            run_id: "ab12cd34".into(),
            host: Side::Server,
            source: Source::Sockets,
            is_final: false,
            counts: Counts::default(),
            per_client: Vec::new(),
            peers: None,
        }
    }

    #[test]
    fn a_cut_last_line_is_skipped_when_read_and_cut_off_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SampleWriter::create(dir.path()).unwrap();
        w.append(&sample(1.0)).unwrap();
        drop(w);
        let path = dir.path().join(SAMPLES_FILE);
        let whole = std::fs::read_to_string(&path).unwrap();
        // A write that stopped half-way through the second line.
        std::fs::write(&path, format!("{whole}{}", &whole[..whole.len() / 2])).unwrap();
        assert_eq!(read_samples(dir.path()).unwrap(), vec![sample(1.0)]);
        let mut w = SampleWriter::create(dir.path()).unwrap();
        w.append(&sample(2.0)).unwrap();
        assert_eq!(
            read_samples(dir.path()).unwrap(),
            vec![sample(1.0), sample(2.0)]
        );
        // A broken line that is not the last one is an error with its line.
        std::fs::write(&path, format!("{{\n{whole}")).unwrap();
        let err = read_samples(dir.path()).unwrap_err().to_string();
        assert!(err.contains("samples.jsonl:1:"), "{err}");
    }
}
