//! Names: the resolver follows the store on its own watch, in its own task. A name's appearance
//! and withdrawal then never wait behind datapath work in the watch loop of `sync.rs` (a full
//! resync reads the kernel for every network and runs `nft`; netlink calls wait for RTNL, and under
//! namespace churn such steps took up to a few hundred milliseconds, store events waiting behind
//! them). The datapath keeps its own watch, so its ordering is untouched.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use weft_dns::{DnsServer, DnsStats};
use weft_model::keys;
use weft_reconcile::ClusterState;
use weft_store::{Store, StoreError};

use crate::Backoff;

/// How often resolvers are checked against their containers' namespaces, and counters written.
const DNS_TICK: Duration = Duration::from_secs(1);

pub struct NameSync {
    id: String,
    store: Arc<dyn Store>,
    dns: DnsServer,
    stats_file: PathBuf,
    /// The counters last written.
    stats: Option<DnsStats>,
    state: ClusterState,
    /// Local containers as of the last update.
    local: BTreeSet<String>,
}

impl NameSync {
    pub fn new(id: String, store: Arc<dyn Store>, dns: DnsServer, stats_file: PathBuf) -> Self {
        NameSync {
            id,
            store,
            dns,
            stats_file,
            stats: None,
            state: ClusterState::default(),
            local: BTreeSet::new(),
        }
    }

    /// Follows the store until dropped; after store trouble it lists and watches again (the
    /// resolvers keep answering from the last map meanwhile).
    pub async fn run_forever(mut self) {
        let mut backoff = Backoff::new();
        loop {
            let started = Instant::now();
            let Err(e) = self.run().await;
            let wait = backoff.failed(started.elapsed(), &e, "names kept as they are");
            tokio::time::sleep(wait).await;
        }
    }

    async fn run(&mut self) -> Result<Infallible> {
        let (state, rev) = crate::load_state(self.store.as_ref()).await?;
        self.state = state;
        self.update().await;
        let mut watch = self.store.watch(keys::ROOT, rev + 1).await?;
        let mut tick = tokio::time::interval(DNS_TICK);
        loop {
            tokio::select! {
                batch = watch.events.recv() => {
                    let events = match batch {
                        None => return Err(StoreError::Unavailable("watch ended".into()).into()),
                        Some(r) => r?,
                    };
                    if crate::only_reports(&events) {
                        continue;
                    }
                    let started = Instant::now();
                    // The datapath loop logs records it cannot read; once is enough.
                    let _ = crate::apply_events(&mut self.state, &events);
                    self.update().await;
                    tracing::debug!(
                        rev = events.last().map(|e| e.kv.mod_revision),
                        ms = started.elapsed().as_secs_f64() * 1e3,
                        "names updated"
                    );
                }
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    /// Names from the whole cluster; a resolver in every local container, for its networks.
    async fn update(&mut self) {
        // Our lease ran out (the datapath loop puts our records back): until then the local
        // containers keep their resolvers and the map stays as it was.
        if !self.state.hosts.contains_key(&self.id) {
            return;
        }
        self.dns
            .set_names(self.state.networks.values(), self.state.endpoints.values());
        let local = self.state.containers_on(&self.id);
        // The resolv.conf of named containers follows too (attach and detach write it first).
        let domain = self.dns.config().domain.clone();
        for gone in self.local.iter().filter(|c| !local.contains_key(*c)) {
            if let Err(e) = weft_control::resolver::sync_file(gone, Some(&domain), &[]) {
                tracing::warn!("{e:#}");
            }
        }
        for (c, nets) in &local {
            if let Err(e) = weft_control::resolver::sync_file(c, Some(&domain), nets) {
                tracing::warn!("{e:#}");
            }
        }
        self.local = local.keys().cloned().collect();
        self.dns.set_local(local).await;
    }

    /// Closes resolvers of containers gone without a detach, retries failed ones, and writes the
    /// counters.
    async fn tick(&mut self) {
        self.dns.refresh().await;
        crate::stats::write_dns_stats(&self.stats_file, &self.dns.stats(), &mut self.stats);
    }
}
