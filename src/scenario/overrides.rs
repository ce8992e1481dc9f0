//! `--set key.path=value`: one override at a time on the parsed document,
//! by path (`client.duration`) or by variant name.

use crate::error::Result;
use serde_yaml_ng::Value;

/// Apply one `key.path=value` override to the YAML document. The value is
/// read as a YAML scalar (`10s`, `5`, `true`). Sequence elements are named
/// by index or, for lists of named items like variants, by name. Below
/// `sysctls.client` / `sysctls.server` the rest of the path is one sysctl name.
pub fn apply_override(doc: &mut Value, spec: &str) -> Result<(), String> {
    let (path, raw) = spec
        .split_once('=')
        .ok_or_else(|| "expected key.path=value".to_string())?;
    // Measured before it is parsed, as a file is: libyaml's time grows
    // with the square of the nesting, and an argument may be 128 KiB.
    if super::too_deep_at(raw).is_some() {
        return Err(format!(
            "the value nests deeper than {} levels (MAX_NESTING_DEPTH): a --set value is one scalar",
            super::MAX_NESTING_DEPTH
        ));
    }
    let value: Value = serde_yaml_ng::from_str(raw).map_err(|e| format!("bad value: {e}"))?;
    set_path(doc, path, value)
}
/// When `spec`'s key is one the document's `matrix:` sweeps, replace that
/// axis's list by the one value given (the command line wins) and return
/// true; otherwise change nothing and return false.
pub fn pin_matrix_axis(doc: &mut Value, spec: &str) -> Result<bool, String> {
    let Some((path, raw)) = spec.split_once('=') else {
        return Ok(false);
    };
    let Some(axis) = doc
        .get_mut("matrix")
        .and_then(Value::as_mapping_mut)
        .and_then(|m| m.get_mut(path))
    else {
        return Ok(false);
    };
    if super::too_deep_at(raw).is_some() {
        return Err(format!(
            "the value nests deeper than {} levels (MAX_NESTING_DEPTH): a --set value is one scalar",
            super::MAX_NESTING_DEPTH
        ));
    }
    let value: Value = serde_yaml_ng::from_str(raw).map_err(|e| format!("bad value: {e}"))?;
    if matches!(value, Value::Mapping(_) | Value::Sequence(_)) {
        return Err("only scalar values can be set".into());
    }
    *axis = Value::Sequence(vec![value]);
    Ok(true)
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
