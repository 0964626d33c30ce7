//! The agent: one per host. It registers the host under a lease and keeps it alive, follows the
//! store with a prefix watch, and turns every change into the smallest datapath change (never a
//! flush and rebuild). On start it reconciles against what the kernel already holds.

mod datapaths;
mod names;
mod register;
mod stats;
mod sync;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use weft_model::DatapathChoice;
use weft_store::{Store, StoreError};

pub use datapaths::limits_from_env;
pub use register::Registration;
pub use stats::{default_stats_file, STATS_EVERY};
pub use weft_engine::SECURE_PORT as DEFAULT_SECURE_PORT;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub store_url: String,
    /// Underlay interface name or address; None picks the first global IPv4 address.
    pub underlay: Option<String>,
    pub name: Option<String>,
    pub lease_ttl: Duration,
    pub vxlan_port: u16,
    /// How often the agent re-reads the kernel's state as a safety net.
    pub resync_every: Duration,
    /// Which datapath carries plain networks on this host.
    pub datapath: DatapathChoice,
    /// The host's private key file (made at first start, mode 0600); None: the default path.
    pub key_file: Option<std::path::PathBuf>,
    /// Where encrypted networks' pre-shared keys are (`NETWORK.psk`).
    pub psk_dir: PathBuf,
    /// UDP port of the encrypted transport.
    pub secure_port: u16,
    /// Session limits of the encrypted transport; None: the engine's defaults.
    pub limits: Option<weft_secure::Limits>,
    /// Where the engine's counters go (see [`stats`]); None: the default path. The resolver's
    /// counters go next to it, as `NAME.dns.json`.
    pub stats_file: Option<PathBuf>,
    /// Cluster DNS for the local containers; None: no resolver.
    pub dns: Option<weft_dns::DnsConfig>,
    /// The Docker network/IPAM plugin's socket; None: no plugin.
    pub docker_plugin: Option<PathBuf>,
    /// Docker's API socket, which the plugin reads networks' names from.
    pub docker_api: PathBuf,
}

/// Where a host's private key lives unless told otherwise; per host name, so that several agents
/// on one machine (the lab) each have their own.
pub fn default_key_file(host: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/var/lib/weft/keys/{host}.key"))
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            store_url: "embedded".into(),
            underlay: None,
            name: None,
            lease_ttl: Duration::from_secs(10),
            vxlan_port: weft_model::DEFAULT_VXLAN_PORT,
            resync_every: Duration::from_secs(30),
            datapath: DatapathChoice::Auto,
            key_file: None,
            psk_dir: PathBuf::from(weft_control::psk::DEFAULT_PSK_DIR),
            secure_port: weft_engine::SECURE_PORT,
            limits: None,
            stats_file: None,
            dns: Some(weft_dns::DnsConfig::new(
                weft_model::DEFAULT_DNS_DOMAIN,
                Vec::new(),
            )),
            docker_plugin: Some(PathBuf::from(weft_docker_plugin::DEFAULT_SOCKET)),
            docker_api: PathBuf::from(weft_docker_plugin::DEFAULT_DOCKER_API),
        }
    }
}

