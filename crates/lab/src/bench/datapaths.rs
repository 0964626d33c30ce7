//! The datapath benchmark's results: per path the throughput runs and the pings, the ratios of the
//! issue with their targets, the human table and the JSON object. Pure.

use serde::Serialize;

use super::iperf::IperfResult;
use super::ping::PingRun;
use super::report::{table, Machine};
use super::stats::{median, percentile};

/// The paths, in table order: (key, label).
pub const UNDERLAY: &str = "underlay";
pub const KERNEL: &str = "kernel";
pub const ENGINE: &str = "engine";
pub const ENCRYPTED: &str = "encrypted";
pub const BORINGTUN: &str = "boringtun";
pub const WIREGUARD_GO: &str = "wireguard-go";
pub const OVS: &str = "ovs";
pub const ENGINE_GRE: &str = "engine-gre";
pub const OVS_GRE: &str = "ovs-gre";

pub fn label(key: &str) -> &'static str {
    match key {
        UNDERLAY => "underlay, host to host",
        KERNEL => "weft kernel VXLAN",
        ENGINE => "weft engine, plain",
        ENCRYPTED => "weft engine, encrypted",
        BORINGTUN => "boringtun",
        WIREGUARD_GO => "wireguard-go",
        OVS => "Open vSwitch userspace VXLAN",
        ENGINE_GRE => "weft engine, GRE",
        OVS_GRE => "Open vSwitch userspace GRE",
        _ => "?",
    }
}

/// Throughput of one path and one stream count: every run, and the median.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Throughput {
    pub runs_bps: Vec<f64>,
    /// The sender's TCP retransmissions, per run.
    pub retransmits: Vec<Option<u64>>,
    pub median_gbps: Option<f64>,
}

impl Throughput {
    pub fn push(&mut self, r: IperfResult) {
        self.runs_bps.push(r.bps);
        self.retransmits.push(r.retransmits);
        self.median_gbps = median(&self.runs_bps).map(|b| b / 1e9);
    }
}

/// Ping round-trip times of one path, every round's pings pooled.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub transmitted: u32,
    pub received: u32,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Each round's median, to show the spread between rounds.
    pub round_p50_ms: Vec<f64>,
    #[serde(skip)]
    pub rtts_ms: Vec<f64>,
}

impl Latency {
    pub fn push(&mut self, r: &PingRun) {
        self.transmitted += r.transmitted;
        self.received += r.received;
        if let Some(m) = median(&r.rtts_ms) {
            self.round_p50_ms.push(m);
        }
        self.rtts_ms.extend_from_slice(&r.rtts_ms);
        self.p50_ms = median(&self.rtts_ms);
        self.p90_ms = percentile(&self.rtts_ms, 90.0);
        self.p99_ms = percentile(&self.rtts_ms, 99.0);
    }

    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received)
    }
}

/// One path's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathResult {
    pub key: String,
    pub label: String,
    /// The implementation's version, where it tells.
    pub version: Option<String>,
    /// Whether the path was built and measured; when not, why.
    pub available: bool,
    pub unavailable: Option<String>,
    /// How it was built / what weft reported of it (datapath per peer, handshake).
    pub detail: Vec<String>,
    pub tcp_1: Throughput,
    /// With `settings.streams` parallel streams (4 by default).
    pub tcp_n: Throughput,
    pub ping: Latency,
    /// Measurements that failed (the path's figures are those of the others).
    pub errors: Vec<String>,
}

impl PathResult {
    pub fn new(key: &str) -> PathResult {
        PathResult {
            key: key.to_string(),
            label: label(key).to_string(),
            version: None,
            available: true,
            unavailable: None,
            detail: Vec::new(),
            tcp_1: Throughput::default(),
            tcp_n: Throughput::default(),
            ping: Latency::default(),
            errors: Vec::new(),
        }
    }

    pub fn not_available(key: &str, why: impl Into<String>) -> PathResult {
        PathResult {
            available: false,
            unavailable: Some(why.into()),
            ..PathResult::new(key)
        }
    }
}

/// Which figure a ratio compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Median iperf3 TCP throughput, one stream.
    Tcp1,
    /// Median iperf3 TCP throughput, parallel streams (`-P`, 4 by default).
    TcpN,
    /// Median ping round-trip time.
    PingP50,
    /// Median ping round-trip time less the underlay's (the latency the path adds).
    PingAddedP50,
}

