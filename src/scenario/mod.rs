//! The scenario file: what to run, parsed and validated once.
//!
//! Like ripgrep turning raw arguments into a validated plan, everything a run
//! needs is checked here, before anything on the machine is touched: unknown
//! keys, wrong types, bad durations, zero connections, ports out of range,
//! empty or duplicate variant lists, unknown roles and sysctl names that are
//! not plain dotted names. Validation lives in the types' `Deserialize`
//! implementations so that serde_yaml_ng reports the line and column of the
//! offending value; errors name the file too. `--set key.path=value`
//! overrides are applied one at a time to the parsed document and re-checked,
//! so an error names the override that caused it.

pub mod expect;
pub mod labfile;

use crate::error::{Error, Result};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_yaml_ng::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

/// A whole scenario, as written in YAML (keys documented in README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in run directory names.
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub server: ServerSpec,
    #[serde(default)]
    pub client: ClientSpec,
    #[serde(default)]
    pub collect: CollectSpec,
    /// How many times each variant runs.
    #[serde(default = "one")]
    pub repeat: NonZeroU32,
    /// Order of the runs: `interleaved` (A B A B ..., default) or
    /// `randomized` (shuffled with `seed`), so drift does not pass for an effect.
    #[serde(default)]
    pub order: Order,
    /// Seed for `order: randomized` (default: drawn, and recorded in the report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What the scenario studies on purpose and so does not flag as an
    /// invalid run: `port_exhaustion`, `client_saturation`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Allowance>,
    /// The settings compared; the first is the baseline.
    #[serde(deserialize_with = "variant_list")]
    #[schemars(length(min = 1))]
    pub variants: Vec<Variant>,
    /// What the results must show (CI gates): a failed expectation exits 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<crate::scenario::expect::ExpectSpec>,
    /// Real hosts to run on instead of the embedded namespaces (the same
    /// keys as a `--lab` file, which takes precedence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<crate::scenario::labfile::LabSpec>,
}

/// Order of the runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    #[default]
    Interleaved,
    Randomized,
}

/// Conditions a scenario studies on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Allowance {
    /// The client running out of local ports (EADDRNOTAVAIL).
    PortExhaustion,
    /// The load generator using all the CPU it can.
    ClientSaturation,
}

fn one() -> NonZeroU32 {
    NonZeroU32::MIN
}

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
            command: Vec::new(),
            image: None,
            network: None,
            env: BTreeMap::new(),
            args: Vec::new(),
            pull: None,
        }
    }
}

fn default_port() -> Port {
    Port(8080)
}

fn default_keepalive() -> u64 {
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
    /// (it becomes the active closer); 0 = never. Builtin client only.
    pub close_after: u64,
    /// The client closes with RST (SO_LINGER 0): no TIME_WAIT on the client.
    /// Builtin client only.
    pub linger_zero: bool,
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
}

impl ClientVia {
    fn is_host(&self) -> bool {
        *self == ClientVia::Host
    }
}

/// The image of a containerized wrk (docker/wrk/build.sh builds it).
pub const DEFAULT_CLIENT_IMAGE: &str = "twlab/wrk:4.1";

impl ClientSpec {
    /// The image of a `via: docker` client.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(DEFAULT_CLIENT_IMAGE)
    }
}

impl Default for ClientSpec {
    fn default() -> Self {
        ClientSpec {
            tool: ClientTool::Builtin,
            connections: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
            threads: NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN),
            duration: HumanDuration(Duration::from_secs(90)),
            path: "/abc".to_string(),
            timeout: HumanDuration(Duration::from_secs(2)),
            close_after: 0,
            linger_zero: false,
            via: ClientVia::Host,
            image: None,
        }
    }
}

