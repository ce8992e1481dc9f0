//! `/proc/net/sockstat` of a namespace: its TIME_WAIT figure in one read,
//! which the embedded lab uses instead of a message per TIME_WAIT socket.

use std::fs::File;
use std::io;
use std::path::Path;

/// `/proc/net/sockstat` of the namespace at `netns_path`, opened from a
/// thread inside it (the open file keeps showing that namespace's figures).
pub fn open_sockstat_in_netns(netns_path: &Path) -> io::Result<File> {
    let ns = File::open(netns_path)?;
    std::thread::Builder::new()
        .name("twlab-sockstat-setns".into())
        .spawn(move || -> io::Result<File> {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)?;
            File::open("/proc/thread-self/net/sockstat")
        })?
        .join()
        .map_err(|_| io::Error::other("the sockstat setns helper thread panicked"))?
}

/// The `tw` figure of a namespace's `/proc/net/sockstat` (read again from
/// the start of the open file): its TIME_WAIT sockets, both families.
pub fn read_sockstat_tw(file: &mut File) -> io::Result<u64> {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.rewind()?;
    file.read_to_string(&mut text)?;
    parse_sockstat_tw(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc/net/sockstat has no `TCP: … tw N` figure",
        )
    })
}

/// The `tw` figure of `/proc/net/sockstat`'s TCP line.
pub fn parse_sockstat_tw(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let i = f.iter().position(|w| *w == "tw")?;
    f.get(i + 1)?.parse().ok()
}
