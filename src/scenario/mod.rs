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
mod input;
pub mod labfile;
mod loaded;
mod matrix;
mod overrides;
mod parse;
mod schema;
mod spec;
mod validate;
mod values;

pub use input::*;
pub use loaded::*;
pub use matrix::VARIANT_PARAM;
pub use overrides::*;
pub use parse::*;
pub use schema::*;
pub use spec::*;
pub use values::*;

use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;

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
    /// How many times each variant runs (at most 1000).
    #[serde(default = "one", deserialize_with = "repeat_count")]
    #[schemars(range(min = 1, max = 1000))]
    pub repeat: NonZeroU32,
    /// Order of the runs: `interleaved` (A B A B ..., default) or
    /// `randomized` (shuffled with `seed`), so drift does not pass for an effect.
    #[serde(default)]
    pub order: Order,
    /// Seed for `order: randomized` (default: drawn, and recorded in the report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What the scenario studies on purpose and so does not flag as an
    /// invalid run: `port_exhaustion`, `client_saturation`, `missed_rate`,
    /// `conntrack_drops`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Allowance>,
    /// The settings compared; the first is the baseline. Optional with a
    /// `matrix:`, where two or more listed variants are one more axis.
    #[serde(default, deserialize_with = "variant_list")]
    #[schemars(length(min = 1))]
    pub variants: Vec<Variant>,
    /// A sweep: scenario keys (`client.rate`, any key a variant's `set:`
    /// takes) and per-role sysctls (`sysctls.client.NAME`), each with a list
    /// of values; the cross product becomes the variants (at most
    /// MAX_VARIANTS). Expanded when the scenario is parsed, so a parsed
    /// scenario's is always empty.
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    #[schemars(with = "BTreeMap<String, Vec<serde_json::Value>>")]
    pub matrix: Mapping,
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
    /// An open-loop load (`client.rate`) achieving less than 99% of its
    /// rate (the server or the ports could not keep up).
    MissedRate,
    /// conntrack refusing flows (its `drop`, `early_drop` or
    /// `insert_failed` statistics moved): a full table is what a scenario
    /// about `nf_conntrack_max` studies.
    ConntrackDrops,
}

fn one() -> NonZeroU32 {
    NonZeroU32::MIN
}

fn repeat_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    bounded_count(
        d,
        "repeat",
        MAX_REPEAT,
        "each repetition builds a lab and loads it for client.duration (MAX_REPEAT)",
    )
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
    /// The parameter values of a variant a `matrix:` generated, in the
    /// matrix's order (twlab writes them; summary.json and the report's
    /// sweep section read them).
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: Mapping,
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

