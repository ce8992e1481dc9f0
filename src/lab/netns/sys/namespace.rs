//! Named network namespaces made and removed as `ip netns` does, and
//! running code inside one from a short-lived thread.

use super::*;

/// A namespace name as `ip netns` accepts it: one path component.
pub(super) fn check_ns_name(name: &str) -> io::Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > 255
    {
        return Err(invalid(format!("invalid network namespace name {name:?}")));
    }
    Ok(())
}
/// `/run/netns/NAME`, after checking that NAME is a valid namespace name.
pub fn netns_path(name: &str) -> io::Result<PathBuf> {
    check_ns_name(name)?;
    Ok(Path::new(NETNS_RUN_DIR).join(name))
}
/// A bare name (one relative component) means `/run/netns/NAME`; anything
/// else (`/proc/PID/ns/net`, `./x`, ...) is used as a path.
pub(super) fn resolve_ns(name_or_path: &Path) -> io::Result<PathBuf> {
    let mut comps = name_or_path.components();
    match (comps.next(), comps.next()) {
        (Some(std::path::Component::Normal(n)), None) if !name_or_path.is_absolute() => {
            let n = n
                .to_str()
                .ok_or_else(|| invalid(format!("invalid network namespace name {n:?}")))?;
            netns_path(n)
        }
        (None, _) => Err(invalid("empty network namespace name".into())),
        _ => Ok(name_or_path.to_path_buf()),
    }
}
// ---------------------------------------------------------------------------
// Named namespaces
// ---------------------------------------------------------------------------

/// Make `/run/netns` exist and be a shared mount, as iproute2 does.
pub(super) fn prepare_run_dir() -> io::Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ctx(e, format!("mkdir {}", dir.display()))),
    }
    // Serialise with concurrent `ip netns add` / twlab runs: two of them
    // stacking bind mounts on the directory at once can multiply mounts.
    // Like iproute2, go on without the lock if flock itself fails.
    let dir_fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ctx(errno(e), format!("cannot open {}", dir.display())))?;
    let _lock = Flock::lock(dir_fd, FlockArg::LockExclusive).ok();

    let mut made_mount = false;
    loop {
        match nix::mount::mount(
            Some(""),
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if !made_mount => {
                // Not a mount point yet: make it one, in a peer group of its own.
                nix::mount::mount(
                    Some(dir),
                    dir,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| ctx(errno(e), format!("mount --bind {0} {0}", dir.display())))?;
                nix::mount::mount(
                    Some(dir),
                    dir,
                    Some("none"),
                    MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| ctx(errno(e), format!("mount --make-rprivate {}", dir.display())))?;
                made_mount = true;
            }
            Err(e) => {
                return Err(ctx(
                    errno(e),
                    format!("mount --make-rshared {}", dir.display()),
                ));
            }
        }
    }
}
/// Run `f` in a new std thread and return its result; a panic becomes an
/// error instead of unwinding into the caller.
pub(super) fn on_fresh_thread<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let handle = std::thread::Builder::new()
        .name("twlab-netns".into())
        .spawn(f)
        .map_err(|e| ctx(e, format!("spawning a thread for {what}")))?;
    handle
        .join()
        .map_err(|_| io::Error::other(format!("the thread for {what} panicked")))?
}
/// The size of the machine's TCP socket hash table (`tcp_ehash_entries`
/// of the calling thread's namespace: negative where that namespace shares
/// the machine's table), read before the thread leaves it.
fn machine_ehash_buckets() -> Option<u32> {
    let text = fs::read_to_string("/proc/sys/net/ipv4/tcp_ehash_entries").ok()?;
    let n: i64 = text.trim().parse().ok()?;
    u32::try_from(n.unsigned_abs()).ok().filter(|n| *n > 0)
}

/// Set `tcp_child_ehash_entries` of the calling thread's namespace, so the
/// namespaces it creates next get a TCP socket hash table of their own
/// (Linux ≥ 6.1). Called only in a throwaway namespace: the machine's own
/// setting is never touched.
///
/// Why: every namespace otherwise shares the machine's one table, and a
/// sock_diag dump walks all of it, skipping other namespaces' sockets one
/// by one. The lab's client namespace then paid for the server's TIME_WAIT
/// sockets on every sample, and with N clients each count walked all N + 1
/// namespaces' sockets (and whatever else the machine held). With a table
/// of its own, a count visits the namespace's own sockets only.
///
/// The table is as large as the machine's, because the kernel derives a new
/// namespace's defaults from it (`tcp_max_tw_buckets` = buckets / 2,
/// `tcp_max_syn_backlog` = buckets / 128): a lab namespace keeps the
/// defaults a namespace sharing the machine's table has. It costs 8 bytes a
/// bucket (2 MiB for 262,144). `false` where the kernel has no such setting
/// (then the namespace shares the machine's table, as before).
fn private_tcp_hash(buckets: u32) -> bool {
    fs::write(
        "/proc/sys/net/ipv4/tcp_child_ehash_entries",
        buckets.to_string(),
    )
    .is_ok()
}

