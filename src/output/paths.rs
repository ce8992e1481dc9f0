//! The one check of every path a command writes to (`run --junit`,
//! `compare --out`, the files `report DIR` writes), made before the command
//! reads, prints or starts anything.
//!
//! Why one place: each command used to find out at its first write, after
//! the whole run or after printing the comparison, that a path could not be
//! written (exit 3 where the input was wrong, exit 2), and nothing stopped
//! `compare --out A/summary.json` from replacing an input with markdown.
//! Every command now calls [`check_output_file`] with the files it reads,
//! and a refusal is [`Error::Invalid`] (exit 2) before anything happens.
//!
//! What is refused:
//! - a directory, a block device or a socket (nothing a report is written to);
//! - a path whose directory does not exist, is not a directory or cannot be
//!   written (a read-only file system; as another user, the permissions):
//!   a regular file is written through a temporary file in that directory
//!   and renamed into place ([`super::write_to`]);
//! - any file the command reads, however it is named: compared by device and
//!   inode after following symlinks, so a symlink or a hard link to an input
//!   is caught as well as the input's own path;
//! - `/dev/full` (character device 1:7), which refuses every write.
//!
//! What is written into, as a shell's `>` would: a FIFO, `/dev/stdout`, a
//! terminal, `/dev/null` and other character devices. Whether such a device
//! takes the bytes is only known when they are written (then exit 3).

use crate::error::{Error, Result};
use crate::results;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Refuse `path` as the file `flag` (e.g. `--junit`) writes unless it can
/// be written without destroying one of `inputs` (the files the command
/// reads; those that do not exist are ignored). See the module doc.
pub fn check_output_file(flag: &str, path: &Path, inputs: &[PathBuf]) -> Result<()> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check_parent(flag, path);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(not_a_directory(flag, path));
        }
        Err(e) => return Err(Error::invalid(format!("{flag} {shown}: {e}"))),
    };
    if let Some(input) = inputs.iter().find(|i| same_file(&meta, i)) {
        return Err(Error::invalid(format!(
            "{flag} {shown} is {}, which this command reads: writing it would destroy it; choose another path",
            input.display()
        )));
    }
    let t = meta.file_type();
    if t.is_dir() {
        return Err(Error::invalid(format!(
            "{flag} {shown} is a directory: give the path of a file"
        )));
    }
    if t.is_block_device() || t.is_socket() {
        return Err(Error::invalid(format!(
            "{flag} {shown} is a {}: give the path of a file (or a FIFO, or /dev/stdout)",
            if t.is_socket() {
                "socket"
            } else {
                "block device"
            }
        )));
    }
    if t.is_char_device() {
        // /dev/full: Linux's memory device 1:7 (Documentation/admin-guide/devices.txt).
        if meta.rdev() == libc::makedev(1, 7) {
            return Err(Error::invalid(format!(
                "{flag} {shown} is /dev/full, which refuses every write"
            )));
        }
        return Ok(());
    }
    if t.is_fifo() {
        return Ok(());
    }
    // A regular file (behind symlinks or not) is replaced by a rename in
    // its directory.
    check_parent(flag, path)
}

/// `run --junit FILE` beside `run --out DIR`: FILE directly in DIR is
/// written after the run has made DIR, so DIR need not exist yet, but it
/// must not be one of the files the run writes there (`summary.json`,
/// `report.md`, …); anywhere else it is [`check_output_file`]'s.
pub fn check_run_output_file(
    flag: &str,
    path: &Path,
    out_dir: Option<&Path>,
    inputs: &[PathBuf],
) -> Result<()> {
    let in_out_dir = out_dir.is_some_and(|d| path.parent() == Some(d));
    if !in_out_dir {
        return check_output_file(flag, path, inputs);
    }
    let run_files = [
        results::SAMPLES_FILE,
        results::SUMMARY_FILE,
        results::ENV_FILE,
        results::REPORT_FILE,
        results::HTML_FILE,
        results::SCENARIO_FILE,
        results::LAB_FILE,
        super::charts::CHARTS_DIR,
    ];
    match path.file_name().and_then(|n| n.to_str()) {
        Some(name) if run_files.contains(&name) => Err(Error::invalid(format!(
            "{flag} {}: the run writes its own {name} there; choose another name",
            path.display()
        ))),
        // A new --out is made by the run; an existing one is checked by it
        // (empty or refused), so nothing in it can be an input.
        _ if !path.parent().is_some_and(Path::exists) => Ok(()),
        _ => check_output_file(flag, path, inputs),
    }
}

