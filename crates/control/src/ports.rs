//! Published host ports: each (host, protocol, port) is claimed in the store in the same
//! transaction as its endpoint's record, so that two endpoints of one host never share one, even
//! when attached at the same moment.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use weft_model::{keys, Endpoint, Network, PortClaim, Proto, Publish, Record, SCHEMA_VERSION};
use weft_store::{Compare, LeaseId, Op, Revision, Store};

use crate::read;

/// Refuses to publish ports from a network whose containers have no way out.
pub fn check_network(net: &Network, publish: &[Publish]) -> Result<()> {
    if !publish.is_empty() && !net.egress {
        bail!(
            "network {} was created with --no-egress: its containers cannot answer outside callers, so it publishes no ports",
            net.name
        );
    }
    Ok(())
}

/// The host ports claimed on `host`, with their owners.
pub async fn claimed(store: &dyn Store, host: &str) -> Result<Vec<(Proto, u16, PortClaim)>> {
    let prefix = format!("{}{host}/", keys::PORTS);
    let (claims, _) = read::list::<PortClaim>(store, &prefix).await?;
    let mut out = Vec::with_capacity(claims.len());
    for (c, kv) in claims {
        let rest = &kv.key[prefix.len()..];
        let parsed = rest.split_once('/').and_then(|(proto, port)| {
            let proto = match proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => return None,
            };
            Some((proto, port.parse::<u16>().ok()?))
        });
        match parsed {
            Some((proto, port)) => out.push((proto, port, c)),
            None => bail!("unreadable port claim key {:?}", kv.key),
        }
    }
    Ok(out)
}

/// Changes the ports a recorded endpoint publishes, in one transaction: the record (unchanged
/// since `rev`, else nothing is written and false is returned) gets `publish`, the host ports it
/// no longer publishes are released and the new ones claimed (each must be free). Returns the
/// endpoint as written.
pub async fn republish(
    store: &dyn Store,
    ep: &Endpoint,
    rev: Revision,
    mut publish: Vec<Publish>,
    lease: LeaseId,
) -> Result<Option<Endpoint>> {
    publish.sort();
    let key = |p: &Publish| keys::port(&ep.host, p.proto, p.host_port);
    let old: BTreeSet<String> = ep.publish.iter().map(key).collect();
    let new: BTreeSet<String> = publish.iter().map(key).collect();
    let mut changed = ep.clone();
    changed.publish = publish;
    let mut compares = vec![Compare::ModRevision(
        keys::endpoint(&ep.network, &ep.id),
        rev,
    )];
    let mut ops = vec![Op::Put {
        key: keys::endpoint(&ep.network, &ep.id),
        value: changed.encode(),
        lease: Some(lease),
    }];
    // Ports kept stay claimed as they are; those let go are released only if still this one's.
    let mut gone = ep.clone();
    gone.publish.retain(|p| !new.contains(&key(p)));
    ops.extend(release(store, &gone).await?);
    let mut added = changed.clone();
    added.publish.retain(|p| !old.contains(&key(p)));
    let (c, o) = claim(&added, lease);
    compares.extend(c);
    ops.extend(o);
    Ok(store.txn(compares, ops).await?.succeeded.then_some(changed))
}

/// Refuses a port of `ep` that its host already publishes for another endpoint, naming the owner.
pub async fn check_free(store: &dyn Store, ep: &Endpoint) -> Result<()> {
    let host = &ep.host;
    for p in &ep.publish {
        if let Some((c, _)) =
            read::get::<PortClaim>(store, &keys::port(host, p.proto, p.host_port)).await?
        {
            if c.endpoint == ep.id && c.network == ep.network {
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use weft_model::Mac;
    use weft_store_embedded::SqliteStore;

    fn ep(id: &str) -> Endpoint {
        Endpoint {
            schema: SCHEMA_VERSION,
            id: id.into(),
            network: "prod".into(),
            host: "h1".into(),
            container: String::new(),
            ifname: "eth".into(),
            host_ifname: format!("wve{id}"),
            mac: Mac::ZERO,
            ipv4: "10.0.0.2/24".parse().unwrap(),
            ipv6: None,
            names: vec![],
            labels: Default::default(),
            kind: Default::default(),
            publish: vec![],
        }
    }

    fn ps(specs: &[&str]) -> Vec<Publish> {
        specs.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// Writes the record and returns its revision.
    async fn put(store: &dyn Store, e: &Endpoint, lease: LeaseId) -> Revision {
        store
            .put(&keys::endpoint(&e.network, &e.id), e.encode(), Some(lease))
            .await
            .unwrap()
    }

    async fn owners(store: &dyn Store) -> Vec<String> {
        claimed(store, "h1")
            .await
            .unwrap()
            .into_iter()
            .map(|(proto, port, c)| format!("{port}/{proto}={}", c.endpoint))
            .collect()
    }

    #[tokio::test]
    async fn republish_claims_keeps_and_releases_in_one_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let store: &dyn Store = &store;
        let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
        let a = ep("a");
        let rev = put(store, &a, lease).await;
        let a = republish(store, &a, rev, ps(&["8080:80", "5353:53/udp"]), lease)
            .await
            .unwrap()
            .expect("free ports");
        assert_eq!(a.publish, ps(&["5353:53/udp", "8080:80"]));
        assert_eq!(owners(store).await, vec!["8080/tcp=a", "5353/udp=a"]);

        // Another endpoint asking for a taken port: refused by the check naming the owner, and
        // by the transaction if it raced past it; its record and the claims stay as they were.
        let b = ep("b");
        let brev = put(store, &b, lease).await;
        let mut want = b.clone();
        want.publish = ps(&["9090:90", "8080:80"]);
        let e = check_free(store, &want).await.unwrap_err().to_string();
        assert!(
            e.contains("host port 8080/tcp is already published on host h1 (by endpoint a of network prod)"),
            "{e}"
        );
        assert!(republish(store, &b, brev, want.publish.clone(), lease)
            .await
            .unwrap()
            .is_none());
        assert_eq!(owners(store).await, vec!["8080/tcp=a", "5353/udp=a"]);
        let (stored, _) = read::get::<Endpoint>(store, &keys::endpoint("prod", "b"))
            .await
            .unwrap()
            .unwrap();
        assert!(stored.publish.is_empty());

        // An endpoint's own ports are free to it; a stale revision changes nothing.
        let mut again = a.clone();
        again.publish = ps(&["8080:80"]);
        check_free(store, &again).await.unwrap();
        assert!(republish(store, &a, rev, ps(&[]), lease)
            .await
            .unwrap()
            .is_none());
        let (_, kv) = read::get::<Endpoint>(store, &keys::endpoint("prod", "a"))
            .await
            .unwrap()
            .unwrap();
        let a = republish(
            store,
            &a,
            kv.mod_revision,
            ps(&["8080:80", "9090:90"]),
            lease,
        )
        .await
        .unwrap()
        .expect("kept, released and claimed");
        assert_eq!(owners(store).await, vec!["8080/tcp=a", "9090/tcp=a"]);

        // Nothing published: every claim released.
        let (_, kv) = read::get::<Endpoint>(store, &keys::endpoint("prod", "a"))
            .await
            .unwrap()
            .unwrap();
        republish(store, &a, kv.mod_revision, vec![], lease)
            .await
            .unwrap()
            .expect("released");
        assert!(owners(store).await.is_empty());
    }
}
