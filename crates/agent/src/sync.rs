//! The watch loop and incremental reconciliation.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use weft_datapath::{Datapath, Removal};
use weft_engine::Engine;
use weft_firewall::Firewall;
use weft_model::{keys, Endpoint, HostReport, PeerReport, Record, SCHEMA_VERSION};
use weft_reconcile::{desired, diff_network, firewall, ClusterState, HostFirewall, NetDesired};
use weft_store::{Event, Store, StoreError};

use crate::Registration;

/// What woke the watch loop.
enum Step {
    Events(Vec<Event>),
    KeepAlive,
    Resync,
    Retry,
    Report,
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::Events(_) => "events",
            Step::KeepAlive => "keepalive",
            Step::Resync => "resync",
            Step::Retry => "retry",
            Step::Report => "report",
        }
    }
}

pub struct Syncer {
    id: String,
    store: Arc<dyn Store>,
    dp: Box<dyn Datapath>,
    reg: Registration,
    state: ClusterState,
    /// What the datapath holds, as far as this agent applied it.
    applied: BTreeMap<String, NetDesired>,
    /// Networks whose last apply failed: next pass reads the kernel and syncs them whole.
    dirty: BTreeSet<String>,
    /// This host's endpoints as last seen while it was registered; restored if the lease is lost.
    last_local: Vec<Endpoint>,
    /// The peer report last written to the store.
    reported: Option<Vec<PeerReport>>,
    resync_every: Duration,
    /// The userspace engine, for the handshake state of encrypted networks' peers.
    engine: Option<Arc<Engine>>,
    /// The last error programming each network, so a failure retried every second is logged
    /// once (and again when it changes), not every time.
    errors: BTreeMap<String, String>,
    /// The host's packet filter (weft's own tables) and what it was last given; `None` until
    /// an apply succeeded, so a failed one is retried.
    firewall: Box<dyn Firewall>,
    fw_applied: Option<HostFirewall>,
    fw_error: Option<String>,
}

/// How often the peer report is refreshed while encrypted networks are carried (their
/// handshake states change without any change in the store).
const REPORT_EVERY: Duration = Duration::from_secs(3);

impl Syncer {
    pub fn new(
        id: String,
        store: Arc<dyn Store>,
        dp: Box<dyn Datapath>,
        firewall: Box<dyn Firewall>,
        reg: Registration,
    ) -> Syncer {
        Syncer {
            id,
            store,
            dp,
            reg,
            state: ClusterState::default(),
            applied: BTreeMap::new(),
            dirty: BTreeSet::new(),
            last_local: Vec::new(),
            reported: None,
            resync_every: Duration::from_secs(30),
            engine: None,
            errors: BTreeMap::new(),
            firewall,
            fw_applied: None,
            fw_error: None,
        }
    }

    pub fn set_resync(&mut self, every: Duration) {
        self.resync_every = every;
    }

    pub fn set_engine(&mut self, engine: Option<Arc<Engine>>) {
        self.engine = engine;
    }

