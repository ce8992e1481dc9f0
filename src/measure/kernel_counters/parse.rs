//! One counter file parsed into its fields: the keys in the order the file
//! gives their values, and the values.
//!
//! Why the layout is kept: a run reads the same files at every sample, and
//! their header lines (the names) change only with the kernel, never
//! between two samples. Building each `Prefix.Name` key and finding it in a
//! map at every read was half of the read's cost (~35 µs of ~70 µs here,
//! the kernel's own share of producing the text being ~23 µs). So a
//! [`Fields`] keeps the header lines it was parsed under and their keys; a
//! later parse compares the header lines byte for byte and, while they are
//! unchanged, only reads the numbers into their slots, still matched by
//! name: a name that moves changes its header line.
//!
//! The quick path never decides that a text is wrong: anything it does not
//! expect (a header line that differs, a line more or less, a values line
//! of another length, a value that is not a number) sends the whole text
//! through the full parse, the one that builds the layout and names what is
//! wrong. Both give the same fields for the same text
//! (`tests::the_quick_path_gives_what_the_full_parse_gives`).

use super::{KernelCounters, Kind};

/// One file's fields as last parsed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Fields {
    /// The header lines the keys come from, as read (netstat/snmp: one per
    /// pair of lines; conntrack statistics: its one header).
    heads: Vec<String>,
    /// Per header line, how many fields it names (netstat/snmp).
    widths: Vec<usize>,
    /// The keys, in the order of the values in the file.
    pub keys: Vec<String>,
    /// Each key's value in the last text; `None` where it is not a counter
    /// there (a negative value such as `Tcp: MaxConn -1`, a conntrack table
    /// without rows, an empty value file).
    pub values: Vec<Option<u64>>,
}

impl Fields {
    /// Parse `text` of kind `kind`, by the layout kept if the text still
    /// has it. Returns whether the keys changed (the caller's order of keys
    /// is then stale). On an error the fields are emptied (the next text
    /// gets the full parse) and that counts as a change.
    pub fn parse(&mut self, kind: Kind, text: &str) -> Result<bool, String> {
        if let Kind::Value(key) = kind {
            return self.parse_value(key, text);
        }
        let same = match kind {
            Kind::Pairs => self.pairs_by_layout(text),
            _ => self.ct_by_layout(text),
        };
        if same {
            return Ok(false);
        }
        let before = std::mem::take(&mut self.keys);
        let parsed = match kind {
            Kind::Pairs => self.full_pairs(text),
            _ => self.full_ct(text),
        };
        if let Err(e) = parsed {
            *self = Fields::default();
            return Err(e);
        }
        Ok(self.keys != before)
    }

    /// The fields as a map (a later field of the same key wins, as it
    /// would have overwritten the earlier one).
    pub fn into_map(self, out: &mut KernelCounters) {
        for (key, value) in self.keys.into_iter().zip(self.values) {
            if let Some(v) = value {
                out.insert(key, v);
            }
        }
    }

