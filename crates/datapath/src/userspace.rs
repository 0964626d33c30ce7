//! The userspace datapath: weft's engine (in the agent's process) serves each network through a
//! TAP device plugged into the network's bridge, speaking VXLAN on the wire like the kernel does.
//! The engine holds each network's whole table; every change hands it the new one.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;

use anyhow::Result;
use async_trait::async_trait;
use weft_engine::{Engine, EngineConfig, NetConfig};
use weft_netlink::Netlink;
use weft_reconcile::{diff_network, names, NetChanges, NetDesired};

use crate::{Datapath, Removal};

pub struct UserspaceDatapath {
    engine: Engine,
    nl: Netlink,
    /// What the engine was last given, per VNI: `sync` reports its difference to the new state.
    given: Mutex<BTreeMap<u32, NetDesired>>,
}

impl UserspaceDatapath {
    /// Starts the engine on this host's underlay address (the caller's network namespace).
    pub async fn start(underlay: IpAddr, port: u16) -> Result<UserspaceDatapath> {
        let mut cfg = EngineConfig::new(underlay);
        cfg.port = port;
        let engine = Engine::start(cfg)?;
        Ok(UserspaceDatapath {
            engine,
            nl: Netlink::open()?,
            given: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn config(net: &NetDesired) -> NetConfig {
        NetConfig {
            vni: net.vni,
            tap: names::tap(net.vni),
            mtu: net.mtu,
            fdb: net.fdb.iter().map(|e| (e.mac.0, e.dst)).collect(),
            flood: net.flood.iter().copied().collect(),
            neigh: net.neigh.iter().map(|n| (n.ip, n.mac.0)).collect(),
            ..Default::default()
        }
    }

    /// Hands the engine the network's whole table; returns what changed since the last one.
    fn give(&self, net: &NetDesired) -> Result<NetChanges> {
        // Never carry an encrypted network in the clear.
        if net.encrypted {
            anyhow::bail!(
                "network {} is encrypted, which this engine does not carry yet",
                net.network
            );
        }
        self.engine.set_network(Self::config(net))?;
        let mut given = self.given.lock().expect("not poisoned");
        let before = given.insert(net.vni, net.clone()).unwrap_or_default();
        Ok(diff_network(
            &before.fdb,
            &before.flood,
            &before.neigh,
            &net.fdb,
            &net.flood,
            &net.neigh,
        ))
    }
}

#[async_trait]
impl Datapath for UserspaceDatapath {
    async fn present(&self) -> Result<Vec<u32>> {
        crate::bridge::present(&self.nl).await
    }

    async fn ensure(&self, net: &NetDesired) -> Result<()> {
        let br = self.nl.ensure_bridge(&net.bridge, net.mtu).await?;
        if !self
            .given
            .lock()
            .expect("not poisoned")
            .contains_key(&net.vni)
        {
            self.give(net)?;
        }
        let tap = names::tap(net.vni);
        // The TAP stays at the engine's large MTU: a frame over the network's MTU must reach the
        // engine, which answers it with an ICMP error, rather than be dropped by the bridge.
        self.nl.set_mtu(&tap, u32::from(weft_engine::TAP_MTU)).await?;
        self.nl.set_master(&tap, br.index).await?;
        self.nl.set_up(&tap).await?;
        Ok(())
    }

    async fn sync(&self, net: &NetDesired) -> Result<NetChanges> {
        self.give(net)
    }

    async fn add_missing(&self, net: &NetDesired) -> Result<NetChanges> {
        self.give(net)
    }

    async fn apply(&self, net: &NetDesired, _changes: &NetChanges) -> Result<()> {
        self.give(net).map(drop)
    }

    async fn remove(&self, vni: u32) -> Result<Removal> {
        if let Some(ports) = crate::bridge::endpoint_ports(&self.nl, vni).await? {
            if !ports.is_empty() {
                return Ok(Removal::Busy(ports));
            }
        }
        let had = self
            .given
            .lock()
            .expect("not poisoned")
            .remove(&vni)
            .is_some();
        if had {
            self.engine.remove_network(vni)?;
        }
        let tap = self.nl.delete_link(&names::tap(vni)).await?;
        let br = self.nl.delete_link(&names::bridge(vni)).await?;
        Ok(if had || tap || br {
            Removal::Removed
        } else {
            Removal::Absent
        })
    }

    async fn collect_orphans(&self, keep: &HashSet<String>) -> Result<Vec<String>> {
        crate::bridge::collect_orphans(&self.nl, keep).await
    }
}
