//! GRE networks end to end: three hosts, h1 and h3 on the kernel datapath and h2 on the userspace
//! one (`--userspace-hosts h2`); a GRE network is carried by every host's engine all the same.
//! Ping matrix over IPv4 and IPv6, TCP and UDP, isolation from a VXLAN network beside it, the MTU,
//! what `weft status` and `network inspect` say, and tshark reading the packets as GRE with
//! key = VNI carrying Ethernet.

mod common;

use std::time::Duration;

use common::*;

const G: &str = "gnet";
const V: &str = "vnet";
const G_CONTAINERS: [(&str, &str); 4] = [("g1", "h1"), ("g2", "h2"), ("g3", "h3"), ("g4", "h1")];
const V_CONTAINERS: [(&str, &str); 2] = [("v1", "h1"), ("v2", "h2")];

fn build() -> Lab {
    let lab = Lab::up_with(3, "embedded", &["--userspace-hosts", "h2"]);
    let out = lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            G,
            "--encap",
            "gre",
            "--subnet",
            "10.71.0.0/24",
            "--subnet",
            "fd71::/64",
        ],
    );
    assert!(out.contains("mtu 1458, gre"), "{out}");
    lab.ok_on(
        "h2",
        &[
            "network",
            "create",
            V,
            "--subnet",
            "10.72.0.0/24",
            "--subnet",
            "fd72::/64",
        ],
    );
    for (c, h) in G_CONTAINERS {
        lab.run(h, c, G);
    }
    for (c, h) in V_CONTAINERS {
        lab.run(h, c, V);
    }
    lab
}

/// The record and the tables say GRE; the MTU is the underlay's less GRE's 42 bytes, and one byte
/// more gets an error back rather than silence.
fn encap_and_mtu(lab: &Lab) {
    let net = lab.inspect(G);
    assert_eq!(net["encap"], "gre", "{net}");
    assert_eq!(net["mtu"], 1458, "{net}");
    assert_eq!(lab.inspect(V)["encap"], "vxlan");
    let status = lab.ok_on("h1", &["status"]);
    let row = status
        .lines()
        .find(|l| l.starts_with(G))
        .unwrap_or_else(|| panic!("no {G} row in status:\n{status}"));
    assert!(row.contains(" gre "), "{row}");
    for (ip, header) in [(lab.ip4("g2", G), 28), (lab.ip6("g2", G), 48)] {
        let fits = (1458 - header).to_string();
        let o = lab.ping("g1", &ip, &["-M", "do", "-s", &fits]);
        assert!(
            o.status.success(),
            "a packet of GRE's MTU must pass:\n{}",
            out_text(&o)
        );
        let over = (1458 - header + 1).to_string();
        let o = lab.ping("g1", &ip, &["-M", "do", "-s", &over]);
        let text = out_text(&o).to_lowercase();
        assert!(
            !o.status.success()
                && (text.contains("message too long") || text.contains("frag needed")),
            "one byte over GRE's MTU must fail with an error:\n{text}"
        );
    }
}

/// Every host, kernel or userspace, carries the GRE network on its engine.
fn paths_reported(lab: &Lab) {
    let found = eventually(Duration::from_secs(3), || {
        let s: serde_json::Value =
            serde_json::from_str(&lab.ok_on("h1", &["status", "--json"])).unwrap();
        let has = |host: &str, peer: &str| {
            s["peers"].as_array().unwrap().iter().any(|p| {
                p["host"] == host
                    && p["peer"] == peer
                    && p["network"] == G
                    && p["path"] == "userspace"
                    && p["peer_path"] == "userspace"
            })
        };
        has("h1", "h2") && has("h2", "h3") && has("h3", "h1")
    });
    assert!(found, "status:\n{}", lab.ok_on("h1", &["status"]));
}

/// tshark on h1's underlay reads what h2 sends as GRE (protocol 0x6558, key = the VNI) carrying
/// g2's Ethernet frames.
fn tshark_reads_gre(lab: &Lab) {
    let vni = lab.vni(G);
    let ns = lab.netns("h1");
    let capture = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "tshark",
                "-i",
                "ul0",
                "-a",
                "duration:15",
            ])
            .args(["-c", "4", "-f", "ip proto 47 and src host 192.0.2.12"])
            .args(["-T", "fields", "-E", "separator=,"])
            .args([
                "-e",
                "gre.proto",
                "-e",
                "gre.key",
                "-e",
                "eth.src",
                "-e",
                "ip.dst",
            ])
            .output()
            .expect("tshark")
    });
    // tshark takes a while to start capturing: ping until it has seen enough.
    let to = lab.ip4("g1", G);
    while !capture.is_finished() {
        let o = lab.ping("g2", &to, &["-c", "2", "-i", "0.2"]);
        assert!(o.status.success(), "{}", out_text(&o));
    }
    let cap = capture.join().unwrap();
    let text = String::from_utf8_lossy(&cap.stdout).to_string();
    let g2_mac = lab.endpoint("g2", G)["mac"].as_str().unwrap().to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("0x6558,0x{vni:08x},"))
                && l.contains(&g2_mac)
                && l.contains(&to)),
        "tshark did not decode h2's packets as GRE key {vni} carrying g2's frames to {to}:\n{}",
        out_text(&cap)
    );
}

