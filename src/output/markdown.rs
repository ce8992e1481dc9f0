//! Text shared by `report.md` ([`crate::output::report`]) and `twlab compare`
//! ([`crate::output::compare`]): markdown tables and inline markup, the same tables
//! for the terminal, and the figures in their cells, so a number, a change
//! or a percent reads the same in every output of twlab.

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

/// A markdown table (GitHub flavour): the columns in `left` are
/// left-aligned, the others right-aligned, in the text and with `---:`
/// markers.
pub(crate) fn table(header: &[impl AsRef<str>], rows: Vec<Vec<String>>, left: &[usize]) -> String {
    let mut builder = Builder::new();
    builder.push_record(header.iter().map(|h| cell(h.as_ref())));
    for row in rows {
        builder.push_record(row.iter().map(|c| cell(c)));
    }
    let mut table = builder.build();
    table.with(Style::markdown());
    right_align(&mut table, header.len(), left);
    let text = table.to_string();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 1 {
            // The separator line: `|-----|-----|`; part j is column j - 1.
            let parts: Vec<String> = line
                .split('|')
                .enumerate()
                .map(|(j, p)| {
                    if j >= 1 && !left.contains(&(j - 1)) && p.len() > 1 {
                        format!("{}:", &p[..p.len() - 1])
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            out.push_str(&parts.join("|"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

/// The same table for the terminal (psql style, no trailing blanks): the
/// columns in `left` are left-aligned, the others right-aligned.
pub(crate) fn terminal_table(
    header: &[impl AsRef<str>],
    rows: Vec<Vec<String>>,
    left: &[usize],
) -> String {
    let mut builder = Builder::new();
    builder.push_record(header.iter().map(|h| h.as_ref().to_string()));
    for row in rows {
        builder.push_record(row);
    }
    let mut table = builder.build();
    table.with(Style::psql());
    right_align(&mut table, header.len(), left);
    let mut out = String::new();
    for line in table.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Right-align every column of `columns` that is not in `left`.
fn right_align(table: &mut tabled::Table, columns: usize, left: &[usize]) {
    for c in (0..columns).filter(|c| !left.contains(c)) {
        table.modify(Columns::new(c..=c), Alignment::right());
    }
}

/// Table cell text: one line, pipes escaped.
fn cell(s: &str) -> String {
    inline(s).replace('|', "\\|")
}

/// Text on one line.
pub(crate) fn inline(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Inline code, with a fence longer than any backtick run inside.
pub(crate) fn code(s: &str) -> String {
    let s = inline(s);
    if s.is_empty() {
        return "—".into();
    }
    let ticks = "`".repeat(longest_run(&s, '`') + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{s}{pad}{ticks}")
}

/// A fenced code block that no line of `text` can close early.
pub(crate) fn fenced(lang: &str, text: &str) -> String {
    let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
    format!("{fence}{lang}\n{}\n{fence}\n\n", text.trim_end())
}

fn longest_run(s: &str, c: char) -> usize {
    s.split(|x| x != c).map(str::len).max().unwrap_or(0)
}

/// A count or a figure: whole numbers without decimals, others with up to two.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let rounded = (v * 100.0).round() / 100.0;
    let text = if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        let t = format!("{rounded:.2}");
        t.trim_end_matches('0').to_string()
    };
    if text == "-0" { "0".into() } else { text }
}

/// A change with its sign: `+12`, `-4848`, `0`.
pub(crate) fn signed(v: f64) -> String {
    let text = num(v);
    if text != "0" && !text.starts_with('-') && v.is_finite() {
        format!("+{text}")
    } else {
        text
    }
}

/// A percent change with one decimal and its sign; `n/a` when there is
/// none (the baseline is zero).
pub(crate) fn percent(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() => {
            let p = (p * 10.0).round() / 10.0;
            // No `-0.0%`.
            let p = if p == 0.0 { 0.0 } else { p };
            format!("{p:+.1}%")
        }
        _ => "n/a".into(),
    }
}

/// A change against a baseline, absolute then in percent: `-4848 (-40.4%)`,
/// `+4011.5 (n/a)`.
pub(crate) fn change(abs: f64, pct: Option<f64>) -> String {
    format!("{} ({})", signed(abs), percent(pct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_changes_and_percents() {
        assert_eq!(num(11873.42), "11873.42");
        assert_eq!(num(7152.0), "7152");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(-0.001), "0");
        assert_eq!(signed(-4848.0), "-4848");
        assert_eq!(signed(600.31), "+600.31");
        assert_eq!(signed(0.0), "0");
        assert_eq!(percent(Some(-40.4)), "-40.4%");
        assert_eq!(percent(Some(3.0)), "+3.0%");
        assert_eq!(percent(Some(-0.01)), "+0.0%");
        assert_eq!(percent(None), "n/a");
        assert_eq!(change(-4848.0, Some(-40.4)), "-4848 (-40.4%)");
        assert_eq!(change(4011.5, None), "+4011.5 (n/a)");
    }

    #[test]
    fn markdown_table_escapes_pipes_and_marks_right_alignment() {
        let t = table(
            &["name", "n"],
            vec![vec!["a|b\nc".into(), "12".into()]],
            &[0],
        );
        assert_eq!(t, "| name   |  n |\n|--------|---:|\n| a\\|b c | 12 |\n\n");
    }

    #[test]
    fn terminal_table_right_aligns_and_trims() {
        let t = terminal_table(
            &["name", "n", "note"],
            vec![vec!["a".into(), "12".into(), "x".into()]],
            &[0, 2],
        );
        assert_eq!(t, " name |  n | note\n------+----+------\n a    | 12 | x\n");
    }

    #[test]
    fn code_fences_outlast_backticks_inside() {
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`a`"), "`` `a` ``");
        assert_eq!(code("  "), "—");
        assert_eq!(fenced("sh", "x ``` y\n"), "````sh\nx ``` y\n````\n\n");
    }
}
