//! The agent: one per host. It registers the host under a lease and keeps it alive, follows the
//! store with a prefix watch, and turns every change into the smallest datapath change (never a
//! flush and rebuild). On start it reconciles against what the kernel already holds.

mod register;
mod sync;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use weft_datapath::{Datapaths, KernelDatapath};
use weft_model::{DatapathChoice, CAP_KERNEL_VXLAN, CAP_USERSPACE_VXLAN};
use weft_store::{Store, StoreError};

pub use register::Registration;

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
    let (dp, capabilities) = datapaths(&cfg, underlay).await?;
    let store: Arc<dyn Store> = weft_control::open_store(&cfg.store_url).await?;
    let reg = Registration::register(
        store.clone(),
        &id,
        underlay,
        cfg.vxlan_port,
        capabilities.clone(),
        keys.public().to_base64(),
        cfg.lease_ttl,
    )
    .await?;
    tracing::info!(host = %id, %underlay, store = %cfg.store_url, lease = reg.lease(), ?capabilities, "registered");

    let mut agent = sync::Syncer::new(id.clone(), store.clone(), Box::new(dp), reg);
    agent.set_resync(cfg.resync_every);
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = std::time::Instant::now();
        tokio::select! {
            res = agent.run() => {
                // `run` only returns on trouble with the store; whatever it was, the datapath keeps
                // the last state (traffic flows) and the agent lists and watches again.
                let Err(e) = res;
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_millis(200);
                }
                if is_store_trouble(&e) {
                    tracing::warn!("store trouble, datapath kept as it is: {e:#}; retrying in {backoff:?}");
                } else {
                    tracing::error!("{e:#}; datapath kept as it is, retrying in {backoff:?}");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
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

/// The host's datapaths and the capabilities it advertises. One UDP port cannot be served by both
/// the kernel's VXLAN and the engine, so a host runs plain networks on one of them: the kernel where
/// it can (auto), or the engine when told to or when the kernel lacks VXLAN.
async fn datapaths(cfg: &AgentConfig, underlay: IpAddr) -> Result<(Datapaths, Vec<String>)> {
    let kernel = KernelDatapath::new(underlay, cfg.vxlan_port).await?;
    let use_kernel = match cfg.datapath {
        DatapathChoice::Userspace => false,
        DatapathChoice::Kernel => {
            kernel.probe().await.context(
                "this kernel cannot run weft's VXLAN datapath (try --datapath userspace)",
            )?;
            true
        }
        DatapathChoice::Auto => match kernel.probe().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("kernel VXLAN unavailable ({e:#}); using the userspace engine");
                false
            }
        },
    };
    if use_kernel {
        let dp = Datapaths {
            kernel: Some(Box::new(kernel)),
            userspace: None,
        };
        return Ok((dp, vec![CAP_KERNEL_VXLAN.to_string()]));
    }
    let user = weft_datapath::UserspaceDatapath::start(underlay, cfg.vxlan_port)
        .await
        .context("starting the userspace engine")?;
    let dp = Datapaths {
        kernel: None,
        userspace: Some(Box::new(user)),
    };
    Ok((dp, vec![CAP_USERSPACE_VXLAN.to_string()]))
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
