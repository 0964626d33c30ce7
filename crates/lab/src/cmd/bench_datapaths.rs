//! `weft lab bench-datapaths`: issue 3's benchmark. In one run, on two lab hosts each, it measures
//! iperf3 TCP (one stream and `-P 4`) and ping latency through:
//!
//! - weft's kernel VXLAN path (a lab of default hosts, prefix `Pk`), and that lab's underlay;
//! - weft's engine in plain mode and encrypted (a lab with `--userspace-hosts h1,h2`, prefix `Pu`;
//!   an encrypted network that cannot be attached, or does not carry a ping within 10 s, is reported
//!   as "not available", never faked);
//! - the anchors, built by the benchmark in namespaces of its own on the second lab's underlay:
//!   boringtun and wireguard-go (configured with `wg`), and Open vSwitch's userspace datapath with a
//!   VXLAN port;
//! - weft's engine carrying a GRE network (`--encap gre`), against Open vSwitch's userspace datapath
//!   with a GRE port (context rows: the issue sets no GRE target).
//!
//! Missing programs are installed first (apt-get, and `cargo install` of boringtun into a cache
//! directory), unless `--no-install`. The paths are measured interleaved, in rounds whose order
//! rotates, and reported with the issue's ratios as a table or one JSON object. Everything is torn
//! down at the end, also on failure or Ctrl-C.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::bench::datapaths::{self as dp, PathResult, Report, Settings};
use crate::bench::wireguard::{self, Kind};
use crate::bench::{deps, iperf, ping};
use crate::cmd::run as run_cmd;
use crate::cmd::up::{self, StoreChoice, UpOptions};
use crate::ovs::{self, Tunnel};
use crate::progress::Progress;
use crate::state::LabState;
use crate::teardown;
use crate::topology::Lab;
use crate::weft;

pub const PLAIN_NET: &str = "plain";
pub const ENCRYPTED_NET: &str = "sealed";
pub const GRE_NET: &str = "gre";
pub const KERNEL_SUBNET: &str = "10.211.0.0/24";
pub const ENGINE_SUBNET: &str = "10.212.0.0/24";
pub const ENCRYPTED_SUBNET: &str = "10.213.0.0/24";
pub const GRE_SUBNET: &str = "10.214.0.0/24";
/// How long a freshly attached pair may take to carry its first ping.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest prefix: lab prefixes `Pk`/`Pu`, interface names `Pu-bt1` within 15 bytes.
pub const MAX_PREFIX: usize = 10;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rounds: each measures every path once (iperf3 1 stream, iperf3 -P STREAMS, ping), in an order
    /// rotated each round; the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds of each iperf3 run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u32,
    /// Parallel streams of the second iperf3 run.
    #[arg(long, default_value_t = 4)]
    pub streams: u32,
    /// Pings per path and round.
    #[arg(long, default_value_t = 200)]
    pub pings: u32,
    /// Milliseconds between pings.
    #[arg(long, default_value_t = 10)]
    pub ping_interval_ms: u64,
    /// Print one JSON object instead of the table (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// Fail, naming the packages, instead of installing what is missing.
    #[arg(long)]
    pub no_install: bool,
    /// Where boringtun is installed (`cargo install --root DIR`) and kept between runs.
    #[arg(long, default_value = deps::DEFAULT_CACHE_DIR)]
    pub cache_dir: PathBuf,
    /// Leave both labs and the anchors up at the end, to look into them (remove them with `weft lab
    /// down --prefix PREFIXk` and `--prefix PREFIXu`).
    #[arg(long)]
    pub keep: bool,
    /// The run's prefix (up to 10 letters and digits): its labs are PREFIXk (kernel) and PREFIXu
    /// (engine and anchors); refused if either exists.
    #[arg(long, default_value = "wdp")]
    pub prefix: String,
}

/// Both labs of a run.
#[derive(Debug, Clone)]
pub struct Labs {
    pub kernel: Lab,
    pub engine: Lab,
}

impl Labs {
    pub fn named(prefix: &str) -> Result<Labs> {
        if prefix.len() > MAX_PREFIX {
            bail!("--prefix {prefix:?} is too long: at most {MAX_PREFIX} characters (its interface names must fit 15 bytes)");
        }
        Ok(Labs {
            kernel: Lab::named(&format!("{prefix}k"))?,
            engine: Lab::named(&format!("{prefix}u"))?,
        })
    }

