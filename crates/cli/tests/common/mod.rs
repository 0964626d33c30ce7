//! A lab per test: real agents in network namespaces, driven through the `weft` binary as a user
//! would. Every lab has a run-unique prefix and is torn down on drop, also when the test fails.

#![allow(dead_code)]

pub mod cni;
pub mod docker;
pub mod podman;
pub mod sockets;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

pub struct Lab {
    pub prefix: String,
}

pub fn out_text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn weft(args: &[&str]) -> Output {
    Command::new(WEFT)
        .args(args)
        .output()
        .expect("running weft")
}

impl Lab {
    /// Brings up `hosts` hosts on `store` (`embedded` or `etcd`).
    pub fn up(hosts: usize, store: &str) -> Lab {
        Lab::up_with(hosts, store, &[])
    }

    pub fn up_with(hosts: usize, store: &str, extra: &[&str]) -> Lab {
        let prefix = format!("wt{:04x}", rand::random::<u16>());
        let lab = Lab { prefix };
        let h = hosts.to_string();
        let mut args = vec!["up", "--hosts", &h, "--store", store];
        args.extend_from_slice(extra);
        let o = lab.lab(&args);
        assert!(o.status.success(), "lab up failed:\n{}", out_text(&o));
        lab
    }

    /// `weft lab SUB --prefix P ARGS…`
    pub fn lab(&self, args: &[&str]) -> Output {
        let mut a = vec!["lab", args[0], "--prefix", &self.prefix];
        a.extend_from_slice(&args[1..]);
        weft(&a)
    }

    pub fn exec(&self, name: &str, cmd: &[&str]) -> Output {
        let mut a = vec!["exec", name, "--"];
        a.extend_from_slice(cmd);
        self.lab(&a)
    }

    /// Runs `weft ARGS` on a host, as a user there would.
    pub fn weft_on(&self, host: &str, args: &[&str]) -> Output {
        let mut cmd = vec![WEFT];
        cmd.extend_from_slice(args);
        self.exec(host, &cmd)
    }

    pub fn ok_on(&self, host: &str, args: &[&str]) -> String {
        let o = self.weft_on(host, args);
        assert!(
            o.status.success(),
            "weft {args:?} on {host} failed:\n{}",
            out_text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn run(&self, host: &str, name: &str, network: &str) {
        let o = self.lab(&["run", host, name, "--network", network]);
        assert!(
            o.status.success(),
            "lab run {name} on {host} failed:\n{}",
            out_text(&o)
        );
    }

    pub fn netns(&self, name: &str) -> String {
        if name.starts_with('h') && name[1..].chars().all(|c| c.is_ascii_digit()) {
            format!("{}-{name}", self.prefix)
        } else {
            format!("{}-c-{name}", self.prefix)
        }
    }

    /// The endpoint record of a container on a network.
    pub fn endpoint(&self, container: &str, network: &str) -> serde_json::Value {
        let out = self.ok_on("h1", &["endpoints", "--network", network, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("endpoints json");
        let want = format!("/run/netns/{}", self.netns(container));
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["container"] == want.as_str())
            .unwrap_or_else(|| panic!("no endpoint for {container} in {out}"))
            .clone()
    }

    pub fn inspect(&self, network: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok_on("h1", &["network", "inspect", network]))
            .expect("inspect json")
    }

    pub fn vni(&self, network: &str) -> u64 {
        self.inspect(network)["vni"].as_u64().expect("vni")
    }

    pub fn ip4(&self, container: &str, network: &str) -> String {
        addr_only(self.endpoint(container, network)["ipv4"].as_str().unwrap())
    }

    pub fn ip6(&self, container: &str, network: &str) -> String {
        addr_only(self.endpoint(container, network)["ipv6"].as_str().unwrap())
    }

    pub fn ping(&self, from: &str, to: &str, extra: &[&str]) -> Output {
        let mut cmd = vec!["ping", "-c", "1", "-W", "2"];
        cmd.extend_from_slice(extra);
        cmd.push(to);
        self.exec(from, &cmd)
    }
}

impl Lab {
    /// TCP (1 MiB) and UDP (50 datagrams) echoes from each `(server, client)` pair's client to its
    /// server, over IPv4 and IPv6 of `network`; ports from `base_port`.
    pub fn tcp_udp(&self, network: &str, pairs: &[(&str, &str)], base_port: u16) {
        for (x, y) in pairs {
            for (i, ip) in [self.ip4(x, network), self.ip6(x, network)]
                .iter()
                .enumerate()
            {
                let port = base_port + i as u16;
                sockets::tcp_echo(&self.netns(x), &self.netns(y), ip, port, 1 << 20);
                sockets::udp_echo(&self.netns(x), &self.netns(y), ip, port + 10, 50, 1200);
            }
        }
    }

    /// Every member of `net` pings every other, IPv4 and IPv6 (members: `(container, host)`);
    /// one assertion listing every failed pair.
    pub fn ping_matrix(&self, net: &str, members: &[(&str, &str)]) {
        let mut failures = Vec::new();
        for (from, _) in members {
            for (to, _) in members {
                if from == to {
                    continue;
                }
                for ip in [self.ip4(to, net), self.ip6(to, net)] {
                    let o = self.ping(from, &ip, &[]);
                    if !o.status.success() {
                        failures.push(format!("{from} -> {to} ({ip}): {}", out_text(&o)));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "ping matrix of {net} has failures:\n{}",
            failures.join("\n")
        );
    }

    /// Each `(intruder, victim, victim's network, address in that network's subnet)`: the intruder
    /// puts itself into the victim's subnet and still cannot reach it: networks are separate at
    /// layer 2, not only by routing.
    pub fn isolation(&self, cases: &[(&str, &str, &str, &str)]) {
        for (intruder, victim, net_to, fake) in cases {
            let o = self.exec(intruder, &["ip", "addr", "add", fake, "dev", "eth0"]);
            assert!(o.status.success(), "{}", out_text(&o));
            let target = self.ip4(victim, net_to);
            let o = self.ping(intruder, &target, &["-W", "1"]);
            assert!(
                !o.status.success(),
                "{intruder} reached {victim} on another network:\n{}",
                out_text(&o)
            );
            let o = self.exec(intruder, &["ip", "addr", "del", fake, "dev", "eth0"]);
            assert!(o.status.success(), "{}", out_text(&o));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = self.lab(&["down"]);
        if !o.status.success() {
            eprintln!("lab down {} failed:\n{}", self.prefix, out_text(&o));
        }
    }
}

/// Runs `cmd` in a lab host or container and returns its output; panics with it on failure.
pub fn ok(lab: &Lab, name: &str, cmd: &[&str]) -> String {
    let o = lab.exec(name, cmd);
    assert!(o.status.success(), "{cmd:?} on {name}:\n{}", out_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn addr_only(cidr: &str) -> String {
    cidr.split('/').next().unwrap().to_string()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}
