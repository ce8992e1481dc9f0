//! `twlab schema`: the JSON Schema of the scenario file, generated from the
//! same types that parse it (scenario.schema.json is this output).

use super::Scenario;

/// The JSON Schema of scenario files, generated from the types above
/// (`twlab schema`; the committed `scenario.schema.json` must match it).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
