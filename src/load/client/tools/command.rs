//! `client.tool: command`: any load generator, run from an argument
//! template (`client.command`, no shell), so k6, JMeter or a script of
//! one's own drive the same lab with the same counts.
//!
//! # The contract
//!
//! twlab fills in these placeholders in every argument (each `{name}`
//! wherever it stands, so `--url={url}` works):
//!
//! | placeholder | value |
//! |---|---|
//! | `{url}` | `http://ADDRESS:PORT/path` |
//! | `{address}`, `{port}` | the server's endpoint (an IPv6 address bare, without brackets) |
//! | `{path}` | `client.path` |
//! | `{connections}`, `{threads}` | `client.connections`, `client.threads` |
//! | `{duration_secs}`, `{duration}` | the duration in seconds (`90`, `1.5`) and as written (`1m 30s`) |
//! | `{timeout_secs}` | `client.timeout` in seconds |
//! | `{rate}` | `client.rate` (requests/s) |
//! | `{close_after}` | `client.close_after` |
//!
//! A key the scenario asks for (a rate, a connection count other than the
//! default…) whose placeholder the template does not hold is refused at
//! that key's line: the command would not get it. The program must run
//! for the duration and end; on a graceful stop it gets SIGINT.
//!
//! It may print a JSON result on stdout, as its whole stdout or as its
//! last line, in the schema `twlab schema --client-result` prints
//! ([`ClientResult`]). Without one the run still has every count (sockets,
//! conntrack, the server's), but no client figures: its [`ClientStats`]
//! holds no requests and a note saying so, which the report shows.

use super::{Key, LoadTool, Target};
use crate::common::counts::{ClientStats, Counts, ErrorCounts, Latency};
use crate::scenario::ClientSpec;
use schemars::JsonSchema;
use serde::Deserialize;

pub struct Command;

/// The placeholders of a template and the key each carries (`None`: a
/// key every tool must honour, or none).
const PLACEHOLDERS: [(&str, Option<Key>); 11] = [
    ("{url}", None),
    ("{address}", None),
    ("{port}", None),
    ("{path}", None),
    ("{connections}", Some(Key::Connections)),
    ("{threads}", Some(Key::Threads)),
    ("{duration_secs}", None),
    ("{duration}", None),
    ("{timeout_secs}", Some(Key::Timeout)),
    ("{rate}", Some(Key::Rate)),
    ("{close_after}", Some(Key::CloseAfter)),
];

impl LoadTool for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn describe(&self) -> &'static str {
        "Any program (`client.command`, an argument template with {url}, {connections}, {duration_secs}, {rate}, …); figures from its optional JSON result (`twlab schema --client-result`)."
    }

    fn program(&self) -> Option<&'static str> {
        None
    }

    fn install(&self) -> &'static str {
        "the program named by client.command"
    }

    fn version_argv(&self) -> Option<Vec<String>> {
        None
    }

    fn supports(&self, key: Key) -> bool {
        PLACEHOLDERS.iter().any(|(_, k)| *k == Some(key))
            || matches!(key, Key::Duration | Key::Path)
    }

    fn check(&self, spec: &ClientSpec) -> Result<(), String> {
        if spec.command.is_empty() {
            return Err(
                "client.tool: command needs client.command: the program and its arguments, e.g. [k6, run, --vus, '{connections}', --duration, '{duration_secs}s', script.js]"
                    .into(),
            );
        }
        let joined = spec.command.join(" ");
        for (placeholder, key) in PLACEHOLDERS {
            if let Some(key) = key
                && key.asked(spec)
                && !joined.contains(placeholder)
            {
                return Err(format!(
                    "client.{} is set, but client.command has no {placeholder}: the command would not get it",
                    key.name()
                ));
            }
        }
        if let Some(unknown) = unknown_placeholder(&joined) {
            return Err(format!(
                "client.command holds `{unknown}`, which is no placeholder; they are {}",
                PLACEHOLDERS.map(|(p, _)| p).join(", ")
            ));
        }
        Ok(())
    }

    fn argv(&self, spec: &ClientSpec, target: &Target<'_>) -> Vec<String> {
        let values = [
            target.url(&spec.path),
            target.endpoint.addr.to_string(),
            target.endpoint.port.to_string(),
            spec.path.clone(),
            spec.connections.to_string(),
            spec.threads.to_string(),
            spec.duration.0.as_secs_f64().to_string(),
            spec.duration.to_string(),
            spec.timeout.0.as_secs_f64().to_string(),
            spec.rate.map(|r| r.to_string()).unwrap_or_default(),
            spec.close_after.to_string(),
        ];
        spec.command
            .iter()
            .map(|arg| {
                PLACEHOLDERS
                    .iter()
                    .zip(&values)
                    .fold(arg.clone(), |a, ((p, _), v)| a.replace(p, v))
            })
            .collect()
    }

    fn reports_figures(&self, stdout: &str) -> bool {
        result_text(stdout).is_some()
    }

    fn parse(&self, stdout: &str, _spec: &ClientSpec) -> Result<ClientStats, String> {
        match result_text(stdout) {
            Some(json) => parse_client_result(json),
            None => Ok(no_figures()),
        }
    }
}

