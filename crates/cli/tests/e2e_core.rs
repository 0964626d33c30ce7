//! The core promise end to end, on both stores: three hosts with real agents, two networks, and
//! what crosses between their containers.

mod common;

use std::time::Duration;

use common::sockets::{broadcast, in_netns};
use common::*;

const A: &str = "neta";
const B: &str = "netb";
const A_CONTAINERS: [(&str, &str); 4] = [("a1", "h1"), ("a2", "h2"), ("a3", "h3"), ("a4", "h1")];
const B_CONTAINERS: [(&str, &str); 3] = [("b1", "h1"), ("b2", "h2"), ("b3", "h3")];

/// Short enough that the host-death check does not wait long, long enough for a restart to adopt it.
const LEASE_TTL: &str = "4";

fn build(store: &str) -> Lab {
    build_with(store, &[])
}

fn build_with(store: &str, extra: &[&str]) -> Lab {
    let mut args = vec!["--lease-ttl", LEASE_TTL];
    args.extend_from_slice(extra);
    let lab = Lab::up_with(3, store, &args);
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            A,
            "--subnet",
            "10.61.0.0/24",
            "--subnet",
            "fd61::/64",
        ],
    );
    lab.ok_on(
        "h2",
        &[
            "network",
            "create",
            B,
            "--subnet",
            "10.62.0.0/24",
            "--subnet",
            "fd62::/64",
        ],
    );
    for (c, h) in A_CONTAINERS {
        lab.run(h, c, A);
    }
    for (c, h) in B_CONTAINERS {
        lab.run(h, c, B);
    }
    lab
}

fn ping_matrix(lab: &Lab) {
    lab.ping_matrix(A, &A_CONTAINERS);
    lab.ping_matrix(B, &B_CONTAINERS);
}

fn broadcast_scope(lab: &Lab) {
    let listeners: Vec<String> = ["a2", "a3", "a4", "b1", "b2", "b3"]
        .iter()
        .map(|c| lab.netns(c))
        .collect();
    let mut got = broadcast(&lab.netns("a1"), &listeners, 7200);
    got.sort();
    let mut want: Vec<String> = ["a2", "a3", "a4"].iter().map(|c| lab.netns(c)).collect();
    want.sort();
    assert_eq!(
        got, want,
        "broadcast from a1 must reach exactly the other containers of {A}"
    );
}

fn mtu(lab: &Lab) {
    let net = lab.inspect(A);
    let mtu = net["mtu"].as_u64().unwrap() as usize;
    assert_eq!(
        mtu, 1450,
        "default overlay MTU is the 1500-byte underlay less VXLAN's 50"
    );
    for (ip, header) in [(lab.ip4("a2", A), 28), (lab.ip6("a2", A), 48)] {
        let fits = (mtu - header).to_string();
        let o = lab.ping("a1", &ip, &["-M", "do", "-s", &fits]);
        assert!(
            o.status.success(),
            "a packet of exactly the MTU must pass:\n{}",
            out_text(&o)
        );
        let over = (mtu - header + 1).to_string();
        let o = lab.ping("a1", &ip, &["-M", "do", "-s", &over]);
        assert!(!o.status.success(), "one byte over the MTU must fail");
        let text = out_text(&o).to_lowercase();
        assert!(
            text.contains("message too long") || text.contains("frag needed"),
            "over-MTU ping must fail with an error, not silence:\n{text}"
        );
    }
}

/// The FDB and neighbour entries a host holds for a network's remote endpoints.
fn entries(lab: &Lab, host: &str, vni: u64) -> (Vec<String>, Vec<String>) {
    let ns = lab.netns(host);
    in_netns(&ns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let nl = weft_netlink::Netlink::open().unwrap();
            let vx = nl
                .link_by_name(&format!("wvx{vni}"))
                .await
                .unwrap()
                .expect("vxlan device");
            let fdb = nl
                .fdb_dump(vx.index)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.mac.to_string())
                .collect();
            let neigh = nl
                .neigh_dump(vx.index)
                .await
                .unwrap()
                .into_iter()
                .map(|n| n.ip.to_string())
                .collect();
            (fdb, neigh)
        })
    })
    .join()
    .unwrap()
}

