//! The two tiers of failure and the exit codes that tell them apart.
//!
//! Like cargo-nextest, twlab separates "you asked for something wrong"
//! (exit 2: nothing was started or changed) from "the machine or the lab let
//! us down" (exit 3: the message carries the failing command and its stderr).
//! Exit 1 is reserved for expectations that did not hold. CI scripts rely on
//! these numbers; they are documented in README and `twlab --help`.

use std::fmt;

/// Process exit codes, documented in README and in `--help`.
pub mod exit_code {
    /// The command did what was asked.
    pub const OK: i32 = 0;
    /// The run completed but an expectation of the scenario failed.
    pub const EXPECTATION_FAILED: i32 = 1;
    /// Invalid input: scenario file or command-line arguments. Nothing was started.
    pub const INVALID_INPUT: i32 = 2;
    /// The environment or the lab failed: missing privilege or tool, a process died.
    pub const ENVIRONMENT: i32 = 3;
    /// Stopped by Ctrl-C or SIGTERM (128 + SIGINT); what was measured is written.
    pub const INTERRUPTED: i32 = 130;
}

/// Every error twlab reports, by tier.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad scenario or arguments (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// The machine, a tool or the lab failed (exit 3).
    #[error("{0}")]
    Environment(String),
    /// A command twlab ran failed; carries the command line and its stderr (exit 3).
    #[error("{0}")]
    Command(#[from] CommandError),
    /// An I/O error on a path (exit 3): what it was done to, and the
    /// error itself, kept with its kind as the source.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Expectations did not hold (exit 1).
    #[error("{0}")]
    ExpectationFailed(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub fn env(msg: impl Into<String>) -> Self {
        Error::Environment(msg.into())
    }

    /// An I/O error on a path, as an environment failure that names the
    /// path and keeps the error (its kind) as its source.
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source: err,
        }
    }

    /// The same failure, in the same tier (and exit code), with its message
    /// rewritten: `e.map_message(|m| format!("{path}: {m}"))`.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Error::Invalid(m) => Error::Invalid(f(m)),
            Error::Environment(m) => Error::Environment(f(m)),
            Error::Command(c) => Error::Environment(f(c.to_string())),
            e @ Error::Io { .. } => Error::Environment(f(e.to_string())),
            Error::ExpectationFailed(m) => Error::ExpectationFailed(f(m)),
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => exit_code::INVALID_INPUT,
            Error::Environment(_) | Error::Command(_) | Error::Io { .. } => exit_code::ENVIRONMENT,
            Error::ExpectationFailed(_) => exit_code::EXPECTATION_FAILED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A command that could not be started or exited unsuccessfully.
#[derive(Debug, thiserror::Error)]
#[error("command failed: `{command}`{status}{stderr}", status = status_text(self.status), stderr = stderr_text(&self.stderr))]
pub struct CommandError {
    /// The command line as a user could paste it.
    pub command: String,
    /// Exit status, or `None` when it could not be started or was killed.
    pub status: Option<i32>,
    /// What it printed on stderr (or the spawn error).
    pub stderr: String,
}

fn status_text(status: Option<i32>) -> String {
    match status {
        Some(code) => format!(" exited with status {code}"),
        None => String::new(),
    }
}

/// How a process ended, in words: `exited with status 3`, `was killed by
/// signal 9 (SIGKILL)`. A signal death has no exit status; saying one (or
/// none) would hide who stopped it.
pub fn ended_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("an unknown signal");
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("was killed by signal {sig} ({name}){core}")
        }
        None => format!("ended ({status})"),
    }
}

pub(crate) fn stderr_text(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("\n  stderr: {}", trimmed.replace('\n', "\n          "))
    }
}

/// Render an argv as a shell-like command line for messages.
pub fn display_argv<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| {
            let a = a.as_ref();
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_io_error_keeps_its_kind_its_message_and_its_exit_code() {
        let err = Error::io(
            "/tmp/x/samples.jsonl",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        let kind = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind);
        assert_eq!(kind, Some(std::io::ErrorKind::StorageFull));
        assert!(
            err.to_string().starts_with("/tmp/x/samples.jsonl: "),
            "{err}"
        );
        assert_eq!(err.exit_code(), exit_code::ENVIRONMENT);
        let mapped = err.map_message(|m| format!("run 1: {m}"));
        assert!(mapped.to_string().starts_with("run 1: /tmp/x/"), "{mapped}");
        assert_eq!(mapped.exit_code(), exit_code::ENVIRONMENT);
    }
}
