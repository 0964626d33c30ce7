//! VXLAN FDB and neighbour entries, checked against `bridge fdb` / `ip neigh`.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use common::{bridge, ip, NsGuard};
use weft_netlink::{FdbEntry, MacAddr, NeighEntry, Netlink, VxlanSpec, VXLAN_PORT};

async fn setup(g: &mut NsGuard) -> (Netlink, u32, String) {
    let ns = g.create("f");
    let nl = Netlink::open_in(&ns).unwrap();
    let br = nl.ensure_bridge("wbr42", 1450).await.unwrap();
    let vx = nl
        .ensure_vxlan(&VxlanSpec {
            name: "wvx42".into(),
            vni: 42,
            local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            port: VXLAN_PORT,
            mtu: 1450,
            bridge: Some(br.index),
        })
        .await
        .unwrap();
    (nl, vx.index, g.name("f"))
}

fn entry(mac: MacAddr, dst: &str) -> FdbEntry {
    FdbEntry {
        mac,
        dst: Some(dst.parse().unwrap()),
        permanent: true,
    }
}

#[tokio::test]
async fn fdb_round_trip_with_several_flood_destinations() {
    let mut g = NsGuard::new();
    let (nl, vx, name) = setup(&mut g).await;
    let m1: MacAddr = "02:42:0a:2a:00:02".parse().unwrap();
    let zero = MacAddr::ZERO;
    let ip2: IpAddr = "192.0.2.2".parse().unwrap();
    let ip3: IpAddr = "192.0.2.3".parse().unwrap();

    nl.fdb_add(vx, m1, ip2).await.unwrap();
    // Same MAC, new destination: replaced, not added.
    nl.fdb_add(vx, m1, ip3).await.unwrap();
    nl.fdb_append_flood(vx, ip2).await.unwrap();
    nl.fdb_append_flood(vx, ip3).await.unwrap();
    nl.fdb_append_flood(vx, ip3).await.unwrap();
    let got: HashSet<_> = nl.fdb_dump(vx).await.unwrap().into_iter().collect();
    let want: HashSet<_> = [
        entry(m1, "192.0.2.3"),
        entry(zero, "192.0.2.2"),
        entry(zero, "192.0.2.3"),
    ]
    .into();
    assert_eq!(got, want);

    let shown = bridge(&name, &["fdb", "show", "dev", "wvx42"]);
    for want in [
        "02:42:0a:2a:00:02 dst 192.0.2.3 self permanent",
        "00:00:00:00:00:00 dst 192.0.2.2 self permanent",
        "00:00:00:00:00:00 dst 192.0.2.3 self permanent",
    ] {
        assert!(shown.contains(want), "{want:?} missing in {shown}");
    }
    // Nothing we added went to the bridge's table.
    assert!(!shown
        .lines()
        .any(|l| l.contains("master") && l.starts_with("02:42:0a:2a:00:02")));

    // Deleting one flood destination keeps the other.
    assert!(nl.fdb_del(vx, zero, ip2).await.unwrap());
    // Deleting it again is harmless (the kernel even reports success, since
    // the zero-MAC entry itself still exists).
    nl.fdb_del(vx, zero, ip2).await.unwrap();
    let got: HashSet<_> = nl.fdb_dump(vx).await.unwrap().into_iter().collect();
    assert_eq!(
        got,
        [entry(m1, "192.0.2.3"), entry(zero, "192.0.2.3")].into()
    );

    assert!(nl.fdb_del(vx, m1, ip3).await.unwrap());
    assert!(!nl.fdb_del(vx, m1, ip3).await.unwrap());
    assert!(nl.fdb_del(vx, zero, ip3).await.unwrap());
    assert!(nl.fdb_dump(vx).await.unwrap().is_empty());
    // Entries of other devices (the bridge's own addresses) never show up.
    let br = nl.index_of("wbr42").await.unwrap();
    assert!(nl
        .fdb_dump(br)
        .await
        .unwrap()
        .iter()
        .all(|e| e.dst.is_none()));
}

#[tokio::test]
async fn neighbours_v4_and_v6() {
    let mut g = NsGuard::new();
    let (nl, vx, name) = setup(&mut g).await;
    let m1: MacAddr = "02:42:0a:2a:00:02".parse().unwrap();
    let m2: MacAddr = "02:42:0a:2a:00:03".parse().unwrap();
    let a4: IpAddr = "10.42.0.2".parse().unwrap();
    let a6: IpAddr = "fd42::2".parse().unwrap();

    nl.neigh_set(vx, a4, m1).await.unwrap();
    nl.neigh_set(vx, a6, m1).await.unwrap();
    nl.neigh_set(vx, a4, m2).await.unwrap();
    nl.neigh_set(vx, a4, m2).await.unwrap();
    // Only the entries set here: the kernel may add its own (a multicast group's, when IPv6
    // comes up on the device and it sends an MLD report).
    let got: HashSet<_> = nl
        .neigh_dump(vx)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.permanent)
        .collect();
    let want: HashSet<_> = [
        NeighEntry {
            ip: a4,
            mac: m2,
            permanent: true,
        },
        NeighEntry {
            ip: a6,
            mac: m1,
            permanent: true,
        },
    ]
    .into();
    assert_eq!(got, want);
    let shown = ip(&name, &["neigh", "show", "dev", "wvx42"]);
    assert!(
        shown.contains("10.42.0.2 lladdr 02:42:0a:2a:00:03 PERMANENT"),
        "{shown}"
    );
    assert!(
        shown.contains("fd42::2 lladdr 02:42:0a:2a:00:02 PERMANENT"),
        "{shown}"
    );

    assert!(nl.neigh_del(vx, a4).await.unwrap());
    assert!(!nl.neigh_del(vx, a4).await.unwrap());
    assert!(nl.neigh_del(vx, a6).await.unwrap());
    assert!(!nl.neigh_dump(vx).await.unwrap().iter().any(|n| n.permanent));

    let e = nl.neigh_set(9999, a4, m1).await.unwrap_err();
    assert!(
        e.to_string().starts_with(
            "setting neighbour 10.42.0.2 lladdr 02:42:0a:2a:00:02 on link index 9999: "
        ),
        "{e}"
    );
}
