//! Host locks: one twlab at a time on a machine.
//!
//! Two twlab runs on one host would each restore "their" old sysctl values
//! and leave the other's changes in place, so a real lab (and `twlab
//! clean` undoing one) holds a `flock` on `/run/twlab/*.lock` per machine:
//! first by the lab file's destination, before connecting (nothing is
//! touched on a busy host), then by the machine's identity as its kernel
//! tells it (boot id and network namespace), once connected, since one
//! machine may be named several ways. The kernel drops a lock when its
//! holder dies, even by `kill -9`, so a crash never leaves a host locked.
//! Apart from `real.rs` because `twlab clean` takes the same locks.

use super::Host;
use super::run_id::OWNER_DIR;
use crate::error::{Error, Result};
use crate::scenario::labfile::LabSpec;

/// A held host lock (`/run/twlab/*.lock`), whose file is removed when it
/// is released: a lab file that named a host once (or a host that never
/// answered) leaves nothing behind in `/run/twlab`.
///
/// Removing a lock file is safe only under this protocol: the file is
/// unlinked while its lock is held, and a lock is taken only on the file
/// that still stands at the path (after `flock`, the path's inode must be
/// the one locked; else the path was released and made anew meanwhile,
/// and the lock is taken again). So two runs never hold locks on two
/// different files of one path. A `kill -9` leaves the file; the kernel
/// drops the lock, and the next run takes and removes it.
pub struct HostLock {
    lock: nix::fcntl::Flock<std::fs::File>,
    path: std::path::PathBuf,
}

impl Drop for HostLock {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Only the file this lock holds: it still stands at the path, as
        // nobody else unlinks it without holding the lock.
        let same = match (self.lock.metadata(), std::fs::metadata(&self.path)) {
            (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
            _ => false,
        };
        if same {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A lock file's name part: what the key holds, with anything but
/// `[A-Za-z0-9.-]` as `_`.
fn lock_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Take the lock `/run/twlab/<file>` without waiting, and write `holder`
/// into it (for the message of a run it refuses). When it is held, the
/// error is the path, why, and what its holder wrote.
fn try_lock(file: &str, holder: &str) -> Result<std::result::Result<HostLock, LockBusy>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let dir = std::path::Path::new(OWNER_DIR);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let path = dir.join(file);
    // A few tries: each retry means another run released (and removed)
    // the file between our open and our lock.
    let mut tries = 0;
    let taken = loop {
        tries += 1;
        let f = std::fs::File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let still_there = match (lock.metadata(), std::fs::metadata(&path)) {
                    (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
                    _ => false,
                };
                if still_there {
                    break Ok(lock);
                }
                if tries >= 8 {
                    // Released and made anew eight times over: busy.
                    break Err(nix::errno::Errno::EAGAIN);
                }
            }
            Err((_, errno)) => break Err(errno),
        }
    };
    Ok(match taken {
        Ok(mut lock) => {
            // Only a note for the message of a run refused later: a
            // failure to write it costs nothing but that note.
            let _ = lock
                .set_len(0)
                .and_then(|()| writeln!(&mut *lock, "{holder}"));
            Ok(HostLock { lock, path })
        }
        Err(errno) => {
            let holder = std::fs::read_to_string(&path)
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            Err(LockBusy {
                path,
                errno,
                holder,
            })
        }
    })
}

/// A lock someone else holds.
struct LockBusy {
    path: std::path::PathBuf,
    errno: nix::errno::Errno,
    /// What its holder wrote in it ("ssh root@h (server, client), twlab
    /// PID 123"), empty when unknown.
    holder: String,
}

impl LockBusy {
    fn held_by(&self) -> String {
        if self.holder.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.holder)
        }
    }
}

/// What a host lock says of its holder: the hosts of its lab on that
/// machine and the twlab that holds it.
fn holder_note(hosts: &[String], what: &str) -> String {
    format!("{} ({what} PID {})", hosts.join(", "), std::process::id())
}

/// Take the lock of each machine of the lab, by the lab file's
/// destination, before connecting (nothing is touched on a busy host): two
/// twlab runs on one host would each restore "their" old sysctl values and
/// leave the second run's changes in place. The kernel drops a lock when
/// its holder dies, even by `kill -9`, so a crash never leaves a host
/// locked. One machine named two ways (`root@h`, `root@10.0.0.5`, an
/// `ssh_config` alias) is caught once connected, by
/// [`lock_identities`].
pub fn lock_machines(spec: &LabSpec) -> Result<Vec<HostLock>> {
    lock_destinations(spec, "twlab")
}

