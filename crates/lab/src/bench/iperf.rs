//! One iperf3 TCP single-stream run between two namespaces (`iperf3 -J`), for the demo and the
//! benchmark.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::netns;

pub const PORT: u16 = 5201;

/// iperf3 TCP from `client_ns` to a one-off server in `server_ns` listening on `addr`; bits per
/// second received.
pub async fn run(server_ns: &str, client_ns: &str, addr: IpAddr, seconds: u32) -> Result<f64> {
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
            return parse_iperf(&text);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf_json() {
        let j = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2e9},"sum_received":{"bits_per_second":1.5e10}}}"#;
        assert_eq!(parse_iperf(j).unwrap(), 1.5e10);
        assert!(parse_iperf("{}").is_err());
    }
}
