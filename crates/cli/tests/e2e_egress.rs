//! The outside world end to end: two hosts (one on the kernel's VXLAN, one on weft's engine) and
//! the lab's outside namespace (198.51.100.0/24, the
//! "internet"). Each host's bridge is its containers' gateway; egress is masqueraded to the host's
//! underlay address; `--no-egress` networks stay in; published ports answer on the host's address
//! and from the host itself; `weft expose`/`hide`; and weft's nft tables come and go with the
//! networks while a foreign table survives everything.

mod common;

use std::time::Duration;

use common::sockets::{call, in_netns, peer_echo, udp_once};
use common::*;
use weft_wire::checksum;

const PROD: &str = "prod";
const DARK: &str = "dark";
const SIDE: &str = "side";
const OUTSIDE: &str = "198.51.100.1";
const H1: &str = "192.0.2.11";
const H2: &str = "192.0.2.12";

/// The host's whole nftables rule set, without counter values (`-s`).
fn ruleset(lab: &Lab, host: &str) -> String {
    let o = lab.exec(host, &["nft", "-s", "list", "ruleset"]);
    assert!(o.status.success(), "{}", out_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn bridge_mac(lab: &Lab, host: &str, vni: u64) -> String {
    let out = ok(
        lab,
        host,
        &["ip", "-j", "link", "show", &format!("wbr{vni}")],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_string()
}

fn neigh_mac(lab: &Lab, container: &str, ip: &str) -> String {
    let out = ok(lab, container, &["ip", "-j", "neigh", "show", ip]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["lladdr"].as_str().unwrap_or_default().to_string()
}

/// Sends, from `ns`'s `eth0`, one TCP SYN to 127.0.0.1:`port` in an Ethernet frame addressed to
/// `gw_mac`: what a container would do to reach its host's loopback services through a bridge
/// that routes loopback addresses. Built by hand: no routing table lets a container send that.
fn loopback_syn(ns: &str, src_mac: &str, gw_mac: &str, src: std::net::Ipv4Addr, port: u16) {
    fn mac(s: &str) -> [u8; 6] {
        let mut m = [0u8; 6];
        for (b, x) in m.iter_mut().zip(s.split(':')) {
            *b = u8::from_str_radix(x, 16).unwrap();
        }
        m
    }
    let dst = std::net::Ipv4Addr::LOCALHOST;
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend(src.octets());
    ip.extend(dst.octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = Vec::new();
    tcp.extend(40000u16.to_be_bytes());
    tcp.extend(port.to_be_bytes());
    tcp.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let c = !checksum::fold(checksum::sum(&tcp, checksum::pseudo_v4(src, dst, 6, 20)));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut frame = Vec::new();
    frame.extend(mac(gw_mac));
    frame.extend(mac(src_mac));
    frame.extend([0x08, 0x00]);
    frame.extend(ip);
    frame.extend(tcp);
    in_netns(ns, move || {
        // SAFETY: plain socket calls on a descriptor owned here; sockaddr_ll is plain data.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let mut sa: libc::sockaddr_ll = std::mem::zeroed();
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            sa.sll_halen = 6;
            sa.sll_addr[..6].copy_from_slice(&frame[..6]);
            let n = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            assert_eq!(n, frame.len() as isize, "sending the frame: {err}");
        }
    })
    .join()
    .unwrap();
}

/// Packets that `bridge weft` stopped on their way out of `host`'s uplinks, on the rules whose
/// text contains `needle` (`arp daddr ip GW `, `nd-neighbor-solicit`…).
fn stopped(lab: &Lab, host: &str, needle: &str) -> u64 {
    let out = ok(
        lab,
        host,
        &["nft", "list", "chain", "bridge", "weft", "postrouting"],
    );
    out.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn endpoints(lab: &Lab) -> String {
    lab.ok_on("h1", &["endpoints", "--json"])
}

#[test]
fn egress_expose_publish() {
    // h2 runs weft's engine: its uplink is a TAP, h1's the kernel's VXLAN device.
    let lab = Lab::up_with(2, "embedded", &["--outside", "--userspace-hosts", "h2"]);
    // A table weft did not make: it must come through everything untouched.
    for h in ["h1", "h2"] {
        ok(
            &lab,
            h,
            &[
                "nft",
                "add table ip foreign; add chain ip foreign keep { type filter hook forward priority 10; }; add rule ip foreign keep counter",
            ],
        );
    }
    let baseline = [ruleset(&lab, "h1"), ruleset(&lab, "h2")];

    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            PROD,
            "--subnet",
            "10.71.0.0/24",
            "--subnet",
            "fd71::/64",
        ],
    );
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            DARK,
            "--subnet",
            "10.72.0.0/24",
            "--no-egress",
        ],
    );
    assert_eq!(lab.inspect(DARK)["egress"], false);
    assert_eq!(lab.inspect(PROD)["egress"], true);
    let o = lab.lab(&[
        "run",
        "h1",
        "c1",
        "--network",
        PROD,
        "--publish",
        "8080:80",
        "-p",
        "5353:53/udp",
    ]);
    assert!(o.status.success(), "{}", out_text(&o));
    lab.run("h2", "c2", PROD);
    lab.run("h1", "d1", DARK);
    lab.run("h1", "c6", PROD);
    lab.ok_on(
        "h1",
        &["network", "create", SIDE, "--subnet", "10.73.0.0/24"],
    );
    lab.run("h1", "s1", SIDE);
    let vni = lab.vni(PROD);
    let gw = lab.inspect(PROD)["gateway4"].as_str().unwrap().to_string();
    let gw6 = lab.inspect(PROD)["gateway6"].as_str().unwrap().to_string();

    // The gateway: each container's entry for it is its own host's bridge. On h2 the engine's TAP
    // would carry the container's requests for it to h1: they are stopped at the port (h1's
    // kernel bridge already keeps them off its VXLAN port, which suppresses ARP/ND it can answer).
    let h2_stops = eventually(Duration::from_secs(5), || {
        ok(&lab, "c2", &["ip", "neigh", "flush", "all"]);
        for g in [&gw, &gw6] {
            lab.ping("c2", g, &[]);
        }
        stopped(&lab, "h2", &format!("arp daddr ip {gw} ")) > 0
            && stopped(&lab, "h2", "nd-neighbor-solicit") > 0
    });
    assert!(
        h2_stops,
        "h2 did not stop c2's gateway requests at its TAP:\n{}",
        ok(&lab, "h2", &["nft", "list", "table", "bridge", "weft"])
    );
    for (c, h) in [("c1", "h1"), ("c2", "h2")] {
        for g in [&gw, &gw6] {
            let o = lab.ping(c, g, &[]);
            assert!(o.status.success(), "{c} -> gateway {g}:\n{}", out_text(&o));
            assert_eq!(
                neigh_mac(&lab, c, g),
                bridge_mac(&lab, h, vni),
                "{c}'s gateway {g} is not its own host's bridge"
            );
        }
    }
    assert_ne!(bridge_mac(&lab, "h1", vni), bridge_mac(&lab, "h2", vni));

    // Egress: the outside sees each host's underlay address, not the container's.
    let out_ns = format!("{}-out", lab.prefix);
    let server = peer_echo(&out_ns, &format!("{OUTSIDE}:7000"), Duration::from_secs(6));
    let to = format!("{OUTSIDE}:7000");
    let seen1 = call(&lab.netns("c1"), &to).expect("c1 reaches the outside");
    let seen2 = call(&lab.netns("c2"), &to).expect("c2 reaches the outside");
    assert!(seen1.starts_with(&format!("{H1}:")), "c1 came from {seen1}");
    assert!(seen2.starts_with(&format!("{H2}:")), "c2 came from {seen2}");
    // A --no-egress network does not get out, and has no way to try.
    assert!(call(&lab.netns("d1"), &to).is_none(), "d1 got out");
    let routes = ok(&lab, "d1", &["ip", "route"]);
    assert!(
        !routes.contains("default"),
        "d1 has a default route: {routes}"
    );
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 2, "the outside saw {seen:?}");

    // Published: c1's port 80 answers on h1's address, from outside and from h1 itself.
    let server = peer_echo(&lab.netns("c1"), "0.0.0.0:80", Duration::from_secs(6));
    let published = format!("{H1}:8080");
    let from_out = call(&out_ns, &published).expect("the outside reaches c1's published port");
    assert!(from_out.starts_with("192.0.2.254:"), "{from_out}");
    let from_h1 = call(&lab.netns("h1"), &published).expect("h1 reaches c1's published port");
    assert!(from_h1.starts_with(&format!("{H1}:")), "{from_h1}");
    // At 127.0.0.1 too, as on Docker's bridge: c1 sees the flow come from its gateway.
    let from_lo =
        call(&lab.netns("h1"), "127.0.0.1:8080").expect("h1 reaches c1's port at 127.0.0.1");
    assert!(from_lo.starts_with(&format!("{gw}:")), "{from_lo}");
    // But a container cannot use that to reach the host's own loopback services: a SYN to
    // 127.0.0.1 through the bridge is dropped (counted) before anything answers it.
    let guard = || {
        let chain = ok(&lab, "h1", &["nft", "list", "chain", "inet", "weft", "raw"]);
        chain
            .lines()
            .find(|l| l.contains("no loopback destination"))
            .and_then(|l| l.split("packets ").nth(1))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no counter on the loopback guard:\n{chain}"))
    };
    let before = guard();
    let c6_mac = ok(&lab, "c6", &["cat", "/sys/class/net/eth0/address"]);
    let c6_ip: std::net::Ipv4Addr = lab.ip4("c6", PROD).parse().unwrap();
    loopback_syn(
        &lab.netns("c6"),
        c6_mac.trim(),
        &bridge_mac(&lab, "h1", vni),
        c6_ip,
        22,
    );
    assert!(
        eventually(Duration::from_secs(3), || guard() > before),
        "the SYN to 127.0.0.1 from c6 was not stopped"
    );
    // And from a neighbour on the same bridge (hairpin), which c1 sees as the gateway.
    let from_c6 = call(&lab.netns("c6"), &published).expect("c6 reaches c1's published port");
    assert!(from_c6.starts_with(&format!("{gw}:")), "{from_c6}");
    // And from another network's container on the host, which still cannot reach c1 itself.
    call(&lab.netns("s1"), &published).expect("s1 reaches c1's published port");
    let c1_direct = format!("{}:80", lab.ip4("c1", PROD));
    assert!(
        call(&lab.netns("s1"), &c1_direct).is_none(),
        "s1 reached c1 across networks"
    );
    assert_eq!(server.join().unwrap().len(), 5);
    assert!(
        udp_once(
            &lab.netns("c1"),
            "0.0.0.0:53",
            &out_ns,
            &format!("{H1}:5353")
        ),
        "the outside got no answer from c1's published UDP port"
    );

    // A second publish of the same host port is refused with nothing changed.
    let before = (endpoints(&lab), ruleset(&lab, "h1"));
    let o = lab.lab(&["run", "h1", "c3", "--network", PROD, "--publish", "8080:81"]);
    assert!(!o.status.success(), "a second publish of 8080 was accepted");
    let text = out_text(&o);
    assert!(
        text.contains("host port 8080/tcp is already published on host h1"),
        "{text}"
    );
    assert_eq!((endpoints(&lab), ruleset(&lab, "h1")), before);
    assert!(!lab
        .exec("h1", &["ip", "netns", "pids", &lab.netns("c3")])
        .status
        .success());
    // The same port on the other host is fine.
    let o = lab.lab(&[
        "run",
        "h2",
        "c4",
        "--network",
        PROD,
        "--publish",
        "8080:80/tcp",
    ]);
    assert!(o.status.success(), "{}", out_text(&o));
    let server = peer_echo(&lab.netns("c4"), "0.0.0.0:80", Duration::from_secs(3));
    call(&out_ns, &format!("{H2}:8080")).expect("the outside reaches c4 on h2");
    assert_eq!(server.join().unwrap().len(), 1);

    // Bad specs, and publishing from a network without egress: clear errors, nothing attached.
    for (spec, net, says) in [
        ("80", PROD, "expected HOSTPORT:PORT"),
        ("8081:80/sctp", PROD, "protocol \"sctp\""),
        ("0:80", PROD, "host port \"0\""),
        ("8082:80", DARK, "--no-egress"),
    ] {
        let o = lab.lab(&["run", "h1", "c5", "--network", net, "--publish", spec]);
        assert!(!o.status.success(), "--publish {spec} on {net} accepted");
        assert!(out_text(&o).contains(says), "{spec}: {}", out_text(&o));
    }
    assert_eq!(endpoints(&lab).matches("\"id\"").count(), 6);

    // Detach: the published port is gone.
    let c1 = format!("/run/netns/{}", lab.netns("c1"));
    lab.ok_on("h1", &["detach", &c1, PROD]);
    assert!(
        call(&out_ns, &published).is_none(),
        "the port outlived detach"
    );
    assert!(!ruleset(&lab, "h1").contains("dport 8080"));

    // Expose: h1 reaches containers on both hosts at its own address on the network.
    let c2_ip = lab.ip4("c2", PROD);
    let c6_ip = lab.ip4("c6", PROD);
    // Its only address on the network is the gateway, whose ARP never leaves the host.
    let kept_home = eventually(Duration::from_secs(5), || {
        let o = lab.exec("h1", &["ping", "-c", "1", "-W", "1", &c2_ip]);
        assert!(!o.status.success(), "h1 reached c2 before expose");
        stopped(&lab, "h1", &format!("arp saddr ip {gw} ")) > 0
    });
    assert!(
        kept_home,
        "h1's ARP from the gateway was not stopped at its uplink"
    );
    let exposed: serde_json::Value = serde_json::from_str(
        &lab.ok_on("h1", &["expose", PROD, "--ip", "10.71.0.250/24", "--json"]),
    )
    .unwrap();
    assert_eq!(exposed["kind"], "host");
    assert_eq!(exposed["ipv4"], "10.71.0.250/24");
    assert!(lab.inspect(PROD)["allocations"]["10.71.0.250"].is_object());
    let e = lab.weft_on("h1", &["expose", PROD]);
    assert!(
        !e.status.success() && out_text(&e).contains("already exposed"),
        "{}",
        out_text(&e)
    );
    for ip in [&c2_ip, &c6_ip, &lab.ip6("c2", PROD)] {
        let reached = eventually(Duration::from_secs(5), || {
            lab.exec("h1", &["ping", "-c", "1", "-W", "1", ip])
                .status
                .success()
        });
        assert!(reached, "exposed h1 cannot reach {ip}");
    }
    lab.ok_on("h1", &["hide", PROD]);
    let e = lab.weft_on("h1", &["hide", PROD]);
    assert!(
        !e.status.success() && out_text(&e).contains("not exposed"),
        "{}",
        out_text(&e)
    );
    let o = lab.exec("h1", &["ping", "-c", "1", "-W", "1", &c2_ip]);
    assert!(!o.status.success(), "h1 still reaches c2 after hide");
    assert!(!ok(&lab, "h1", &["ip", "addr"]).contains("10.71.0.250"));
    assert!(lab.inspect(PROD)["allocations"]["10.71.0.250"].is_null());
    let v6 = exposed["ipv6"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(lab.inspect(PROD)["allocations"][v6.as_str()].is_null());

    // Removing the networks removes every rule weft made; the foreign table is as it was.
    lab.ok_on("h1", &["network", "rm", PROD, "--force"]);
    lab.ok_on("h1", &["network", "rm", DARK, "--force"]);
    lab.ok_on("h1", &["network", "rm", SIDE, "--force"]);
    for (i, h) in ["h1", "h2"].iter().enumerate() {
        let clean = eventually(Duration::from_secs(10), || ruleset(&lab, h) == baseline[i]);
        assert!(
            clean,
            "{h}'s ruleset after network rm:\n{}\nbefore:\n{}",
            ruleset(&lab, h),
            baseline[i]
        );
    }
}