/// [`lock_machines`], with `what` (twlab, twlab clean) in the note.
pub fn lock_destinations(spec: &LabSpec, what: &str) -> Result<Vec<HostLock>> {
    let hosts: Vec<(String, String)> = spec
        .hosts
        .roles()
        .into_iter()
        .map(|(_, h)| (h.machine_key(), h.describe()))
        .collect();
    let mut locks = Vec::new();
    for (key, names) in machines_of(&hosts) {
        let file = format!("host-{}.lock", lock_name(&key));
        match try_lock(&file, &holder_note(&names, what))? {
            Ok(lock) => locks.push(lock),
            Err(busy) => {
                return Err(Error::env(format!(
                    "another twlab run is using {key}{} ({}: {}); two runs on one host would undo each other's sysctls: wait for it to end",
                    busy.held_by(),
                    busy.path.display(),
                    busy.errno
                )));
            }
        }
    }
    Ok(locks)
}

/// `/proc/sys/kernel/random/boot_id`: one value per boot of a kernel.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Which machine a connected host is, as its kernel sees it: its boot id
/// and its network namespace. A lab file's destination does not say
/// (`root@h`, `root@10.0.0.5` and an `ssh_config` alias may be one host);
/// net.* sysctls are per network namespace, so two namespaces of one
/// kernel are two machines here. Read through the host, no shell.
pub async fn machine_identity(host: &dyn Host) -> Result<String> {
    let boot = host.run(&["cat".to_string(), BOOT_ID.to_string()]).await?;
    let net = host
        .run(&["readlink".to_string(), "/proc/self/ns/net".to_string()])
        .await?;
    identity_key(&boot, &net).ok_or_else(|| {
        Error::env(format!(
            "cannot tell which machine {} is (for the lock that keeps two twlab runs off one machine): {BOOT_ID} reads `{}`, /proc/self/ns/net links to `{}`",
            host.describe(),
            boot.trim().escape_default(),
            net.trim().escape_default()
        ))
    })
}

/// `boot-<boot id>-net-<inode>` from the boot id file's text and the
/// `net:[<inode>]` link of a network namespace; `None` when either is
/// not what Linux prints.
pub fn identity_key(boot_id: &str, netns_link: &str) -> Option<String> {
    let boot = boot_id.trim().to_ascii_lowercase();
    let uuid = boot.len() == 36
        && boot.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let inode = netns_link.trim().strip_prefix("net:[")?.strip_suffix(']')?;
    let number =
        !inode.is_empty() && inode.len() <= 20 && inode.bytes().all(|b| b.is_ascii_digit());
    (uuid && number).then(|| format!("boot-{boot}-net-{inode}"))
}

/// The machines of a lab, from each host's identity and description in
/// order: one entry per machine, with the hosts on it (both roles on one
/// machine take one lock, whatever names the lab file gives them).
pub fn machines_of(hosts: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    let mut machines: Vec<(String, Vec<String>)> = Vec::new();
    for (identity, host) in hosts {
        match machines.iter_mut().find(|(id, _)| id == identity) {
            Some((_, names)) => {
                if !names.contains(host) {
                    names.push(host.clone());
                }
            }
            None => machines.push((identity.clone(), vec![host.clone()])),
        }
    }
    machines
}

/// Take the lock of each machine by its identity (see
/// [`machines_of`]; `/run/twlab/machine-<identity>.lock`), skipping the
/// ones in `held` (already this process's: a lock file opened twice by
/// one process is two locks, and the second would wait for the first).
/// A machine in use by another twlab is an error naming both sides.
pub fn lock_identities(
    hosts: &[(String, String)],
    held: &[String],
    what: &str,
) -> Result<Vec<(String, HostLock)>> {
    let mut locks = Vec::new();
    for (identity, names) in machines_of(hosts) {
        if held.contains(&identity) {
            continue;
        }
        let file = format!("machine-{}.lock", lock_name(&identity));
        match try_lock(&file, &holder_note(&names, what))? {
            Ok(lock) => locks.push((identity, lock)),
            Err(busy) => {
                let other = if busy.holder.is_empty() {
                    "another name".to_string()
                } else {
                    busy.holder.clone()
                };
                return Err(Error::env(format!(
                    "another twlab run is using this machine as {other}: {} is the same machine (same boot id and network namespace: {identity}; {}: {}); two runs on one host would undo each other's sysctls: wait for it to end",
                    names.join(", "),
                    busy.path.display(),
                    busy.errno
                )));
            }
        }
    }
    Ok(locks)
}