/// [`ClientSpec`] before its cross-field checks.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawClientSpec {
    /// `builtin` (default) or `wrk`.
    #[serde(default)]
    tool: Option<ClientTool>,
    /// Connections kept open (default 100).
    #[serde(default)]
    connections: Option<NonZeroU32>,
    /// Threads (default 2), at most `connections`.
    #[serde(default)]
    threads: Option<NonZeroU32>,
    /// How long the load runs (default 90s).
    #[serde(default)]
    duration: Option<HumanDuration>,
    /// Request path (default /abc, a 404 as in the seed).
    #[serde(default)]
    path: Option<String>,
    /// Per-request timeout (default 2s).
    #[serde(default)]
    timeout: Option<HumanDuration>,
    /// The client closes after N requests; 0 = never (default).
    #[serde(default)]
    close_after: Option<u64>,
    /// Close with RST instead of FIN (default false).
    #[serde(default)]
    linger_zero: Option<bool>,
    /// `host` (default: the client host's own wrk or twlab) or `docker`
    /// (wrk in a container of `image` on the client host's engine, host
    /// network; needs `tool: wrk` and a lab whose client host has `docker: true`).
    #[serde(default)]
    via: Option<ClientVia>,
    /// For `via: docker`: the wrk image (default twlab/wrk:4.1, built by
    /// docker/wrk/build.sh); its entrypoint must be wrk.
    #[serde(default)]
    image: Option<String>,
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
            via: raw.via.unwrap_or(d.via),
            image: raw.image,
        };
        if spec.via == ClientVia::Docker && spec.tool != ClientTool::Wrk {
            return Err(format!(
                "client.via: docker runs wrk in a container and needs client.tool: wrk (the {} client runs on the host only; drop `via` or set `tool: wrk`)",
                spec.tool.as_str()
            ));
        }
        if spec.image.is_some() && spec.via != ClientVia::Docker {
            return Err("client.image is only for client.via: docker".into());
        }
        if let Some(image) = &spec.image
            && (image.trim().is_empty() || image.chars().any(char::is_whitespace))
        {
            return Err(format!("client.image `{image}` is not an image reference"));
        }
        if spec.tool == ClientTool::Wrk && (spec.close_after > 0 || spec.linger_zero) {
            return Err(
                "client.close_after and client.linger_zero need client.tool: builtin (wrk cannot do them)"
                    .into(),
            );
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
        if spec.duration.0.is_zero() || spec.timeout.0.is_zero() {
            return Err("client.duration and client.timeout must be greater than zero".into());
        }
        Ok(spec)
    }
}

/// Which load generator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientTool {
    /// twlab's own generator (`twlab load`).
    Builtin,
    /// wrk, which must be installed on the client host.
    Wrk,
}

impl ClientTool {
    pub fn as_str(&self) -> &'static str {
        match self {
            ClientTool::Builtin => "builtin",
            ClientTool::Wrk => "wrk",
        }
    }
}

/// What is sampled during the load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectSpec {
    /// Time between samples (default 1s, at least 50ms).
    #[serde(default = "default_interval", deserialize_with = "interval")]
    pub interval: HumanDuration,
    /// From when counts are steady (default: 60s when the load runs longer
    /// than 70s, else the second half): TIME_WAIT grows for its first minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_after: Option<HumanDuration>,
    /// The states charted over time (default TIME_WAIT).
    #[serde(default = "default_states", deserialize_with = "state_list")]
    pub states: Vec<String>,
    /// TCP states for the server endpoint, both sides.
    #[serde(default = "yes")]
    pub sockets: bool,
    /// conntrack entries by TCP state for the endpoint, both sides.
    #[serde(default = "yes")]
    pub conntrack: bool,
}

impl Default for CollectSpec {
    fn default() -> Self {
        CollectSpec {
            interval: default_interval(),
            steady_after: None,
            states: default_states(),
            sockets: true,
            conntrack: true,
        }
    }
}

fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}

fn yes() -> bool {
    true
}

fn default_states() -> Vec<String> {
    vec!["TIME_WAIT".to_string()]
}

fn state_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    /// One state name, checked where it stands.
    struct State(String);
    impl<'de> Deserialize<'de> for State {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            checked_str(d, |s| {
                let known =
                    crate::common::names::known_state(crate::common::counts::Source::Sockets, s)
                        || crate::common::names::known_state(
                            crate::common::counts::Source::Conntrack,
                            s,
                        );
                if known {
                    Ok(State(s.to_string()))
                } else {
                    Err(format!(
                        "unknown TCP state `{s}` (use netstat's spelling: TIME_WAIT, ESTABLISHED, CLOSE_WAIT, FIN_WAIT2, ...)"
                    ))
                }
            })
        }
    }
    Ok(Vec::<State>::deserialize(d)?
        .into_iter()
        .map(|s| s.0)
        .collect())
}

