//! Cluster DNS end to end: three hosts with real agents, two networks, containers asking their
//! host's resolver (through the resolv.conf attach wrote) with getent and dig, as a user would.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::sockets::in_netns;
use common::*;

const A: &str = "neta";
const B: &str = "netb";
/// Generous: tests only wait; `weft lab bench` measures how fast names appear and go.
const DEADLINE: Duration = Duration::from_secs(10);

fn build() -> Lab {
    let lab = Lab::up(3, "embedded");
    for (net, s4, s6) in [
        (A, "10.71.0.0/24", "fd71::/64"),
        (B, "10.72.0.0/24", "fd72::/64"),
    ] {
        lab.ok_on(
            "h1",
            &["network", "create", net, "--subnet", s4, "--subnet", s6],
        );
    }
    // a1…a3 on every host form the service `svc`; b1, b2 on netb; m on both networks.
    for (c, h) in [("a1", "h1"), ("a2", "h2"), ("a3", "h3")] {
        lab_ok(&lab, &["run", h, c, "--network", A, "--alias", "svc"]);
    }
    lab.run("h1", "b1", B);
    lab.run("h3", "b2", B);
    lab.run("h2", "m", A);
    let m = format!("/run/netns/{}", lab.netns("m"));
    lab.ok_on("h2", &["attach", &m, B, "--ifname", "eth1", "--name", "m"]);
    lab
}

