//! Encrypted networks end to end: three hosts with real agents — two on the kernel datapath (which
//! run the engine for encrypted networks only) and one on the userspace engine — an encrypted
//! network beside a plain one, and what crosses between their containers and what the underlay
//! sees of it.
//!
//! The engines' counters are read from each agent's stats file (`--stats-file`, which the lab
//! puts at `/run/weft/lab/PREFIX/stats/HOST.json`): `secure.drops` counts every datagram the
//! encrypted transport refused, by reason; `peers` holds each session's state.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::sockets::in_netns;
use common::*;

const SEC: &str = "sec";
const PLAIN: &str = "pln";
const SEC_CONTAINERS: [(&str, &str); 4] = [("x1", "h1"), ("x2", "h2"), ("x3", "h3"), ("x4", "h1")];
const PLAIN_CONTAINERS: [(&str, &str); 3] = [("p1", "h1"), ("p2", "h2"), ("p3", "h3")];

/// Sessions rekey after this many messages in this lab, so that rekeying happens under the
/// traffic of the test (WireGuard's limit would never be reached).
const REKEY_AFTER_MESSAGES: &str = "200";

/// The overlay MTU of an encrypted network on the lab's 1500-byte IPv4 underlay.
const SEC_MTU: usize = 1426;

fn weft_env(args: &[&str]) -> std::process::Output {
    Command::new(WEFT)
        .env("WEFT_REKEY_AFTER_MESSAGES", REKEY_AFTER_MESSAGES)
        .args(args)
        .output()
        .expect("running weft")
}

/// Three hosts, h3 on the userspace engine, every agent with short rekey limits.
fn lab_up() -> Lab {
    let lab = Lab {
        prefix: format!("wt{:04x}", rand::random::<u16>()),
    };
    let o = weft_env(&[
        "lab",
        "up",
        "--prefix",
        &lab.prefix,
        "--hosts",
        "3",
        "--store",
        "embedded",
        "--lease-ttl",
        "4",
        "--userspace-hosts",
        "h3",
    ]);
    assert!(o.status.success(), "lab up failed:\n{}", out_text(&o));
    lab
}

fn lab_dir(lab: &Lab) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/run/weft/lab/{}", lab.prefix))
}

/// Writes a fresh random PSK file (base64) under the lab's directory and returns its path.
fn new_psk(lab: &Lab, name: &str) -> String {
    let key: [u8; 32] = rand::random();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let path = lab_dir(lab).join(format!("{name}.key"));
    std::fs::write(&path, hex).unwrap();
    path.display().to_string()
}

/// Installs a PSK file on a host, as an operator copies it to every host of the network.
fn install_psk(lab: &Lab, host: &str, network: &str, from: &str) {
    let dir = lab_dir(lab).join("psk").join(host);
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join(format!("{network}.psk"));
    std::fs::copy(from, &dst).unwrap();
}

