//! IpamDriver calls: pools named by their subnet, the gateway (weft's reserved first address),
//! addresses reserved in weft's cluster-wide IPAM for endpoints Docker is about to create.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};
use weft_control::{addresses, hosts, networks};
use weft_model::{Allocation, SCHEMA_VERSION};

use crate::mapping::subnets_of;
use crate::plugin::{bad, Failure, Plugin, PENDING};
use crate::pools;
use crate::protocol as p;

impl Plugin {
    pub(crate) async fn request_pool(&self, r: p::RequestPool) -> Result<Value, Failure> {
        if !r.sub_pool.is_empty() {
            return Err(bad(format!(
                "--ip-range {} is not supported: weft hands out addresses from the whole subnet",
                r.sub_pool
            )));
        }
        let nets = networks::list(self.store.as_ref()).await?;
        let used: Vec<IpNet> = nets.iter().flat_map(subnets_of).collect();
        let pool = pools::requested_pool(&r.pool, r.v6, &used).map_err(bad)?;
        // A subnet either is a weft network's (joining it) or overlaps none.
        for n in &nets {
            for s in subnets_of(n) {
                if s != pool && weft_model::validate::overlaps(s, pool) {
                    return Err(bad(format!(
                        "subnet {pool} overlaps subnet {s} of weft network {:?}",
                        n.name
                    )));
                }
            }
        }
        Ok(json!({"PoolID": pools::pool_id(pool), "Pool": pool.to_string(), "Data": {}}))
    }

    pub(crate) async fn request_address(&self, r: p::RequestAddress) -> Result<Value, Failure> {
        let pool = pools::parse_pool_id(&r.pool_id).map_err(bad)?;
        if r.options.get(p::OPT_REQUEST_TYPE).map(String::as_str) == Some(p::GATEWAY_REQUEST) {
            // weft's gateway address is reserved in every network, never allocated.
            let gw = pools::gateway(pool, &r.address).map_err(bad)?;
            return Ok(json!({"Address": gw.to_string(), "Data": {}}));
        }
        let want = if r.address.is_empty() {
            None
        } else {
            Some(
                r.address
                    .parse::<IpAddr>()
                    .map_err(|_| bad(format!("invalid address {:?}", r.address)))?,
            )
        };
        let net = self.network_of_pool(pool).await?;
        let (_, lease) = hosts::registered(self.store.as_ref(), &self.host).await?;
        let alloc = Allocation {
            schema: SCHEMA_VERSION,
            endpoint: PENDING.into(),
            host: self.host.clone(),
        };
        let a = addresses::reserve(
            self.store.as_ref(),
            &net,
            pool.addr().is_ipv6(),
            want,
            &alloc,
            lease,
        )
        .await?;
        Ok(json!({"Address": a.to_string(), "Data": {}}))
    }

    pub(crate) async fn release_address(&self, r: p::ReleaseAddress) -> Result<Value, Failure> {
        let pool = pools::parse_pool_id(&r.pool_id).map_err(bad)?;
        let addr: IpAddr = r
            .address
            .split('/')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| bad(format!("invalid address {:?}", r.address)))?;
        // An address that made it into an endpoint went back to the pool with the endpoint
        // (DeleteEndpoint); only one reserved for an endpoint never created is still held here.
        if let Some(net) = self.weft_network_with(pool).await? {
            addresses::release(self.store.as_ref(), &net.name, addr, &self.host, PENDING).await?;
        }
        Ok(json!({}))
    }
}
