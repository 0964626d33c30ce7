//! Kernel network programming for weft, over rtnetlink.
//!
//! Everything the agent, the CLI and the lab do to the kernel goes through
//! here: links, Linux bridges, VXLAN devices, veth pairs, addresses, routes,
//! VXLAN FDB and neighbour entries, network namespaces and sysctls. Nothing
//! shells out to `ip` or `bridge`.
//!
//! A [`Netlink`] is bound to the network namespace its socket was opened in
//! ([`Netlink::open`] for the caller's, [`Netlink::open_in`] for another); it
//! can then be used from any task or thread. Code that must *run* inside a
//! namespace (sysctls, sockets, child processes) uses [`run_in_netns`] and
//! friends, which call `setns` only on a dedicated OS thread, never on a
//! tokio worker.
//!
//! Errors name the object, e.g. `creating vxlan wvx-42 (vni 42): File exists`,
//! and expose the errno ([`Error::errno`]). Operations are idempotent where
//! that is natural: `ensure_*` converge, `add_*` accept an identical existing
//! object, deletes report `false` for an absent object.

mod addr;
mod bridge;
mod error;
mod fdb;
mod links;
mod mac;
mod neigh;
mod netns;
mod request;
mod route;
pub mod sysctl;
mod veth;
mod vxlan;

use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::Arc;

pub use error::{Error, Result};
pub use fdb::FdbEntry;
pub use ipnet::IpNet;
pub use links::LinkInfo;
pub use mac::{MacAddr, ParseMacError};
pub use neigh::NeighEntry;
pub use netns::{
    command_in_netns, create_named_netns, delete_named_netns, ensure_named_netns, in_netns,
    list_named_netns, run_in_netns, run_in_netns_blocking, spawn_in_netns, Netns, NetnsTarget,
    NETNS_RUN_DIR,
};
pub use vxlan::{VxlanInfo, VxlanSpec, VXLAN_PORT};

/// Re-export of the underlying crate, for callers needing what is not wrapped.
pub use rtnetlink;

use error::Context;

/// Result of an `ensure_*` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ensured {
    /// Interface index of the link.
    pub index: u32,
    /// True if this call created the link (or replaced a mismatching one,
    /// which drops its FDB and neighbour entries); false if an existing link
    /// was kept.
    pub created: bool,
}

/// A route-netlink connection bound to one network namespace.
///
/// Cheap to clone; clones share the connection, whose background task is
/// stopped when the last clone is dropped.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    _conn: Arc<ConnTask>,
}

struct ConnTask(tokio::task::JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a connection in the calling thread's network namespace and
    /// spawns its driver on the current tokio runtime (errors outside one).
    pub fn open() -> Result<Netlink> {
        let sock = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)
            .ctx(|| "opening a route netlink socket")?;
        Self::from_socket(sock)
    }

    /// Opens a connection inside `netns` without moving the caller: the socket
    /// is created on a short-lived thread that entered the namespace (a
    /// socket keeps the namespace it was created in), then driven by the
    /// current tokio runtime.
    pub fn open_in(netns: &Netns) -> Result<Netlink> {
        let sock = in_netns(netns, || {
            rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)
        })?
        .ctx(|| format!("opening a route netlink socket in {netns}"))?;
        Self::from_socket(sock)
    }

    fn from_socket(sock: rtnetlink::sys::Socket) -> Result<Netlink> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::msg("opening netlink", e.to_string()))?;
        sock.set_non_blocking(true)
            .ctx(|| "opening netlink: setting O_NONBLOCK")?;
        // SAFETY: the fd comes from a socket we own and hand over whole.
        let sock = unsafe { rtnetlink::sys::TokioSocket::from_raw_fd(sock.into_raw_fd()) };
        let (conn, handle, _unsolicited) = rtnetlink::from_socket(sock);
        let task = rt.spawn(conn);
        Ok(Netlink {
            handle,
            _conn: Arc::new(ConnTask(task)),
        })
    }

    /// The raw rtnetlink handle, for requests this crate does not wrap.
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

/// Checks an interface name the way the kernel will (1–15 bytes, no `/`,
/// `:` or whitespace), so callers get a clear error instead of `EINVAL`.
pub(crate) fn check_ifname(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::from_errno(
            format!("invalid interface name {name:?} ({why})"),
            nix::errno::Errno::EINVAL,
        ))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 15 {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        return bad("contains '/', ':', NUL or whitespace");
    }
    Ok(())
}