/// A `{word}` in `text` that is no placeholder (a typo would otherwise
/// reach the program as it is).
fn unknown_placeholder(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        let end = tail.find('}')?;
        let word = &tail[..=end];
        if word.len() > 2
            && word[1..end]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
            && !PLACEHOLDERS.iter().any(|(p, _)| *p == word)
        {
            return Some(word.to_string());
        }
        rest = &tail[1..];
    }
    None
}

/// The JSON result in a command's stdout: all of it, or its last
/// non-empty line, when that is a JSON object.
fn result_text(stdout: &str) -> Option<&str> {
    let whole = stdout.trim();
    if whole.starts_with('{') && serde_json::from_str::<serde_json::Value>(whole).is_ok() {
        return Some(whole);
    }
    let last = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    last.starts_with('{').then_some(last)
}

/// What a run without a result reports: no figures, and why (its
/// duration is twlab's clock's, set by the runner).
pub fn no_figures() -> ClientStats {
    ClientStats {
        tool: "command".into(),
        notes: vec![NO_FIGURES.into()],
        not_measured: super::CLIENT_METRICS
            .iter()
            .map(|m| m.to_string())
            .collect(),
        ..Default::default()
    }
}

/// The note of a command run without a JSON result.
pub const NO_FIGURES: &str = "the command printed no JSON result (twlab schema --client-result): this run has counts but no client figures — its requests, rates and latencies are not measured, not zero";

/// What a `command` load may print on stdout (`twlab schema
/// --client-result`): only `requests` and `duration_secs` are required.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientResult {
    /// Completed requests (responses received).
    pub requests: u64,
    /// How long the load ran, in seconds.
    pub duration_secs: f64,
    /// Responses by status class: `{"2xx": 10, "4xx": 3}`.
    #[serde(default)]
    pub responses_by_class: Option<Counts>,
    /// TCP connections the program opened, when it counts them.
    #[serde(default)]
    pub connections_opened: Option<u64>,
    /// Failed requests by kind.
    #[serde(default)]
    pub errors: Option<ResultErrors>,
    /// Latency of completed requests, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<ResultLatency>,
    /// CPU time the program used (user + system), in seconds.
    #[serde(default)]
    pub cpu_secs: Option<f64>,
    /// Anything the reader of the report must know.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Failed requests by kind (each defaults to 0).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultErrors {
    #[serde(default)]
    pub connect: u64,
    #[serde(default)]
    pub read: u64,
    #[serde(default)]
    pub write: u64,
    #[serde(default)]
    pub timeout: u64,
}

/// Latency in milliseconds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultLatency {
    pub mean: f64,
    pub p50: f64,
    #[serde(default)]
    pub p75: Option<f64>,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The JSON Schema of [`ClientResult`] (`twlab schema --client-result`).