    fn all(&self) -> [&Lab; 2] {
        [&self.kernel, &self.engine]
    }
}

/// One path as measured: iperf3 client → server, pings from the client.
#[derive(Debug, Clone)]
struct Bed {
    key: &'static str,
    client_ns: String,
    server_ns: String,
    addr: IpAddr,
}

pub async fn run(args: Args) -> Result<()> {
    if args.rounds == 0 || args.seconds == 0 || args.streams == 0 || args.pings == 0 {
        bail!("--rounds, --seconds, --streams and --pings must be at least 1");
    }
    if args.ping_interval_ms == 0 {
        bail!("--ping-interval-ms must be at least 1");
    }
    let labs = Labs::named(&args.prefix)?;
    for l in labs.all() {
        teardown::refuse_existing(l)?;
    }
    let p = Progress::new(&args.prefix);
    let tools = deps::ensure(&args.cache_dir, args.no_install, &p).await?;
    // Installing is not part of the run's time.
    let p = Progress::new(&args.prefix);
    let guard = Cleanup::new(&labs);
    let result = tokio::select! {
        r = measure(&labs, &tools, &args, &p) => r,
        _ = tokio::signal::ctrl_c() => Err(teardown::Interrupted.into()),
    };
    let keep = args.keep && result.is_ok();
    guard.disarm();
    if keep {
        p.step(format!(
            "kept; remove with `weft lab down --prefix {}` and `weft lab down --prefix {}`",
            labs.kernel.prefix, labs.engine.prefix
        ));
    } else {
        p.step("tearing down both labs and the anchors");
        let ls = labs.clone();
        // Logs are kept after a failure, not after a success or Ctrl-C.
        let ok = match &result {
            Ok(_) => true,
            Err(e) => e.is::<teardown::Interrupted>(),
        };
        let cleanup = tokio::task::spawn_blocking(move || cleanup(&ls, ok))
            .await
            .map_err(|_| anyhow!("cleanup panicked"))?;
        if let (Err(e), Ok(_)) = (&cleanup, &result) {
            bail!("tearing the benchmark down: {e:#}");
        }
    }
    let (paths, setup_s, measure_s) = result?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| dp::mem_total_gib(&m));
    let rep = Report::new(
        command,
        crate::cmd::bench::machine(),
        mem,
        Settings {
            rounds: args.rounds,
            seconds: args.seconds,
            streams: args.streams,
            pings: args.pings,
            ping_interval_ms: args.ping_interval_ms,
            iperf3: deps::version(std::path::Path::new("iperf3"), &["--version"]).await,
        },
        paths,
        (setup_s, measure_s, p.elapsed_s()),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        println!();
        for l in dp::text(&rep) {
            println!("{l}");
        }
    }
    Ok(())
}

/// Tears both labs down (every process in their namespaces or pid files: agents, anchors' daemons,
/// iperf3; every namespace; the state dirs) and removes the WireGuard API sockets. On failure, the
/// logs are kept in /run/weft/lab/PREFIX.failed.
fn cleanup(labs: &Labs, ok: bool) -> Result<()> {
    let mut first_err = None;
    for l in labs.all() {
        let r = if ok {
            teardown::down(l).map(|_| ())
        } else if teardown::leftovers(l).is_ok_and(|left| left.is_empty()) {
            // Already undone (a failed `up` removes its lab and keeps its logs): keep them.
            Ok(())
        } else {
            // Keeps the agents' and anchors' logs in /run/weft/lab/PREFIX.failed and says so.
            let e = teardown::undo_keeping_logs(l, anyhow!("lab {} torn down", l.prefix));
            eprintln!("weft lab bench-datapaths: {e:#}");
            Ok(())
        };
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    for s in wg_sides(&labs.engine) {
        wireguard::remove_sockets(&s);
    }
    first_err.map_or(Ok(()), Err)
}

fn wg_sides(lab: &Lab) -> [[wireguard::Side; 2]; 2] {
    [
        wireguard::plan(lab, &Kind::Boringtun(PathBuf::new())),
        wireguard::plan(lab, &Kind::WireguardGo(PathBuf::new())),
    ]
}

/// Tears everything down when dropped (a panic), unless disarmed.
struct Cleanup(Option<Labs>);

impl Cleanup {
    fn new(labs: &Labs) -> Cleanup {
        Cleanup(Some(labs.clone()))
    }
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            if let Err(e) = cleanup(&l, true) {
                eprintln!("weft lab bench-datapaths: cleaning up: {e:#}");
            }
        }
    }
}

