//! Network namespaces: naming and opening them, creating and deleting
//! named ones the way `ip netns add/del` does, and running code or child
//! processes inside one.
//!
//! `setns` changes the namespace of the calling *thread*. Doing it on a
//! tokio worker would silently move every task later scheduled there, so
//! everything here enters a namespace only on a dedicated OS thread that
//! ends with the work.

use std::fmt;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::str::FromStr;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;

use crate::error::{Context, Result};
use crate::Error;

/// Where named namespaces are bind-mounted (as by iproute2).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// `NS_GET_NSTYPE` ioctl (`_IO(0xb7, 0x3)`): which kind of namespace an fd is.
const NS_GET_NSTYPE: u64 = 0xb703;

/// A network namespace as a user names it.
///
/// Parsed from a string: digits are a PID (`/proc/PID/ns/net`), anything
/// with a `/` is a path (`/proc/123/ns/net`, `/var/run/netns/x`), and any
/// other word is a named namespace (`/run/netns/NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetnsTarget {
    Named(String),
    Path(PathBuf),
    Pid(u32),
}

impl NetnsTarget {
    /// The file that holds the namespace.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsTarget::Named(n) => Path::new(NETNS_RUN_DIR).join(n),
            NetnsTarget::Path(p) => p.clone(),
            NetnsTarget::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }

    /// Opens the namespace; see [`Netns::open`].
    pub fn open(&self) -> Result<Netns> {
        Netns::open(self)
    }
}

impl fmt::Display for NetnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsTarget::Named(n) => f.write_str(n),
            NetnsTarget::Path(p) => write!(f, "{}", p.display()),
            NetnsTarget::Pid(pid) => write!(f, "{pid}"),
        }
    }
}

impl FromStr for NetnsTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(NetnsTarget::Pid)
                .map_err(|_| Error::quiet(format!("invalid pid {s}"), Errno::EINVAL));
        }
        if s.contains('/') {
            return Ok(NetnsTarget::Path(PathBuf::from(s)));
        }
        check_netns_name(s)?;
        Ok(NetnsTarget::Named(s.to_string()))
    }
}

fn check_netns_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > 255
    {
        return Err(Error::quiet(
            format!("invalid network namespace name {name:?}"),
            Errno::EINVAL,
        ));
    }
    Ok(())
}

/// An open network namespace (an fd on an nsfs file). Keeps the namespace
/// alive while open, even after its name is deleted.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    label: String,
}

impl Netns {
    /// Opens `target`. Errors are plain: `no such network namespace: X`,
    /// or `X is not a network namespace` for a file of another kind.
    pub fn open(target: &NetnsTarget) -> Result<Netns> {
        if let NetnsTarget::Named(n) = target {
            check_netns_name(n)?;
        }
        let label = target.to_string();
        let fd = match nix::fcntl::open(
            &target.path(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                return Err(Error::quiet(
                    format!("no such network namespace: {label}"),
                    Errno::ENOENT,
                ))
            }
            Err(e) => {
                return Err(Error::from_errno(
                    format!("opening network namespace {label}"),
                    e,
                ))
            }
        };
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
        let kind = unsafe { nix::libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
        if kind != CloneFlags::CLONE_NEWNET.bits() {
            return Err(Error::quiet(
                format!("{label} is not a network namespace"),
                Errno::EINVAL,
            ));
        }
        Ok(Netns { fd, label })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        Netns::open(&NetnsTarget::Path("/proc/thread-self/ns/net".into()))
    }

    /// Wraps an fd already known to be a network namespace.
    pub fn from_fd(fd: OwnedFd, label: impl Into<String>) -> Netns {
        Netns {
            fd,
            label: label.into(),
        }
    }

    /// A second handle on the same namespace (a `dup` of the fd).
    pub fn try_clone(&self) -> Result<Netns> {
        Ok(Netns {
            fd: self
                .fd
                .try_clone()
                .ctx(|| format!("duplicating fd of network namespace {}", self.label))?,
            label: self.label.clone(),
        })
    }

    /// How the namespace was named when opened.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The namespace's inode number: equal for two handles on the same
    /// namespace (what `ip netns identify` compares).
    pub fn id(&self) -> Result<u64> {
        nix::sys::stat::fstat(&self.fd)
            .map(|st| st.st_ino)
            .ctx(|| format!("inspecting network namespace {}", self.label))
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network namespace {}", self.label)
    }
}

/// Serialises the one-time setup of `/run/netns` within this process, so
/// concurrent creators do not stack several bind mounts on it.
static RUN_DIR_SETUP: Mutex<()> = Mutex::new(());

/// Makes `/run/netns` exist and be a shared mount, as iproute2 does: mounts
/// made under it then propagate to mount namespaces created later (e.g. by
/// container runtimes), so a named namespace stays visible there.
fn prepare_run_dir() -> Result<()> {
    let _guard = RUN_DIR_SETUP.lock().unwrap_or_else(|p| p.into_inner());
    let ctx = || format!("preparing {NETNS_RUN_DIR}");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(NETNS_RUN_DIR)
        .ctx(ctx)?;
    let make_shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match make_shared() {
        Ok(()) => Ok(()),
        // EINVAL: not a mount point yet. Bind it onto itself, then retry.
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx(ctx)?;
            make_shared().ctx(ctx)
        }
        Err(e) => Err(Error::from_errno(ctx(), e)),
    }
}

