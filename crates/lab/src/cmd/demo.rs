//! `weft lab demo`: the tour. Three hosts on the embedded store, network `demo` (IPv4 + IPv6), two
//! containers per host, a ping matrix over both families, and iperf3 throughput across hosts on the
//! overlay against the underlay. Torn down at the end, also on failure or Ctrl-C.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::cmd::up::{self, StoreChoice, UpOptions};
use crate::cmd::{ls, run as run_cmd};
use crate::etcd::which;
use crate::netns;
use crate::progress::Progress;
use crate::state::{self};
use crate::teardown;
use crate::topology::{host_addr, Lab};
use crate::weft;
use crate::PrefixArg;

pub const NETWORK: &str = "demo";
pub const SUBNET4: &str = "10.100.0.0/24";
pub const SUBNET6: &str = "fd00:100::/64";
/// iperf3 rounds (overlay, then underlay) whose best figures are compared.
pub const ROUNDS: usize = 2;
/// (host, container), two per host.
pub const CONTAINERS: [(&str, &str); 6] = [
    ("h1", "c1"),
    ("h1", "c2"),
    ("h2", "c3"),
    ("h2", "c4"),
    ("h3", "c5"),
    ("h3", "c6"),
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds of each iperf3 run.
    #[arg(long, default_value_t = 2)]
    pub seconds: u32,
    /// Leave the lab up at the end (remove it later with `weft lab down`).
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub prefix: PrefixArg,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = args.prefix.lab()?;
    for tool in ["ping", "iperf3"] {
        if which(tool).is_none() {
            bail!("the demo needs {tool} (Debian: apt-get install iputils-ping iperf3)");
        }
    }
    // Refuse before anything that would tear down on failure: an existing lab is not ours to remove.
    teardown::refuse_existing(&lab)?;
    let p = Progress::new(lab.prefix.as_str());
    let result = tokio::select! {
        r = tour(&lab, &args, &p) => r,
        _ = tokio::signal::ctrl_c() => Err(teardown::Interrupted.into()),
    };
    if args.keep && result.is_ok() {
        p.step(format!(
            "kept; remove with `weft lab down --prefix {}`",
            lab.prefix
        ));
        return Ok(());
    }
    p.step("tearing the lab down");
    let l = lab.clone();
    match result {
        Ok(()) => {
            tokio::task::spawn_blocking(move || teardown::down(&l))
                .await?
                .context("tearing the demo lab down")?;
            p.step(format!("done in {:.1} s", p.elapsed_s()));
            Ok(())
        }
        Err(e) => Err(
            tokio::task::spawn_blocking(move || teardown::undo_keeping_logs(&l, e))
                .await
                .unwrap_or_else(|_| anyhow!("cleanup panicked")),
        ),
    }
}