impl Metric {
    pub fn name(self, streams: u32) -> String {
        match self {
            Metric::Tcp1 => "TCP 1 stream".into(),
            Metric::TcpN => format!("TCP {streams} streams"),
            Metric::PingP50 => "ping p50".into(),
            Metric::PingAddedP50 => "ping p50 - underlay's".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// Context, not a target.
    None,
}

impl Target {
    pub fn met(self, v: f64) -> Option<bool> {
        match self {
            Target::AtLeast(t) => Some(v >= t),
            Target::AtMost(t) => Some(v <= t),
            Target::None => None,
        }
    }

    pub fn text(self) -> String {
        match self {
            Target::AtLeast(t) => format!("≥ {t}"),
            Target::AtMost(t) => format!("≤ {t}"),
            Target::None => "-".into(),
        }
    }
}

/// One ratio of the report: numerator path / denominator path on one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratio {
    pub numerator: String,
    pub denominator: String,
    pub metric: Metric,
    pub value: Option<f64>,
    pub target: Target,
    /// None when there is no target or no value (a path not available).
    pub met: Option<bool>,
}

/// The ratios the issue sets targets for, then context.
pub const RATIOS: [(&str, &str, Metric, Target); 18] = [
    (ENCRYPTED, BORINGTUN, Metric::Tcp1, Target::AtLeast(3.0)),
    (ENCRYPTED, BORINGTUN, Metric::TcpN, Target::AtLeast(3.0)),
    (ENCRYPTED, WIREGUARD_GO, Metric::Tcp1, Target::AtLeast(3.0)),
    (ENCRYPTED, WIREGUARD_GO, Metric::TcpN, Target::AtLeast(3.0)),
    (ENGINE, OVS, Metric::Tcp1, Target::AtLeast(3.0)),
    (ENGINE, OVS, Metric::TcpN, Target::AtLeast(3.0)),
    (ENGINE, KERNEL, Metric::Tcp1, Target::AtLeast(0.3)),
    (ENGINE, KERNEL, Metric::TcpN, Target::AtLeast(0.3)),
    (ENGINE, KERNEL, Metric::PingP50, Target::AtMost(2.0)),
    (ENCRYPTED, KERNEL, Metric::PingP50, Target::AtMost(2.0)),
    (ENGINE, KERNEL, Metric::PingAddedP50, Target::None),
    (ENCRYPTED, KERNEL, Metric::PingAddedP50, Target::None),
    (ENCRYPTED, ENGINE, Metric::Tcp1, Target::None),
    (KERNEL, UNDERLAY, Metric::Tcp1, Target::None),
    (ENGINE_GRE, OVS_GRE, Metric::Tcp1, Target::None),
    (ENGINE_GRE, OVS_GRE, Metric::TcpN, Target::None),
    (ENGINE_GRE, ENGINE, Metric::Tcp1, Target::None),
    (ENGINE_GRE, KERNEL, Metric::PingP50, Target::None),
];

fn figure(paths: &[PathResult], key: &str, metric: Metric) -> Option<f64> {
    let p = paths.iter().find(|p| p.key == key && p.available)?;
    match metric {
        Metric::Tcp1 => p.tcp_1.median_gbps,
        Metric::TcpN => p.tcp_n.median_gbps,
        Metric::PingP50 => p.ping.p50_ms,
        Metric::PingAddedP50 => {
            let u = figure(paths, UNDERLAY, Metric::PingP50)?;
            p.ping.p50_ms.map(|v| v - u)
        }
    }
}

pub fn ratios(paths: &[PathResult]) -> Vec<Ratio> {
    RATIOS
        .iter()
        .map(|&(n, d, metric, target)| {
            let value = match (figure(paths, n, metric), figure(paths, d, metric)) {
                (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
                _ => None,
            };
            Ratio {
                numerator: n.to_string(),
                denominator: d.to_string(),
                metric,
                value,
                target,
                met: value.and_then(|v| target.met(v)),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub rounds: usize,
    pub seconds: u32,
    pub streams: u32,
    pub pings: u32,
    pub ping_interval_ms: u64,
    /// `iperf3 --version`, first line.
    pub iperf3: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub memory_gib: Option<f64>,
    pub settings: Settings,
    pub paths: Vec<PathResult>,
    pub ratios: Vec<Ratio>,
    /// Targets met / with a value / in all.
    pub targets_met: usize,
    pub targets_measured: usize,
    pub targets: usize,
    /// Building everything (labs, networks, anchors), measuring, and the whole run, in seconds.
    pub setup_seconds: f64,
    pub measure_seconds: f64,
    pub wall_seconds: f64,
}

impl Report {
    pub fn new(
        command: String,
        machine: Machine,
        memory_gib: Option<f64>,
        settings: Settings,
        paths: Vec<PathResult>,
        times: (f64, f64, f64),
    ) -> Report {
        let ratios = ratios(&paths);
        let with_target: Vec<&Ratio> = ratios.iter().filter(|r| r.target != Target::None).collect();
        Report {
            command,
            machine,
            memory_gib,
            settings,
            targets_met: with_target.iter().filter(|r| r.met == Some(true)).count(),
            targets_measured: with_target.iter().filter(|r| r.met.is_some()).count(),
            targets: with_target.len(),
            ratios,
            paths,
            setup_seconds: times.0,
            measure_seconds: times.1,
            wall_seconds: times.2,
        }
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| format!("{x:.decimals$}"))
        .unwrap_or_else(|| "-".into())
}

pub fn header(streams: u32) -> Vec<String> {
    [
        "path".to_string(),
        "TCP 1 stream".into(),
        format!("TCP {streams} streams"),
        "ping p50".into(),
        "ping p90".into(),
        "lost".into(),
        "version".into(),
    ]
    .to_vec()
}

/// One row per path: Gbit/s with 2 decimals, milliseconds with 3.
pub fn row(p: &PathResult) -> Vec<String> {
    if !p.available {
        return vec![
            p.label.clone(),
            "not available".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            p.version.clone().unwrap_or_default(),
        ];
    }
    vec![
        p.label.clone(),
        opt(p.tcp_1.median_gbps, 2),
        opt(p.tcp_n.median_gbps, 2),
        opt(p.ping.p50_ms, 3),
        opt(p.ping.p90_ms, 3),
        format!("{}/{}", p.ping.lost(), p.ping.transmitted),
        p.version.clone().unwrap_or_default(),
    ]
}

pub fn ratio_row(r: &Ratio, streams: u32) -> Vec<String> {
    vec![
        format!(
            "{} / {}",
            label_short(&r.numerator),
            label_short(&r.denominator)
        ),
        r.metric.name(streams),
        opt(r.value, 2),
        r.target.text(),
        match (r.target, r.met) {
            (Target::None, _) => "context".into(),
            (_, Some(true)) => "met".into(),
            (_, Some(false)) => "MISSED".into(),
            (_, None) => "n/a".into(),
        },
    ]
}

pub fn label_short(key: &str) -> &str {
    match key {
        ENGINE => "plain engine",
        ENCRYPTED => "encrypted",
        KERNEL => "kernel VXLAN",
        OVS => "OVS userspace",
        other => other,
    }
}

fn gbps_list(t: &Throughput) -> String {
    t.runs_bps
        .iter()
        .map(|b| format!("{:.2}", b / 1e9))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The human report, every line of it, for stdout.
pub fn text(rep: &Report) -> Vec<String> {
    let s = &rep.settings;
    let mut lines = vec![
        format!(
            "machine: {} cores, {}, kernel {}{}",
            rep.machine.nproc,
            rep.machine.cpu,
            rep.machine.kernel,
            rep.memory_gib
                .map(|g| format!(", {g:.0} GiB"))
                .unwrap_or_default()
        ),
        format!("command: {}", rep.command),
        String::new(),
    ];
    let rows: Vec<Vec<String>> = rep.paths.iter().map(row).collect();
    let header = header(s.streams);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    lines.extend(table(&header, &rows));
    lines.push(format!(
        "{} TCP h1 → h2, Gbit/s, median of {} runs of {} s (1 stream, and -P {}); ping: {} per round at {} ms, all rounds pooled, ms; paths interleaved, order rotated each round",
        s.iperf3.as_deref().unwrap_or("iperf3"),
        s.rounds, s.seconds, s.streams, s.pings, s.ping_interval_ms
    ));
    lines.push(String::new());
    for p in &rep.paths {
        if let Some(why) = &p.unavailable {
            lines.push(format!("{}: not available ({why})", p.key));
            continue;
        }
        lines.push(format!(
            "{}: runs 1 stream {} | {} streams {} | ping p50 per round {}{}",
            p.key,
            gbps_list(&p.tcp_1),
            s.streams,
            gbps_list(&p.tcp_n),
            p.ping
                .round_p50_ms
                .iter()
                .map(|m| format!("{m:.3}"))
                .collect::<Vec<_>>()
                .join(" "),
            if p.detail.is_empty() {
                String::new()
            } else {
                format!(" | {}", p.detail.join("; "))
            }
        ));
        for e in &p.errors {
            lines.push(format!("{}: a measurement failed: {e}", p.key));
        }
    }
    lines.push(String::new());
    let rows: Vec<Vec<String>> = rep.ratios.iter().map(|r| ratio_row(r, s.streams)).collect();
    lines.extend(table(&["ratio", "of", "value", "target", "verdict"], &rows));
    lines.push(String::new());
    lines.push(format!(
        "targets: {} met of {} measured ({} in all); ratios compare paths of this run only. Setup {:.0} s, measuring {:.0} s, {:.0} s in all",
        rep.targets_met, rep.targets_measured, rep.targets, rep.setup_seconds, rep.measure_seconds, rep.wall_seconds
    ));
    lines
}

/// MemTotal of /proc/meminfo in GiB.
pub fn mem_total_gib(meminfo: &str) -> Option<f64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let kib: f64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / (1024.0 * 1024.0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(key: &str, tcp1: &[f64], tcp4: &[f64], rtts: &[f64]) -> PathResult {
        let mut p = PathResult::new(key);
        for &g in tcp1 {
            p.tcp_1.push(IperfResult {
                bps: g * 1e9,
                retransmits: Some(1),
            });
        }
        for &g in tcp4 {
            p.tcp_n.push(IperfResult {
                bps: g * 1e9,
                retransmits: None,
            });
        }
        p.ping.push(&PingRun {
            rtts_ms: rtts.to_vec(),
            transmitted: rtts.len() as u32 + 1,
            received: rtts.len() as u32,
        });
        p
    }

    fn paths(encrypted: bool) -> Vec<PathResult> {
        vec![
            path(UNDERLAY, &[16.0], &[18.0], &[0.05, 0.05, 0.05]),
            path(KERNEL, &[14.0, 13.0, 15.0], &[15.0], &[0.1, 0.1, 0.1]),
            path(ENGINE, &[7.0, 8.0, 6.0], &[9.0], &[0.15, 0.2, 0.25]),
            if encrypted {
                path(ENCRYPTED, &[3.0], &[3.3], &[0.3, 0.3, 0.3])
            } else {
                PathResult::not_available(ENCRYPTED, "attach refused: no key")
            },
            path(BORINGTUN, &[0.5], &[0.6], &[0.2]),
            path(WIREGUARD_GO, &[1.0], &[1.0], &[0.2]),
            path(OVS, &[0.8], &[0.9], &[0.5]),
        ]
    }

    fn find<'a>(rs: &'a [Ratio], n: &str, d: &str, m: Metric) -> &'a Ratio {
        rs.iter()
            .find(|r| r.numerator == n && r.denominator == d && r.metric == m)
            .unwrap()
    }

    #[test]
    fn throughput_and_latency_summaries() {
        let p = path(KERNEL, &[14.0, 13.0, 15.0], &[], &[0.3, 0.1, 0.2]);
        assert_eq!(p.tcp_1.median_gbps, Some(14.0));
        assert_eq!(p.tcp_1.retransmits, vec![Some(1); 3]);
        assert_eq!(p.tcp_n.median_gbps, None);
        assert_eq!(p.ping.p50_ms, Some(0.2));
        assert_eq!(p.ping.lost(), 1);
        let mut l = p.ping.clone();
        l.push(&PingRun {
            rtts_ms: vec![1.0, 1.0, 1.0],
            transmitted: 3,
            received: 3,
        });
        assert_eq!(l.round_p50_ms, vec![0.2, 1.0]);
        assert_eq!(l.p50_ms, Some(0.65));
        assert_eq!((l.transmitted, l.received), (7, 6));
    }

    #[test]
    fn ratios_and_targets() {
        let rs = ratios(&paths(true));
        let r = find(&rs, ENCRYPTED, BORINGTUN, Metric::Tcp1);
        assert_eq!(r.value, Some(6.0));
        assert_eq!(r.met, Some(true));
        let r = find(&rs, ENCRYPTED, WIREGUARD_GO, Metric::TcpN);
        assert!((r.value.unwrap() - 3.3).abs() < 1e-9);
        let r = find(&rs, ENGINE, OVS, Metric::Tcp1);
        assert!((r.value.unwrap() - 8.75).abs() < 1e-9);
        let r = find(&rs, ENGINE, KERNEL, Metric::Tcp1);
        assert_eq!(r.value, Some(0.5));
        assert_eq!(r.met, Some(true));
        let r = find(&rs, ENGINE, KERNEL, Metric::PingP50);
        assert!((r.value.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(r.met, Some(true), "≤ 2 includes 2");
        let r = find(&rs, ENCRYPTED, KERNEL, Metric::PingP50);
        assert_eq!(r.met, Some(false));
        // Added latency: (0.2 - 0.05) / (0.1 - 0.05) = 3, context only.
        let r = find(&rs, ENGINE, KERNEL, Metric::PingAddedP50);
        assert!((r.value.unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(r.met, None);
        let rep = Report::new(
            "weft lab bench-datapaths".into(),
            Machine {
                nproc: 2,
                kernel: "6".into(),
                cpu: "cpu".into(),
            },
            Some(24.0),
            Settings {
                rounds: 3,
                seconds: 5,
                streams: 4,
                pings: 200,
                ping_interval_ms: 10,
                iperf3: None,
            },
            paths(true),
            (1.0, 2.0, 3.0),
        );
        assert_eq!((rep.targets, rep.targets_measured), (10, 10));
        assert_eq!(rep.targets_met, 9);
    }

    #[test]
    fn unavailable_encrypted_leaves_its_ratios_open() {
        let ps = paths(false);
        let rs = ratios(&ps);
        for r in rs.iter().filter(|r| r.numerator == ENCRYPTED) {
            assert_eq!((r.value, r.met), (None, None), "{r:?}");
        }
        assert_eq!(find(&rs, ENGINE, OVS, Metric::TcpN).met, Some(true));
        let rep = Report::new(
            "c".into(),
            Machine {
                nproc: 2,
                kernel: "k".into(),
                cpu: "c".into(),
            },
            None,
            Settings {
                rounds: 1,
                seconds: 1,
                streams: 4,
                pings: 10,
                ping_interval_ms: 10,
                iperf3: Some("iperf 3.12".into()),
            },
            ps,
            (0.0, 0.0, 0.0),
        );
        assert_eq!((rep.targets_measured, rep.targets_met), (5, 5));
        let lines = text(&rep);
        assert!(
            lines
                .iter()
                .any(|l| l == "encrypted: not available (attach refused: no key)"),
            "{lines:#?}"
        );
        let row = lines
            .iter()
            .find(|l| l.starts_with("weft engine, encrypted"))
            .unwrap();
        assert!(row.contains("not available"), "{row}");
        let ratio = lines
            .iter()
            .find(|l| l.starts_with("encrypted / boringtun"))
            .unwrap();
        assert!(ratio.contains(" - ") && ratio.ends_with("n/a"), "{ratio}");
        let json = serde_json::to_value(&rep).unwrap();
        assert_eq!(json["paths"][3]["available"], false);
        assert_eq!(json["ratios"][0]["value"], serde_json::Value::Null);
        assert_eq!(json["ratios"][0]["target"]["at_least"], 3.0);
        assert!(json["paths"][0]["ping"].get("rtts_ms").is_none());
    }

    #[test]
    fn rows_and_memory() {
        let p = path(ENGINE, &[7.123], &[9.0], &[0.1234]);
        assert_eq!(
            row(&p),
            [
                "weft engine, plain",
                "7.12",
                "9.00",
                "0.123",
                "0.123",
                "1/2",
                ""
            ]
        );
        assert_eq!(
            mem_total_gib("MemTotal:       25165824 kB\nMemFree: 1 kB\n"),
            Some(24.0)
        );
        assert_eq!(mem_total_gib("MemFree: 1 kB\n"), None);
    }
}
