//! Addresses without prefix routes, subnet routes with a chosen source, and route lookups: what a
//! weft bridge's layer 3 is made of.

mod common;

use common::NsGuard;
use weft_netlink::{IpNet, Netlink};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[tokio::test]
async fn subnet_route_follows_the_chosen_source() {
    let mut g = NsGuard::new();
    let ns = g.create("r");
    let nl = Netlink::open_in(&ns).unwrap();
    nl.ensure_bridge("wbrt", 1500).await.unwrap();
    nl.set_up("wbrt").await.unwrap();

    for (gw, subnet, other) in [
        ("10.9.0.1/24", "10.9.0.0/24", "10.9.0.9/24"),
        ("fd09::1/64", "fd09::/64", "fd09::9/64"),
    ] {
        nl.add_address_noprefixroute("wbrt", net(gw)).await.unwrap();
        // Idempotent, like add_address.
        nl.add_address_noprefixroute("wbrt", net(gw)).await.unwrap();
        assert_eq!(
            nl.route_src(net(subnet), "wbrt").await.unwrap(),
            None,
            "{gw}: no prefix route"
        );

        nl.replace_route_src(net(subnet), "wbrt", net(gw).addr())
            .await
            .unwrap();
        assert_eq!(
            nl.route_src(net(subnet), "wbrt").await.unwrap(),
            Some(Some(net(gw).addr()))
        );
        nl.add_address_noprefixroute("wbrt", net(other))
            .await
            .unwrap();
        nl.replace_route_src(net(subnet), "wbrt", net(other).addr())
            .await
            .unwrap();
        assert_eq!(
            nl.route_src(net(subnet), "wbrt").await.unwrap(),
            Some(Some(net(other).addr())),
            "replaced, not added beside"
        );
        assert_eq!(nl.routes_to(net(subnet)).await.unwrap().len(), 1);
        // Back to the first source before its address goes, so the route survives.
        nl.replace_route_src(net(subnet), "wbrt", net(gw).addr())
            .await
            .unwrap();
        assert!(nl.del_address("wbrt", net(other)).await.unwrap());
        assert_eq!(
            nl.route_src(net(subnet), "wbrt").await.unwrap(),
            Some(Some(net(gw).addr()))
        );
    }

    let v4_default = net("0.0.0.0/0");
    assert!(nl.routes_to(v4_default).await.unwrap().is_empty());
    nl.add_route(
        v4_default,
        Some("10.9.0.254".parse().unwrap()),
        Some("wbrt"),
    )
    .await
    .unwrap();
    let index = nl.index_of("wbrt").await.unwrap();
    assert_eq!(
        nl.routes_to(v4_default).await.unwrap(),
        vec![(Some(index), None)]
    );
}
