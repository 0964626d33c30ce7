//! Two-host fixtures: namespaces `wen<4 hex>-…` (removed on drop, also on panic), an underlay
//! veth between the hosts (198.51.100.0/24), a bridge per host with one container on a veth,
//! and as the host's uplink either the kernel's vxlan device or the userspace engine (plain
//! VXLAN, or the encrypted transport).

#![allow(dead_code)]

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use weft_engine::{Encap, Engine, EngineConfig, KeyPair, NetConfig, PresharedKey, Secure};
use weft_netlink::{
    command_in_netns, create_named_netns, delete_named_netns, in_netns, sysctl, IpNet, MacAddr,
    Netlink, Netns, VxlanSpec, VXLAN_PORT,
};

pub const VNI: u32 = 42;
pub const MTU: u32 = 1450;
/// Overlay MTU of an encrypted network on a 1500-byte IPv4 underlay.
pub const SECURE_MTU: u32 = 1426;

/// Named namespaces `wen<4 hex>-<suffix>`, deleted when dropped.
pub struct NsGuard {
    prefix: String,
    names: Vec<String>,
}

impl NsGuard {
    pub fn new() -> NsGuard {
        NsGuard {
            prefix: format!("wen{:04x}", rand::random::<u16>()),
            names: Vec::new(),
        }
    }

    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{}", self.prefix, suffix)
    }

    pub fn create(&mut self, suffix: &str) -> Netns {
        let name = self.name(suffix);
        let ns = create_named_netns(&name).unwrap_or_else(|e| panic!("{e}"));
        self.names.push(name);
        ns
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        for n in &self.names {
            if let Err(e) = delete_named_netns(n) {
                eprintln!("cleanup of {n}: {e}");
            }
        }
    }
}

pub fn underlay(i: u8) -> IpAddr {
    format!("198.51.100.{i}").parse().unwrap()
}

pub fn mac(i: u8) -> [u8; 6] {
    [0x02, 0x57, 10, 42, 0, i]
}

pub fn v4(i: u8) -> IpAddr {
    format!("10.42.0.{i}").parse().unwrap()
}

pub fn v6(i: u8) -> IpAddr {
    format!("fd42::{i}").parse().unwrap()
}

/// How a host reaches the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uplink {
    Kernel,
    Engine,
    /// The engine, the network encrypted.
    Encrypted,
    /// The engine, the network carried as Ethernet over GRE.
    Gre,
}

/// GRE's overlay MTU on a 1500-byte IPv4 underlay: 1500 − (20 + 8 + 14).
pub const GRE_MTU: u32 = 1458;

/// Host `i`'s static key pair (fixed, so each side can name the other's public key).
pub fn keys(i: u8) -> KeyPair {
    KeyPair::from_private(weft_secure::PrivateKey::from_bytes(
        [i.wrapping_mul(37); 32],
    ))
}

pub fn psk() -> PresharedKey {
    PresharedKey::from_bytes([0x5a; 32])
}

/// What the control plane would program on host `i` for an encrypted network.
pub fn secure_config(i: u8) -> NetConfig {
    let j = 3 - i;
    NetConfig {
        mtu: SECURE_MTU,
        encap: Encap::Encrypted(Secure {
            psk: psk(),
            peers: vec![(underlay(j), *keys(j).public())],
            ports: Default::default(),
        }),
        ..net_config(i)
    }
}

pub struct Host {
    pub i: u8,
    pub ns: Netns,
    pub ctr: Netns,
    pub ctr_name: String,
    pub nl: Netlink,
    pub engine: Option<Engine>,
}

/// Two hosts (1 and 2), each with a bridge, a container and the given uplink, programmed for
/// each other. Containers' eth0 get `ctr_mtu`.
pub struct Lab {
    pub hosts: Vec<Host>,
    // Dropped last: the hosts (and their engines, which hold the TAPs) go first.
    pub guard: NsGuard,
}

impl Lab {
    pub async fn new(uplinks: [Uplink; 2], ctr_mtu: u32) -> Lab {
        Self::tuned(uplinks, ctr_mtu, |_| {}).await
    }

