//! Applying a variant's sysctls, with a journal of what they were.
//!
//! Each value is read before it is written, written, read back and compared
//! (a kernel may clamp or refuse a value silently), and the journal keeps the
//! old value so it can be restored at the end, after an error and on
//! Ctrl-C. In the embedded lab the sysctls live in the run's own namespaces,
//! which are deleted afterwards, but the journal is kept the same way for
//! every host so the record in env.json says what each value was before.
//! On real hosts the journal also writes each old value to the on-disk
//! [`RestoreFile`] before the new value is written, so `twlab clean` can put
//! it back after a `kill -9`.
//!
//! A change is kept with the role of the host it was made on (the server,
//! client host `i`), and put back on the host of that role: display texts
//! are for people (two hosts of a lab may read alike). Which roles are one
//! machine is the on-disk journal's to tell (by the machines' identities);
//! in the embedded lab every role is a namespace of its own.

use crate::common::endpoint::HostRole;
use crate::error::{Error, Result};
use crate::lab::Host;
use crate::lab::restore::{PendingSysctl, RestoreFile};
use crate::results::env::{SysctlChange, SysctlChangedMeanwhile};
use crate::scenario::{SysctlName, SysctlValue, normalize_sysctl};
use std::collections::BTreeMap;

/// What was changed, in order, so it can be undone in reverse.
#[derive(Default)]
pub struct Journal {
    changes: Vec<Change>,
    /// Real hosts: the on-disk journal each old value goes to first.
    pub disk: Option<RestoreFile>,
    /// What [`Journal::restore`] found changed by someone else (for env.json).
    pub changed_meanwhile: Vec<SysctlChangedMeanwhile>,
}

/// One change and the role of the host it was made on.
struct Change {
    role: HostRole,
    record: SysctlChange,
}

impl Journal {
    /// Each change so far, in order, for env.json.
    pub fn changes(&self) -> Vec<SysctlChange> {
        self.changes.iter().map(|c| c.record.clone()).collect()
    }

    /// Drop the changes made on the host of `role` (it vanished, and its
    /// sysctls with it: nothing to put back there).
    pub fn forget_host(&mut self, role: HostRole) {
        self.changes.retain(|c| c.role != role);
    }

    /// Are the hosts of `a` and `b` one machine?
    fn same_machine(&self, a: HostRole, b: HostRole) -> bool {
        a == b || self.disk.as_ref().is_some_and(|d| d.same_machine(a, b))
    }

    /// Apply `sysctls` on `host`, recording each change. Stops at the first
    /// failure; what was applied before it stays in the journal for restore.
    pub async fn apply(
        &mut self,
        host: &dyn Host,
        sysctls: &BTreeMap<SysctlName, SysctlValue>,
    ) -> Result<()> {
        for (name, value) in sysctls {
            let before = host.read_sysctl(name).await.map_err(|e| {
                Error::env(format!(
                    "sysctl {name} cannot be read on {} (is it available in a network namespace on this kernel?): {e}",
                    host.describe()
                ))
            })?;
            if let Some(disk) = &self.disk {
                disk.record_sysctl(PendingSysctl {
                    side: host.side(),
                    index: host.role().index,
                    name: name.to_string(),
                    before: before.clone(),
                })?;
            }
            host.write_sysctl(name, &value.0).await?;
            // Recorded as soon as it is written: a read-back that fails
            // (a dropped connection) must not leave the value unrestored.
            // `after` stays empty (unknown) until it is read back.
            self.changes.push(Change {
                role: host.role(),
                record: SysctlChange {
                    side: host.side(),
                    host: host.describe(),
                    name: name.to_string(),
                    before,
                    wanted: value.0.clone(),
                    after: String::new(),
                },
            });
            let after = host.read_sysctl(name).await?;
            if let Some(change) = self.changes.last_mut() {
                change.record.after = after.clone();
            }
            if normalize_sysctl(&after) != value.normalized() {
                return Err(Error::env(format!(
                    "sysctl {name} on {} was set to `{value}` but reads back `{after}`",
                    host.describe()
                )));
            }
        }
        Ok(())
    }

