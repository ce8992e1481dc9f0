//! Hostile input: the corpus under tests/fixtures/hostile/ (bombs, bytes
//! that are not UTF-8, NUL bytes, huge numbers, deep nesting, shell and
//! path injection in every string that reaches a command line, a file name
//! or a container name), FIFOs, devices and files past the size limit.
//! Each is refused with exit code 2, naming the file (and its line where
//! there is one), quickly and without blowing memory, and leaves nothing
//! behind: no run directory, no `twlab-*` namespace, no state.

mod common;

use common::{expected_line, files_in, manifest_dir, twlab, twlab_namespaces};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn corpus(kind: &str) -> Vec<PathBuf> {
    let v = files_in(&format!("tests/fixtures/hostile/{kind}"));
    assert!(v.len() >= 10, "{kind}: {} files", v.len());
    v
}

fn expected(path: &Path) -> String {
    expected_line(path)
}

/// A scratch directory to run twlab in, with its own state directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// twlab with `args`, in the scratch directory, stopped after 20 s.
    /// Returns the exit code and stderr.
    fn twlab(&self, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
        let mut cmd = twlab();
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("TWLAB_STATE_DIR", self.state())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        limit_memory(&mut cmd);
        let mut child = cmd.spawn().expect("twlab starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("twlab {args:?} did not finish within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Nothing was created in the scratch directory (no `runs/`, no state).
    fn assert_empty(&self, what: &str) {
        let left: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("scratch")
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "in")
            .collect();
        assert!(left.is_empty(), "{what}: left {left:?}");
    }
}

/// The most memory twlab may use on any of these: 512 MiB of address
/// space (a debug build needs ~20 MiB; the 20 GB alias bomb needs all).
const MEMORY_LIMIT: u64 = 512 * 1024 * 1024;

fn limit_memory(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_AS,
                MEMORY_LIMIT,
                MEMORY_LIMIT,
            )
            .map_err(std::io::Error::from)
        });
    }
}

/// `stderr` names `path` followed by `:LINE`.
fn names_a_line(stderr: &str, path: &Path) -> bool {
    let shown = path.display().to_string();
    stderr.match_indices(&shown).any(|(i, _)| {
        let rest = &stderr[i + shown.len()..];
        rest.strip_prefix(':')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    })
}

fn check_refused(s: &Scratch, args: &[&std::ffi::OsStr], path: &Path, line: bool) -> String {
    match refused(s, args, path, line) {
        Ok(stderr) => stderr,
        Err(e) => panic!("{e}"),
    }
}

/// twlab `args` exits 2 naming `path` (and a line of it when `line`),
/// without a panic; its stderr, or what went wrong.
fn refused(
    s: &Scratch,
    args: &[&std::ffi::OsStr],
    path: &Path,
    line: bool,
) -> Result<String, String> {
    let (code, stderr) = s.twlab(args);
    if code != Some(2) {
        return Err(format!("{args:?}: exit {code:?}: {stderr}"));
    }
    if !stderr.contains(&path.display().to_string()) {
        return Err(format!("{args:?}: does not name the file: {stderr}"));
    }
    if line && !names_a_line(&stderr, path) {
        return Err(format!("{args:?}: no file:line in {stderr}"));
    }
    if stderr.contains("panicked") {
        return Err(format!("{args:?}: {stderr}"));
    }
    Ok(stderr)
}

