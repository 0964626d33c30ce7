//! The IPAM and endpoint calls against a real (embedded) store, as Docker makes them, without a
//! Docker engine: the weft network exists already, so Docker's API is not needed to map its pool.
//! (Join, which plugs interfaces in, is covered by the end-to-end test with real Docker.)

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use weft_docker_plugin::plugin::{Failure, Plugin};
use weft_docker_plugin::protocol::Method;
use weft_model::{keys, Host, Record, SCHEMA_VERSION};
use weft_store::Store;

async fn setup(dir: &tempfile::TempDir) -> (Arc<dyn Store>, Plugin) {
    let url = format!("file://{}", dir.path().join("store.db").display());
    let store = weft_control::open_store(&url).await.unwrap();
    let lease = store.grant_lease(Duration::from_secs(60)).await.unwrap();
    let host = Host {
        schema: SCHEMA_VERSION,
        id: "h1".into(),
        name: "h1".into(),
        underlay: "192.0.2.1".parse().unwrap(),
        vxlan_port: 4789,
        secure_port: None,
        public_key: None,
        capabilities: vec![],
        agent_version: "test".into(),
        started_at_ms: 0,
        dns_domain: None,
    };
    store
        .put(&keys::host("h1"), host.encode(), Some(lease))
        .await
        .unwrap();
    weft_control::networks::create(
        store.as_ref(),
        &weft_control::networks::NetworkSpec {
            name: "prod".into(),
            subnets: vec!["10.9.0.0/24".into(), "fd09::/64".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let plugin = Plugin::new(
        store.clone(),
        "h1".into(),
        dir.path().join("no-docker.sock"),
    );
    (store, plugin)
}

async fn ok(p: &Plugin, m: Method, body: Value) -> Value {
    match p.call(m, body.to_string().as_bytes()).await {
        Ok(v) => v,
        Err(Failure::BadRequest(e)) => panic!("{m:?} refused: {e}"),
        Err(Failure::Failed(e)) => panic!("{m:?} failed: {e:#}"),
    }
}

async fn err(p: &Plugin, m: Method, body: &str) -> String {
    match p.call(m, body.as_bytes()).await {
        Ok(v) => panic!("{m:?} answered {v}"),
        Err(Failure::BadRequest(e)) => e,
        Err(Failure::Failed(e)) => format!("{e:#}"),
    }
}

async fn allocations(store: &dyn Store) -> Vec<String> {
    let (kvs, _) = store.list(&keys::ipam_of("prod")).await.unwrap();
    kvs.into_iter()
        .map(|kv| {
            format!(
                "{}={}",
                &kv.key[keys::ipam_of("prod").len()..],
                String::from_utf8_lossy(&kv.value)
            )
        })
        .collect()
}

const EID: &str = "3bd289adcdd87ea6e5d08d0884bb4d7eced948510f3858a2cfae061b83504103";

#[tokio::test]
async fn addresses_from_pools_to_endpoints_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = setup(&dir).await;

    let act = ok(&p, Method::Activate, json!({})).await;
    assert_eq!(act, json!({"Implements": ["NetworkDriver", "IpamDriver"]}));
    let pool = ok(
        &p,
        Method::RequestPool,
        json!({"AddressSpace": "weft", "Pool": "10.9.0.0/24", "SubPool": "", "Options": {}, "V6": false}),
    )
    .await;
    assert_eq!(pool["PoolID"], "weft:10.9.0.0/24");
    assert_eq!(pool["Pool"], "10.9.0.0/24");
    let gw = ok(
        &p,
        Method::RequestAddress,
        json!({"PoolID": "weft:10.9.0.0/24", "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    )
    .await;
    assert_eq!(gw["Address"], "10.9.0.1/24");
    // The gateway is weft's reserved address, never an allocation.
    assert!(allocations(store.as_ref()).await.is_empty());

    let mac = json!({"com.docker.network.endpoint.macaddress": "02:42:0a:09:00:02"});
    let a = ok(
        &p,
        Method::RequestAddress,
        json!({"PoolID": "weft:10.9.0.0/24", "Address": "", "Options": mac}),
    )
    .await;
    assert_eq!(a["Address"], "10.9.0.2/24");
    let b = ok(
        &p,
        Method::RequestAddress,
        json!({"PoolID": "weft:10.9.0.0/24", "Address": "", "Options": {}}),
    )
    .await;
    assert_eq!(b["Address"], "10.9.0.3/24");
    let b6 = ok(
        &p,
        Method::RequestAddress,
        json!({"PoolID": "weft:fd09::/64", "Address": "", "Options": {}}),
    )
    .await;
    assert_eq!(b6["Address"], "fd09::2/64");
    // A reserved address never used goes back, and is the next one handed out.
    ok(
        &p,
        Method::ReleaseAddress,
        json!({"PoolID": "weft:10.9.0.0/24", "Address": "10.9.0.2"}),
    )
    .await;
    let again = ok(
        &p,
        Method::RequestAddress,
        json!({"PoolID": "weft:10.9.0.0/24", "Address": "", "Options": {}}),
    )
    .await;
    assert_eq!(again["Address"], "10.9.0.2/24");
    let e = err(
        &p,
        Method::RequestAddress,
        r#"{"PoolID": "weft:10.9.0.0/24", "Address": "10.9.0.3", "Options": {}}"#,
    )
    .await;
    assert!(
        e.contains("address 10.9.0.3 is already taken in network prod"),
        "{e}"
    );

    // The endpoint takes over its reserved addresses in one step.
    let created = ok(
        &p,
        Method::CreateEndpoint,
        json!({"NetworkID": "n1", "EndpointID": EID, "Interface": {"Address": "10.9.0.3/24", "AddressIPv6": "fd09::2/64", "MacAddress": "02:42:0a:09:00:03"}, "Options": {}}),
    )
    .await;
    assert_eq!(created, json!({"Interface": {}}));
    let allocs = allocations(store.as_ref()).await;
    assert!(
        allocs
            .iter()
            .any(|a| a.starts_with("10.9.0.3=") && a.contains("3bd289adcdd87ea6")),
        "{allocs:?}"
    );
    let eps = weft_control::networks::endpoints(store.as_ref(), "prod")
        .await
        .unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].mac.to_string(), "02:42:0a:09:00:03");
    assert_eq!(eps[0].ipv6.unwrap().to_string(), "fd09::2/64");
    assert_eq!(eps[0].labels["docker.network"], "n1");
    // Created again (Docker retrying): the same answer, nothing new.
    ok(
        &p,
        Method::CreateEndpoint,
        json!({"NetworkID": "n1", "EndpointID": EID, "Interface": {"Address": "10.9.0.3/24", "AddressIPv6": "fd09::2/64", "MacAddress": "02:42:0a:09:00:03"}}),
    )
    .await;
    assert_eq!(
        weft_control::networks::endpoints(store.as_ref(), "prod")
            .await
            .unwrap()
            .len(),
        1
    );

    // An address weft's IPAM did not reserve here is refused, and nothing is written.
    let e = err(
        &p,
        Method::CreateEndpoint,
        r#"{"NetworkID": "n1", "EndpointID": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "Interface": {"Address": "10.9.0.77/24", "MacAddress": "02:42:0a:09:00:4d"}}"#,
    )
    .await;
    assert!(
        e.contains("address 10.9.0.77 was not reserved on this host"),
        "{e}"
    );
    assert_eq!(
        weft_control::networks::endpoints(store.as_ref(), "prod")
            .await
            .unwrap()
            .len(),
        1
    );

    // Bad input: clear errors, no change.
    let before = allocations(store.as_ref()).await;
    assert!(err(&p, Method::RequestAddress, "{nope")
        .await
        .starts_with("bad request body"));
    assert!(
        err(&p, Method::RequestAddress, r#"{"PoolID": "10.9.0.0/24"}"#)
            .await
            .contains("unknown pool")
    );
    assert!(err(
        &p,
        Method::RequestPool,
        r#"{"Pool": "10.9.0.0/25", "V6": false}"#
    )
    .await
    .contains("overlaps subnet 10.9.0.0/24 of weft network \"prod\""));
    assert!(err(
        &p,
        Method::RequestPool,
        r#"{"Pool": "10.8.0.0/24", "SubPool": "10.8.0.0/25"}"#
    )
    .await
    .contains("--ip-range"));
    assert!(err(&p, Method::CreateNetwork, r#"{"NetworkID": "n2", "IPv4Data": [{"AddressSpace": "LocalDefault", "Pool": "10.8.0.0/24"}]}"#).await.contains("--ipam-driver weft"));
    assert_eq!(allocations(store.as_ref()).await, before);

    // Docker's order on the way out: DeleteEndpoint, then ReleaseAddress of each address.
    ok(
        &p,
        Method::DeleteEndpoint,
        json!({"NetworkID": "n1", "EndpointID": EID}),
    )
    .await;
    ok(
        &p,
        Method::ReleaseAddress,
        json!({"PoolID": "weft:10.9.0.0/24", "Address": "10.9.0.3"}),
    )
    .await;
    ok(
        &p,
        Method::ReleaseAddress,
        json!({"PoolID": "weft:fd09::/64", "Address": "fd09::2"}),
    )
    .await;
    ok(
        &p,
        Method::ReleaseAddress,
        json!({"PoolID": "weft:10.9.0.0/24", "Address": "10.9.0.2"}),
    )
    .await;
    assert!(weft_control::networks::endpoints(store.as_ref(), "prod")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(allocations(store.as_ref()).await, Vec::<String>::new());
    // Deleting again is no error.
    ok(
        &p,
        Method::DeleteEndpoint,
        json!({"NetworkID": "n1", "EndpointID": EID}),
    )
    .await;
}
