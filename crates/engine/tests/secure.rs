//! End to end, as root, in namespaces: two engines carrying an encrypted network — the ping
//! matrix, MTU errors and TCP/UDP across; forged, replayed, tampered and malformed packets and
//! packets of non-members dropped and counted by reason; a wrong PSK keeping a host out;
//! rekeying under traffic without loss; an engine restart re-establishing the session.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use weft_engine::{Encap, Engine, EngineStats, PresharedKey, SECURE_PORT};
use weft_netlink::{command_in_netns, in_netns};

fn stats(lab: &Lab, i: usize) -> EngineStats {
    lab.engine(i).stats()
}

fn stats_json(lab: &Lab, i: usize) -> String {
    serde_json::to_string_pretty(&stats(lab, i)).unwrap()
}

fn dropped(lab: &Lab, i: usize, reason: &str) -> u64 {
    stats(lab, i).secure.dropped(reason)
}

fn ping_matrix(lab: &Lab) {
    let (c1, c2) = (&lab.hosts[0].ctr, &lab.hosts[1].ctr);
    assert!(
        ping(c1, &[&v4(2).to_string()]),
        "IPv4 c1 -> c2\n{}\n{}",
        stats_json(lab, 0),
        stats_json(lab, 1)
    );
    assert!(ping(c2, &[&v4(1).to_string()]), "IPv4 c2 -> c1");
    assert!(ping(c1, &["-6", &v6(2).to_string()]), "IPv6 c1 -> c2");
    assert!(ping(c2, &["-6", &v6(1).to_string()]), "IPv6 c2 -> c1");
    // A full-size overlay packet (1426 bytes) crosses in one piece; one byte more gets an
    // ICMP error back, not silence.
    assert!(ping(c1, &["-M", "do", "-s", "1398", &v4(2).to_string()]));
    assert!(ping(
        c2,
        &["-6", "-M", "do", "-s", "1378", &v6(1).to_string()]
    ));
    let out = run_in(
        c1,
        "ping",
        &["-c1", "-W1", "-M", "do", "-s", "1399", "10.42.0.2"],
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && (text.contains("Frag needed") || text.contains("too long")),
        "{text}"
    );
}

/// An established session between the two engines, both ways.
fn established(lab: &Lab) -> bool {
    [(0usize, 2u8), (1, 1)].iter().all(|&(i, j)| {
        stats(lab, i).peer(VNI, underlay(j)).is_some_and(|p| {
            matches!(
                p.state.handshake,
                weft_secure::HandshakeStatus::Established { .. }
            )
        })
    })
}

#[tokio::test]
async fn encrypted_engines_talk() {
    let lab = Lab::new([Uplink::Encrypted, Uplink::Encrypted], SECURE_MTU).await;
    // Only the secure port is bound: a host whose kernel holds 4789 can still run this.
    assert_eq!(lab.engine(0).local_addr(), None);
    assert_eq!(
        lab.engine(0).secure_addr().map(|a| a.port()),
        Some(SECURE_PORT)
    );
    ping_matrix(&lab);
    assert!(established(&lab), "{}", stats_json(&lab, 0));

    let (c1, c2) = (&lab.hosts[0].ctr, &lab.hosts[1].ctr);
    let fwd = iperf3(c1, c2, v4(2), 2, false);
    let rev = iperf3(c1, c2, v4(2), 2, true);
    let v6fwd = iperf3(c2, c1, v6(1), 1, false);
    eprintln!("iperf3 encrypted c1->c2 {fwd:.2} Gbit/s, c2->c1 {rev:.2}, IPv6 c2->c1 {v6fwd:.2}");
    assert!(fwd > 0.05 && rev > 0.05 && v6fwd > 0.05, "TCP barely moves");
    for (len, reverse) in [(1398, false), (1398, true), (8000, false), (8000, true)] {
        let (mbps, lost) = iperf3_udp(c1, c2, v4(2), len, reverse);
        eprintln!("iperf3 UDP {len} (reverse {reverse}): {mbps:.0} Mbit/s, {lost:.1} % lost");
        assert!(
            mbps > 10.0 && lost < 10.0,
            "UDP {len} reverse {reverse}\n{}\n{}",
            stats_json(&lab, 0),
            stats_json(&lab, 1)
        );
    }
    let s = stats(&lab, 0);
    eprintln!("{}", stats_json(&lab, 0));
    let n = s.network(VNI).unwrap();
    assert!(n.tx.packets > 1000 && n.rx.packets > 1000, "{n:?}");
    assert_eq!(n.rx.drop_bad_checksum + n.rx.drop_tap_error, 0, "{n:?}");
    for i in 0..2 {
        let sec = stats(&lab, i).secure;
        let bad: u64 = sec.drops.values().sum();
        assert_eq!(bad, 0, "host {} dropped: {:?}", i + 1, sec.drops);
    }
}

