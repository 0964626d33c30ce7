//! The WireGuard anchors: boringtun (userspace WireGuard in Rust, `boringtun-cli`) and wireguard-go,
//! each between two namespaces of their own plugged into the lab's underlay like a lab host, and
//! configured the way their users do, with `wg` from wireguard-tools. Traffic runs host to host over
//! the tunnel interface (MTU 1420, WireGuard's default on a 1500-byte underlay).
//!
//! Both implementations serve their configuration API on `/var/run/wireguard/IFNAME.sock`, one
//! directory for the whole machine whatever the namespace, so interface names carry the lab's prefix.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::sh::{self, Line};
use crate::process::{self, Daemon};
use crate::topology::Lab;
use crate::underlay;

pub const LISTEN_PORT: u16 = 51820;
pub const MTU: u32 = 1420;
pub const SOCKET_DIR: &str = "/var/run/wireguard";
pub const PREFIX_LEN: u8 = 24;
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Which implementation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// With the path of `boringtun-cli`.
    Boringtun(PathBuf),
    /// With the path of `wireguard-go`.
    WireguardGo(PathBuf),
}

impl Kind {
    /// The node names' stem (`bt1`, `wg1`) and the third octet of its addresses.
    fn stem(&self) -> (&'static str, u8) {
        match self {
            Kind::Boringtun(_) => ("bt", 1),
            Kind::WireguardGo(_) => ("wg", 2),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Kind::Boringtun(_) => "boringtun",
            Kind::WireguardGo(_) => "wireguard-go",
        }
    }
}

/// One end of a WireGuard anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    /// Its bridge port on the underlay and the stem of its files (`bt1`).
    pub node: String,
    pub ns: String,
    pub ifname: String,
    pub underlay: Ipv4Addr,
    /// The tunnel address (/24).
    pub addr: Ipv4Addr,
    pub key_file: PathBuf,
}

/// The two ends: underlay 192.0.2.15x (boringtun) or .16x (wireguard-go), tunnel 10.96.1.x or 10.96.2.x.
pub fn plan(lab: &Lab, kind: &Kind) -> [Side; 2] {
    let (stem, octet) = kind.stem();
    let side = |n: u8| {
        let node = format!("{stem}{n}");
        Side {
            ns: format!("{}-{node}", lab.prefix),
            ifname: format!("{}-{node}", lab.prefix),
            underlay: Ipv4Addr::new(192, 0, 2, 140 + 10 * octet + n),
            addr: Ipv4Addr::new(10, 96, octet, n),
            key_file: lab.dir.join("anchors").join(format!("{node}.key")),
            node,
        }
    };
    [side(1), side(2)]
}

/// The interface name must fit IFNAMSIZ (15 bytes).
pub fn check_ifname(name: &str) -> Result<()> {
    if name.len() > 15 {
        bail!("interface name {name} is longer than 15 bytes: use a shorter --prefix");
    }
    Ok(())
}

pub fn socket_path(ifname: &str) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{ifname}.sock"))
}

/// The daemon's program, arguments and environment, in the foreground (so that its pid is ours to
/// stop), with the implementations' defaults otherwise.
pub fn daemon_command(kind: &Kind, me: &Side) -> (PathBuf, Vec<String>, Vec<(String, String)>) {
    match kind {
        Kind::Boringtun(bin) => (
            bin.clone(),
            vec![
                "--foreground".into(),
                "--disable-drop-privileges".into(),
                me.ifname.clone(),
            ],
            vec![],
        ),
        Kind::WireguardGo(bin) => (
            bin.clone(),
            vec!["-f".into(), me.ifname.clone()],
            // Foreground also silences its "use the kernel module" banner.
            vec![("WG_PROCESS_FOREGROUND".into(), "1".into())],
        ),
    }
}

/// `wg set …` and the interface's address, MTU and state, once the daemon runs.
pub fn config_lines(me: &Side, peer: &Side, peer_public_key: &str) -> Vec<Line> {
    let ns = Some(me.ns.as_str());
    let key = me.key_file.display().to_string();
    let port = LISTEN_PORT.to_string();
    let allowed = format!("{}/32", peer.addr);
    let endpoint = format!("{}:{LISTEN_PORT}", peer.underlay);
    let addr = format!("{}/{PREFIX_LEN}", me.addr);
    let mtu = MTU.to_string();
    vec![
        Line::new(
            ns,
            &[
                "wg",
                "set",
                &me.ifname,
                "private-key",
                &key,
                "listen-port",
                &port,
                "peer",
                peer_public_key,
                "allowed-ips",
                &allowed,
                "endpoint",
                &endpoint,
            ],
        ),
        Line::new(ns, &["ip", "address", "add", &addr, "dev", &me.ifname]),
        Line::new(ns, &["ip", "link", "set", &me.ifname, "mtu", &mtu, "up"]),
    ]
}