/// "… and … are the same machine" for two client hosts (identity,
/// description) that are one, `None` when all are distinct.
pub fn same_machine_clients(clients: &[(String, String)]) -> Option<String> {
    for (i, (id, name)) in clients.iter().enumerate() {
        if let Some((_, first)) = clients[..i].iter().find(|(other, _)| other == id) {
            return Some(format!(
                "client hosts {first} and {name} are the same machine (same boot id and network namespace: {id}): each client host must be its own machine, or its ports and counts are counted twice"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "0f5e4bd4-2f1c-4a0e-9c53-7d1e6a3b9c21\n";

    #[test]
    fn two_client_hosts_that_are_one_machine_are_named() {
        let id = |k: &str, n: &str| (k.to_string(), n.to_string());
        assert_eq!(
            same_machine_clients(&[id("a", "ssh root@c1"), id("b", "ssh root@c2")]),
            None
        );
        let msg = same_machine_clients(&[
            id("a", "ssh root@c1"),
            id("b", "ssh root@c2"),
            id("a", "ssh root@198.18.0.9"),
        ])
        .expect("refused");
        assert!(
            msg.starts_with(
                "client hosts ssh root@c1 and ssh root@198.18.0.9 are the same machine"
            ),
            "{msg}"
        );
    }

    #[test]
    fn the_identity_is_the_boot_id_and_the_network_namespace() {
        assert_eq!(
            identity_key(BOOT, "net:[4026531840]\n").as_deref(),
            Some("boot-0f5e4bd4-2f1c-4a0e-9c53-7d1e6a3b9c21-net-4026531840")
        );
        // Upper-case hex is the same boot.
        assert_eq!(
            identity_key(&BOOT.to_uppercase(), "net:[4026531840]"),
            identity_key(BOOT, "net:[4026531840]")
        );
        // Another namespace of the same kernel is another machine.
        assert_ne!(
            identity_key(BOOT, "net:[4026531840]"),
            identity_key(BOOT, "net:[4026532301]")
        );
        // Whatever is not what Linux prints is no identity.
        for (boot, net) in [
            ("", "net:[4026531840]"),
            ("not-a-boot-id", "net:[4026531840]"),
            ("0f5e4bd4-2f1c-4a0e-9c53-7d1e6a3b9c2g", "net:[4026531840]"),
            ("0f5e4bd42f1c-4a0e-9c53-7d1e6a3b9c21-", "net:[4026531840]"),
            (BOOT, ""),
            (BOOT, "net:[]"),
            (BOOT, "mnt:[4026531840]"),
            (BOOT, "net:[40265/../1840]"),
            (BOOT, "net:[4026531840"),
        ] {
            assert_eq!(identity_key(boot, net), None, "{boot:?} {net:?}");
        }
    }

    #[test]
    fn both_roles_on_one_machine_are_one_lock_whatever_their_names() {
        let a = identity_key(BOOT, "net:[1]").unwrap();
        let b = identity_key(BOOT, "net:[2]").unwrap();
        let hosts = |pairs: &[(&String, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(id, name)| ((*id).clone(), name.to_string()))
                .collect()
        };
        // Two names of one machine: one lock naming both.
        assert_eq!(
            machines_of(&hosts(&[(&a, "ssh root@h"), (&a, "ssh twlab-alias")])),
            vec![(
                a.clone(),
                vec!["ssh root@h".into(), "ssh twlab-alias".into()]
            )]
        );
        // One name for both roles: named once.
        assert_eq!(
            machines_of(&hosts(&[(&a, "ssh root@h"), (&a, "ssh root@h")])),
            vec![(a.clone(), vec!["ssh root@h".into()])]
        );
        // Two namespaces: two locks, server first.
        assert_eq!(
            machines_of(&hosts(&[(&b, "local (this machine)"), (&a, "ssh root@h")])),
            vec![
                (b.clone(), vec!["local (this machine)".into()]),
                (a.clone(), vec!["ssh root@h".into()]),
            ]
        );
    }

    #[test]
    fn lock_names_keep_only_safe_characters() {
        assert_eq!(lock_name("ssh-root@10.0.0.5-22"), "ssh-root_10.0.0.5-22");
        assert_eq!(lock_name("ssh-[::1]/../x"), "ssh-___1__.._x");
    }
}