/// The directory `path` would be created in exists, is a directory and
/// can be written.
fn check_parent(flag: &str, path: &Path) -> Result<()> {
    let shown = path.display();
    // The target of a symlink is what is written; its directory counts.
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_a_directory(flag, &path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(format!(
                "{flag} {shown}: the directory {} does not exist; create it first",
                parent.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(not_a_directory(flag, &path));
        }
        Err(e) => {
            return Err(Error::invalid(format!(
                "{flag} {shown}: cannot use the directory {}: {e}",
                parent.display()
            )));
        }
    }
    // access(2) answers for this process (root included: a read-only file
    // system is EROFS).
    nix::unistd::access(parent, nix::unistd::AccessFlags::W_OK).map_err(|e| {
        Error::invalid(format!(
            "{flag} {shown}: the directory {} cannot be written ({})",
            parent.display(),
            std::io::Error::from(e)
        ))
    })
}

/// `flag path: X is not a directory`, naming the first component of
/// `path` that exists and is not a directory (`FILE` of `FILE/sub/x`).
pub fn not_a_directory(flag: &str, path: &Path) -> Error {
    let culprit = path
        .ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir()));
    match culprit {
        Some(file) => Error::invalid(format!(
            "{flag} {}: {} is not a directory (it is a file), so nothing can be created under it",
            path.display(),
            file.display()
        )),
        None => Error::invalid(format!(
            "{flag} {}: a component of the path is not a directory",
            path.display()
        )),
    }
}

/// Is `meta` (of the output, symlinks followed) the file at `input`?
fn same_file(meta: &std::fs::Metadata, input: &Path) -> bool {
    std::fs::metadata(input).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &Path, inputs: &[PathBuf]) -> String {
        match check_output_file("--x", path, inputs) {
            Err(e @ Error::Invalid(_)) => e.to_string(),
            other => panic!("{}: {other:?}", path.display()),
        }
    }

    #[test]
    fn inputs_directories_and_missing_parents_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("summary.json");
        std::fs::write(&input, "{}").expect("write");
        let link = dir.path().join("link.md");
        std::os::unix::fs::symlink(&input, &link).expect("symlink");
        let hard = dir.path().join("hard.md");
        std::fs::hard_link(&input, &hard).expect("hard link");
        let inputs = [input.clone()];
        for p in [&input, &link, &hard] {
            let e = refused(p, &inputs);
            assert!(e.contains("which this command reads"), "{e}");
        }
        // Through `..`, too.
        let e = refused(&dir.path().join("x/../summary.json"), &inputs);
        assert!(e.contains("does not exist") || e.contains("reads"), "{e}");
        let e = refused(dir.path(), &inputs);
        assert!(e.contains("is a directory"), "{e}");
        let e = refused(&dir.path().join("no/j.xml"), &inputs);
        assert!(e.contains("does not exist"), "{e}");
        let e = refused(&input.join("j.xml"), &inputs);
        assert!(
            e.contains(&format!("{} is not a directory", input.display())),
            "{e}"
        );
        let e = refused(Path::new("/dev/full"), &inputs);
        assert!(e.contains("refuses every write"), "{e}");
        // What can be written is accepted, and nothing is created.
        check_output_file("--x", &dir.path().join("new.xml"), &inputs).expect("new file");
        check_output_file("--x", Path::new("/dev/null"), &inputs).expect("/dev/null");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        check_output_file("--x", &fifo, &inputs).expect("fifo");
        assert!(!dir.path().join("new.xml").exists());
    }

    #[test]
    fn junit_in_the_run_directory_may_not_be_a_run_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("run");
        let check = |name: &str| check_run_output_file("--junit", &out.join(name), Some(&out), &[]);
        // The run makes `run/` before the JUnit file is written.
        check("junit.xml").expect("junit.xml in a new --out");
        for name in ["summary.json", "report.md", "samples.jsonl", "charts"] {
            let e = check(name).unwrap_err().to_string();
            assert!(e.contains("the run writes its own"), "{e}");
        }
        // Elsewhere, the parent must exist.
        let e = check_run_output_file("--junit", &dir.path().join("no/j.xml"), Some(&out), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