    /// Put every recorded value back, newest first. Returns the failures
    /// (after trying them all).
    pub async fn restore(&mut self, hosts: &[&dyn Host]) -> Vec<Error> {
        let mut errors = Vec::new();
        while let Some(Change {
            role,
            record: change,
        }) = self.changes.pop()
        {
            // The host it was changed on, by its role: a run may have
            // several hosts on one side (client hosts).
            let Some(host) = hosts.iter().find(|h| h.role() == role) else {
                errors.push(Error::env(format!(
                    "sysctl {} was changed on {}, which this run no longer has: it was not put back",
                    change.name, change.host
                )));
                continue;
            };
            let Ok(name) = SysctlName::parse(&change.name) else {
                continue;
            };
            // Someone else changed it meanwhile when it is neither what twlab
            // wrote nor what it was: said, and put back to what it was all
            // the same (the promise is the machine as it was before the run).
            let mut meanwhile = false;
            if !change.after.is_empty()
                && let Ok(found) = host.read_sysctl(&name).await
                && normalize_sysctl(&found) != normalize_sysctl(&change.after)
                && normalize_sysctl(&found) != normalize_sysctl(&change.before)
            {
                errln!(
                    "twlab: sysctl {} on {} was changed by someone else during the run: twlab wrote `{}`, it is now `{found}`; putting back `{}`, its value before the run",
                    change.name,
                    change.host,
                    change.after,
                    change.before
                );
                self.changed_meanwhile.push(SysctlChangedMeanwhile {
                    side: change.side,
                    host: change.host.clone(),
                    name: change.name.clone(),
                    written: change.after.clone(),
                    found,
                    restored: change.before.clone(),
                });
                meanwhile = true;
            }
            let unchanged = normalize_sysctl(&change.after) == normalize_sysctl(&change.before);
            if (!unchanged || meanwhile)
                && let Err(e) = host.write_sysctl(&name, &change.before).await
            {
                errors.push(e);
                continue;
            }
            // Only once the oldest change of a key on that machine is undone
            // (by either side: both may be one machine) is it back to the
            // machine's own value (changes are undone newest first).
            let older = self
                .changes
                .iter()
                .any(|c| c.record.name == change.name && self.same_machine(c.role, role));
            if !older
                && let Some(disk) = &self.disk
                && let Err(e) = disk.forget_sysctl(role, &change.name)
            {
                errors.push(e);
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::counts::Counts;
    use crate::common::endpoint::{Endpoint, Side};
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A host whose sysctls live in a map; reads fail once `reads_fail`.
    struct FakeHost {
        role: HostRole,
        values: Mutex<BTreeMap<String, String>>,
        fail_reads_after_write: bool,
        reads_fail: AtomicBool,
    }

    impl FakeHost {
        fn new(name: &str, value: &str, fail_reads_after_write: bool) -> FakeHost {
            FakeHost {
                role: HostRole::SERVER,
                values: Mutex::new([(name.to_string(), value.to_string())].into()),
                fail_reads_after_write,
                reads_fail: AtomicBool::new(false),
            }
        }

        fn value(&self, name: &str) -> String {
            self.values.lock().unwrap()[name].clone()
        }
    }

    #[async_trait]
    impl Host for FakeHost {
        fn side(&self) -> Side {
            self.role.side
        }

        fn role(&self) -> HostRole {
            self.role
        }

        /// Every fake reads alike: the journal must not go by this text.
        fn describe(&self) -> String {
            "fake".into()
        }

        fn command(&self, argv: &[String]) -> (tokio::process::Command, Vec<String>) {
            (tokio::process::Command::new("false"), argv.to_vec())
        }

        async fn read_sysctl(&self, name: &SysctlName) -> Result<String> {
            if self.reads_fail.load(Ordering::SeqCst) {
                return Err(Error::env("read failed (the connection dropped)"));
            }
            Ok(self.value(&name.to_string()))
        }

        async fn write_sysctl(&self, name: &SysctlName, value: &str) -> Result<()> {
            self.values
                .lock()
                .unwrap()
                .insert(name.to_string(), value.to_string());
            if self.fail_reads_after_write {
                self.reads_fail.store(true, Ordering::SeqCst);
            }
            Ok(())
        }

        async fn socket_counts(&self, _endpoint: Endpoint) -> Result<Counts> {
            Ok(Counts::new())
        }
    }

    fn sysctls(name: &str, value: &str) -> BTreeMap<SysctlName, SysctlValue> {
        [(SysctlName::parse(name).unwrap(), SysctlValue(value.into()))].into()
    }

    /// Issue 9: a value written whose read-back failed must still be put
    /// back (the write happened; only the check of it did not).
    #[tokio::test]
    async fn a_sysctl_written_whose_read_back_failed_is_restored() {
        let key = "net.ipv4.tcp_fin_timeout";
        let host = FakeHost::new(key, "60", true);
        let mut journal = Journal::default();
        let applied = journal.apply(&host, &sysctls(key, "20")).await;
        assert!(applied.is_err(), "the failed read-back is an error");
        assert_eq!(host.value(key), "20", "the write happened");
        let errors = journal.restore(&[&host]).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(host.value(key), "60", "the old value is back");
    }

    /// Two client hosts that read alike (one description) each get their
    /// own value back: the journal finds a host by its role.
    #[tokio::test]
    async fn hosts_that_read_alike_each_get_their_own_value_back() {
        let key = "net.ipv4.tcp_fin_timeout";
        let mut first = FakeHost::new(key, "60", false);
        first.role = HostRole::client(0);
        let mut second = FakeHost::new(key, "30", false);
        second.role = HostRole::client(1);
        let mut journal = Journal::default();
        journal.apply(&first, &sysctls(key, "20")).await.unwrap();
        journal.apply(&second, &sysctls(key, "10")).await.unwrap();
        // Handed over in the other order: found by role, not by position.
        let errors = journal.restore(&[&second, &first]).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(first.value(key), "60");
        assert_eq!(second.value(key), "30");
    }

    /// A host of a role the run no longer has is said, not confused with
    /// another host that reads alike.
    #[tokio::test]
    async fn a_change_on_a_role_the_run_no_longer_has_is_an_error() {
        let key = "net.ipv4.tcp_fin_timeout";
        let mut gone = FakeHost::new(key, "60", false);
        gone.role = HostRole::client(1);
        let other = FakeHost::new(key, "60", false);
        let mut journal = Journal::default();
        journal.apply(&gone, &sysctls(key, "20")).await.unwrap();
        let errors = journal.restore(&[&other]).await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(other.value(key), "60", "the other host was not touched");
    }

    /// A vanished host's changes are dropped, the others' kept.
    #[tokio::test]
    async fn forgetting_a_host_keeps_the_others_changes() {
        let key = "net.ipv4.tcp_fin_timeout";
        let server = FakeHost::new(key, "60", false);
        let mut client = FakeHost::new(key, "60", false);
        client.role = HostRole::client(0);
        let mut journal = Journal::default();
        journal.apply(&server, &sysctls(key, "20")).await.unwrap();
        journal.apply(&client, &sysctls(key, "20")).await.unwrap();
        journal.forget_host(HostRole::client(0));
        assert_eq!(journal.changes().len(), 1);
        assert!(journal.restore(&[&server]).await.is_empty());
        assert_eq!(server.value(key), "60");
        assert_eq!(client.value(key), "20", "forgotten: not put back");
    }
}
