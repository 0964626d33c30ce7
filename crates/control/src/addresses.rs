//! Single addresses reserved ahead of their endpoint, for runtimes that ask for an address before
//! they create the endpoint (Docker's IPAM driver). The same `ipam/<network>/<address>` keys as
//! attach, created only where absent, so that no two hosts ever hand out one address.

use std::collections::HashSet;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use ipnet::IpNet;
use weft_model::{keys, Allocation, Network, Record};
use weft_store::{Compare, LeaseId, Op, Store};

use crate::read;

const RESERVE_ATTEMPTS: usize = 64;

/// Every allocated address of a network.
pub async fn taken(store: &dyn Store, network: &str) -> Result<HashSet<IpAddr>> {
    let prefix = keys::ipam_of(network);
    let (kvs, _) = store.list(&prefix).await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| kv.key[prefix.len()..].parse().ok())
        .collect())
}

/// Who holds an address, for error messages: " (by endpoint E on host H)" or nothing.
pub async fn owner(store: &dyn Store, network: &str, addr: IpAddr) -> String {
    match read::get::<Allocation>(store, &keys::ipam(network, addr)).await {
        Ok(Some((a, _))) => format!(" (by endpoint {} on host {})", a.endpoint, a.host),
        _ => String::new(),
    }
}

/// Reserves `want` (checked against the subnet) or the lowest free address of the network's IPv4
/// or IPv6 subnet for `alloc`, under `lease`. Returns the address with the subnet's prefix.
pub async fn reserve(
    store: &dyn Store,
    net: &Network,
    v6: bool,
    want: Option<IpAddr>,
    alloc: &Allocation,
    lease: LeaseId,
) -> Result<IpNet> {
    let subnet = if v6 {
        IpNet::V6(
            net.subnet6
                .ok_or_else(|| anyhow!("network {} has no IPv6 subnet", net.name))?,
        )
    } else {
        IpNet::V4(net.subnet4)
    };
    if let Some(a) = want {
        weft_ipam::check_static(subnet, IpNet::new(a, subnet.prefix_len())?)?;
    }
    let mut lost: HashSet<IpAddr> = HashSet::new();
    for _ in 0..RESERVE_ATTEMPTS {
        let mut used = taken(store, &net.name).await?;
        let addr = match want {
            Some(a) if used.contains(&a) => bail!(
                "address {a} is already taken in network {}{}",
                net.name,
                owner(store, &net.name, a).await
            ),
            Some(a) => a,
            None => {
                used.extend(lost.iter().copied());
                weft_ipam::next_free(subnet, &used)?
            }
        };
        // Only in the network as it was read: not one removed (or recreated) meanwhile.
        let Some((now, net_kv)) = read::get::<Network>(store, &keys::network(&net.name)).await?
        else {
            bail!("network {} was removed meanwhile", net.name);
        };
        if now != *net {
            bail!("network {} changed meanwhile; try again", net.name);
        }
        let key = keys::ipam(&net.name, addr);
        let res = store
            .txn(
                vec![
                    Compare::Absent(key.clone()),
                    Compare::ModRevision(keys::network(&net.name), net_kv.mod_revision),
                ],
                vec![Op::Put {
                    key,
                    value: alloc.encode(),
                    lease: Some(lease),
                }],
            )
            .await?;
        if res.succeeded {
            return Ok(IpNet::new(addr, subnet.prefix_len())?);
        }
        lost.insert(addr);
    }
    bail!(
        "could not reserve an address in network {}: too much contention, try again",
        net.name
    )
}

/// Releases an address if it is still held for `endpoint` on `host` (a release that comes late,
/// after the address went back to the pool and on to someone else, must not take it from them).
/// Returns whether it did.
pub async fn release(
    store: &dyn Store,
    network: &str,
    addr: IpAddr,
    host: &str,
    endpoint: &str,
) -> Result<bool> {
    let key = keys::ipam(network, addr);
    let Some((a, kv)) = read::get::<Allocation>(store, &key).await? else {
        return Ok(false);
    };
    if a.host != host || a.endpoint != endpoint {
        return Ok(false);
    }
    let res = store
        .txn(
            vec![Compare::ModRevision(key.clone(), kv.mod_revision)],
            vec![Op::Delete { key }],
        )
        .await?;
    Ok(res.succeeded)
}
