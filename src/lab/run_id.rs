//! Run ids and owner files: which twlab a lab belongs to.
//!
//! Every namespace, container, journal and lock twlab makes for a run is
//! named after the run's id, and `/run/twlab/<runid>.pid` (the owner file)
//! says which twlab process holds it, with the process's start time so a
//! recycled PID is not taken for it. That is what lets `twlab clean` remove
//! what a dead run left and leave a live run's alone. The embedded lab,
//! real labs (their restore journal is named by a reserved id), `twlab
//! bench` and `twlab clean` all use it, so it is not the namespace
//! module's: it only asks [`super::netns`] which namespace names an id
//! would take.

use super::netns::{netns_name, run_id_of, sys};
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Where a running twlab notes that a lab is its own (`<runid>.pid` holds
/// its PID and start time), so `twlab clean` leaves the labs of live runs
/// alone.
pub const OWNER_DIR: &str = "/run/twlab";

/// The owner file of a run.
pub fn owner_file(run_id: &str) -> PathBuf {
    PathBuf::from(OWNER_DIR).join(format!("{run_id}.pid"))
}

/// This process as an owner file says it: `PID START_TICKS`. The start time
/// (`/proc/PID/stat` field 22) tells this twlab from a later process that
/// got the same PID after it died.
fn owner_text() -> String {
    let pid = std::process::id();
    match super::restore::start_ticks(pid) {
        Some(ticks) => format!("{pid} {ticks}\n"),
        None => format!("{pid}\n"),
    }
}

/// Note that this twlab owns the run `run_id` (its lab, its containers).
pub fn write_owner_file(run_id: &str) -> Result<()> {
    let owner = owner_file(run_id);
    std::fs::create_dir_all(OWNER_DIR)
        .and_then(|_| std::fs::write(&owner, owner_text()))
        .map_err(|e| Error::io(owner.display(), e))
}

/// The PID and, when recorded, the start time of an owner file's text.
/// `None` unless the PID is a positive decimal number: a `0` or `-1` would
/// name a process group, or every process, to `kill`.
pub fn parse_owner(text: &str) -> Option<(i32, Option<u64>)> {
    let mut fields = text.split_whitespace();
    let pid = fields.next()?;
    if !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: i32 = pid.parse().ok().filter(|p| *p > 0)?;
    // Files written before the start time was recorded hold only the PID.
    let ticks = match fields.next() {
        Some(t) => Some(t.parse().ok()?),
        None => None,
    };
    Some((pid, ticks))
}

/// Is the process an owner file names still the one that wrote it?
fn owner_is_alive(pid: i32, ticks: Option<u64>) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match ticks {
        Some(t) => super::restore::start_ticks(pid as u32) == Some(t),
        None => true,
    }
}

/// The PID of the live twlab that owns the lab of `run_id`, if any. A PID
/// whose process started at another time than the file says is a recycled
/// one: the owner is dead.
pub fn live_owner(run_id: &str) -> Option<i32> {
    match owner_of(run_id) {
        Owner::Live(pid) => Some(pid),
        _ => None,
    }
}

/// What the owner file of a run says, for `twlab clean`: only a run whose
/// file names a dead twlab is provably a dead twlab run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// No owner file (or none readable): nothing says twlab made it.
    Missing,
    /// A file that does not name one positive PID.
    Unreadable,
    /// The twlab that wrote it still runs.
    Live(i32),
    /// The twlab that wrote it is gone (or its PID now names another process).
    Dead,
}

/// Read the owner file of `run_id` (see [`Owner`]).
pub fn owner_of(run_id: &str) -> Owner {
    let Ok(text) = std::fs::read_to_string(owner_file(run_id)) else {
        return Owner::Missing;
    };
    match parse_owner(&text) {
        None => Owner::Unreadable,
        Some((pid, ticks)) if pid != std::process::id() as i32 && owner_is_alive(pid, ticks) => {
            Owner::Live(pid)
        }
        Some(_) => Owner::Dead,
    }
}

