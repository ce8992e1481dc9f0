//! `twlab clean`: remove what a killed run left behind.
//!
//! Every namespace twlab makes is named `twlab-<runid>-<role>`, like
//! containerlab's labels, so leftovers are found by name after a crash or a
//! `kill -9`. The processes inside them are twlab's own (server, client) and
//! are stopped before the namespace is deleted; the veth ends go with it.
//! A lab whose owner file (`/run/twlab/<runid>.pid`) names a live twlab
//! belongs to a run in progress and is left alone unless `--force`.

use crate::error::Result;
use crate::lab::{self, netns};

/// What `clean` did.
#[derive(Debug, Default)]
pub struct Cleaned {
    pub removed: Vec<String>,
    /// Labs of a twlab run that is still alive, left alone (without --force).
    pub in_use: Vec<String>,
}

/// Remove every labelled leftover. The lab of a live run (its owner file
/// names a running twlab) is left alone unless `force`.
pub async fn clean(force: bool) -> Result<Cleaned> {
    lab::require_privileges()?;
    let mut done = Cleaned::default();
    for name in netns::labelled_netns().await? {
        if !force && let Some(pid) = netns::run_id_of(&name).and_then(netns::live_owner) {
            done.in_use
                .push(format!("netns {name} (in use by twlab PID {pid})"));
            continue;
        }
        netns::remove_netns(&name).await;
        done.removed.push(format!("netns {name}"));
    }
    Ok(done)
}
