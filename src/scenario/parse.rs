//! Turning serde_yaml_ng's errors into twlab's: `file:line:col: what`, and
//! finding the line of a key for checks made after parsing.

use crate::error::Error;

/// `origin:LINE: ` for the first line holding `path[last]:` below the
/// lines holding each earlier `path[i]:` in turn (a cheap locator for
/// cross-field errors found after parsing), or `origin: ` when not found.
pub fn line_of(text: &str, origin: &str, path: &[&str]) -> String {
    let mut from = 0;
    let lines: Vec<&str> = text.lines().collect();
    for key in path {
        let needle = format!("{key}:");
        match lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| {
                let t = l.trim_start();
                !t.starts_with('#')
                    && (t.trim_start_matches("- ").starts_with(&needle)
                        // flow style: `server: { identity: /k }`
                        || l.contains(&format!("{{ {needle}"))
                        || l.contains(&format!("{{{needle}"))
                        || l.contains(&format!(", {needle}")))
            })
            .map(|(i, _)| i)
        {
            Some(i) => from = i,
            None => return format!("{origin}: "),
        }
    }
    format!("{origin}:{}: ", from + 1)
}
/// The line of `key:` inside the top-level `client:` block of `text`
/// (block style), 1-based.
pub(crate) fn client_key_line(text: &str, key: &str) -> Option<usize> {
    let needle = format!("{key}:");
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let top = t.len() == line.len();
        if top {
            inside = t.starts_with("client:");
        } else if inside && t.starts_with(&needle) {
            return Some(i + 1);
        }
    }
    None
}
/// serde reports a refusal of [`ClientSpec`]'s cross-field checks (its
/// `try_from`) at the enclosing mapping, not at the value. Such a message
/// starts with the `client.KEY` it is about: point at the line of the first
/// key it names that the `client:` block holds. `None` (keep serde's position) when the key is not
/// written there in block style or serde's position is that line already.
pub(crate) fn client_check_error(
    text: &str,
    origin: &str,
    e: &serde_yaml_ng::Error,
) -> Option<Error> {
    let loc = e.location()?;
    let msg = e.to_string();
    let core = msg.replacen(
        &format!(" at line {} column {}", loc.line(), loc.column()),
        "",
        1,
    );
    // An error of one key's deserializer comes with serde's path in front
    // (`client: client.duration has an empty value`).
    let core = match core.strip_prefix("client: ") {
        Some(rest) if rest.starts_with("client.") => rest.to_string(),
        _ => core,
    };
    if !core.starts_with("client.") {
        return None;
    }
    // The first key the message names that the block holds.
    let line = core.split("client.").skip(1).find_map(|rest| {
        let key = rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()?;
        client_key_line(text, key)
    })?;
    (line != loc.line()).then(|| Error::invalid(format!("{origin}:{line}: {core}")))
}
pub fn yaml_error(origin: &str, e: &serde_yaml_ng::Error) -> Error {
    let msg = e.to_string();
    match e.location() {
        Some(loc) => {
            // serde_yaml_ng appends " at line L column C"; keep the message
            // itself and put the position where editors and terminals link it.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let core = msg.replacen(&suffix, "", 1);
            Error::invalid(format!("{origin}:{}:{}: {core}", loc.line(), loc.column()))
        }
        None => Error::invalid(format!("{origin}: {msg}")),
    }
}
