//! Published host ports: each (host, protocol, port) is claimed in the store in the same
//! transaction as its endpoint's record, so that two endpoints of one host never share one, even
//! when attached at the same moment.

use anyhow::{bail, Result};
use weft_model::{keys, Endpoint, PortClaim, Publish, Record, SCHEMA_VERSION};
use weft_store::{Compare, LeaseId, Op, Store};

use crate::read;

/// Refuses a port this host already publishes, naming its owner.
pub async fn check_free(store: &dyn Store, host: &str, publish: &[Publish]) -> Result<()> {
    for p in publish {
        if let Some((c, _)) =
            read::get::<PortClaim>(store, &keys::port(host, p.proto, p.host_port)).await?
        {
            bail!(
                "host port {}/{} is already published on host {host} (by endpoint {} of network {})",
                p.host_port,
                p.proto,
                c.endpoint,
                c.network
            );
        }
    }
    Ok(())
}

/// The compares and puts that claim an endpoint's host ports (under the host's lease).
pub fn claim(ep: &Endpoint, lease: LeaseId) -> (Vec<Compare>, Vec<Op>) {
    let claim = PortClaim {
        schema: SCHEMA_VERSION,
        network: ep.network.clone(),
        endpoint: ep.id.clone(),
    };
    ep.publish
        .iter()
        .map(|p| {
            let k = keys::port(&ep.host, p.proto, p.host_port);
            (
                Compare::Absent(k.clone()),
                Op::Put {
                    key: k,
                    value: claim.encode(),
                    lease: Some(lease),
                },
            )
        })
        .unzip()
}

/// The deletes that release the host ports an endpoint holds (only those it owns).
pub async fn release(store: &dyn Store, ep: &Endpoint) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for p in &ep.publish {
        let k = keys::port(&ep.host, p.proto, p.host_port);
        if let Some((c, _)) = read::get::<PortClaim>(store, &k).await? {
            if c.endpoint == ep.id && c.network == ep.network {
                ops.push(Op::Delete { key: k });
            }
        }
    }
    Ok(ops)
}
