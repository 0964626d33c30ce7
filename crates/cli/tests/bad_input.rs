//! Bad input gets a one-line error naming the problem, a non-zero exit, and changes nothing.

mod common;

use std::process::Command;

use common::*;

/// Everything a bad command could have changed: records and interfaces.
fn snapshot(lab: &Lab) -> String {
    let mut s = lab.ok_on("h1", &["network", "ls", "--json"]);
    s += &lab.ok_on("h1", &["endpoints", "--json"]);
    for ns in ["h1", "x1", "x2"] {
        for what in ["link", "addr"] {
            let o = Command::new("ip")
                .args(["-n", &lab.netns(ns), "-br", what])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", out_text(&o));
            s += &String::from_utf8_lossy(&o.stdout);
        }
    }
    s
}

fn refused(lab: &Lab, args: &[&str], want: &str) {
    let before = snapshot(lab);
    let o = lab.weft_on("h1", args);
    let err = String::from_utf8_lossy(&o.stderr).trim_end().to_string();
    assert!(
        !o.status.success(),
        "weft {args:?} succeeded but should fail:\n{}",
        out_text(&o)
    );
    assert_eq!(
        err.lines().count(),
        1,
        "error of weft {args:?} is not one line:\n{err}"
    );
    assert!(err.starts_with("weft: error: "), "{err}");
    assert!(
        err.contains(want),
        "error of weft {args:?} does not name the problem ({want:?}):\n{err}"
    );
    assert_eq!(
        before,
        snapshot(lab),
        "weft {args:?} failed but changed something"
    );
}

