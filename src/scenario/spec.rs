//! The `server:`, `client:` and `collect:` blocks: what runs, what drives
//! it and what is counted, with their defaults and the checks that need
//! more than one key (a client block is read raw first, then checked whole).
//! The `collect:` block, which needs none of those, is in `spec/collect.rs`.

use super::values::*;
use crate::error::Result;
use crate::load::client::tools::{self, LoadTool};
use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

/// The server under load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    #[serde(default)]
    pub kind: ServerKind,
    #[serde(default = "default_port")]
    pub port: Port,
    /// Close a connection after this many requests (Tomcat's
    /// `maxKeepAliveRequests`, default 100); 0 means never.
    #[serde(default = "default_keepalive")]
    pub max_keepalive_requests: u64,
    /// Close with RST (SO_LINGER 0) instead of FIN: no TIME_WAIT on the server.
    #[serde(default)]
    pub linger_zero: bool,
    /// Builtin server: between a `Connection: close` response and the
    /// server's FIN, wait this long or until the client closes, whichever
    /// is first (default 0s: at once, as Tomcat). Longer than the client's
    /// reaction time, the client closes first and keeps the TIME_WAIT.
    #[serde(default = "zero_duration", skip_serializing_if = "is_zero_duration")]
    #[schemars(with = "Option<HumanDuration>")]
    pub close_delay: HumanDuration,
    /// For `kind: command`: the program and its arguments (no shell), e.g.
    /// `[nginx, -g, "daemon off;"]`. It must listen on `port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// For `kind: docker`: the image (default `tomcat:8.5-alpine`, as in the seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// For `kind: docker`: the container's network; only `host` (the
    /// server host's own namespace, no NAT, as in the seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<DockerNetwork>,
    /// For `kind: docker`: environment variables of the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// For `kind: docker`: the container's command (replaces the image's CMD).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// For `kind: docker`: `missing` (default: pull when the engine lacks
    /// the image), `never`, or `always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullPolicy>,
}
/// The network of a server container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DockerNetwork {
    /// `--network=host`: the container shares the server host's namespace.
    #[default]
    Host,
}
/// When to pull a server image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    #[default]
    Missing,
    Never,
    Always,
}
/// The seed's image.
pub const DEFAULT_SERVER_IMAGE: &str = "tomcat:8.5-alpine";
impl ServerSpec {
    /// The image of a docker server.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(DEFAULT_SERVER_IMAGE)
    }
}
impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            kind: ServerKind::default(),
            port: default_port(),
            max_keepalive_requests: default_keepalive(),
            linger_zero: false,
            close_delay: HumanDuration(Duration::ZERO),
            command: Vec::new(),
            image: None,
            network: None,
            env: BTreeMap::new(),
            args: Vec::new(),
            pull: None,
        }
    }
}
fn zero_duration() -> HumanDuration {
    HumanDuration(Duration::ZERO)
}
fn is_zero_duration(d: &HumanDuration) -> bool {
    d.0.is_zero()
}
/// The highest `client.rate`, in requests per second.
pub const MAX_RATE: f64 = crate::load::client::builtin::MAX_RATE;
pub(crate) fn default_port() -> Port {
    Port(8080)
}
pub(crate) fn default_keepalive() -> u64 {
    100
}
/// Which server runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// twlab's own Tomcat-like HTTP/1.1 server.
    #[default]
    Builtin,
    /// Any program (`server.command`), e.g. nginx, started on the server
    /// host; ready once something listens on `server.port`.
    Command,
    /// A container (`server.image`) on the server host's Docker engine,
    /// with host networking; needs a lab whose server host has `docker: true`.
    Docker,
}
/// The load generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, try_from = "RawClientSpec")]
#[schemars(with = "RawClientSpec")]
pub struct ClientSpec {
    pub tool: ClientTool,
    pub connections: NonZeroU32,
    pub threads: NonZeroU32,
    pub duration: HumanDuration,
    pub path: String,
    /// Per-request timeout (wrk's `--timeout`).
    pub timeout: HumanDuration,
    /// The client closes each connection itself after this many requests
    /// (it becomes the active closer); 0 = never. Tools that support it: see
    /// [`crate::load::client::tools`].
    pub close_after: u64,
    /// The client closes with RST (SO_LINGER 0): no TIME_WAIT on the client.
    pub linger_zero: bool,
    /// Open loop: requests per second over the whole load, on a fixed
    /// schedule spread over the connections; `None`: closed loop, as fast
    /// as responses come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// After a `Connection: close` response, the client waits this long
    /// before closing (0: at once, as wrk).
    #[serde(skip_serializing_if = "is_zero_duration")]
    pub close_delay: HumanDuration,
    /// Where wrk runs on the client host: the host's own `wrk`, or a
    /// container of `image` (wrk only). Not written when `host`, so the
    /// resolved scenario of a host client is what it was before `via` existed
    /// (`twlab compare` of runs from either side of that sees no change).
    #[serde(skip_serializing_if = "ClientVia::is_host")]
    pub via: ClientVia,
    /// For `via: docker`: the image; its entrypoint must be wrk (twlab
    /// passes wrk's arguments only). Default [`DEFAULT_CLIENT_IMAGE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How many client hosts run the load at once, each with `connections`
    /// and `threads` (as if the tool ran on each). Not written when 1, so
    /// the resolved scenario of a one-client run is what it was before
    /// `hosts` existed.
    #[serde(skip_serializing_if = "is_one")]
    pub hosts: NonZeroU32,
    /// For `tool: command`: the program and its arguments (no shell), with
    /// placeholders (see [`crate::load::client::tools::command`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}
fn is_one(n: &NonZeroU32) -> bool {
    n.get() == 1
}
/// Where the load client runs on the client host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientVia {
    /// A program on the client host (`wrk` on its PATH, or `twlab load`).
    #[default]
    Host,
    /// A container on the client host's Docker engine, with host
    /// networking; needs a lab whose client host has `docker: true`.
    Docker,
    /// A service on the Docker Swarm whose manager is the client host's
    /// engine: `client.hosts` tasks, one per node the lab file's placement
    /// selects, host networking; needs a lab whose client host has
    /// `docker: true` and `swarm:`.
    Swarm,
}
impl ClientVia {
    fn is_host(&self) -> bool {
        *self == ClientVia::Host
    }
}
/// The image of a containerized wrk (docker/wrk/build.sh builds it).
pub const DEFAULT_CLIENT_IMAGE: &str = "twlab/wrk:4.1";
/// The image of twlab itself, for the builtin client as a Swarm service
/// (docker/twlab/build.sh builds it).
pub const DEFAULT_TWLAB_IMAGE: &str = "twlab/twlab:dev";
impl ClientSpec {
    /// The image of a `via: docker` or `via: swarm` client: wrk's, or for
    /// the builtin client on a swarm twlab's own.
    pub fn image(&self) -> &str {
        match &self.image {
            Some(image) => image,
            None => self
                .tool
                .get()
                .image(self.via)
                .unwrap_or(DEFAULT_CLIENT_IMAGE),
        }
    }
}
impl Default for ClientSpec {
    fn default() -> Self {
        ClientSpec {
            tool: ClientTool::default(),
            connections: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
            threads: NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN),
            duration: HumanDuration(Duration::from_secs(90)),
            path: "/abc".to_string(),
            timeout: HumanDuration(Duration::from_secs(2)),
            close_after: 0,
            linger_zero: false,
            rate: None,
            close_delay: HumanDuration(Duration::ZERO),
            via: ClientVia::Host,
            image: None,
            hosts: NonZeroU32::MIN,
            command: Vec::new(),
        }
    }
}
/// [`ClientSpec`] before its cross-field checks.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientSpec {
    /// The load generator (default `builtin`); the values and what each
    /// is are listed under ClientTool.
    #[serde(default, deserialize_with = "present_tool")]
    tool: Option<ClientTool>,
    /// Connections kept open (default 100, at most 65535).
    #[serde(default, deserialize_with = "connections_count")]
    #[schemars(range(min = 1, max = 65535))]
    connections: Option<NonZeroU32>,
    /// Threads (default 2, at most 1024), at most `connections`.
    #[serde(default, deserialize_with = "threads_count")]
    #[schemars(range(min = 1, max = 1024))]
    threads: Option<NonZeroU32>,
    /// How long the load runs (default 90s).
    #[serde(default, deserialize_with = "present_duration")]
    duration: Option<HumanDuration>,
    /// Request path (default /abc, a 404 as in the seed).
    #[serde(default, deserialize_with = "present_path")]
    path: Option<String>,
    /// Per-request timeout (default 2s).
    #[serde(default, deserialize_with = "present_timeout")]
    timeout: Option<HumanDuration>,
    /// The client closes after N requests; 0 = never (default).
    #[serde(default, deserialize_with = "present_close_after")]
    close_after: Option<u64>,
    /// Close with RST instead of FIN (default false).
    #[serde(default, deserialize_with = "present_linger_zero")]
    linger_zero: Option<bool>,
    /// Open loop: requests per second over the whole load (builtin: on a
    /// fixed schedule spread over the connections, latency from each
    /// request's scheduled time; httperf: `rate / close_after` new
    /// connections per second; hey, oha: a request rate). With
    /// `close_after: 1` a connection rate. Absent: closed loop (as fast as
    /// responses come, as wrk).
    #[serde(default, deserialize_with = "present_rate")]
    #[schemars(range(min = 0.001, max = 1000000.0))]
    rate: Option<f64>,
    /// Builtin client: after a `Connection: close` response, wait this
    /// long before closing (default 0s: at once, as wrk); longer than the
    /// server's reaction, the server closes first and keeps the TIME_WAIT.
    #[serde(default, deserialize_with = "present_close_delay")]
    close_delay: Option<HumanDuration>,
    /// `host` (default: the tool on the client host), `docker` (the tool
    /// in a container of `image` on the client host's engine, host
    /// network; needs a tool with an image, wrk, and a lab whose client
    /// host has `docker: true`) or `swarm` (`hosts` tasks of a Swarm service, builtin or wrk,
    /// host network; needs a lab whose client host has `docker: true` and
    /// `swarm:`).
    #[serde(default, deserialize_with = "present_via")]
    via: Option<ClientVia>,
    /// For `via: docker` or `swarm`: the image (default twlab/wrk:4.1 for
    /// wrk, built by docker/wrk/build.sh, its entrypoint wrk; on a swarm the
    /// builtin client's is twlab/twlab:dev, by docker/twlab/build.sh).
    #[serde(default, deserialize_with = "present_image")]
    image: Option<String>,
    /// Client hosts running the load at once (default 1, at most 64), each
    /// with `connections` and `threads`: in the embedded lab one namespace
    /// each (198.18.0.2, .3, …).
    #[serde(default, deserialize_with = "client_hosts_count")]
    #[schemars(range(min = 1, max = 64))]
    hosts: Option<NonZeroU32>,
    /// For `tool: command`: the program and its arguments (no shell), with
    /// placeholders twlab fills in: {url}, {address}, {port}, {path},
    /// {connections}, {threads}, {duration_secs}, {duration}, {timeout_secs},
    /// {rate}, {close_after}. It may print a JSON result on stdout in the
    /// schema of `twlab schema --client-result`; without one the run has
    /// counts and no client figures.
    #[serde(default, deserialize_with = "present_command")]
    command: Option<Vec<String>>,
}
impl TryFrom<RawClientSpec> for ClientSpec {
    type Error = String;

