//! The reference the benchmark holds weft's kernel path to: a VXLAN between two lab hosts wired by
//! hand with `ip` and `bridge`, the way an operator following the kernel's documentation would, and
//! independent of weft's own code (a baseline built with the code under test would prove nothing).
//!
//! On each host: a bridge, a VXLAN device (its own VNI, no learning) and a veth to a container
//! namespace; the peer's MAC is a static FDB entry (`self`, permanent) pointing at the peer host's
//! underlay address, and the containers have static neighbour entries for each other. MTU 1450
//! everywhere, like weft's overlay on a 1500-byte underlay.

use std::net::Ipv4Addr;
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::netns;
use crate::topology::{Lab, UNDERLAY_IFNAME};
use crate::underlay;

/// Differs from any VNI weft assigns in the lab (weft starts at 4096 and counts up).
pub const VNI: u32 = 9999;
/// VXLAN's IANA port, as weft uses: the kernel demultiplexes the two devices by VNI.
pub const PORT: u16 = 4789;
pub const MTU: u32 = 1450;
pub const BRIDGE: &str = "hwbr0";
pub const VXLAN: &str = "hwvx0";
pub const VETH: &str = "hwve0";
/// The containers' interface.
pub const IFNAME: &str = "eth0";
pub const SUBNET_LEN: u8 = 24;

/// One end of the hand-wired network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// The lab host's netns.
    pub host_ns: String,
    /// The container's netns (inside the lab's prefix, so `weft lab down` removes it).
    pub container_ns: String,
    pub underlay: Ipv4Addr,
    pub addr: Ipv4Addr,
    pub mac: String,
}

/// The two sides: containers `hwa` on the first host (10.99.0.1) and `hwb` on the second (10.99.0.2).
pub fn plan(lab: &Lab, a: (&str, Ipv4Addr), b: (&str, Ipv4Addr)) -> [Side; 2] {
    let side = |(host_ns, underlay): (&str, Ipv4Addr), c: &str, n: u8| Side {
        host_ns: host_ns.to_string(),
        container_ns: lab.container_ns(c),
        underlay,
        addr: Ipv4Addr::new(10, 99, 0, n),
        mac: format!("02:99:00:00:00:{n:02x}"),
    };
    [side(a, "hwa", 1), side(b, "hwb", 2)]
}

/// The commands that build `me`'s side (the container netns must exist): (netns, argv) in order.
pub fn commands(me: &Side, peer: &Side) -> Vec<(String, Vec<String>)> {
    let mtu = MTU.to_string();
    let h = |args: &[&str]| {
        (
            me.host_ns.clone(),
            args.iter().map(|s| s.to_string()).collect(),
        )
    };
    let c = |args: &[&str]| {
        (
            me.container_ns.clone(),
            args.iter().map(|s| s.to_string()).collect(),
        )
    };
    let local = me.underlay.to_string();
    let remote = peer.underlay.to_string();
    let addr = format!("{}/{SUBNET_LEN}", me.addr);
    let peer_addr = peer.addr.to_string();
    vec![
        h(&["ip", "link", "add", BRIDGE, "mtu", &mtu, "type", "bridge"]),
        h(&[
            "ip",
            "link",
            "add",
            VXLAN,
            "mtu",
            &mtu,
            "type",
            "vxlan",
            "id",
            &VNI.to_string(),
            "local",
            &local,
            "dstport",
            &PORT.to_string(),
            "dev",
            UNDERLAY_IFNAME,
            "nolearning",
        ]),
        h(&["ip", "link", "set", VXLAN, "master", BRIDGE, "up"]),
        h(&[
            "ip",
            "link",
            "add",
            VETH,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            IFNAME,
            "netns",
            &me.container_ns,
        ]),
        h(&["ip", "link", "set", VETH, "master", BRIDGE, "up"]),
        h(&["ip", "link", "set", BRIDGE, "up"]),
        h(&[
            "bridge",
            "fdb",
            "add",
            &peer.mac,
            "dev",
            VXLAN,
            "dst",
            &remote,
            "self",
            "permanent",
        ]),
        c(&[
            "ip", "link", "set", IFNAME, "address", &me.mac, "mtu", &mtu, "up",
        ]),
        c(&["ip", "address", "add", &addr, "dev", IFNAME]),
        c(&[
            "ip",
            "neigh",
            "replace",
            &peer_addr,
            "lladdr",
            &peer.mac,
            "dev",
            IFNAME,
            "nud",
            "permanent",
        ]),
    ]
}

/// Builds both sides.
pub async fn build(sides: &[Side; 2]) -> Result<()> {
    for (me, peer) in [(&sides[0], &sides[1]), (&sides[1], &sides[0])] {
        underlay::create_bare(&me.container_ns).await?;
        for (ns, argv) in commands(me, peer) {
            run(&ns, &argv).await?;
        }
    }
    Ok(())
}

async fn run(ns: &str, argv: &[String]) -> Result<()> {
    let out = netns::command(ns, &argv[0])?
        .args(&argv[1..])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {} in {ns}", argv.join(" ")))?;
    if !out.status.success() {
        bail!(
            "hand-wired VXLAN: `{}` in {ns} failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_commands() {
        let lab = Lab::named("wb").unwrap();
        let [a, b] = plan(
            &lab,
            ("wb-h1", Ipv4Addr::new(192, 0, 2, 11)),
            ("wb-h2", Ipv4Addr::new(192, 0, 2, 12)),
        );
        assert_eq!(a.container_ns, "wb-c-hwa");
        assert_eq!(b.addr, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(b.mac, "02:99:00:00:00:02");
        let cmds = commands(&a, &b);
        let lines: Vec<String> = cmds
            .iter()
            .map(|(ns, argv)| format!("{ns}: {}", argv.join(" ")))
            .collect();
        assert!(lines.contains(&"wb-h1: ip link add hwvx0 mtu 1450 type vxlan id 9999 local 192.0.2.11 dstport 4789 dev ul0 nolearning".to_string()), "{lines:#?}");
        assert!(lines.contains(
            &"wb-h1: bridge fdb add 02:99:00:00:00:02 dev hwvx0 dst 192.0.2.12 self permanent"
                .to_string()
        ));
        assert!(lines.contains(
            &"wb-c-hwa: ip neigh replace 10.99.0.2 lladdr 02:99:00:00:00:02 dev eth0 nud permanent"
                .to_string()
        ));
        assert!(lines.contains(&"wb-c-hwa: ip address add 10.99.0.1/24 dev eth0".to_string()));
        // The veth's container end is created inside the container, so it exists before it is set up.
        let veth = lines.iter().position(|l| l.contains("type veth")).unwrap();
        let up = lines
            .iter()
            .position(|l| l.starts_with("wb-c-hwa: ip link set eth0"))
            .unwrap();
        assert!(veth < up);
    }
}