fn interval<'de, D: Deserializer<'de>>(d: D) -> Result<HumanDuration, D::Error> {
    let value = HumanDuration::deserialize(d)?;
    if value.0 < Duration::from_millis(50) {
        return Err(de::Error::custom(format!(
            "collect.interval `{value}` is too short: at least 50ms"
        )));
    }
    Ok(value)
}

/// One setting compared in the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: Name,
    #[serde(default)]
    pub sysctls: RoleSysctls,
    /// Scenario scalars this variant changes, as `--set` would:
    /// `{ server.max_keepalive_requests: 1, client.linger_zero: true }`.
    /// Only `server.*` and `client.*` keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub set: BTreeMap<String, Value>,
}

/// Sysctls per role. Only `client` and `server` exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleSysctls {
    #[serde(
        default,
        deserialize_with = "sysctl_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub client: BTreeMap<SysctlName, SysctlValue>,
    #[serde(
        default,
        deserialize_with = "sysctl_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub server: BTreeMap<SysctlName, SysctlValue>,
}

impl RoleSysctls {
    pub fn for_side(
        &self,
        side: crate::common::endpoint::Side,
    ) -> &BTreeMap<SysctlName, SysctlValue> {
        match side {
            crate::common::endpoint::Side::Client => &self.client,
            crate::common::endpoint::Side::Server => &self.server,
        }
    }
}

/// A name for a scenario or variant: letters, digits, `.`, `_`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(pub String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Checked inside the visitor so that serde_yaml_ng reports the
        // position of the value itself, not of its parent mapping.
        struct V;
        impl Visitor<'_> for V {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Name, E> {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    && !s.starts_with('.');
                if ok {
                    Ok(Name(s.to_string()))
                } else {
                    Err(E::custom(format!(
                        "invalid name `{s}`: use 1 to 64 letters, digits, `.`, `_` or `-` (not starting with `.`)"
                    )))
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// A TCP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TCP port, 1 to 65535")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Port, E> {
                match u16::try_from(n) {
                    Ok(p) if p > 0 => Ok(Port(p)),
                    _ => Err(E::custom(format!(
                        "port {n} is out of range: use 1 to 65535"
                    ))),
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Port, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserialize a string and check it inside the visitor, so that a refusal
/// carries the position of the value itself (an error raised after
/// `String::deserialize` returns is reported at the parent mapping).
pub fn checked_str<'de, D, T>(
    d: D,
    check: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<F>(F);
    impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.0)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(V(check))
}

/// A string schema with a pattern and a description, for the types below
/// whose checks live in hand-written `Deserialize` impls.
fn string_schema(description: &str, pattern: &str) -> Schema {
    json_schema!({ "type": "string", "description": description, "pattern": pattern })
}

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "1 to 64 letters, digits, ., _ or -",
            "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$",
        )
    }
}

impl JsonSchema for Port {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 1, "maximum": 65535 })
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "a duration with a unit: 500ms, 10s, 5m, 1h 30m",
            "^\\s*[0-9].*[a-z]+\\s*$",
        )
    }
}

impl JsonSchema for SysctlName {
    fn schema_name() -> Cow<'static, str> {
        "SysctlName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        string_schema(
            "a plain dotted sysctl name like net.ipv4.tcp_tw_reuse",
            "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)+$",
        )
    }
}

impl JsonSchema for SysctlValue {
    fn schema_name() -> Cow<'static, str> {
        "SysctlValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["integer", "string"], "description": "a number or a string, e.g. 1 or \"32768 60999\"" })
    }
}

/// The longest duration a scenario may name (a typo like `90d` is refused
/// before a lab is built, not discovered a day later).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A duration written the human way: `500ms`, `10s`, `5m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "duration `{s}` has no unit: write e.g. 500ms, 10s or 5m"
            ));
        }
        let d = humantime::parse_duration(t)
            .map_err(|e| format!("invalid duration `{s}` ({e}): write e.g. 500ms, 10s or 5m"))?;
        if d > MAX_DURATION {
            return Err(format!(
                "duration `{s}` is longer than the 24h twlab allows"
            ));
        }
        Ok(HumanDuration(d))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 500ms, 10s or 5m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "duration `{v}` has no unit: write e.g. 500ms, 10s or 5m"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                self.visit_u64(v.unsigned_abs())
            }
        }
        d.deserialize_any(V)
    }
}

/// A sysctl name in dotted form (`net.ipv4.tcp_tw_reuse`): at least two
/// parts of letters, digits, `_` or `-`; no slashes, no empty parts, so it
/// maps to exactly one file under `/proc/sys`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SysctlName(String);

