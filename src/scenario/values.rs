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
                if v.chars().any(|c| c.is_control() && c != '\t') {
                    return Err(E::custom(
                        "a sysctl value holds a control character: write numbers or words separated by spaces",
                    ));
                }
                if v.len() > MAX_SYSCTL_VALUE_BYTES {
                    return Err(E::custom(format!(
                        "a sysctl value of {} bytes is longer than the {MAX_SYSCTL_VALUE_BYTES} the kernel reads (MAX_SYSCTL_VALUE_BYTES)",
                        v.len()
                    )));
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
/// The most connections a client may keep open: 65 535. One client address
/// can hold at most one connection per local port to one server address and
/// port, and there are 65 535 ports (the default ephemeral range,
/// `net.ipv4.ip_local_port_range`, is 28 232 of them); more is not a load
/// the kernel can carry, only a typo.
pub const MAX_CONNECTIONS: u32 = 65_535;
/// The most client threads: 1 024. Each is an OS thread (wrk's `-t`, or a
/// worker of the builtin client) with its own stack; far more threads than
/// the machine has cores measure the scheduler, not TIME_WAIT.
pub const MAX_THREADS: u32 = 1_024;
/// The most client hosts one run may have (`client.hosts`): 64. The
/// embedded lab gives each a namespace and an address in 198.18.0.0/24;
/// each runs a whole load generator, and 64 of them are far more than a
/// machine's cores can drive at once.
pub const MAX_CLIENT_HOSTS: u32 = 64;
/// The most times a variant may repeat: 1 000. Each repetition builds a lab
/// and loads it for `client.duration`; the plan of every run is made up
/// front, so `repeat: 4294967295` would allocate gigabytes before the first.
pub const MAX_REPEAT: u32 = 1_000;
/// The most variants a scenario may compare: 100.
pub const MAX_VARIANTS: usize = 100;
/// The most bytes of a program and its arguments (`server.command`, a
/// container's `server.args`), counting one separator per argument: 64 KiB.
/// A local command must fit the kernel's ARG_MAX (2 MiB on a default 8 MiB
/// stack, shared with the environment); an SSH host receives it as one
/// quoted command line in one SSH packet (OpenSSH: 256 KiB), and quoting
/// can make it up to four times longer.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// The longest request path: 8 KiB, Tomcat's default `maxHttpHeaderSize`
/// (a longer request line gets 400 Bad Request, not the seed's 404).
pub const MAX_PATH_BYTES: usize = 8 * 1024;
/// The longest sysctl value: 4 095 bytes. The kernel reads one page of a
/// write to `/proc/sys` and a string sysctl holds less.
pub const MAX_SYSCTL_VALUE_BYTES: usize = 4095;

/// A positive count at most `max`, checked where it is written.
pub(crate) fn bounded_count<'de, D: Deserializer<'de>>(
    d: D,
    key: &'static str,
    max: u32,
    why: &'static str,
) -> Result<std::num::NonZeroU32, D::Error> {
    struct V {
        key: &'static str,
        max: u32,
        why: &'static str,
    }
    impl Visitor<'_> for V {
        type Value = std::num::NonZeroU32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a nonzero u32")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            self.visit_u128(u128::from(n))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            self.visit_i128(i128::from(n))
        }
        fn visit_u128<E: de::Error>(self, n: u128) -> Result<Self::Value, E> {
            if n == 0 {
                return Err(E::invalid_value(de::Unexpected::Unsigned(0), &self));
            }
            match u32::try_from(n).ok().and_then(std::num::NonZeroU32::new) {
                Some(v) if v.get() <= self.max => Ok(v),
                _ => Err(E::custom(format!(
                    "{} {n} is more than the {} twlab allows: {}",
                    self.key, self.max, self.why
                ))),
            }
        }
        fn visit_i128<E: de::Error>(self, n: i128) -> Result<Self::Value, E> {
            match (u128::try_from(n), i64::try_from(n)) {
                (Ok(n), _) => self.visit_u128(n),
                (Err(_), Ok(small)) => Err(E::invalid_value(de::Unexpected::Signed(small), &self)),
                (Err(_), Err(_)) => Err(E::custom(format!(
                    "invalid value: integer `{n}`, expected a nonzero u32"
                ))),
            }
        }
    }
    d.deserialize_any(V { key, max, why })
}

/// What is wrong with a Docker image reference (`[registry/]name[:tag][@digest]`),
/// or `None`. Docker's own grammar, so a mistake is refused here rather than
/// by the engine mid-run, and nothing a shell or the engine would read as
/// something else (`$(...)`, `;`, spaces, newlines, a leading `-`) gets through.
pub fn image_problem(image: &str) -> Option<String> {
    let bad = |why: &str| Some(format!("`{image}` is not an image reference: {why}"));
    if image.is_empty() {
        return bad("it is empty");
    }
    if image.len() > 512 {
        return bad("it is longer than 512 bytes");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty()
                && algo
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return bad("the digest after `@` must be ALGORITHM:HEX, e.g. sha256:...");
        }
    }
    // A tag is after the last `:` that follows the last `/` (a `:` before
    // it is a registry's port).
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return bad(
                "the tag after `:` must be 1 to 128 letters, digits, `_`, `.` or `-` (not starting with `.` or `-`)",
            );
        }
    }
    let components: Vec<&str> = name.split('/').collect();
    let has_registry = components.len() > 1
        && (components[0].contains('.')
            || components[0].contains(':')
            || components[0] == "localhost");
    for (i, c) in components.iter().enumerate() {
        let ok = if i == 0 && has_registry {
            let (host, port) = match c.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (*c, None),
            };
            !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
                && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        } else {
            // lowercase alphanumerics joined by `.`, `_`, `__` or `-`s
            !c.is_empty()
                && c.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && c.chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                && c.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && !c.contains("..")
                && !c.contains("___")
        };
        if !ok {
            return bad(
                "the name must be [registry[:port]/]path with lowercase letters, digits and single `.`, `_` or `-` between them",
            );
        }
    }
    None
}