    /// Like [`Lab::new`], with the engines' configuration adjusted by `tune`.
    pub async fn tuned(uplinks: [Uplink; 2], ctr_mtu: u32, tune: fn(&mut EngineConfig)) -> Lab {
        let mut g = NsGuard::new();
        let h1 = g.create("h1");
        let h2 = g.create("h2");
        let c1 = g.create("c1");
        let c2 = g.create("c2");
        let n1 = Netlink::open_in(&h1).unwrap();
        let n2 = Netlink::open_in(&h2).unwrap();
        n1.create_veth_peer_in("wul1", "wul2", 1500, h2.as_fd())
            .await
            .unwrap();
        n1.add_address("wul1", "198.51.100.1/24".parse().unwrap())
            .await
            .unwrap();
        n2.add_address("wul2", "198.51.100.2/24".parse().unwrap())
            .await
            .unwrap();
        n1.set_up("wul1").await.unwrap();
        n2.set_up("wul2").await.unwrap();
        let mut hosts = Vec::new();
        for (i, (ns, ctr, nl, up)) in [(h1, c1, n1, uplinks[0]), (h2, c2, n2, uplinks[1])]
            .into_iter()
            .enumerate()
        {
            let i = i as u8 + 1;
            let ctr_name = g.name(&format!("c{i}"));
            let mut h = Host {
                i,
                ns,
                ctr,
                ctr_name,
                nl,
                engine: None,
            };
            build_host(&mut h, up, ctr_mtu, tune).await;
            hosts.push(h);
        }
        Lab { hosts, guard: g }
    }

    pub fn engine(&self, i: usize) -> &Engine {
        self.hosts[i].engine.as_ref().expect("host has no engine")
    }
}

/// What the control plane would program on host `i` for its single peer.
pub fn net_config(i: u8) -> NetConfig {
    let j = 3 - i;
    NetConfig {
        vni: VNI,
        tap: format!("wtp{VNI}"),
        mtu: MTU,
        fdb: vec![(mac(j), underlay(j))],
        flood: vec![underlay(j)],
        neigh: vec![(v4(j), mac(j)), (v6(j), mac(j))],
        ..Default::default()
    }
}

async fn build_host(h: &mut Host, up: Uplink, ctr_mtu: u32, tune: fn(&mut EngineConfig)) {
    let i = h.i;
    sysctl::set_all(
        Some(&h.ns),
        &[
            (sysctl::BRIDGE_NF_CALL_IPTABLES, "0"),
            (sysctl::BRIDGE_NF_CALL_IP6TABLES, "0"),
        ],
    )
    .unwrap();
    sysctl::set_all(
        Some(&h.ctr),
        &[
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ],
    )
    .unwrap();
    let nl = &h.nl;
    let br = nl.ensure_bridge("wbr42", MTU).await.unwrap();
    match up {
        Uplink::Kernel => {
            let vx = nl
                .ensure_vxlan(&VxlanSpec {
                    name: "wvx42".into(),
                    vni: VNI,
                    local: underlay(i),
                    port: VXLAN_PORT,
                    mtu: MTU,
                    bridge: Some(br.index),
                })
                .await
                .unwrap();
            let cfg = net_config(i);
            for (m, dst) in &cfg.fdb {
                nl.fdb_add(vx.index, MacAddr(*m), *dst).await.unwrap();
            }
            for dst in &cfg.flood {
                nl.fdb_append_flood(vx.index, *dst).await.unwrap();
            }
            for (ip, m) in &cfg.neigh {
                nl.neigh_set(vx.index, *ip, MacAddr(*m)).await.unwrap();
            }
        }
        Uplink::Engine | Uplink::Encrypted | Uplink::Gre => {
            let engine = start_engine(&h.ns, i, tune);
            let cfg = match up {
                Uplink::Encrypted => secure_config(i),
                Uplink::Gre => NetConfig {
                    mtu: GRE_MTU,
                    encap: Encap::Gre,
                    ..net_config(i)
                },
                _ => net_config(i),
            };
            engine.set_network(cfg).unwrap();
            let tap = format!("wtp{VNI}");
            nl.set_master(&tap, br.index).await.unwrap();
            nl.set_up(&tap).await.unwrap();
            h.engine = Some(engine);
        }
    }
    let host_end = format!("wvc{i}");
    nl.create_veth_peer_in(&host_end, "eth0", ctr_mtu, h.ctr.as_fd())
        .await
        .unwrap();
    nl.set_master(&host_end, br.index).await.unwrap();
    nl.set_up(&host_end).await.unwrap();
    let nc = Netlink::open_in(&h.ctr).unwrap();
    nc.set_mac("eth0", MacAddr(mac(i))).await.unwrap();
    nc.set_up("lo").await.unwrap();
    nc.set_up("eth0").await.unwrap();
    for net in [format!("10.42.0.{i}/24"), format!("fd42::{i}/64")] {
        nc.add_address("eth0", net.parse::<IpNet>().unwrap())
            .await
            .unwrap();
    }
}

