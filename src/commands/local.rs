//! `twlab serve` and `twlab load`: the builtin server and load generator
//! on their own, as `twlab run` starts them inside a lab.

use crate::cli::{LoadArgs, ServeArgs};
use crate::error::{Error, Result, exit_code};
use crate::load::client::builtin::{self as load, LoadOptions};
use crate::load::server::builtin::{self as serve, ServeOptions};

impl From<&ServeArgs> for ServeOptions {
    fn from(a: &ServeArgs) -> ServeOptions {
        ServeOptions {
            listen: a.listen,
            max_keepalive_requests: a.max_keepalive_requests,
            threads: a.threads,
            linger_zero: a.linger_zero,
            close_delay: a.close_delay,
        }
    }
}

/// `twlab serve …`, until SIGINT or SIGTERM.
pub fn serve(args: &ServeArgs) -> Result<i32> {
    serve::serve_blocking(ServeOptions::from(args))
        .map_err(|e| Error::env(format!("twlab serve on {}: {e}", args.listen)))?;
    Ok(exit_code::OK)
}

impl TryFrom<&LoadArgs> for LoadOptions {
    type Error = Error;

    fn try_from(a: &LoadArgs) -> Result<LoadOptions> {
        if a.connections == 0 || a.threads == 0 || a.threads > a.connections as usize {
            return Err(Error::invalid(
                "--connections and --threads must be at least 1, and threads at most connections",
            ));
        }
        Ok(LoadOptions {
            target: a.target,
            host_header: a.host.clone().unwrap_or_else(|| a.target.to_string()),
            path: a.path.clone(),
            connections: a.connections,
            threads: a.threads,
            duration: a.duration,
            timeout: a.timeout,
            close_after: a.close_after,
            linger_zero: a.linger_zero,
            rate: a.rate,
            close_delay: a.close_delay,
        })
    }
}

/// `twlab load …`: the client's figures as JSON (one line with `--json`).
pub fn load(args: &LoadArgs) -> Result<i32> {
    let target = args.target;
    let stats = load::run_load_blocking(LoadOptions::try_from(args)?).map_err(|e| {
        let text = format!("twlab load against {target}: {e}");
        if e.kind() == std::io::ErrorKind::InvalidInput {
            Error::invalid(text)
        } else {
            Error::env(text)
        }
    })?;
    if args.json {
        let text = serde_json::to_string(&stats)
            .map_err(|e| Error::env(format!("cannot encode the result: {e}")))?;
        outln!("{text}");
    } else {
        outln!(
            "{}",
            serde_json::to_string_pretty(&stats).unwrap_or_default()
        );
    }
    Ok(exit_code::OK)
}
