//! The userspace datapath: weft's engine (in the agent's process) serves each network through a
//! TAP device plugged into the network's bridge, speaking VXLAN on the wire like the kernel does
//! for plain networks, and the encrypted transport for encrypted ones. The engine holds each
//! network's whole table; every change hands it the new one.
//!
//! On a host whose plain networks use the kernel's VXLAN, the same datapath carries only the
//! encrypted and GRE networks ([`UserspaceOptions::plain`] false): the engine then never binds
//! the VXLAN port, which the kernel holds (GRE uses a raw IP socket, no port).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use async_trait::async_trait;
use weft_engine::{
    Encap, Engine, EngineConfig, KeyPair, Limits, NetConfig, PresharedKey, PublicKey, Secure,
};
use weft_netlink::Netlink;
use weft_reconcile::{diff_network, names, NetChanges, NetDesired};

use crate::{Datapath, Removal};

/// Finds an encrypted network's pre-shared key on this host: (network name, the fingerprint
/// its record carries, if any) → the key, or an error that says which file is missing or
/// wrong. `None` as fingerprint means the network has no PSK.
pub type PskLoader = Arc<dyn Fn(&str, Option<&str>) -> Result<PresharedKey> + Send + Sync>;

/// How to start the engine.
pub struct UserspaceOptions {
    pub underlay: IpAddr,
    /// UDP port of VXLAN.
    pub vxlan_port: u16,
    /// UDP port of the encrypted transport.
    pub secure_port: u16,
    /// This host's static keys (its public key is in its host record).
    pub keys: KeyPair,
    pub psk: PskLoader,
    /// Session limits; `None`: the engine's defaults.
    pub limits: Option<Limits>,
    /// Whether plain VXLAN networks are carried here too (false where the kernel carries them).
    pub plain: bool,
}

pub struct UserspaceDatapath {
    engine: Arc<Engine>,
    nl: Netlink,
    psk: PskLoader,
    plain: bool,
    /// This host's secure port (the engine's default for peers that name none).
    secure_port: u16,
    /// What the engine was last given, per VNI: `sync` reports its difference to the new state.
    given: Mutex<BTreeMap<u32, NetDesired>>,
}

impl UserspaceDatapath {
    /// Starts the engine on this host's underlay address (the caller's network namespace). It
    /// binds its sockets only when a network needs them.
    pub async fn start(o: UserspaceOptions) -> Result<UserspaceDatapath> {
        let mut cfg = EngineConfig::new(o.underlay);
        cfg.port = o.vxlan_port;
        cfg.secure_port = o.secure_port;
        cfg.keys = Some(o.keys);
        if let Some(l) = o.limits {
            cfg.limits = l;
        }
        let engine = Engine::start(cfg)?;
        Ok(UserspaceDatapath {
            engine: Arc::new(engine),
            nl: Netlink::open()?,
            psk: o.psk,
            plain: o.plain,
            secure_port: o.secure_port,
            given: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, to read its counters and sessions beside the datapath (the agent's report).
    pub fn engine_handle(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    fn config(&self, net: &NetDesired) -> Result<NetConfig> {
        let encap = if net.encrypted {
            let psk = (self.psk)(&net.network, net.psk_fingerprint.as_deref())?;
            let mut peers = Vec::new();
            for (addr, key) in &net.peer_keys {
                match PublicKey::parse(key) {
                    Ok(k) => peers.push((*addr, k)),
                    Err(e) => tracing::warn!(network = %net.network, peer = %addr,
                        "the peer's public key is unusable ({e}); frames to it are dropped"),
                }
            }
            let keyless: Vec<&IpAddr> = net
                .flood
                .iter()
                .filter(|a| !net.peer_keys.contains_key(a))
                .collect();
            if !keyless.is_empty() {
                tracing::warn!(network = %net.network, peers = ?keyless,
                    "peers without a public key in their host record; frames to them are dropped");
            }
            // A peer whose record names its own secure port gets its messages there.
            let ports = net
                .peer_ports
                .iter()
                .filter(|(_, p)| **p != self.secure_port)
                .map(|(a, p)| (*a, *p))
                .collect();
            Encap::Encrypted(Secure { psk, peers, ports })
        } else if net.encap == weft_model::Encap::Gre {
            // GRE needs no UDP port: every host's engine carries it, whatever else it does.
            Encap::Gre
        } else if self.plain {
            Encap::Vxlan
        } else {
            anyhow::bail!(
                "network {} is plain, which this host carries on the kernel's VXLAN",
                net.network
            );
        };
        Ok(NetConfig {
            vni: net.vni,
            tap: names::tap(net.vni),
            mtu: net.mtu,
            fdb: net.fdb.iter().map(|e| (e.mac.0, e.dst)).collect(),
            flood: net.flood.iter().copied().collect(),
            neigh: net.neigh.iter().map(|n| (n.ip, n.mac.0)).collect(),
            encap,
            ..Default::default()
        })
    }

    /// Hands the engine the network's whole table; returns what changed since the last one.
    fn give(&self, net: &NetDesired) -> Result<NetChanges> {
        // An encrypted network whose PSK is missing or wrong here is not carried at all (never
        // in the clear): the error says which file.
        let cfg = self
            .config(net)
            .with_context(|| format!("network {} not carried", net.network))?;
        self.engine.set_network(cfg)?;
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
        let br = crate::bridge::ensure(&self.nl, net).await?;
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
        self.nl
            .set_mtu(&tap, u32::from(weft_engine::TAP_MTU))
            .await?;
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
