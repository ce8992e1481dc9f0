//! Unit tests of the parent module (matrix).

use super::*;

const SWEEP: &str = "name: sweep
client:
  connections: 10
  duration: 5s
matrix:
  client.rate: [200, 400, 800]
  sysctls.client.net.ipv4.tcp_tw_reuse:
    - 0
    - 1
";

fn parse(text: &str, set: &[&str]) -> Result<Scenario> {
    let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    Scenario::parse(text, "s.yaml", &set)
}

fn names(s: &Scenario) -> Vec<&str> {
    s.variants.iter().map(|v| v.name.as_str()).collect()
}

fn refused(text: &str, set: &[&str]) -> String {
    let e = parse(text, set).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    e.to_string()
}

#[test]
fn the_cross_product_becomes_named_variants_with_their_params() {
    let s = parse(SWEEP, &[]).unwrap();
    assert_eq!(
        names(&s),
        [
            "rate-200.tcp_tw_reuse-0",
            "rate-200.tcp_tw_reuse-1",
            "rate-400.tcp_tw_reuse-0",
            "rate-400.tcp_tw_reuse-1",
            "rate-800.tcp_tw_reuse-0",
            "rate-800.tcp_tw_reuse-1",
        ]
    );
    let v = &s.variants[3];
    assert_eq!(v.set["client.rate"], Value::from(400));
    let reuse = SysctlName::parse("net.ipv4.tcp_tw_reuse").unwrap();
    assert_eq!(v.sysctls.client[&reuse].0, "1");
    assert!(v.sysctls.server.is_empty());
    let keys: Vec<&str> = v.params.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        keys,
        ["client.rate", "sysctls.client.net.ipv4.tcp_tw_reuse"]
    );
    assert_eq!(v.params["client.rate"], Value::from(400));
    // The generated variant runs what its values say.
    let (_, client) = s.effective(v).unwrap();
    assert_eq!(client.rate.map(|r| r.to_string()), Some("400".into()));
    assert!(s.matrix.is_empty());
    assert_eq!(
        s.sweep_axes(),
        [
            ("client.rate".to_string(), 3),
            ("sysctls.client.net.ipv4.tcp_tw_reuse".to_string(), 2)
        ]
    );
    // The resolved scenario (scenario.yaml of a run) reads back the same.
    assert_eq!(Scenario::parse(&s.to_yaml(), "resolved", &[]).unwrap(), s);
}

#[test]
fn listed_variants_are_one_more_axis_and_keep_their_settings() {
    let text = format!(
        "{SWEEP}variants:\n  - name: keep\n  - name: close\n    set:\n      client.linger_zero: true\n"
    );
    let s = parse(&text, &[]).unwrap();
    assert_eq!(s.variants.len(), 12);
    assert_eq!(s.baseline().name.as_str(), "keep.rate-200.tcp_tw_reuse-0");
    let v = &s.variants[7];
    assert_eq!(v.name.as_str(), "close.rate-200.tcp_tw_reuse-1");
    assert_eq!(v.params[VARIANT_PARAM], Value::from("close"));
    assert_eq!(v.set["client.linger_zero"], Value::from(true));
    assert_eq!(v.set["client.rate"], Value::from(200));
    // One listed variant is the base of every point, not an axis.
    let one =
        format!("{SWEEP}variants:\n  - name: only\n    set:\n      client.linger_zero: true\n");
    let s = parse(&one, &[]).unwrap();
    assert_eq!(s.variants[0].name.as_str(), "rate-200.tcp_tw_reuse-0");
    assert!(!s.variants[0].params.contains_key(VARIANT_PARAM));
    assert_eq!(s.variants[0].set["client.linger_zero"], Value::from(true));
}

#[test]
fn names_that_would_clash_fall_back_to_point_numbers() {
    let text = "name: x\nmatrix:\n  client.path: ['/a:b', '/a_b']\n";
    let s = parse(text, &[]).unwrap();
    assert_eq!(names(&s), ["point-1", "point-2"]);
    assert_eq!(s.variants[1].params["client.path"], Value::from("/a_b"));
    // Two axes with the same last segment are told apart by role.
    let text = "name: x\nmatrix:\n  sysctls.client.net.ipv4.tcp_tw_reuse: [0]\n  sysctls.server.net.ipv4.tcp_tw_reuse: [1]\n";
    let s = parse(text, &[]).unwrap();
    assert_eq!(names(&s), ["client-tcp_tw_reuse-0.server-tcp_tw_reuse-1"]);
}