    /// Lists, reconciles fully, then follows the watch until it fails (it returns only errors).
    pub async fn run(&mut self) -> Result<std::convert::Infallible> {
        let (state, rev) = crate::load_state(self.store.as_ref()).await?;
        self.state = state;
        if !self.state.hosts.contains_key(&self.id) {
            self.restore_registration().await?;
        }
        self.remember_local();
        self.converge(true).await;
        let mut watch = self.store.watch(keys::ROOT, rev + 1).await?;
        let mut keepalive = tokio::time::interval(self.reg.ttl() / 3);
        let mut resync = tokio::time::interval(self.resync_every);
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        let mut report = tokio::time::interval(REPORT_EVERY);
        resync.tick().await;
        loop {
            let step = tokio::select! {
                batch = watch.events.recv() => match batch {
                    None => return Err(StoreError::Unavailable("watch ended".into()).into()),
                    Some(r) => Step::Events(r?),
                },
                _ = keepalive.tick() => Step::KeepAlive,
                _ = resync.tick() => Step::Resync,
                _ = retry.tick(), if !self.dirty.is_empty() || self.fw_applied.is_none() => Step::Retry,
                _ = report.tick(), if self.applied.values().any(|d| d.encrypted) => Step::Report,
            };
            let started = Instant::now();
            let what = step.name();
            let rev = match &step {
                Step::Events(events) => events.last().map(|e| e.kv.mod_revision),
                _ => None,
            };
            match step {
                Step::Events(events) => {
                    if crate::only_reports(&events) {
                        continue;
                    }
                    for e in crate::apply_events(&mut self.state, &events) {
                        tracing::error!("ignoring record: {e}");
                    }
                    if !self.state.hosts.contains_key(&self.id) {
                        // Our lease ran out: keep the datapath as it is and put our records back.
                        self.restore_registration().await?;
                        continue;
                    }
                    self.remember_local();
                    self.converge(false).await;
                }
                Step::KeepAlive => {
                    if !self.reg.keep_alive().await? {
                        self.restore_registration().await?;
                    }
                }
                Step::Resync => self.converge(true).await,
                Step::Retry => self.converge(false).await,
                Step::Report => self.report().await,
            }
            // What a step held up: store events wait until it is done.
            tracing::debug!(
                step = what,
                rev,
                ms = started.elapsed().as_secs_f64() * 1e3,
                waiting = watch.events.len(),
                "watch loop step"
            );
        }
    }

    fn remember_local(&mut self) {
        self.last_local = self.state.endpoints_on(&self.id).cloned().collect();
    }

    async fn restore_registration(&mut self) -> Result<()> {
        // The report lived under the lost lease too.
        self.reported = None;
        self.reg.reregister(&self.last_local).await
    }

    /// Brings the datapath to the desired state. `full` re-reads the kernel for every network and
    /// removes leftovers; otherwise only the differences to what was applied are applied.
    async fn converge(&mut self, full: bool) {
        let want = desired(&self.id, &self.state);

        let stale: Vec<String> = self
            .applied
            .keys()
            .filter(|n| !want.contains_key(*n))
            .cloned()
            .collect();
        let mut remove_vnis: Vec<u32> = stale.iter().map(|n| self.applied[n].vni).collect();
        for n in &stale {
            self.applied.remove(n);
        }
        self.dirty.retain(|n| want.contains_key(n));
        self.errors.retain(|n, _| want.contains_key(n));
        if full {
            match self.dp.present().await {
                Ok(vnis) => {
                    let wanted: HashSet<u32> = want.values().map(|d| d.vni).collect();
                    remove_vnis.extend(vnis.into_iter().filter(|v| !wanted.contains(v)));
                }
                Err(e) => tracing::error!("reading the datapath: {e:#}"),
            }
        }
        if full || !remove_vnis.is_empty() {
            self.collect_orphans().await;
        }
        remove_vnis.sort();
        remove_vnis.dedup();
        for vni in remove_vnis {
            match self.dp.remove(vni).await {
                Ok(Removal::Removed) => tracing::info!(vni, "network removed from this host"),
                Ok(Removal::Busy(ports)) => {
                    tracing::warn!(vni, ?ports, "network has no endpoints here but interfaces are still plugged in; keeping it")
                }
                Ok(Removal::Absent) => {}
                Err(e) => tracing::error!(vni, "removing network: {e:#}"),
            }
        }

        for (name, d) in &want {
            // Anything but the forwarding entries changed (the path, keys, PSK): the whole
            // network is handed over again.
            let incremental = !full
                && !self.dirty.contains(name)
                && self.applied.get(name).is_some_and(|a| {
                    a.vni == d.vni
                        && a.mtu == d.mtu
                        && a.path == d.path
                        && a.encrypted == d.encrypted
                        && a.psk_fingerprint == d.psk_fingerprint
                        && a.peer_keys == d.peer_keys
                        && a.peer_ports == d.peer_ports
                        && a.bridge_l3 == d.bridge_l3
                });
            let res = if incremental {
                let a = &self.applied[name];
                let changes = diff_network(&a.fdb, &a.flood, &a.neigh, &d.fdb, &d.flood, &d.neigh);
                if changes.is_empty() {
                    continue;
                }
                tracing::debug!(network = %name, changes = changes.count(), "applying");
                self.dp.apply(d, &changes).await
            } else {
                match self.dp.ensure(d).await {
                    Ok(()) => self.dp.sync(d).await.map(|c| {
                        if !c.is_empty() {
                            tracing::info!(network = %name, changes = c.count(), "reconciled with the kernel");
                        }
                    }),
                    Err(e) => Err(e),
                }
            };
            match res {
                Ok(()) => {
                    if !incremental && !self.applied.contains_key(name) {
                        // A bridge the filter may have found missing (its loopback routing for
                        // published ports is per device): write the filter again.
                        self.fw_applied = None;
                    }
                    self.applied.insert(name.clone(), d.clone());
                    self.dirty.remove(name);
                    if self.errors.remove(name).is_some() {
                        tracing::info!(network = %name, "datapath programmed after earlier errors");
                    }
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    if self.errors.get(name) != Some(&text) {
                        tracing::error!(network = %name, "programming the datapath: {text}; will retry every second");
                    } else {
                        tracing::debug!(network = %name, "programming the datapath: {text}");
                    }
                    self.errors.insert(name.clone(), text);
                    self.applied.remove(name);
                    self.dirty.insert(name.clone());
                }
            }
        }
        self.sync_firewall(full, &want).await;
        self.report().await;
    }