/// Creates a new, empty network namespace named `name`, bind-mounted at
/// `/run/netns/NAME` (what `ip netns add NAME` does), and returns it open.
/// An existing name is an `EEXIST` error; see [`ensure_named_netns`].
pub fn create_named_netns(name: &str) -> Result<Netns> {
    check_netns_name(name)?;
    prepare_run_dir()?;
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let ctx = || format!("creating network namespace {name}");
    // The mount point; O_EXCL makes concurrent creators of one name collide.
    drop(
        nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(ctx)?,
    );
    let made = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("weft-netns-new".into())
            .spawn_scoped(s, || -> nix::Result<()> {
                // Only this thread moves; it ends right after.
                unshare(CloneFlags::CLONE_NEWNET)?;
                // thread-self, not self: /proc/self/ns/net is the main thread's.
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &path,
                    Some("none"),
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
            })
            .map(|h| h.join().unwrap_or(Err(Errno::EIO)))
            .unwrap_or(Err(Errno::EAGAIN))
    });
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(Error::from_errno(ctx(), e));
    }
    Netns::open(&NetnsTarget::Named(name.to_string()))
}

/// Opens the named namespace `name`, creating it first if needed.
pub fn ensure_named_netns(name: &str) -> Result<Netns> {
    match Netns::open(&NetnsTarget::Named(name.to_string())) {
        Err(e) if e.errno() == Some(Errno::ENOENT) => match create_named_netns(name) {
            Err(e) if e.is_exists() => Netns::open(&NetnsTarget::Named(name.to_string())),
            r => r,
        },
        r => r,
    }
}

/// Removes the name `/run/netns/NAME` (what `ip netns del` does). The
/// namespace itself, and the links in it, go away once nothing else (a
/// process, an open [`Netns`], a socket) holds it. False if no such name.
pub fn delete_named_netns(name: &str) -> Result<bool> {
    check_netns_name(name)?;
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let ctx = || format!("deleting network namespace {name}");
    match umount2(&path, MntFlags::MNT_DETACH) {
        // EINVAL: not mounted (e.g. a leftover of a failed create).
        Ok(()) | Err(Errno::EINVAL) => {}
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(Error::from_errno(ctx(), e)),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(ctx(), e)),
    }
}