/// `text` as an error message shows it: whole up to 120 bytes, else its
/// start and its length.
fn shorten(text: &str) -> String {
    if text.len() <= 120 {
        return text.to_string();
    }
    let mut end = 80;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

impl Scenario {
    /// Read, validate and apply `--set` overrides. Every error is
    /// [`Error::Invalid`] and names the file (and line/column for YAML).
    /// The file is read once ([`read_input`]); a caller that needs its text
    /// too (for [`Scenario::check_lab`]) reads it with [`Scenario::read`]
    /// and calls [`Scenario::parse`].
    pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario> {
        let text = Self::read(path)?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// The text of a scenario file, read once, within the input limits.
    pub fn read(path: &Path) -> Result<String> {
        read_input(path, "scenario")
    }

    /// Parse scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario> {
        guard(text, origin)?;
        let mut scenario: Scenario = serde_yaml_ng::from_str(text).map_err(|e| {
            client_check_error(text, origin, &e).unwrap_or_else(|| yaml_error(origin, &e))
        })?;
        scenario.expand_matrix(origin, Some(text))?;
        scenario.check(origin, Some(text))?;
        if overrides.is_empty() {
            return Ok(scenario);
        }
        let mut doc: Value = serde_yaml_ng::from_str(text).map_err(|e| yaml_error(origin, &e))?;
        let mut result = scenario;
        for o in overrides {
            // What the errors repeat of it: a long value would bury the
            // message (and fill a pipe that is read only at the end).
            let o_shown = shorten(o);
            // A key the matrix sweeps: the command line pins that axis.
            let pinned = pin_matrix_axis(&mut doc, o)
                .map_err(|e| Error::invalid(format!("{origin}: --set {o_shown}: {e}")))?;
            if !pinned {
                apply_override(&mut doc, o)
                    .map_err(|e| Error::invalid(format!("{origin}: --set {o_shown}: {e}")))?;
            }
            result = serde_yaml_ng::from_value(doc.clone())
                .map_err(|e| Error::invalid(format!("{origin}: --set {o_shown}: {e}")))?;
            result
                .expand_matrix(origin, None)
                .map_err(|e| Error::invalid(format!("--set {o_shown}: {e}")))?;
            result
                .check(origin, None)
                .map_err(|e| Error::invalid(format!("--set {o_shown}: {e}")))?;
        }
        Ok(result)
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
        let s = self.effective_scenario(variant)?;
        Ok((s.server, s.client))
    }

    /// The whole scenario as one variant runs it: this one with the
    /// variant's `set` applied (what [`Scenario::effective`] returns the
    /// server and client of).
    pub fn effective_scenario(&self, variant: &Variant) -> std::result::Result<Scenario, String> {
        if variant.set.is_empty() {
            return Ok(self.clone());
        }
        let mut doc = serde_yaml_ng::to_value(self).map_err(|e| e.to_string())?;
        for (key, value) in &variant.set {
            set_path(&mut doc, key, value.clone()).map_err(|e| format!("set `{key}`: {e}"))?;
        }
        serde_yaml_ng::from_value(doc).map_err(|e| {
            let keys: Vec<&str> = variant.set.keys().map(String::as_str).collect();
            format!("set `{}`: {e}", keys.join("`, `"))
        })
    }

    /// The scenario as YAML, with every default filled in.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    pub fn baseline(&self) -> &Variant {
        &self.variants[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEED: &str = include_str!("../../scenarios/tw_reuse.yaml");

    /// Issue 23, item 7: an empty client value was the default (a 90 s
    /// run for `--set client.duration=`); it is refused like the empty
    /// value of any other key, at its line, in every place it is written.
    #[test]
    fn an_empty_client_value_is_refused_not_defaulted() {
        for empty in ["", "~", "null"] {
            for key in ["duration", "timeout", "path", "tool", "close_after"] {
                let o = format!("client.{key}={empty}");
                let e = Scenario::parse(SEED, "s.yaml", std::slice::from_ref(&o))
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.contains(&format!("client.{key} has an empty value")),
                    "{o}: {e}"
                );
            }
            let file = SEED.replace("duration: 90s", &format!("duration: {empty}"));
            let line = SEED
                .lines()
                .position(|l| l.contains("duration: 90s"))
                .unwrap()
                + 1;
            let e = Scenario::parse(&file, "s.yaml", &[])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("s.yaml:{line}:"))
                    && e.contains("client.duration has an empty value"),
                "{e}"
            );
            let variant = format!(
                "name: e\nvariants:\n  - name: a\n  - name: b\n    set:\n      client.duration: {empty}\n"
            );
            let e = Scenario::parse(&variant, "s.yaml", &[])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("s.yaml:6:") && e.contains("client.duration has an empty value"),
                "{e}"
            );
        }
    }

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
        assert_eq!(s.client.tool.as_str(), "wrk");
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
            msg.starts_with("s.yaml:4: client.via: docker")
                && msg.contains("client.tool: builtin has none (the tools with one: wrk)"),
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
            msg.starts_with("s.yaml:4: client.linger_zero is not supported by client.tool: wrk"),
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
        let origin = path.display().to_string();
        let lab = |server: bool, client: bool| {
            let mut l: crate::scenario::labfile::LabSpec =
                serde_yaml_ng::from_str("hosts:\n  server: { address: 127.0.0.1 }\n  client: {}\n")
                    .unwrap();
            l.hosts.server.docker = server;
            if let Some(c) = l.hosts.client.as_mut() {
                c.docker = client;
            }
            l
        };
        for l in [None, Some(lab(true, false))] {
            let err = s.check_lab(&origin, text, l.as_ref()).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("{}:4: client.via: docker", path.display()))
                    && msg.contains("hosts.client has `docker: true`"),
                "{msg}"
            );
            assert_eq!(err.exit_code(), 2);
        }
        s.check_lab(&origin, text, Some(&lab(false, true))).unwrap();
    }

    #[test]
    fn check_lab_refuses_a_swarm_client_without_a_manager_or_with_client_sysctls() {
        let text = "name: x\nclient:\n  hosts: 3\n  via: swarm\nvariants:\n  - name: a\n";
        let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
        assert_eq!(s.client.image(), crate::scenario::DEFAULT_TWLAB_IMAGE);
        let lab = |swarm: bool| {
            let client = if swarm {
                "{ docker: true, swarm: {} }"
            } else {
                "{ docker: true }"
            };
            let l: crate::scenario::labfile::LabSpec =
                serde_yaml_ng::from_str(&format!("hosts:\n  server: {{}}\n  client: {client}\n"))
                    .unwrap();
            l
        };
        for l in [None, Some(lab(false))] {
            let err = s.check_lab("s.yaml", text, l.as_ref()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("s.yaml:4: client.via: swarm"), "{msg}");
            assert_eq!(err.exit_code(), 2);
        }
        s.check_lab("s.yaml", text, Some(&lab(true))).unwrap();
        let text = "name: x\nclient:\n  via: swarm\nvariants:\n  - name: a\n    sysctls:\n      client: { net.ipv4.tcp_tw_reuse: 1 }\n";
        let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
        let msg = s
            .check_lab("s.yaml", text, Some(&lab(true)))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("sets client sysctls"), "{msg}");
    }

    #[test]
    fn check_lab_refuses_more_client_hosts_than_the_lab_lists_at_the_variant_line() {
        let lab: crate::scenario::labfile::LabSpec = serde_yaml_ng::from_str(
            "hosts:\n  server: { ssh: root@s, address: 198.18.1.1 }\n  clients:\n    - ssh: root@c1\n    - ssh: root@c2\n",
        )
        .unwrap();
        let text = "name: x\nvariants:\n  - name: one\n  - name: two\n    set: { client.hosts: 2 }\n  - name: three\n    set:\n      client.hosts: 3\n";
        let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
        let err = s.check_lab("s.yaml", text, Some(&lab)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(
            msg.starts_with("s.yaml:8: variant `three` asks for client.hosts: 3, but the lab file lists 2 client hosts (hosts.clients)"),
            "{msg}"
        );
        // Two of two is fine; the base's `client.hosts` is named when no
        // variant sets it.
        let text = "name: x\nclient:\n  hosts: 2\nvariants:\n  - name: a\n";
        let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
        s.check_lab("s.yaml", text, Some(&lab)).unwrap();
        let one: crate::scenario::labfile::LabSpec = serde_yaml_ng::from_str(
            "hosts:\n  server: { address: 198.18.1.1 }\n  client: { ssh: root@c }\n",
        )
        .unwrap();
        let msg = s
            .check_lab("s.yaml", text, Some(&one))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("s.yaml:3: variant `a` asks for client.hosts: 2, but the lab file lists 1 client host (hosts.client)"),
            "{msg}"
        );
        // A client container runs on one host only.
        let text =
            "name: x\nclient:\n  tool: wrk\n  via: docker\n  hosts: 2\nvariants:\n  - name: a\n";
        let s = Scenario::parse(text, "s.yaml", &[]).unwrap();
        let mut lab = lab;
        lab.hosts.clients[0].docker = true;
        let msg = s
            .check_lab("s.yaml", text, Some(&lab))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "s.yaml:5: variant `a` asks for client.hosts: 2 with client.via: docker"
            ),
            "{msg}"
        );
    }

    #[test]
    fn each_variant_is_checked_as_it_runs_at_its_own_line() {
        // The base is valid; variant `b` makes a command server with no
        // command, which `run` would only find at its second variant.
        let text = "name: x\nvariants:\n  - name: a\n    set: { client.duration: 5s }\n  - name: b\n    set:\n      client.duration: 5s\n      server.kind: command\n";
        let e = Scenario::parse(text, "s.yaml", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.yaml:8: variant `b`: server.kind: command needs server.command, the program and its arguments"
        );
        assert_eq!(e.exit_code(), 2);
        // Flow style, and a docker key on a variant whose server is builtin.
        let text = "name: x\nserver: { kind: docker }\nvariants:\n  - { name: a }\n  - { name: b, set: { server.kind: builtin } }\nlab:\n  hosts:\n    server: { docker: true }\n    client: {}\n";
        assert!(Scenario::parse(text, "s.yaml", &[]).is_ok());
        let text = text.replace(
            "server: { kind: docker }",
            "server: { kind: docker, image: 'tomcat:9' }",
        );
        let e = Scenario::parse(&text, "s.yaml", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "s.yaml:5: variant `b`: server.image is only for server.kind: docker"
        );
    }

    #[test]
    fn an_inline_lab_gets_the_lab_file_checks() {
        let text = "name: x\nvariants:\n  - name: a\nlab:\n  hosts:\n    server:\n      identity: /k\n    client: {}\n";
        let e = Scenario::parse(text, "s.yaml", &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("s.yaml:7: lab.hosts.server.identity is only for an SSH host"),
            "{e}"
        );
        let text = "name: x\nvariants:\n  - name: a\nlab:\n  hosts:\n    server: { ssh: a@h }\n    client: {}\n";
        let e = Scenario::parse(text, "s.yaml", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.yaml:6: lab.hosts.server.address is needed"),
            "{e}"
        );
    }

    #[test]
    fn counts_are_capped_where_they_are_written() {
        for (text, want) in [
            (
                "name: x\nrepeat: 1001\nvariants:\n  - name: a\n",
                "s.yaml:2:9: repeat: repeat 1001 is more than the 1000",
            ),
            (
                "name: x\nclient: { connections: 65536 }\nvariants:\n  - name: a\n",
                "s.yaml:2:24: client.connections: client.connections 65536 is more than the 65535",
            ),
            (
                "name: x\nclient: { connections: 9000, threads: 1025 }\nvariants:\n  - name: a\n",
                "s.yaml:2:39: client.threads: client.threads 1025 is more than the 1024",
            ),
        ] {
            let e = Scenario::parse(text, "s.yaml", &[])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{e}");
        }
        let ok = "name: x\nrepeat: 1000\nclient: { connections: 65535, threads: 1024 }\nvariants:\n  - name: a\n";
        Scenario::parse(ok, "s.yaml", &[]).unwrap();
        let e = Scenario::parse(ok, "s.yaml", &["repeat=4294967295".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("repeat 4294967295 is more than the 1000"),
            "{e}"
        );
    }

    #[test]
    fn image_references_follow_dockers_grammar() {
        for ok in [
            "tomcat",
            "tomcat:8.5-alpine",
            "twlab/wrk:4.1",
            "localhost:5000/a/b:c",
            "registry.example.com/x_y__z/a-b.c:1_0",
            "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "tomcat:",
            "Tomcat",
            "a b",
            "-v/:/h",
            "../x",
            "x;y",
            "$(id)",
            "x:@sha256:1",
            "a//b",
            "a:.x",
        ] {
            assert!(image_problem(bad).is_some(), "{bad}");
        }
    }

    /// `collect.client_lines` is `total` unless chosen, and only a choice
    /// is written into a resolved scenario (old runs' stay as they were).
    #[test]
    fn client_lines_default_to_total_and_are_written_only_when_chosen() {
        let s = Scenario::parse(SEED, "seed", &[]).unwrap();
        assert_eq!(s.collect.client_lines, ClientLines::Total);
        assert!(!s.to_yaml().contains("client_lines"), "{}", s.to_yaml());
        let set = ["collect.client_lines=per_host".to_string()];
        let s = Scenario::parse(SEED, "seed", &set).unwrap();
        assert_eq!(s.collect.client_lines, ClientLines::PerHost);
        assert!(
            s.to_yaml().contains("client_lines: per_host"),
            "{}",
            s.to_yaml()
        );
        assert_eq!(Scenario::parse(&s.to_yaml(), "resolved", &[]).unwrap(), s);
        let bad = ["collect.client_lines=each".to_string()];
        let err = Scenario::parse(SEED, "seed", &bad).unwrap_err().to_string();
        assert!(err.contains("total") && err.contains("per_host"), "{err}");
    }

    #[test]
    fn resolved_yaml_round_trips() {
        let s = Scenario::parse(SEED, "seed", &[]).unwrap();
        let again = Scenario::parse(&s.to_yaml(), "resolved", &[]).unwrap();
        assert_eq!(s, again);
    }
}
