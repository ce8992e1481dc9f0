//! Counting TIME_WAIT sockets of one port for the tests of this module and
//! of the builtin client, from `/proc/net/tcp` and `/proc/net/tcp6` (state
//! `06`) of the test's own network namespace.

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// `/proc/net/tcp` state numbers.
const TIME_WAIT: u8 = 0x06;
const LISTEN: u8 = 0x0A;

/// One socket: local and remote `ADDR:PORT` in the kernel's hex, ports
/// decoded, state number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub local: String,
    pub remote: String,
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
}

fn port_of(hex_addr: &str) -> Option<u16> {
    let (_, port) = hex_addr.rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

/// Every TCP socket (IPv4 and IPv6) with `port` as local or remote port.
pub(crate) fn sockets_on_port(port: u16) -> Vec<Entry> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // No tcp6 without IPv6: nothing to count there.
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let mut fields = line.split_whitespace().skip(1);
            let (Some(local), Some(remote), Some(state)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Some(local_port), Some(remote_port), Ok(state)) = (
                port_of(local),
                port_of(remote),
                u8::from_str_radix(state, 16),
            ) else {
                continue;
            };
            if local_port == port || remote_port == port {
                out.push(Entry {
                    local: local.to_string(),
                    remote: remote.to_string(),
                    local_port,
                    remote_port,
                    state,
                });
            }
        }
    }
    out
}

/// TIME_WAIT sockets of a server port that appear after [`TimeWait::new`]
/// (tuples already in TIME_WAIT then, e.g. left by an earlier test run
/// that had the same ephemeral port, are ignored). Take the counts while
/// the server still listens: its bound port keeps other connections of
/// this machine from using it as their local port.
pub(crate) struct TimeWait {
    port: u16,
    before: HashSet<(String, String)>,
}

/// New TIME_WAIT sockets on each side of the server port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sides {
    /// Local port = the server port: the server's sockets.
    pub server: usize,
    /// Remote port = the server port: its clients' sockets.
    pub client: usize,
}

impl TimeWait {
    pub(crate) fn new(port: u16) -> Self {
        let before = sockets_on_port(port)
            .into_iter()
            .filter(|e| e.state == TIME_WAIT)
            .map(|e| (e.local, e.remote))
            .collect();
        TimeWait { port, before }
    }

    /// Waits (at most `timeout`) until no socket on the port is in a
    /// state other than LISTEN and TIME_WAIT, i.e. every close has
    /// finished; returns the sockets still in the way, if any.
    pub(crate) fn settle(&self, timeout: Duration) -> Vec<Entry> {
        let deadline = Instant::now() + timeout;
        loop {
            let busy: Vec<Entry> = sockets_on_port(self.port)
                .into_iter()
                .filter(|e| e.state != TIME_WAIT && e.state != LISTEN)
                .collect();
            if busy.is_empty() || Instant::now() >= deadline {
                return busy;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The new TIME_WAIT sockets now.
    pub(crate) fn sides(&self) -> Sides {
        let mut sides = Sides {
            server: 0,
            client: 0,
        };
        for e in sockets_on_port(self.port) {
            if e.state != TIME_WAIT || self.before.contains(&(e.local, e.remote)) {
                continue;
            }
            if e.local_port == self.port {
                sides.server += 1;
            } else if e.remote_port == self.port {
                sides.client += 1;
            }
        }
        sides
    }

    /// Settles, then polls [`sides`](Self::sides) until `done` holds or
    /// `timeout` passes; returns the last counts.
    pub(crate) fn wait_for(&self, timeout: Duration, done: impl Fn(Sides) -> bool) -> Sides {
        let deadline = Instant::now() + timeout;
        self.settle(timeout);
        loop {
            let sides = self.sides();
            if done(sides) || Instant::now() >= deadline {
                return sides;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
