//! Unit tests of the parent module (clean).

use super::*;

fn current(key: &str) -> String {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A journal written before hosts were named by role (each sysctl with
/// the host's display text, no index) is still undone, each sysctl on the
/// host of its role, and then removed. Each old value is set to the
/// machine's current one, so the machine is not changed.
#[tokio::test]
async fn clean_restores_a_journal_of_the_old_format() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: writing this machine's sysctls needs root");
        return;
    }
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/restore/display_text_journal.json"
    );
    let text = std::fs::read_to_string(fixture).unwrap();
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut keys = Vec::new();
    for sysctl in old["sysctls"].as_array_mut().unwrap() {
        assert!(sysctl["host"].is_string(), "the old shape names the host");
        let key = sysctl["name"].as_str().unwrap().to_string();
        sysctl["before"] = current(&key).into();
        keys.push(key);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old00001.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    let state: RestoreState = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut done = Cleaned::default();
    undo_journal(&path, state, &mut done).await;
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    for key in &keys {
        let said = format!("sysctl {key} on local (this machine) restored to");
        assert!(
            done.removed.iter().any(|r| r.starts_with(&said)),
            "{key}: {:?}",
            done.removed
        );
    }
    assert!(!path.exists(), "the journal is removed once undone");
}
