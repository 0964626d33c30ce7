//! Open vSwitch nodes on a lab's underlay: OVS's userspace datapath (`datapath_type=netdev`, no
//! kernel module) with one tunnel port (VXLAN or GRE, key = a VNI) towards a remote underlay
//! address, and a container namespace behind it, the way OVS documents userspace tunnelling. Used
//! as the benchmark's anchor (two nodes tunnelling to each other: [`pair`]) and by the tests as a
//! foreign switch that a weft host's GRE network talks to ([`Side::new`] pointed at a weft host):
//!
//! - one `ovsdb-server` and one `ovs-vswitchd` per node, their database, sockets and run files in a
//!   directory of the lab's state dir (`OVS_RUNDIR`, `OVS_DBDIR`, … point there);
//! - `br-phy` (netdev) holds the node's underlay interface and its address, so that OVS routes and
//!   resolves the tunnel's outer packets itself;
//! - `br-int` (netdev) holds the tunnel port (`type=vxlan` on UDP 4789 or `type=gre`; `remote_ip`,
//!   `key`) and the host end of the container's veth (the overlay MTU of the tunnel: 1450 for VXLAN,
//!   1458 for GRE, like weft's);
//! - transmit checksum offload off on both veth ends (`ethtool -K IF tx off`): with it on, the
//!   kernel hands OVS packets with partial checksums (and TSO super-frames) that the userspace
//!   datapath forwards as they are, and TCP carries nothing (checked here: 0 bytes in 3 s).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::sh::{self, Line};
use crate::process::{self, Daemon};
use crate::topology::{Lab, UNDERLAY_IFNAME};
use crate::underlay;

pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
/// The key of the benchmark's tunnels.
pub const VNI: u32 = 9998;
pub const PREFIX_LEN: u8 = 24;
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
pub const IFNAME: &str = "eth0";
pub const VETH: &str = "ve0";

/// The kind of an OVS tunnel port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    Vxlan,
    Gre,
}

