//! One iperf3 TCP run between two namespaces (`iperf3 -J`), one stream or several (`-P`), for the
//! demo and the benchmarks.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::netns;

pub const PORT: u16 = 5201;

/// iperf3 TCP from `client_ns` to a one-off server in `server_ns` listening on `addr`; bits per
/// second received.
pub async fn run(server_ns: &str, client_ns: &str, addr: IpAddr, seconds: u32) -> Result<f64> {
    Ok(run_streams(server_ns, client_ns, addr, seconds, 1)
        .await?
        .bps)
}

/// What one iperf3 run measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IperfResult {
    /// Received, all streams together.
    pub bps: f64,
    /// TCP retransmissions the sender counted (all streams), where iperf3 reports them.
    pub retransmits: Option<u64>,
}

/// Like [`run`], with `streams` parallel TCP streams (`-P`).
pub async fn run_streams(
    server_ns: &str,
    client_ns: &str,
    addr: IpAddr,
    seconds: u32,
    streams: u32,
) -> Result<IperfResult> {
    let port = PORT.to_string();
    let mut server = netns::command(server_ns, "iperf3")?
        .args(["-s", "-1", "-p", &port])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting iperf3 -s")?;
    let mut last = String::new();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let out = netns::command(client_ns, "iperf3")?
            .args([
                "-c",
                &addr.to_string(),
                "-p",
                &port,
                "-t",
                &seconds.to_string(),
                "-P",
                &streams.max(1).to_string(),
                "-J",
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("running iperf3 -c")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            let _ = server.wait().await;
            return parse_iperf_result(&text);
        }
        last = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        if !last.contains("refused") {
            break;
        }
    }
    let _ = server.kill().await;
    bail!("iperf3 {client_ns} → {addr} ({server_ns}) failed: {last}")
}

pub fn parse_iperf(json: &str) -> Result<f64> {
    let v: serde_json::Value =
        serde_json::from_str(json).context("iperf3 -J output is not JSON")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 -J output has no end.sum_received.bits_per_second")
}

/// The received rate and the sender's retransmissions of `iperf3 -J` output.
pub fn parse_iperf_result(json: &str) -> Result<IperfResult> {
    let bps = parse_iperf(json)?;
    let v: serde_json::Value = serde_json::from_str(json)?;
    Ok(IperfResult {
        bps,
        retransmits: v["end"]["sum_sent"]["retransmits"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf_json() {
        let j = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2e9},"sum_received":{"bits_per_second":1.5e10}}}"#;
        assert_eq!(parse_iperf(j).unwrap(), 1.5e10);
        assert!(parse_iperf("{}").is_err());
        let j = r#"{"end":{"sum_sent":{"bits_per_second":2e9,"retransmits":41683},"sum_received":{"bits_per_second":7.27e8}}}"#;
        assert_eq!(
            parse_iperf_result(j).unwrap(),
            IperfResult {
                bps: 7.27e8,
                retransmits: Some(41683)
            }
        );
        assert_eq!(
            parse_iperf_result(r#"{"end":{"sum_received":{"bits_per_second":1.0}}}"#)
                .unwrap()
                .retransmits,
            None
        );
    }
}