#[test]
fn bad_input_changes_nothing() {
    let lab = Lab::up(1, "embedded");
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            "prod",
            "--subnet",
            "10.71.0.0/24",
            "--subnet",
            "fd71::/64",
        ],
    );
    // x1 holds 10.71.0.10; x2 is a namespace not attached to anything (lab down removes it).
    let o = lab.lab(&[
        "run",
        "h1",
        "x1",
        "--network",
        "prod",
        "--ip",
        "10.71.0.10/24",
    ]);
    assert!(o.status.success(), "{}", out_text(&o));
    let o = Command::new("ip")
        .args(["netns", "add", &lab.netns("x2")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out_text(&o));
    let x2 = format!("/run/netns/{}", lab.netns("x2"));
    let x1 = format!("/run/netns/{}", lab.netns("x1"));

    refused(
        &lab,
        &["network", "create", "n1", "--subnet", "10.0.0.0/33"],
        "invalid CIDR \"10.0.0.0/33\"",
    );
    refused(
        &lab,
        &["network", "create", "n1", "--subnet", "banana"],
        "invalid CIDR",
    );
    refused(
        &lab,
        &["network", "create", "n1", "--subnet", "10.71.0.0/16"],
        "overlaps",
    );
    refused(
        &lab,
        &[
            "network",
            "create",
            "n1",
            "--subnet",
            "10.80.0.0/24",
            "--subnet",
            "fd71::/48",
        ],
        "overlaps",
    );
    refused(
        &lab,
        &["network", "create", "prod", "--subnet", "10.81.0.0/24"],
        "already exists",
    );
    refused(
        &lab,
        &["network", "create", "Bad_Name!", "--subnet", "10.81.0.0/24"],
        "invalid network name",
    );
    refused(
        &lab,
        &[
            "network",
            "create",
            "n1",
            "--subnet",
            "10.81.0.0/24",
            "--vni",
            "0",
        ],
        "invalid VNI",
    );
    refused(
        &lab,
        &[
            "network",
            "create",
            "n1",
            "--subnet",
            "10.81.0.0/24",
            "--mtu",
            "100",
        ],
        "invalid MTU",
    );
    std::fs::write("/tmp/weft-bad-psk", "not a key").unwrap();
    refused(
        &lab,
        &[
            "network",
            "create",
            "n1",
            "--subnet",
            "10.81.0.0/24",
            "--encrypt",
            "--psk-file",
            "/tmp/weft-bad-psk",
        ],
        "pre-shared key file /tmp/weft-bad-psk",
    );
    refused(
        &lab,
        &[
            "network",
            "create",
            "n1",
            "--subnet",
            "10.81.0.0/24",
            "--encrypt",
            "--datapath",
            "kernel",
        ],
        "needs the userspace datapath",
    );
    let gre = [
        "network",
        "create",
        "n1",
        "--subnet",
        "10.81.0.0/24",
        "--encap",
    ];
    refused(
        &lab,
        &[&gre[..], &["gre", "--encrypt"]].concat(),
        "an encrypted network has its own framing",
    );
    refused(
        &lab,
        &[&gre[..], &["gre", "--datapath", "kernel"]].concat(),
        "carried by weft's userspace engine",
    );
    // An unknown encapsulation is refused by the argument parser (clap's usage error).
    let o = lab.weft_on("h1", &[&gre[..], &["geneve"]].concat());
    assert!(!o.status.success(), "{}", out_text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("invalid encapsulation \"geneve\": use vxlan or gre"),
        "{}",
        out_text(&o)
    );
    refused(&lab, &["network", "inspect", "nope"], "no such network");
    refused(&lab, &["network", "rm", "nope"], "no such network");
    refused(&lab, &["network", "rm", "prod"], "still has 1 endpoint(s)");

    refused(&lab, &["attach", &x2, "nope"], "no such network");
    refused(
        &lab,
        &["attach", "/run/netns/does-not-exist", "prod"],
        "no such network namespace",
    );
    refused(&lab, &["attach", "999999999", "prod"], "999999999");
    refused(
        &lab,
        &["attach", &x2, "prod", "--ip", "10.71.0.10/24"],
        "already taken",
    );
    refused(
        &lab,
        &["attach", &x2, "prod", "--ip", "10.99.0.10/24"],
        "outside the network's subnet",
    );
    refused(
        &lab,
        &["attach", &x2, "prod", "--ip", "10.71.0.1/24"],
        "reserved",
    );
    refused(
        &lab,
        &["attach", &x2, "prod", "--ip", "10.71.0.20/16"],
        "prefix length",
    );
    refused(
        &lab,
        &["attach", &x2, "prod", "--ip", "nonsense"],
        "invalid CIDR",
    );
    refused(
        &lab,
        &["attach", &x2, "prod", "--mac", "zz:zz"],
        "invalid MAC",
    );
    refused(
        &lab,
        &["attach", &x2, "prod", "--mac", "01:00:5e:00:00:01"],
        "not a unicast",
    );
    refused(
        &lab,
        &["attach", &x2, "prod", "--name", "Not A Label"],
        "invalid container name",
    );
    refused(
        &lab,
        &["attach", &x2, "prod", "--ifname", "this-name-is-too-long"],
        "invalid interface name",
    );
    refused(
        &lab,
        &["attach", &x1, "prod", "--ifname", "lo"],
        "already has an interface named lo",
    );
    refused(&lab, &["detach", &x2, "prod"], "not attached");
    // (An encrypted network on a host whose datapaths cannot seal frames is refused by attach:
    // `weft_reconcile::path` tests it. Every lab host runs the engine and can seal.)
    refused(
        &lab,
        &["attach", &x2, "prod", "--host", "ghost"],
        "not registered",
    );

    // A failure half-way through attach (records written, veth created) rolls everything back.
    let before = snapshot(&lab);
    let o = Command::new(WEFT)
        .args([
            "lab",
            "exec",
            "--prefix",
            &lab.prefix,
            "h1",
            "--",
            WEFT,
            "attach",
            &x2,
            "prod",
        ])
        .env("WEFT_FAILPOINT", "attach-before-up")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", out_text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("rolled back"),
        "{}",
        out_text(&o)
    );
    assert_eq!(
        before,
        snapshot(&lab),
        "a failed attach left something behind"
    );

    // Not root: refused before anything happens.
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            WEFT,
            "network",
            "create",
            "n2",
            "--subnet",
            "10.82.0.0/24",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.trim_end().lines().count() == 1 && err.contains("must run as root"),
        "{err}"
    );

    // And the same attach, done right, is idempotent.
    let first = lab.ok_on("h1", &["attach", &x2, "prod", "--json"]);
    let again = lab.ok_on("h1", &["attach", &x2, "prod", "--json"]);
    assert_eq!(first, again, "attach twice must give the same endpoint");
}