/// Is `id` a run id as twlab makes them: eight lowercase hex digits
/// ([`random_id`]), optionally after one lowercase letter that tags who made
/// it (`b`: `twlab bench`, `t`: the tests)? `twlab clean` removes only
/// namespaces whose name carries one ([`run_id_of`]).
pub fn is_run_id(id: &str) -> bool {
    let hex = match id.len() {
        8 => id,
        9 if id.as_bytes()[0].is_ascii_lowercase() => &id[1..],
        _ => return false,
    };
    hex.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A short random id: eight hex digits, short enough for interface and
/// namespace names. Two draws can meet; [`new_run_id`] makes sure a run's
/// id is not in use.
pub fn random_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

/// A fresh id for a run, reserved on this machine: its owner file is
/// created exclusively (`O_EXCL`), and an id whose namespaces exist (a
/// kept lab, a dead run's leftovers) or whose owner file is there (a live
/// run, a dead one `twlab clean` has not seen yet) is skipped for another.
/// Two runs can therefore never share an id, whose lab one of them would
/// tear down. Without the rights to write the owner directory the id is
/// returned unreserved (making the lab fails later, with the reason).
pub fn new_run_id() -> String {
    reserve_run_id(random_id)
}

/// [`new_run_id`] with the ids drawn from `draw` (tests pass a sequence).
pub fn reserve_run_id(mut draw: impl FnMut() -> String) -> String {
    let _ = std::fs::create_dir_all(OWNER_DIR);
    let mut id = draw();
    for _ in 0..64 {
        let taken = [Side::Server, Side::Client].iter().any(|s| {
            std::path::Path::new(sys::NETNS_RUN_DIR)
                .join(netns_name(&id, *s))
                .exists()
        });
        if !taken {
            let claimed = std::fs::File::options()
                .write(true)
                .create_new(true)
                .open(owner_file(&id))
                .and_then(|mut f| std::io::Write::write_all(&mut f, owner_text().as_bytes()));
            match claimed {
                Ok(()) => return id,
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return id,
                Err(_) => {}
            }
        }
        id = draw();
    }
    id
}

/// Give back a run id reserved by [`new_run_id`] whose run made nothing:
/// its owner file is removed, unless a namespace of the run exists (then
/// the file is what lets `twlab clean` prove the namespace is twlab's) or
/// the file is not this process's.
pub fn release_run_id(run_id: &str) {
    let made_something = std::fs::read_dir(sys::NETNS_RUN_DIR)
        .map(|d| {
            d.flatten()
                .any(|e| run_id_of(&e.file_name().to_string_lossy()) == Some(run_id))
        })
        .unwrap_or(false);
    let path = owner_file(run_id);
    let ours = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| parse_owner(&t))
        .is_some_and(|(pid, _)| pid as u32 == std::process::id());
    if ours && !made_something {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_eight_hex_digits_maybe_after_a_tag_letter() {
        assert!(is_run_id(&random_id()));
        for good in ["ab12cd34", "00000000", "bab12cd34", "t0123abcd"] {
            assert!(is_run_id(good), "{good}");
        }
        for bad in [
            "",
            "notmine",
            "ab12cd3",
            "AB12CD34",
            "ab12cd345x",
            "1ab12cd34",
            "doctor-77",
            "ab12cd3g",
        ] {
            assert!(!is_run_id(bad), "{bad}");
        }
    }

    #[test]
    fn owner_files_name_one_positive_pid_and_maybe_its_start_time() {
        assert_eq!(parse_owner("1234 5678\n"), Some((1234, Some(5678))));
        // Files of older twlabs hold the PID alone.
        assert_eq!(parse_owner("1234\n"), Some((1234, None)));
        for bad in ["", "-1", "0", "+5", "12ab", "1234 x", "99999999999"] {
            assert_eq!(parse_owner(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_run_without_an_owner_file_has_no_live_owner() {
        // No owner file: not live.
        assert_eq!(live_owner("no-such-run-id"), None);
    }
}
