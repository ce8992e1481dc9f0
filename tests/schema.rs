//! The committed JSON Schema of scenario files must be what the types
//! generate: editors complete scenario files from it, so it may not drift.
//! Regenerate with `cargo run -- schema > scenario.schema.json`.

#[test]
fn committed_schema_matches_the_types() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenario.schema.json"))
            .expect("scenario.schema.json is committed");
    let generated = twlab::scenario::json_schema();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "scenario.schema.json is stale: run `cargo run -- schema > scenario.schema.json` and commit it"
    );
}

#[test]
fn the_schema_describes_the_scenario_keys() {
    let schema: serde_json::Value =
        serde_json::from_str(&twlab::scenario::json_schema()).expect("json");
    let props = &schema["properties"];
    for key in [
        "name", "server", "client", "collect", "repeat", "order", "seed", "variants", "expect",
        "allow", "matrix",
    ] {
        assert!(props.get(key).is_some(), "schema lacks `{key}`");
    }
    // `variants` may be left out when a `matrix:` generates them.
    assert_eq!(schema["required"], serde_json::json!(["name"]));
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
}
