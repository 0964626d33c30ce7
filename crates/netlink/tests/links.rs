//! Bridge, vxlan and veth handling, checked against `ip -d link`.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use common::{bridge, ip, NsGuard};
use weft_netlink::{IpNet, MacAddr, Netlink, VxlanSpec, VXLAN_PORT};

fn spec(bridge: u32, vni: u32) -> VxlanSpec {
    VxlanSpec {
        name: "wvx42".into(),
        vni,
        local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        port: VXLAN_PORT,
        mtu: 1450,
        bridge: Some(bridge),
    }
}

#[tokio::test]
async fn bridge_and_vxlan_are_idempotent() {
    let mut g = NsGuard::new();
    let ns = g.create("h");
    let name = g.name("h");
    let nl = Netlink::open_in(&ns).unwrap();

    // Two concurrent creators: both succeed, on one bridge.
    let nl2 = Netlink::open_in(&ns).unwrap();
    let (a, b) = tokio::join!(
        nl.ensure_bridge("wbr42", 1450),
        nl2.ensure_bridge("wbr42", 1450)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.index, b.index);
    assert!(a.created || b.created);
    let br = nl.ensure_bridge("wbr42", 1450).await.unwrap();
    assert_eq!(br.index, a.index);
    assert!(!br.created);
    let d = ip(&name, &["-d", "link", "show", "wbr42"]);
    for want in [
        "mtu 1450",
        "stp_state 0",
        "forward_delay 0",
        "mcast_snooping 0",
        ",UP",
    ] {
        assert!(d.contains(want), "{want:?} missing in {d}");
    }

    let vx = nl.ensure_vxlan(&spec(br.index, 42)).await.unwrap();
    assert!(vx.created);
    // Something reconcile must not wipe: an FDB entry.
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    nl.fdb_append_flood(vx.index, peer).await.unwrap();
    let again = nl.ensure_vxlan(&spec(br.index, 42)).await.unwrap();
    assert_eq!(again.index, vx.index);
    assert!(!again.created);
    assert_eq!(nl.fdb_dump(vx.index).await.unwrap().len(), 1);

    let link = nl.link_by_name("wvx42").await.unwrap().unwrap();
    assert_eq!(link.kind.as_deref(), Some("vxlan"));
    assert_eq!(link.master, Some(br.index));
    assert_eq!(link.mtu, 1450);
    assert!(link.up);
    let info = nl.vxlan_info("wvx42").await.unwrap().unwrap();
    assert_eq!(info.vni, Some(42));
    assert_eq!(info.learning, Some(false));
    assert_eq!(info.proxy, Some(true));
    let d = ip(&name, &["-d", "link", "show", "wvx42"]);
    for want in [
        "vxlan id 42",
        "local 192.0.2.1",
        "dstport 4789",
        "nolearning",
        "proxy",
        "master wbr42",
        "learning off",
        "neigh_suppress on",
    ] {
        assert!(d.contains(want), "{want:?} missing in {d}");
    }

    // A different VNI replaces the device (new index, entries gone).
    let moved = nl.ensure_vxlan(&spec(br.index, 43)).await.unwrap();
    assert!(moved.created);
    assert_ne!(moved.index, vx.index);
    assert_eq!(nl.vxlan_info("wvx42").await.unwrap().unwrap().vni, Some(43));
    assert!(nl.fdb_dump(moved.index).await.unwrap().is_empty());
    assert_eq!(
        nl.link_by_name("wvx42").await.unwrap().unwrap().master,
        Some(br.index)
    );

    // A kept device whose MTU drifted is fixed in place.
    nl.set_mtu("wvx42", 1400).await.unwrap();
    let kept = nl.ensure_vxlan(&spec(br.index, 43)).await.unwrap();
    assert_eq!(kept.index, moved.index);
    assert_eq!(nl.link_by_name("wvx42").await.unwrap().unwrap().mtu, 1450);

    // Names taken by another kind are errors, never deleted.
    let mut wrong = spec(br.index, 42);
    wrong.name = "wbr42".into();
    let e = nl.ensure_vxlan(&wrong).await.unwrap_err();
    assert!(e.to_string().contains("kind bridge"), "{e}");
    let e = nl.ensure_bridge("wvx42", 1450).await.unwrap_err();
    assert!(e.to_string().contains("kind vxlan"), "{e}");
    assert!(nl.link_by_name("wbr42").await.unwrap().is_some());

    // The flood entry is in the vxlan's table, not the bridge's (whose only
    // entry for the port is the port's own MAC).
    let fdb = bridge(&name, &["fdb", "show", "dev", "wvx42"]);
    assert!(
        !fdb.lines()
            .any(|l| l.contains("master") && l.starts_with("00:00:00:00:00:00")),
        "{fdb}"
    );
}