#[test]
fn every_hostile_scenario_exits_2_at_its_line_and_creates_nothing() {
    let before = twlab_namespaces();
    let mut failures = Vec::new();
    for fixture in corpus("scenarios") {
        let s = Scratch::new();
        let want = expected(&fixture);
        // validate first: `run` is tried only on what validate refused, so
        // a fixture that turned valid cannot build a lab here.
        let stderr = match refused(
            &s,
            &["validate".as_ref(), fixture.as_os_str()],
            &fixture,
            true,
        ) {
            Ok(stderr) => stderr,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if !stderr.contains(&want) {
            failures.push(format!(
                "{}:\n  want: {want}\n  got:  {stderr}",
                fixture.display()
            ));
            continue;
        }
        let again = check_refused(&s, &["run".as_ref(), fixture.as_os_str()], &fixture, true);
        assert_eq!(again, stderr, "run and validate refuse alike");
        s.assert_empty(&fixture.display().to_string());
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(twlab_namespaces(), before, "a namespace was created");
}

#[test]
fn every_hostile_lab_file_exits_2_at_its_line_and_creates_nothing() {
    let before = twlab_namespaces();
    let scenario = manifest_dir().join("scenarios/tw_reuse.yaml");
    let mut failures = Vec::new();
    for fixture in corpus("labs") {
        let s = Scratch::new();
        let want = expected(&fixture);
        let args = |cmd: &'static str| -> Vec<std::ffi::OsString> {
            vec![
                cmd.into(),
                scenario.clone().into(),
                "--lab".into(),
                fixture.clone().into(),
            ]
        };
        let v = args("validate");
        let v: Vec<&std::ffi::OsStr> = v.iter().map(|a| a.as_os_str()).collect();
        let stderr = match refused(&s, &v, &fixture, true) {
            Ok(stderr) => stderr,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if !stderr.contains(&want) {
            failures.push(format!(
                "{}:\n  want: {want}\n  got:  {stderr}",
                fixture.display()
            ));
            continue;
        }
        let r = args("run");
        let r: Vec<&std::ffi::OsStr> = r.iter().map(|a| a.as_os_str()).collect();
        check_refused(&s, &r, &fixture, true);
        s.assert_empty(&fixture.display().to_string());
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(twlab_namespaces(), before, "a namespace was created");
}

#[test]
fn a_fifo_a_device_and_a_directory_are_refused_without_reading_them() {
    let s = Scratch::new();
    let input = s.dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    let fifo = input.join("scenario.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    // A writer that would feed the FIFO forever if it were read.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) {
                let _ = f.write_all(b"name: x\nvariants:\n  - name: a\n");
            }
        })
    };
    let scenario = manifest_dir().join("scenarios/tw_reuse.yaml");
    for path in [fifo.as_path(), Path::new("/dev/zero"), input.as_path()] {
        for cmd in ["validate", "run"] {
            let stderr = check_refused(&s, &[cmd.as_ref(), path.as_os_str()], path, false);
            assert!(stderr.contains("is not a regular file"), "{stderr}");
            let stderr = check_refused(
                &s,
                &[
                    cmd.as_ref(),
                    scenario.as_os_str(),
                    "--lab".as_ref(),
                    path.as_os_str(),
                ],
                path,
                false,
            );
            assert!(
                stderr.contains("cannot read lab file") && stderr.contains("is not a regular file"),
                "{stderr}"
            );
        }
    }
    // Unblock the writer (it waits for a reader) so the thread ends.
    {
        use std::os::unix::fs::OpenOptionsExt;
        drop(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo),
        );
    }
    let _ = writer.join();
    s.assert_empty("fifo");
}

#[test]
fn generated_bombs_are_refused_in_bounded_memory_and_time() {
    let s = Scratch::new();
    let input = s.dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    // The issue's bomb: a 1 MB anchored string referenced 20 000 times in
    // server.command, ~20 GB once expanded. Its file is past the size limit.
    let big = "x".repeat(1_000_000);
    let refs = vec!["*a"; 20_000].join(", ");
    let write = |name: &str, text: String| {
        let p = input.join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let variants = "variants:\n  - name: a\n";
    let issue = write(
        "bomb_1mb_x20k.yaml",
        format!("name: x\nserver:\n  kind: command\n  command: [&a \"{big}\", {refs}]\n{variants}"),
    );
    // The same under the size limit: 60 KB x 20 000 = 1.2 GB expanded.
    let mid = "y".repeat(60_000);
    let under = write(
        "bomb_60kb_x20k.yaml",
        format!("name: x\nserver:\n  kind: command\n  command: [&a \"{mid}\", {refs}]\n{variants}"),
    );
    // A file just past 1 MiB of comments: refused by size, whatever it says.
    let huge = write(
        "huge.yaml",
        format!("name: x\n{variants}{}", "#\n".repeat(1024 * 1024 / 2 + 1)),
    );
    for (path, want, line) in [
        (&issue, "larger than the 1024 KiB twlab reads", false),
        (&under, "MAX_EXPANDED_BYTES", true),
        (&huge, "larger than the 1024 KiB twlab reads", false),
    ] {
        let started = Instant::now();
        let stderr = check_refused(&s, &["validate".as_ref(), path.as_os_str()], path, line);
        assert!(stderr.contains(want), "{}: {stderr}", path.display());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}: took {:?}",
            path.display(),
            started.elapsed()
        );
    }
    let peak_kib = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    // The largest child this test process has waited for (the corpus
    // tests run in other processes under nextest).
    assert!(peak_kib < 128 * 1024, "a child peaked at {peak_kib} KiB");
    s.assert_empty("bombs");
}

