//! Property tests: the parsers of input files and of the text of outside
//! programs never panic. Any YAML text, arbitrary or a valid file mutated,
//! given to the scenario or lab-file parser either parses or is refused as
//! invalid input (exit 2 class); ss, netstat, conntrack and every load
//! tool's output (wrk, httperf, ab, hey, h2load, oha, a command's JSON
//! result) of any shape is counted or refused, never a panic.

use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use twlab::common::endpoint::{Endpoint, Side};
use twlab::measure::kernel_counters;
use twlab::scenario::Scenario;
use twlab::scenario::labfile::LabSpec;

const SEED: &str = include_str!("../scenarios/tw_reuse.yaml");
const EVERYTHING: &str = include_str!("fixtures/scenarios/valid/everything.yaml");
const LAB: &str = "hosts:\n  server:\n    ssh: admin@192.168.100.12\n    sudo: true\n    address: 192.168.100.12\n    docker: true\n  client:\n    ssh: admin@192.168.100.21\n    port: 2222\n    twlab: /usr/local/bin/twlab\ncooldown: 10s\n";

/// Scenario text that uses every kind of value: mutations of it reach
/// every check, not only the YAML parser.
const RICH: &str = "name: rich\nserver:\n  kind: command\n  command: [/bin/sleep, '1']\n  port: 8080\nclient:\n  tool: builtin\n  connections: 10\n  threads: 2\n  duration: 5s\n  path: /abc\nrepeat: 2\norder: randomized\nseed: 7\nvariants:\n  - name: a\n    sysctls:\n      client: { net.ipv4.tcp_tw_reuse: 1 }\n  - name: b\n    set: { server.kind: builtin, client.close_after: 3 }\nlab:\n  hosts:\n    server: { address: 10.0.0.1 }\n    client: { ssh: c@h }\n";

/// Pieces that YAML and twlab give a meaning to, spliced into valid text.
const PIECES: &[&str] = &[
    ":",
    " ",
    "\n",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "!t ",
    "!!binary ",
    "'",
    "\"",
    "#",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">\n",
    "\t",
    "\\0",
    "\\e",
    "0",
    "-1",
    "4294967296",
    "99999999999999999999999",
    "1e999",
    ".nan",
    "~",
    "null",
    "true",
    "::",
    "0.0.0.0",
    "::ffff:1.2.3.4",
    "tomcat:",
    "$(id)",
    ";",
    "../",
    "server.kind",
    "command",
    "docker",
    "\u{feff}",
    "\u{85}",
    "é",
    "<<: *a\n",
];

fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    let edits = prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0usize..8,
            prop::sample::select(PIECES),
        ),
        1..6,
    );
    edits.prop_map(move |edits| {
        let mut text = base.to_string();
        for (at, cut, piece) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            let mut j = (i + cut).min(text.len());
            while !text.is_char_boundary(j) {
                j -= 1;
            }
            text.replace_range(i..j, piece);
        }
        text
    })
}

/// The scenario parser returns a scenario or an invalid-input error.
fn scenario_is_parsed_or_refused(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = Scenario::parse(text, "p.yaml", &[]) {
        prop_assert_eq!(e.exit_code(), 2, "{}", e);
        prop_assert!(e.to_string().starts_with("p.yaml"), "{}", e);
    }
    Ok(())
}

