//! TCP socket counts from the text of `ss` or `netstat`, for hosts reached over SSH.
//!
//! # Why text at all
//!
//! On the embedded lab twlab counts sockets in-process over netlink
//! ([`crate::measure::sockdiag`]): cheap, exact, no parsing. A real host reached over
//! SSH offers none of that: twlab cannot run code in its network namespace,
//! only the programs the host already has. So there the counts come from
//! `ss` (iproute2, on every current Linux) and, where `ss` is missing (old or
//! minimal images), from `netstat` (net-tools). The numbers are compared with
//! sock_diag's in the same report, so they must mean exactly the same thing:
//!
//! * **Same states, same names.** Keys are [`crate::measure::sockdiag::state_name`]s
//!   (netstat's spelling: `ESTABLISHED`, `TIME_WAIT`, `FIN_WAIT1`, ...).
//!   `ss` spells them its own way (`ESTAB`, `TIME-WAIT`, `FIN-WAIT-1`,
//!   `UNCONN` for CLOSE); they are mapped to the kernel state number and
//!   named by `state_name`, so the two modules cannot drift apart. A state
//!   with no socket is absent (read a missing key as 0), as in sock_diag.
//! * **Same matching rule.** [`Side::Server`] counts the sockets whose
//!   *local* address:port is the endpoint, [`Side::Client`] those whose
//!   *remote* address:port is; the test is [`Endpoint::matches`], so an
//!   unspecified endpoint address (`0.0.0.0`, `::`) matches any address of
//!   the port (a readiness check for LISTEN on `[::]:8080` counts a listener
//!   shown as `*:8080`, `0.0.0.0:8080` or `[::]:8080`).
//! * **The dual-stack pitfall.** A server listening on `[::]` with
//!   `IPV6_V6ONLY` off (Tomcat, most Java servers, `twlab serve`) holds its
//!   IPv4 connections on AF_INET6 sockets: `ss` prints them as
//!   `[::ffff:198.18.0.1]:8080`, `netstat` as `tcp6` lines (net-tools 2.10
//!   prints the address dotted, `198.18.0.1:8080`; other versions print
//!   `::ffff:198.18.0.1:8080`). Adding `-4` to either tool, or reading only
//!   `/proc/net/tcp`, loses every one of them and the server reads zero
//!   TIME_WAIT. Both families are listed here, and a v4-mapped address counts
//!   as its IPv4 endpoint (`Endpoint::matches` compares
//!   [`crate::common::endpoint::canonical`] addresses).
//!
//! # `ss`: [`ss_argv`], [`parse_ss`]
//!
//! `ss -t -a -n state all '( sport = :8080 )'` (`dport` for the client side):
//!
//! * **Filtered by port in the kernel.** A load generator leaves 100k+
//!   TIME_WAIT sockets and twlab samples many times per run. `ss` compiles
//!   the filter expression into the same `inet_diag` bytecode sock_diag sends
//!   (`INET_DIAG_BC_S_EQ` / `_D_EQ`), so the kernel returns only the sockets
//!   of that port and ss formats and ships (over SSH) only those. The
//!   address is checked here, line by line. The expression is **one** argv
//!   element: the caller shell-quotes every element for SSH, so it reaches
//!   ss as one word whatever the remote shell.
//! * **`state all`, not one state.** When the state filter selects exactly
//!   one state, ss drops the State column (iproute2 6.1:
//!   `ss -H -t -n state listening '( sport = :8080 )'` prints
//!   `0 1024 *:8080 *:*`). `state all` always prints it, and asks for every
//!   state as sock_diag does. Lines without a state are skipped.
//! * **No `-H`.** `-H` (no header) only appeared in iproute2 4.17 (2018);
//!   an older ss rejects the whole command. The header line is skipped by the
//!   parser instead, as any line whose first word is not a state.
//! * **No `-p`.** Showing processes needs privileges and walks every
//!   `/proc/PID/fd`: slow, and not needed to count.
//! * **No `-4`/`-6`**: see the dual-stack pitfall above.
//!
//! Each line is `[Netid] State Recv-Q Send-Q Local Peer [details...]`. The
//! parser takes the state from the first word (or the second, after a
//! `tcp` Netid column), checks that the two queue columns are numbers, and
//! reads the local or the peer address. Addresses come as `1.2.3.4:80`,
//! `[2001:db8::1]:80`, `[::ffff:1.2.3.4]:80`, `*:80` (any address), with a
//! scope or bound device (`[fe80::1]%eth0:22`, `127.0.0.53%lo:53`), or, in
//! older ss, IPv6 without brackets (`:::22`, `::ffff:1.2.3.4:80`): the port is
//! after the last `:` (interface names cannot contain `:`), `%...` is
//! dropped, and a `*` port (a listener's peer) reads as 0.
//!
//! # `netstat`: [`netstat_argv`], [`parse_netstat`] (the fallback)
//!
//! `env LC_ALL=C netstat -t -a -n -W`:
//!
//! * netstat cannot filter: it reads `/proc/net/tcp` and `/proc/net/tcp6`
//!   whole (the kernel prints every socket of the host as text) and prints
//!   every socket, so with 100k TIME_WAIT sockets it is much slower than ss
//!   and ships every line over SSH. Use it only where ss is missing.
//! * `-W` (`--wide`): without it netstat cuts addresses to 23 characters,
//!   and a cut IPv6 address still parses, as a *wrong* address
//!   (`fe80::d0a3:e3ff:fec6:9b7a:8081` becomes `fe80::d0a3:e3ff:fe:8081`).
//! * `LC_ALL=C`: net-tools translates the state names (gettext); only the C
//!   locale gives the English names parsed here.
//! * `-n`: numeric addresses and ports (no DNS lookups, no service names).
//!
//! Lines are `Proto Recv-Q Send-Q Local Foreign State`, proto `tcp` or
//! `tcp6`; addresses are `0.0.0.0:8080`, `:::8080`,
//! `::ffff:198.18.0.1:8080` (the port after the last `:`), `:::*`.
//!
//! # Robustness
//!
//! No input can make the parsers fail or panic: a line they cannot read
//! (headers, blank lines, a state-less ss line, an address that does not
//! parse) is skipped. The unit tests run on outputs captured from real
//! namespaces (`tests/fixtures/ss/`, see its README) and show what is skipped;
//! `tests/sockets_text_live.rs` compares both parsers with sock_diag live.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::common::counts::Counts;
use crate::common::endpoint::{Endpoint, Side};
use crate::measure::sockdiag::state_name;