#[test]
fn gre_network_across_kernel_and_userspace_hosts() {
    let lab = build();
    lab.ping_matrix(G, &G_CONTAINERS);
    lab.tcp_udp(G, &[("g1", "g2"), ("g2", "g3"), ("g3", "g4")], 7300);
    lab.isolation(&[
        ("v1", "g2", G, "10.71.0.250/24"),
        ("g1", "v2", V, "10.72.0.250/24"),
    ]);
    encap_and_mtu(&lab);
    paths_reported(&lab);
    tshark_reads_gre(&lab);
}

/// A foreign GRE switch: an Open vSwitch userspace bridge (`datapath_type=netdev`) in a node of its
/// own on the lab's underlay, whose GRE port (`remote_ip` = h1's underlay, `key` = the network's
/// VNI) and container port stand for a host weft does not run on. Weft learns of it as it learns of
/// any host: a host record and an endpoint record in the store (written here as an operator's tool
/// would; the records have no lease, as the switch has no agent). OVS's container gets a static
/// neighbour entry for weft's, because weft's hosts never let ARP cross the underlay (every host
/// answers it from the store). Then ping and TCP cross both ways.
#[test]
fn gre_interoperates_with_open_vswitch() {
    use weft_lab::ovs::{self, Tunnel};
    use weft_model::{Allocation, Endpoint, Host, Record, CAP_GRE, SCHEMA_VERSION};

    let lab = Lab::up_with(1, "embedded", &[]);
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            G,
            "--encap",
            "gre",
            "--subnet",
            "10.73.0.0/24",
        ],
    );
    lab.run("h1", "w1", G);
    let vni = lab.vni(G) as u32;
    let topo = weft_lab::topology::Lab::named(&lab.prefix).unwrap();
    let h1 = weft_lab::topology::host_addr(1);
    let oc_addr: std::net::Ipv4Addr = "10.73.0.200".parse().unwrap();
    let side = ovs::Side::new(&topo, 1, Tunnel::Gre, h1, vni, oc_addr);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ovs::build_node(&topo, &side))
        .unwrap_or_else(|e| panic!("building the Open vSwitch node: {e:#}"));

    // The switch and its container, as records.
    let url = topo.embedded_store_url();
    rt.block_on(async {
        let store = weft_control::open_store(&url).await.unwrap();
        let host = Host {
            schema: SCHEMA_VERSION,
            id: "ovs1".into(),
            name: "ovs1".into(),
            underlay: side.underlay.into(),
            vxlan_port: 4789,
            secure_port: None,
            public_key: None,
            capabilities: vec![CAP_GRE.into()],
            agent_version: "Open vSwitch".into(),
            started_at_ms: 0,
            dns_domain: None,
        };
        let ep = Endpoint {
            schema: SCHEMA_VERSION,
            id: "ovs1-oc1".into(),
            network: G.into(),
            host: "ovs1".into(),
            container: side.container_ns.clone(),
            ifname: ovs::IFNAME.into(),
            host_ifname: ovs::VETH.into(),
            mac: side.mac.parse().unwrap(),
            ipv4: format!("{oc_addr}/24").parse().unwrap(),
            ipv6: None,
            names: vec!["oc1".into()],
            labels: Default::default(),
            kind: Default::default(),
            publish: Vec::new(),
        };
        let alloc = Allocation {
            schema: SCHEMA_VERSION,
            endpoint: ep.id.clone(),
            host: "ovs1".into(),
        };
        use weft_model::keys;
        store
            .put(&keys::host("ovs1"), host.encode(), None)
            .await
            .unwrap();
        store
            .put(&keys::ipam(G, oc_addr.into()), alloc.encode(), None)
            .await
            .unwrap();
        store
            .put(&keys::endpoint(G, &ep.id), ep.encode(), None)
            .await
            .unwrap();
    });
    let w1 = lab.ip4("w1", G);
    let w1_mac = lab.endpoint("w1", G)["mac"].as_str().unwrap().to_string();
    let ovs_ns = side.container_ns.clone();
    let ip = |args: &[&str]| {
        let o = std::process::Command::new("ip")
            .args(["-n", &ovs_ns])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "ip {args:?}: {}", out_text(&o));
    };
    ip(&[
        "neigh",
        "replace",
        &w1,
        "lladdr",
        &w1_mac,
        "dev",
        ovs::IFNAME,
    ]);

    let oc = oc_addr.to_string();
    assert!(
        eventually(Duration::from_secs(10), || lab
            .ping("w1", &oc, &["-W", "1"])
            .status
            .success()),
        "weft's w1 does not reach OVS's container over GRE:\n{}",
        out_text(&lab.ping("w1", &oc, &[]))
    );
    let o = std::process::Command::new("ip")
        .args([
            "netns", "exec", &ovs_ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", &w1,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "OVS's container -> w1: {}",
        out_text(&o)
    );
    // TCP both ways: each side a server once.
    common::sockets::tcp_echo(&lab.netns("w1"), &ovs_ns, &w1, 7400, 1 << 20);
    common::sockets::tcp_echo(&ovs_ns, &lab.netns("w1"), &oc, 7401, 1 << 20);
    let s = lab.ok_on("h1", &["status", "--json"]);
    assert!(s.contains("ovs1"), "{s}");
}
