//! Sysctls of a namespace through `/proc/sys`, from a thread inside it.

use super::*;

// ---------------------------------------------------------------------------
// Sysctls
// ---------------------------------------------------------------------------

/// `/proc/sys/...` for a dotted network sysctl name.
///
/// Accepted: `net.` followed by non-empty segments of `[a-z0-9_-]` separated
/// by single dots (so no `..`, no `/`, no empty segment). Interface names
/// with dots or capitals (which `sysctl(8)` writes with `/`) are therefore
/// not reachable; twlab's are not of that kind.
pub fn sysctl_path(name: &str) -> io::Result<PathBuf> {
    let bad = || invalid(format!("invalid network sysctl name {name:?}"));
    let mut segments = name.split('.');
    if segments.next() != Some("net") {
        return Err(bad());
    }
    let mut path = PathBuf::from("/proc/sys/net");
    let mut any = false;
    for seg in segments {
        if seg.is_empty()
            || !seg
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
        {
            return Err(bad());
        }
        path.push(seg);
        any = true;
    }
    if !any {
        return Err(bad());
    }
    Ok(path)
}
/// Read a network sysctl inside namespace `ns`, from a thread in it. The
/// value is returned as the kernel prints it, without the final newline
/// (several fields stay separated by the kernel's tabs).
pub fn sysctl_read(ns: &str, name: &str) -> io::Result<String> {
    let path = sysctl_path(name)?;
    let ns_s = ns.to_string();
    in_named_netns(ns, move || {
        let text = fs::read_to_string(&path)
            .map_err(|e| ctx(e, format!("read {} in netns {ns_s}", path.display())))?;
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
    })
}
/// Write a network sysctl inside namespace `ns`, from a thread in it. The
/// machine's own value is not touched. `value` may not contain a newline
/// (other than one at the end) or NUL.
pub fn sysctl_write(ns: &str, name: &str, value: &str) -> io::Result<()> {
    let path = sysctl_path(name)?;
    let value = value.strip_suffix('\n').unwrap_or(value);
    if value.contains(['\n', '\0']) {
        return Err(invalid(format!(
            "invalid value {value:?} for sysctl {name}"
        )));
    }
    let data = format!("{value}\n");
    let (ns_s, name_s) = (ns.to_string(), name.to_string());
    in_named_netns(ns, move || {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| ctx(e, format!("open {} in netns {ns_s}", path.display())))?;
        // One write: a sysctl file takes the whole value in a single write(2).
        let n = f.write(data.as_bytes()).map_err(|e| {
            ctx(
                e,
                format!("write {name_s}={} in netns {ns_s}", data.trim_end()),
            )
        })?;
        if n != data.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write to {} in netns {ns_s}", path.display()),
            ));
        }
        Ok(())
    })
}
