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

/// The deepest nesting of a scenario or lab file: 32 levels of block
/// indentation, `- ` entries and flow `[`/`{` together. The shipped files
/// nest at most 6. libyaml takes time quadratic in the depth before
/// serde_yaml_ng's own recursion limit stops it (41 s of CPU for 100 000
/// `[`), so the depth is measured first, by [`check_nesting`], in one pass.
pub const MAX_NESTING_DEPTH: usize = 32;

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
    check_nesting(text, origin)?;
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
        if let Some(line) = markers.next() {
            return Err(Error::invalid(format!(
                "{origin}:{line}: a second YAML document starts here: a twlab file is one document"
            )));
        }
        // No `---`: libyaml ends a document whose first mapping is
        // indented at the first line less indented than it, and reads the
        // rest as a second document.
        if let Some(e) = less_indented(text, origin) {
            return Err(e);
        }
        return Err(Error::invalid(format!(
            "{origin}: the file holds a second YAML document (a twlab file is one document)"
        )));
    }
    Ok(())
}

/// Refuse `text` when it nests deeper than [`MAX_NESTING_DEPTH`], naming
/// the line where it passes the limit; one pass over the bytes, without
/// parsing.
///
/// The scan is conservative: it may count a level too many in odd places
/// (a continuation line of a plain scalar counts as an indentation level,
/// a bracket starting such a line as a flow collection) but never fewer
/// than a YAML parser would open, and far below the limit for any real
/// file. It follows what changes the nesting:
///
/// - block indentation: a stack of the indents of the lines above that
///   are less indented (a line pops the deeper ones and pushes its own);
/// - `- ` and `? ` at the start of a line, each a level (`- - - x`);
/// - flow `[`/`{` where a value starts (start of a line, after `- `,
///   `: `, an anchor or tag, or inside a flow collection) up to the
///   matching `]`/`}`, across lines;
/// - and skips what cannot nest: comments (`#` after a blank), quoted
///   scalars (`'…'` with `''`, `"…"` with `\` escapes, across lines) and
///   the lines of block scalars (`|`, `>`).
pub fn check_nesting(text: &str, origin: &str) -> Result<()> {
    match too_deep_at(text) {
        Some(line) => Err(Error::invalid(format!(
            "{origin}:{line}: the YAML nests deeper than {MAX_NESTING_DEPTH} levels (MAX_NESTING_DEPTH): a twlab file nests a few; this is not a scenario or lab file"
        ))),
        None => Ok(()),
    }
}