/// Detaching a3 (on h3) removes its entries from the kernel datapaths of `kernel_hosts`.
fn detach_everywhere(lab: &Lab, kernel_hosts: &[&str]) {
    let vni = lab.vni(A);
    let ep = lab.endpoint("a3", A);
    let mac = ep["mac"].as_str().unwrap().to_string();
    let ip4 = lab.ip4("a3", A);
    for h in kernel_hosts {
        let (fdb, neigh) = entries(lab, h, vni);
        assert!(
            fdb.contains(&mac) && neigh.contains(&ip4),
            "{h} lacks a3's entries before detach: {fdb:?} {neigh:?}"
        );
    }
    let ns = format!("/run/netns/{}", lab.netns("a3"));
    lab.ok_on("h3", &["detach", &ns, A]);
    for h in kernel_hosts {
        let gone = eventually(Duration::from_secs(3), || {
            let (fdb, neigh) = entries(lab, h, vni);
            !fdb.contains(&mac) && !neigh.iter().any(|n| n == &ip4)
        });
        assert!(
            gone,
            "{h} still holds a3's entries after detach: {:?}",
            entries(lab, h, vni)
        );
    }
    // h3 has no endpoint of A left: its devices for A are gone too.
    let o = lab.exec("h3", &["ip", "link", "show", &format!("wbr{vni}")]);
    assert!(
        !o.status.success(),
        "h3 kept the bridge of {A} after its last endpoint left"
    );
}

