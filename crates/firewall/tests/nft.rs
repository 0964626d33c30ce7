//! weft's rules as the kernel takes them: applied through `nft` in a scratch namespace beside a
//! foreign table, which survives every apply and the removal.

use std::process::Command;

use weft_firewall::{Firewall, NftFirewall};
use weft_netlink::{create_named_netns, delete_named_netns, run_in_netns_blocking, Netns};
use weft_reconcile::{HostFirewall, NetFirewall, PublishedPort};

struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = delete_named_netns(&self.0);
    }
}

fn nft(ns: &str, args: &[&str]) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .output()
        .expect("running nft");
    assert!(
        o.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn host_fw(ports: &[&str], egress: bool) -> HostFirewall {
    let mut fw = HostFirewall::default();
    fw.networks.insert(
        "prod".into(),
        NetFirewall {
            bridge: "wbr10".into(),
            uplinks: vec!["wvx10".into(), "wtp10".into()],
            subnet4: "10.0.0.0/24".parse().unwrap(),
            subnet6: Some("fd00::/64".parse().unwrap()),
            gateway4: "10.0.0.1".parse().unwrap(),
            gateway6: Some("fd00::1".parse().unwrap()),
            egress,
            published: ports
                .iter()
                .map(|p| PublishedPort {
                    publish: p.parse().unwrap(),
                    ipv4: "10.0.0.5".parse().unwrap(),
                    ipv6: Some("fd00::5".parse().unwrap()),
                })
                .collect(),
        },
    );
    fw
}

fn apply(ns: &Netns, fw: &HostFirewall) {
    run_in_netns_blocking(ns, || async { NftFirewall::new().apply(fw).await })
        .unwrap()
        .unwrap_or_else(|e| panic!("apply: {e:#}"));
}

#[test]
fn applies_replaces_and_removes_only_its_own_tables() {
    let name = format!("wfw{:06x}", rand::random::<u32>() & 0xff_ffff);
    let ns = create_named_netns(&name).unwrap();
    let _g = Scratch(name.clone());
    nft(
        &name,
        &["add table ip foreign; add chain ip foreign c { type filter hook forward priority 0; }; add rule ip foreign c counter"],
    );
    let foreign = nft(&name, &["list table ip foreign"]);

    apply(&ns, &host_fw(&["8080:80", "5353:53/udp"], true));
    let inet = nft(&name, &["list table inet weft"]);
    for want in [
        "masquerade",
        "dnat ip to 10.0.0.5:80",
        "dnat ip6 to [fd00::5]:80",
        "udp dport 5353",
        "fib daddr type local",
        "oifname \"wbr*\"",
        "ct status dnat masquerade",
    ] {
        assert!(inet.contains(want), "no {want:?} in:\n{inet}");
    }
    let bridge = nft(&name, &["list table bridge weft"]);
    assert!(
        bridge.contains("arp daddr ip 10.0.0.1 counter packets 0 bytes 0 drop"),
        "{bridge}"
    );
    assert!(bridge.contains("@th,64,128"), "{bridge}");

    let in_place = |fw: &HostFirewall| {
        run_in_netns_blocking(&ns, || async { NftFirewall::new().in_place(fw).await })
            .unwrap()
            .unwrap()
    };
    assert!(in_place(&host_fw(&[], true)));
    assert!(!in_place(&HostFirewall::default()));

    // A new desired state replaces the old one whole.
    apply(&ns, &host_fw(&[], false));
    let inet = nft(&name, &["list table inet weft"]);
    assert!(
        !inet.contains("dnat") && !inet.contains("masquerade"),
        "{inet}"
    );
    assert!(inet.contains("drop"), "{inet}");
    // Applying the same twice changes nothing.
    apply(&ns, &host_fw(&[], false));
    assert_eq!(nft(&name, &["list table inet weft"]), inet);

    // Nothing desired: weft's tables go, the foreign one stays as it was.
    apply(&ns, &HostFirewall::default());
    let all = nft(&name, &["list ruleset"]);
    assert!(!all.contains("weft"), "{all}");
    assert_eq!(nft(&name, &["list table ip foreign"]), foreign);
    assert!(in_place(&HostFirewall::default()));
    assert!(!in_place(&host_fw(&[], true)));
    // And removing what is not there is fine.
    apply(&ns, &HostFirewall::default());
}
