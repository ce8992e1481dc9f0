//! Unit tests of the parent module (spec).

use crate::scenario::Scenario;

/// `Scenario::parse`'s error for `text`, which must be refused.
fn refused(text: &str) -> String {
    Scenario::parse(text, "s.yaml", &[])
        .expect_err("refused")
        .to_string()
}

#[test]
fn a_rate_and_close_delays_are_refused_at_their_line_when_they_cannot_be_kept() {
    let wrk = refused(
        "name: x\nclient:\n  tool: wrk\n  connections: 10\n  rate: 500\nvariants:\n  - name: a\n",
    );
    assert!(
            wrk.starts_with(
                "s.yaml:5: client.rate is not supported by client.tool: wrk; the tools that support it: builtin, httperf"
            ),
            "{wrk}"
        );
    for bad in ["0", "-5", "1e9"] {
        let msg = refused(&format!(
            "name: x\nclient:\n  connections: 10\n  rate: {bad}\nvariants:\n  - name: a\n"
        ));
        assert!(msg.starts_with("s.yaml:4: client.rate is"), "{bad}: {msg}");
    }
    let long =
        refused("name: x\nclient:\n  timeout: 1s\n  close_delay: 2s\nvariants:\n  - name: a\n");
    assert!(
        long.starts_with(
            "s.yaml:4: client.close_delay (2s) must be shorter than client.timeout (1s)"
        ),
        "{long}"
    );
    let negative = refused("name: x\nclient:\n  close_delay: -1s\nvariants:\n  - name: a\n");
    assert!(negative.starts_with("s.yaml:3:"), "{negative}");
    let server = refused(
        "name: x\nserver:\n  close_delay: 5s\nclient:\n  timeout: 2s\nvariants:\n  - name: a\n",
    );
    assert!(
            server.starts_with("s.yaml:3: variant `a`: server.close_delay (5s) must be shorter than client.timeout (2s)"),
            "{server}"
        );
    let docker =
        refused("name: x\nserver:\n  kind: docker\n  close_delay: 1s\nvariants:\n  - name: a\n");
    assert!(
        docker.starts_with("s.yaml:4: server.close_delay is only for server.kind: builtin"),
        "{docker}"
    );
    // A variant's `set:` is checked as its own: named at its line.
    let set = refused(
        "name: x\nvariants:\n  - name: a\n  - name: b\n    set: { server.close_delay: 3s }\n",
    );
    assert!(set.starts_with("s.yaml:5: variant `b`"), "{set}");
}

#[test]
fn a_rate_and_close_delays_are_kept_and_written_only_when_set() {
    let s = Scenario::parse(
            "name: x\nserver:\n  close_delay: 100ms\nclient:\n  rate: 2000\n  close_delay: 50ms\n  close_after: 1\nvariants:\n  - name: a\n",
            "s.yaml",
            &[],
        )
        .expect("valid");
    assert_eq!(s.client.rate, Some(2000.0));
    assert_eq!(s.client.close_delay.0.as_millis(), 50);
    assert_eq!(s.server.close_delay.0.as_millis(), 100);
    let plain = Scenario::parse("name: x\nvariants:\n  - name: a\n", "s.yaml", &[])
        .expect("valid")
        .to_yaml();
    assert!(
        !plain.contains("rate") && !plain.contains("close_delay"),
        "{plain}"
    );
}
