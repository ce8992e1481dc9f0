//! The small value types of a scenario, each checked where serde reads it
//! so an error carries the line and column: names, ports, durations,
//! sysctl names and values, the variant list.

use super::Variant;
use crate::error::Result;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

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
pub(crate) fn string_schema(description: &str, pattern: &str) -> Schema {
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
pub(crate) fn sysctl_map<'de, D: Deserializer<'de>>(
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
pub(crate) fn variant_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Variant>, D::Error> {
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