/// A pcap record's UDP payload (Ethernet, IPv4, UDP) from `tcpdump -w -` output.
fn pcap_udp_payload(pcap: &[u8]) -> Option<Vec<u8>> {
    let rec = pcap.get(24..)?;
    let incl = u32::from_le_bytes(rec.get(8..12)?.try_into().ok()?) as usize;
    let pkt = rec.get(16..16 + incl)?;
    let ihl = usize::from(pkt.get(14)? & 0x0f) * 4;
    let udp = 14 + ihl;
    let len = usize::from(u16::from_be_bytes([pkt[udp + 4], pkt[udp + 5]]));
    pkt.get(udp + 8..udp + len).map(|p| p.to_vec())
}

/// One transport message host 2 sends to host 1, captured on host 1's underlay while c2 pings.
fn capture_transport(lab: &Lab) -> Vec<u8> {
    let mut cmd = Command::new("tcpdump");
    cmd.args([
        "-i",
        "wul1",
        "-U",
        "-c",
        "1",
        "-w",
        "-",
        "udp dst port 51820 and src host 198.51.100.2 and greater 140",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    command_in_netns(&mut cmd, &lab.hosts[0].ns).unwrap();
    let child = cmd.spawn().expect("tcpdump");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() && Instant::now() < deadline {
        ping(&lab.hosts[1].ctr, &["-s", "200", &v4(1).to_string()]);
    }
    if !waiter.is_finished() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let out = waiter.join().unwrap();
    let p = pcap_udp_payload(&out.stdout).expect("a captured transport packet");
    assert_eq!(p[0], 4, "a transport message");
    p
}

/// Sends `pkt` to host 1's secure port from `from` (an address in host 2's namespace).
fn send_from(lab: &Lab, from: &str, pkt: Vec<u8>) {
    let from = from.to_string();
    in_netns(&lab.hosts[1].ns, move || {
        let s = UdpSocket::bind(format!("{from}:0")).unwrap();
        s.send_to(&pkt, format!("198.51.100.1:{SECURE_PORT}"))
            .unwrap();
    })
    .unwrap();
}

#[tokio::test]
async fn forged_replayed_and_foreign_packets_are_counted_drops() {
    let lab = Lab::new([Uplink::Encrypted, Uplink::Encrypted], SECURE_MTU).await;
    assert!(ping(&lab.hosts[1].ctr, &[&v4(1).to_string()]));
    let real = capture_transport(&lab);

    // Replayed: the very packet again, from its sender's address.
    let before = dropped(&lab, 0, "replayed");
    send_from(&lab, "198.51.100.2", real.clone());
    assert!(
        eventually(|| dropped(&lab, 0, "replayed") == before + 1),
        "{}",
        stats_json(&lab, 0)
    );

    // Tampered: a fresh counter (the nonce) and the old ciphertext: the tag fails.
    let mut forged = real.clone();
    forged[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    send_from(&lab, "198.51.100.2", forged.clone());
    assert!(eventually(|| dropped(&lab, 0, "authentication") == 1));
    let mut flipped = real.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    flipped[8..16].copy_from_slice(&(1u64 << 41).to_le_bytes());
    send_from(&lab, "198.51.100.2", flipped);
    assert!(eventually(|| dropped(&lab, 0, "authentication") == 2));

    // From an underlay address that is no member: refused before any cryptography, whether it
    // names a real session or claims to start one.
    let n = lab.hosts[1].nl.clone();
    n.add_address("wul2", "198.51.100.77/24".parse().unwrap())
        .await
        .unwrap();
    send_from(&lab, "198.51.100.77", forged);
    let mut init = vec![1u8, 0, 0, 0, 9, 9, 9, 9];
    init.extend_from_slice(&VNI.to_le_bytes());
    init.resize(120, 0xab);
    send_from(&lab, "198.51.100.77", init.clone());
    assert!(eventually(|| dropped(&lab, 0, "unknown_source") == 2));

    // A well-made initiation from a member's address but with a key that is no member's.
    let stranger = weft_secure::KeyPair::generate().unwrap();
    let wall = weft_secure::WallClock {
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap(),
        at: Instant::now(),
    };
    let mut p = weft_secure::Peer::new(
        weft_secure::Config::new(77, VNI, wall),
        &stranger,
        *keys(1).public(),
        psk(),
    )
    .unwrap();
    let mut msg = Vec::new();
    let o = p.encrypt(&[], &mut msg, Instant::now()).unwrap();
    assert_eq!(o, weft_secure::Outcome::Handshake);
    send_from(&lab, "198.51.100.2", msg);
    assert!(
        eventually(|| dropped(&lab, 0, "not_member") == 1),
        "{}",
        stats_json(&lab, 0)
    );

    // Another network's initiation, an unknown receiver index, garbage.
    init[8..12].copy_from_slice(&4242u32.to_le_bytes());
    send_from(&lab, "198.51.100.2", init);
    let mut unknown = real.clone();
    unknown[4..8].copy_from_slice(&0x00ff_fffeu32.to_le_bytes());
    send_from(&lab, "198.51.100.2", unknown);
    send_from(&lab, "198.51.100.2", vec![4, 0, 0]);
    send_from(&lab, "198.51.100.2", vec![3; 64]);
    assert!(eventually(|| dropped(&lab, 0, "wrong_network") == 1
        && dropped(&lab, 0, "unknown_index") == 1
        && dropped(&lab, 0, "malformed") == 2));

    // A burst of random datagrams of every type and many lengths, some with a real receiver
    // index: each one is counted as some drop, none panics, nothing gets through.
    let total_before: u64 = stats(&lab, 0).secure.drops.values().sum();
    let mut burst = Vec::new();
    for i in 0..300u32 {
        let len = [
            0usize, 1, 3, 16, 31, 32, 33, 71, 72, 73, 119, 120, 121, 200, 1500,
        ][i as usize % 15];
        let mut p: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
        if let Some(t) = p.first_mut() {
            *t = (i % 6) as u8;
        }
        if i % 3 == 0 && p.len() >= 8 {
            p[4..8].copy_from_slice(&real[4..8]);
        }
        if i % 5 == 0 && p.len() >= 12 {
            p[8..12].copy_from_slice(&VNI.to_le_bytes());
        }
        burst.push(p);
    }
    let n = burst.len() as u64;
    in_netns(&lab.hosts[1].ns, move || {
        let s = UdpSocket::bind("198.51.100.2:0").unwrap();
        for p in burst {
            s.send_to(&p, format!("198.51.100.1:{SECURE_PORT}"))
                .unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
    })
    .unwrap();
    assert!(
        eventually(|| stats(&lab, 0).secure.drops.values().sum::<u64>() == total_before + n),
        "{}",
        stats_json(&lab, 0)
    );

    // None of it disturbed the session.
    assert!(ping(&lab.hosts[1].ctr, &[&v4(1).to_string()]));
    assert!(established(&lab));
    eprintln!("{}", stats_json(&lab, 0));
}

#[tokio::test]
async fn a_wrong_psk_keeps_a_host_out() {
    let lab = Lab::new([Uplink::Encrypted, Uplink::Encrypted], SECURE_MTU).await;
    assert!(ping(&lab.hosts[0].ctr, &[&v4(2).to_string()]));
    let mut cfg = secure_config(2);
    if let Encap::Encrypted(s) = &mut cfg.encap {
        s.psk = PresharedKey::from_bytes([0x77; 32]);
    }
    lab.engine(1).set_network(cfg).unwrap();
    assert!(!ping(&lab.hosts[0].ctr, &["-W", "2", &v4(2).to_string()]));
    let auth = |i| dropped(&lab, i, "authentication");
    assert!(
        eventually(|| auth(0) + auth(1) > 0),
        "{}\n{}",
        stats_json(&lab, 0),
        stats_json(&lab, 1)
    );
    // The right key again: the peers are remade and talk.
    lab.engine(1).set_network(secure_config(2)).unwrap();
    assert!(ping(&lab.hosts[0].ctr, &[&v4(2).to_string()]));
}

#[tokio::test]
async fn rekeying_under_traffic_loses_nothing() {
    let lab = Lab::tuned([Uplink::Encrypted, Uplink::Encrypted], SECURE_MTU, |c| {
        c.limits.rekey_after_messages = 150;
        c.limits.rekey_after_time = Duration::from_secs(2);
        c.limits.reject_after_time = Duration::from_secs(8);
        c.limits.keepalive_timeout = Duration::from_secs(1);
    })
    .await;
    assert!(ping(&lab.hosts[0].ctr, &[&v4(2).to_string()]));
    let out = run_in(
        &lab.hosts[0].ctr,
        "ping",
        &[
            "-q",
            "-i",
            "0.01",
            "-c",
            "500",
            "-W",
            "1",
            &v4(2).to_string(),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    assert!(text.contains(" 0% packet loss"), "{text}");
    for i in 0..2 {
        let p = stats(&lab, i).peers[0].clone();
        eprintln!("host {}: {:?}", i + 1, p.state);
        assert!(
            p.state.rekeys >= 2,
            "host {} rekeyed {} times",
            i + 1,
            p.state.rekeys
        );
    }
}

#[tokio::test]
async fn a_restarted_engine_reestablishes_the_session() {
    let mut lab = Lab::new([Uplink::Encrypted, Uplink::Encrypted], SECURE_MTU).await;
    assert!(ping(&lab.hosts[0].ctr, &[&v4(2).to_string()]));
    // Host 2's engine goes (its TAP with it) and a new one comes, as with an agent restart.
    lab.hosts[1].engine = None;
    let engine: Engine = start_engine(&lab.hosts[1].ns, 2, |_| {});
    engine.set_network(secure_config(2)).unwrap();
    let nl = &lab.hosts[1].nl;
    let br = nl.link_by_name("wbr42").await.unwrap().unwrap();
    nl.set_master("wtp42", br.index).await.unwrap();
    nl.set_up("wtp42").await.unwrap();
    lab.hosts[1].engine = Some(engine);
    // The peer keeps sending on its old session until the new one is confirmed (a few ms):
    // what it sends meanwhile is lost, as with WireGuard; then everything passes.
    let out = run_in(
        &lab.hosts[0].ctr,
        "ping",
        &["-c", "20", "-i", "0.05", "-W", "1", &v4(2).to_string()],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let received: u32 = text
        .split(", ")
        .find_map(|p| p.strip_suffix(" received"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    eprintln!("{text}");
    assert!(received >= 18, "{text}\n{}", stats_json(&lab, 1));
    assert!(ping(&lab.hosts[1].ctr, &["-6", &v6(1).to_string()]));
}

/// Hosts on different secure ports: each is told the other's (what the host records carry), and
/// the sessions come up and carry traffic both ways.
#[tokio::test]
async fn peers_on_their_own_secure_ports() {
    const PORT2: u16 = SECURE_PORT + 7;
    let lab = Lab::tuned([Uplink::Encrypted, Uplink::Encrypted], SECURE_MTU, |cfg| {
        if cfg.underlay == underlay(2) {
            cfg.secure_port = PORT2;
        }
    })
    .await;
    for (i, peer, port) in [(1u8, 2u8, PORT2), (2, 1, SECURE_PORT)] {
        let mut cfg = secure_config(i);
        if let Encap::Encrypted(s) = &mut cfg.encap {
            s.ports.insert(underlay(peer), port);
        }
        lab.engine(usize::from(i - 1)).set_network(cfg).unwrap();
    }
    assert_eq!(lab.engine(1).secure_addr().map(|a| a.port()), Some(PORT2));
    ping_matrix(&lab);
    assert!(established(&lab), "{}", stats_json(&lab, 0));
}
