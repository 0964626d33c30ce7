//! One iperf3 TCP single-stream run between two namespaces (`iperf3 -J`, parsed by the demo's
//! `parse_iperf`).

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cmd::demo::parse_iperf;
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
