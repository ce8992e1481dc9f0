//! Ctrl-C, SIGTERM and SIGHUP: first a graceful stop, then an immediate one.
//!
//! The first signal asks the current load to stop early: the client is told
//! to finish (it still reports what it measured), the final snapshot is
//! taken, the lab is torn down and the report is written from what exists;
//! no further run starts. A second signal skips the waiting: children are
//! killed at once, but the lab is still removed and the samples already on
//! disk stay.
//!
//! A top-level module, not part of `load/`: the whole run listens to it —
//! the run's steps, the waits between runs on real hosts (`lab/real.rs`
//! awaits [`Shutdown::reached`], no polling) and the standalone `twlab
//! serve` / `twlab load`. It imports nothing of twlab, so any layer may use
//! it (CONTRIBUTING's map lists it beside `common`).

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How urgently twlab is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Running,
    Graceful,
    Immediate,
}

/// A handle to watch for stop requests.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Level>,
}

impl Shutdown {
    /// Listen for SIGINT and SIGTERM from now on.
    pub fn install() -> std::io::Result<Shutdown> {
        let (tx, rx) = watch::channel(Level::Running);
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        // A closed terminal or SSH session must not leave the lab behind.
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                    _ = hup.recv() => {},
                }
                let next = match *tx.borrow() {
                    Level::Running => Level::Graceful,
                    _ => Level::Immediate,
                };
                if next == Level::Graceful {
                    errln!(
                        "\ntwlab: stopping after this run's final snapshot (press Ctrl-C again to stop at once)"
                    );
                } else {
                    errln!("\ntwlab: stopping now; removing the lab");
                }
                let _ = tx.send(next);
            }
        });
        Ok(Shutdown { rx })
    }

    /// A handle that never fires (for tests and library callers).
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(Level::Running);
        std::mem::forget(tx);
        Shutdown { rx }
    }

    pub fn level(&self) -> Level {
        *self.rx.borrow()
    }

    /// Resolves once the level is at least `level`.
    pub async fn reached(&self, level: Level) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|l| *l >= level).await;
    }
}

/// For the standalone `twlab serve` / `twlab load` processes: a tokio
/// runtime with `threads` workers (0 = one per CPU) and a future that
/// resolves on SIGINT or SIGTERM — the signals `twlab run` stops them with.
pub fn runtime_until_stopped(
    threads: usize,
) -> std::io::Result<(tokio::runtime::Runtime, StopSignal)> {
    let workers = if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    // Signal streams must be made inside the runtime.
    let (int, term) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    Ok((runtime, StopSignal { int, term }))
}

/// SIGINT or SIGTERM, whichever comes first.
pub struct StopSignal {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignal {
    pub async fn recv(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
