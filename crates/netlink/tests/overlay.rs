//! End to end: two "hosts" joined by a veth underlay, each with bridge +
//! vxlan (vni 42) + a "container", programmed statically through the
//! library (no learning), must ping each other over IPv4 and IPv6.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;

use common::NsGuard;
use weft_netlink::{sysctl, FdbEntry, IpNet, MacAddr, Netlink, Netns, VxlanSpec, VXLAN_PORT};

struct Host {
    nl: Netlink,
    vx: u32,
}

fn underlay(i: u8) -> IpAddr {
    format!("192.0.2.{i}").parse().unwrap()
}

fn mac(i: u8) -> MacAddr {
    MacAddr([0x02, 0x42, 0x0a, 0x2a, 0x00, i])
}

/// Bridge, vxlan and a container attached by veth, on host `i`.
async fn build_host(host: &Netns, ctr: &Netns, i: u8) -> Host {
    sysctl::set_all(
        Some(host),
        &[
            (sysctl::BRIDGE_NF_CALL_IPTABLES, "0"),
            (sysctl::BRIDGE_NF_CALL_IP6TABLES, "0"),
        ],
    )
    .unwrap();
    let nl = Netlink::open_in(host).unwrap();
    let br = nl.ensure_bridge("wbr42", 1450).await.unwrap();
    let vx = nl
        .ensure_vxlan(&VxlanSpec {
            name: "wvx42".into(),
            vni: 42,
            local: underlay(i),
            port: VXLAN_PORT,
            mtu: 1450,
            bridge: Some(br.index),
        })
        .await
        .unwrap();
    let host_end = format!("wvc{i}");
    nl.create_veth_peer_in(&host_end, "eth0", 1450, ctr.as_fd())
        .await
        .unwrap();
    nl.set_master(&host_end, br.index).await.unwrap();
    nl.set_up(&host_end).await.unwrap();

    let nc = Netlink::open_in(ctr).unwrap();
    nc.set_mac("eth0", mac(i)).await.unwrap();
    nc.set_up("lo").await.unwrap();
    nc.set_up("eth0").await.unwrap();
    for net in [format!("10.42.0.{i}/24"), format!("fd42::{i}/64")] {
        nc.add_address("eth0", net.parse::<IpNet>().unwrap())
            .await
            .unwrap();
    }
    Host { nl, vx: vx.index }
}

/// What the control plane would program on `host` for the container of peer `j`.
async fn program_peer(host: &Host, j: u8) {
    host.nl.fdb_add(host.vx, mac(j), underlay(j)).await.unwrap();
    host.nl
        .fdb_append_flood(host.vx, underlay(j))
        .await
        .unwrap();
    for ip in [format!("10.42.0.{j}"), format!("fd42::{j}")] {
        host.nl
            .neigh_set(host.vx, ip.parse().unwrap(), mac(j))
            .await
            .unwrap();
    }
}

/// `ip netns exec NS ping -c1 -W1 …`; a few tries absorb a cold first packet.
fn ping(ns: &str, args: &[&str]) -> bool {
    (1..=3).any(|attempt| {
        let ok = Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-c1", "-W1"])
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok && attempt > 1 {
            eprintln!("ping {args:?} from {ns} needed {attempt} attempts");
        }
        ok
    })
}

#[tokio::test]
async fn containers_on_two_hosts_ping_over_vxlan() {
    let mut g = NsGuard::new();
    let h1 = g.create("h1");
    let h2 = g.create("h2");
    let c1 = g.create("c1");
    let c2 = g.create("c2");

    // Underlay: one veth between the hosts.
    let n1 = Netlink::open_in(&h1).unwrap();
    let n2 = Netlink::open_in(&h2).unwrap();
    n1.create_veth_peer_in("wul1", "wul2", 1500, h2.as_fd())
        .await
        .unwrap();
    n1.add_address("wul1", "192.0.2.1/24".parse().unwrap())
        .await
        .unwrap();
    n2.add_address("wul2", "192.0.2.2/24".parse().unwrap())
        .await
        .unwrap();
    n1.set_up("wul1").await.unwrap();
    n2.set_up("wul2").await.unwrap();

    let host1 = build_host(&h1, &c1, 1).await;
    let host2 = build_host(&h2, &c2, 2).await;
    program_peer(&host1, 2).await;
    program_peer(&host2, 1).await;

    let (c1n, c2n) = (g.name("c1"), g.name("c2"));
    assert!(ping(&c1n, &["10.42.0.2"]), "IPv4 c1 -> c2");
    assert!(ping(&c2n, &["10.42.0.1"]), "IPv4 c2 -> c1");
    assert!(ping(&c1n, &["-6", "fd42::2"]), "IPv6 c1 -> c2");
    assert!(ping(&c2n, &["-6", "fd42::1"]), "IPv6 c2 -> c1");
    // A full-size overlay frame fits the underlay (1450 + 50 bytes of VXLAN).
    assert!(
        ping(&c1n, &["-M", "do", "-s", "1422", "10.42.0.2"]),
        "1450-byte packet c1 -> c2"
    );

    // Still exactly what we programmed: nothing was learned from traffic.
    let got: HashSet<FdbEntry> = host1
        .nl
        .fdb_dump(host1.vx)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let want: HashSet<FdbEntry> = [mac(2), MacAddr::ZERO]
        .into_iter()
        .map(|m| FdbEntry {
            mac: m,
            dst: Some(underlay(2)),
            permanent: true,
        })
        .collect();
    assert_eq!(got, want);

    // Withdrawing the peer's entries cuts it off again.
    for ip in ["10.42.0.2", "fd42::2"] {
        assert!(host1
            .nl
            .neigh_del(host1.vx, ip.parse().unwrap())
            .await
            .unwrap());
    }
    assert!(host1
        .nl
        .fdb_del(host1.vx, mac(2), underlay(2))
        .await
        .unwrap());
    assert!(host1
        .nl
        .fdb_del(host1.vx, MacAddr::ZERO, underlay(2))
        .await
        .unwrap());
    // c1 still has c2's MAC cached; flush it so it must ask (and get no answer).
    let flushed = Command::new("ip")
        .args(["-n", &c1n, "neigh", "flush", "dev", "eth0"])
        .status()
        .unwrap();
    assert!(flushed.success());
    let out = Command::new("ip")
        .args(["netns", "exec", &c1n, "ping", "-c1", "-W1", "10.42.0.2"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "c2 still reachable after withdrawal");
}