async fn measure(
    labs: &Labs,
    tools: &deps::Tools,
    args: &Args,
    p: &Progress,
) -> Result<(Vec<PathResult>, f64, f64)> {
    let mut results: Vec<PathResult> = [
        dp::UNDERLAY,
        dp::KERNEL,
        dp::ENGINE,
        dp::ENCRYPTED,
        dp::BORINGTUN,
        dp::WIREGUARD_GO,
        dp::OVS,
        dp::ENGINE_GRE,
        dp::OVS_GRE,
    ]
    .into_iter()
    .map(PathResult::new)
    .collect();
    let weft_version = format!("weft {}", env!("CARGO_PKG_VERSION"));
    let mut beds = Vec::new();

    // (a) The kernel path, and the underlay for context.
    p.step(format!(
        "=== lab {}: 2 hosts, kernel VXLAN ===",
        labs.kernel.prefix
    ));
    let k = up_lab(&labs.kernel, vec![], p).await?;
    let k_note = create_network(&labs.kernel, &k, PLAIN_NET, KERNEL_SUBNET, &[]).await?;
    let (ka, kb) = attach_pair(&labs.kernel, PLAIN_NET, KERNEL_SUBNET, ("a", "b"), p).await?;
    require_ready(&labs.kernel, &ka, kb.1, "weft's kernel path").await?;
    let k_peers = peer_paths(&labs.kernel, &k, PLAIN_NET).await;
    beds.push(Bed {
        key: dp::UNDERLAY,
        client_ns: k.hosts[0].netns.clone(),
        server_ns: k.hosts[1].netns.clone(),
        addr: IpAddr::V4(k.hosts[1].underlay),
    });
    beds.push(container_bed(dp::KERNEL, &labs.kernel, &ka, &kb));
    set(&mut results, dp::KERNEL, |r| {
        r.version = Some(weft_version.clone());
    });

    // (b) The engine, plain.
    p.step(format!(
        "=== lab {}: 2 hosts with --userspace-hosts h1,h2 ===",
        labs.engine.prefix
    ));
    let u = up_lab(&labs.engine, vec!["h1".into(), "h2".into()], p).await?;
    let u_note = create_network(
        &labs.engine,
        &u,
        PLAIN_NET,
        ENGINE_SUBNET,
        &["--datapath", "userspace"],
    )
    .await?;
    let (ua, ub) = attach_pair(&labs.engine, PLAIN_NET, ENGINE_SUBNET, ("a", "b"), p).await?;
    require_ready(&labs.engine, &ua, ub.1, "weft's engine (plain)").await?;
    let u_peers = peer_paths(&labs.engine, &u, PLAIN_NET).await;
    beds.push(container_bed(dp::ENGINE, &labs.engine, &ua, &ub));
    set(&mut results, dp::ENGINE, |r| {
        r.version = Some(weft_version.clone());
    });

    // (b') The engine carrying GRE.
    p.step(format!(
        "GRE network {GRE_NET} ({GRE_SUBNET}, --encap gre) on {}",
        labs.engine.prefix
    ));
    let g_note = create_network(&labs.engine, &u, GRE_NET, GRE_SUBNET, &["--encap", "gre"]).await?;
    let (ga, gb) = attach_pair(&labs.engine, GRE_NET, GRE_SUBNET, ("ga", "gb"), p).await?;
    require_ready(&labs.engine, &ga, gb.1, "weft's engine (GRE)").await?;
    let g_peers = peer_paths(&labs.engine, &u, GRE_NET).await;
    beds.push(container_bed(dp::ENGINE_GRE, &labs.engine, &ga, &gb));
    set(&mut results, dp::ENGINE_GRE, |r| {
        r.version = Some(weft_version.clone());
    });

    // (c) The engine, encrypted: measured only if it works.
    p.step(format!(
        "encrypted network {ENCRYPTED_NET} ({ENCRYPTED_SUBNET}, --encrypt) on {}",
        labs.engine.prefix
    ));
    let mut s_note = String::new();
    let mut s_peers = Ok(vec![]);
    match encrypted(&labs.engine, &u, p).await {
        Ok((sa, sb, note)) => {
            s_note = note;
            s_peers = peer_paths(&labs.engine, &u, ENCRYPTED_NET).await;
            beds.push(container_bed(dp::ENCRYPTED, &labs.engine, &sa, &sb));
            set(&mut results, dp::ENCRYPTED, |r| {
                r.version = Some(weft_version.clone());
            });
        }
        Err(why) => {
            let why = format!("{why:#}");
            p.step(format!("encrypted: not available ({why})"));
            set(&mut results, dp::ENCRYPTED, |r| {
                *r = PathResult::not_available(dp::ENCRYPTED, why)
            });
        }
    }

    // The anchors, on the engine lab's underlay.
    for kind in [
        Kind::Boringtun(tools.boringtun.clone()),
        Kind::WireguardGo(tools.wireguard_go.clone()),
    ] {
        let sides = wireguard::plan(&labs.engine, &kind);
        p.step(format!(
            "{}: {} ({}) ↔ {} ({}), tunnel {} ↔ {}, configured with wg",
            kind.name(),
            sides[0].ns,
            sides[0].underlay,
            sides[1].ns,
            sides[1].underlay,
            sides[0].addr,
            sides[1].addr
        ));
        wireguard::build(&labs.engine, &kind, &sides).await?;
        let (key, program, vargs): (&str, &PathBuf, &[&str]) = match &kind {
            Kind::Boringtun(b) => (dp::BORINGTUN, b, &["--version"]),
            Kind::WireguardGo(b) => (dp::WIREGUARD_GO, b, &["--version"]),
        };
        let v = deps::version(program, vargs).await;
        set(&mut results, key, |r| {
            r.version = v;
            r.detail = vec![format!(
                "host to host over {} (MTU {})",
                sides[0].ifname,
                wireguard::MTU
            )];
        });
        beds.push(Bed {
            key,
            client_ns: sides[0].ns.clone(),
            server_ns: sides[1].ns.clone(),
            addr: IpAddr::V4(sides[1].addr),
        });
    }
    for (key, sides) in ovs_pairs(&labs.engine) {
        let t = sides[0].tunnel.as_str();
        p.step(format!(
            "Open vSwitch userspace (netdev) {t}: {} ({}) ↔ {} ({}), containers {} ↔ {}",
            sides[0].ns,
            sides[0].underlay,
            sides[1].ns,
            sides[1].underlay,
            sides[0].addr,
            sides[1].addr
        ));
        ovs::build(&labs.engine, &sides).await?;
        let v = match deps::find("ovs-vswitchd") {
            Some(b) => deps::version(&b, &["--version"]).await,
            None => None,
        };
        set(&mut results, key, |r| {
            r.version = v;
            r.detail = vec![format!(
                "container to container, br-int + {t} port (key {}), underlay on br-phy, MTU {}",
                ovs::VNI,
                sides[0].tunnel.mtu()
            )];
        });
        beds.push(Bed {
            key,
            client_ns: sides[0].container_ns.clone(),
            server_ns: sides[1].container_ns.clone(),
            addr: IpAddr::V4(sides[1].addr),
        });
    }
    let setup_s = p.elapsed_s();

    // Measuring, interleaved.
    let started = Instant::now();
    let interval = Duration::from_millis(args.ping_interval_ms);
    p.step(format!(
        "measuring {} paths: {} rounds of iperf3 {} s (1 stream, then -P {}) and {} pings at {} ms each",
        beds.len(),
        args.rounds,
        args.seconds,
        args.streams,
        args.pings,
        args.ping_interval_ms
    ));
    for round in 0..args.rounds {
        for i in 0..beds.len() {
            let bed = &beds[(i + round) % beds.len()];
            let r = results
                .iter_mut()
                .find(|r| r.key == bed.key)
                .expect("every bed has a result");
            let budget = Duration::from_secs(u64::from(args.seconds) + 30);
            let mut line = format!("round {}: {:<13}", round + 1, bed.key);
            for streams in [1, args.streams] {
                let run = tokio::time::timeout(
                    budget,
                    iperf::run_streams(
                        &bed.server_ns,
                        &bed.client_ns,
                        bed.addr,
                        args.seconds,
                        streams,
                    ),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow!(
                        "iperf3 did not finish within {} s",
                        budget.as_secs()
                    ))
                });
                match run {
                    Ok(x) => {
                        line.push_str(&format!(" {:>6.2} Gbit/s (-P {streams})", x.bps / 1e9));
                        if streams == 1 {
                            r.tcp_1.push(x);
                        } else {
                            r.tcp_n.push(x);
                        }
                    }
                    Err(e) => {
                        line.push_str(&format!(" iperf3 -P {streams} failed"));
                        r.errors
                            .push(format!("round {}: iperf3 -P {streams}: {e:#}", round + 1));
                    }
                }
            }
            match ping::run(&bed.client_ns, bed.addr, args.pings, interval).await {
                Ok(x) => {
                    line.push_str(&format!(
                        ", ping p50 {:.3} ms ({}/{} answered)",
                        crate::bench::stats::median(&x.rtts_ms).unwrap_or(f64::NAN),
                        x.received,
                        x.transmitted
                    ));
                    r.ping.push(&x);
                }
                Err(e) => {
                    line.push_str(", ping failed");
                    r.errors.push(format!("round {}: ping: {e:#}", round + 1));
                }
            }
            p.step(line);
        }
    }
    let measure_s = started.elapsed().as_secs_f64();
    // What the agents report of each weft path (datapath per peer, handshake), before and after
    // the traffic (the later report wins; the earlier one stays if the later query fails).
    for (key, lab, st, net, note, before) in [
        (dp::KERNEL, &labs.kernel, &k, PLAIN_NET, k_note, k_peers),
        (dp::ENGINE, &labs.engine, &u, PLAIN_NET, u_note, u_peers),
        (dp::ENGINE_GRE, &labs.engine, &u, GRE_NET, g_note, g_peers),
        (
            dp::ENCRYPTED,
            &labs.engine,
            &u,
            ENCRYPTED_NET,
            s_note,
            s_peers,
        ),
    ] {
        if beds.iter().any(|b| b.key == key) {
            let mut d = vec![note];
            d.extend(
                peer_paths(lab, st, net)
                    .await
                    .or(before)
                    .unwrap_or_else(|e| vec![format!("weft status: {e:#}")]),
            );
            set(&mut results, key, |r| r.detail = d);
        }
    }
    Ok((results, setup_s, measure_s))
}