fn lab_is_parsed_or_refused(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = LabSpec::parse(text, "l.yaml") {
        prop_assert_eq!(e.exit_code(), 2, "{}", e);
        prop_assert!(e.to_string().starts_with("l.yaml"), "{}", e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_the_scenario_parser(text in "\\PC{0,300}") {
        scenario_is_parsed_or_refused(&text)?;
    }

    #[test]
    fn yaml_shaped_text_never_panics_the_scenario_parser(
        text in "([a-z._]{1,12}: ?([-0-9a-z:./\\[\\]{}&*!, ]{0,20})\n {0,4}){1,12}"
    ) {
        scenario_is_parsed_or_refused(&text)?;
    }

    #[test]
    fn mutated_valid_scenarios_never_panic(
        text in prop_oneof![mutated(SEED), mutated(EVERYTHING), mutated(RICH)]
    ) {
        scenario_is_parsed_or_refused(&text)?;
        // Overrides go through the same checks.
        if let Err(e) = Scenario::parse(&text, "p.yaml", &["client.connections=3".into(), "repeat=2".into()]) {
            prop_assert_eq!(e.exit_code(), 2, "{}", e);
        }
    }

    #[test]
    fn arbitrary_and_mutated_lab_files_never_panic(
        text in prop_oneof!["\\PC{0,200}", mutated(LAB)]
    ) {
        lab_is_parsed_or_refused(&text)?;
    }

    #[test]
    fn ss_netstat_and_conntrack_text_never_panics(
        text in prop_oneof![
            "\\PC{0,400}",
            "((tcp|tcp6|ESTAB|TIME-WAIT|TIME_WAIT|src=|dst=|sport=|dport=|[0-9.:\\[\\]*%]{1,20}| |\t){0,12}\n){0,10}",
        ],
        port in any::<u16>(),
    ) {
        let endpoint = Endpoint::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), port);
        for side in [Side::Server, Side::Client] {
            let _ = twlab::measure::sockets_text::parse_ss(&text, endpoint, side);
            let _ = twlab::measure::sockets_text::parse_netstat(&text, endpoint, side);
        }
        let _ = twlab::measure::conntrack::count_states(&text, endpoint);
    }

    #[test]
    fn wrk_output_never_panics(
        text in prop_oneof![
            "\\PC{0,400}",
            "((Running|Requests/sec:|Transfer/sec:|Latency|Req/Sec|Socket errors:|connect|read|write|timeout|requests in|[0-9.]{1,8}(us|ms|s|m|k|M|%|MB|KB)?|,| |\n){0,40})",
        ]
    ) {
        let _ = twlab::load::client::wrk::parse_wrk_output(&text);
    }

    /// Every load tool's parser (httperf, ab, hey, h2load, oha, a command's
    /// JSON result, …) takes text of any shape, and text made of its own
    /// report's words, without a panic.
    #[test]
    fn every_load_tool_output_never_panics(
        text in prop_oneof![
            "\\PC{0,400}",
            "((Total:|connections|requests|replies|test-duration|Reply status:|Errors:|total|client-timo|connrefused|Reply time \\[ms\\]:|response|CPU time \\[s\\]:|user|system|[1-5]xx=[0-9]{1,3}|s|[0-9.]{1,8}| |\n){0,40})",
            "((Time taken for tests:|Complete requests:|Failed requests:|\\(Connect:|Receive:|Length:|Exceptions:|Non-2xx responses:|Requests per second:|Total:|[0-9]{1,3}%|seconds|[0-9.]{1,8}|,|\\)| |\n){0,40})",
            "((Summary:|  Total:|  Slowest:|  Average:|  Requests/sec:|Latency distribution:|Status code distribution:|Error distribution:|  \\[[0-9]{1,3}\\]|responses|% in|secs|NaN|[0-9.]{1,8}| |\t|\n){0,40})",
            "((finished in|requests:|status codes:|time for request:|total|started|done|errored|timeout|[0-9]xx|req/s|[0-9.]{1,8}(us|ms|s)?|,| |\n){0,40})",
            "(\\{|\\}|\\[|\\]|\"summary\"|\"total\"|\"requestsPerSec\"|\"average\"|\"slowest\"|\"latencyPercentiles\"|\"p50\"|\"p90\"|\"p99\"|\"statusCodeDistribution\"|\"errorDistribution\"|\"requests\"|\"duration_secs\"|\"latency_ms\"|\"404\"|null|-?[0-9.e]{1,8}|:|,| ){0,40}",
        ]
    ) {
        let spec = twlab::scenario::ClientSpec::default();
        for tool in twlab::load::client::TOOLS {
            let _ = tool.parse(&text, &spec);
            let _ = tool.reports_figures(&text);
            let _ = tool.version(&text);
        }
    }
}

/// The outside programs' real output, cut anywhere and with lines
/// dropped or repeated, is still counted or refused without a panic.
#[test]
fn recorded_outputs_cut_anywhere_never_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let endpoint = Endpoint::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 8080);
    let spec = twlab::scenario::ClientSpec::default();
    for dir in [
        "ss",
        "conntrack",
        "wrk",
        "kernel",
        "httperf",
        "ab",
        "hey",
        "h2load",
        "oha",
    ] {
        for entry in std::fs::read_dir(root.join(dir))
            .expect("fixtures")
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).expect("fixture");
            // At every line end, just before it, and every 97 bytes.
            let cuts = text
                .match_indices('\n')
                .flat_map(|(i, _)| [i.saturating_sub(1), i, i + 1])
                .chain((0..text.len()).step_by(97))
                .filter(|i| *i <= text.len() && text.is_char_boundary(*i));
            for cut in cuts {
                let t = &text[..cut];
                let _ = twlab::measure::sockets_text::parse_ss(t, endpoint, Side::Server);
                let _ = twlab::measure::sockets_text::parse_netstat(t, endpoint, Side::Client);
                let _ = twlab::measure::conntrack::count_states(t, endpoint);
                let _ = twlab::load::client::wrk::parse_wrk_output(t);
                for tool in twlab::load::client::TOOLS {
                    let _ = tool.parse(t, &spec);
                }
                let _ = kernel_counters::parse_pairs(t);
                let _ = kernel_counters::parse_ct_stat(t);
                let _ = kernel_counters::parse_bundle(&format!(
                    "@@ netstat\n{t}\n@@ nf_conntrack\n{t}"
                ));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The kernel's counter files (`/proc/net/netstat`, `snmp`,
    /// `stat/nf_conntrack`, and the bundle an SSH host prints) of any
    /// shape are parsed or refused with an error, never a panic.
    #[test]
    fn kernel_counter_text_never_panics(
        text in "\\PC{0,300}",
        shaped in "((TcpExt|IpExt|Tcp|@@ [a-z_.]{1,12}|entries)[: ]{0,2}([A-Za-z0-9 -]{0,30})\n){0,10}",
    ) {
        for t in [&text, &shaped] {
            let _ = kernel_counters::parse_pairs(t);
            let _ = kernel_counters::parse_ct_stat(t);
            let _ = kernel_counters::parse_bundle(t);
        }
    }

    /// Valid pairs of lines always parse, whatever the names and values:
    /// fields are found by name, and every name of a prefix comes back.
    #[test]
    fn kernel_counter_pairs_are_found_by_name(
        fields in proptest::collection::btree_map("[A-Z][A-Za-z0-9]{0,12}", any::<u64>(), 1..30),
    ) {
        let names: Vec<&String> = fields.keys().collect();
        let values: Vec<String> = fields.values().map(u64::to_string).collect();
        let text = format!(
            "TcpExt: {}\nTcpExt: {}\n",
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
            values.join(" ")
        );
        let parsed = kernel_counters::parse_pairs(&text).map_err(TestCaseError::fail)?;
        for (k, v) in &fields {
            prop_assert_eq!(parsed.get(&format!("TcpExt.{k}")), Some(v));
        }
    }
}