pub fn client_result_schema() -> String {
    let schema = schemars::schema_for!(ClientResult);
    serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// A command's JSON result as [`ClientStats`] (tool `command`).
pub fn parse_client_result(json: &str) -> Result<ClientStats, String> {
    let r: ClientResult = serde_json::from_str(json).map_err(|e| {
        format!("its JSON result does not follow `twlab schema --client-result`: {e}")
    })?;
    let finite = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("its JSON result has {name} {v}: not a time"))
        }
    };
    let duration_secs = finite("duration_secs", r.duration_secs)?;
    let mut notes = r.notes;
    let mut not_measured = Vec::new();
    let latency = match r.latency_ms {
        Some(l) => Latency {
            mean_ms: finite("latency_ms.mean", l.mean)?,
            p50_ms: finite("latency_ms.p50", l.p50)?,
            p75_ms: l.p75.map(|v| finite("latency_ms.p75", v)).transpose()?,
            p90_ms: finite("latency_ms.p90", l.p90)?,
            p99_ms: finite("latency_ms.p99", l.p99)?,
            max_ms: finite("latency_ms.max", l.max)?,
        },
        None => {
            notes.push(
                "the command's result has no latency: its latency figures are not measured, not zero"
                    .into(),
            );
            not_measured.extend(
                super::CLIENT_METRICS
                    .iter()
                    .filter(|m| m.starts_with("client.latency."))
                    .map(|m| m.to_string()),
            );
            Latency::default()
        }
    };
    let non_2xx_3xx = r.responses_by_class.as_ref().map_or(0, |c| {
        c.iter()
            .filter(|(k, _)| !k.starts_with('2') && !k.starts_with('3'))
            .map(|(_, n)| n)
            .sum()
    });
    let e = r.errors.unwrap_or_default();
    Ok(ClientStats {
        tool: "command".into(),
        duration_secs,
        requests: r.requests,
        requests_per_sec: if duration_secs > 0.0 {
            super::text::round_to(r.requests as f64 / duration_secs, 100.0)
        } else {
            0.0
        },
        responses_by_class: r.responses_by_class,
        non_2xx_3xx,
        connections_opened: r.connections_opened,
        errors: ErrorCounts {
            connect: e.connect,
            connect_by_errno: None,
            read: e.read,
            write: e.write,
            timeout: e.timeout,
        },
        latency,
        cpu_secs: r.cpu_secs.map(|v| finite("cpu_secs", v)).transpose()?,
        notes,
        schedule: None,
        not_measured,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn spec(client: &str) -> Result<ClientSpec, String> {
        Scenario::parse(
            &format!("name: x\nclient:\n{client}variants: [{{ name: a }}]\n"),
            "s.yaml",
            &[],
        )
        .map(|s| s.client)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn placeholders_are_filled_in_each_argument() {
        let s = spec("  tool: command\n  connections: 7\n  rate: 300\n  duration: 1m 30s\n  command: [k6, run, '--vus={connections}', --rate, '{rate}', '{duration_secs}s', '{url}', '{address}', '{port}']\n").expect("valid");
        let exe = std::path::PathBuf::from("twlab");
        let t = Target {
            endpoint: crate::common::endpoint::Endpoint::new([198, 18, 0, 1].into(), 8080),
            exe: &exe,
        };
        assert_eq!(
            Command.argv(&s, &t),
            [
                "k6",
                "run",
                "--vus=7",
                "--rate",
                "300",
                "90s",
                "http://198.18.0.1:8080/abc",
                "198.18.0.1",
                "8080"
            ]
        );
    }

    #[test]
    fn an_asked_key_without_its_placeholder_and_a_typo_are_refused_at_their_line() {
        let e = spec("  tool: command\n  rate: 300\n  command: [prog, '{url}']\n")
            .expect_err("no {rate}");
        assert!(
            e.starts_with("s.yaml:4: client.rate is set, but client.command has no {rate}"),
            "{e}"
        );
        let e = spec("  tool: command\n  command: [prog, '{adress}']\n").expect_err("typo");
        assert!(e.contains("`{adress}`, which is no placeholder"), "{e}");
        let e = spec("  tool: command\n").expect_err("no command");
        assert!(
            e.starts_with("s.yaml:3: client.tool: command needs client.command"),
            "{e}"
        );
        let e = spec("  tool: wrk\n  command: [x]\n").expect_err("not command");
        assert!(
            e.starts_with("s.yaml:4: client.command is only for client.tool: command"),
            "{e}"
        );
    }

    #[test]
    fn a_json_result_gives_figures_and_none_gives_a_note() {
        let s = ClientSpec::default();
        let out = "warming up\n{\"requests\": 300, \"duration_secs\": 3, \"responses_by_class\": {\"4xx\": 300}, \"latency_ms\": {\"mean\": 1.5, \"p50\": 1, \"p90\": 2, \"p99\": 4, \"max\": 9}}\n";
        assert!(Command.reports_figures(out));
        let r = Command.parse(out, &s).expect("result");
        assert_eq!(
            (r.requests, r.requests_per_sec, r.non_2xx_3xx),
            (300, 100.0, 300)
        );
        assert_eq!(r.latency.p99_ms, 4.0);
        let none = Command
            .parse("Running 3s test\nsome text\n", &s)
            .expect("no result");
        assert!(!Command.reports_figures("Running 3s test\n"));
        assert_eq!(none.requests, 0);
        assert_eq!(none.notes, [NO_FIGURES]);
        let bad = Command
            .parse("{\"requests\": 1}", &s)
            .expect_err("no duration");
        assert!(bad.contains("twlab schema --client-result"), "{bad}");
        let neg = Command
            .parse("{\"requests\": 1, \"duration_secs\": -1}", &s)
            .expect_err("negative");
        assert!(neg.contains("duration_secs"), "{neg}");
    }

    #[test]
    fn the_result_schema_names_its_required_keys() {
        let schema: serde_json::Value =
            serde_json::from_str(&client_result_schema()).expect("json");
        assert_eq!(
            schema["required"],
            serde_json::json!(["requests", "duration_secs"])
        );
    }
}