#[test]
fn bad_matrices_are_refused_at_their_line() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "  client.rate: [200, 400, 800]",
            "  client.nonsense: [1, 2]",
            "s.yaml:6: matrix key `client.nonsense` is not a scenario key: set `client.nonsense`: unknown field `nonsense`",
        ),
        (
            "  client.rate: [200, 400, 800]",
            "  name: [a, b]",
            "s.yaml:6: matrix key `name`",
        ),
        (
            "  client.rate: [200, 400, 800]",
            "  client.rate: []",
            "s.yaml:6: matrix.client.rate: the list is empty",
        ),
        (
            "  client.rate: [200, 400, 800]",
            "  client.rate: 200",
            "s.yaml:6: matrix.client.rate: expected a list",
        ),
        (
            "  client.rate: [200, 400, 800]",
            "  client.rate: [200, fast]",
            "s.yaml:6: matrix.client.rate[1]: set `client.rate`",
        ),
        (
            "  client.rate: [200, 400, 800]",
            "  client.rate: [200, 200]",
            "s.yaml:6: matrix.client.rate[1]: `200` is listed twice",
        ),
        (
            "  client.rate: [200, 400, 800]",
            "  client.rate: [[1]]",
            "s.yaml:6: matrix.client.rate[0]: a value must be one",
        ),
        (
            "    - 1",
            "    - \"a\\nb\"",
            "s.yaml:9: matrix.sysctls.client.net.ipv4.tcp_tw_reuse[1]: ",
        ),
        (
            "sysctls.client.net.ipv4",
            "sysctls.host.net.ipv4",
            "s.yaml:7: matrix key `sysctls.host.net.ipv4.tcp_tw_reuse`: sysctls are per role",
        ),
        (
            "sysctls.client.net.ipv4",
            "sysctls.client.kernel.ipv4",
            "s.yaml:7: matrix key `sysctls.client.kernel.ipv4.tcp_tw_reuse`: sysctl kernel.ipv4.tcp_tw_reuse is not a network sysctl",
        ),
        ("client.connections", "client.connections", ""),
    ];
    for (from, to, want) in cases {
        if want.is_empty() {
            continue;
        }
        let text = SWEEP.replace(from, to);
        assert_ne!(text, SWEEP, "{from}");
        let e = refused(&text, &[]);
        assert!(e.starts_with(want), "{to}: {e}");
    }
    // Wrong type in a block list: the value's own line.
    let text = SWEEP.replace(
        "    - 1",
        "    - 1\n  client.connections:\n    - 10\n    - none",
    );
    let e = refused(&text, &[]);
    assert!(
        e.starts_with("s.yaml:12: matrix.client.connections[1]: "),
        "{e}"
    );
}

#[test]
fn a_product_over_the_cap_is_refused_at_the_matrix_line() {
    let values: Vec<String> = (1..=51).map(|n| (n * 10).to_string()).collect();
    let text = format!(
        "name: x\nvariants:\n  - name: a\nmatrix:\n  client.rate: [{}]\n  client.linger_zero: [false, true]\n",
        values.join(", ")
    );
    let e = refused(&text, &[]);
    assert!(
        e.starts_with("s.yaml:4: matrix: 51 x 2 = 102 variants is more than the 100"),
        "{e}"
    );
    // At the cap it is fine.
    let ok = text.replace(", 510]", "]");
    assert_eq!(parse(&ok, &[]).unwrap().variants.len(), 100);
}

#[test]
fn a_listed_variant_setting_a_swept_key_is_refused() {
    let text = format!("{SWEEP}variants:\n  - name: a\n    set:\n      client.rate: 100\n");
    let e = refused(&text, &[]);
    assert!(
        e.starts_with("s.yaml:6: variant `a` sets client.rate, which the matrix sweeps"),
        "{e}"
    );
    let text = format!("{SWEEP}variants:\n  - name: a\n    params: {{ x: 1 }}\n");
    let e = refused(&text, &[]);
    assert!(
        e.starts_with("s.yaml:12: variant `a`: params is written by twlab"),
        "{e}"
    );
}

#[test]
fn summary_json_gives_each_variant_its_params_in_matrix_order() {
    let s = parse(SWEEP, &[]).unwrap();
    let v = crate::results::VariantSummary::empty(&s.variants[5]);
    let json = serde_json::to_string(&v).unwrap();
    assert!(
        json.contains(r#""params":{"client.rate":800,"sysctls.client.net.ipv4.tcp_tw_reuse":1}"#),
        "{json}"
    );
    let back: crate::results::VariantSummary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, v);
    // Without a matrix there is no `params` key: old summaries and
    // snapshots stay byte-identical.
    let plain = parse("name: x\nvariants:\n  - name: a\n", &[]).unwrap();
    let json =
        serde_json::to_string(&crate::results::VariantSummary::empty(&plain.variants[0])).unwrap();
    assert!(!json.contains("params"), "{json}");
}

#[test]
fn a_matrix_or_variants_is_needed() {
    let e = refused("name: x\n", &[]);
    assert!(e.contains("missing field `variants`"), "{e}");
}

#[test]
fn set_pins_a_swept_axis_and_changes_the_base_for_other_keys() {
    let s = parse(SWEEP, &["client.rate=300", "client.connections=20"]).unwrap();
    assert_eq!(
        names(&s),
        ["rate-300.tcp_tw_reuse-0", "rate-300.tcp_tw_reuse-1"]
    );
    for v in &s.variants {
        let (_, c) = s.effective(v).unwrap();
        assert_eq!(c.rate.map(|r| r.to_string()), Some("300".into()));
        assert_eq!(c.connections.get(), 20);
    }
    let s = parse(SWEEP, &["sysctls.client.net.ipv4.tcp_tw_reuse=2"]).unwrap();
    assert_eq!(s.variants.len(), 3);
    assert_eq!(s.variants[0].name.as_str(), "rate-200.tcp_tw_reuse-2");
    // A pinned value gets the same checks as a listed one.
    let e = refused(SWEEP, &["client.rate=fast"]);
    assert!(
        e.starts_with("--set client.rate=fast: s.yaml: matrix.client.rate[0]: set `client.rate`"),
        "{e}"
    );
}

#[test]
fn expectations_name_generated_variants() {
    let text = format!(
        "{SWEEP}expect:\n  - variant: rate-800.tcp_tw_reuse-1\n    metric: client.errors\n    change: \"< 1\"\n"
    );
    let s = parse(&text, &[]);
    let text_bad = text.replace("rate-800.tcp_tw_reuse-1", "rate-900");
    let e = refused(&text_bad, &[]);
    assert!(e.contains("`rate-900` is not a variant"), "{e}");
    s.unwrap();
}
