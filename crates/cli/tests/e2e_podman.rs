//! Real Podman on two lab hosts, with weft's CNI plugin installed by `weft install cni`: containers
//! on different hosts reach each other, and containers attached by weft itself; port mappings
//! (portmap chained after weft) reach them; stopping and removing them gives their addresses back
//! and leaves no interface, FDB entry or record.

mod common;

use std::io::Read;
use std::time::Duration;

use common::podman::{Podman, IMAGE};
use common::{eventually, out_text, Lab};
use serde_json::Value;

const NET: &str = "prod";

fn allocations(lab: &Lab) -> Vec<String> {
    lab.inspect(NET)["allocations"]
        .as_object()
        .map(|a| a.keys().cloned().collect())
        .unwrap_or_default()
}

fn endpoint_hosts(lab: &Lab) -> Vec<(String, String)> {
    let v: Value =
        serde_json::from_str(&lab.ok_on("h1", &["endpoints", "--network", NET, "--json"])).unwrap();
    let mut out: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["ipv4"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// MACs in the FDB of a host's VXLAN device for the network (none when it has no such device).
fn vxlan_fdb(lab: &Lab, host: &str, vni: u64) -> String {
    let o = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.netns(host),
            "bridge",
            "fdb",
            "show",
            "dev",
        ])
        .arg(format!("wvx{vni}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn podman_containers_across_hosts_on_a_weft_network() {
    let lab = Lab::up(2, "embedded");
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            NET,
            "--subnet",
            "10.32.0.0/24",
            "--subnet",
            "fd00:32::/64",
        ],
    );
    let vni = lab.vni(NET);
    // A container attached by weft itself, on h2.
    lab.run("h2", "plain", NET);
    let plain = lab.ip4("plain", NET);
    let links_h1 = lab.links("h1");
    let links_h2 = lab.links("h2");
    let allocs_before = allocations(&lab);
    let eps_before = endpoint_hosts(&lab);

    let p1 = Podman::setup(&lab, "h1", NET);
    let p2 = Podman::setup(&lab, "h2", NET);
    assert!(p1
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|n| n == NET));

    let run = |p: &Podman, name: &str, extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["run", "-d", "--name", name, "--network", NET];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        p.ok(&args);
    };
    run(&p1, "a1", &[], &["sleep", "600"]);
    run(&p2, "b1", &[], &["sleep", "600"]);
    let a1 = p1.ip("a1", NET);
    let b1 = p2.ip("b1", NET);
    assert!(
        a1.starts_with("10.32.0.") && b1.starts_with("10.32.0."),
        "{a1} {b1}"
    );
    assert_ne!(a1, b1);
    let a1_mac = p1.ok(&["exec", "a1", "cat", "/sys/class/net/eth0/address"]);

    // Across hosts, both ways, IPv4 and IPv6.
    p1.ok(&["exec", "a1", "ping", "-c", "1", "-W", "2", &b1]);
    p2.ok(&["exec", "b1", "ping", "-c", "1", "-W", "2", &a1]);
    let b1_v6 = p2.ok(&[
        "inspect",
        "--format",
        &format!("{{{{.NetworkSettings.Networks.{NET}.GlobalIPv6Address}}}}"),
        "b1",
    ]);
    assert!(b1_v6.starts_with("fd00:32::"), "{b1_v6}");
    p1.ok(&["exec", "a1", "ping", "-c", "1", "-W", "2", &b1_v6]);
    // A Podman container and one attached with `weft lab run`, on another host.
    p1.ok(&["exec", "a1", "ping", "-c", "1", "-W", "2", &plain]);
    let o = lab.ping("plain", &a1, &[]);
    assert!(
        o.status.success(),
        "plain cannot reach a1:\n{}",
        out_text(&o)
    );
    // h2 knows a1's MAC from the store.
    assert!(
        vxlan_fdb(&lab, "h2", vni).contains(&a1_mac),
        "{}",
        vxlan_fdb(&lab, "h2", vni)
    );

    // A port mapping: portmap, chained after weft, takes h1's port 18081 to a2's port 80.
    run(
        &p1,
        "a2",
        &["-p", "18081:80"],
        &["nc", "-ll", "-p", "80", "-e", "echo", "hello-from-a2"],
    );
    let got = eventually(Duration::from_secs(5), || {
        common::sockets::in_netns(&lab.netns("h2"), || {
            let mut s = match std::net::TcpStream::connect_timeout(
                &"192.0.2.11:18081".parse().unwrap(),
                Duration::from_secs(2),
            ) {
                Ok(s) => s,
                Err(_) => return false,
            };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            buf.contains("hello-from-a2")
        })
        .join()
        .unwrap()
    });
    assert!(got, "the mapped port on h1 did not reach a2");

    // Stopping releases the address at once; removing leaves nothing.
    p1.ok(&["stop", "--time", "0", "a1"]);
    assert!(!endpoint_hosts(&lab)
        .iter()
        .any(|(_, ip)| ip.starts_with(&format!("{a1}/"))));
    assert!(
        eventually(Duration::from_secs(5), || !vxlan_fdb(&lab, "h2", vni)
            .contains(&a1_mac)),
        "h2 keeps a1's FDB entry"
    );
    p1.ok(&["start", "a1"]);
    p1.ok(&["exec", "a1", "ping", "-c", "1", "-W", "2", &b1]);
    let sandboxes: Vec<String> = [(&p1, "a1"), (&p1, "a2"), (&p2, "b1")]
        .iter()
        .map(|(p, c)| p.ok(&["inspect", "--format", "{{.NetworkSettings.SandboxKey}}", c]))
        .collect();
    p1.ok(&["rm", "--force", "--time", "0", "a1", "a2"]);
    p2.ok(&["rm", "--force", "--time", "0", "b1"]);

    assert_eq!(endpoint_hosts(&lab), eps_before);
    assert_eq!(
        allocations(&lab),
        allocs_before,
        "addresses not back in the pool"
    );
    assert_eq!(lab.links("h1"), links_h1);
    assert_eq!(lab.links("h2"), links_h2);
    assert!(
        // Container MACs of this network carry its addresses: 02:57:0a:20:…
        eventually(Duration::from_secs(5), || !vxlan_fdb(&lab, "h2", vni)
            .contains("02:57:0a:20")),
        "FDB entries left on h2: {}",
        vxlan_fdb(&lab, "h2", vni)
    );
    for s in sandboxes {
        assert!(
            !std::path::Path::new(&s).exists(),
            "Podman's netns {s} left behind"
        );
    }
    // The pool starts over where it started: the next container gets the first address again.
    run(&p1, "a3", &[], &["sleep", "600"]);
    assert_eq!(p1.ip("a3", NET), a1, "the pool did not return to its start");
}
