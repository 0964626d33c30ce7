//! The outside world over IPv6, end to end: two hosts (h1 on the kernel's VXLAN, h2 on weft's
//! engine) on the lab's dual-stack underlay (2001:db8::/64) and its outside, which holds
//! 2001:db8:100::1 (the IPv6 "internet", routed from every host through 2001:db8::254).
//! Containers of a network with an IPv6 subnet get out over IPv6 through their own host,
//! masqueraded to its IPv6 underlay address; a `--no-egress` network does not, even with a route
//! made by hand; published TCP and UDP ports answer at each host's IPv6 underlay address, from the
//! outside, from the host itself and from containers, until the container is detached.

mod common;

use std::time::Duration;

use common::sockets::{self, call, peer_echo, udp_once};
use common::*;

const PROD: &str = "prod6";
const DARK: &str = "dark6";
const SIDE: &str = "side6";
/// The outside's IPv6 "internet" address.
const OUTSIDE6: &str = "2001:db8:100::1";
/// The outside's address on the underlay: what containers see of it when it calls a published port.
const OUTSIDE_UL6: &str = "2001:db8::254";
const H1_6: &str = "2001:db8::11";
const H2_6: &str = "2001:db8::12";

fn sock(addr: &str, port: u16) -> String {
    format!("[{addr}]:{port}")
}

/// `ip -6 route` of a container: its IPv6 default route, if any (`default via GW dev eth0 …`).
fn default6(lab: &Lab, container: &str) -> Option<String> {
    ok(lab, container, &["ip", "-6", "route", "show", "default"])
        .lines()
        .find(|l| l.starts_with("default"))
        .map(str::to_string)
}