/// A peer as `wg show IFNAME dump` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDump {
    pub public_key: String,
    pub endpoint: String,
    /// As the implementation reports it: wireguard-go gives the UNIX time of the last handshake,
    /// boringtun 0.7 the seconds since it (so 0 right after one); 0 also means never.
    pub latest_handshake: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Parses `wg show IFNAME dump`: the interface's line (private key, public key, port, fwmark), then
/// per peer: public key, preshared key, endpoint, allowed IPs, latest handshake, rx bytes, tx
/// bytes, keepalive, tab-separated.
pub fn parse_dump(out: &str) -> Result<Vec<PeerDump>> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    lines.next().context("`wg show dump` printed nothing")?;
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() != 8 {
                bail!("`wg show dump`: a peer line with {} fields: {l:?}", f.len());
            }
            let num = |i: usize| {
                f[i].parse::<u64>()
                    .with_context(|| format!("`wg show dump`: field {} is {:?}", i + 1, f[i]))
            };
            Ok(PeerDump {
                public_key: f[0].to_string(),
                endpoint: f[2].to_string(),
                latest_handshake: num(4)?,
                rx_bytes: num(5)?,
                tx_bytes: num(6)?,
            })
        })
        .collect()
}

/// A key pair made with `wg genkey` / `wg pubkey`; the private key written to the side's key file
/// (mode 0600). Returns the public key.
pub async fn make_key(me: &Side) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let private = sh::run("wg genkey", &Line::new(None, &["wg", "genkey"])).await?;
    if let Some(dir) = me.key_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&me.key_file)
        .with_context(|| format!("writing {}", me.key_file.display()))?;
    std::io::Write::write_all(&mut f, private.as_bytes())?;
    let public = sh::run_with_stdin(
        "wg pubkey",
        &Line::new(None, &["wg", "pubkey"]),
        Some(private.as_bytes()),
    )
    .await?;
    Ok(public.trim().to_string())
}

/// Builds one anchor: two nodes on the lab's underlay, a daemon in each, keys, peers, addresses;
/// then waits until a ping crosses and the handshake is recorded. Everything lives in the lab's
/// namespaces and state directory (stopped and removed by the lab's teardown); the API sockets are
/// removed by the daemons as they stop, and by [`remove_sockets`].
pub async fn build(lab: &Lab, kind: &Kind, sides: &[Side; 2]) -> Result<()> {
    let what = kind.name();
    for s in sides {
        check_ifname(&s.ifname)?;
        // A socket left by a daemon killed hard in an earlier run of this prefix: nobody serves it.
        let _ = std::fs::remove_file(socket_path(&s.ifname));
        underlay::create_node(lab, &s.ns, &s.node, s.underlay, None)
            .await
            .with_context(|| format!("{what}: node {}", s.ns))?;
    }
    let mut public = Vec::new();
    for s in sides {
        public.push(make_key(s).await?);
    }
    for s in sides {
        let (program, args, env) = daemon_command(kind, s);
        let log = lab.dir.join(format!("{}.log", s.node));
        let pid = process::spawn_daemon(Daemon {
            netns: &s.ns,
            program: &program,
            args,
            env,
            cwd: &lab.dir,
            log: log.clone(),
            pid_file: lab.dir.join(format!("{}.pid", s.node)),
        })?;
        wait_socket(what, pid, &s.ifname, &log).await?;
    }
    for (i, (me, peer)) in [(&sides[0], &sides[1]), (&sides[1], &sides[0])]
        .into_iter()
        .enumerate()
    {
        sh::run_all(what, &config_lines(me, peer, &public[1 - i])).await?;
    }
    if !crate::bench::ping::reachable(&sides[0].ns, sides[1].addr.into(), START_TIMEOUT).await? {
        bail!(
            "{what}: {} does not answer a ping from {} within {} s (logs: {})",
            sides[1].addr,
            sides[0].ns,
            START_TIMEOUT.as_secs(),
            lab.dir.display()
        );
    }
    // The ping's replies came through the tunnel: the peer's counters say so (boringtun reports
    // the handshake's age, not its time, so that field proves nothing).
    let dump = sh::run(
        what,
        &Line::new(
            Some(&sides[0].ns),
            &["wg", "show", &sides[0].ifname, "dump"],
        ),
    )
    .await?;
    let peers = parse_dump(&dump)?;
    if !peers
        .iter()
        .any(|p| p.public_key == public[1] && p.rx_bytes > 0)
    {
        bail!("{what}: a ping crossed but `wg show` counts nothing received from the peer: {dump}");
    }
    Ok(())
}

