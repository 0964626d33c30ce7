//! Named network namespaces for the lab, on top of `weft-netlink`'s (create, delete, list, open), plus
//! what the lab needs besides: namespace identities to find a lab's processes, and starting processes
//! inside a netns the way `ip netns exec` does (with /etc/netns binds) and optionally detached.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
pub use weft_netlink::Netns;
use weft_netlink::NetnsTarget;

pub const NETNS_RUN_DIR: &str = weft_netlink::NETNS_RUN_DIR;
pub const NETNS_ETC_DIR: &str = "/etc/netns";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Names of every named netns on the machine.
pub fn list() -> Result<Vec<String>> {
    Ok(weft_netlink::list_named_netns()?)
}

/// The identity of a network namespace (device and inode of its nsfs file).
pub type NsId = (u64, u64);

/// The identity of a named netns; None if it is not there or not mounted.
pub fn id_of(name: &str) -> Option<NsId> {
    let m = fs::metadata(path(name)).ok()?;
    // An unmounted leftover file is a regular file on tmpfs, not an nsfs inode: skip it.
    let root = fs::metadata("/proc/self/ns/net").ok()?;
    (m.dev() == root.dev()).then(|| (m.dev(), m.ino()))
}

/// The network namespace of a process, if it can be read.
pub fn id_of_pid(pid: i32) -> Option<NsId> {
    let m = fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Creates a named netns, like `ip netns add`. Fails if one of that name exists.
pub fn create(name: &str) -> Result<Netns> {
    Ok(weft_netlink::create_named_netns(name)?)
}

/// Deletes a named netns, like `ip netns delete`; a missing one is fine. The namespace itself lives on
/// while processes are still in it.
pub fn delete(name: &str) -> Result<()> {
    weft_netlink::delete_named_netns(name)?;
    Ok(())
}

pub fn open(name: &str) -> Result<Netns> {
    Ok(Netns::open(&NetnsTarget::Named(name.to_string()))?)
}

/// How to start a process inside a netns.
#[derive(Debug, Clone, Default)]
pub struct SpawnOpts {
    /// Start a new session (detached from the terminal, not hit by its Ctrl-C).
    pub setsid: bool,
}

/// Sets a command up to run inside the named netns, as `ip netns exec` would: the child enters the
/// netns and, if /etc/netns/NAME exists, gets a private mount namespace with each file there
/// bind-mounted over its /etc counterpart. /sys is not remounted (that would hide /sys/fs/cgroup).
pub fn prepare_command(
    cmd: &mut std::process::Command,
    name: &str,
    opts: &SpawnOpts,
) -> Result<()> {
    let ns = open(name)?.try_clone()?;
    let mut binds: Vec<(CString, CString)> = Vec::new();
    let etc = Path::new(NETNS_ETC_DIR).join(name);
    if let Ok(rd) = fs::read_dir(&etc) {
        for e in rd.flatten() {
            let src = e.path();
            let dst = Path::new("/etc").join(e.file_name());
            binds.push((
                CString::new(src.as_os_str().as_encoded_bytes())?,
                CString::new(dst.as_os_str().as_encoded_bytes())?,
            ));
        }
    }
    let have_etc = etc.is_dir();
    let setsid = opts.setsid;
    // SAFETY: the hook runs between fork and exec and only makes system calls, with every argument
    // prepared beforehand (no allocation).
    unsafe {
        cmd.pre_exec(move || {
            if setsid {
                nix::unistd::setsid().map_err(io::Error::from)?;
            }
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            if have_etc {
                unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_SLAVE | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(io::Error::from)?;
                for (src, dst) in &binds {
                    // Like `ip netns exec`: a file without a counterpart in /etc is skipped.
                    let _ = mount(
                        Some(src.as_c_str()),
                        dst.as_c_str(),
                        Some(c"none"),
                        MsFlags::MS_BIND,
                        None::<&str>,
                    );
                }
            }
            Ok(())
        });
    }
    Ok(())
}

/// A tokio command for `program args…` inside the named netns.
pub fn command(
    name: &str,
    program: impl AsRef<std::ffi::OsStr>,
) -> Result<tokio::process::Command> {
    let mut std_cmd = std::process::Command::new(program);
    prepare_command(&mut std_cmd, name, &SpawnOpts::default())?;
    Ok(tokio::process::Command::from(std_cmd))
}