pub async fn run(cfg: AgentConfig) -> Result<()> {
    let id = weft_control::hosts::local_host_id(cfg.name.as_deref())?;
    weft_model::validate::name("host", &id)?;
    let underlay: IpAddr = resolve_underlay(cfg.underlay.as_deref()).await?;
    let key_file = cfg
        .key_file
        .clone()
        .unwrap_or_else(|| default_key_file(&id));
    let keys = weft_secure::keyfile::load_or_create(&key_file)?;
    let built = datapaths::build(&cfg, underlay, &keys).await?;
    let capabilities = built.capabilities.clone();
    let store: Arc<dyn Store> = weft_control::open_store(&cfg.store_url).await?;
    let record = Registration::record(
        &id,
        underlay,
        (cfg.vxlan_port, cfg.secure_port),
        capabilities.clone(),
        keys.public().to_base64(),
    );
    let record = weft_model::Host {
        // Attach reads it to write containers' resolv.conf search lists.
        dns_domain: cfg.dns.as_ref().map(|d| d.domain.clone()),
        ..record
    };
    let reg = Registration::register(store.clone(), record, cfg.lease_ttl).await?;
    tracing::info!(host = %id, %underlay, store = %cfg.store_url, lease = reg.lease(), ?capabilities, "registered");

    let stats_path = cfg
        .stats_file
        .clone()
        .unwrap_or_else(|| default_stats_file(&id));
    let _stats_writer = built.engine.clone().map(|engine| {
        let path = stats_path.clone();
        tracing::info!(path = %path.display(), "engine counters go to the stats file");
        AbortOnDrop(tokio::spawn(stats::write_stats_forever(engine, path)))
    });
    // Docker's plugin is a side service: the agent runs on without it rather than not at all.
    let _docker_plugin = match &cfg.docker_plugin {
        Some(socket) => {
            let pc = weft_docker_plugin::Config {
                socket: socket.clone(),
                docker_api: cfg.docker_api.clone(),
                host: id.clone(),
            };
            match weft_docker_plugin::start(store.clone(), pc).await {
                Ok(h) => Some(AbortOnDrop(h)),
                Err(e) => {
                    tracing::error!("Docker plugin not served: {e:#}");
                    None
                }
            }
        }
        None => None,
    };
    let mut agent = sync::Syncer::new(
        id.clone(),
        store.clone(),
        Box::new(built.dp),
        Box::new(weft_firewall::NftFirewall::new()),
        reg,
    );
    agent.set_resync(cfg.resync_every);
    agent.set_engine(built.engine);
    // Names on their own watch and task: no datapath work holds them up.
    let _names = cfg.dns.as_ref().map(|d| {
        tracing::info!(domain = %d.domain, listen = %d.listen, upstreams = ?d.upstreams, "serving cluster DNS to local containers");
        let names = names::NameSync::new(
            id.clone(),
            store.clone(),
            weft_dns::DnsServer::new(d.clone()),
            stats::dns_stats_file(&stats_path),
        );
        AbortOnDrop(tokio::spawn(names.run_forever()))
    });
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut backoff = Backoff::new();
    loop {
        let started = std::time::Instant::now();
        tokio::select! {
            res = agent.run() => {
                // `run` only returns on trouble with the store; whatever it was, the datapath keeps
                // the last state (traffic flows) and the agent lists and watches again.
                let Err(e) = res;
                let wait = backoff.failed(started.elapsed(), &e, "datapath kept as it is");
                tokio::time::sleep(wait).await;
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
    }
    // The datapath stays as it is, so that traffic flows through an agent restart; the lease runs
    // out on its own if the agent does not come back.
    tracing::info!("stopping; datapath left in place");
    Ok(())
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long to wait before following the store again after a watch loop failed: from 200 ms,
/// doubling up to 5 s, and from 200 ms again after a loop that ran for 30 s.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);
    const RESET_AFTER: Duration = Duration::from_secs(30);

    fn new() -> Backoff {
        Backoff { next: Self::FIRST }
    }

    /// Logs the failure of a loop that ran for `ran` (`kept`: what stays as it was meanwhile) and
    /// returns the wait.
    fn failed(&mut self, ran: Duration, e: &anyhow::Error, kept: &str) -> Duration {
        if ran > Self::RESET_AFTER {
            self.next = Self::FIRST;
        }
        let wait = self.next;
        if is_store_trouble(e) {
            tracing::warn!("store trouble, {kept}: {e:#}; retrying in {wait:?}");
        } else {
            tracing::error!("{e:#}; {kept}, retrying in {wait:?}");
        }
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

fn is_store_trouble(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable(_)) | Some(StoreError::Compacted { .. })
        )
    })
}

async fn resolve_underlay(given: Option<&str>) -> Result<IpAddr> {
    if let Some(g) = given {
        if let Ok(a) = g.parse::<IpAddr>() {
            return Ok(a);
        }
    }
    let nl = weft_netlink::Netlink::open()?;
    let links = nl.list_links().await?;
    for link in links {
        if let Some(g) = given {
            if link.name != g {
                continue;
            }
        } else if link.name == "lo" || weft_reconcile::names::vni_of(&link.name).is_some() {
            continue;
        }
        let addrs = nl.list_addresses(&link.name).await?;
        if let Some(a) = addrs.iter().find(|a| a.addr().is_ipv4()) {
            return Ok(a.addr());
        }
    }
    match given {
        Some(g) => anyhow::bail!(
            "underlay {g:?} is neither an address nor an interface with an IPv4 address"
        ),
        None => anyhow::bail!(
            "no interface with an IPv4 address found for the underlay; pass --underlay"
        ),
    }
}

pub(crate) use weft_control::state::load as load_state;

/// Whether a watch batch holds only agents' reports (which change no datapath and name nobody).
pub(crate) fn only_reports(events: &[weft_store::Event]) -> bool {
    events
        .iter()
        .all(|e| e.kv.key.starts_with(weft_model::keys::STATUS))
}

/// Applies a watch batch to `state`; a record that cannot be read is left out, its error returned.
pub(crate) fn apply_events(
    state: &mut weft_reconcile::ClusterState,
    events: &[weft_store::Event],
) -> Vec<weft_model::ModelError> {
    events
        .iter()
        .filter_map(|ev| {
            let value = match ev.kind {
                weft_store::EventKind::Put => Some(ev.kv.value.as_slice()),
                weft_store::EventKind::Delete => None,
            };
            state.apply(&ev.kv.key, value).err()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::keys;
    use weft_store::{Event, EventKind, KeyValue};

    fn event(kind: EventKind, key: &str, value: &[u8]) -> Event {
        Event {
            kind,
            kv: KeyValue {
                key: key.into(),
                value: value.to_vec(),
                create_revision: 1,
                mod_revision: 2,
                lease: None,
            },
        }
    }

    #[test]
    fn a_batch_of_reports_only() {
        let report = event(EventKind::Put, &keys::status("h1"), b"{}");
        let net = event(EventKind::Delete, &keys::network("prod"), b"");
        assert!(only_reports(std::slice::from_ref(&report)));
        assert!(!only_reports(&[report, net]));
    }

    #[test]
    fn unreadable_records_are_returned_and_left_out() {
        let mut state = weft_reconcile::ClusterState::default();
        let errors = apply_events(
            &mut state,
            &[
                event(EventKind::Put, &keys::network("prod"), b"not json"),
                event(EventKind::Delete, &keys::endpoint("prod", "e1"), b""),
            ],
        );
        assert_eq!(errors.len(), 1);
        assert!(state.networks.is_empty());
    }
}
