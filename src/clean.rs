//! `twlab clean`: remove what a killed run left behind.
//!
//! Every namespace twlab makes is named `twlab-<runid>-<role>`, like
//! containerlab's labels, so leftovers are found by name after a crash or a
//! `kill -9`. The processes inside them are twlab's own (server, client) and
//! are stopped before the namespace is deleted; the veth ends go with it.

use crate::error::Result;
use crate::lab::{self, netns};

/// Remove every labelled leftover; returns what was removed.
pub async fn clean() -> Result<Vec<String>> {
    lab::require_privileges()?;
    let mut removed = Vec::new();
    for name in netns::labelled_netns().await? {
        netns::remove_netns(&name).await;
        removed.push(format!("netns {name}"));
    }
    Ok(removed)
}