#[tokio::test]
async fn veth_moves_into_a_container_and_is_configured_there() {
    let mut g = NsGuard::new();
    let host = g.create("host");
    let ctr = g.create("ctr");
    let ctr_name = g.name("ctr");
    let nl = Netlink::open_in(&host).unwrap();
    let nc = Netlink::open_in(&ctr).unwrap();

    let idx = nl.create_veth("wvh0", "wvp0", 1450).await.unwrap();
    assert_eq!(nl.create_veth("wvh0", "wvp0", 1450).await.unwrap(), idx);
    let e = nl.create_veth("wvh0", "other0", 1450).await.unwrap_err();
    assert!(e.is_exists(), "{e}");
    let host_end = nl.link_by_name("wvh0").await.unwrap().unwrap();
    assert_eq!(host_end.kind.as_deref(), Some("veth"));
    assert_eq!(host_end.mtu, 1450);
    assert!(!host_end.up);

    nl.move_to_netns("wvp0", ctr.as_fd()).await.unwrap();
    assert!(nl.link_by_name("wvp0").await.unwrap().is_none());
    nc.rename("wvp0", "eth0").await.unwrap();
    let mac: MacAddr = "02:42:0a:2a:00:05".parse().unwrap();
    nc.set_mac("eth0", mac).await.unwrap();
    nc.set_up("lo").await.unwrap();
    nc.set_up("eth0").await.unwrap();
    let v4: IpNet = "10.42.0.5/24".parse().unwrap();
    let v6: IpNet = "fd42::5/64".parse().unwrap();
    for net in [v4, v6] {
        nc.add_address("eth0", net).await.unwrap();
        // Adding the same address again is fine.
        nc.add_address("eth0", net).await.unwrap();
    }
    nc.add_route(
        "0.0.0.0/0".parse().unwrap(),
        Some("10.42.0.1".parse().unwrap()),
        Some("eth0"),
    )
    .await
    .unwrap();
    nc.add_route(
        "::/0".parse().unwrap(),
        Some("fd42::1".parse().unwrap()),
        Some("eth0"),
    )
    .await
    .unwrap();
    nc.add_route("198.51.100.0/24".parse().unwrap(), None, Some("eth0"))
        .await
        .unwrap();

    let eth0 = nc.link_by_name("eth0").await.unwrap().unwrap();
    assert_eq!(eth0.mac, mac);
    assert!(eth0.up);
    let addrs = nc.list_addresses("eth0").await.unwrap();
    assert!(addrs.contains(&v4) && addrs.contains(&v6), "{addrs:?}");
    let a6 = ip(&ctr_name, &["-6", "addr", "show", "dev", "eth0"]);
    assert!(
        a6.contains("fd42::5/64") && !a6.contains("tentative"),
        "{a6}"
    );
    let r4 = ip(&ctr_name, &["route", "show"]);
    assert!(r4.contains("default via 10.42.0.1 dev eth0"), "{r4}");
    assert!(r4.contains("198.51.100.0/24 dev eth0"), "{r4}");
    assert!(ip(&ctr_name, &["-6", "route", "show"]).contains("default via fd42::1 dev eth0"));

    assert!(nc
        .del_route("198.51.100.0/24".parse().unwrap(), None, Some("eth0"))
        .await
        .unwrap());
    assert!(!nc
        .del_route("198.51.100.0/24".parse().unwrap(), None, Some("eth0"))
        .await
        .unwrap());
    assert!(nc
        .del_route("::/0".parse().unwrap(), None, None)
        .await
        .unwrap());
    assert!(nc.del_address("eth0", v6).await.unwrap());
    assert!(!nc.del_address("eth0", v6).await.unwrap());
    assert!(!nc.list_addresses("eth0").await.unwrap().contains(&v6));

    // Kernel refusals name the link.
    let e = nc.rename("eth0", "lo").await.unwrap_err();
    assert_eq!(e.to_string(), "renaming link eth0 to lo: File exists");
    let e = nc.rename("eth0", "much-too-long-name").await.unwrap_err();
    assert!(e.to_string().contains("longer than 15"), "{e}");

    // Deleting the host end removes the container end too.
    assert!(nl.delete_link("wvh0").await.unwrap());
    assert!(!nl.delete_link("wvh0").await.unwrap());
    assert!(nc.link_by_name("eth0").await.unwrap().is_none());
    let e = nl.set_up("wvh0").await.unwrap_err();
    assert_eq!(e.to_string(), "link wvh0: No such device");
}

#[tokio::test]
async fn veth_peer_created_directly_in_a_namespace() {
    let mut g = NsGuard::new();
    let host = g.create("h2");
    let ctr = g.create("c2");
    let nl = Netlink::open_in(&host).unwrap();
    let nc = Netlink::open_in(&ctr).unwrap();
    nl.create_veth_peer_in("wvh1", "eth0", 1400, ctr.as_fd())
        .await
        .unwrap();
    let br = nl.ensure_bridge("wbr1", 1400).await.unwrap();
    nl.set_master("wvh1", br.index).await.unwrap();
    nl.set_up("wvh1").await.unwrap();
    let h = nl.link_by_name("wvh1").await.unwrap().unwrap();
    assert_eq!(h.master, Some(br.index));
    let c = nc.link_by_name("eth0").await.unwrap().unwrap();
    assert_eq!(c.mtu, 1400);
    nl.set_nomaster("wvh1").await.unwrap();
    assert_eq!(nl.link_by_name("wvh1").await.unwrap().unwrap().master, None);
    let names: Vec<String> = nl
        .list_links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(names.contains(&"wvh1".to_string()) && names.contains(&"wbr1".to_string()));
}
