//! `weft lab bench-docker`: Docker with weft against Docker alone, in one run on its own two-host
//! lab (each host with its own dockerd, see `crate::docker`):
//! - start time: N containers with `docker run -d` on a weft network and N on a network of
//!   Docker's own bridge driver, on the same host, alternating one and one;
//! - throughput: iperf3 TCP from a container on h1 to a container on h2 over the weft network,
//!   against host to host on the underlay, alternating, median of the rounds.
//!
//! The lab is torn down at the end, also on failure or Ctrl-C.

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::bench::docker::{self as report, Report, StartTimes};
use crate::bench::iperf;
use crate::cmd::bench::machine;
use crate::cmd::up::{self, StoreChoice, UpOptions};
use crate::docker;
use crate::progress::Progress;
use crate::teardown;
use crate::topology::Lab;

const WEFT_NET: &str = "wbench";
const WEFT_SUBNET: &str = "10.202.0.0/16";
const BRIDGE_NET: &str = "dbridge";
const BRIDGE_SUBNET: &str = "10.203.0.0/16";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Containers started on each network.
    #[arg(long, default_value_t = 20)]
    pub containers: usize,
    /// Seconds of each iperf3 run.
    #[arg(long, default_value_t = 5)]
    pub seconds: u32,
    /// Rounds of throughput runs (underlay, then Docker over weft, in each).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Print one JSON object instead of the table (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// The benchmark lab's prefix; refused if such a lab exists.
    #[arg(long, default_value = "wbdock")]
    pub prefix: String,
}