/// The engine counters host `host`'s agent last wrote.
fn stats(lab: &Lab, host: &str) -> serde_json::Value {
    let path = lab_dir(lab).join("stats").join(format!("{host}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

fn dropped(lab: &Lab, host: &str, reason: &str) -> u64 {
    stats(lab, host)["secure"]["drops"][reason]
        .as_u64()
        .unwrap_or(0)
}

fn underlay_ip(host: &str) -> String {
    format!("192.0.2.{}", 10 + host[1..].parse::<u8>().unwrap())
}

/// The session state host `host` keeps with `peer` on network `vni`.
fn peer_state(lab: &Lab, host: &str, vni: u64, peer: &str) -> serde_json::Value {
    let s = stats(lab, host);
    let addr = underlay_ip(peer);
    s["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["vni"] == vni && p["addr"] == addr.as_str())
        .map(|p| p["state"].clone())
        .unwrap_or(serde_json::Value::Null)
}

fn build(lab: &Lab) {
    let psk = new_psk(lab, SEC);
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            SEC,
            "--subnet",
            "10.81.0.0/24",
            "--subnet",
            "fd81::/64",
            "--encrypt",
            "--psk-file",
            &psk,
        ],
    );
    // `network create` installed it on h1; the other hosts get the same file.
    assert!(lab_dir(lab).join("psk/h1/sec.psk").exists());
    install_psk(lab, "h2", SEC, &psk);
    install_psk(lab, "h3", SEC, &psk);
    lab.ok_on(
        "h2",
        &[
            "network",
            "create",
            PLAIN,
            "--subnet",
            "10.82.0.0/24",
            "--subnet",
            "fd82::/64",
        ],
    );
    for (c, h) in SEC_CONTAINERS {
        lab.run(h, c, SEC);
    }
    for (c, h) in PLAIN_CONTAINERS {
        lab.run(h, c, PLAIN);
    }
}

fn ping_matrix(lab: &Lab, net: &str, members: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (from, _) in members {
        for (to, _) in members {
            if from == to {
                continue;
            }
            for ip in [lab.ip4(to, net), lab.ip6(to, net)] {
                // The first packets to a new peer may wait for a handshake.
                let ok = eventually(Duration::from_secs(5), || {
                    lab.ping(from, &ip, &["-W", "1"]).status.success()
                });
                if !ok {
                    failures.push(format!("{from} -> {to} ({ip})"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "ping matrix of {net} has failures:\n{}\n{}",
        failures.join("\n"),
        lab.ok_on("h1", &["status"])
    );
}

fn mtu(lab: &Lab) {
    let net = lab.inspect(SEC);
    assert_eq!(
        net["mtu"].as_u64().unwrap() as usize,
        SEC_MTU,
        "the encrypted overlay MTU is the 1500-byte underlay less 74"
    );
    for (to, ip, header) in [
        ("x2", lab.ip4("x2", SEC), 28),
        ("x3", lab.ip6("x3", SEC), 48),
    ] {
        let fits = (SEC_MTU - header).to_string();
        let o = lab.ping("x1", &ip, &["-M", "do", "-s", &fits]);
        assert!(
            o.status.success(),
            "a packet of exactly the MTU to {to} must pass:\n{}",
            out_text(&o)
        );
        let over = (SEC_MTU - header + 1).to_string();
        let o = lab.ping("x1", &ip, &["-M", "do", "-s", &over]);
        let text = out_text(&o).to_lowercase();
        assert!(
            !o.status.success()
                && (text.contains("message too long") || text.contains("frag needed")),
            "one byte over the MTU to {to} must fail with an error, not silence:\n{text}"
        );
    }
}

/// One captured UDP datagram: destination port and payload.
struct Dgram {
    dport: u16,
    payload: Vec<u8>,
}

/// The UDP datagrams (IPv4 over Ethernet) of a classic pcap file.
fn pcap_udp(pcap: &[u8]) -> Vec<Dgram> {
    let mut out = Vec::new();
    let mut at = 24;
    while let Some(hdr) = pcap.get(at..at + 16) {
        let incl = u32::from_le_bytes(hdr[8..12].try_into().unwrap()) as usize;
        let Some(pkt) = pcap.get(at + 16..at + 16 + incl) else {
            break;
        };
        at += 16 + incl;
        if pkt.len() < 34 || pkt[12..14] != [0x08, 0x00] || pkt[23] != 17 {
            continue;
        }
        let udp = 14 + usize::from(pkt[14] & 0x0f) * 4;
        let Some(u) = pkt.get(udp..udp + 8) else {
            continue;
        };
        let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
        if let Some(p) = pkt.get(udp + 8..udp + len.max(8)) {
            out.push(Dgram {
                dport: u16::from_be_bytes([u[2], u[3]]),
                payload: p.to_vec(),
            });
        }
    }
    out
}

/// Captures UDP on h1's underlay with tshark while `traffic` runs, until `enough` of it is seen.
fn capture(lab: &Lab, filter: &str, mut traffic: impl FnMut()) -> Vec<Dgram> {
    let file = lab_dir(lab).join("capture.pcap");
    let _ = std::fs::remove_file(&file);
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.netns("h1"),
            "tshark",
            "-q",
            "-i",
            "ul0",
        ])
        .args([
            "-f",
            filter,
            "-a",
            "duration:15",
            "-c",
            "40",
            "-F",
            "pcap",
            "-w",
        ])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tshark");
    // Generous: tshark can take seconds to start capturing on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        traffic();
    }
    let _ = child.kill();
    let _ = child.wait();
    // tshark runs as root but may write through dumpcap: read what is there.
    pcap_udp(&std::fs::read(&file).unwrap_or_default())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What crosses the underlay for the encrypted network is sealed: no VXLAN, nothing of the
/// containers' bytes in clear. The same capture on the plain network finds them (the check can
/// see plaintext when there is some).
fn no_plaintext_on_the_underlay(lab: &Lab) {
    let pattern = b"weftplaintext"; // ping -p fills the ICMP payload with it
    let hex: String = pattern.iter().map(|b| format!("{b:02x}")).collect();
    let vni = lab.vni(SEC) as u32;

    let x2 = lab.ip4("x2", SEC);
    let sealed = capture(lab, "udp and host 192.0.2.11 and host 192.0.2.12", || {
        let _ = lab.exec("x1", &["ping", "-c", "3", "-i", "0.2", "-p", &hex, &x2]);
    });
    let secure: Vec<&Dgram> = sealed.iter().filter(|d| d.dport == 51820).collect();
    assert!(
        secure.len() >= 4,
        "the encrypted network's traffic should cross UDP 51820 (saw {} datagrams, {} on 51820)",
        sealed.len(),
        secure.len()
    );
    for d in &sealed {
        assert!(
            !(d.dport == 4789 && d.payload.len() >= 8 && d.payload[4..7] == vni.to_be_bytes()[1..]),
            "a VXLAN packet of the encrypted network crossed the underlay"
        );
        assert!(
            !contains(&d.payload, pattern),
            "the containers' bytes crossed the underlay in clear (port {})",
            d.dport
        );
    }

    let p2 = lab.ip4("p2", PLAIN);
    let clear = capture(lab, "udp port 4789 and host 192.0.2.11", || {
        let _ = lab.exec("p1", &["ping", "-c", "3", "-i", "0.2", "-p", &hex, &p2]);
    });
    assert!(
        clear.iter().any(|d| contains(&d.payload, pattern)),
        "control: the plain network's VXLAN should carry the pattern in clear ({} datagrams)",
        clear.len()
    );
}

/// `weft status` shows an established session per encrypted peer, and the JSON says so too.
fn handshakes_reported(lab: &Lab) {
    let ok = eventually(Duration::from_secs(8), || {
        let s: serde_json::Value =
            serde_json::from_str(&lab.ok_on("h1", &["status", "--json"])).unwrap();
        let sec: Vec<&serde_json::Value> = s["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["network"] == SEC)
            .collect();
        sec.len() == 6
            && sec.iter().all(|p| {
                p["path"] == "userspace"
                    && p["peer_path"] == "userspace"
                    && p["handshake"]
                        .as_str()
                        .is_some_and(|h| h.starts_with("established"))
            })
    });
    let table = lab.ok_on("h1", &["status"]);
    assert!(ok, "status does not show established sessions:\n{table}");
    assert!(table.contains("established"), "{table}");
}

/// A datagram to h1's secure port from `from` (an address in namespace `ns`).
fn send_to_h1(ns: &str, from: &str, pkt: Vec<u8>) {
    let from = from.to_string();
    in_netns(ns, move || {
        let s = std::net::UdpSocket::bind(format!("{from}:0")).unwrap();
        s.send_to(&pkt, "192.0.2.11:51820").unwrap();
    })
    .join()
    .unwrap();
}

/// One transport message h2 sends to h1, captured on h1's underlay while x2 pings x1.
fn capture_transport(lab: &Lab) -> Vec<u8> {
    let x1 = lab.ip4("x1", SEC);
    let got = capture(
        lab,
        "udp dst port 51820 and src host 192.0.2.12 and greater 120",
        || {
            let _ = lab.exec("x2", &["ping", "-c", "2", "-i", "0.2", "-s", "200", &x1]);
        },
    );
    got.into_iter()
        .map(|d| d.payload)
        .find(|p| p.first() == Some(&4) && p.len() > 200)
        .expect("a transport message from h2 to h1")
}

/// A forged packet from an underlay address that is no member, and a replayed real one, are
/// both dropped and counted; traffic goes on.
fn forged_and_replayed(lab: &Lab) {
    let real = capture_transport(lab);
    let before = |r: &str| dropped(lab, "h1", r);

    // Replayed, from its real sender's address.
    let replayed = before("replayed");
    send_to_h1(&lab.netns("h2"), "192.0.2.12", real.clone());
    assert!(
        eventually(Duration::from_secs(4), || dropped(lab, "h1", "replayed")
            > replayed),
        "a replayed packet was not counted: {}",
        stats(lab, "h1")["secure"]
    );

    // Forged from a non-member address on the underlay: a transport message naming a real
    // session, and an initiation for the encrypted network.
    let ul = format!("{}-ul", lab.prefix);
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ul,
            "ip",
            "addr",
            "add",
            "192.0.2.99/24",
            "dev",
            "br0",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out_text(&o));
    let unknown = before("unknown_source");
    let mut forged = real.clone();
    forged[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    send_to_h1(&ul, "192.0.2.99", forged.clone());
    let mut init = vec![1u8, 0, 0, 0, 7, 7, 7, 7];
    init.extend_from_slice(&(lab.vni(SEC) as u32).to_le_bytes());
    init.resize(120, 0x5a);
    send_to_h1(&ul, "192.0.2.99", init);
    assert!(
        eventually(Duration::from_secs(4), || dropped(
            lab,
            "h1",
            "unknown_source"
        ) >= unknown + 2),
        "forged packets from a non-member were not counted: {}",
        stats(lab, "h1")["secure"]
    );
    // The same forgery from the member's own address fails authentication.
    let auth = before("authentication");
    send_to_h1(&lab.netns("h2"), "192.0.2.12", forged);
    assert!(
        eventually(Duration::from_secs(4), || dropped(
            lab,
            "h1",
            "authentication"
        ) > auth),
        "a tampered packet was not counted: {}",
        stats(lab, "h1")["secure"]
    );
    assert!(lab.ping("x2", &lab.ip4("x1", SEC), &[]).status.success());
}

/// Pings every 10 ms across a kernel host and the userspace host while sessions rekey (every
/// 200 messages here): none is lost, and the sessions did rekey.
fn rekey_under_traffic(lab: &Lab) {
    let vni = lab.vni(SEC);
    let rekeys = |h: &str, p: &str| peer_state(lab, h, vni, p)["rekeys"].as_u64().unwrap_or(0);
    let before = (rekeys("h1", "h3"), rekeys("h3", "h1"));
    let o = lab.exec(
        "x1",
        &[
            "ping",
            "-q",
            "-i",
            "0.01",
            "-c",
            "500",
            "-W",
            "1",
            &lab.ip4("x3", SEC),
        ],
    );
    let text = out_text(&o);
    assert!(
        o.status.success() && text.contains(" 0% packet loss"),
        "pings were lost while rekeying:\n{text}"
    );
    assert!(
        eventually(Duration::from_secs(3), || rekeys("h1", "h3") > before.0
            && rekeys("h3", "h1") > before.1),
        "the sessions did not rekey under traffic: h1 {}, h3 {}",
        peer_state(lab, "h1", vni, "h3"),
        peer_state(lab, "h3", vni, "h1")
    );
}

fn agent_start(lab: &Lab, host: &str) {
    let o = weft_env(&["lab", "agent", "start", host, "--prefix", &lab.prefix]);
    assert!(o.status.success(), "{}", out_text(&o));
}

/// An agent restarted (a kernel host's, then the userspace host's): its engine goes with the
/// process; the new one makes new sessions and the network is whole again.
fn agent_restart(lab: &Lab) {
    let vni = lab.vni(SEC);
    for host in ["h2", "h3"] {
        let o = lab.lab(&["agent", "stop", host]);
        assert!(o.status.success(), "{}", out_text(&o));
        agent_start(lab, host);
        let started = Instant::now();
        let target = if host == "h2" { "x2" } else { "x3" };
        for (from, ip) in [("x1", lab.ip4(target, SEC)), ("x4", lab.ip6(target, SEC))] {
            assert!(
                eventually(Duration::from_secs(8), || lab
                    .ping(from, &ip, &["-W", "1"])
                    .status
                    .success()),
                "after restarting {host}'s agent, {from} cannot reach {target}:\n{}",
                lab.ok_on("h1", &["status"])
            );
        }
        eprintln!(
            "{host} agent restart: reachable again after {:?}",
            started.elapsed()
        );
        let st = peer_state(lab, "h1", vni, host);
        assert!(
            st["handshake"]["state"] == "established",
            "h1's session with {host}: {st}"
        );
    }
}

/// A host with the wrong PSK for a network does not carry it (a clear error in its log) while
/// the others talk; given the right key, it joins.
fn wrong_psk_keeps_a_host_out(lab: &Lab) {
    let psk = new_psk(lab, "sec2");
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            "sec2",
            "--subnet",
            "10.83.0.0/24",
            "--encrypt",
            "--psk-file",
            &psk,
        ],
    );
    install_psk(lab, "h2", "sec2", &psk);
    let wrong = new_psk(lab, "sec2-wrong");
    install_psk(lab, "h3", "sec2", &wrong);
    for (c, h) in [("y1", "h1"), ("y2", "h2"), ("y3", "h3")] {
        lab.run(h, c, "sec2");
    }
    let (y1, y2, y3) = (
        lab.ip4("y1", "sec2"),
        lab.ip4("y2", "sec2"),
        lab.ip4("y3", "sec2"),
    );
    assert!(
        eventually(Duration::from_secs(5), || lab
            .ping("y1", &y2, &["-W", "1"])
            .status
            .success()),
        "y1 and y2 (right key) should talk"
    );
    for (from, to) in [("y1", &y3), ("y3", &y1), ("y3", &y2)] {
        let o = lab.ping(from, to, &["-W", "1"]);
        assert!(
            !o.status.success(),
            "{from} reached {to} across a wrong PSK"
        );
    }
    let log = std::fs::read_to_string(lab_dir(lab).join("agent-h3.log")).unwrap();
    assert!(
        log.contains("network sec2 not carried") && log.contains("pre-shared key"),
        "h3's log does not say why sec2 is not carried:\n{log}"
    );
    // The right key: h3 picks it up on its own (it retries every second).
    install_psk(lab, "h3", "sec2", &psk);
    assert!(
        eventually(Duration::from_secs(8), || lab
            .ping("y3", &y1, &["-W", "1"])
            .status
            .success()),
        "with the right key h3 should join sec2"
    );
}

#[test]
fn encrypted_networks_across_kernel_and_userspace_hosts() {
    let lab = lab_up();
    build(&lab);
    ping_matrix(&lab, SEC, &SEC_CONTAINERS);
    ping_matrix(&lab, PLAIN, &PLAIN_CONTAINERS);
    // Kernel host to kernel host and to the userspace host, both ways.
    lab.tcp_udp(
        SEC,
        &[("x1", "x2"), ("x2", "x1"), ("x3", "x4"), ("x4", "x3")],
        7100,
    );
    lab.isolation(&[
        ("x1", "p2", PLAIN, "10.82.0.250/24"),
        ("p1", "x2", SEC, "10.81.0.250/24"),
        ("x3", "p1", PLAIN, "10.82.0.251/24"),
        ("p3", "x1", SEC, "10.81.0.251/24"),
    ]);
    mtu(&lab);
    handshakes_reported(&lab);
    no_plaintext_on_the_underlay(&lab);
    forged_and_replayed(&lab);
    rekey_under_traffic(&lab);
    wrong_psk_keeps_a_host_out(&lab);
    agent_restart(&lab);
}
