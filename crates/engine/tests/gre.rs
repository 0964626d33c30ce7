//! End to end, as root, in namespaces: two engines carrying a network as Ethernet over GRE
//! (key = VNI) on their raw IP sockets: ping matrix with a full-size packet, TCP and UDP both
//! ways, ICMP errors at GRE's MTU, foreign and wrong-key packets counted as drops.

mod common;

use std::net::Ipv4Addr;

use common::*;
use weft_netlink::in_netns;

#[tokio::test]
async fn engines_carry_gre() {
    let lab = Lab::new([Uplink::Gre, Uplink::Gre], GRE_MTU).await;
    let (c1, c2) = (&lab.hosts[0].ctr, &lab.hosts[1].ctr);
    assert!(ping(c1, &[&v4(2).to_string()]), "IPv4 c1 -> c2");
    assert!(ping(c2, &[&v4(1).to_string()]), "IPv4 c2 -> c1");
    assert!(ping(c1, &["-6", &v6(2).to_string()]), "IPv6 c1 -> c2");
    assert!(ping(c2, &["-6", &v6(1).to_string()]), "IPv6 c2 -> c1");
    // GRE's MTU (1458) crosses whole; one byte more gets an ICMP error, not silence.
    assert!(ping(c1, &["-M", "do", "-s", "1430", &v4(2).to_string()]));
    assert!(ping(
        c2,
        &["-6", "-M", "do", "-s", "1410", &v6(1).to_string()]
    ));
    let o = run_in(
        c1,
        "ping",
        &[
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1431",
            &v4(2).to_string(),
        ],
    );
    assert!(!o.status.success());
    let fwd = iperf3(c1, c2, v4(2), 2, false);
    let rev = iperf3(c1, c2, v4(2), 2, true);
    eprintln!("iperf3 over GRE c1->c2 {fwd:.2} Gbit/s, c2->c1 {rev:.2} Gbit/s");
    assert!(fwd > 0.05 && rev > 0.05, "TCP barely moves");
    let (mbps, lost) = iperf3_udp(c1, c2, v4(2), 1400, false);
    eprintln!("iperf3 UDP over GRE: {mbps:.0} Mbit/s, {lost:.1} % lost");
    assert!(
        mbps > 10.0 && lost < 10.0,
        "UDP: {mbps} Mbit/s, {lost} % lost"
    );
    let s = lab.engine(0).stats();
    let n = s.network(VNI).unwrap();
    assert!(n.tx.packets > 1000 && n.rx.packets > 1000, "{s:?}");
    assert_eq!(n.rx.drop_unknown_peer, 0);
    assert!(lab.engine(0).gre_addr().is_some());
    assert!(
        lab.engine(0).local_addr().is_none(),
        "no VXLAN port bound for a GRE network"
    );

    // Raw GRE from host 2 with a key of no network, and VXLAN-framed noise: counted drops.
    let before = lab.engine(0).stats().global;
    in_netns(&lab.hosts[1].ns, || {
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(47)),
        )
        .unwrap();
        let dst: std::net::SocketAddr = (Ipv4Addr::new(198, 51, 100, 1), 0).into();
        let mut p = Vec::new();
        weft_wire::gre::push_packet(&mut p, VNI + 1, None, false, &[0u8; 60]);
        s.send_to(&p, &dst.into()).unwrap();
        s.send_to(&[0x20, 0x01, 0x65, 0x58], &dst.into()).unwrap();
    })
    .unwrap();
    assert!(eventually(|| {
        let g = lab.engine(0).stats().global;
        g.drop_unknown_vni > before.drop_unknown_vni && g.drop_malformed > before.drop_malformed
    }));
}