pub async fn run(args: Args) -> Result<()> {
    if !(1..=200).contains(&args.containers) || args.seconds == 0 || args.rounds == 0 {
        bail!("--containers must be 1 to 200, --seconds and --rounds at least 1");
    }
    let lab = Lab::named(&args.prefix)?;
    teardown::refuse_existing(&lab)?;
    let p = Progress::new(lab.prefix.as_str());
    let started = Instant::now();
    let guard = teardown::Guard::new(&lab);
    let result = tokio::select! {
        r = measure(&lab, &args, &p) => r,
        _ = tokio::signal::ctrl_c() => Err(teardown::Interrupted.into()),
    };
    guard.disarm();
    p.step("tearing the lab down");
    let l = lab.clone();
    let (weft, bridge, ul, dw) = match result {
        Ok(r) => {
            tokio::task::spawn_blocking(move || teardown::down(&l))
                .await?
                .context("tearing the benchmark lab down")?;
            r
        }
        Err(e) => {
            return Err(
                tokio::task::spawn_blocking(move || teardown::undo_keeping_logs(&l, e))
                    .await
                    .unwrap_or_else(|_| anyhow!("cleanup panicked")),
            )
        }
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let rep = Report::new(
        command,
        machine(),
        weft,
        bridge,
        ul,
        dw,
        started.elapsed().as_secs_f64(),
    );
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

type Measured = (StartTimes, StartTimes, Vec<f64>, Vec<f64>);

async fn measure(lab: &Lab, args: &Args, p: &Progress) -> Result<Measured> {
    let opts = UpOptions {
        hosts: 2,
        store: StoreChoice::Embedded,
        lease_ttl: None,
        userspace_hosts: vec![],
        outside: false,
    };
    let st = up::up(lab, &opts, p).await?;
    let (h1, h2) = (st.hosts[0].clone(), st.hosts[1].clone());
    for h in [&h1, &h2] {
        docker::start(lab, h).await?;
        p.step(format!("dockerd on {} running", h.name));
        docker::docker(
            lab,
            &h.name,
            &[
                "network",
                "create",
                "-d",
                "weft",
                "--ipam-driver",
                "weft",
                "--subnet",
                WEFT_SUBNET,
                WEFT_NET,
            ],
        )
        .await?;
    }
    docker::docker(
        lab,
        &h1.name,
        &[
            "network",
            "create",
            "-d",
            "bridge",
            "--subnet",
            BRIDGE_SUBNET,
            BRIDGE_NET,
        ],
    )
    .await?;
    // Throughput first, with only its two containers on the hosts.
    // iperf3 server in a container on h2, client in a container on h1.
    docker_run(lab, &h2.name, "srv", WEFT_NET, &["sleep", "3600"]).await?;
    let srv_ip = docker::docker(
        lab,
        &h2.name,
        &[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{WEFT_NET}\").IPAddress}}}}"),
            "srv",
        ],
    )
    .await?
    .trim()
    .to_string();
    docker_run(lab, &h1.name, "cli", WEFT_NET, &["sleep", "3600"]).await?;
    p.step(format!(
        "throughput: iperf3 TCP 1 stream, underlay / Docker over weft alternately, {} rounds of {} s",
        args.rounds, args.seconds
    ));
    let (mut ul, mut dw) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let u = bounded(
            args.seconds,
            "the underlay",
            iperf::run(&h2.netns, &h1.netns, IpAddr::V4(h2.underlay), args.seconds),
        )
        .await?;
        // Each round on its own port, and one retry after clearing the servers: a run that hung
        // (seen now and then on this loaded machine) leaves nothing behind for the next.
        let mut d = Err(anyhow!("not run"));
        for attempt in 0..2u16 {
            let port = iperf::PORT + 100 + 2 * round as u16 + attempt;
            d = bounded(
                args.seconds,
                "Docker containers over weft",
                docker_iperf(lab, &h1.name, &h2.name, &srv_ip, port, args.seconds),
            )
            .await;
            if d.is_ok() {
                break;
            }
            let _ = docker::docker(lab, &h2.name, &["exec", "srv", "pkill", "iperf3"]).await;
        }
        let d = d?;
        p.step(format!(
            "round {round}: underlay {:.2}, Docker over weft {:.2} Gbit/s",
            u / 1e9,
            d / 1e9
        ));
        ul.push(u);
        dw.push(d);
    }
    // One container first on each, so that neither side pays a first-use cost in the figures.
    for (i, net) in [WEFT_NET, BRIDGE_NET].iter().enumerate() {
        docker_run(lab, &h1.name, &format!("warm{i}"), net, &["sleep", "3600"]).await?;
    }
    p.step(format!(
        "start time: {} containers on {WEFT_NET} (weft) and {BRIDGE_NET} (bridge) on h1, alternating",
        args.containers
    ));
    let (mut w, mut b) = (Vec::new(), Vec::new());
    for i in 0..args.containers {
        for (net, out) in [(WEFT_NET, &mut w), (BRIDGE_NET, &mut b)] {
            let t = Instant::now();
            docker_run(
                lab,
                &h1.name,
                &format!("{net}-{i}"),
                net,
                &["sleep", "3600"],
            )
            .await?;
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    p.step(format!(
        "weft median {:.0} ms, bridge median {:.0} ms",
        crate::bench::stats::median(&w).unwrap_or(0.0),
        crate::bench::stats::median(&b).unwrap_or(0.0)
    ));

    Ok((
        StartTimes::of(WEFT_NET, "weft", w),
        StartTimes::of(BRIDGE_NET, "bridge", b),
        ul,
        dw,
    ))
}

/// One throughput run, given a generous bound: a run that hangs (a lost client or server) fails
/// the benchmark, naming the path, rather than stalling it.
async fn bounded(
    seconds: u32,
    what: &str,
    run: impl std::future::Future<Output = Result<f64>>,
) -> Result<f64> {
    let limit = std::time::Duration::from_secs(u64::from(seconds) + 30);
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| anyhow!("iperf3 over {what} did not finish within {limit:?}"))?
        .with_context(|| format!("iperf3 over {what}"))
}

async fn docker_run(lab: &Lab, host: &str, name: &str, net: &str, cmd: &[&str]) -> Result<()> {
    let mut a = vec!["run", "-d", "--name", name, "--network", net, docker::IMAGE];
    a.extend_from_slice(cmd);
    docker::docker(lab, host, &a).await.map(|_| ())
}

/// iperf3 between the `cli` container on `client` and the `srv` container on `server`.
async fn docker_iperf(
    lab: &Lab,
    client: &str,
    server: &str,
    ip: &str,
    port: u16,
    seconds: u32,
) -> Result<f64> {
    let port = port.to_string();
    let mut srv = docker::cli(lab, server)
        .args(["exec", "srv", "iperf3", "-s", "-1", "-p", &port])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting iperf3 -s in the server container")?;
    let mut last = String::new();
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        match docker::docker(
            lab,
            client,
            &[
                "exec",
                "cli",
                "iperf3",
                "-c",
                ip,
                "-p",
                &port,
                "-t",
                &seconds.to_string(),
                "-J",
            ],
        )
        .await
        {
            Ok(out) => {
                let _ = srv.wait().await;
                return iperf::parse_iperf(&out);
            }
            Err(e) => last = format!("{e:#}"),
        }
        if !last.contains("refused") {
            break;
        }
    }
    let _ = srv.kill().await;
    bail!("iperf3 between Docker containers failed: {last}")
}