    /// A file of one number stored under `key`; an empty file gives none.
    fn parse_value(&mut self, key: &str, text: &str) -> Result<bool, String> {
        let value = match text.trim() {
            "" => None,
            t => match t.parse::<u64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    *self = Fields::default();
                    return Err(format!("{t:?} is not a number"));
                }
            },
        };
        let changed = self.keys.len() != 1 || self.keys[0] != key;
        if changed {
            self.keys = vec![key.to_string()];
        }
        self.values = vec![value];
        Ok(changed)
    }

    /// netstat/snmp values read by the kept layout; false if the text does
    /// not have it exactly (nothing is reported: the full parse follows).
    fn pairs_by_layout(&mut self, text: &str) -> bool {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let mut slot = 0;
        for (head, &width) in self.heads.iter().zip(&self.widths) {
            let (Some(h), Some(v)) = (lines.next(), lines.next()) else {
                return false;
            };
            // The prefix of a kept header is letters and digits (checked by
            // the full parse), so its first ':' ends it.
            let Some((prefix, _)) = head.split_once(':') else {
                return false;
            };
            let Some(rest) = v.strip_prefix(prefix).and_then(|r| r.strip_prefix(':')) else {
                return false;
            };
            if h != head {
                return false;
            }
            let Some(slots) = self.values.get_mut(slot..slot + width) else {
                return false;
            };
            let mut n = 0;
            for value in rest.split_whitespace() {
                let Some(out) = slots.get_mut(n) else {
                    return false;
                };
                *out = match value.parse::<u64>() {
                    Ok(v) => Some(v),
                    Err(_) if value.parse::<i64>().is_ok() => None,
                    Err(_) => return false,
                };
                n += 1;
            }
            if n != width {
                return false;
            }
            slot += width;
        }
        slot == self.values.len() && lines.next().is_none()
    }

    /// Parse `/proc/net/netstat` or `/proc/net/snmp` and keep its layout:
    /// each header line `Prefix: A B C` is followed by its values
    /// `Prefix: 1 2 3`. A values line without its header, or with another
    /// number of fields, is an error.
    fn full_pairs(&mut self, text: &str) -> Result<(), String> {
        *self = Fields::default();
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        while let Some((i, head)) = lines.next() {
            let (prefix, names) = split_prefix(head).ok_or_else(|| {
                format!("line {}: expected `Prefix: Name …`, found {head:?}", i + 1)
            })?;
            let Some((j, values)) = lines.next() else {
                return Err(format!("line {}: `{prefix}:` has no line of values", i + 1));
            };
            let (vprefix, values) = split_prefix(values)
                .filter(|(p, _)| *p == prefix)
                .ok_or_else(|| format!("line {}: expected the values of `{prefix}:`", j + 1))?;
            let (n_names, n_values) = (
                names.split_whitespace().count(),
                values.split_whitespace().count(),
            );
            if n_names != n_values {
                return Err(format!(
                    "line {}: `{vprefix}:` has {n_names} names and {n_values} values",
                    j + 1,
                ));
            }
            for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
                let v = match value.parse::<u64>() {
                    Ok(v) => Some(v),
                    Err(_) if value.parse::<i64>().is_ok() => None,
                    Err(_) => {
                        return Err(format!(
                            "line {}: `{prefix}: {name}` is {value:?}, not a number",
                            j + 1
                        ));
                    }
                };
                self.keys.push(format!("{prefix}.{name}"));
                self.values.push(v);
            }
            self.heads.push(head.to_string());
            self.widths.push(n_names);
        }
        Ok(())
    }

    /// Conntrack statistics summed by the kept layout; false if the header
    /// differs or a row does not fit it.
    fn ct_by_layout(&mut self, text: &str) -> bool {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        match (self.heads.first(), lines.next()) {
            (None, None) => return true,
            (Some(head), Some(line)) if head == line => {}
            _ => return false,
        }
        let width = self.keys.len();
        if self.values.len() != width {
            return false;
        }
        let mut rows = 0usize;
        for row in lines {
            let mut n = 0;
            for value in row.split_whitespace() {
                let (Some(key), Some(sum)) = (self.keys.get(n), self.values.get_mut(n)) else {
                    return false;
                };
                let Ok(v) = u64::from_str_radix(value, 16) else {
                    return false;
                };
                *sum = if rows == 0 {
                    Some(v)
                } else if key == ENTRIES {
                    // The table's size, on every row: the first row's.
                    *sum
                } else {
                    Some(sum.unwrap_or(0).saturating_add(v))
                };
                n += 1;
            }
            if n != width {
                return false;
            }
            rows += 1;
        }
        if rows == 0 {
            self.values.iter_mut().for_each(|v| *v = None);
        }
        true
    }

    /// Parse `/proc/net/stat/nf_conntrack` and keep its layout: a header of
    /// names, then one row of hex numbers per CPU, summed by name into
    /// `conntrack.NAME`; `entries` (the table's size, on every row) from
    /// the first row. Without rows, no values.
    fn full_ct(&mut self, text: &str) -> Result<(), String> {
        *self = Fields::default();
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let Some(head) = lines.next() else {
            return Ok(());
        };
        let names: Vec<&str> = head.split_whitespace().collect();
        if names
            .iter()
            .any(|n| !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(format!(
                "line 1: expected a header of names, found {head:?}"
            ));
        }
        let mut sums = vec![0u64; names.len()];
        let mut rows = 0usize;
        for (i, row) in lines.enumerate() {
            let mut n = 0;
            for (col, value) in row.split_whitespace().enumerate() {
                let Some(name) = names.get(col) else {
                    n = col + 1;
                    continue;
                };
                let v = u64::from_str_radix(value, 16)
                    .map_err(|_| format!("line {}: `{name}` is {value:?}, not hex", i + 2))?;
                if *name == "entries" {
                    if i == 0 {
                        sums[col] = v;
                    }
                } else {
                    sums[col] = sums[col].saturating_add(v);
                }
                n = col + 1;
            }
            if n != names.len() {
                return Err(format!(
                    "line {}: {n} values under {} names",
                    i + 2,
                    names.len()
                ));
            }
            rows += 1;
        }
        self.heads.push(head.to_string());
        self.keys = names.iter().map(|n| format!("conntrack.{n}")).collect();
        self.values = sums.into_iter().map(|s| (rows > 0).then_some(s)).collect();
        Ok(())
    }
}

/// The key of conntrack's table size, taken from the first row only.
const ENTRIES: &str = "conntrack.entries";

/// `Prefix: rest` → `(Prefix, rest)`, the prefix one word of letters.
fn split_prefix(line: &str) -> Option<(&str, &str)> {
    let (prefix, rest) = line.split_once(':')?;
    let ok = !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some((prefix, rest))
}
