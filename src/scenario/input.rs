//! Reading an input file (scenario or lab file) once, and the limits that
//! keep a hostile or mistaken file from hanging or exhausting the machine.
//!
//! A scenario is a few kilobytes. Whatever is far beyond that is a mistake
//! (a FIFO, `/dev/zero`, a log file given by accident) or an attack (a YAML
//! alias bomb), and is refused with exit code 2 before anything is started:
//!
//! - only a regular file is read, opened without blocking (a FIFO without a
//!   writer would otherwise hang the open) and checked on the open
//!   descriptor, so what is checked is what is read;
//! - at most [`MAX_INPUT_BYTES`] are read (`take(limit + 1)`, so a file that
//!   grows while it is read cannot get past the limit);
//! - the text must be UTF-8 (an error names the line of the first bad byte);
//! - before the typed parse, [`guard`] walks the document once as
//!   serde_yaml_ng expands it, without copying a string, and refuses a
//!   document whose aliases expand it past [`MAX_EXPANDED_BYTES`] or
//!   [`MAX_EXPANDED_NODES`], any string longer than [`MAX_STRING_BYTES`],
//!   and any string holding a NUL byte or another control character
//!   (tabs and line breaks aside). serde_yaml_ng's own alias limit
//!   (100 alias jumps per event of the document) stops a "billion laughs"
//!   of nested aliases, but not one large string referenced many times:
//!   a 1 MB anchored string referenced 20 000 times is 20 GB once expanded,
//!   from a file of about 1 MB.

use crate::error::{Error, Result};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest scenario or lab file read: 1 MiB. The largest file shipped
/// with twlab is under 4 KiB; a megabyte of YAML is no longer a scenario.
pub const MAX_INPUT_BYTES: u64 = 1024 * 1024;
/// The longest string anywhere in a file: 64 KiB, half of Linux's
/// MAX_ARG_STRLEN (32 pages, 128 KiB), so that any string can still be one
/// argument of a command (`server.command`, wrk's URL, an SSH command line).
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// The most string bytes a document may hold once YAML aliases are
/// expanded: 4 MiB, four times [`MAX_INPUT_BYTES`], so aliases still save
/// typing but cannot turn a small file into gigabytes.
pub const MAX_EXPANDED_BYTES: usize = 4 * 1024 * 1024;
/// The most values (scalars, lists, maps) a document may hold once aliases
/// are expanded: 100 000. A real scenario has a few hundred.
pub const MAX_EXPANDED_NODES: usize = 100_000;

/// Read the file at `path` as UTF-8 text, once. `what` names it in errors
/// ("scenario", "lab file"). Every refusal is [`Error::Invalid`].
pub fn read_input(path: &Path, what: &str) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let cannot = |e: std::io::Error| Error::invalid(format!("{shown}: cannot read {what}: {e}"));
    // O_NONBLOCK: opening a FIFO that has no writer returns at once instead
    // of waiting for one; it changes nothing for a regular file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{shown}: cannot read {what}: {} is not a regular file (a {}); give the path of a YAML file",
            shown,
            file_kind(&meta)
        )));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(too_big(&shown.to_string(), what));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_big(&shown.to_string(), what));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        Error::invalid(format!(
            "{shown}:{line}: {what} is not UTF-8 text (invalid byte 0x{:02x} at offset {at})",
            bytes[at]
        ))
    })
}

fn too_big(shown: &str, what: &str) -> Error {
    Error::invalid(format!(
        "{shown}: {what} is larger than the {} KiB twlab reads (MAX_INPUT_BYTES): a scenario or lab file is a few KiB of YAML",
        MAX_INPUT_BYTES / 1024
    ))
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "named pipe"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Walk the YAML document in `text` as serde_yaml_ng expands it and refuse
/// it when it is too large once expanded, holds a string that is too long
/// or a NUL byte (see the module doc). Errors are `origin:line:col: what`.
pub fn guard(text: &str, origin: &str) -> Result<()> {
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_big(origin, "the document"));
    }
    // libyaml refuses these too, but places every one at 1:1.
    for (i, line) in text.lines().enumerate() {
        if let Some((col, c)) = line
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\r' | '\u{85}'))
        {
            return Err(Error::invalid(format!(
                "{origin}:{}:{}: a control character (U+{:04X}) is not text: a YAML file holds printable characters, tabs and line breaks",
                i + 1,
                col + 1,
                u32::from(c)
            )));
        }
    }
    let budget = Budget {
        bytes: Cell::new(0),
        nodes: Cell::new(0),
    };
    let mut documents = serde_yaml_ng::Deserializer::from_str(text);
    if let Some(first) = documents.next() {
        first
            .deserialize_any(Measure(&budget))
            .map_err(|e| super::yaml_error(origin, &e))?;
    }
    if documents.next().is_some() {
        // The line of the marker that starts the second document.
        let mut markers = text
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "---" || l.starts_with("--- "))
            .map(|(i, _)| i + 1);
        let starts_with_marker = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .is_some_and(|l| l == "---" || l.starts_with("--- "));
        if starts_with_marker {
            markers.next();
        }
        let at = markers.next().map_or(String::new(), |l| format!("{l}:"));
        return Err(Error::invalid(format!(
            "{origin}:{at} a second YAML document starts here: a twlab file is one document"
        )));
    }
    Ok(())
}