    /// Brings weft's tables in the host's packet filter to what the networks carried here need
    /// (on a full pass also when unchanged but the tables are gone, say flushed by someone).
    async fn sync_firewall(&mut self, full: bool, want: &BTreeMap<String, NetDesired>) {
        let fw = firewall(&self.id, &self.state, want);
        if self.fw_applied.as_ref() == Some(&fw) {
            if !full {
                return;
            }
            match self.firewall.in_place(&fw).await {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!("weft's nftables tables were removed; writing them again")
                }
                Err(e) => tracing::warn!("checking the packet filter: {e:#}"),
            }
        }
        match self.firewall.apply(&fw).await {
            Ok(()) => {
                if self.fw_error.take().is_some() {
                    tracing::info!("packet filter written after earlier errors");
                }
                self.fw_applied = Some(fw);
            }
            Err(e) => {
                let text = format!("{e:#}");
                if self.fw_error.as_ref() != Some(&text) {
                    tracing::error!("writing the packet filter: {text}; will retry every second");
                }
                self.fw_error = Some(text);
                self.fw_applied = None;
            }
        }
    }

    /// Writes this host's peer report when it changed (under the lease, so it goes with the host).
    async fn report(&mut self) {
        let sessions = self
            .engine
            .as_ref()
            .map(|e| e.peer_states())
            .unwrap_or_default();
        let peers = weft_reconcile::report::peers_with(&self.state, &self.applied, |d, addr| {
            crate::stats::handshake(&sessions, d, addr)
        });
        if self.reported.as_ref() == Some(&peers) {
            return;
        }
        let rec = HostReport {
            schema: SCHEMA_VERSION,
            host: self.id.clone(),
            peers: peers.clone(),
        };
        match self
            .store
            .put(
                &keys::status(&self.id),
                rec.encode(),
                Some(self.reg.lease()),
            )
            .await
        {
            Ok(_) => self.reported = Some(peers),
            Err(e) => tracing::warn!("writing the peer report: {e}"),
        }
    }

    /// Removes host-side interfaces of endpoints that are gone from the store (for example after
    /// `network rm --force`). Reads the store afresh so that an attach in progress, whose record is
    /// written before its interfaces, is never mistaken for an orphan.
    async fn collect_orphans(&self) {
        let fresh = match crate::load_state(self.store.as_ref()).await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("skipping orphan collection: {e:#}");
                return;
            }
        };
        if !fresh.hosts.contains_key(&self.id) {
            return;
        }
        let keep: HashSet<String> = fresh
            .endpoints_on(&self.id)
            .map(|e| e.host_ifname.clone())
            .collect();
        match self.dp.collect_orphans(&keep).await {
            Ok(gone) if !gone.is_empty() => tracing::info!(
                ?gone,
                "removed interfaces of endpoints no longer in the store"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!("collecting orphan interfaces: {e:#}"),
        }
    }
}
