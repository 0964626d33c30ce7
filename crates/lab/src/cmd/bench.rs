//! `weft lab bench`: the benchmark. For each store (embedded, etcd) it builds its own two-host lab
//! and measures, in one run:
//! - throughput: iperf3 TCP, one stream, container on h1 → container on h2 over weft, against
//!   host → host on the underlay and against a VXLAN wired by hand between two other containers of
//!   the same hosts (the ceiling of any kernel VXLAN path here), alternating, median of the rounds;
//! - convergence: from `weft attach` returning on h1 to the first echo reply from the new container
//!   to a container on h2, over many attaches; and withdrawal: from `weft detach` returning to the
//!   FDB entry gone on h2.
//!
//! Prints a table (or one JSON object) and checks the targets. Each lab is torn down at the
//! end, also on failure or Ctrl-C. The parts live in `src/bench/`, one file per concern.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd::run as run_cmd;
use crate::cmd::up::{self, StoreChoice, UpOptions};
use crate::etcd::{self, which};
use crate::progress::Progress;
use crate::teardown;
use crate::topology::Lab;
use crate::weft;

use crate::bench::dns::Resolvers;
use crate::bench::{convergence, handwired, iperf, report};

use report::{Convergence, Machine, Path, Report, StoreResult, Throughput};

pub const NETWORK: &str = "bench";
pub const SUBNET: &str = "10.201.0.0/16";
pub const PREFIX_LEN: u8 = 16;
/// The throughput containers: `a` on h1 sends to `b` on h2; `b` also pings the attached containers.
pub const A: (&str, &str, Ipv4Addr) = ("h1", "a", Ipv4Addr::new(10, 201, 0, 2));
pub const B: (&str, &str, Ipv4Addr) = ("h2", "b", Ipv4Addr::new(10, 201, 0, 3));
pub const MAX_ATTACHES: u32 = 10_000;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store(s) to measure, one lab each, one after the other.
    #[arg(long, default_value = "both", value_parser = ["embedded", "etcd", "both"])]
    pub store: String,
    /// Attaches (and detaches) measured per store; 50 or more for meaningful percentiles (with 50,
    /// p99 is the maximum).
    #[arg(long, default_value_t = 50)]
    pub attaches: u32,
    /// Seconds of each iperf3 run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u32,
    /// Rounds of throughput runs (underlay, hand-wired, weft in each); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print one JSON object instead of the table (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// Leave the lab up at the end, to look into it (one store only; remove it with `weft lab down
    /// --prefix PREFIX`).
    #[arg(long)]
    pub keep: bool,
    /// The benchmark labs' prefix (their namespaces are PREFIX-*); refused if such a lab exists.
    #[arg(long, default_value = "wbench")]
    pub prefix: String,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = Lab::named(&args.prefix)?;
    if !(1..=MAX_ATTACHES).contains(&args.attaches) {
        bail!("--attaches must be between 1 and {MAX_ATTACHES}");
    }
    if args.seconds == 0 || args.rounds == 0 {
        bail!("--seconds and --rounds must be at least 1");
    }
    if args.keep && args.store == "both" {
        bail!("--keep needs one store (--store embedded or --store etcd): both use one prefix");
    }
    let stores = match args.store.as_str() {
        "embedded" => vec![StoreChoice::Embedded],
        "etcd" => vec![StoreChoice::Etcd],
        _ => vec![StoreChoice::Embedded, StoreChoice::Etcd],
    };
    let mut tools = vec!["iperf3", "ip", "bridge"];
    if stores.contains(&StoreChoice::Etcd) {
        tools.push(etcd::ETCD_BIN);
    }
    for tool in tools {
        if which(tool).is_none() {
            bail!(
                "the benchmark needs {tool} (Debian: apt-get install iperf3 iproute2 etcd-server)"
            );
        }
    }
    teardown::refuse_existing(&lab)?;
    let p = Progress::new(lab.prefix.as_str());
    let mut results = Vec::new();
    for store in stores {
        results.push(one_store(&lab, store, &args, &p).await?);
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let rep = Report::new(command, machine(), results, p.elapsed_s());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        println!();
        for l in report::text(&rep) {
            println!("{l}");
        }
    }
    Ok(())
}

fn store_name(s: &StoreChoice) -> &'static str {
    match s {
        StoreChoice::Etcd => "etcd",
        _ => "embedded",
    }
}

/// One lab on one store: built, measured, torn down (also on failure, panic or Ctrl-C).
async fn one_store(
    lab: &Lab,
    store: StoreChoice,
    args: &Args,
    p: &Progress,
) -> Result<StoreResult> {
    let started = Instant::now();
    p.step(format!("=== store {} ===", store_name(&store)));
    let guard = teardown::Guard::new(lab);
    let result = tokio::select! {
        r = measure(lab, &store, args, p) => r,
        _ = tokio::signal::ctrl_c() => Err(teardown::Interrupted.into()),
    };
    guard.disarm();
    if args.keep && result.is_ok() {
        p.step(format!(
            "kept; remove with `weft lab down --prefix {}`",
            lab.prefix
        ));
        return result.map(|mut r| {
            r.wall_seconds = started.elapsed().as_secs_f64();
            r
        });
    }
    p.step("tearing the lab down");
    let l = lab.clone();
    match result {
        Ok(mut r) => {
            tokio::task::spawn_blocking(move || teardown::down(&l))
                .await?
                .context("tearing the benchmark lab down")?;
            r.wall_seconds = started.elapsed().as_secs_f64();
            Ok(r)
        }
        Err(e) => Err(
            tokio::task::spawn_blocking(move || teardown::undo_keeping_logs(&l, e))
                .await
                .unwrap_or_else(|_| anyhow!("cleanup panicked")),
        ),
    }
}

