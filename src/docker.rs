//! STUB (being written): a Docker engine, through bollard.
use crate::error::{Error, Result};
use std::path::Path;

/// The label every container twlab creates carries, with the run id as value.
pub const LABEL_RUN: &str = "twlab.run";

/// A connection to one Docker engine (this machine's, or a remote one whose
/// socket is forwarded over SSH).
pub struct Engine {
    pub docker: bollard::Docker,
    /// "local engine" or "engine of ssh admin@host", for messages.
    pub describe: String,
}

impl Engine {
    /// This machine's engine (DOCKER_HOST or /var/run/docker.sock), version negotiated.
    pub async fn local() -> Result<Engine> {
        Err(Error::env("not implemented yet"))
    }

    /// The engine behind a unix socket (e.g. one forwarded over SSH).
    pub async fn at_socket(_path: &Path, _describe: String) -> Result<Engine> {
        Err(Error::env("not implemented yet"))
    }

    /// The engine's server version.
    pub async fn version(&self) -> Result<String> {
        Err(Error::env("not implemented yet"))
    }

    /// The run ids of the containers labelled by twlab.
    pub async fn labelled_runs(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Remove every container labelled by twlab (of `run_id`, or of any run); their names.
    pub async fn remove_labelled(&self, _run_id: Option<&str>) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}