impl SysctlName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let ok = parts.len() >= 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if ok {
            Ok(SysctlName(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a plain dotted sysctl name like net.ipv4.tcp_tw_reuse"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file under /proc/sys that holds this sysctl.
    pub fn proc_path(&self) -> std::path::PathBuf {
        Path::new("/proc/sys").join(self.0.replace('.', "/"))
    }
}

impl fmt::Display for SysctlName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sysctl value: a number or a string in YAML, kept as the text written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SysctlValue(pub String);

impl SysctlValue {
    /// The value with runs of whitespace folded to one space, as compared
    /// with what the kernel reads back (`32768\t60999`).
    pub fn normalized(&self) -> String {
        normalize_sysctl(&self.0)
    }
}

/// Fold whitespace so written and read-back sysctl values compare equal.
pub fn normalize_sysctl(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SysctlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SysctlValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sysctl value (a number or a string)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SysctlValue, E> {
                if v.trim().is_empty() || v.contains('\n') {
                    return Err(E::custom("a sysctl value must be one non-empty line"));
                }
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SysctlValue, E> {
                Ok(SysctlValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A sysctl map that refuses bad names and duplicate keys (a plain map
/// would silently keep the last of two).
fn sysctl_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<SysctlName, SysctlValue>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<SysctlName, SysctlValue>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of sysctl names to values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let name = SysctlName::parse(&key).map_err(de::Error::custom)?;
                let value: SysctlValue = map.next_value()?;
                if out.insert(name, value).is_some() {
                    return Err(de::Error::custom(format!("sysctl `{key}` is set twice")));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

fn variant_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Variant>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<Variant>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of variants")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<Variant> = Vec::new();
            let mut seen = BTreeSet::new();
            while let Some(v) = seq.next_element::<Variant>()? {
                if !seen.insert(v.name.clone()) {
                    return Err(de::Error::custom(format!(
                        "variant name `{}` is used twice",
                        v.name
                    )));
                }
                out.push(v);
            }
            if out.is_empty() {
                return Err(de::Error::custom(
                    "variants is empty: list at least one variant (the first is the baseline)",
                ));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

impl Scenario {
    /// Read, validate and apply `--set` overrides. Every error is
    /// [`Error::Invalid`] and names the file (and line/column for YAML).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid(format!("{}: cannot read scenario: {e}", path.display()))
        })?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Parse scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario> {
        let scenario: Scenario = serde_yaml_ng::from_str(text).map_err(|e| {
            client_check_error(text, origin, &e).unwrap_or_else(|| yaml_error(origin, &e))
        })?;
        scenario.check(origin, Some(text))?;
        if overrides.is_empty() {
            return Ok(scenario);
        }
        let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(origin, &e))?;
        let mut result = scenario;
        for o in overrides {
            apply_override(&mut doc, o)
                .map_err(|e| Error::invalid(format!("{origin}: --set {o}: {e}")))?;
            result = serde_yaml_ng::from_value(doc.clone())
                .map_err(|e| Error::invalid(format!("{origin}: --set {o}: {e}")))?;
            result
                .check(origin, None)
                .map_err(|e| Error::invalid(format!("--set {o}: {e}")))?;
        }
        Ok(result)
    }

    /// Checks across fields: expectations name existing variants, each
    /// variant's `set` applies cleanly. With the source `text`, errors point
    /// at the line of the offending value.
    fn check(&self, origin: &str, text: Option<&str>) -> Result<()> {
        let at = |needle: &str| -> String {
            text.and_then(|t| {
                t.lines()
                    .position(|l| !l.trim_start().starts_with('#') && l.contains(needle))
                    .map(|i| format!("{origin}:{}: ", i + 1))
            })
            .unwrap_or_else(|| format!("{origin}: "))
        };
        match (self.server.kind, self.server.command.is_empty()) {
            (ServerKind::Command, true) => {
                return Err(Error::invalid(format!(
                    "{}server.kind: command needs server.command, the program and its arguments",
                    at("kind: command")
                )));
            }
            (ServerKind::Builtin | ServerKind::Docker, false) => {
                return Err(Error::invalid(format!(
                    "{}server.command is only for server.kind: command{}",
                    at("command:"),
                    if self.server.kind == ServerKind::Docker {
                        " (a container's command is server.args)"
                    } else {
                        ""
                    }
                )));
            }
            _ => {}
        }
        if self.server.kind != ServerKind::Docker {
            let docker_keys = [
                ("image", self.server.image.is_some()),
                ("network", self.server.network.is_some()),
                ("env", !self.server.env.is_empty()),
                ("args", !self.server.args.is_empty()),
                ("pull", self.server.pull.is_some()),
            ];
            if let Some((key, _)) = docker_keys.iter().find(|(_, set)| *set) {
                return Err(Error::invalid(format!(
                    "{}server.{key} is only for server.kind: docker",
                    at(&format!("{key}:"))
                )));
            }
        }
        if let Some(image) = &self.server.image
            && (image.trim().is_empty() || image.chars().any(char::is_whitespace))
        {
            return Err(Error::invalid(format!(
                "{}server.image `{image}` is not an image reference",
                at("image:")
            )));
        }
        for (i, e) in self.expect.iter().enumerate() {
            if !self.variants.iter().any(|v| v.name == e.variant) {
                return Err(Error::invalid(format!(
                    "{}expect[{i}].variant `{}` is not a variant of this scenario",
                    at(&format!("variant: {}", e.variant)),
                    e.variant
                )));
            }
            if e.stat.is_some() && !e.metric.is_state() {
                return Err(Error::invalid(format!(
                    "{}expect[{i}]: `stat` applies to state counts (side.source.STATE), not to {}",
                    at("stat:"),
                    e.metric.0
                )));
            }
            let source = e.metric.0.split('.').nth(1);
            let collected = match source {
                Some("sockets") => self.collect.sockets,
                Some("conntrack") => self.collect.conntrack,
                _ => true,
            };
            if e.metric.is_state() && !collected {
                return Err(Error::invalid(format!(
                    "{}expect[{i}]: {} is not collected (collect.{} is false)",
                    at(&e.metric.0),
                    e.metric.0,
                    source.unwrap_or_default()
                )));
            }
        }
        for v in &self.variants {
            for side in [
                crate::common::endpoint::Side::Server,
                crate::common::endpoint::Side::Client,
            ] {
                for name in v.sysctls.for_side(side).keys() {
                    if !name.as_str().starts_with("net.") {
                        return Err(Error::invalid(format!(
                            "{}variant `{}`: sysctl {name} is not a network sysctl; the embedded lab only sets per-namespace net.* sysctls and never changes the machine's own",
                            at(name.as_str()),
                            v.name
                        )));
                    }
                }
            }
            for key in v.set.keys() {
                if !(key.starts_with("server.") || key.starts_with("client.")) {
                    return Err(Error::invalid(format!(
                        "{}variant `{}`: set `{key}`: only server.* and client.* keys can vary per variant",
                        at(key),
                        v.name
                    )));
                }
            }
            // One key at a time, so an error names the key that caused it.
            for (key, value) in &v.set {
                let single = Variant {
                    set: [(key.clone(), value.clone())].into_iter().collect(),
                    ..v.clone()
                };
                self.effective(&single)
                    .map_err(|e| Error::invalid(format!("{}variant `{}`: {e}", at(key), v.name)))?;
            }
            let (_, client) = self
                .effective(v)
                .map_err(|e| Error::invalid(format!("{}variant `{}`: {e}", at("set"), v.name)))?;
            if let Some(after) = self.collect.steady_after
                && after >= client.duration
            {
                return Err(Error::invalid(format!(
                    "{}collect.steady_after ({after}) must be shorter than the load of variant `{}` ({})",
                    at("steady_after"),
                    v.name,
                    client.duration
                )));
            }
        }
        Ok(())
    }

    /// Checks that need the lab: a docker server needs a lab whose server
    /// host has a Docker engine, a docker client one whose client host has
    /// one. Errors name the scenario file and the line.
    pub fn check_lab(
        &self,
        path: &Path,
        lab: Option<&crate::scenario::labfile::LabSpec>,
    ) -> Result<()> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let docker_variant = self.variants.iter().find(|v| {
            self.effective(v)
                .is_ok_and(|(s, _)| s.kind == ServerKind::Docker)
        });
        if let Some(v) = docker_variant
            && !lab.is_some_and(|l| l.hosts.server.docker)
        {
            return Err(Error::invalid(format!(
                "{}server.kind: docker (variant `{}`) needs a lab whose server host has a Docker engine: run with --lab FILE (or a `lab:` key) whose hosts.server has `docker: true`; the embedded lab's namespaces cannot host a container",
                line_of(&text, &origin, &["server", "kind"]),
                v.name
            )));
        }
        let docker_client = self.variants.iter().find(|v| {
            self.effective(v)
                .is_ok_and(|(_, c)| c.via == ClientVia::Docker)
        });
        if let Some(v) = docker_client
            && !lab.is_some_and(|l| l.hosts.client.docker)
        {
            // The `via:` of the client block, else the variant's `set` line.
            let line = client_key_line(&text, "via").or_else(|| {
                text.lines()
                    .position(|l| !l.trim_start().starts_with('#') && l.contains("client.via"))
                    .map(|i| i + 1)
            });
            let at = match line {
                Some(line) => format!("{origin}:{line}: "),
                None => format!("{origin}: "),
            };
            return Err(Error::invalid(format!(
                "{at}client.via: docker (variant `{}`) needs a lab whose client host has a Docker engine: run with --lab FILE (or a `lab:` key) whose hosts.client has `docker: true`; the embedded lab's namespaces cannot host a container",
                v.name
            )));
        }
        Ok(())
    }

    /// Does some variant run wrk as a program on the client host (not in a
    /// container)? Then the host needs wrk installed.
    pub fn runs_wrk_on_host(&self) -> bool {
        self.variants.iter().any(|v| {
            self.effective(v)
                .is_ok_and(|(_, c)| c.tool == ClientTool::Wrk && c.via == ClientVia::Host)
        })
    }

    /// The server and client of a variant: the scenario's, with the
    /// variant's `set` applied.
    pub fn effective(
        &self,
        variant: &Variant,
    ) -> std::result::Result<(ServerSpec, ClientSpec), String> {
        if variant.set.is_empty() {
            return Ok((self.server.clone(), self.client.clone()));
        }
        let mut doc = serde_yaml_ng::to_value(self).map_err(|e| e.to_string())?;
        for (key, value) in &variant.set {
            set_path(&mut doc, key, value.clone()).map_err(|e| format!("set `{key}`: {e}"))?;
        }
        let s: Scenario = serde_yaml_ng::from_value(doc).map_err(|e| {
            let keys: Vec<&str> = variant.set.keys().map(String::as_str).collect();
            format!("set `{}`: {e}", keys.join("`, `"))
        })?;
        Ok((s.server, s.client))
    }

    /// The scenario as YAML, with every default filled in.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    pub fn baseline(&self) -> &Variant {
        &self.variants[0]
    }
}

/// The JSON Schema of scenario files, generated from the types above
/// (`twlab schema`; the committed `scenario.schema.json` must match it).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// `origin:LINE: ` for the first line holding `path[last]:` below the
/// lines holding each earlier `path[i]:` in turn (a cheap locator for
/// cross-field errors found after parsing), or `origin: ` when not found.
pub fn line_of(text: &str, origin: &str, path: &[&str]) -> String {
    let mut from = 0;
    let lines: Vec<&str> = text.lines().collect();
    for key in path {
        let needle = format!("{key}:");
        match lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| {
                let t = l.trim_start();
                !t.starts_with('#') && t.trim_start_matches("- ").starts_with(&needle)
            })
            .map(|(i, _)| i)
        {
            Some(i) => from = i,
            None => return format!("{origin}: "),
        }
    }
    format!("{origin}:{}: ", from + 1)
}

/// The line of `key:` inside the top-level `client:` block of `text`
/// (block style), 1-based.
fn client_key_line(text: &str, key: &str) -> Option<usize> {
    let needle = format!("{key}:");
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let top = t.len() == line.len();
        if top {
            inside = t.starts_with("client:");
        } else if inside && t.starts_with(&needle) {
            return Some(i + 1);
        }
    }
    None
}

/// serde reports a refusal of [`ClientSpec`]'s cross-field checks (its
/// `try_from`) at the enclosing mapping, not at the value. Such a message
/// starts with the `client.KEY` it is about: point at the line of the first
/// key it names that the `client:` block holds. `None` (keep serde's position) when the key is not
/// written there in block style or serde's position is that line already.
fn client_check_error(text: &str, origin: &str, e: &serde_yaml_ng::Error) -> Option<Error> {
    let loc = e.location()?;
    let msg = e.to_string();
    let core = msg.replacen(
        &format!(" at line {} column {}", loc.line(), loc.column()),
        "",
        1,
    );
    if !core.starts_with("client.") {
        return None;
    }
    // The first key the message names that the block holds.
    let line = core.split("client.").skip(1).find_map(|rest| {
        let key = rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()?;
        client_key_line(text, key)
    })?;
    (line != loc.line()).then(|| Error::invalid(format!("{origin}:{line}: {core}")))
}

pub fn yaml_error(origin: &str, e: &serde_yaml_ng::Error) -> Error {
    let msg = e.to_string();
    match e.location() {
        Some(loc) => {
            // serde_yaml_ng appends " at line L column C"; keep the message
            // itself and put the position where editors and terminals link it.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let core = msg.replacen(&suffix, "", 1);
            Error::invalid(format!("{origin}:{}:{}: {core}", loc.line(), loc.column()))
        }
        None => Error::invalid(format!("{origin}: {msg}")),
    }
}

/// Apply one `key.path=value` override to the YAML document. The value is
/// read as a YAML scalar (`10s`, `5`, `true`). Sequence elements are named
/// by index or, for lists of named items like variants, by name. Below
/// `sysctls.client` / `sysctls.server` the rest of the path is one sysctl name.
pub fn apply_override(doc: &mut Value, spec: &str) -> Result<(), String> {
    let (path, raw) = spec
        .split_once('=')
        .ok_or_else(|| "expected key.path=value".to_string())?;
    let value: Value = serde_yaml_ng::from_str(raw).map_err(|e| format!("bad value: {e}"))?;
    set_path(doc, path, value)
}

/// Set the scalar at a dotted `path` of the document (see [`apply_override`]).
pub fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty key path".into());
    }
    if matches!(value, Value::Mapping(_) | Value::Sequence(_)) {
        return Err("only scalar values can be set".into());
    }
    let segments: Vec<&str> = path.split('.').collect();
    let mut node = doc;
    let mut i = 0;
    while i < segments.len() {
        let seg = segments[i];
        let under_sysctls = i >= 2
            && segments[i - 2] == "sysctls"
            && matches!(segments[i - 1], "client" | "server");
        let key = if under_sysctls {
            let rest = segments[i..].join(".");
            i = segments.len() - 1;
            rest
        } else {
            seg.to_string()
        };
        let last = i == segments.len() - 1;
        node = match node {
            Value::Mapping(map) => {
                let k = Value::String(key.clone());
                if last {
                    if let Some(existing) = map.get(&k)
                        && matches!(existing, Value::Mapping(_) | Value::Sequence(_))
                    {
                        return Err(format!("`{path}` is not a scalar"));
                    }
                    map.insert(k, value);
                    return Ok(());
                }
                if !map.contains_key(&k) {
                    map.insert(k.clone(), Value::Mapping(Default::default()));
                }
                map.get_mut(&k).ok_or_else(|| format!("no key `{key}`"))?
            }
            Value::Sequence(seq) => {
                let idx = match key.parse::<usize>() {
                    Ok(n) => n,
                    Err(_) => seq
                        .iter()
                        .position(|item| item.get("name").and_then(Value::as_str) == Some(&key))
                        .ok_or_else(|| format!("no element named `{key}`"))?,
                };
                let len = seq.len();
                let item = seq
                    .get_mut(idx)
                    .ok_or_else(|| format!("index {idx} is out of range (the list has {len})"))?;
                if last {
                    *item = value;
                    return Ok(());
                }
                item
            }
            Value::Null if !last => {
                *node = Value::Mapping(Default::default());
                continue;
            }
            _ => return Err(format!("`{key}` is inside a scalar")),
        };
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../scenarios/tw_reuse.yaml");

    #[test]
    fn the_shipped_seed_scenario_is_valid() {
        let s = Scenario::parse(SEED, "tw_reuse.yaml", &[]).unwrap();
        assert_eq!(s.name.as_str(), "tw_reuse");
        assert_eq!(s.client.connections.get(), 100);
        assert_eq!(s.client.threads.get(), 2);
        assert_eq!(s.client.path, "/abc");
        assert_eq!(s.server.max_keepalive_requests, 100);
        assert_eq!(s.variants.len(), 2);
        assert_eq!(s.baseline().name.as_str(), "reuse-off");
    }

    #[test]
    fn overrides_set_scalars_by_path_and_variant_name() {
        let s = Scenario::parse(
            SEED,
            "seed",
            &[
                "client.duration=10s".into(),
                "client.tool=wrk".into(),
                "variants.reuse-on.sysctls.client.net.ipv4.tcp_tw_reuse=2".into(),
                "description=short run".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.client.duration.0, Duration::from_secs(10));
        assert_eq!(s.client.tool, ClientTool::Wrk);
        let reuse = SysctlName::parse("net.ipv4.tcp_tw_reuse").unwrap();
        assert_eq!(s.variants[1].sysctls.client[&reuse].0, "2");
        assert_eq!(s.description.as_deref(), Some("short run"));
    }

    #[test]
    fn a_bad_override_is_named_in_the_error() {
        let err = Scenario::parse(SEED, "seed.yaml", &["client.connections=0".into()]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("seed.yaml: --set client.connections=0:"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 2);
        let err = Scenario::parse(SEED, "seed.yaml", &["variants=3".into()]).unwrap_err();
        assert!(err.to_string().contains("not a scalar"), "{err}");
        let err = Scenario::parse(SEED, "seed.yaml", &["nonsense".into()]).unwrap_err();
        assert!(err.to_string().contains("key.path=value"), "{err}");
    }

    #[test]
    fn client_via_docker_needs_wrk_and_is_refused_at_the_via_line() {
        let text = "name: x\nclient:\n  connections: 10\n  via: docker\nvariants:\n  - name: a\n";
        let err = Scenario::parse(text, "s.yaml", &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("s.yaml:4: client.via: docker") && msg.contains("client.tool: wrk"),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 2);
        let ok = Scenario::parse(
            "name: x\nclient: { tool: wrk, via: docker }\nvariants:\n  - name: a\n",
            "s.yaml",
            &[],
        )
        .unwrap();
        assert_eq!(ok.client.via, ClientVia::Docker);
        assert_eq!(ok.client.image(), DEFAULT_CLIENT_IMAGE);
        let again = Scenario::parse(&ok.to_yaml(), "resolved", &[]).unwrap();
        assert_eq!(again, ok);
        let err = Scenario::parse(
            "name: x\nclient:\n  tool: wrk\n  via: docker\n  image: 'a b'\nvariants:\n  - name: a\n",
            "s.yaml",
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("s.yaml:5: client.image `a b` is not an image reference"),
            "{err}"
        );
    }

    #[test]
    fn a_client_check_points_at_the_first_key_the_block_holds() {
        let text = "name: x\nclient:\n  tool: wrk\n  linger_zero: true\nserver:\n  image: x\nvariants:\n  - name: a\n";
        let msg = Scenario::parse(text, "s.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("s.yaml:4: client.close_after and client.linger_zero"),
            "{msg}"
        );
        // Errors serde places itself keep their line and column.
        let text = "name: x\nclient:\n  duration: 5\nvariants:\n  - name: a\n";
        let msg = Scenario::parse(text, "s.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("s.yaml:3:13: client.duration:"), "{msg}");
    }

    #[test]
    fn check_lab_refuses_a_docker_client_without_a_client_engine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        let text = "name: x\nclient:\n  tool: wrk\n  via: docker\nvariants:\n  - name: a\n";
        std::fs::write(&path, text).unwrap();
        let s = Scenario::load(&path, &[]).unwrap();
        let lab = |server: bool, client: bool| {
            let mut l: crate::scenario::labfile::LabSpec =
                serde_yaml_ng::from_str("hosts:\n  server: { address: 127.0.0.1 }\n  client: {}\n")
                    .unwrap();
            l.hosts.server.docker = server;
            l.hosts.client.docker = client;
            l
        };
        for l in [None, Some(lab(true, false))] {
            let err = s.check_lab(&path, l.as_ref()).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("{}:4: client.via: docker", path.display()))
                    && msg.contains("hosts.client has `docker: true`"),
                "{msg}"
            );
            assert_eq!(err.exit_code(), 2);
        }
        s.check_lab(&path, Some(&lab(false, true))).unwrap();
    }

    #[test]
    fn resolved_yaml_round_trips() {
        let s = Scenario::parse(SEED, "seed", &[]).unwrap();
        let again = Scenario::parse(&s.to_yaml(), "resolved", &[]).unwrap();
        assert_eq!(s, again);
    }
}
