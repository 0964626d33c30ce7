//! The Docker benchmark's figures and their report (pure): container start times on a weft network
//! against Docker's own bridge driver on the same host, and throughput between Docker containers on
//! two hosts against the underlay, all from one run.

use serde::Serialize;

use crate::bench::report::Machine;
use crate::bench::stats::{median, Latency};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartTimes {
    pub network: String,
    pub driver: String,
    /// `docker run -d` wall time of each container, in milliseconds.
    pub runs_ms: Vec<f64>,
    pub latency: Option<Latency>,
    pub total_s: f64,
}

impl StartTimes {
    pub fn of(network: &str, driver: &str, runs_ms: Vec<f64>) -> StartTimes {
        StartTimes {
            network: network.into(),
            driver: driver.into(),
            latency: Latency::of(&runs_ms),
            total_s: runs_ms.iter().sum::<f64>() / 1000.0,
            runs_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub containers: usize,
    pub weft: StartTimes,
    pub bridge: StartTimes,
    /// weft's median start time over the bridge driver's.
    pub start_ratio: Option<f64>,
    /// iperf3 TCP, one stream, per round, bits per second.
    pub underlay_bps: Vec<f64>,
    pub docker_weft_bps: Vec<f64>,
    /// Median over median.
    pub throughput_ratio: Option<f64>,
    pub wall_seconds: f64,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        command: String,
        machine: Machine,
        weft: StartTimes,
        bridge: StartTimes,
        underlay_bps: Vec<f64>,
        docker_weft_bps: Vec<f64>,
        wall_seconds: f64,
    ) -> Report {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        Report {
            command,
            machine,
            containers: weft.runs_ms.len(),
            start_ratio: ratio(
                weft.latency.as_ref().map(|l| l.p50_ms),
                bridge.latency.as_ref().map(|l| l.p50_ms),
            ),
            throughput_ratio: ratio(median(&docker_weft_bps), median(&underlay_bps)),
            weft,
            bridge,
            underlay_bps,
            docker_weft_bps,
            wall_seconds,
        }
    }
}

fn opt(v: Option<f64>, scale: f64, digits: usize) -> String {
    v.map(|x| format!("{:.*}", digits, x * scale))
        .unwrap_or_else(|| "-".into())
}

pub fn text(r: &Report) -> Vec<String> {
    let mut out = vec![format!(
        "docker run -d, {} containers per network, alternating (ms):",
        r.containers
    )];
    let rows: Vec<Vec<String>> = [&r.weft, &r.bridge]
        .iter()
        .map(|s| {
            let l = s.latency.as_ref();
            vec![
                s.network.clone(),
                s.driver.clone(),
                opt(l.map(|l| l.p50_ms), 1.0, 0),
                opt(l.map(|l| l.p90_ms), 1.0, 0),
                opt(l.map(|l| l.max_ms), 1.0, 0),
                format!("{:.1}", s.total_s),
            ]
        })
        .collect();
    out.extend(crate::table::lines(
        &["NETWORK", "DRIVER", "P50", "P90", "MAX", "TOTAL_S"],
        &rows,
    ));
    out.push(format!(
        "start time ratio weft/bridge (p50): {}",
        opt(r.start_ratio, 1.0, 2)
    ));
    out.push(format!(
        "throughput, iperf3 TCP 1 stream h1 → h2 (Gbit/s, median of {}): underlay {}, Docker containers on weft {} (ratio {})",
        r.underlay_bps.len(),
        opt(median(&r.underlay_bps), 1e-9, 2),
        opt(median(&r.docker_weft_bps), 1e-9, 2),
        opt(r.throughput_ratio, 1.0, 2)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios() {
        let m = Machine {
            nproc: 2,
            kernel: "k".into(),
            cpu: "c".into(),
        };
        let r = Report::new(
            "x".into(),
            m,
            StartTimes::of("w", "weft", vec![300.0, 500.0, 400.0]),
            StartTimes::of("b", "bridge", vec![200.0, 200.0, 250.0]),
            vec![10e9, 20e9, 30e9],
            vec![8e9, 9e9, 10e9],
            1.0,
        );
        assert_eq!(r.containers, 3);
        assert_eq!(r.start_ratio, Some(2.0));
        assert_eq!(r.throughput_ratio, Some(0.45));
        assert_eq!(r.weft.total_s, 1.2);
        let t = text(&r);
        assert!(
            t.iter()
                .any(|l| l.contains("ratio weft/bridge (p50): 2.00")),
            "{t:?}"
        );
        assert!(
            t.iter()
                .any(|l| l.contains("underlay 20.00, Docker containers on weft 9.00 (ratio 0.45)")),
            "{t:?}"
        );
    }
}
