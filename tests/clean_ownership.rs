//! `twlab clean` removes only what it can prove is a dead twlab run's
//! (issue 23): a namespace named `twlab-…` may be anyone's, and deleting
//! it kills what runs inside. The test makes its own namespaces with
//! `ip netns add`, each with a `sleep` inside that it started itself, runs
//! plain `twlab clean`, and checks which survive and what clean said. It
//! never runs `twlab clean --force` (other twlab runs may share this
//! machine); it removes what it made itself, by PID and by name, also when
//! it fails. nextest runs it with the lab tests, one at a time.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twlab::common::endpoint::Side;
use twlab::lab::netns;
use twlab::lab::run_id;

/// Namespaces and processes this test made, removed when dropped.
#[derive(Default)]
struct Made {
    namespaces: Vec<String>,
    sleeps: Vec<Child>,
    files: Vec<std::path::PathBuf>,
}

impl Made {
    /// `ip netns add NAME` (a name that must not exist yet: the test never
    /// touches a namespace it did not make) and a `sleep` inside it;
    /// returns the index of the sleep.
    fn netns_with_sleep(&mut self, name: &str) -> usize {
        assert!(
            !Path::new("/run/netns").join(name).exists(),
            "{name} exists already: not this test's"
        );
        let added = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("ip netns add");
        assert!(added.success(), "ip netns add {name}");
        self.namespaces.push(name.to_string());
        let sleep = Command::new("ip")
            .args(["netns", "exec", name, "sleep", "300"])
            .stdin(Stdio::null())
            .spawn()
            .expect("ip netns exec sleep");
        let pid = sleep.id();
        self.sleeps.push(sleep);
        // `ip netns exec` execs the program in place: once the PID runs
        // `sleep`, it is inside the namespace.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"))
        {
            assert!(Instant::now() < deadline, "sleep did not start in {name}");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.sleeps.len() - 1
    }

    fn alive(&mut self, i: usize) -> bool {
        self.sleeps[i].try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        for child in &mut self.sleeps {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in self.namespaces.iter().filter(|n| exists(n)) {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A run id as twlab makes them, with no namespace and no owner file.
fn unused_run_id() -> String {
    loop {
        let id = run_id::random_id();
        let free = !run_id::owner_file(&id).exists()
            && !Path::new("/run/netns")
                .join(netns::netns_name(&id, Side::Server))
                .exists();
        if free {
            return id;
        }
    }
}

fn exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
fn plain_clean_leaves_namespaces_it_cannot_prove_are_a_dead_runs() {
    if !require_root("plain_clean_leaves_namespaces_it_cannot_prove_are_a_dead_runs") {
        return;
    }
    let mut made = Made::default();
    // Not a twlab run id at all.
    let notmine = format!("twlab-notmine{}", std::process::id());
    let notmine_sleep = made.netns_with_sleep(&notmine);
    // A twlab run id's name, but no owner file says twlab made it.
    let orphan = netns::netns_name(&unused_run_id(), Side::Server);
    let orphan_sleep = made.netns_with_sleep(&orphan);
    // A dead run's lab: a run id and an owner file naming a twlab that has
    // ended (a process of this test, started, timed and reaped).
    let dead_id = unused_run_id();
    let dead = netns::netns_name(&dead_id, Side::Client);
    let mut gone = Command::new("sleep").arg("30").spawn().expect("sleep");
    let ticks = twlab::lab::restore::start_ticks(gone.id()).expect("start time");
    let owner = run_id::owner_file(&dead_id);
    made.files.push(owner.clone());
    std::fs::create_dir_all(run_id::OWNER_DIR).expect("owner dir");
    std::fs::write(&owner, format!("{} {ticks}\n", gone.id())).expect("owner file");
    gone.kill().expect("kill");
    gone.wait().expect("reap");
    let dead_sleep = made.netns_with_sleep(&dead);

    let out = run_expecting(twlab().arg("clean"), 0);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();

    assert!(
        said.contains(&format!(
            "left netns {notmine} (not provably twlab's: not a twlab run id); `twlab clean --force` removes it"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "left netns {orphan} (not provably twlab's: no owner file"
        )),
        "{said}"
    );
    assert!(
        !said.contains(&format!("removed netns {notmine}")),
        "{said}"
    );
    assert!(!said.contains(&format!("removed netns {orphan}")), "{said}");
    assert!(exists(&notmine), "{notmine} was deleted: {said}");
    assert!(exists(&orphan), "{orphan} was deleted: {said}");
    assert!(
        made.alive(notmine_sleep),
        "the process in {notmine} was killed"
    );
    assert!(
        made.alive(orphan_sleep),
        "the process in {orphan} was killed"
    );

    // The dead run's lab is provably twlab's: removed, with its process and
    // its owner file.
    assert!(said.contains(&format!("removed netns {dead}")), "{said}");
    assert!(!exists(&dead), "{dead} is still there: {said}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while made.alive(dead_sleep) {
        assert!(
            Instant::now() < deadline,
            "the process in {dead} still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!owner.exists(), "the dead run's owner file is left: {said}");
}

/// `twlab clean --force` cannot undo a real lab while a live run holds the
/// machine's lock; it must say so, not suggest `--force` (issue 23, 11c).
/// The lock is held for real (flock on the lock file a run takes); the
/// clean runs in a private mount namespace whose `/run/netns` and
/// `/run/twlab` are empty tmpfs of its own and with no Docker engine, so
/// its `--force` cannot reach any other twlab run on this machine.
#[test]
fn clean_force_on_a_machine_held_by_a_live_run_says_why_without_suggesting_force() {
    if !require_root(
        "clean_force_on_a_machine_held_by_a_live_run_says_why_without_suggesting_force",
    ) {
        return;
    }
    let state = tempfile::tempdir().expect("state dir");
    // SAFETY: nextest runs each test in a process of its own; no other
    // thread reads the environment.
    unsafe { std::env::set_var("TWLAB_STATE_DIR", state.path()) };
    let lab = lab_of(this_machine(false), vec![this_machine(false)], None);
    let id = format!("t{}", run_id::random_id());
    let _journal = twlab::lab::restore::RestoreFile::create(&id, &lab).expect("journal");
    let script = "mount -t tmpfs tmpfs /run/netns && mount -t tmpfs tmpfs /run/twlab \
                  && exec 9>/run/twlab/host-local.lock && flock -n 9 && exec \"$0\" clean --force";
    std::fs::create_dir_all("/run/netns").expect("/run/netns");
    std::fs::create_dir_all(run_id::OWNER_DIR).expect("/run/twlab");
    let out = run_expecting(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .arg(env!("CARGO_BIN_EXE_twlab"))
            .env("TWLAB_STATE_DIR", state.path())
            .env("DOCKER_HOST", "unix:///nonexistent/twlab-test-docker.sock"),
        0,
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains(&format!("left real lab {id}: ")), "{said}");
    assert!(said.contains("another twlab run is using local"), "{said}");
    assert!(
        said.contains("`--force` does not take a machine from a live run"),
        "{said}"
    );
    assert!(!said.contains("--force` removes it"), "{said}");
    assert!(
        state
            .path()
            .join("restore")
            .join(format!("{id}.json"))
            .exists(),
        "the journal of a machine in use was removed: {said}"
    );
}
