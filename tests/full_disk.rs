//! The run directory's writers on a disk that fills (issue 23): a real
//! tmpfs, mounted on a directory of the test's own and filled by the test,
//! unmounted by a guard whatever happens. A file written whole (summary,
//! env, report, charts) is the old file or the new one, never a temporary
//! file left behind; `samples.jsonl` never ends in a cut line.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use twlab::common::counts::{Counts, Source};
use twlab::common::endpoint::Side;
use twlab::results::{self, Sample, SampleWriter};

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .expect("mount a small tmpfs");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fill the disk with `filler`, then free about `free` bytes of it.
    fn fill_leaving(&self, free: u64) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = [b'x'; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
        let len = f.metadata().expect("filler size").len();
        f.set_len(len.saturating_sub(free)).expect("free some");
        path
    }

    /// Every file on the disk but the filler, by name.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "filler")
            .collect();
        names.sort();
        names
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

fn sample(t: f64) -> Sample {
    let mut counts = Counts::default();
    counts.insert("TIME_WAIT".into(), 12345);
    Sample {
        t,
        variant: "a-variant-with-a-long-name".into(),
        repeat: 1,
        run_id: "ab12cd34".into(),
        host: Side::Server,
        source: Source::Sockets,
        is_final: false,
        counts,
        per_client: Vec::new(),
        peers: None,
    }
}

#[test]
fn a_file_written_whole_on_a_full_disk_leaves_the_old_file_and_no_temporary_one() {
    if !require_root("a_file_written_whole_on_a_full_disk_leaves_the_old_file_and_no_temporary_one")
    {
        return;
    }
    let disk = SmallDisk::mount("64k");
    let summary = disk.path().join("summary.json");
    results::write_text(&summary, "old\n").expect("room for the old file");
    let env = disk.path().join("env.json");
    disk.fill_leaving(0);
    let big = "y".repeat(64 * 1024);
    for path in [&summary, &env] {
        let err = results::write_text(path, &big).expect_err("the disk is full");
        assert!(err.to_string().contains("No space left on device"), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "the file is named: {err}"
        );
    }
    assert_eq!(disk.files(), vec!["summary.json".to_string()]);
    assert_eq!(
        std::fs::read_to_string(&summary).expect("summary"),
        "old\n",
        "the old file was spoilt"
    );
}

#[test]
fn samples_on_a_full_disk_end_in_a_complete_line() {
    if !require_root("samples_on_a_full_disk_end_in_a_complete_line") {
        return;
    }
    let disk = SmallDisk::mount("64k");
    let filler = disk.fill_leaving(6000);
    let mut writer = SampleWriter::create(disk.path()).expect("samples.jsonl");
    let mut written = 0;
    let err = loop {
        match writer.append(&sample(written as f64)) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 100_000, "the disk never filled");
    };
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(written > 0, "no sample fitted");
    let path = disk.path().join("samples.jsonl");
    let bytes = std::fs::read(&path).expect("samples.jsonl");
    assert_eq!(bytes.last(), Some(&b'\n'), "the file ends in a cut line");
    let text = String::from_utf8(bytes).expect("utf-8");
    for (i, line) in text.lines().enumerate() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("line {}: {e}: {line}", i + 1));
    }
    assert_eq!(text.lines().count(), written);
    assert_eq!(
        results::read_samples(disk.path()).expect("read").len(),
        written
    );
    // Room again: the next sample follows the last complete line.
    std::fs::remove_file(filler).expect("free the disk");
    writer
        .append(&sample(-1.0))
        .expect("append after the disk has room");
    let all = results::read_samples(disk.path()).expect("read");
    assert_eq!(all.len(), written + 1);
    assert_eq!(all.last().map(|s| s.t), Some(-1.0));
}