async fn wait_socket(what: &str, pid: i32, ifname: &str, log: &Path) -> Result<()> {
    let sock = socket_path(ifname);
    let start = Instant::now();
    loop {
        if sock.exists() {
            return Ok(());
        }
        if !process::alive(pid) {
            bail!("{what} for {ifname} exited: {}", process::log_tail(log, 3));
        }
        if start.elapsed() > START_TIMEOUT {
            bail!(
                "{what} for {ifname} made no {} within {} s: {}",
                sock.display(),
                START_TIMEOUT.as_secs(),
                process::log_tail(log, 3)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes the API sockets of both sides (after the daemons are stopped).
pub fn remove_sockets(sides: &[Side]) {
    for s in sides {
        let _ = std::fs::remove_file(socket_path(&s.ifname));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let lab = Lab::named("wdpu").unwrap();
        let [a, b] = plan(&lab, &Kind::Boringtun("/x/boringtun-cli".into()));
        assert_eq!(a.ns, "wdpu-bt1");
        assert_eq!(a.ifname, "wdpu-bt1");
        assert_eq!(a.underlay, Ipv4Addr::new(192, 0, 2, 151));
        assert_eq!(b.addr, Ipv4Addr::new(10, 96, 1, 2));
        assert_eq!(a.key_file, Path::new("/run/weft/lab/wdpu/anchors/bt1.key"));
        let [c, d] = plan(&lab, &Kind::WireguardGo("/usr/bin/wireguard-go".into()));
        assert_eq!(c.underlay, Ipv4Addr::new(192, 0, 2, 161));
        assert_eq!(d.ifname, "wdpu-wg2");
        assert_eq!(d.addr, Ipv4Addr::new(10, 96, 2, 2));
        assert!(check_ifname(&d.ifname).is_ok());
        assert!(check_ifname("abcdefghijk-wg1").is_ok());
        assert!(check_ifname("abcdefghijkl-wg1").is_err());
        assert_eq!(
            socket_path("wdpu-wg2"),
            Path::new("/var/run/wireguard/wdpu-wg2.sock")
        );
    }

    #[test]
    fn commands() {
        let lab = Lab::named("wdpu").unwrap();
        let bt = Kind::Boringtun("/c/bin/boringtun-cli".into());
        let [a, b] = plan(&lab, &bt);
        let (prog, args, env) = daemon_command(&bt, &a);
        assert_eq!(prog, Path::new("/c/bin/boringtun-cli"));
        assert_eq!(
            args,
            ["--foreground", "--disable-drop-privileges", "wdpu-bt1"]
        );
        assert!(env.is_empty());
        let (prog, args, env) =
            daemon_command(&Kind::WireguardGo("/usr/bin/wireguard-go".into()), &a);
        assert_eq!(prog, Path::new("/usr/bin/wireguard-go"));
        assert_eq!(args, ["-f", "wdpu-bt1"]);
        assert_eq!(env, [("WG_PROCESS_FOREGROUND".into(), "1".into())]);
        let lines: Vec<String> = config_lines(&a, &b, "PUB=")
            .iter()
            .map(Line::display)
            .collect();
        assert_eq!(
            lines,
            [
                "wdpu-bt1: wg set wdpu-bt1 private-key /run/weft/lab/wdpu/anchors/bt1.key listen-port 51820 peer PUB= allowed-ips 10.96.1.2/32 endpoint 192.0.2.152:51820",
                "wdpu-bt1: ip address add 10.96.1.1/24 dev wdpu-bt1",
                "wdpu-bt1: ip link set wdpu-bt1 mtu 1420 up",
            ]
        );
    }

    #[test]
    fn dumps() {
        // wireguard-go, then boringtun 0.7 (no private key shown; handshake age 2 s).
        let go = "2MbfsHf5eiXCmJeut+1hABsaw4gmK0p7vZTkKIxjLVk=\tRGJuvtH2odGbGMclY86bqRy7jKzrZljHzj9WNNNb9iI=\t51820\toff\naIFaDV1eK9i5316oElqpBpVWODPGRfaAw+QZMUeEplk=\t(none)\t192.0.2.72:51820\t10.97.0.2/32\t1795847381\t2566332\t168421500\toff\n";
        assert_eq!(
            parse_dump(go).unwrap(),
            vec![PeerDump {
                public_key: "aIFaDV1eK9i5316oElqpBpVWODPGRfaAw+QZMUeEplk=".into(),
                endpoint: "192.0.2.72:51820".into(),
                latest_handshake: 1795847381,
                rx_bytes: 2566332,
                tx_bytes: 168421500,
            }]
        );
        let bt = "(none)\t(none)\t51820\toff\nqG0+ZuFFWeJ5Nz5OpCyWxEfHd7n7bKZsl9YwtlGqFl0=\t(none)\t192.0.2.82:51820\t10.95.0.2/32\t2\t252\t252\toff\n";
        let p = parse_dump(bt).unwrap();
        assert_eq!((p[0].latest_handshake, p[0].rx_bytes), (2, 252));
        assert!(parse_dump("x\ty\t1\toff\n").unwrap().is_empty());
        assert!(parse_dump("").is_err());
        assert!(parse_dump("i\nk\t(none)\te\ta\tsoon\t1\t1\toff\n").is_err());
        assert!(parse_dump("i\nk\t(none)\te\n").is_err());
    }
}
