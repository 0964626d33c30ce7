//! The benchmark's results: what is kept per store, the targets of the issue, the human table and
//! the JSON object. Pure.

use serde::Serialize;

pub use crate::table::lines as table;

use super::convergence::Sample;
use super::stats::{median, Latency};

/// Throughput of one path: every run's bits per second, and their median.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Path {
    pub runs_bps: Vec<f64>,
    pub median_gbps: f64,
}

impl Path {
    pub fn of(runs_bps: Vec<f64>) -> Path {
        let median_gbps = median(&runs_bps).unwrap_or(f64::NAN) / 1e9;
        Path {
            runs_bps,
            median_gbps,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    pub rounds: usize,
    pub seconds_per_run: u32,
    /// Host h1 → host h2 on the underlay.
    pub underlay: Path,
    /// Container → container over the VXLAN wired by hand (VNI 9999).
    pub hand_wired: Path,
    /// Container → container over weft's network.
    pub weft: Path,
    pub weft_over_underlay: f64,
    pub weft_over_hand_wired: f64,
    pub hand_wired_over_underlay: f64,
    /// weft / hand-wired within each round (runs seconds apart): how noisy the ratio is.
    pub weft_over_hand_wired_per_round: Vec<f64>,
}

impl Throughput {
    pub fn new(
        rounds: usize,
        seconds_per_run: u32,
        underlay: Path,
        hand_wired: Path,
        weft: Path,
    ) -> Throughput {
        let weft_over_hand_wired_per_round = weft
            .runs_bps
            .iter()
            .zip(&hand_wired.runs_bps)
            .map(|(w, h)| w / h)
            .collect();
        Throughput {
            weft_over_hand_wired_per_round,
            rounds,
            seconds_per_run,
            weft_over_underlay: weft.median_gbps / underlay.median_gbps,
            weft_over_hand_wired: weft.median_gbps / hand_wired.median_gbps,
            hand_wired_over_underlay: hand_wired.median_gbps / underlay.median_gbps,
            underlay,
            hand_wired,
            weft,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Convergence {
    pub attaches: usize,
    /// Attach return → first echo reply on the other host.
    pub convergence: Option<Latency>,
    /// Attaches that got no reply within the timeout.
    pub convergence_timeouts: usize,
    /// Detach return → FDB entry gone on the other host.
    pub withdrawal: Option<Latency>,
    pub withdrawal_timeouts: usize,
    /// Attaches after which the other host already had the FDB and neighbour entries when attach
    /// returned.
    pub b_ready_at_return: usize,
    /// Attaches after which both ends of the container's veth were operationally up at return.
    pub links_running_at_return: usize,
    /// Attaches that took longer than [`SLOW_MS`] to converge (or timed out), and among them those
    /// where B's host lacked an entry, or the container's links were not yet running, at return.
    pub slow: usize,
    pub slow_b_not_ready: usize,
    pub slow_with_links_not_running: usize,
    /// How long `weft attach` itself took (context).
    pub attach_p50_ms: Option<f64>,
    /// Attaches whose first echo request already got the reply.
    pub first_ping_answered: usize,
    /// Attach return → the name answered by every host's resolver.
    pub dns_answered: Option<Latency>,
    pub dns_answered_timeouts: usize,
    /// Detach return → NXDOMAIN from every host's resolver.
    pub dns_gone: Option<Latency>,
    pub dns_gone_timeouts: usize,
}

/// A convergence slower than this is counted as slow and explained in the report.
pub const SLOW_MS: f64 = 100.0;

impl Convergence {
    pub fn of(samples: &[Sample]) -> Convergence {
        let slow: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.convergence_ms.is_none_or(|c| c > SLOW_MS))
            .collect();
        let conv: Vec<f64> = samples.iter().filter_map(|s| s.convergence_ms).collect();
        let wd: Vec<f64> = samples.iter().filter_map(|s| s.withdrawal_ms).collect();
        let att: Vec<f64> = samples.iter().map(|s| s.attach_ms).collect();
        let answered: Vec<f64> = samples.iter().filter_map(|s| s.dns_answered_ms).collect();
        let gone: Vec<f64> = samples.iter().filter_map(|s| s.dns_gone_ms).collect();
        Convergence {
            dns_answered_timeouts: samples.len() - answered.len(),
            dns_answered: Latency::of(&answered),
            dns_gone_timeouts: samples.len() - gone.len(),
            dns_gone: Latency::of(&gone),
            attaches: samples.len(),
            convergence_timeouts: samples.len() - conv.len(),
            convergence: Latency::of(&conv),
            withdrawal_timeouts: samples.len() - wd.len(),
            withdrawal: Latency::of(&wd),
            b_ready_at_return: samples.iter().filter(|s| s.b_ready_at_return).count(),
            links_running_at_return: samples.iter().filter(|s| s.links_running_at_return).count(),
            slow: slow.len(),
            slow_b_not_ready: slow.iter().filter(|s| !s.b_ready_at_return).count(),
            slow_with_links_not_running: slow.iter().filter(|s| !s.links_running_at_return).count(),
            attach_p50_ms: median(&att),
            first_ping_answered: samples
                .iter()
                .filter(|s| s.convergence_ms.is_some() && s.pings == 1)
                .count(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreResult {
    pub store: String,
    pub throughput: Throughput,
    pub convergence: Convergence,
    /// Every attach, for whoever wants the raw figures.
    pub samples: Vec<Sample>,
    /// Wall time of this store's whole run (lab up to torn down).
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub cpu: String,
}

/// One target of the issue, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub store: String,
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// weft's kernel path against the hand-wired VXLAN of the same run.
pub const MIN_WEFT_OVER_HAND_WIRED: f64 = 0.95;

/// The convergence p50 target of a store, in ms.
pub fn convergence_p50_target_ms(store: &str) -> f64 {
    if store == "etcd" {
        100.0
    } else {
        50.0
    }
}

pub fn targets(r: &StoreResult) -> Vec<Target> {
    let ratio = r.throughput.weft_over_hand_wired;
    let mut out = vec![Target {
        store: r.store.clone(),
        what: "throughput weft / hand-wired VXLAN".into(),
        target: format!("≥ {MIN_WEFT_OVER_HAND_WIRED:.2}"),
        measured: format!("{ratio:.3}"),
        met: ratio >= MIN_WEFT_OVER_HAND_WIRED,
    }];
    let limit = convergence_p50_target_ms(&r.store);
    let c = &r.convergence;
    let (measured, met) = match &c.convergence {
        Some(l) => (
            format!(
                "{:.1} ms{}",
                l.p50_ms,
                timeouts_note(c.convergence_timeouts)
            ),
            l.p50_ms <= limit && c.convergence_timeouts * 2 < c.attaches,
        ),
        None => ("no attach converged".into(), false),
    };
    out.push(Target {
        store: r.store.clone(),
        what: "convergence p50".into(),
        target: format!("≤ {limit:.0} ms"),
        measured,
        met,
    });
    for (what, l, timeouts) in [
        (
            "name answered on every host p99",
            &c.dns_answered,
            c.dns_answered_timeouts,
        ),
        (
            "name gone on every host p99",
            &c.dns_gone,
            c.dns_gone_timeouts,
        ),
    ] {
        let (measured, met) = match l {
            Some(l) => (
                format!("{:.1} ms{}", l.p99_ms, timeouts_note(timeouts)),
                l.p99_ms <= DNS_P99_TARGET_MS && timeouts == 0,
            ),
            None => ("never".into(), false),
        };
        out.push(Target {
            store: r.store.clone(),
            what: what.into(),
            target: format!("≤ {DNS_P99_TARGET_MS:.0} ms"),
            measured,
            met,
        });
    }
    out
}

/// Names: answered on every host within this of attach, and gone within this of detach.
pub const DNS_P99_TARGET_MS: f64 = 200.0;

pub const DNS_HEADER: [&str; 9] = [
    "store",
    "name answered p50",
    "p90",
    "p99",
    "max",
    "name gone p50",
    "p90",
    "p99",
    "max",
];

/// One row of the names table per store: ms from attach (detach) returning until every host's
/// resolver answers the name (NXDOMAIN).
pub fn dns_row(r: &StoreResult) -> Vec<String> {
    let mut row = vec![r.store.clone()];
    for l in [&r.convergence.dns_answered, &r.convergence.dns_gone] {
        match l {
            Some(l) => row.extend([f1(l.p50_ms), f1(l.p90_ms), f1(l.p99_ms), f1(l.max_ms)]),
            None => row.extend(std::iter::repeat_n("-".to_string(), 4)),
        }
    }
    row
}

fn timeouts_note(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} timed out)")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub stores: Vec<StoreResult>,
    pub targets: Vec<Target>,
    pub all_targets_met: bool,
    pub wall_seconds: f64,
}

impl Report {
    pub fn new(
        command: String,
        machine: Machine,
        stores: Vec<StoreResult>,
        wall_seconds: f64,
    ) -> Report {
        let targets: Vec<Target> = stores.iter().flat_map(targets).collect();
        Report {
            command,
            machine,
            all_targets_met: targets.iter().all(|t| t.met),
            targets,
            stores,
            wall_seconds,
        }
    }
}

pub const HEADER: [&str; 12] = [
    "store",
    "underlay",
    "hand-wired",
    "weft",
    "weft/underlay",
    "weft/hand-wired",
    "conv p50",
    "p90",
    "p99",
    "max",
    "withdraw p50",
    "p99",
];

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// One table row per store (Gbit/s with 2 decimals, ratios with 3, milliseconds with 1).
pub fn row(r: &StoreResult) -> Vec<String> {
    let t = &r.throughput;
    let mut row = vec![
        r.store.clone(),
        format!("{:.2}", t.underlay.median_gbps),
        format!("{:.2}", t.hand_wired.median_gbps),
        format!("{:.2}", t.weft.median_gbps),
        format!("{:.3}", t.weft_over_underlay),
        format!("{:.3}", t.weft_over_hand_wired),
    ];
    let dash = || "-".to_string();
    match &r.convergence.convergence {
        Some(l) => row.extend([f1(l.p50_ms), f1(l.p90_ms), f1(l.p99_ms), f1(l.max_ms)]),
        None => row.extend([dash(), dash(), dash(), dash()]),
    }
    match &r.convergence.withdrawal {
        Some(l) => row.extend([f1(l.p50_ms), f1(l.p99_ms)]),
        None => row.extend([dash(), dash()]),
    }
    row
}

/// The human report: every line of it, for stdout.
pub fn text(rep: &Report) -> Vec<String> {
    let mut lines = vec![
        format!(
            "machine: {} cores, {}, kernel {}",
            rep.machine.nproc, rep.machine.cpu, rep.machine.kernel
        ),
        format!("command: {}", rep.command),
        String::new(),
    ];
    let rows: Vec<Vec<String>> = rep.stores.iter().map(row).collect();
    lines.extend(table(&HEADER, &rows));
    if let Some(r) = rep.stores.first() {
        let t = &r.throughput;
        lines.push(format!(
            "throughput: iperf3 TCP, 1 stream, h1 → h2, Gbit/s, median of {} alternating runs of {} s each; convergence and withdrawal in ms over {} attaches (nearest-rank percentiles)",
            t.rounds, t.seconds_per_run, r.convergence.attaches
        ));
    }
    lines.push(String::new());
    let dns_rows: Vec<Vec<String>> = rep.stores.iter().map(dns_row).collect();
    lines.extend(table(&DNS_HEADER, &dns_rows));
    lines.push("names: ms from `weft attach` (`weft detach`) returning until a container on every host got the address (NXDOMAIN) from its host's resolver, asked every ms".into());
    lines.push(String::new());
    for r in &rep.stores {
        let c = &r.convergence;
        let n = c.attaches;
        lines.push(format!(
            "{}: hand-wired / underlay {:.3}; weft / hand-wired per round {}; `weft attach` took {} ms (p50); when it returned, h2 had the FDB and neighbour entries in {}/{n} and the container's veth was running in {}/{n}; first echo request answered in {}/{n}; timeouts: {} convergence, {} withdrawal; {:.0} s",
            r.store,
            r.throughput.hand_wired_over_underlay,
            r.throughput
                .weft_over_hand_wired_per_round
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            c.attach_p50_ms.map(f1).unwrap_or_else(|| "-".into()),
            c.b_ready_at_return,
            c.links_running_at_return,
            c.first_ping_answered,
            c.convergence_timeouts,
            c.withdrawal_timeouts,
            r.wall_seconds
        ));
        if c.slow > 0 {
            lines.push(format!(
                "{}: {} of {n} attaches took over {SLOW_MS:.0} ms to answer; of them, h2 lacked an entry at return in {} and the container's veth was not yet running in {}",
                r.store, c.slow, c.slow_b_not_ready, c.slow_with_links_not_running
            ));
        }
    }
    lines.push(String::new());
    for t in &rep.targets {
        lines.push(format!(
            "target {:<8} {:<36} {:<8} measured {:<24} {}",
            t.store,
            t.what,
            t.target,
            t.measured,
            if t.met { "met" } else { "MISSED" }
        ));
    }
    lines.push(format!(
        "ratios compare paths measured in this run only; the machine is shared, so absolute figures vary between runs ({:.0} s in all)",
        rep.wall_seconds
    ));
    lines
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn sample(i: u8, conv: Option<f64>, wd: Option<f64>) -> Sample {
        Sample {
            addr: Ipv4Addr::new(10, 201, 1, i),
            convergence_ms: conv,
            pings: 1,
            b_ready_at_return: conv.is_some(),
            links_running_at_return: true,
            withdrawal_ms: wd,
            // Names follow the ping: answered a fifth later, gone as fast as the FDB entry.
            dns_answered_ms: conv.map(|c| c * 1.2),
            dns_gone_ms: wd,
            attach_ms: 80.0,
            returned_at_unix_ms: 0.0,
            detach_returned_at_unix_ms: 0.0,
        }
    }

    fn result(store: &str, conv_ms: f64) -> StoreResult {
        let samples: Vec<Sample> = (1..=10)
            .map(|i| sample(i, Some(conv_ms * f64::from(i) / 5.0), Some(f64::from(i))))
            .chain([sample(11, None, None)])
            .collect();
        StoreResult {
            store: store.into(),
            throughput: Throughput::new(
                3,
                5,
                Path::of(vec![20e9, 18e9, 19e9]),
                Path::of(vec![16e9, 15e9, 17e9]),
                Path::of(vec![15.5e9, 15.4e9, 14e9]),
            ),
            convergence: Convergence::of(&samples),
            samples,
            wall_seconds: 60.0,
        }
    }

    #[test]
    fn throughput_ratios() {
        let t = result("embedded", 1.0).throughput;
        assert_eq!(t.underlay.median_gbps, 19.0);
        assert_eq!(t.hand_wired.median_gbps, 16.0);
        assert!((t.weft_over_hand_wired - 15.4 / 16.0).abs() < 1e-12);
        assert!((t.weft_over_underlay - 15.4 / 19.0).abs() < 1e-12);
        assert_eq!(t.weft_over_hand_wired_per_round.len(), 3);
        assert!((t.weft_over_hand_wired_per_round[2] - 14.0 / 17.0).abs() < 1e-12);
    }

    #[test]
    fn convergence_summary_counts_timeouts_apart() {
        let c = result("embedded", 10.0).convergence;
        assert_eq!(c.attaches, 11);
        assert_eq!(c.convergence_timeouts, 1);
        assert_eq!(c.withdrawal_timeouts, 1);
        let l = c.convergence.unwrap();
        assert_eq!((l.count, l.p50_ms, l.max_ms), (10, 10.0, 20.0));
        assert_eq!(c.first_ping_answered, 10);
        assert_eq!(c.attach_p50_ms, Some(80.0));
        assert_eq!((c.slow, c.slow_b_not_ready), (1, 1), "the timeout is slow");
    }

    #[test]
    fn targets_per_store() {
        let t = targets(&result("embedded", 10.0));
        assert_eq!(t.len(), 4);
        assert!(t[0].met, "15.4 / 16 = 0.9625: {t:?}");
        assert!(t[1].met, "p50 10 ms: {t:?}");
        assert_eq!(t[1].measured, "10.0 ms (1 timed out)");
        let t = targets(&result("embedded", 60.0));
        assert!(!t[1].met, "p50 60 ms > 50: {t:?}");
        let t = targets(&result("etcd", 60.0));
        assert!(t[1].met, "p50 60 ms ≤ 100: {t:?}");
        // One attach never answered: the names targets are missed whatever the rest did.
        assert_eq!(t[2].what, "name answered on every host p99");
        assert_eq!(t[2].measured, "144.0 ms (1 timed out)");
        assert!(!t[2].met && !t[3].met, "{t:?}");
        let mut r = result("etcd", 60.0);
        r.samples.pop();
        r.convergence = Convergence::of(&r.samples);
        let t = targets(&r);
        assert!(t[2].met && t[3].met, "p99 144 ms and 10 ms ≤ 200: {t:?}");
        r.samples[0].dns_gone_ms = Some(250.0);
        r.convergence = Convergence::of(&r.samples);
        assert!(!targets(&r)[3].met, "250 ms > 200");
        assert_eq!(
            dns_row(&r),
            ["etcd", "72.0", "129.6", "144.0", "144.0", "6.0", "10.0", "250.0", "250.0"]
        );
    }

    #[test]
    fn rows_and_table() {
        let r = result("etcd", 60.0);
        let row = row(&r);
        assert_eq!(
            row,
            [
                "etcd", "19.00", "16.00", "15.40", "0.811", "0.963", "60.0", "108.0", "120.0",
                "120.0", "5.0", "10.0"
            ]
        );
        let lines = table(&["a", "bbb"], &[vec!["xx".into(), "y".into()]]);
        assert_eq!(lines, ["a   bbb", "xx  y"]);
        let rep = Report::new(
            "weft lab bench".into(),
            Machine {
                nproc: 2,
                kernel: "6.1".into(),
                cpu: "cpu".into(),
            },
            vec![r],
            61.0,
        );
        let text = text(&rep).join("\n");
        assert!(text.contains("weft/hand-wired"), "{text}");
        assert!(text.contains("convergence p50"), "{text}");
        assert!(text.contains("name answered p50"), "{text}");
        let j = serde_json::to_value(&rep).unwrap();
        assert_eq!(j["stores"][0]["store"], "etcd");
        assert_eq!(j["stores"][0]["convergence"]["convergence"]["p50_ms"], 60.0);
        assert_eq!(j["targets"][1]["target"], "≤ 100 ms");
    }
}