struct Budget {
    bytes: Cell<usize>,
    nodes: Cell<usize>,
}

impl Budget {
    fn node<E: de::Error>(&self) -> Result<(), E> {
        let n = self.nodes.get() + 1;
        self.nodes.set(n);
        if n > MAX_EXPANDED_NODES {
            return Err(E::custom(format!(
                "the document holds more than {MAX_EXPANDED_NODES} values once its YAML aliases are expanded (MAX_EXPANDED_NODES)"
            )));
        }
        Ok(())
    }

    fn string<E: de::Error>(&self, s: &[u8]) -> Result<(), E> {
        self.node()?;
        if s.len() > MAX_STRING_BYTES {
            return Err(E::custom(format!(
                "a string of {} bytes is longer than the {} KiB twlab allows (MAX_STRING_BYTES)",
                s.len(),
                MAX_STRING_BYTES / 1024
            )));
        }
        if s.contains(&0) {
            return Err(E::custom(
                "a string holds a NUL byte (\\0), which no file name, command argument or sysctl value can carry",
            ));
        }
        if let Some(c) = String::from_utf8_lossy(s)
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(E::custom(format!(
                "a string holds the control character U+{:04X}: strings are printable text, tabs and line breaks (an escape sequence would be sent to a terminal)",
                u32::from(c)
            )));
        }
        let total = self.bytes.get() + s.len();
        self.bytes.set(total);
        if total > MAX_EXPANDED_BYTES {
            return Err(E::custom(format!(
                "the document's strings add up to more than {} MiB once its YAML aliases are expanded (MAX_EXPANDED_BYTES): an alias repeats the whole anchored value",
                MAX_EXPANDED_BYTES / (1024 * 1024)
            )));
        }
        Ok(())
    }
}

/// A value that is only measured, never kept.
#[derive(Clone, Copy)]
struct Measure<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Measure<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Measure<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.0.node()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.node()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.0.node()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.node()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.0.node()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.node()
    }
    fn visit_char<E: de::Error>(self, _: char) -> Result<(), E> {
        self.0.node()
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.0.string(s.as_bytes())
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<(), E> {
        self.0.string(b)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.node()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.node()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.node()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.node()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): no key of twlab's takes one, and
        // serde would drop the tag of a string silently.
        Err(de::Error::custom(
            "a YAML tag (`!name`) is not part of a twlab file: remove it",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_bomb_is_refused_without_expanding_it() {
        let big = "x".repeat(60_000);
        let refs = vec!["*a"; 200].join(", ");
        let text = format!("name: x\nserver:\n  command: [&a \"{big}\", {refs}]\n");
        let e = guard(&text, "s.yaml").unwrap_err().to_string();
        assert!(e.starts_with("s.yaml:3:"), "{e}");
        assert!(e.contains("MAX_EXPANDED_BYTES"), "{e}");
    }

    #[test]
    fn long_strings_nul_bytes_and_too_many_values_are_refused_at_their_line() {
        let long = format!("a: b\nc: {}\n", "y".repeat(MAX_STRING_BYTES + 1));
        let e = guard(&long, "s.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("s.yaml:2:") && e.contains("MAX_STRING_BYTES"),
            "{e}"
        );
        let e = guard("a: b\nc: \"x\\0y\"\n", "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:2:") && e.contains("NUL"), "{e}");
        let e = guard("a: b\nc: \"\\e[2J\"\n", "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:2:") && e.contains("U+001B"), "{e}");
        let many = format!(
            "a: &l [{}]\nb: [{}]\n",
            vec!["1"; 1000].join(","),
            vec!["*l"; 200].join(",")
        );
        let e = guard(&many, "s.yaml").unwrap_err().to_string();
        assert!(e.contains("MAX_EXPANDED_NODES"), "{e}");
        guard("a: &x [1, 2]\nb: *x\nc: {d: 1}\n", "s.yaml").unwrap();
        let e = guard("a: b\nc: !tag {d: 1}\n", "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.yaml:2:") && e.contains("YAML tag"), "{e}");
    }

    #[test]
    fn only_a_regular_file_is_read_and_only_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_input(dir.path(), "scenario").unwrap_err().to_string();
        assert!(e.contains("is not a regular file (a directory)"), "{e}");
        let fifo = dir.path().join("f");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read_input(&fifo, "scenario").unwrap_err().to_string();
        assert!(e.contains("(a named pipe)"), "{e}");
        let e = read_input(Path::new("/dev/zero"), "scenario")
            .unwrap_err()
            .to_string();
        assert!(e.contains("(a character device)"), "{e}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_INPUT_BYTES as usize + 1]).unwrap();
        let e = read_input(&big, "scenario").unwrap_err().to_string();
        assert!(e.contains("larger than the 1024 KiB"), "{e}");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, b"name: x\nv: \xff\n").unwrap();
        let e = read_input(&bad, "scenario").unwrap_err().to_string();
        assert!(
            e.ends_with("bad.yaml:2: scenario is not UTF-8 text (invalid byte 0xff at offset 11)"),
            "{e}"
        );
        std::fs::write(&bad, b"name: x\n").unwrap();
        assert_eq!(read_input(&bad, "scenario").unwrap(), "name: x\n");
    }
}