/// The 1-based line where `text` nests deeper than [`MAX_NESTING_DEPTH`]
/// (see [`check_nesting`]), `None` when it does not.
pub fn too_deep_at(text: &str) -> Option<usize> {
    // The open block levels: (indent, whether it is a sequence). A
    // sequence may sit at its key's own indent (`key:` then `- x` below
    // it), so the kind tells a new level from a sibling line.
    let mut levels: Vec<(usize, bool)> = Vec::new();
    let mut flow = 0usize; // open `[`/`{`
    let mut flow_base = 0usize; // the block depth the flow collection is in
    let mut quote: Option<u8> = None; // inside a quoted scalar
    let mut block_scalar: Option<usize> = None; // skip lines indented more
    for (i, line) in text.lines().enumerate() {
        let b = line.as_bytes();
        let indent = b.iter().take_while(|c| **c == b' ').count();
        if let Some(parent) = block_scalar {
            if indent == b.len() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut j = indent;
        let mut at_value = true;
        // Where the line's node starts (after `- `/`? `), and the column of
        // its last `-`/`?`: a block scalar's text is indented past one.
        let mut content_col = indent;
        let mut last_dash = None;
        if quote.is_none() && flow == 0 {
            if j == b.len() || b[j] == b'#' {
                continue;
            }
            // A document marker (`---`, `...`) is no level; what follows
            // it on the line is a value at the top.
            let marker = indent == 0
                && (b.starts_with(b"---") || b.starts_with(b"..."))
                && b.get(3).is_none_or(|c| *c == b' ');
            if marker {
                levels.clear();
                j = 3;
            }
            let mut dashes = 0usize;
            loop {
                while b.get(j) == Some(&b' ') {
                    j += 1;
                }
                if matches!(b.get(j), Some(b'-' | b'?')) && b.get(j + 1).is_none_or(|c| *c == b' ')
                {
                    dashes += 1;
                    last_dash = Some(j);
                    j += 1;
                    continue;
                }
                break;
            }
            content_col = j;
            if !marker {
                let sequence = dashes > 0;
                while levels.last().is_some_and(|&(t, _)| t > indent) {
                    levels.pop();
                }
                match levels.last() {
                    // A key after the items of a sequence at its own indent.
                    Some(&(t, true)) if t == indent && !sequence => {
                        levels.pop();
                    }
                    _ => {}
                }
                match levels.last() {
                    Some(&(t, seq)) if t == indent && seq == sequence => {}
                    // The first item of a sequence at its key's indent.
                    Some(&(t, false)) if t == indent && sequence => levels.push((indent, true)),
                    Some(&(t, _)) if t == indent => {}
                    _ => levels.push((indent, sequence)),
                }
            }
            // Each further `- ` of the line is a sequence in the item, and
            // what follows them (a key or a value) is one more level.
            let rest = j < b.len() && b[j] != b'#';
            flow_base = levels.len() + dashes.saturating_sub(1) + usize::from(dashes > 0 && rest);
            if flow_base > MAX_NESTING_DEPTH {
                return Some(i + 1);
            }
        }
        let mut end = b.len(); // where a comment starts
        while j < b.len() {
            let c = b[j];
            if let Some(q) = quote {
                if q == b'"' && c == b'\\' {
                    j += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && b.get(j + 1) == Some(&b'\'') {
                        j += 2;
                        continue;
                    }
                    quote = None;
                    at_value = false;
                }
                j += 1;
                continue;
            }
            match c {
                b' ' | b'\t' => {}
                b'#' if j == 0 || matches!(b[j - 1], b' ' | b'\t') => {
                    end = j;
                    break;
                }
                b'"' | b'\'' if at_value => quote = Some(c),
                b'[' | b'{' if at_value || flow > 0 => {
                    flow += 1;
                    if flow_base + flow > MAX_NESTING_DEPTH {
                        return Some(i + 1);
                    }
                    at_value = true;
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    at_value = false;
                }
                b',' if flow > 0 => at_value = true,
                b':' if b.get(j + 1).is_none_or(|n| matches!(n, b' ' | b'\t')) => at_value = true,
                // An anchor or a tag comes before the value it names.
                b'&' | b'!' if at_value => {
                    while j + 1 < b.len() && !matches!(b[j + 1], b' ' | b'\t' | b'[' | b'{') {
                        j += 1;
                    }
                }
                b'-' if at_value && b.get(j + 1).is_none_or(|n| *n == b' ') && flow > 0 => {}
                _ => at_value = false,
            }
            j += 1;
        }
        if quote.is_none() && flow == 0 {
            // A block scalar (`key: |`, `- >-`): its lines are text, those
            // indented past its parent: the key's column for `key: |`
            // (after any `- `), the last dash's for `- |` or `- ? |`.
            let content = line.get(content_col..end).unwrap_or_default().trim_end();
            let token = content.rsplit(' ').next().unwrap_or_default();
            if (token.starts_with('|') || token.starts_with('>'))
                && token.len() <= 3
                && token[1..]
                    .bytes()
                    .all(|c| matches!(c, b'-' | b'+' | b'1'..=b'9'))
                && (content.len() == token.len()
                    || content[..content.len() - token.len()].ends_with(' '))
            {
                block_scalar = Some(match last_dash {
                    Some(dash) if content.len() == token.len() => dash,
                    _ => content_col,
                });
            }
        }
    }
    None
}

/// The first content line less indented than the file's first one, as an
/// error naming both: the top-level keys must share a column.
fn less_indented(text: &str, origin: &str) -> Option<Error> {
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let mut content = text.lines().enumerate().filter(|(_, l)| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && t != "---"
    });
    let (first, first_line) = content.next()?;
    let at = indent(first_line);
    let (line, _) = content.find(|(_, l)| indent(l) < at)?;
    Some(Error::invalid(format!(
        "{origin}:{}: this line is less indented than the first key (line {}, indented {at} spaces): the top-level keys of a twlab file all start in the first column; remove the indentation of line {}",
        line + 1,
        first + 1,
        first + 1
    )))
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
mod tests;
