//! Docker's remote network driver and IPAM driver (libnetwork's plugin protocol), served by the
//! agent on a unix socket: `docker network create -d weft --ipam-driver weft … NAME` on any host
//! maps to the weft network NAME, addresses come from weft's cluster-wide IPAM, and containers
//! Docker starts get a veth on the network's bridge.
//!
//! Modules by concern: [`protocol`] (the calls' bodies, pure), [`pools`] (pools, gateways and the
//! mapping to weft networks, pure), [`docker_api`] (reading Docker's networks), [`plugin`] (the
//! calls' dispatch), `ipam`, `driver`, `publish` and `mapping` (each call's effect), [`portmap`]
//! (`docker run -p` as published ports, pure), [`cleanup`] (stale
//! endpoints), [`firewall`] (Docker's FORWARD policy), [`http_client`], [`server`] (HTTP over the
//! socket).

pub mod cleanup;
pub mod docker_api;
mod driver;
pub mod firewall;
pub mod http_client;
mod ipam;
mod mapping;
pub mod plugin;
pub mod pools;
pub mod portmap;
pub mod protocol;
mod publish;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use weft_store::Store;

pub use plugin::Plugin;

/// The driver's name, as in `docker network create -d weft`.
pub const DRIVER: &str = "weft";
/// Where Docker looks for it.
pub const DEFAULT_SOCKET: &str = "/run/docker/plugins/weft.sock";
/// Docker's API socket, read to learn networks' names.
pub const DEFAULT_DOCKER_API: &str = "/var/run/docker.sock";
/// How often stale endpoints are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub docker_api: PathBuf,
    pub host: String,
}

/// Sweeps stale endpoints, binds the socket and serves it (with a periodic sweep) until dropped.
pub async fn start(store: Arc<dyn Store>, cfg: Config) -> Result<tokio::task::JoinHandle<()>> {
    let plugin = Arc::new(Plugin::new(store, cfg.host.clone(), cfg.docker_api.clone()));
    match plugin.sweep(true).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} stale Docker endpoint(s)"),
        Err(e) => tracing::warn!("sweeping stale Docker endpoints: {e:#}"),
    }
    let listener = server::bind(&cfg.socket)?;
    tracing::info!(socket = %cfg.socket.display(), docker_api = %cfg.docker_api.display(), "serving Docker's network and IPAM driver");
    Ok(tokio::spawn(async move {
        let sweeper = plugin.clone();
        let sweep = async move {
            let mut t = tokio::time::interval(SWEEP_EVERY);
            t.tick().await;
            loop {
                t.tick().await;
                sweeper.recheck_firewall();
                if let Err(e) = sweeper.sweep(false).await {
                    tracing::warn!("sweeping stale Docker endpoints: {e:#}");
                }
            }
        };
        tokio::select! {
            r = server::serve(listener, plugin) => {
                if let Err(e) = r {
                    tracing::error!("{e:#}");
                }
            }
            _ = sweep => {}
        }
    }))
}

/// Asks a plugin socket what it implements (Docker's first call), as Docker would.
pub async fn probe(socket: &std::path::Path) -> Result<Vec<String>> {
    let body = http_client::request(socket, "POST", "/Plugin.Activate", b"{}").await?;
    #[derive(serde::Deserialize)]
    struct Activated {
        #[serde(rename = "Implements")]
        implements: Vec<String>,
    }
    let a: Activated = serde_json::from_slice(&body)?;
    Ok(a.implements)
}