#[test]
fn ipv6_egress_and_published_ports() {
    let lab = Lab::up_with(2, "embedded", &["--outside", "--userspace-hosts", "h2"]);
    let out_ns = format!("{}-out", lab.prefix);

    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            PROD,
            "--subnet",
            "10.81.0.0/24",
            "--subnet",
            "fd81::/64",
        ],
    );
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            DARK,
            "--subnet",
            "10.82.0.0/24",
            "--subnet",
            "fd82::/64",
            "--no-egress",
        ],
    );
    let gw6 = lab.inspect(PROD)["gateway6"].as_str().unwrap().to_string();
    let dark_gw6 = lab.inspect(DARK)["gateway6"].as_str().unwrap().to_string();
    for (host, c) in [("h1", "c1"), ("h2", "c2")] {
        let o = lab.lab(&[
            "run",
            host,
            c,
            "--network",
            PROD,
            "--publish",
            "8080:80",
            "--publish",
            "5353:53/udp",
        ]);
        assert!(o.status.success(), "{}", out_text(&o));
    }
    lab.run("h1", "d1", DARK);
    lab.run("h2", "d2", DARK);
    lab.run("h1", "c3", PROD);
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            SIDE,
            "--subnet",
            "10.83.0.0/24",
            "--subnet",
            "fd83::/64",
        ],
    );
    lab.run("h1", "s1", SIDE);

    // Each container's IPv6 way out is its gateway, on its own host's bridge.
    for c in ["c1", "c2"] {
        let route = default6(&lab, c).unwrap_or_else(|| panic!("{c} has no IPv6 default route"));
        assert!(
            route.starts_with(&format!("default via {gw6} dev eth0")),
            "{c}: {route}"
        );
        let o = lab.ping(c, OUTSIDE6, &[]);
        assert!(o.status.success(), "{c} -> {OUTSIDE6}:\n{}", out_text(&o));
    }

    // Egress over TCP: the outside sees each host's IPv6 underlay address, not the container's.
    let server = peer_echo(&out_ns, &sock(OUTSIDE6, 7000), Duration::from_secs(12));
    let to = sock(OUTSIDE6, 7000);
    for (c, host6) in [("c1", H1_6), ("c2", H2_6)] {
        let seen = call(&lab.netns(c), &to).unwrap_or_else(|| panic!("{c} did not reach {to}"));
        assert!(
            seen.starts_with(&format!("[{host6}]:")),
            "{c} came to the outside from {seen}, not from {host6}"
        );
    }
    // A --no-egress network has no IPv6 way out, and gets nowhere with one made by hand: its
    // hosts do not forward it (the outside is given a way back to it, so that only the host's
    // filter can be what stops the flow).
    for (d, host6) in [("d1", H1_6), ("d2", H2_6)] {
        assert_eq!(default6(&lab, d), None, "{d} has an IPv6 default route");
        assert!(call(&lab.netns(d), &to).is_none(), "{d} got out over IPv6");
        ok(
            &lab,
            d,
            &["ip", "-6", "route", "add", "default", "via", &dark_gw6],
        );
        ok(
            &lab,
            "out",
            &["ip", "-6", "route", "replace", "fd82::/64", "via", host6],
        );
        assert!(
            call(&lab.netns(d), &to).is_none(),
            "{d} got out over IPv6 with a default route of its own"
        );
    }
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 2, "the outside saw {seen:?}");
    assert!(seen.iter().all(|a| a.is_ipv6()), "{seen:?}");
    // A megabyte each way, and a datagram, through the translation and back.
    for (i, c) in ["c1", "c2"].iter().enumerate() {
        let port = 7100 + i as u16;
        sockets::tcp_echo(&out_ns, &lab.netns(c), OUTSIDE6, port, 1 << 20);
        let at = sock(OUTSIDE6, port);
        assert!(
            udp_once(&out_ns, &at, &lab.netns(c), &at),
            "{c} got no UDP answer from {at}"
        );
    }

    // Published: each container's port 80 answers at its host's IPv6 underlay address, from the
    // outside (which the container sees as itself) and from the host (as the host's address).
    for (c, host, host6) in [("c1", "h1", H1_6), ("c2", "h2", H2_6)] {
        let server = peer_echo(&lab.netns(c), "[::]:80", Duration::from_secs(5));
        let published = sock(host6, 8080);
        let from_out = call(&out_ns, &published)
            .unwrap_or_else(|| panic!("the outside did not reach {c} at {published}"));
        assert!(
            from_out.starts_with(&format!("[{OUTSIDE_UL6}]:")),
            "{c} saw the outside as {from_out}"
        );
        let from_host = call(&lab.netns(host), &published)
            .unwrap_or_else(|| panic!("{host} did not reach {c} at {published}"));
        assert!(
            from_host.starts_with(&format!("[{host6}]:")),
            "{c} saw {host} as {from_host}"
        );
        assert_eq!(server.join().unwrap().len(), 2, "{c}'s callers");
        assert!(
            udp_once(&lab.netns(c), "[::]:53", &out_ns, &sock(host6, 5353)),
            "the outside got no answer from {c}'s UDP port at {host6}"
        );
    }

    // And from other containers: a neighbour on c1's bridge (hairpin) and c1's network's
    // container on the other host, through its own host's egress, see c1's port at h1's address;
    // so does a container of another network on h1, which still cannot reach c1 itself.
    let server = peer_echo(&lab.netns("c1"), "[::]:80", Duration::from_secs(5));
    let published = sock(H1_6, 8080);
    let from_c3 = call(&lab.netns("c3"), &published).expect("c3 reaches c1's published port");
    assert!(from_c3.starts_with(&format!("[{gw6}]:")), "{from_c3}");
    let from_c2 = call(&lab.netns("c2"), &published).expect("c2 reaches c1's published port");
    assert!(from_c2.starts_with(&format!("[{H2_6}]:")), "{from_c2}");
    call(&lab.netns("s1"), &published).expect("s1 reaches c1's published port");
    // While c1 listens, so that only the filter can be what stops it.
    let c1_direct = sock(&lab.ip6("c1", PROD), 80);
    assert!(
        call(&lab.netns("s1"), &c1_direct).is_none(),
        "s1 reached c1 across networks over IPv6"
    );
    assert_eq!(server.join().unwrap().len(), 3, "c1's callers");

    // Detached: the ports are gone, from the outside and from the host alike.
    for (c, host, host6) in [("c1", "h1", H1_6), ("c2", "h2", H2_6)] {
        let path = format!("/run/netns/{}", lab.netns(c));
        lab.ok_on(host, &["detach", &path, PROD]);
        let published = sock(host6, 8080);
        assert!(
            call(&out_ns, &published).is_none(),
            "{c}'s port on {host} outlived detach"
        );
        assert!(
            call(&lab.netns(host), &published).is_none(),
            "{c}'s port outlived detach on {host} itself"
        );
        let rules = ok(&lab, host, &["nft", "list", "table", "inet", "weft"]);
        assert!(!rules.contains("dport 8080"), "{host}:\n{rules}");
    }
}