/// The Open vSwitch anchors: a VXLAN pair (nodes 1, 2) and a GRE pair (nodes 3, 4).
fn ovs_pairs(lab: &Lab) -> [(&'static str, [ovs::Side; 2]); 2] {
    [
        (dp::OVS, ovs::pair(lab, Tunnel::Vxlan, 1)),
        (dp::OVS_GRE, ovs::pair(lab, Tunnel::Gre, 3)),
    ]
}

fn set(results: &mut [PathResult], key: &str, f: impl FnOnce(&mut PathResult)) {
    if let Some(r) = results.iter_mut().find(|r| r.key == key) {
        f(r);
    }
}

async fn up_lab(lab: &Lab, userspace_hosts: Vec<String>, p: &Progress) -> Result<LabState> {
    up::up(
        lab,
        &UpOptions {
            hosts: 2,
            store: StoreChoice::Embedded,
            lease_ttl: None,
            outside: false,
            userspace_hosts,
        },
        p,
    )
    .await
}

async fn create_network(
    lab: &Lab,
    st: &LabState,
    name: &str,
    subnet: &str,
    extra: &[&str],
) -> Result<String> {
    let h1 = &st.hosts[0];
    let mut argv = vec!["network", "create", name, "--subnet", subnet, "--json"];
    argv.extend_from_slice(extra);
    let out = weft::output(&h1.netns, &st.store_url, Some(&h1.name), &argv)
        .await
        .with_context(|| format!("creating network {name} in lab {}", lab.prefix))?;
    network_note(&out)
}

/// `network NAME: VNI N, MTU M[, encrypted]` from `weft network create --json`.
pub fn network_note(json: &str) -> Result<String> {
    let n: weft_model::Network =
        serde_json::from_str(json).context("parsing `weft network create --json`")?;
    Ok(format!(
        "network {}: VNI {}, MTU {}{}",
        n.name,
        n.vni,
        n.mtu,
        match (n.encrypted, n.encap) {
            (true, _) => ", encrypted",
            (false, weft_model::Encap::Gre) => ", GRE",
            (false, weft_model::Encap::Vxlan) => "",
        }
    ))
}

/// The containers' (name, address): .2 on h1, .3 on h2 of the subnet.
fn pair_addrs(subnet: &str) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let net: ipnet::Ipv4Net = subnet.parse().context("subnet")?;
    let base = u32::from(net.network());
    Ok((Ipv4Addr::from(base + 2), Ipv4Addr::from(base + 3)))
}

