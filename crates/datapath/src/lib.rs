//! Datapath drivers. The trait lives here; each driver has its own module (`kernel` today, the
//! userspace engine later). The agent and `attach` drive them through the same desired-state model.

pub mod bridge;
pub mod kernel;
pub mod select;
pub mod userspace;

use std::collections::HashSet;

use anyhow::Result;
use async_trait::async_trait;
use weft_reconcile::{NetChanges, NetDesired};

pub use kernel::KernelDatapath;
pub use select::Datapaths;
pub use userspace::{PskLoader, UserspaceDatapath, UserspaceOptions};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Not removed because containers' interfaces are still plugged into the bridge.
    Busy(Vec<String>),
    Absent,
}

/// What `attach` (a short-lived process beside the agent) does to a network's datapath before it
/// plugs the container in: with the kernel datapath, the devices and this host's entries at once,
/// so the container can talk as soon as attach returns; with the userspace engine, which lives in
/// the agent, only the bridge: the agent adds the engine's uplink when it sees the endpoint.
pub async fn prepare_attach(net: &NetDesired, underlay: std::net::IpAddr, port: u16) -> Result<()> {
    match net.path {
        weft_reconcile::Path::Kernel => {
            let dp = KernelDatapath::new(underlay, port).await?;
            dp.ensure(net).await?;
            dp.add_missing(net).await?;
        }
        weft_reconcile::Path::Userspace => {
            bridge::ensure(&weft_netlink::Netlink::open()?, net).await?;
        }
    }
    Ok(())
}

#[async_trait]
pub trait Datapath: Send + Sync {
    /// VNIs of the networks this host currently has devices for.
    async fn present(&self) -> Result<Vec<u32>>;
    /// Creates the network's bridge and uplink if missing; leaves a correct one untouched.
    async fn ensure(&self, net: &NetDesired) -> Result<()>;
    /// Reads what the host holds for the network, and adds/removes only the difference.
    async fn sync(&self, net: &NetDesired) -> Result<NetChanges>;
    /// Like `sync`, but only adds what is missing and removes nothing: for callers other than the
    /// agent (attach), whose view of the store may be older than the agent's, so that they never
    /// undo what the agent just programmed.
    async fn add_missing(&self, net: &NetDesired) -> Result<NetChanges>;
    /// Applies known changes without reading the host's state first (the incremental path).
    async fn apply(&self, net: &NetDesired, changes: &NetChanges) -> Result<()>;
    /// Removes a network's devices unless endpoints are still plugged in.
    async fn remove(&self, vni: u32) -> Result<Removal>;
    /// Deletes host-side endpoint interfaces that no endpoint record names any more; returns them.
    async fn collect_orphans(&self, keep: &HashSet<String>) -> Result<Vec<String>>;
}
