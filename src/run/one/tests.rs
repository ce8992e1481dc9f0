//! `run_one` against a fake lab: which steps ran and what was undone, on
//! the ways out a real lab makes hard to reach (a lab that cannot be
//! opened, a server that cannot be started).

use super::*;
use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
use crate::error::Error;
use crate::lab::Host;
use crate::lab::run_id;
use crate::scenario::Scenario;
use async_trait::async_trait;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::process::Command;

/// A host where nothing can run: twlab's binary is not there.
struct FakeHost(Side);

#[async_trait]
impl Host for FakeHost {
    fn side(&self) -> Side {
        self.0
    }

    fn describe(&self) -> String {
        format!("fake {}", self.0)
    }

    fn command(&self, argv: &[String]) -> (Command, Vec<String>) {
        (Command::new("false"), argv.to_vec())
    }

    async fn twlab_exe(&self, _local: &std::path::Path) -> Result<PathBuf> {
        Err(Error::env("fake host: no twlab here"))
    }

    async fn socket_counts(&self, _endpoint: Endpoint) -> Result<Counts> {
        Ok(Counts::default())
    }
}

/// What the steps asked of the fake lab.
#[derive(Default)]
struct Calls {
    opened: AtomicU32,
    tracked: AtomicU32,
    closed: Mutex<Vec<bool>>,
}

struct FakeLabs {
    fail_open: bool,
    calls: Calls,
}

struct FakeLab<'a> {
    run_id: String,
    server: FakeHost,
    client: FakeHost,
    calls: &'a Calls,
}

#[async_trait]
impl Labs for FakeLabs {
    async fn open<'s>(
        &'s self,
        _plan: &VariantPlan<'_>,
        run_id: &str,
        _conntrack: bool,
        _env: &mut RunEnv,
        _journal: &mut Journal,
    ) -> Result<Box<dyn RunLab + 's>> {
        self.calls.opened.fetch_add(1, Ordering::SeqCst);
        if self.fail_open {
            return Err(Error::env("fake lab: cannot be made"));
        }
        Ok(Box::new(FakeLab {
            run_id: run_id.to_string(),
            server: FakeHost(Side::Server),
            client: FakeHost(Side::Client),
            calls: &self.calls,
        }))
    }
}

#[async_trait]
impl RunLab for FakeLab<'_> {
    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn host(&self, side: Side) -> &dyn Host {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
    }

    fn clients(&self) -> Vec<&dyn Host> {
        vec![&self.client]
    }

    fn client_addresses(&self) -> Vec<String> {
        vec!["198.18.0.2".into()]
    }

    fn endpoint(&self, port: u16) -> Endpoint {
        Endpoint::new(std::net::Ipv4Addr::new(198, 18, 0, 1).into(), port)
    }

    async fn track_conntrack(&self, _endpoint: Endpoint, _events: bool) -> Result<()> {
        self.calls.tracked.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn close(&self, _journal: &mut Journal, keep: bool) -> Vec<Error> {
        // The run id's owner file, as a real lab's close removes it.
        let _ = std::fs::remove_file(run_id::owner_file(&self.run_id));
        self.calls.closed.lock().expect("lock").push(keep);
        Vec::new()
    }
}

async fn run_with(labs: &FakeLabs, yaml: &str) -> (RunSummary, RunEnv, Result<()>) {
    let scenario = Scenario::parse(yaml, "s.yaml", &[]).expect("scenario");
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = Context {
        scenario: &scenario,
        dir: dir.path().to_path_buf(),
        exe: PathBuf::from("/nonexistent/twlab"),
        shutdown: Shutdown::never(),
        labs,
    };
    let plans = VariantPlan::resolve_all(&scenario).expect("plans");
    let mut writer = SampleWriter::create(dir.path()).expect("writer");
    let mut samples = Vec::new();
    // `keep` asked for: a failed run is never kept.
    run_one(&ctx, &plans[0], 1, &mut writer, true, &mut samples).await
}

#[tokio::test]
async fn a_server_that_cannot_start_fails_the_run_and_the_lab_is_closed_once() {
    let labs = FakeLabs {
        fail_open: false,
        calls: Calls::default(),
    };
    let yaml = "name: x\ncollect:\n  conntrack: true\nvariants:\n  - name: a\n";
    let (summary, env, outcome) = run_with(&labs, yaml).await;
    let err = outcome.expect_err("the server cannot start");
    assert!(err.to_string().contains("no twlab here"), "{err}");
    assert_eq!(summary.error.as_deref(), Some(err.to_string().as_str()));
    assert_eq!(env.run_id, summary.run_id);
    assert_eq!(labs.calls.opened.load(Ordering::SeqCst), 1);
    // The steps before the server ran: conntrack was made to track.
    assert_eq!(labs.calls.tracked.load(Ordering::SeqCst), 1);
    assert_eq!(*labs.calls.closed.lock().expect("lock"), vec![false]);
    assert!(!run_id::owner_file(&summary.run_id).exists());
}

#[tokio::test]
async fn a_lab_that_cannot_be_opened_is_not_closed_and_its_run_id_is_released() {
    let labs = FakeLabs {
        fail_open: true,
        calls: Calls::default(),
    };
    let (summary, _env, outcome) = run_with(&labs, "name: x\nvariants:\n  - name: a\n").await;
    let err = outcome.expect_err("no lab");
    assert!(err.to_string().contains("cannot be made"), "{err}");
    assert_eq!(summary.error.as_deref(), Some(err.to_string().as_str()));
    assert!(labs.calls.closed.lock().expect("lock").is_empty());
    assert_eq!(labs.calls.tracked.load(Ordering::SeqCst), 0);
    assert!(!run_id::owner_file(&summary.run_id).exists());
}