/// Create `/run/netns/NAME` exactly as `ip netns add NAME` does: ensure
/// `/run/netns` exists and is a shared mount, create an empty file, create a
/// new network namespace in a fresh thread (`unshare(CLONE_NEWNET)`) and
/// bind-mount `/proc/thread-self/ns/net` onto the file.
///
/// Fails with `AlreadyExists` if the name is taken. Errors name the path.
pub fn add_netns(name: &str) -> io::Result<()> {
    let path = netns_path(name)?;
    prepare_run_dir()?;

    // O_EXCL: an existing name is an error, as with `ip netns add`.
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        ctx(
            errno(e),
            format!("cannot create namespace file {}", path.display()),
        )
    })?;
    drop(fd);

    let target = path.clone();
    let made = on_fresh_thread("creating a network namespace", move || {
        let unshare = || {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
                ctx(
                    errno(e),
                    format!("unshare(CLONE_NEWNET) for {}", target.display()),
                )
            })
        };
        let buckets = machine_ehash_buckets();
        unshare()?;
        // In a throwaway namespace, ask for the next one's own TCP hash
        // table, then make that one (see `private_tcp_hash`). The throwaway
        // is freed as the thread leaves it.
        if let Some(buckets) = buckets
            && private_tcp_hash(buckets)
        {
            unshare()?;
        }
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            ctx(
                errno(e),
                format!("bind /proc/thread-self/ns/net -> {}", target.display()),
            )
        })
    });
    if let Err(e) = made {
        let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(())
}
/// Delete `/run/netns/NAME` like `ip netns del`: lazily unmount it
/// (`umount2(MNT_DETACH)`) and unlink the file. The namespace itself goes
/// away once no process, socket or mount refers to it any more.
///
/// `Ok` if the namespace did not exist.
pub fn del_netns(name: &str) -> io::Result<()> {
    let path = netns_path(name)?;
    // As in iproute2, the unmount's result does not matter: the file may be
    // a leftover that was never (or is no longer) a mount point.
    let _ = nix::mount::umount2(&path, MntFlags::MNT_DETACH);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ctx(
            e,
            format!("cannot remove namespace file {}", path.display()),
        )),
    }
}
/// Names in `/run/netns`, sorted (what `ip netns list` shows, without the
/// ids). An absent directory is an empty list.
pub fn list_netns() -> io::Result<Vec<String>> {
    let dir = match fs::read_dir(NETNS_RUN_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ctx(e, format!("cannot read {NETNS_RUN_DIR}"))),
    };
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| ctx(e, format!("cannot read {NETNS_RUN_DIR}")))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
/// PIDs (sorted) of the processes whose `/proc/PID/ns/net` is the namespace
/// bound at `/run/netns/NAME` (same device and inode), like `ip netns pids`.
/// As there, a process counts by its main thread's namespace.
pub fn netns_pids(name: &str) -> io::Result<Vec<i32>> {
    let path = netns_path(name)?;
    let ns = fs::metadata(&path).map_err(|e| {
        ctx(
            e,
            format!("cannot open network namespace {}", path.display()),
        )
    })?;
    let proc_dir = fs::read_dir("/proc").map_err(|e| ctx(e, "cannot read /proc"))?;
    let mut pids = Vec::new();
    for entry in proc_dir {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // Processes come and go, and some are not ours to look at: skip.
        if let Ok(st) = fs::metadata(format!("/proc/{pid}/ns/net"))
            && st.dev() == ns.dev()
            && st.ino() == ns.ino()
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}
/// Run `f` in a short-lived std thread that entered the network namespace
/// (`setns(CLONE_NEWNET)`) and return its result.
///
/// `name_or_path` is either a bare namespace name (`/run/netns/NAME`) or a
/// path to a namespace file such as `/proc/PID/ns/net`. Sockets opened by
/// `f` stay in that namespace after it returns. Only that thread changes
/// namespace; the calling thread is untouched.
pub fn in_netns<T: Send + 'static>(
    name_or_path: &Path,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = resolve_ns(name_or_path)?;
    let file = File::open(&path).map_err(|e| {
        ctx(
            e,
            format!("cannot open network namespace {}", path.display()),
        )
    })?;
    on_fresh_thread("entering a network namespace", move || {
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
            ctx(
                errno(e),
                format!("setns(CLONE_NEWNET) into {}", path.display()),
            )
        })?;
        drop(file);
        f()
    })
}
pub(super) fn in_named_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    check_ns_name(name)?;
    in_netns(Path::new(name), f)
}
