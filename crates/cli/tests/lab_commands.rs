//! `weft lab …` end to end through the weft binary: up (2 hosts, embedded store), a network, a
//! container on each host, ping across, ls, exit codes, rm, down. Needs root.

use std::path::PathBuf;
use std::process::{Command, Output};

use weft_lab::{teardown, topology::Lab};

struct Lb {
    bin: PathBuf,
    prefix: String,
}

impl Lb {
    fn lab(&self, args: &[&str]) -> Output {
        let out = Command::new(&self.bin)
            .arg("lab")
            .args(args)
            .env("WEFT_LAB_PREFIX", &self.prefix)
            .env_remove("WEFT_STORE")
            .output()
            .unwrap();
        eprintln!(
            "$ weft lab {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.lab(args);
        assert!(out.status.success(), "weft lab {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }
}

#[test]
fn lab_commands_end_to_end() {
    assert!(nix::unistd::geteuid().is_root(), "the lab needs root");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_weft"));
    let prefix = format!("wl{:04x}", rand::random::<u16>());
    let lab = Lab::named(&prefix).unwrap();
    let _guard = teardown::Guard::new(&lab);
    let lb = Lb {
        bin,
        prefix: prefix.clone(),
    };

    lb.ok(&["up", "--hosts", "2", "--outside"]);
    // A second up of the same prefix is refused and leaves the first alone.
    let again = lb.lab(&["up", "--hosts", "2"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    lb.ok(&[
        "exec",
        "h1",
        "--",
        "weft",
        "network",
        "create",
        "t",
        "--subnet",
        "10.77.0.0/24",
        "--subnet",
        "fd00:77::/64",
    ]);
    lb.ok(&["run", "h1", "a", "--network", "t", "--ip", "10.77.0.10/24"]);
    lb.ok(&["run", "h2", "b", "--network", "t"]);
    // The environment inside: the lab's store and the host, and weft on PATH.
    let env = lb.ok(&[
        "exec",
        "b",
        "--",
        "sh",
        "-c",
        "echo $WEFT_HOST $WEFT_STORE; command -v weft",
    ]);
    assert!(
        env.starts_with(&format!("h2 file:///run/weft/lab/{prefix}/store.db\n")),
        "{env}"
    );
    assert!(env.trim_end().ends_with("/weft"), "{env}");
    // Exit codes pass through.
    assert_eq!(
        lb.lab(&["exec", "h1", "--", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );

    // The outside: its own namespace holding the "internet" addresses, which hosts route to it.
    let out_addrs = lb.ok(&[
        "exec", "out", "--", "ip", "-4", "-o", "addr", "show", "dev", "lo",
    ]);
    assert!(out_addrs.contains("198.51.100.1/32"), "{out_addrs}");
    lb.ok(&[
        "exec",
        "h2",
        "--",
        "ping",
        "-n",
        "-c",
        "1",
        "-W",
        "2",
        "198.51.100.2",
    ]);
    let via = lb.ok(&["exec", "h1", "--", "ip", "route", "get", "198.51.100.1"]);
    assert!(via.contains("via 192.0.2.254"), "{via}");
    // And over IPv6: hosts are 2001:db8::(10+N) on the underlay, the outside 2001:db8::254
    // holding 2001:db8:100::1 and ::2.
    let out_addrs6 = lb.ok(&[
        "exec", "out", "--", "ip", "-6", "-o", "addr", "show", "dev", "lo",
    ]);
    assert!(out_addrs6.contains("2001:db8:100::1/128"), "{out_addrs6}");
    let h2_addrs6 = lb.ok(&[
        "exec", "h2", "--", "ip", "-6", "-o", "addr", "show", "dev", "ul0",
    ]);
    assert!(h2_addrs6.contains("2001:db8::12/64"), "{h2_addrs6}");
    lb.ok(&[
        "exec",
        "h2",
        "--",
        "ping",
        "-n",
        "-c",
        "1",
        "-W",
        "2",
        "2001:db8:100::2",
    ]);
    let via6 = lb.ok(&["exec", "h1", "--", "ip", "route", "get", "2001:db8:100::1"]);
    assert!(via6.contains("via 2001:db8::254"), "{via6}");

    let ls: serde_json::Value = serde_json::from_str(&lb.ok(&["ls", "--json"])).unwrap();
    assert_eq!(ls["outside"]["netns"], format!("{prefix}-out"));
    assert_eq!(ls["outside"]["underlay6"], "2001:db8::254");
    assert_eq!(ls["outside"]["addresses6"][0], "2001:db8:100::1");
    assert_eq!(ls["hosts"].as_array().unwrap().len(), 2);
    let underlay6: Vec<&str> = ls["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["underlay6"].as_str())
        .collect();
    assert_eq!(underlay6, ["2001:db8::11", "2001:db8::12"]);
    for h in ls["hosts"].as_array().unwrap() {
        assert_eq!(h["agent_alive"], true, "{h}");
        assert_eq!(h["registered"], true, "{h}");
    }
    let containers = ls["containers"].as_array().unwrap();
    let a = containers.iter().find(|c| c["name"] == "a").unwrap();
    assert_eq!(a["host"], "h1");
    assert_eq!(a["endpoints"][0]["network"], "t");
    assert_eq!(a["endpoints"][0]["ipv4"], "10.77.0.10/24");
    let b = containers.iter().find(|c| c["name"] == "b").unwrap();
    let b4 = b["endpoints"][0]["ipv4"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let b6 = b["endpoints"][0]["ipv6"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();

    // Across hosts, both families (a fresh IPv6 address may still be tentative: a few tries).
    lb.ok(&["exec", "a", "--", "ping", "-n", "-c", "1", "-W", "2", &b4]);
    lb.ok(&[
        "exec",
        "a",
        "--",
        "sh",
        "-c",
        &format!("for i in 1 2 3; do ping -n -c 1 -W 1 {b6} && exit 0; done; exit 1"),
    ]);

    lb.ok(&["rm", "b"]);
    let ls: serde_json::Value = serde_json::from_str(&lb.ok(&["ls", "--json"])).unwrap();
    assert_eq!(ls["containers"].as_array().unwrap().len(), 1);
    let eps = lb.ok(&["exec", "h1", "--", "weft", "endpoints", "--json"]);
    assert!(!eps.contains(&format!("{prefix}-c-b")), "{eps}");

    lb.ok(&["down"]);
    assert_eq!(teardown::leftovers(&lab).unwrap(), Vec::<String>::new());
    lb.ok(&["down"]);
}
