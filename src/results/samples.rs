//! `samples.jsonl`: every sample, appended and flushed as it is taken, so
//! an interrupted or crashed run loses nothing it had measured.

use super::SAMPLES_FILE;
use crate::common::counts::{Counts, Source};
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
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

/// Appends samples to `samples.jsonl`, one flushed line each.
pub struct SampleWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl SampleWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        let path = dir.join(SAMPLES_FILE);
        let file = File::options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        Ok(SampleWriter {
            path,
            out: BufWriter::new(file),
        })
    }

    /// Write one sample and flush it to the file before returning.
    pub fn append(&mut self, sample: &Sample) -> Result<()> {
        let line = serde_json::to_string(sample)
            .map_err(|e| Error::env(format!("cannot encode sample: {e}")))?;
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| Error::io(self.path.display(), e))
    }
}

/// Read every sample of a run directory.
pub fn read_samples(dir: &Path) -> Result<Vec<Sample>> {
    let path = dir.join(SAMPLES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::invalid(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}