/// The `ss` command that lists the TCP sockets of `endpoint`'s port as seen
/// from `side`, every state, numeric, with the State column always printed:
/// `ss -t -a -n state all '( sport = :PORT )'` for [`Side::Server`],
/// `dport` for [`Side::Client`]. The filter is one element.
pub fn ss_argv(endpoint: Endpoint, side: Side) -> Vec<String> {
    let key = match side {
        Side::Server => "sport",
        Side::Client => "dport",
    };
    ["ss", "-t", "-a", "-n", "state", "all"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("( {key} = :{} )", endpoint.port)])
        .collect()
}

/// Count `ss` output lines by state (netstat spelling) for the endpoint:
/// the lines whose local ([`Side::Server`]) or peer ([`Side::Client`])
/// address matches it. Unreadable lines (the header among them) are skipped.
pub fn parse_ss(output: &str, endpoint: Endpoint, side: Side) -> Counts {
    let mut tally = Tally::default();
    for (state, addr) in output.lines().filter_map(|l| ss_line(l, side)) {
        if endpoint.matches(addr) {
            tally.add(state);
        }
    }
    tally.into_counts()
}

/// The `netstat` fallback command: every TCP socket, IPv4 and IPv6,
/// numeric, wide (untruncated addresses), in the C locale (English state
/// names): `env LC_ALL=C netstat -t -a -n -W`.
pub fn netstat_argv() -> Vec<String> {
    ["env", "LC_ALL=C", "netstat", "-t", "-a", "-n", "-W"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Count `netstat -tanW` output by state for the endpoint, by the same rule
/// as [`parse_ss`]. Lines other than `tcp`/`tcp6` sockets are skipped.
pub fn parse_netstat(output: &str, endpoint: Endpoint, side: Side) -> Counts {
    let mut tally = Tally::default();
    for (state, addr) in output.lines().filter_map(|l| netstat_line(l, side)) {
        if endpoint.matches(addr) {
            tally.add(state);
        }
    }
    tally.into_counts()
}

/// Kernel TCP state numbers go up to 12 (`NEW_SYN_RECV`); 0 stands for a
/// state the tool itself called `UNKNOWN` ([`state_name`] of it is `UNKNOWN`).
const STATES: usize = 13;

/// Matching sockets by kernel state number, turned into [`Counts`] at the end
/// so that no string is built per line.
#[derive(Default)]
struct Tally {
    by_state: [u64; STATES],
}

impl Tally {
    fn add(&mut self, state: u8) {
        if let Some(n) = self.by_state.get_mut(usize::from(state)) {
            *n += 1;
        }
    }

    fn into_counts(self) -> Counts {
        let mut counts = Counts::new();
        for (state, &n) in (0u8..).zip(self.by_state.iter()) {
            if n > 0 {
                *counts.entry(state_name(state).to_string()).or_insert(0) += n;
            }
        }
        counts
    }
}

/// `ss`'s name of a TCP state -> kernel state number. `UNCONN` is how ss
/// prints CLOSE; `CLOSED` and `NEW-SYN-RECV` are accepted for other spellings
/// (the kernel reports request sockets as SYN-RECV to ss anyway).
fn ss_state(word: &str) -> Option<u8> {
    Some(match word {
        "UNKNOWN" => 0,
        "ESTAB" => 1,
        "SYN-SENT" => 2,
        "SYN-RECV" => 3,
        "FIN-WAIT-1" => 4,
        "FIN-WAIT-2" => 5,
        "TIME-WAIT" => 6,
        "UNCONN" | "CLOSED" => 7,
        "CLOSE-WAIT" => 8,
        "LAST-ACK" => 9,
        "LISTEN" => 10,
        "CLOSING" => 11,
        "NEW-SYN-RECV" => 12,
        _ => return None,
    })
}

/// netstat's name of a TCP state -> kernel state number: netstat's names
/// are [`state_name`]'s.
fn netstat_state(word: &str) -> Option<u8> {
    (0u8..).take(STATES).find(|&n| state_name(n) == word)
}

/// One `ss` line: its state and the address of `side` (local for the
/// server, peer for the client). `None` for a line that is not a socket line
/// with a state: the header, a blank or continuation line, the output of a
/// single-state filter (no State column).
fn ss_line(line: &str, side: Side) -> Option<(u8, SocketAddr)> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let state = match ss_state(first) {
        Some(state) => state,
        // A Netid column (`ss` without `-t`, or several protocols).
        None if first.starts_with("tcp") => ss_state(words.next()?)?,
        None => return None,
    };
    let recv_q = words.next()?;
    let send_q = words.next()?;
    if recv_q.parse::<u64>().is_err() || send_q.parse::<u64>().is_err() {
        return None;
    }
    let local = words.next()?;
    let peer = words.next()?;
    let addr = match side {
        Side::Server => local,
        Side::Client => peer,
    };
    Some((state, socket_addr(addr)?))
}

/// One `netstat` line: its state and the address of `side`. `None` for
/// anything but a readable `tcp`/`tcp6` line.
fn netstat_line(line: &str, side: Side) -> Option<(u8, SocketAddr)> {
    let words: Vec<&str> = line.split_whitespace().take(6).collect();
    let [proto, recv_q, send_q, local, foreign, state] = words.as_slice() else {
        return None;
    };
    if !matches!(*proto, "tcp" | "tcp6")
        || recv_q.parse::<u64>().is_err()
        || send_q.parse::<u64>().is_err()
    {
        return None;
    }
    let state = netstat_state(state)?;
    let addr = match side {
        Side::Server => local,
        Side::Client => foreign,
    };
    Some((state, socket_addr(addr)?))
}

/// An address as `ss` or `netstat` print it: `1.2.3.4:80`, `[2001:db8::1]:80`,
/// `[fe80::1]%eth0:22`, `127.0.0.53%lo:53`, `*:80`, `:::80`,
/// `::ffff:1.2.3.4:80`, `0.0.0.0:*`. The port is after the last `:`; a `*`
/// address is the unspecified address (`::`), a `*` port is 0; a scope or
/// device suffix (`%...`) is dropped.
fn socket_addr(text: &str) -> Option<SocketAddr> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            let (scope, port) = after.rsplit_once(':')?;
            if !(scope.is_empty() || scope.starts_with('%')) {
                return None;
            }
            (inside, port)
        }
        None => text.rsplit_once(':')?,
    };
    let host = host
        .split_once('%')
        .map_or(host, |(address, _scope)| address);
    let ip = if host == "*" {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        host.parse().ok()?
    };
    let port = if port == "*" { 0 } else { port.parse().ok()? };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests;
