//! `twlab completions SHELL` and `twlab man` come from the same clap
//! definitions as the parser: every command the parser knows is in each
//! completion script and in the man pages, so none can drift.

mod common;

use clap::CommandFactory;
use common::{run_expecting, twlab};

/// The commands the parser accepts (clap's own `help` aside).
fn command_names() -> Vec<String> {
    let names: Vec<String> = twlab::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "run"), "no commands: {names:?}");
    names
}

#[test]
fn every_shell_completes_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run_expecting(twlab().args(["completions", shell]), 0);
        let script = String::from_utf8_lossy(&out.stdout);
        for name in command_names() {
            assert!(
                script.contains(&name),
                "the {shell} completion script does not name `{name}`"
            );
        }
    }
}

#[test]
fn an_unknown_shell_is_invalid_input() {
    let out = run_expecting(twlab().args(["completions", "cmd.exe"]), 2);
    assert!(out.stdout.is_empty());
}

#[test]
fn the_man_page_lists_every_command() {
    let out = run_expecting(twlab().arg("man"), 0);
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH twlab 1"), "not a man page:\n{page}");
    assert!(page.contains("Exit codes:"), "the exit codes are missing");
    for name in command_names() {
        // roff escapes the dash: `twlab\-run(1)`.
        assert!(
            page.contains(&format!("twlab\\-{name}(1)")),
            "the man page does not list `twlab {name}`"
        );
    }
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_expecting(twlab().arg("man").arg("--dir").arg(dir.path()), 0);
    let mut expected = vec!["twlab.1".to_string()];
    expected.extend(command_names().iter().map(|n| format!("twlab-{n}.1")));
    for file in expected {
        let text = std::fs::read_to_string(dir.path().join(&file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(".TH"), "{file} is not a man page");
    }
}

#[test]
fn man_dir_that_is_not_a_directory_is_invalid_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let out = run_expecting(twlab().arg("man").arg("--dir").arg(&missing), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    assert!(!missing.exists());
}