async fn tour(lab: &Lab, args: &Args, p: &Progress) -> Result<()> {
    let opts = UpOptions {
        hosts: 3,
        store: StoreChoice::Embedded,
        lease_ttl: None,
        outside: false,
        userspace_hosts: vec![],
    };
    let st = up::up(lab, &opts, p).await?;
    let h1 = &st.hosts[0];
    p.step(format!("network {NETWORK}: {SUBNET4} + {SUBNET6}"));
    weft::output(
        &h1.netns,
        &st.store_url,
        Some(&h1.name),
        &[
            "network", "create", NETWORK, "--subnet", SUBNET4, "--subnet", SUBNET6,
        ],
    )
    .await?;
    for (host, c) in CONTAINERS {
        run_cmd::create(lab, host, c, NETWORK, &[], p).await?;
    }
    let st = state::load(lab)?;
    let listing = ls::listing(lab, &st).await;
    if let Some(e) = &listing.store_error {
        bail!("reading the endpoints: {e}");
    }
    let mut addrs: BTreeMap<String, (IpAddr, Option<IpAddr>)> = BTreeMap::new();
    for c in &listing.containers {
        let e = c
            .endpoints
            .iter()
            .find(|e| e.network == NETWORK)
            .with_context(|| format!("container {} has no endpoint on {NETWORK}", c.name))?;
        let v4: ipnet::IpNet = e.ipv4.parse()?;
        let v6 = match &e.ipv6 {
            Some(a) => Some(a.parse::<ipnet::IpNet>()?.addr()),
            None => None,
        };
        addrs.insert(c.name.clone(), (v4.addr(), v6));
    }
    println!();
    ls::print_text(&listing);

    p.step("ping matrix: every container to every other, IPv4 and IPv6");
    let names: Vec<String> = CONTAINERS.iter().map(|(_, c)| c.to_string()).collect();
    let mut jobs = Vec::new();
    for src in &names {
        for dst in &names {
            if src == dst {
                continue;
            }
            let (v4, v6) = addrs[dst];
            let ns = lab.container_ns(src);
            let (s, d) = (src.clone(), dst.clone());
            jobs.push(async move {
                let ok4 = ping(&ns, v4).await;
                let ok6 = match v6 {
                    Some(a) => Some(ping(&ns, a).await),
                    None => None,
                };
                ((s, d), (ok4, ok6))
            });
        }
    }
    let results: BTreeMap<(String, String), (bool, Option<bool>)> =
        futures::future::join_all(jobs).await.into_iter().collect();
    let (cells, failed, total) = matrix(&names, &results);
    println!();
    println!(
        "ping matrix (row pings column; 4 = IPv4 answered, 6 = IPv6 answered, . = no answer):"
    );
    crate::table::print(
        &std::iter::once("from\\to")
            .chain(names.iter().map(|s| s.as_str()))
            .collect::<Vec<_>>(),
        &cells,
    );
    println!("{} of {total} pings answered", total - failed);

    p.step("names: c1 asks weft's resolver (in its namespace) for containers on every host");
    println!();
    let mut unresolved = 0;
    for q in ["c2", "c3.demo", "c5", "c6.demo"] {
        let want = addrs[q.split('.').next().unwrap_or(q)].0;
        let got = getent(&lab.container_ns("c1"), q).await;
        let ok = got == Some(want);
        unresolved += usize::from(!ok);
        println!(
            "c1: {q:<8} → {}{}",
            got.map(|a| a.to_string())
                .unwrap_or_else(|| "no answer".into()),
            if ok { "" } else { "  (wrong)" }
        );
    }

    p.step(format!(
        "throughput: iperf3 TCP, overlay and underlay alternately, {ROUNDS} rounds of {} s, best of each",
        args.seconds
    ));
    let (c_src, c_dst) = ("c1", "c5"); // h1 → h3
                                       // Alternating rounds, best of each: the machine is shared and noisy.
    let (mut overlay, mut underlay) = (0f64, 0f64);
    for _ in 0..ROUNDS {
        let o = crate::bench::iperf::run(
            &lab.container_ns(c_dst),
            &lab.container_ns(c_src),
            addrs[c_dst].0,
            args.seconds,
        )
        .await
        .context("iperf3 over the overlay")?;
        let u = crate::bench::iperf::run(
            &lab.host_ns(3),
            &lab.host_ns(1),
            IpAddr::V4(host_addr(3)),
            args.seconds,
        )
        .await
        .context("iperf3 over the underlay")?;
        overlay = overlay.max(o);
        underlay = underlay.max(u);
    }
    println!();
    let l1 = format!("throughput {c_src} (h1) → {c_dst} (h3) on the overlay:");
    let l2 = "throughput h1 → h3 on the underlay:".to_string();
    let w = l1.chars().count().max(l2.chars().count()) + 1;
    let pad = |l: &str| format!("{l}{}", " ".repeat(w - l.chars().count()));
    println!("{}{:.2} Gbit/s", pad(&l1), overlay / 1e9);
    println!("{}{:.2} Gbit/s", pad(&l2), underlay / 1e9);
    println!("overlay / underlay: {:.2}", overlay / underlay);
    println!();
    if failed > 0 {
        bail!("{failed} of {total} pings got no answer");
    }
    if unresolved > 0 {
        bail!("{unresolved} names were not answered right");
    }
    Ok(())
}

/// Rows of the ping matrix and (failed, total) counts.
pub fn matrix(
    names: &[String],
    results: &BTreeMap<(String, String), (bool, Option<bool>)>,
) -> (Vec<Vec<String>>, usize, usize) {
    let (mut failed, mut total) = (0, 0);
    let mut rows = Vec::new();
    for src in names {
        let mut row = vec![src.clone()];
        for dst in names {
            if src == dst {
                row.push("-".into());
                continue;
            }
            let (ok4, ok6) = results
                .get(&(src.clone(), dst.clone()))
                .copied()
                .unwrap_or((false, Some(false)));
            total += 1 + usize::from(ok6.is_some());
            failed += usize::from(!ok4) + usize::from(ok6 == Some(false));
            let c4 = if ok4 { "4" } else { "." };
            let c6 = match ok6 {
                Some(true) => "6",
                Some(false) => ".",
                None => " ",
            };
            row.push(format!("{c4}{c6}"));
        }
        rows.push(row);
    }
    (rows, failed, total)
}

/// The IPv4 address `getent` finds for `name` inside `ns` (through its resolv.conf, as a program
/// in the container would).
async fn getent(ns: &str, name: &str) -> Option<IpAddr> {
    let mut cmd = netns::command(ns, "getent").ok()?;
    let out = cmd
        .args(["ahostsv4", name])
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One ping from inside `ns`, retried a few times (a fresh IPv6 address may still be tentative).
async fn ping(ns: &str, addr: IpAddr) -> bool {
    for _ in 0..3 {
        let Ok(mut cmd) = netns::command(ns, "ping") else {
            return false;
        };
        let st = cmd
            .args(["-n", "-c", "1", "-W", "1", &addr.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status()
            .await;
        if st.is_ok_and(|s| s.success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_counts() {
        let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut r = BTreeMap::new();
        r.insert(("a".to_string(), "b".to_string()), (true, Some(true)));
        r.insert(("b".to_string(), "a".to_string()), (true, Some(false)));
        let (rows, failed, total) = matrix(&names, &r);
        assert_eq!(rows[0], vec!["a", "-", "46"]);
        assert_eq!(rows[1], vec!["b", "4.", "-"]);
        assert_eq!((failed, total), (1, 4));
    }
}