/// Names under `/run/netns`, sorted.
pub fn list_named_netns() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_RUN_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {NETNS_RUN_DIR}"), e)),
    };
    let mut names = Vec::new();
    for e in entries {
        let e = e.ctx(|| format!("listing {NETNS_RUN_DIR}"))?;
        if let Some(n) = e.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Runs the synchronous `f` on a new OS thread that first entered `netns`,
/// and waits for it. Blocks the caller: from async code prefer
/// [`run_in_netns`]. A panic in `f` is re-raised here.
pub fn in_netns<T: Send>(netns: &Netns, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("weft-netns".into())
            .spawn_scoped(s, || -> Result<T> {
                setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)
                    .ctx(|| format!("entering {netns}"))?;
                Ok(f())
            })
            .ctx(|| format!("spawning a thread for {netns}"))?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Runs the async `f` inside `netns`, on a dedicated OS thread with its own
/// current-thread tokio runtime, and waits for it without blocking.
///
/// `f` may open a [`crate::Netlink`] (it lands in `netns`), create sockets
/// or TAP devices (they keep `netns` when handed out) and spawn tasks; the
/// runtime and its tasks end when `f`'s future completes, so do not return
/// a `Netlink` from it (use [`crate::Netlink::open_in`] instead). A panic in
/// `f` is re-raised here.
pub async fn run_in_netns<F, Fut, T>(netns: &Netns, f: F) -> Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let ns = netns.try_clone()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("weft-netns".into())
        .spawn(move || {
            let run = || -> Result<T> {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).ctx(|| format!("entering {ns}"))?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ctx(|| format!("starting a runtime in {ns}"))?;
                Ok(rt.block_on(f()))
            };
            let _ = tx.send(run());
        })
        .ctx(|| format!("spawning a thread for {netns}"))?;
    match rx.await {
        Ok(r) => r,
        // The sender was dropped without sending: the closure panicked.
        Err(_) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => Err(Error::msg(
                format!("running in {netns}"),
                "thread ended without a result",
            )),
        },
    }
}

/// Blocking form of [`run_in_netns`] for synchronous callers (a CLI's
/// `main`, tests); `f` need not be `'static`.
pub fn run_in_netns_blocking<F, Fut, T>(netns: &Netns, f: F) -> Result<T>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
    T: Send,
{
    in_netns(netns, || -> Result<T> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ctx(|| format!("starting a runtime in {netns}"))?;
        Ok(rt.block_on(f()))
    })?
}

/// Makes `cmd` start its child inside `netns`: a `pre_exec` hook calls
/// `setns` in the forked child just before `exec` (the parent is untouched).
/// Unlike `ip netns exec`, `/sys` is not remounted.
pub fn command_in_netns<'a>(cmd: &'a mut Command, netns: &Netns) -> Result<&'a mut Command> {
    use std::os::unix::process::CommandExt;
    let ns = netns.try_clone()?;
    // SAFETY: the hook only makes the setns system call, which is
    // async-signal-safe, on an fd the closure owns.
    unsafe {
        cmd.pre_exec(move || {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    Ok(cmd)
}

/// Spawns `cmd` inside `netns` (see [`command_in_netns`]).
pub fn spawn_in_netns(cmd: &mut Command, netns: &Netns) -> Result<Child> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    command_in_netns(cmd, netns)?
        .spawn()
        .ctx(|| format!("spawning {program} in {netns}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!("123".parse::<NetnsTarget>().unwrap(), NetnsTarget::Pid(123));
        assert_eq!(
            "/proc/1/ns/net".parse::<NetnsTarget>().unwrap(),
            NetnsTarget::Path("/proc/1/ns/net".into())
        );
        assert_eq!(
            "blue".parse::<NetnsTarget>().unwrap(),
            NetnsTarget::Named("blue".into())
        );
        assert_eq!(
            NetnsTarget::Named("blue".into()).path(),
            PathBuf::from("/run/netns/blue")
        );
        assert!("".parse::<NetnsTarget>().is_err());
        assert!("..".parse::<NetnsTarget>().is_err());
    }

    #[test]
    fn missing_namespace_error_is_plain() {
        let e = Netns::open(&NetnsTarget::Named("wnl-surely-absent".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no such network namespace: wnl-surely-absent"
        );
        assert_eq!(e.errno(), Some(Errno::ENOENT));
        let e = Netns::open(&NetnsTarget::Path("/etc/hostname".into())).unwrap_err();
        assert_eq!(e.to_string(), "/etc/hostname is not a network namespace");
    }
}