fn lab_ok(lab: &Lab, args: &[&str]) -> String {
    let o = lab.lab(args);
    assert!(o.status.success(), "lab {args:?}:\n{}", out_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `dig +short` from a container: the answer lines.
fn dig_short(lab: &Lab, from: &str, args: &[&str]) -> Vec<String> {
    let mut cmd = vec!["dig", "+short", "+tries=1", "+time=2"];
    cmd.extend_from_slice(args);
    let o = lab.exec(from, &cmd);
    assert!(
        o.status.success(),
        "dig {args:?} in {from}:\n{}",
        out_text(&o)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The status of a dig answer (NOERROR, NXDOMAIN, REFUSED…) and the whole text.
fn dig_status(lab: &Lab, from: &str, args: &[&str]) -> (String, String) {
    let mut cmd = vec!["dig", "+tries=1", "+time=2"];
    cmd.extend_from_slice(args);
    let o = lab.exec(from, &cmd);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig {args:?} from {from}:\n{}", out_text(&o)))
        .to_string();
    (status, text)
}

fn getent4(lab: &Lab, from: &str, name: &str) -> Option<String> {
    let o = lab.exec(from, &["getent", "ahostsv4", name]);
    if !o.status.success() {
        return None;
    }
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .map(str::to_string)
}

fn stats(lab: &Lab, host: &str) -> serde_json::Value {
    let path = format!("/run/weft/lab/{}/stats/{host}.dns.json", lab.prefix);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("stats json")
}

#[test]
fn names_across_hosts_only_on_shared_networks() {
    let lab = build();

    // The resolver attach configured.
    let conf = std::fs::read_to_string(format!("/etc/netns/{}/resolv.conf", lab.netns("a1")))
        .expect("resolv.conf of a1");
    assert!(conf.contains("nameserver 127.0.0.53"), "{conf}");
    assert!(
        conf.contains("search neta.weft.internal weft.internal"),
        "{conf}"
    );
    let conf_m = std::fs::read_to_string(format!("/etc/netns/{}/resolv.conf", lab.netns("m")))
        .expect("resolv.conf of m");
    assert!(
        conf_m.contains("search neta.weft.internal netb.weft.internal weft.internal"),
        "{conf_m}"
    );

    // Every name from every host, in all three forms, both families, and back.
    let members = ["a1", "a2", "a3", "m"];
    for from in ["a1", "a2", "a3"] {
        for to in members {
            let ip4 = lab.ip4(to, A);
            assert_eq!(
                getent4(&lab, from, to).as_deref(),
                Some(ip4.as_str()),
                "{from} → {to}"
            );
            assert_eq!(
                dig_short(&lab, from, &[&format!("{to}.{A}")]),
                std::slice::from_ref(&ip4)
            );
            assert_eq!(
                dig_short(&lab, from, &[&format!("{to}.{A}.weft.internal"), "AAAA"]),
                [lab.ip6(to, A)]
            );
            assert_eq!(
                dig_short(&lab, from, &["-x", &ip4]),
                [format!("{to}.{A}.weft.internal.")]
            );
        }
    }

    // Over TCP too (what a stub falls back to for a truncated answer).
    assert_eq!(
        dig_short(&lab, "a3", &["+tcp", "a1.neta"]),
        [lab.ip4("a1", A)]
    );

    // A service of three endpoints on three hosts: all answered, each first in turn.
    let svc: Vec<String> = ["a1", "a2", "a3"].iter().map(|c| lab.ip4(c, A)).collect();
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let mut got = dig_short(&lab, "a2", &["svc"]);
        firsts.insert(got[0].clone());
        got.sort();
        let mut want = svc.clone();
        want.sort();
        assert_eq!(got, want);
    }
    assert_eq!(firsts.len(), 3, "rotation put only {firsts:?} first");

    // Unknown names in weft's zones: NXDOMAIN with the SOA.
    for n in ["nope", "nope.neta", "nope.neta.weft.internal"] {
        let (status, text) = dig_status(&lab, "a1", &[n]);
        assert_eq!(status, "NXDOMAIN", "{n}:\n{text}");
        assert!(text.contains("SOA"), "{n} without SOA:\n{text}");
    }
    assert_eq!(getent4(&lab, "a1", "nope"), None);

    // Nothing across networks: b1 is to a1 what a name nobody has is, in every form.
    for (leak, unknown) in [
        ("b1", "nobody"),
        ("b1.netb", "nobody.nowhere"),
        ("b1.netb.weft.internal", "nobody.nowhere.weft.internal"),
    ] {
        let (s1, t1) = dig_status(&lab, "a1", &[leak]);
        let (s2, _) = dig_status(&lab, "a1", &[unknown]);
        assert_eq!(s1, s2, "{leak} differs from an unknown name:\n{t1}");
        assert!(!t1.contains(&lab.ip4("b1", B)), "{leak} leaked:\n{t1}");
    }
    let (s, t) = dig_status(&lab, "a1", &["-x", &lab.ip4("b1", B)]);
    assert_ne!(s, "NOERROR", "b1's PTR leaked:\n{t}");
    assert_eq!(getent4(&lab, "b1", "a1"), None);
    assert_eq!(getent4(&lab, "b1", "b2"), Some(lab.ip4("b2", B)));
    // m is on both: it sees both.
    assert_eq!(getent4(&lab, "m", "a3"), Some(lab.ip4("a3", A)));
    assert_eq!(getent4(&lab, "m", "b2"), Some(lab.ip4("b2", B)));

    // Not an open resolver: nothing answers on the hosts' underlay addresses, nor on the hosts'
    // own loopback.
    for (from, server) in [("h2", "192.0.2.11"), ("h1", "127.0.0.53")] {
        let o = lab.exec(
            from,
            &[
                "dig",
                "+tries=1",
                "+time=1",
                &format!("@{server}"),
                "a1.neta",
            ],
        );
        assert!(
            !o.status.success(),
            "{server} answered from {from}:\n{}",
            out_text(&o)
        );
    }

    // The lab has no outside: names beyond weft are refused, never sent to the machine's resolvers.
    let (s, t) = dig_status(&lab, "a1", &["example.com"]);
    assert_eq!(s, "REFUSED", "{t}");

    // Malformed queries: counted, answered FORMERR where there is a header, agent alive.
    let before = stats(&lab, "h1")["malformed"].as_u64().unwrap();
    let formerr = in_netns(&lab.netns("a1"), || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.connect("127.0.0.53:53").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.send(&[0xde, 0xad, 0xbe]).unwrap();
        // A header announcing one question, and no question.
        s.send(&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x03])
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.recv(&mut buf).expect("an answer to the headed garbage");
        buf[..n].to_vec()
    })
    .join()
    .unwrap();
    assert_eq!(&formerr[..2], &[0x12, 0x34]);
    assert_eq!(formerr[3] & 0x0f, 1, "FORMERR expected: {formerr:?}");
    assert!(
        eventually(DEADLINE, || stats(&lab, "h1")["malformed"]
            .as_u64()
            .unwrap()
            >= before + 2),
        "malformed queries not counted: {}",
        stats(&lab, "h1")
    );
    assert_eq!(getent4(&lab, "a1", "a2"), Some(lab.ip4("a2", A)));

    // Detach: the name goes everywhere, the service shrinks, the file and the sockets go.
    let ns3 = lab.netns("a3");
    let o = lab.ss(&ns3);
    assert!(o.contains("127.0.0.53:"), "no resolver in a3:\n{o}");
    lab.ok_on("h3", &["detach", &format!("/run/netns/{ns3}"), A]);
    for from in ["a1", "a2", "m"] {
        assert!(
            eventually(DEADLINE, || dig_status(&lab, from, &["a3.neta"]).0
                == "NXDOMAIN"),
            "a3 still answered to {from}"
        );
    }
    assert_eq!(dig_short(&lab, "a1", &["svc"]).len(), 2);
    assert!(
        !std::path::Path::new(&format!("/etc/netns/{ns3}/resolv.conf")).exists(),
        "resolv.conf of a3 left behind"
    );
    assert!(
        eventually(DEADLINE, || !lab.ss(&ns3).contains("127.0.0.53:")),
        "the agent still holds sockets in a3's namespace:\n{}",
        lab.ss(&ns3)
    );
    // Still on netb: m keeps its resolver when it leaves one of two networks.
    let nsm = lab.netns("m");
    lab.ok_on("h2", &["detach", &format!("/run/netns/{nsm}"), A]);
    let conf_m = std::fs::read_to_string(format!("/etc/netns/{nsm}/resolv.conf")).unwrap();
    assert!(
        conf_m.contains("search netb.weft.internal weft.internal"),
        "{conf_m}"
    );
    assert!(
        eventually(DEADLINE, || getent4(&lab, "m", "a1").is_none()),
        "m still resolves a1 after leaving neta"
    );
    assert_eq!(getent4(&lab, "m", "b1"), Some(lab.ip4("b1", B)));

    // The network removed with its containers: their names, resolvers and files go on every host.
    lab.ok_on("h1", &["network", "rm", B, "--force"]);
    for c in ["b1", "b2", "m"] {
        let ns = lab.netns(c);
        let conf = format!("/etc/netns/{ns}/resolv.conf");
        assert!(
            eventually(DEADLINE, || !std::path::Path::new(&conf).exists()
                && !lab.ss(&ns).contains("127.0.0.53:")),
            "{c} kept its resolv.conf or resolver after network rm:\n{}",
            lab.ss(&ns)
        );
    }
}

/// A child killed on drop (the outside's resolver).
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn forwards_to_the_outside_from_the_host() {
    let lab = Lab::up_with(2, "embedded", &["--outside"]);
    lab.ok_on("h1", &["network", "create", A, "--subnet", "10.74.0.0/24"]);
    lab.run("h1", "c1", A);
    lab.run("h2", "c2", A);
    // The internet's resolver, in the outside namespace; its log says who asked.
    let log = format!("/run/weft/lab/{}/outside-dnsmasq.log", lab.prefix);
    let _resolver = Kill(
        std::process::Command::new("ip")
            .args(["netns", "exec", &format!("{}-out", lab.prefix), "dnsmasq"])
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
                "--bind-interfaces",
                "--listen-address=192.0.2.254",
                "--address=/example.test/198.51.100.7",
                "--log-queries",
                "--log-facility=-",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("dnsmasq (scripts/deps installs dnsmasq-base)"),
    );
    assert!(
        eventually(DEADLINE, || dig_short(
            &lab,
            "h1",
            &["@192.0.2.254", "example.test"]
        ) == ["198.51.100.7"]),
        "the outside's resolver did not come up"
    );

    for from in ["c1", "c2"] {
        assert_eq!(dig_short(&lab, from, &["example.test"]), ["198.51.100.7"]);
        assert_eq!(
            dig_short(&lab, from, &["+tcp", "www.example.test"]),
            ["198.51.100.7"]
        );
        assert_eq!(
            getent4(&lab, from, "api.example.test").as_deref(),
            Some("198.51.100.7")
        );
    }
    // weft's own names still answered here, and never asked upstream.
    assert_eq!(getent4(&lab, "c2", "c1"), Some(lab.ip4("c1", A)));
    assert_eq!(dig_status(&lab, "c1", &["nope.neta"]).0, "NXDOMAIN");
    let asked = std::fs::read_to_string(&log).unwrap();
    for host in ["192.0.2.11", "192.0.2.12"] {
        assert!(
            asked.contains(&format!("example.test from {host}")),
            "no query from host {host}:\n{asked}"
        );
    }
    assert!(
        !asked.contains("from 10.74."),
        "a container asked directly:\n{asked}"
    );
    for ours in ["neta", "weft.internal", "] c1 "] {
        assert!(!asked.contains(ours), "{ours} went upstream:\n{asked}");
    }
}

#[test]
fn bad_names_change_nothing() {
    let lab = Lab::up(1, "embedded");
    lab.ok_on("h1", &["network", "create", A, "--subnet", "10.73.0.0/24"]);
    let o = lab.lab(&["run", "h1", "x", "--network", A, "--alias", "Not_A.Label"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid alias name \"Not_A.Label\""), "{err}");
    let eps = lab.ok_on("h1", &["endpoints", "--json"]);
    assert_eq!(eps.trim(), "[]", "an endpoint was left: {eps}");
    assert!(!std::path::Path::new(&format!("/etc/netns/{}", lab.netns("x"))).exists());
    let o = lab.weft_on("h1", &["agent", "--dns-upstream", "resolver.example"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid --dns-upstream"),
        "{}",
        out_text(&o)
    );
}

impl SsExt for Lab {
    fn ss(&self, ns: &str) -> String {
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-Hlnut"])
            .output()
            .expect("ss");
        let nft = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "nft",
                "list",
                "table",
                "ip",
                "weft-resolver",
            ])
            .output()
            .expect("nft");
        let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
        if nft.status.success() {
            text.push_str("127.0.0.53: redirected by nft table weft-resolver\n");
        }
        text
    }
}

trait SsExt {
    /// Listening UDP and TCP sockets in a namespace, and weft's port-53 redirect there.
    fn ss(&self, ns: &str) -> String;
}