impl Tunnel {
    /// OVS's interface type.
    pub fn as_str(self) -> &'static str {
        match self {
            Tunnel::Vxlan => "vxlan",
            Tunnel::Gre => "gre",
        }
    }

    /// The overlay MTU on a 1500-byte IPv4 underlay (the same as weft's for the encapsulation).
    pub fn mtu(self) -> u32 {
        match self {
            Tunnel::Vxlan => 1450,
            Tunnel::Gre => 1458,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Its bridge port on the underlay (`ovs1`).
    pub node: String,
    pub ns: String,
    pub container_ns: String,
    pub underlay: Ipv4Addr,
    /// The MAC of the node's underlay interface, and so of `br-phy`.
    pub underlay_mac: String,
    /// The container's address (/24) and MAC.
    pub addr: Ipv4Addr,
    pub mac: String,
    pub tunnel: Tunnel,
    /// Where the tunnel port sends (the other node, or a weft host), and its key.
    pub remote: Ipv4Addr,
    pub key: u32,
    /// OVS's database, sockets and run files.
    pub dir: PathBuf,
}

impl Side {
    /// Node `P-ovsN` (192.0.2.(170+N)) with container `P-ocN` at `addr`, MAC 02:96:03:00:00:N,
    /// tunnelling to `remote` with `key`.
    pub fn new(
        lab: &Lab,
        n: u8,
        tunnel: Tunnel,
        remote: Ipv4Addr,
        key: u32,
        addr: Ipv4Addr,
    ) -> Side {
        let node = format!("ovs{n}");
        Side {
            ns: format!("{}-{node}", lab.prefix),
            container_ns: format!("{}-oc{n}", lab.prefix),
            underlay: Ipv4Addr::new(192, 0, 2, 170 + n),
            underlay_mac: format!("02:96:03:00:01:{n:02x}"),
            addr,
            mac: format!("02:96:03:00:00:{n:02x}"),
            dir: lab.dir.join(&node),
            node,
            tunnel,
            remote,
            key,
        }
    }
}

/// Two nodes tunnelling to each other with key [`VNI`]: `P-ovsN`/`P-ovsN+1` (192.0.2.(170+N),
/// …) with containers `P-ocN`/`P-ocN+1` (10.96.3.N, 10.96.3.N+1).
pub fn pair(lab: &Lab, tunnel: Tunnel, n: u8) -> [Side; 2] {
    let ul = |n: u8| Ipv4Addr::new(192, 0, 2, 170 + n);
    let side =
        |me: u8, peer: u8| Side::new(lab, me, tunnel, ul(peer), VNI, Ipv4Addr::new(10, 96, 3, me));
    [side(n, n + 1), side(n + 1, n)]
}

/// OVS's environment: everything it writes goes to the side's directory.
pub fn env(me: &Side) -> Vec<(String, String)> {
    let d = me.dir.display().to_string();
    ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"]
        .into_iter()
        .map(|k| (k.to_string(), d.clone()))
        .collect()
}

pub fn db_socket(me: &Side) -> PathBuf {
    me.dir.join("db.sock")
}

fn vsctl(me: &Side, args: &[&str]) -> Line {
    let db = format!("--db=unix:{}", db_socket(me).display());
    let mut argv = vec!["ovs-vsctl", "--timeout=10", db.as_str()];
    argv.extend_from_slice(args);
    Line::new(Some(&me.ns), &argv).with_env(&env(me))
}

/// The daemons: (program, args) of ovsdb-server, then of ovs-vswitchd.
pub fn daemons(me: &Side) -> [(&'static str, Vec<String>); 2] {
    let d = &me.dir;
    [
        (
            "ovsdb-server",
            vec![
                d.join("conf.db").display().to_string(),
                format!("--remote=punix:{}", db_socket(me).display()),
                format!("--unixctl={}", d.join("ovsdb-server.ctl").display()),
            ],
        ),
        (
            "ovs-vswitchd",
            vec![
                format!("unix:{}", db_socket(me).display()),
                format!("--unixctl={}", d.join("ovs-vswitchd.ctl").display()),
            ],
        ),
    ]
}

/// Everything after both daemons run: the bridges, the ports, the container's veth.
pub fn config_lines(me: &Side) -> Vec<Line> {
    let ns = Some(me.ns.as_str());
    let c = Some(me.container_ns.as_str());
    let hwaddr = format!("other_config:hwaddr={}", me.underlay_mac);
    let remote = format!("options:remote_ip={}", me.remote);
    let key = format!("options:key={}", me.key);
    let kind = format!("type={}", me.tunnel.as_str());
    let ul_addr = format!("{}/24", me.underlay);
    let addr = format!("{}/{PREFIX_LEN}", me.addr);
    let mtu = me.tunnel.mtu().to_string();
    vec![
        Line::new(
            ns,
            &[
                "ip",
                "link",
                "set",
                UNDERLAY_IFNAME,
                "address",
                &me.underlay_mac,
            ],
        ),
        vsctl(
            me,
            &[
                "add-br",
                "br-phy",
                "--",
                "set",
                "bridge",
                "br-phy",
                "datapath_type=netdev",
                "fail-mode=standalone",
                &hwaddr,
            ],
        ),
        vsctl(me, &["add-port", "br-phy", UNDERLAY_IFNAME]),
        Line::new(ns, &["ip", "address", "flush", "dev", UNDERLAY_IFNAME]),
        Line::new(ns, &["ip", "address", "add", &ul_addr, "dev", "br-phy"]),
        Line::new(ns, &["ip", "link", "set", "br-phy", "up"]),
        vsctl(
            me,
            &[
                "add-br",
                "br-int",
                "--",
                "set",
                "bridge",
                "br-int",
                "datapath_type=netdev",
                "fail-mode=standalone",
            ],
        ),
        vsctl(
            me,
            &[
                "add-port",
                "br-int",
                "tun0",
                "--",
                "set",
                "interface",
                "tun0",
                &kind,
                &remote,
                &key,
            ],
        ),
        Line::new(
            ns,
            &[
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
            ],
        ),
        Line::new(ns, &["ethtool", "-K", VETH, "tx", "off"]),
        Line::new(ns, &["ip", "link", "set", VETH, "up"]),
        vsctl(me, &["add-port", "br-int", VETH]),
        Line::new(c, &["ethtool", "-K", IFNAME, "tx", "off"]),
        Line::new(
            c,
            &[
                "ip", "link", "set", IFNAME, "address", &me.mac, "mtu", &mtu, "up",
            ],
        ),
        Line::new(c, &["ip", "address", "add", &addr, "dev", IFNAME]),
    ]
}

const WHAT: &str = "Open vSwitch";

/// Builds one node: its namespaces on the lab's underlay, its two daemons, bridges and ports.
/// Torn down with the lab (its namespaces carry the lab's prefix; the daemons are the lab's).
pub async fn build_node(lab: &Lab, s: &Side) -> Result<()> {
    if !Path::new(SCHEMA).is_file() {
        bail!("{WHAT}: no {SCHEMA} (Debian: openvswitch-switch)");
    }
    underlay::create_node(lab, &s.ns, &s.node, s.underlay, None)
        .await
        .with_context(|| format!("{WHAT}: node {}", s.ns))?;
    underlay::create_bare(&s.container_ns).await?;
    std::fs::create_dir_all(&s.dir).with_context(|| format!("creating {}", s.dir.display()))?;
    let db = s.dir.join("conf.db").display().to_string();
    sh::run(
        WHAT,
        &Line::new(None, &["ovsdb-tool", "create", &db, SCHEMA]),
    )
    .await?;
    let [(dbs, dbs_args), (vsd, vsd_args)] = daemons(s);
    let log = lab.dir.join(format!("{}-{dbs}.log", s.node));
    let pid = spawn(lab, s, dbs, dbs_args, &log)?;
    wait_for(&db_socket(s), pid, &log).await?;
    sh::run(WHAT, &vsctl(s, &["--no-wait", "init"])).await?;
    let log = lab.dir.join(format!("{}-{vsd}.log", s.node));
    spawn(lab, s, vsd, vsd_args, &log)?;
    sh::run_all(WHAT, &config_lines(s)).await
}

/// Builds both sides of a [`pair`], then waits until a ping crosses.
pub async fn build(lab: &Lab, sides: &[Side; 2]) -> Result<()> {
    for s in sides {
        build_node(lab, s).await?;
    }
    if !crate::bench::ping::reachable(&sides[0].container_ns, sides[1].addr.into(), START_TIMEOUT)
        .await?
    {
        bail!(
            "{WHAT}: {} does not answer a ping from {} within {} s (logs in {})",
            sides[1].addr,
            sides[0].container_ns,
            START_TIMEOUT.as_secs(),
            lab.dir.display()
        );
    }
    Ok(())
}

fn spawn(lab: &Lab, s: &Side, program: &str, args: Vec<String>, log: &Path) -> Result<i32> {
    let program =
        crate::bench::deps::find(program).with_context(|| format!("Open vSwitch: no {program}"))?;
    process::spawn_daemon(Daemon {
        netns: &s.ns,
        program: &program,
        args,
        env: env(s),
        cwd: &lab.dir,
        log: log.to_path_buf(),
        pid_file: log.with_extension("pid"),
    })
}

async fn wait_for(sock: &Path, pid: i32, log: &Path) -> Result<()> {
    let start = Instant::now();
    while !sock.exists() {
        if !process::alive(pid) {
            bail!("ovsdb-server exited: {}", process::log_tail(log, 3));
        }
        if start.elapsed() > START_TIMEOUT {
            bail!(
                "ovsdb-server made no {} within {} s: {}",
                sock.display(),
                START_TIMEOUT.as_secs(),
                process::log_tail(log, 3)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_lines() {
        let lab = Lab::named("wdpu").unwrap();
        let [a, b] = pair(&lab, Tunnel::Vxlan, 1);
        assert_eq!(a.ns, "wdpu-ovs1");
        assert_eq!(b.container_ns, "wdpu-oc2");
        assert_eq!(b.underlay, Ipv4Addr::new(192, 0, 2, 172));
        assert_eq!(a.dir, Path::new("/run/weft/lab/wdpu/ovs1"));
        assert!(lab.owns_ns(&a.ns) && lab.owns_ns(&b.container_ns));
        assert_eq!(
            env(&a)[0],
            ("OVS_RUNDIR".into(), "/run/weft/lab/wdpu/ovs1".into())
        );
        let [(p1, a1), (p2, a2)] = daemons(&a);
        assert_eq!(p1, "ovsdb-server");
        assert_eq!(
            a1,
            [
                "/run/weft/lab/wdpu/ovs1/conf.db",
                "--remote=punix:/run/weft/lab/wdpu/ovs1/db.sock",
                "--unixctl=/run/weft/lab/wdpu/ovs1/ovsdb-server.ctl"
            ]
        );
        assert_eq!(p2, "ovs-vswitchd");
        assert_eq!(a2[0], "unix:/run/weft/lab/wdpu/ovs1/db.sock");
        assert_eq!((a.remote, b.remote), (b.underlay, a.underlay));
        let lines: Vec<String> = config_lines(&a).iter().map(Line::display).collect();
        let has = |s: &str| {
            assert!(lines.iter().any(|l| l == s), "missing {s:?} in {lines:#?}");
        };
        has("wdpu-ovs1: ovs-vsctl --timeout=10 --db=unix:/run/weft/lab/wdpu/ovs1/db.sock add-br br-phy -- set bridge br-phy datapath_type=netdev fail-mode=standalone other_config:hwaddr=02:96:03:00:01:01");
        has("wdpu-ovs1: ovs-vsctl --timeout=10 --db=unix:/run/weft/lab/wdpu/ovs1/db.sock add-port br-int tun0 -- set interface tun0 type=vxlan options:remote_ip=192.0.2.172 options:key=9998");
        has("wdpu-oc1: ip link set eth0 address 02:96:03:00:00:01 mtu 1450 up");
        has("wdpu-ovs1: ip address add 192.0.2.171/24 dev br-phy");
        has("wdpu-oc1: ethtool -K eth0 tx off");
        has("wdpu-ovs1: ethtool -K ve0 tx off");
        has("wdpu-oc1: ip address add 10.96.3.1/24 dev eth0");
        // The underlay's address moves to br-phy only after ul0 is OVS's port.
        let pos = |s: &str| lines.iter().position(|l| l.contains(s)).unwrap();
        assert!(pos("add-port br-phy ul0") < pos("address flush dev ul0"));
        assert!(pos("address flush dev ul0") < pos("dev br-phy"));
        // The veth exists before OVS and ethtool touch it.
        assert!(pos("type veth") < pos("add-port br-int ve0"));
        assert!(pos("type veth") < pos("wdpu-oc1: ethtool"));

        let [g, _] = pair(&lab, Tunnel::Gre, 3);
        assert_eq!(
            (g.ns.as_str(), g.underlay),
            ("wdpu-ovs3", Ipv4Addr::new(192, 0, 2, 173))
        );
        assert_eq!(g.remote, Ipv4Addr::new(192, 0, 2, 174));
        let lines: Vec<String> = config_lines(&g).iter().map(Line::display).collect();
        assert!(lines.iter().any(|l| l.ends_with("add-port br-int tun0 -- set interface tun0 type=gre options:remote_ip=192.0.2.174 options:key=9998")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("mtu 1458")), "{lines:#?}");
    }
}