/// An agent restarted while pings flow loses none of them, and picks up what changed meanwhile.
fn agent_restart(lab: &Lab) {
    let to = lab.ip4("a2", A);
    let pinger = {
        let lab_prefix = lab.prefix.clone();
        let to = to.clone();
        std::thread::spawn(move || {
            std::process::Command::new(WEFT)
                .args([
                    "lab",
                    "exec",
                    "--prefix",
                    &lab_prefix,
                    "a1",
                    "--",
                    "ping",
                    "-i",
                    "0.05",
                    "-c",
                    "80",
                    "-W",
                    "1",
                    &to,
                ])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let o = lab.lab(&["agent", "stop", "h2"]);
    assert!(o.status.success(), "{}", out_text(&o));
    // While h2's agent is down, a new container joins on h1 and another leaves.
    lab.run("h1", "a5", A);
    let a4_mac = lab.endpoint("a4", A)["mac"].as_str().unwrap().to_string();
    let o = lab.lab(&["rm", "a4"]);
    assert!(o.status.success(), "{}", out_text(&o));
    std::thread::sleep(Duration::from_millis(500));
    let o = lab.lab(&["agent", "start", "h2"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let ping = pinger.join().unwrap();
    let text = out_text(&ping);
    assert!(
        ping.status.success() && text.contains(" 0% packet loss"),
        "pings were lost across the agent restart:\n{text}"
    );
    let a5 = lab.ip4("a5", A);
    assert!(
        eventually(Duration::from_secs(5), || lab
            .ping("a2", &a5, &["-W", "1"])
            .status
            .success()),
        "the restarted agent on h2 did not pick up a5, attached while it was down"
    );
    let vni = lab.vni(A);
    assert!(
        eventually(Duration::from_secs(3), || !entries(lab, "h2", vni)
            .0
            .contains(&a4_mac)),
        "the restarted agent on h2 kept the stale entry of a4, removed while it was down"
    );
}

/// A host that dies: its entries vanish everywhere and its addresses return to the pool within its
/// lease time.
fn host_death(lab: &Lab) {
    let vni = lab.vni(B);
    let mac = lab.endpoint("b3", B)["mac"].as_str().unwrap().to_string();
    let ip4 = lab.ip4("b3", B);
    assert!(lab.inspect(B)["allocations"].get(&ip4).is_some());
    let o = lab.lab(&["agent", "kill", "h3"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let ttl: u64 = LEASE_TTL.parse().unwrap();
    let gone = eventually(Duration::from_secs(ttl + 3), || {
        ["h1", "h2"].iter().all(|h| {
            let (fdb, neigh) = entries(lab, h, vni);
            !fdb.contains(&mac) && !neigh.contains(&ip4)
        })
    });
    assert!(
        gone,
        "entries of dead host h3 are still programmed {}s after it died",
        ttl + 3
    );
    let allocations = lab.inspect(B)["allocations"].clone();
    assert!(
        allocations.get(&ip4).is_none(),
        "address {ip4} of dead host h3 not returned: {allocations}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&lab.ok_on("h1", &["status", "--json"])).unwrap();
    let hosts: Vec<&str> = status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, vec!["h1", "h2"], "dead host still registered");
    // Traffic among the living goes on.
    let o = lab.ping("b1", &lab.ip4("b2", B), &[]);
    assert!(o.status.success(), "{}", out_text(&o));
}

/// Losing one etcd member of three changes nothing; losing the store keeps traffic flowing on the
/// last state, and the agents carry on when it is back.
fn etcd_loss(lab: &Lab) {
    let ok = |args: &[&str]| {
        let o = lab.lab(args);
        assert!(o.status.success(), "weft lab {args:?}:\n{}", out_text(&o));
    };
    ok(&["etcd", "kill", "e1"]);
    // Calls made during the election that follows may fail (etcd: "leader changed"); after it,
    // everything works as before.
    assert!(
        eventually(Duration::from_secs(10), || lab
            .weft_on("h1", &["status"])
            .status
            .success()),
        "the two remaining etcd members did not serve"
    );
    lab.run("h1", "a6", A);
    let a6 = lab.ip4("a6", A);
    assert!(
        eventually(Duration::from_secs(5), || lab
            .ping("a2", &a6, &["-W", "1"])
            .status
            .success()),
        "with one etcd member of three down, a new container was not reachable"
    );
    let a2 = lab.ip4("a2", A);
    ok(&["etcd", "stop", "e2"]);
    let o = lab.ping("a1", &a2, &["-c", "5", "-i", "0.2"]);
    assert!(
        o.status.success() && out_text(&o).contains(" 0% packet loss"),
        "traffic stopped while the store was down:\n{}",
        out_text(&o)
    );
    ok(&["etcd", "start", "e1"]);
    ok(&["etcd", "start", "e2"]);
    lab.run("h2", "a7", A);
    let a7 = lab.ip4("a7", A);
    assert!(
        eventually(Duration::from_secs(10), || lab
            .ping("a1", &a7, &["-W", "1"])
            .status
            .success()),
        "after the store came back, a new container was not reachable"
    );
}

/// `network rm` is refused while endpoints exist; `--force` removes their records, and every agent
/// removes the interfaces and devices it held for the network.
fn remove_network(lab: &Lab) {
    let vni = lab.vni(A);
    let o = lab.weft_on("h1", &["network", "rm", A]);
    assert!(
        !o.status.success() && out_text(&o).contains("--force"),
        "{}",
        out_text(&o)
    );
    lab.ok_on("h1", &["network", "rm", A, "--force"]);
    let o = lab.weft_on("h1", &["network", "inspect", A]);
    assert!(
        !o.status.success() && out_text(&o).contains("no such network"),
        "{}",
        out_text(&o)
    );
    for h in ["h1", "h2"] {
        let clean = eventually(Duration::from_secs(5), || {
            let o = lab.exec(h, &["ip", "-br", "link"]);
            let links = String::from_utf8_lossy(&o.stdout).to_string();
            !links.contains(&format!("wvx{vni}")) && !links.contains(&format!("wbr{vni}"))
        });
        assert!(
            clean,
            "{h} kept devices of the removed network:\n{}",
            out_text(&lab.exec(h, &["ip", "-br", "link"]))
        );
    }
    let o = lab.exec("a1", &["ip", "-br", "link"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("eth0"),
        "a1 kept its interface: {}",
        out_text(&o)
    );
}

fn core(store: &str) {
    let lab = build(store);
    ping_matrix(&lab);
    lab.tcp_udp(A, &[("a1", "a2"), ("a2", "a1"), ("a3", "a4")], 7000);
    lab.isolation(&[
        ("a1", "b2", B, "10.62.0.250/24"),
        ("b1", "a2", A, "10.61.0.250/24"),
    ]);
    broadcast_scope(&lab);
    mtu(&lab);
    detach_everywhere(&lab, &["h1", "h2"]);
    agent_restart(&lab);
    if store == "etcd" {
        etcd_loss(&lab);
    }
    host_death(&lab);
    remove_network(&lab);
}

#[test]
fn core_on_embedded_store() {
    core("embedded");
}

#[test]
fn core_on_etcd() {
    core("etcd");
}

/// The userspace engine's packets on the wire are VXLAN with the network's VNI, as tshark reads them.
fn engine_speaks_vxlan(lab: &Lab) {
    let vni = lab.vni(A);
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
                "-c",
                "6",
            ])
            .args([
                "-f",
                "udp port 4789 and src host 192.0.2.12",
                "-d",
                "udp.port==4789,vxlan",
            ])
            .args(["-T", "fields", "-e", "vxlan.vni", "-e", "eth.src"])
            .output()
            .expect("tshark")
    });
    // tshark takes a while to start capturing (seconds on a loaded machine): ping until it has
    // seen enough or given up.
    let to = lab.ip4("a1", A);
    while !capture.is_finished() {
        let o = lab.ping("a2", &to, &["-c", "2", "-i", "0.2"]);
        assert!(o.status.success(), "{}", out_text(&o));
    }
    let cap = capture.join().unwrap();
    let text = String::from_utf8_lossy(&cap.stdout).to_string();
    let a2_mac = lab.endpoint("a2", A)["mac"].as_str().unwrap().to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{vni}\t")) && l.contains(&a2_mac)),
        "tshark did not decode h2's engine packets as VXLAN VNI {vni} carrying a2's frames:\n{}",
        out_text(&cap)
    );
}

/// A userspace agent restarted: its engine (and TAPs) go with the process; the new agent brings
/// the network back and traffic flows again.
fn userspace_restart(lab: &Lab) {
    let a2 = lab.ip4("a2", A);
    let o = lab.lab(&["agent", "stop", "h2"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let o = lab.lab(&["agent", "start", "h2"]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(
        eventually(Duration::from_secs(5), || lab
            .ping("a1", &a2, &["-W", "1"])
            .status
            .success()),
        "after restarting h2's userspace agent, a2 is not reachable"
    );
}

#[test]
fn kernel_and_userspace_hosts_interoperate() {
    let lab = build_with("embedded", &["--userspace-hosts", "h2,h3"]);
    ping_matrix(&lab);
    lab.tcp_udp(A, &[("a1", "a2"), ("a2", "a1"), ("a3", "a4")], 7000);
    lab.isolation(&[
        ("a1", "b2", B, "10.62.0.250/24"),
        ("b1", "a2", A, "10.61.0.250/24"),
    ]);
    broadcast_scope(&lab);
    mtu(&lab);
    engine_speaks_vxlan(&lab);
    peer_paths_reported(&lab);
    detach_everywhere(&lab, &["h1"]);
    userspace_restart(&lab);
}

/// `weft status` says, per host and peer, which datapath carries the traffic.
fn peer_paths_reported(lab: &Lab) {
    let found = eventually(Duration::from_secs(3), || {
        let s: serde_json::Value =
            serde_json::from_str(&lab.ok_on("h1", &["status", "--json"])).unwrap();
        let has = |host: &str, peer: &str, path: &str, peer_path: &str| {
            s["peers"].as_array().unwrap().iter().any(|p| {
                p["host"] == host
                    && p["peer"] == peer
                    && p["network"] == A
                    && p["path"] == path
                    && p["peer_path"] == peer_path
            })
        };
        has("h1", "h2", "kernel", "userspace")
            && has("h2", "h1", "userspace", "kernel")
            && has("h2", "h3", "userspace", "userspace")
    });
    assert!(
        found,
        "status does not report the peer paths:\n{}",
        lab.ok_on("h1", &["status"])
    );
}