type Member = (String, Ipv4Addr);

/// Container `names.0` on h1 and `names.1` on h2, attached to `network`.
async fn attach_pair(
    lab: &Lab,
    network: &str,
    subnet: &str,
    names: (&str, &str),
    p: &Progress,
) -> Result<(Member, Member)> {
    let (a, b) = pair_addrs(subnet)?;
    let len = subnet.split('/').nth(1).unwrap_or("24");
    run_cmd::create(lab, "h1", names.0, network, &[format!("{a}/{len}")], p).await?;
    run_cmd::create(lab, "h2", names.1, network, &[format!("{b}/{len}")], p).await?;
    Ok(((names.0.to_string(), a), (names.1.to_string(), b)))
}

async fn require_ready(lab: &Lab, from: &Member, to: Ipv4Addr, what: &str) -> Result<()> {
    let ns = lab.container_ns(&from.0);
    if !ping::reachable(&ns, IpAddr::V4(to), READY_TIMEOUT).await? {
        bail!(
            "{what}: {to} does not answer a ping from {} within {} s",
            from.0,
            READY_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

fn container_bed(key: &'static str, lab: &Lab, a: &Member, b: &Member) -> Bed {
    Bed {
        key,
        client_ns: lab.container_ns(&a.0),
        server_ns: lab.container_ns(&b.0),
        addr: IpAddr::V4(b.1),
    }
}

/// The encrypted network: created, a container attached on each host, a ping across within 10 s.
/// Any failure says why the path is not available.
async fn encrypted(lab: &Lab, st: &LabState, p: &Progress) -> Result<(Member, Member, String)> {
    let note = create_network(lab, st, ENCRYPTED_NET, ENCRYPTED_SUBNET, &["--encrypt"])
        .await
        .map_err(|e| anyhow!("network create --encrypt refused: {e:#}"))?;
    let (a, b) = attach_pair(lab, ENCRYPTED_NET, ENCRYPTED_SUBNET, ("sa", "sb"), p)
        .await
        .map_err(|e| anyhow!("attach refused: {}", root_cause(&e)))?;
    if !ping::reachable(&lab.container_ns(&a.0), IpAddr::V4(b.1), READY_TIMEOUT).await? {
        bail!(
            "attached, but no connectivity within {} s",
            READY_TIMEOUT.as_secs()
        );
    }
    Ok((a, b, note))
}

fn root_cause(e: &anyhow::Error) -> String {
    e.chain().last().map(|c| c.to_string()).unwrap_or_default()
}

/// A peer as `weft status --json` reports it.
#[derive(Debug, Deserialize)]
struct StatusPeer {
    host: String,
    network: String,
    peer: String,
    path: String,
    peer_path: String,
    handshake: String,
}

#[derive(Debug, Deserialize)]
struct StatusPeers {
    #[serde(default)]
    peers: Vec<StatusPeer>,
}

/// What the agents report of a network's peers: `h1→h2 userspace -> userspace, handshake none`.
pub fn parse_peer_paths(status_json: &str, network: &str) -> Result<Vec<String>> {
    let s: StatusPeers =
        serde_json::from_str(status_json).context("parsing `weft status --json`")?;
    Ok(s.peers
        .iter()
        .filter(|p| p.network == network)
        .map(|p| {
            format!(
                "{}→{} {} -> {}, handshake {}",
                p.host, p.peer, p.path, p.peer_path, p.handshake
            )
        })
        .collect())
}

async fn peer_paths(lab: &Lab, st: &LabState, network: &str) -> Result<Vec<String>> {
    let out = weft::output(
        &weft::query_ns(lab, st),
        &st.store_url,
        None,
        &["status", "--json"],
    )
    .await?;
    parse_peer_paths(&out, network)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let a = Cli::try_parse_from(["x"]).unwrap().args;
        assert_eq!(
            (a.rounds, a.seconds, a.streams, a.pings, a.ping_interval_ms),
            (3, 5, 4, 200, 10)
        );
        assert_eq!(a.prefix, "wdp");
        assert_eq!(a.cache_dir, std::path::Path::new("/var/cache/weft/bench"));
        assert!(!a.json && !a.keep && !a.no_install);
        let a = Cli::try_parse_from([
            "x",
            "--rounds",
            "5",
            "--json",
            "--no-install",
            "--prefix",
            "dp2",
            "--cache-dir",
            "/tmp/c",
        ])
        .unwrap()
        .args;
        assert_eq!((a.rounds, a.json, a.no_install), (5, true, true));
        assert_eq!(a.prefix, "dp2");
    }

    #[test]
    fn lab_names_and_prefix_length() {
        let l = Labs::named("wdp").unwrap();
        assert_eq!(l.kernel.prefix.as_str(), "wdpk");
        assert_eq!(l.engine.prefix.as_str(), "wdpu");
        assert!(Labs::named("abcdefghij").is_ok());
        assert!(Labs::named("abcdefghijk").is_err());
        assert!(Labs::named("W").is_err());
        // The longest prefix still gives interface names that fit.
        let l = Labs::named("abcdefghij").unwrap();
        for s in wg_sides(&l.engine).iter().flatten() {
            wireguard::check_ifname(&s.ifname).unwrap();
        }
    }

    #[test]
    fn addresses_do_not_collide() {
        use crate::topology::host_addr;
        assert_eq!(
            pair_addrs(ENGINE_SUBNET).unwrap(),
            (Ipv4Addr::new(10, 212, 0, 2), Ipv4Addr::new(10, 212, 0, 3))
        );
        let lab = Lab::named("wdpu").unwrap();
        let mut underlay: Vec<Ipv4Addr> = vec![host_addr(1), host_addr(2)];
        for s in wg_sides(&lab).iter().flatten() {
            underlay.push(s.underlay);
        }
        for (_, sides) in ovs_pairs(&lab) {
            underlay.extend(sides.iter().map(|s| s.underlay));
        }
        let n = underlay.len();
        underlay.sort();
        underlay.dedup();
        assert_eq!(underlay.len(), n, "{underlay:?}");
        let nets: Vec<ipnet::Ipv4Net> = [
            KERNEL_SUBNET,
            ENGINE_SUBNET,
            ENCRYPTED_SUBNET,
            GRE_SUBNET,
            "10.96.0.0/16",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for (i, a) in nets.iter().enumerate() {
            for b in &nets[i + 1..] {
                assert!(!a.contains(&b.network()) && !b.contains(&a.network()));
            }
        }
    }

    #[test]
    fn network_notes() {
        let j = r#"{"schema":1,"name":"sealed","vni":4097,"subnet4":"10.213.0.0/24","gateway4":"10.213.0.1",
            "mtu":1398,"encrypted":true,"datapath":"auto","labels":{}}"#;
        assert_eq!(
            network_note(j).unwrap(),
            "network sealed: VNI 4097, MTU 1398, encrypted"
        );
        assert!(network_note("{}").is_err());
    }

    #[test]
    fn peer_paths_from_status() {
        let j = r#"{"store":"x","revision":1,"hosts":[],"networks":[],"peers":[
            {"host":"h1","network":"plain","peer":"h2","path":"userspace","peer_path":"userspace","handshake":"none"},
            {"host":"h1","network":"sealed","peer":"h2","path":"userspace","peer_path":"userspace","handshake":"established"}]}"#;
        assert_eq!(
            parse_peer_paths(j, "plain").unwrap(),
            ["h1→h2 userspace -> userspace, handshake none"]
        );
        assert_eq!(parse_peer_paths(j, "other").unwrap(), Vec::<String>::new());
        assert!(parse_peer_paths("{", "plain").is_err());
        assert!(parse_peer_paths("3", "plain").is_err());
    }
}
