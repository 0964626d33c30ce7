//! External connectivity: Docker calls `ProgramExternalConnectivity` on the endpoint that is a
//! container's gateway (a weft network with egress) with the container's `-p` bindings; they
//! become the endpoint's published ports, claimed in the store and forwarded by weft's firewall
//! as for `weft attach --publish`. `RevokeExternalConnectivity` (and Leave, in case it never
//! came) takes them back; DeleteEndpoint and the stale sweep release them with the record.

use std::collections::HashSet;

use anyhow::anyhow;
use serde_json::{json, Value};
use weft_control::{hosts, networks, ports};
use weft_model::{Endpoint, Publish};

use crate::plugin::{bad, Failure, Plugin};
use crate::portmap;
use crate::protocol as p;

/// Where the kernel keeps the local port range Docker's bridge takes dynamic ports from.
const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// Attempts at the claim when other endpoints of this host claim ports at the same moment.
const ATTEMPTS: usize = 8;

impl Plugin {
    pub(crate) async fn program_external(
        &self,
        r: p::ProgramExternalConnectivity,
    ) -> Result<Value, Failure> {
        let bindings = portmap::bindings(&r.options).map_err(bad)?;
        let store = self.store.as_ref();
        let (ep, _) = self
            .endpoint_kv(&r.endpoint_id)
            .await?
            .ok_or_else(|| anyhow!("unknown endpoint {}", r.endpoint_id))?;
        if bindings.is_empty() && ep.publish.is_empty() {
            return Ok(json!({}));
        }
        let net = networks::get(store, &ep.network).await?;
        let dynamic =
            portmap::dynamic_range(std::fs::read_to_string(LOCAL_PORT_RANGE).ok().as_deref());
        let before = ep.publish.clone();
        let mut published = None;
        for _ in 0..ATTEMPTS {
            let Some((ep, kv)) = self.endpoint_kv(&r.endpoint_id).await? else {
                return Err(anyhow!("endpoint {} was removed meanwhile", ep.id).into());
            };
            // This endpoint's own claims are free to it: a repeated call keeps its fixed ports.
            let taken: HashSet<_> = ports::claimed(store, &self.host)
                .await?
                .into_iter()
                .filter(|(_, _, c)| !(c.endpoint == ep.id && c.network == ep.network))
                .map(|(proto, port, _)| (proto, port))
                .collect();
            let publish = portmap::choose(&bindings, &taken, dynamic.clone()).map_err(bad)?;
            ports::check_network(&net, &publish).map_err(|e| bad(format!("{e:#}")))?;
            let mut wanted = ep.clone();
            wanted.publish = publish.clone();
            ports::check_free(store, &wanted).await?;
            let (_, lease) = hosts::registered(store, &self.host).await?;
            if let Some(done) =
                ports::republish(store, &ep, kv.mod_revision, publish, lease).await?
            {
                published = Some(done);
                break;
            }
        }
        let ep = published.ok_or_else(|| {
            anyhow!(
                "endpoint {}: its record or this host's ports kept changing; try again",
                ep.id
            )
        })?;
        // Forwarded before Docker starts the container, as Docker's bridge does; undone if not.
        if let Err(e) = weft_control::firewall::apply(store, &self.host).await {
            if let Err(ue) = self.set_publish(&r.endpoint_id, before).await {
                tracing::error!("rollback: ports of endpoint {}: {ue}", ep.id);
            }
            return Err(e.context("programming the published ports").into());
        }
        tracing::info!(endpoint = %ep.id, network = %ep.network, publish = ?ep.publish, "Docker endpoint's ports published");
        Ok(json!({}))
    }

    /// Takes a Docker endpoint's published ports back (nothing when it has none or is gone).
    pub(crate) async fn unpublish(&self, docker_id: &str) -> Result<(), Failure> {
        if let Some(ep) = self.set_publish(docker_id, vec![]).await? {
            weft_control::firewall::apply(self.store.as_ref(), &self.host).await?;
            tracing::info!(endpoint = %ep.id, network = %ep.network, "Docker endpoint's ports taken back");
        }
        Ok(())
    }

    /// Gives the endpoint `publish` (releasing what it no longer publishes); the endpoint as it
    /// was when something changed.
    async fn set_publish(
        &self,
        docker_id: &str,
        publish: Vec<Publish>,
    ) -> Result<Option<Endpoint>, Failure> {
        let store = self.store.as_ref();
        for _ in 0..ATTEMPTS {
            let Some((ep, kv)) = self.endpoint_kv(docker_id).await? else {
                return Ok(None);
            };
            if ep.publish == publish {
                return Ok(None);
            }
            let (_, lease) = hosts::registered(store, &self.host).await?;
            if ports::republish(store, &ep, kv.mod_revision, publish.clone(), lease)
                .await?
                .is_some()
            {
                return Ok(Some(ep));
            }
        }
        Err(anyhow!("endpoint {docker_id}: its record kept changing; try again").into())
    }
}
