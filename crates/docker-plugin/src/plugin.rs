//! The plugin and the dispatch of Docker's calls; their effects on the store and this host are in
//! `ipam` (IpamDriver), `driver` (NetworkDriver) and `mapping` (pool → weft network). Stateless
//! between calls but for caches: pools are named by their subnet, endpoints are found by their
//! Docker id in the store, so that either side may restart at any point.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use serde_json::{json, Value};
use weft_control::attach;
use weft_netlink::Netlink;
use weft_store::Store;

use crate::pools;
use crate::protocol::{self as p, Method};

/// The owner recorded for an address Docker's IPAM asked for, until its endpoint is created.
pub const PENDING: &str = "docker-pending";
/// Labels on endpoint records made for Docker.
pub const LABEL_NETWORK: &str = "docker.network";
pub const LABEL_ENDPOINT: &str = "docker.endpoint";
/// Label on weft networks that Docker's `network create` made.
pub const LABEL_CREATED_BY: &str = "created-by";
/// The name prefix Docker gives the interface in the container (eth0, eth1…).
pub(crate) const DST_PREFIX: &str = "eth";

pub struct Plugin {
    pub store: Arc<dyn Store>,
    pub host: String,
    /// Docker's API socket, to learn a network's name.
    pub docker_api: PathBuf,
    /// Pools already mapped: subnet → (weft network, Docker network id). Spares asking Docker on
    /// every address; forgotten when that Docker network is deleted (a pool belongs to one Docker
    /// network at a time on a host).
    pub(crate) mapped: Mutex<HashMap<IpNet, (String, String)>>,
    /// Whether the firewall rule was seen in place since the last sweep.
    pub(crate) firewall_ok: AtomicBool,
}

/// A call's failure: a bad request (400) or a failed operation (500); both answer `{"Err": …}`.
pub enum Failure {
    BadRequest(String),
    Failed(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::BadRequest(e) => f.write_str(e),
            Failure::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(e.into())
    }
}

fn req<T: for<'de> serde::Deserialize<'de>>(body: &[u8]) -> Result<T, Failure> {
    p::parse(body).map_err(Failure::BadRequest)
}

pub(crate) fn bad(e: String) -> Failure {
    Failure::BadRequest(e)
}

impl Plugin {
    pub fn new(store: Arc<dyn Store>, host: String, docker_api: PathBuf) -> Plugin {
        Plugin {
            store,
            host,
            docker_api,
            mapped: Mutex::new(HashMap::new()),
            firewall_ok: AtomicBool::new(false),
        }
    }

    /// Makes the next Join check the firewall rule again (someone may have flushed it).
    pub fn recheck_firewall(&self) {
        self.firewall_ok.store(false, Ordering::Relaxed);
    }

    pub async fn call(&self, m: Method, body: &[u8]) -> Result<Value, Failure> {
        match m {
            Method::Activate => Ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]})),
            // Local scope: each host's Docker keeps its own network record, weft joins them up.
            Method::NetGetCapabilities => {
                Ok(json!({"Scope": "local", "ConnectivityScope": "global"}))
            }
            Method::Ignored => Ok(json!({})),
            Method::IpamGetCapabilities => Ok(json!({"RequiresMACAddress": true})),
            Method::GetDefaultAddressSpaces => Ok(json!({
                "LocalDefaultAddressSpace": p::ADDRESS_SPACE,
                "GlobalDefaultAddressSpace": p::ADDRESS_SPACE,
            })),
            Method::RequestPool => self.request_pool(req(body)?).await,
            Method::ReleasePool => {
                let r: p::PoolRef = req(body)?;
                pools::parse_pool_id(&r.pool_id).map_err(bad)?;
                Ok(json!({}))
            }
            Method::RequestAddress => self.request_address(req(body)?).await,
            Method::ReleaseAddress => self.release_address(req(body)?).await,
            Method::CreateNetwork => self.create_network(req(body)?).await,
            Method::DeleteNetwork => self.delete_network(req(body)?).await,
            Method::CreateEndpoint => self.create_endpoint(req(body)?).await,
            Method::EndpointOperInfo => {
                let _: p::EndpointRef = req(body)?;
                Ok(json!({"Value": {}}))
            }
            Method::Join => self.join(req(body)?).await,
            Method::ProgramExternalConnectivity => self.program_external(req(body)?).await,
            Method::RevokeExternalConnectivity => {
                let r: p::EndpointRef = req(body)?;
                self.unpublish(&r.endpoint_id).await?;
                Ok(json!({}))
            }
            Method::Leave => {
                let r: p::EndpointRef = req(body)?;
                // Docker revokes first; a revoke lost on the way must not keep the ports.
                self.unpublish(&r.endpoint_id).await?;
                if let Some(ep) = self.endpoint(&r.endpoint_id).await? {
                    Netlink::open()?.delete_link(&ep.host_ifname).await?;
                }
                Ok(json!({}))
            }
            Method::DeleteEndpoint => {
                let r: p::EndpointRef = req(body)?;
                if let Some(ep) = self.endpoint(&r.endpoint_id).await? {
                    Netlink::open()?.delete_link(&ep.host_ifname).await?;
                    attach::delete_records(self.store.as_ref(), &ep).await?;
                }
                Ok(json!({}))
            }
        }
    }
}
