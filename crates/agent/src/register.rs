//! The host record and its lease.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use weft_model::{keys, Allocation, Endpoint, Host, Record, SCHEMA_VERSION};
use weft_store::{Compare, LeaseId, Op, Store, StoreError};

pub struct Registration {
    store: Arc<dyn Store>,
    host: Host,
    lease: LeaseId,
    ttl: Duration,
}

impl Registration {
    /// This agent's host record: `id`, where peers reach it (underlay address, VXLAN and secure
    /// ports), what it can carry and its public key.
    pub fn record(
        id: &str,
        underlay: IpAddr,
        ports: (u16, u16),
        capabilities: Vec<String>,
        public_key: String,
    ) -> Host {
        Host {
            schema: SCHEMA_VERSION,
            id: id.to_string(),
            name: id.to_string(),
            underlay,
            vxlan_port: ports.0,
            secure_port: Some(ports.1),
            public_key: Some(public_key),
            capabilities,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: weft_control::now_ms(),
            dns_domain: None,
        }
    }

    /// Registers the host. A restarted agent adopts its previous lease while that is still alive, so
    /// that the host's endpoints (which live under the lease) survive the restart.
    pub async fn register(
        store: Arc<dyn Store>,
        host: Host,
        ttl: Duration,
    ) -> Result<Registration> {
        let id = host.id.clone();
        let previous = store.get(&keys::host(&id)).await?.and_then(|kv| kv.lease);
        let lease = match previous {
            Some(l) if store.keep_alive(l).await.is_ok() => {
                tracing::info!(lease = l, "adopting the previous agent's live lease");
                l
            }
            _ => store.grant_lease(ttl).await?,
        };
        store
            .put(&keys::host(&id), host.encode(), Some(lease))
            .await?;
        Ok(Registration {
            store,
            host,
            lease,
            ttl,
        })
    }

    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Renews the lease. `Ok(false)` when it had already expired and the caller must re-register.
    pub async fn keep_alive(&self) -> Result<bool> {
        match self.store.keep_alive(self.lease).await {
            Ok(()) => Ok(true),
            Err(StoreError::LeaseNotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// After the lease was lost (for example the store was unreachable for longer than the TTL):
    /// a new lease, the host record again, and this host's endpoints and allocations put back.
    pub async fn reregister(&mut self, endpoints: &[Endpoint]) -> Result<()> {
        self.lease = self.store.grant_lease(self.ttl).await?;
        self.store
            .put(
                &keys::host(&self.host.id),
                self.host.encode(),
                Some(self.lease),
            )
            .await?;
        for ep in endpoints {
            let alloc = Allocation {
                schema: SCHEMA_VERSION,
                endpoint: ep.id.clone(),
                host: ep.host.clone(),
            };
            let mut compares = vec![Compare::Absent(keys::endpoint(&ep.network, &ep.id))];
            let mut ops = vec![Op::Put {
                key: keys::endpoint(&ep.network, &ep.id),
                value: ep.encode(),
                lease: Some(self.lease),
            }];
            for a in ep.addresses() {
                let k = keys::ipam(&ep.network, a.addr());
                compares.push(Compare::Absent(k.clone()));
                ops.push(Op::Put {
                    key: k,
                    value: alloc.encode(),
                    lease: Some(self.lease),
                });
            }
            let (c, o) = weft_control::ports::claim(ep, self.lease);
            compares.extend(c);
            ops.extend(o);
            let res = self.store.txn(compares, ops).await?;
            if !res.succeeded {
                tracing::error!(
                    endpoint = %ep.id, network = %ep.network,
                    "cannot restore endpoint after losing the lease: its record, an address or a published port was taken meanwhile"
                );
            }
        }
        tracing::warn!(
            lease = self.lease,
            endpoints = endpoints.len(),
            "re-registered after losing the lease"
        );
        Ok(())
    }
}