/// Issue 23, item 4: 100 000 `[` under a variant's `set:` (201 KB) cost
/// 41 s of CPU in libyaml before its recursion limit; the depth is now
/// measured before parsing, in one pass, and refused at its line. Block
/// indentation and `- ` entries nest too, and are measured alike.
#[test]
fn deep_nesting_is_refused_at_its_line_before_parsing() {
    let s = Scratch::new();
    let input = s.dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    let head = "name: deep\nvariants:\n  - name: a\n    set:\n";
    let flow = input.join("flow_100k.yaml");
    std::fs::write(
        &flow,
        format!("{head}      client.duration: {}\n", "[".repeat(100_000)),
    )
    .expect("write");
    // 1 000 levels of indentation, one per line (about 500 KB).
    let block = input.join("block_1k.yaml");
    let lines: String = (0..1000)
        .map(|d| format!("{}k:\n", " ".repeat(d)))
        .collect();
    std::fs::write(&block, format!("name: deep\ndescription:\n{lines}")).expect("write");
    let dashes = input.join("dashes_100k.yaml");
    std::fs::write(
        &dashes,
        format!("name: deep\nvariants:\n{}x\n", "- ".repeat(100_000)),
    )
    .expect("write");
    for (path, line) in [(&flow, 5), (&block, 35), (&dashes, 3)] {
        let started = Instant::now();
        let stderr = check_refused(&s, &["validate".as_ref(), path.as_os_str()], path, true);
        let took = started.elapsed();
        assert!(
            stderr.contains(&format!("{}:{line}: ", path.display()))
                && stderr.contains("MAX_NESTING_DEPTH"),
            "{stderr}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{}: took {took:?}",
            path.display()
        );
        // A lab file is read by the same code.
        let stderr = check_refused(
            &s,
            &[
                "validate".as_ref(),
                manifest_dir().join("scenarios/tw_reuse.yaml").as_os_str(),
                "--lab".as_ref(),
                path.as_os_str(),
            ],
            path,
            true,
        );
        assert!(stderr.contains("MAX_NESTING_DEPTH"), "{stderr}");
    }
    // The value of a --set is measured before it is parsed too.
    let deep_set = format!("client.duration={}", "[".repeat(100_000));
    let started = Instant::now();
    let scenario = manifest_dir().join("scenarios/tw_reuse.yaml");
    let stderr = check_refused(
        &s,
        &[
            "validate".as_ref(),
            scenario.as_os_str(),
            "--set".as_ref(),
            deep_set.as_ref(),
        ],
        &scenario,
        false,
    );
    assert!(
        stderr.contains("MAX_NESTING_DEPTH"),
        "{}",
        &stderr[..200.min(stderr.len())]
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    s.assert_empty("deep nesting");
}

/// Issue 18, item 3: a `matrix:` whose lists are long (90 000 distinct
/// values, ~600 KB) is refused by its product at the `matrix:` line, at
/// once: the product is checked before any value is (each value costs a
/// parse of the scenario and a search for duplicates, so checking 90 000
/// of them first took minutes).
#[test]
fn a_huge_matrix_is_refused_by_its_product_quickly() {
    let s = Scratch::new();
    let input = s.dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    let values: Vec<String> = (1..=90_000).map(|n| n.to_string()).collect();
    let path = input.join("matrix.yaml");
    std::fs::write(
        &path,
        format!("name: x\nmatrix:\n  client.rate: [{}]\n", values.join(", ")),
    )
    .expect("write");
    let started = Instant::now();
    let stderr = check_refused(&s, &["validate".as_ref(), path.as_os_str()], &path, true);
    assert!(
        stderr.contains(&format!(
            "{}:2: matrix: 90000 variants is more than the 100",
            path.display()
        )),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    s.assert_empty("matrix");
}
