//! The kernel datapath: a Linux bridge per network and a VXLAN device (no learning, ARP/ND proxy)
//! whose FDB and neighbour entries are programmed from the store, so that remote MACs and
//! addresses are known before the first packet and nothing is flooded to learn them.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use weft_model::Mac;
use weft_netlink::{MacAddr, Netlink, VxlanSpec};
use weft_reconcile::{diff_network, names, FdbEntry, NeighEntry, NetChanges, NetDesired};

use crate::{Datapath, Removal};

pub struct KernelDatapath {
    nl: Netlink,
    underlay: IpAddr,
    port: u16,
}

impl KernelDatapath {
    pub async fn new(underlay: IpAddr, port: u16) -> Result<KernelDatapath> {
        Ok(KernelDatapath {
            nl: Netlink::open()?,
            underlay,
            port,
        })
    }

    /// Fails with a clear error when the kernel lacks what this datapath needs, by creating (and
    /// removing) a throwaway bridge and VXLAN device.
    pub async fn probe(&self) -> Result<()> {
        let br = "wbrprobe";
        let vx = "wvxprobe";
        let result = async {
            let b = self
                .nl
                .ensure_bridge(br, 1500)
                .await
                .context("Linux bridge support")?;
            self.nl
                .ensure_vxlan(&VxlanSpec {
                    name: vx.into(),
                    vni: 0xFF_FFFE,
                    local: self.underlay,
                    port: self.port,
                    mtu: 1450,
                    bridge: Some(b.index),
                })
                .await
                .context("VXLAN support (module vxlan)")?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        let _ = self.nl.delete_link(vx).await;
        let _ = self.nl.delete_link(br).await;
        result
    }

    /// What `sync` would change, without changing anything (for `weft doctor`).
    pub async fn drift(&self, net: &NetDesired) -> Result<NetChanges> {
        let (fdb, flood, neigh) = self.entries(net).await?;
        Ok(diff_network(
            &fdb, &flood, &neigh, &net.fdb, &net.flood, &net.neigh,
        ))
    }

    /// The unicast FDB, flood and neighbour entries weft manages on the network's VXLAN device.
    pub async fn entries(
        &self,
        net: &NetDesired,
    ) -> Result<(BTreeSet<FdbEntry>, BTreeSet<IpAddr>, BTreeSet<NeighEntry>)> {
        let index = self.vxlan_index(net).await?;
        self.observe(index).await
    }

    async fn vxlan_index(&self, net: &NetDesired) -> Result<u32> {
        self.nl
            .link_by_name(&net.vxlan)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| {
                anyhow!(
                    "vxlan device {} of network {} is missing",
                    net.vxlan,
                    net.network
                )
            })
    }

    /// The entries the kernel holds on a network's VXLAN device that weft manages: unicast and
    /// flood FDB entries with a remote destination, and permanent neighbours.
    async fn observe(
        &self,
        index: u32,
    ) -> Result<(BTreeSet<FdbEntry>, BTreeSet<IpAddr>, BTreeSet<NeighEntry>)> {
        let mut fdb = BTreeSet::new();
        let mut flood = BTreeSet::new();
        for e in self.nl.fdb_dump(index).await? {
            let Some(dst) = e.dst else { continue };
            if e.mac.is_zero() {
                flood.insert(dst);
            } else {
                fdb.insert(FdbEntry {
                    mac: Mac(e.mac.octets()),
                    dst,
                });
            }
        }
        let neigh = self
            .nl
            .neigh_dump(index)
            .await?
            .into_iter()
            .filter(|n| n.permanent)
            .map(|n| NeighEntry {
                ip: n.ip,
                mac: Mac(n.mac.octets()),
            })
            .collect();
        Ok((fdb, flood, neigh))
    }

    async fn apply_to(&self, index: u32, c: &NetChanges) -> Result<()> {
        for e in &c.fdb_del {
            self.nl.fdb_del(index, MacAddr(e.mac.0), e.dst).await?;
        }
        for n in &c.neigh_del {
            self.nl.neigh_del(index, n.ip).await?;
        }
        for d in &c.flood_del {
            self.nl.fdb_del(index, MacAddr([0; 6]), *d).await?;
        }
        // Neighbours before FDB entries is not needed for correctness, but FDB first means the
        // first packet after an ARP answer already has its destination.
        for e in &c.fdb_add {
            self.nl.fdb_add(index, MacAddr(e.mac.0), e.dst).await?;
        }
        for n in &c.neigh_add {
            self.nl.neigh_set(index, n.ip, MacAddr(n.mac.0)).await?;
        }
        for d in &c.flood_add {
            self.nl.fdb_append_flood(index, *d).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Datapath for KernelDatapath {
    async fn present(&self) -> Result<Vec<u32>> {
        crate::bridge::present(&self.nl).await
    }

    async fn ensure(&self, net: &NetDesired) -> Result<()> {
        if net.encrypted {
            anyhow::bail!(
                "network {} is encrypted, which the kernel datapath cannot carry",
                net.network
            );
        }
        let br = crate::bridge::ensure(&self.nl, net).await?;
        self.nl
            .ensure_vxlan(&VxlanSpec {
                name: net.vxlan.clone(),
                vni: net.vni,
                local: self.underlay,
                port: self.port,
                mtu: net.mtu,
                bridge: Some(br.index),
            })
            .await?;
        Ok(())
    }

    async fn sync(&self, net: &NetDesired) -> Result<NetChanges> {
        let index = self.vxlan_index(net).await?;
        let (fdb, flood, neigh) = self.observe(index).await?;
        let changes = diff_network(&fdb, &flood, &neigh, &net.fdb, &net.flood, &net.neigh);
        self.apply_to(index, &changes).await?;
        Ok(changes)
    }

    async fn add_missing(&self, net: &NetDesired) -> Result<NetChanges> {
        let index = self.vxlan_index(net).await?;
        let (fdb, flood, neigh) = self.observe(index).await?;
        let mut changes = diff_network(&fdb, &flood, &neigh, &net.fdb, &net.flood, &net.neigh);
        changes.fdb_del.clear();
        changes.flood_del.clear();
        changes.neigh_del.clear();
        self.apply_to(index, &changes).await?;
        Ok(changes)
    }

    async fn apply(&self, net: &NetDesired, changes: &NetChanges) -> Result<()> {
        let index = self.vxlan_index(net).await?;
        self.apply_to(index, changes).await
    }

    async fn remove(&self, vni: u32) -> Result<Removal> {
        if let Some(ports) = crate::bridge::endpoint_ports(&self.nl, vni).await? {
            if !ports.is_empty() {
                return Ok(Removal::Busy(ports));
            }
        }
        let a = self.nl.delete_link(&names::vxlan(vni)).await?;
        let b = self.nl.delete_link(&names::bridge(vni)).await?;
        Ok(if a || b {
            Removal::Removed
        } else {
            Removal::Absent
        })
    }

    async fn collect_orphans(&self, keep: &HashSet<String>) -> Result<Vec<String>> {
        crate::bridge::collect_orphans(&self.nl, keep).await
    }
}