    fn try_from(raw: RawClientSpec) -> Result<Self, String> {
        let d = ClientSpec::default();
        let spec = ClientSpec {
            tool: raw.tool.unwrap_or(d.tool),
            connections: raw.connections.unwrap_or(d.connections),
            threads: raw.threads.unwrap_or(d.threads),
            duration: raw.duration.unwrap_or(d.duration),
            path: raw.path.unwrap_or(d.path),
            timeout: raw.timeout.unwrap_or(d.timeout),
            close_after: raw.close_after.unwrap_or(d.close_after),
            linger_zero: raw.linger_zero.unwrap_or(d.linger_zero),
            rate: raw.rate,
            close_delay: raw.close_delay.unwrap_or(d.close_delay),
            via: raw.via.unwrap_or(d.via),
            image: raw.image,
            hosts: raw.hosts.unwrap_or(d.hosts),
            command: raw.command.unwrap_or_default(),
        };
        if spec.via != ClientVia::Host && spec.tool.get().image(spec.via).is_none() {
            let via = if spec.via == ClientVia::Docker {
                "docker"
            } else {
                "swarm"
            };
            return Err(format!(
                "client.via: {via} runs the tool from a container image, and client.tool: {} has none (the tools with one: {}); drop `via` or pick one of those",
                spec.tool.as_str(),
                tools::with_image(spec.via).join(", ")
            ));
        }
        if spec.image.is_some() && spec.via == ClientVia::Host {
            return Err("client.image is only for client.via: docker or swarm".into());
        }
        if let Some(problem) = spec.image.as_deref().and_then(image_problem) {
            return Err(format!("client.image {problem}"));
        }
        if !spec.command.is_empty() && spec.tool.as_str() != "command" {
            return Err(format!(
                "client.command is only for client.tool: command (this is {})",
                spec.tool.as_str()
            ));
        }
        // What the tool cannot do, at the key's line, naming those that can.
        tools::check(&spec)?;
        if let Some(rate) = spec.rate
            && !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE)
        {
            return Err(format!(
                "client.rate is {rate}: requests per second must be more than 0 and at most {MAX_RATE}"
            ));
        }
        if !spec.close_delay.0.is_zero() && spec.close_delay >= spec.timeout {
            return Err(format!(
                "client.close_delay ({}) must be shorter than client.timeout ({})",
                spec.close_delay, spec.timeout
            ));
        }
        if spec.threads > spec.connections {
            return Err(format!(
                "client.threads ({}) must not exceed client.connections ({}): each thread needs a connection",
                spec.threads, spec.connections
            ));
        }
        if !spec.path.starts_with('/') || spec.path.chars().any(|c| c.is_whitespace()) {
            return Err(format!(
                "client.path `{}` must start with `/` and contain no whitespace",
                spec.path
            ));
        }
        if let Some(c) = spec.path.chars().find(|c| !path_char(*c)) {
            return Err(format!(
                "client.path `{}` holds `{}`: write a URL path of letters, digits and {PATH_PUNCTUATION} (percent-encode anything else, e.g. %24 for `$`)",
                spec.path,
                c.escape_default()
            ));
        }
        if spec
            .path
            .split(['?', '#'])
            .next()
            .is_some_and(|p| p.split('/').any(|seg| seg == "." || seg == ".."))
        {
            return Err(format!(
                "client.path `{}` has a `.` or `..` segment: write the path the server is asked for",
                spec.path
            ));
        }
        if spec.path.len() > MAX_PATH_BYTES {
            return Err(format!(
                "client.path is {} bytes, more than the {MAX_PATH_BYTES} twlab allows (Tomcat's default maxHttpHeaderSize)",
                spec.path.len()
            ));
        }
        if spec.duration.0.is_zero() || spec.timeout.0.is_zero() {
            return Err("client.duration and client.timeout must be greater than zero".into());
        }
        Ok(spec)
    }
}
/// The punctuation a request path may hold: RFC 3986's path and query
/// characters less those a shell gives a meaning to (`$ ( ) ; ' ! * ,`
/// and the backtick are out; percent-encoding writes any of them). The path
/// travels as an argument of wrk, over SSH in a quoted command line too.
pub const PATH_PUNCTUATION: &str = "/-._~%?=&+:@";
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || PATH_PUNCTUATION.contains(c)
}
/// A client key written without a value (`duration:`, `duration: ~`, or
/// `--set client.duration=`) is refused, as every key that has no `Option`
/// in the scenario model is: the `Option` of [`RawClientSpec`] only means
/// "not written, take the default", and an empty value silently becoming
/// the default (a 90 s run for an empty duration) is a run not as planned.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    key: &str,
) -> Result<Option<T>, D::Error> {
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        // The message starts with the key, so that `client_check_error`
        // points at its line (serde places it at the block).
        None => Err(de::Error::custom(format!(
            "{key} has an empty value (`key:`, `~` or `null`): write a value, or leave the key out for its default"
        ))),
    }
}
/// [`present`] for each key of [`RawClientSpec`] with a default.
macro_rules! present_keys {
    ($($name:ident => $key:literal),* $(,)?) => {$(
        fn $name<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
            d: D,
        ) -> Result<Option<T>, D::Error> {
            present(d, $key)
        }
    )*};
}
present_keys! {
    present_tool => "client.tool",
    present_duration => "client.duration",
    present_path => "client.path",
    present_timeout => "client.timeout",
    present_close_after => "client.close_after",
    present_linger_zero => "client.linger_zero",
    present_rate => "client.rate",
    present_close_delay => "client.close_delay",
    present_via => "client.via",
    present_image => "client.image",
    present_command => "client.command",
}
pub(crate) fn connections_count<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<NonZeroU32>, D::Error> {
    bounded_count(
        d,
        "client.connections",
        MAX_CONNECTIONS,
        "one client address holds at most one connection per local port to the server's address and port (MAX_CONNECTIONS)",
    )
    .map(Some)
}
pub(crate) fn client_hosts_count<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<NonZeroU32>, D::Error> {
    bounded_count(
        d,
        "client.hosts",
        MAX_CLIENT_HOSTS,
        "each client host runs a whole load generator (MAX_CLIENT_HOSTS)",
    )
    .map(Some)
}
pub(crate) fn threads_count<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<NonZeroU32>, D::Error> {
    bounded_count(
        d,
        "client.threads",
        MAX_THREADS,
        "each is an OS thread; more threads than cores measure the scheduler (MAX_THREADS)",
    )
    .map(Some)
}
/// Which load generator runs: one of the tools behind the load seam
/// ([`crate::load::client::tools::TOOLS`]), written by its name.
#[derive(Clone, Copy)]
pub struct ClientTool(&'static dyn LoadTool);
impl ClientTool {
    /// The tool named `name` (a `client.tool` value).
    pub fn named(name: &str) -> Option<ClientTool> {
        tools::find(name).map(ClientTool)
    }
    /// What twlab asks of it.
    pub fn get(&self) -> &'static dyn LoadTool {
        self.0
    }
    pub fn as_str(&self) -> &'static str {
        self.0.name()
    }
}
impl Default for ClientTool {
    fn default() -> Self {
        ClientTool(tools::TOOLS[0])
    }
}
impl PartialEq for ClientTool {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for ClientTool {}
impl std::fmt::Debug for ClientTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
impl Serialize for ClientTool {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for ClientTool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_str(d, |s| {
            ClientTool::named(s).ok_or_else(|| {
                format!(
                    "unknown variant `{s}`, expected one of `{}`",
                    tools::names().join("`, `")
                )
            })
        })
    }
}
impl JsonSchema for ClientTool {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ClientTool".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let each: Vec<serde_json::Value> = tools::TOOLS
            .iter()
            .map(|t| {
                serde_json::json!({
                    "description": t.describe(),
                    "type": "string",
                    "const": t.name(),
                })
            })
            .collect();
        schemars::json_schema!({
            "description": "Which load generator runs.",
            "oneOf": each,
        })
    }
}
mod collect;
pub use collect::*;

#[cfg(test)]
mod tests;
