//! `scenario.yaml` as a flat map of scalars, so two resolved scenarios are
//! compared setting by setting (`client.duration`: `1m 30s` vs `10s`)
//! rather than as two texts that differ somewhere.

use crate::error::{Error, Result};
use crate::results;
use std::collections::BTreeMap;
use std::path::Path;

/// A scalar's path in a YAML document: mapping keys, list items by their
/// `name` when they have one (as `--set` addresses variants), else by index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct YamlPath(pub(super) Vec<String>);

/// Every scalar of a YAML document by path.
pub(super) fn flatten_yaml(text: &str, dir: &Path) -> Result<BTreeMap<YamlPath, String>> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        Error::invalid(format!(
            "{}: {e}",
            dir.join(results::SCENARIO_FILE).display()
        ))
    })?;
    let mut out = BTreeMap::new();
    flatten_into(&value, &mut Vec::new(), &mut out);
    Ok(out)
}

fn flatten_into(
    value: &serde_yaml_ng::Value,
    path: &mut Vec<String>,
    out: &mut BTreeMap<YamlPath, String>,
) {
    use serde_yaml_ng::Value;
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                path.push(scalar_text(k).unwrap_or_else(|| format!("{k:?}")));
                flatten_into(v, path, out);
                path.pop();
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = item
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                path.push(name);
                flatten_into(item, path, out);
                path.pop();
            }
        }
        Value::Tagged(tagged) => flatten_into(&tagged.value, path, out),
        scalar => {
            let text = scalar_text(scalar).unwrap_or_default();
            out.insert(YamlPath(path.clone()), text);
        }
    }
}

fn scalar_text(v: &serde_yaml_ng::Value) -> Option<String> {
    use serde_yaml_ng::Value;
    match v {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}