async fn measure(lab: &Lab, store: &StoreChoice, args: &Args, p: &Progress) -> Result<StoreResult> {
    let opts = UpOptions {
        hosts: 2,
        store: store.clone(),
        lease_ttl: None,
        outside: false,
        userspace_hosts: vec![],
    };
    let st = up::up(lab, &opts, p).await?;
    let (h1, h2) = (&st.hosts[0], &st.hosts[1]);
    p.step(format!("network {NETWORK}: {SUBNET}"));
    let out = weft::output(
        &h1.netns,
        &st.store_url,
        Some(&h1.name),
        &["network", "create", NETWORK, "--subnet", SUBNET, "--json"],
    )
    .await?;
    let net: weft_model::Network =
        serde_json::from_str(&out).context("parsing `weft network create --json`")?;
    for (host, c, addr) in [A, B] {
        let ip = format!("{addr}/{PREFIX_LEN}");
        run_cmd::create(lab, host, c, NETWORK, &[ip], p).await?;
    }
    let sides = handwired::plan(lab, (&h1.netns, h1.underlay), (&h2.netns, h2.underlay));
    p.step(format!(
        "hand-wired VXLAN (VNI {}, MTU {}, static FDB and neighbours): {} on h1 ↔ {} on h2",
        handwired::VNI,
        handwired::MTU,
        sides[0].container_ns,
        sides[1].container_ns
    ));
    handwired::build(&sides).await?;

    p.step(format!(
        "throughput: iperf3 TCP 1 stream, underlay / hand-wired / weft alternately, {} rounds of {} s",
        args.rounds, args.seconds
    ));
    let (mut ul, mut hw, mut wf) = (Vec::new(), Vec::new(), Vec::new());
    let (a_ns, b_ns) = (lab.container_ns(A.1), lab.container_ns(B.1));
    for round in 1..=args.rounds {
        let u = iperf::run(&h2.netns, &h1.netns, IpAddr::V4(h2.underlay), args.seconds)
            .await
            .context("iperf3 over the underlay")?;
        let h = iperf::run(
            &sides[1].container_ns,
            &sides[0].container_ns,
            IpAddr::V4(sides[1].addr),
            args.seconds,
        )
        .await
        .context("iperf3 over the hand-wired VXLAN")?;
        let w = iperf::run(&b_ns, &a_ns, IpAddr::V4(B.2), args.seconds)
            .await
            .context("iperf3 over weft")?;
        p.step(format!(
            "round {round}: underlay {:.2}, hand-wired {:.2}, weft {:.2} Gbit/s",
            u / 1e9,
            h / 1e9,
            w / 1e9
        ));
        ul.push(u);
        hw.push(h);
        wf.push(w);
    }
    let throughput = Throughput::new(
        args.rounds,
        args.seconds,
        Path::of(ul),
        Path::of(hw),
        Path::of(wf),
    );

    // The datapath's device names (weft-reconcile's `names`): bridge wbr<VNI>, VXLAN wvx<VNI>.
    let vxlan = format!("wvx{}", net.vni);
    p.step(format!(
        "convergence: {} attaches on h1, each pinged from {} on h2 every {} ms; withdrawal: {vxlan} on h2 read every {} ms after detach",
        args.attaches,
        B.1,
        convergence::PING_EVERY.as_millis(),
        convergence::POLL_EVERY.as_millis()
    ));
    let resolvers = Resolvers::open(&[(&h1.name, &a_ns), (&h2.name, &b_ns)])?;
    let bed = convergence::Bed {
        lab,
        store_url: &st.store_url,
        network: NETWORK,
        prefix_len: PREFIX_LEN,
        a_host: &h1.name,
        a_ns: &h1.netns,
        b_ns: &h2.netns,
        b_vxlan: &vxlan,
        b_container_ns: &b_ns,
        resolvers: &resolvers,
    };
    let samples = convergence::measure(&bed, args.attaches, p).await?;
    Ok(StoreResult {
        store: store_name(store).to_string(),
        throughput,
        convergence: Convergence::of(&samples),
        samples,
        wall_seconds: 0.0,
    })
}

/// The machine the figures come from.
pub fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| cpu_model(&s))
        .unwrap_or_else(|| "unknown CPU".into());
    Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        cpu,
    }
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_line() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.80GHz\nflags\t\t: fpu\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.80GHz")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn addresses_fit_the_subnet() {
        let net: ipnet::Ipv4Net = SUBNET.parse().unwrap();
        assert_eq!(net.prefix_len(), PREFIX_LEN);
        for a in [A.2, B.2, convergence::attach_addr(0).unwrap()] {
            assert!(net.contains(&a), "{a}");
        }
        assert!(!net.contains(
            &handwired::plan(
                &Lab::named("x").unwrap(),
                ("x-h1", Ipv4Addr::new(192, 0, 2, 11)),
                ("x-h2", Ipv4Addr::new(192, 0, 2, 12))
            )[0]
            .addr
        ));
    }
}