/// Starts an engine on a thread inside `ns` (its socket and TAPs then live there).
pub fn start_engine(ns: &Netns, i: u8, tune: fn(&mut EngineConfig)) -> Engine {
    let mut cfg = EngineConfig {
        workers: 2,
        keys: Some(keys(i)),
        ..EngineConfig::new(underlay(i))
    };
    tune(&mut cfg);
    in_netns(ns, move || Engine::start(cfg))
        .unwrap()
        .unwrap_or_else(|e| panic!("starting the engine on host {i}: {e}"))
}

/// Runs `program args…` inside `ns` and returns its output.
pub fn run_in(ns: &Netns, program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    command_in_netns(&mut cmd, ns).unwrap();
    cmd.output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// `ping -c1 -W1 ARGS` in `ns`, a few tries (a cold first packet may wait for ARP).
pub fn ping(ns: &Netns, args: &[&str]) -> bool {
    (1..=3).any(|_| {
        let mut a = vec!["-c1", "-W1"];
        a.extend_from_slice(args);
        run_in(ns, "ping", &a).status.success()
    })
}

/// An iperf3 server in a namespace, killed when dropped.
pub struct Iperf3Server(Child);

impl Iperf3Server {
    pub fn start(ns: &Netns) -> Iperf3Server {
        let mut cmd = Command::new("iperf3");
        cmd.args(["-s", "--one-off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command_in_netns(&mut cmd, ns).unwrap();
        Iperf3Server(cmd.spawn().expect("iperf3 -s"))
    }
}

impl Drop for Iperf3Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One iperf3 TCP run from the container of `from` to `to_ip` for `secs` seconds (reversed:
/// data flows the other way); returns the receiver's Gbit/s.
pub fn iperf3(client: &Netns, server: &Netns, to_ip: IpAddr, secs: u32, reverse: bool) -> f64 {
    let _srv = Iperf3Server::start(server);
    let t = secs.to_string();
    let ip = to_ip.to_string();
    let streams = std::env::var("WEFT_BENCH_STREAMS").unwrap_or_else(|_| "1".into());
    let mut args = vec!["-c", &ip, "-t", &t, "-J", "-P", &streams];
    if reverse {
        args.push("-R");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = run_in(client, "iperf3", &args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            return bps / 1e9;
        }
        // The server may not listen yet.
        assert!(
            Instant::now() < deadline && text.contains("refused"),
            "iperf3 to {ip} failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `f` holds (up to 3 s).
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// One iperf3 UDP run (`-u -b RATE`, 1 s, 8000-byte datagrams that the container fragments,
/// or 1400-byte ones); returns (receiver Mbit/s, lost %).
pub fn iperf3_udp(
    client: &Netns,
    server: &Netns,
    to_ip: IpAddr,
    len: u32,
    reverse: bool,
) -> (f64, f64) {
    let _srv = Iperf3Server::start(server);
    let ip = to_ip.to_string();
    let l = len.to_string();
    // A modest rate: this checks that datagrams of every size cross, not how fast; at higher rates
    // a loaded machine (two cores shared with builds) drops at the socket buffers.
    let mut args = vec!["-c", &ip, "-u", "-b", "50M", "-l", &l, "-t", "1", "-J"];
    if reverse {
        args.push("-R");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = run_in(client, "iperf3", &args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let sum = &v["end"]["sum"];
        if let (Some(bps), Some(lost)) = (
            sum["bits_per_second"].as_f64(),
            sum["lost_percent"].as_f64(),
        ) {
            return (bps / 1e6, lost);
        }
        assert!(
            Instant::now() < deadline && text.contains("refused"),
            "iperf3 -u to {ip} failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
