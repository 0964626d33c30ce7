//! Docker's network and IPAM driver end to end, against real Docker engines: two lab hosts, each
//! with its own dockerd whose `-d weft` driver is its host's agent.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const NET: &str = "prod";
const V4: &str = "10.71.0.0/24";
const V6: &str = "fd71::/64";

fn create(lab: &Lab, host: &str, name: &str, subnets: &[&str]) -> std::process::Output {
    let mut a = vec!["network", "create", "-d", "weft", "--ipam-driver", "weft"];
    for s in subnets {
        a.extend(["--subnet", s]);
    }
    if subnets.iter().any(|s| s.contains(':')) {
        a.push("--ipv6");
    }
    a.push(name);
    lab.docker(host, &a)
}

fn run(lab: &Lab, host: &str, name: &str) {
    lab.docker_ok(
        host,
        &[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            NET,
            "weft-busybox",
            "sleep",
            "3600",
        ],
    );
}

fn ping(lab: &Lab, host: &str, container: &str, ip: &str) {
    let o = lab.docker(host, &["exec", container, "ping", "-c", "1", "-W", "3", ip]);
    assert!(
        o.status.success(),
        "{container} on {host} cannot reach {ip}:\n{}",
        out_text(&o)
    );
}

/// Links of a lab host whose names start with `prefix`.
fn links(lab: &Lab, host: &str, prefix: &str) -> Vec<String> {
    let o = Command::new("ip")
        .args(["-n", &lab.netns(host), "-br", "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn fdb(lab: &Lab, host: &str) -> String {
    let o = Command::new("bridge")
        .args(["-n", &lab.netns(host), "fdb", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn docker_containers_across_hosts() {
    let lab = Lab::up_with(2, "embedded", &["--outside"]);
    lab.docker_start("h1");
    lab.docker_start("h2");

    // The socket Docker finds, private to root.
    let meta = std::fs::metadata(lab.plugin_socket("h1")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );

    // `weft install docker` points Docker at a socket off the default path and finds it served.
    let spec_dir = format!("/run/weft/lab/{}/spec", lab.prefix);
    let sock = lab.plugin_socket("h1");
    let o = weft(&[
        "install",
        "docker",
        "--socket",
        &sock,
        "--spec-dir",
        &spec_dir,
        "--json",
    ]);
    assert!(o.status.success(), "{}", out_text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r["implements"],
        serde_json::json!(["NetworkDriver", "IpamDriver"])
    );
    let spec = std::fs::read_to_string(format!("{spec_dir}/weft.spec")).unwrap();
    assert_eq!(spec, format!("unix://{sock}\n"));
    let o = weft(&[
        "install",
        "docker",
        "--socket",
        &sock,
        "--spec-dir",
        &spec_dir,
        "--remove",
    ]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(!std::path::Path::new(&format!("{spec_dir}/weft.spec")).exists());

    // The same command on both hosts: one weft network.
    for h in ["h1", "h2"] {
        let o = create(&lab, h, NET, &[V4, V6]);
        assert!(o.status.success(), "{}", out_text(&o));
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            lab.weft_on("h1", &["network", "inspect", NET])
                .status
                .success()
        }),
        "docker network create made no weft network"
    );
    let inspect = lab.inspect(NET);
    assert_eq!(inspect["subnet4"], V4);
    assert_eq!(inspect["subnet6"], V6);
    let vni = inspect["vni"].as_u64().unwrap();

    run(&lab, "h1", "c1");
    run(&lab, "h2", "c2");
    run(&lab, "h1", "c3");
    let (a1, b1, m1) = lab.docker_addrs("h1", "c1", NET);
    let (a2, b2, m2) = lab.docker_addrs("h2", "c2", NET);
    let (a3, _, _) = lab.docker_addrs("h1", "c3", NET);
    // Cluster-wide IPAM: lowest first, never the same address twice, the gateway never.
    let mut got = vec![a1.clone(), a2.clone(), a3.clone()];
    got.sort();
    assert_eq!(got, vec!["10.71.0.2", "10.71.0.3", "10.71.0.4"]);

    // The records carry what other hosts need, and the container's netns.
    let eps: serde_json::Value =
        serde_json::from_str(&lab.ok_on("h1", &["endpoints", "--network", NET, "--json"])).unwrap();
    let eps = eps.as_array().unwrap();
    assert_eq!(eps.len(), 3);
    let e1 = eps
        .iter()
        .find(|e| e["ipv4"] == format!("{a1}/24").as_str())
        .expect("c1's record");
    assert_eq!(e1["host"], "h1");
    assert_eq!(e1["mac"], m1.as_str());
    assert_eq!(e1["ipv6"], format!("{b1}/64").as_str());
    assert!(
        e1["container"]
            .as_str()
            .unwrap()
            .contains("/docker/h1/exec/netns/"),
        "{e1}"
    );

    // Across hosts both ways, IPv4 and IPv6; and on one host.
    ping(&lab, "h1", "c1", &a2);
    ping(&lab, "h2", "c2", &a1);
    ping(&lab, "h1", "c1", &b2);
    ping(&lab, "h2", "c2", &b1);
    ping(&lab, "h1", "c3", &a1);
    // The network's egress is the containers' way out (Docker's FORWARD policy notwithstanding).
    ping(&lab, "h2", "c2", "198.51.100.1");
    let route = lab.docker_ok("h1", &["exec", "c1", "ip", "route"]);
    assert!(route.contains("default via 10.71.0.1 dev eth0"), "{route}");
    // Host 2 knew host 1's container before any flooding: its FDB entry points at h1.
    assert!(fdb(&lab, "h2").contains(&m1), "{}", fdb(&lab, "h2"));
    assert!(fdb(&lab, "h1").contains(&m2));

    // Plugin calls gone wrong answer a JSON Err and change nothing.
    let (st, v) = lab.plugin_call("h1", "/NetworkDriver.Join", "{not json");
    assert_eq!(st, 400);
    assert!(
        v["Err"].as_str().unwrap().starts_with("bad request body"),
        "{v}"
    );
    let (st, v) = lab.plugin_call(
        "h1",
        "/NetworkDriver.Join",
        r#"{"NetworkID":"n","EndpointID":"00000000000000000000000000000000000000000000000000000000000000aa","SandboxKey":"/x"}"#,
    );
    assert_eq!(st, 500);
    assert!(
        v["Err"].as_str().unwrap().contains("unknown endpoint"),
        "{v}"
    );
    let (st, v) = lab.plugin_call(
        "h1",
        "/IpamDriver.RequestAddress",
        r#"{"PoolID":"weft:10.250.0.0/24","Address":"","Options":{}}"#,
    );
    assert_eq!(st, 500);
    assert!(v["Err"].as_str().unwrap().contains("10.250.0.0/24"), "{v}");
    let (st, v) = lab.plugin_call("h1", "/NetworkDriver.Frobnicate", "{}");
    assert_eq!(st, 404);
    assert!(
        v["Err"].as_str().unwrap().contains("not implemented"),
        "{v}"
    );
    let (st, v) = lab.plugin_call("h1", "/NetworkDriver.DiscoverNew", r#"{"DiscoveryType":1}"#);
    assert_eq!((st, v), (200, serde_json::json!({})));
    assert_eq!(
        lab.inspect(NET)["allocations"].as_object().unwrap().len(),
        6
    );

    // A subnet overlapping another weft network is refused when the network is created; a
    // Docker network contradicting the weft network of its name is refused at its first container.
    lab.ok_on(
        "h1",
        &["network", "create", "clash", "--subnet", "10.72.0.0/24"],
    );
    let o = create(&lab, "h2", "overlap", &["10.72.0.0/25"]);
    assert!(!o.status.success());
    assert!(
        out_text(&o).contains("overlaps subnet 10.72.0.0/24 of weft network \"clash\""),
        "{}",
        out_text(&o)
    );
    let o = create(&lab, "h2", "clash", &["10.73.0.0/24"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let o = lab.docker(
        "h2",
        &[
            "run",
            "-d",
            "--name",
            "cx",
            "--network",
            "clash",
            "weft-busybox",
            "sleep",
            "1",
        ],
    );
    assert!(!o.status.success());
    assert!(
        out_text(&o)
            .contains("has subnet 10.73.0.0/24 but weft network \"clash\" has 10.72.0.0/24"),
        "{}",
        out_text(&o)
    );
    lab.docker_ok("h2", &["rm", "-f", "cx"]);
    lab.docker_ok("h2", &["network", "rm", "clash"]);
    assert_eq!(lab.inspect("clash")["allocations"], serde_json::json!({}));

    // Stopping containers releases their addresses: the pool returns to its start.
    lab.docker_ok("h1", &["rm", "-f", "c1", "c3"]);
    lab.docker_ok("h2", &["rm", "-f", "c2"]);
    let inspect = lab.inspect(NET);
    assert_eq!(inspect["endpoints"], serde_json::json!([]));
    assert_eq!(inspect["allocations"], serde_json::json!({}));
    run(&lab, "h2", "c4");
    assert_eq!(lab.docker_addrs("h2", "c4", NET).0, "10.71.0.2");
    // A static address (docker run --ip) is honoured once, cluster-wide.
    lab.docker_ok(
        "h1",
        &[
            "run",
            "-d",
            "--name",
            "c6",
            "--network",
            NET,
            "--ip",
            "10.71.0.9",
            "weft-busybox",
            "sleep",
            "3600",
        ],
    );
    assert_eq!(lab.docker_addrs("h1", "c6", NET).0, "10.71.0.9");
    let o = lab.docker(
        "h2",
        &[
            "run",
            "-d",
            "--name",
            "c7",
            "--network",
            NET,
            "--ip",
            "10.71.0.9",
            "weft-busybox",
            "sleep",
            "3600",
        ],
    );
    assert!(!o.status.success());
    assert!(
        out_text(&o).contains("address 10.71.0.9 is already taken"),
        "{}",
        out_text(&o)
    );
    lab.docker_ok("h2", &["rm", "-f", "c7"]);
    lab.docker_ok("h1", &["rm", "-f", "c6"]);

    // Docker crashes with its container while the agent is down, then both come back: no stale
    // endpoint (the container's veth went with its namespace; Docker's calls never reached weft).
    run(&lab, "h1", "c5");
    let (a5, _, _) = lab.docker_addrs("h1", "c5", NET);
    assert!(lab.lab(&["agent", "kill", "h1"]).status.success());
    let o = lab.lab(&["docker", "kill", "h1"]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(lab.lab(&["agent", "start", "h1"]).status.success());
    lab.docker_start("h1");
    assert!(
        eventually(Duration::from_secs(10), || {
            let i = lab.inspect(NET);
            i["endpoints"].as_array().unwrap().len() == 1
                && !i["allocations"].as_object().unwrap().contains_key(&a5)
        }),
        "stale endpoint of c5 left: {}",
        lab.inspect(NET)
    );

    // docker network rm on every host: no interface, entry or record left.
    lab.docker_ok("h1", &["rm", "-f", "c5"]);
    lab.docker_ok("h2", &["rm", "-f", "c4"]);
    lab.docker_ok("h1", &["network", "rm", NET]);
    assert!(lab
        .weft_on("h1", &["network", "inspect", NET])
        .status
        .success());
    lab.docker_ok("h2", &["network", "rm", NET]);
    assert!(eventually(Duration::from_secs(10), || {
        !lab.weft_on("h1", &["network", "inspect", NET])
            .status
            .success()
    }));
    for h in ["h1", "h2"] {
        assert!(
            eventually(Duration::from_secs(10), || links(&lab, h, "wbr").is_empty()
                && links(&lab, h, "wvx").is_empty()
                && links(&lab, h, "wve").is_empty()),
            "{h} kept {:?}",
            links(&lab, h, "w")
        );
        assert!(!fdb(&lab, h).contains(&format!("wvx{vni}")));
    }
}
