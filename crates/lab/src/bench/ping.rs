//! Ping latency with iputils `ping` between two namespaces: a run of N echo requests at a fixed
//! interval, every reply's round-trip time read from ping's own output (the parser is pure).

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::netns;

/// What one `ping` run printed: the round-trip time of every reply (duplicates left out), and the
/// counts of its summary line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingRun {
    pub rtts_ms: Vec<f64>,
    pub transmitted: u32,
    pub received: u32,
}

/// Parses iputils ping's output: `64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.123 ms` per
/// reply (`time=12 ms` from 100 ms on; `(DUP!)` lines skipped) and the summary
/// `200 packets transmitted, 198 received, …`. Fails when there is no summary.
pub fn parse_ping(out: &str) -> Result<PingRun> {
    let mut rtts_ms = Vec::new();
    let mut summary = None;
    for line in out.lines() {
        if line.contains(" bytes from ") && !line.contains("DUP!") {
            if let Some(t) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("time="))
            {
                // `time=0.123` then ` ms`, or `time<1` on very old versions (not a figure: skipped).
                if let Ok(v) = t.trim_end_matches("ms").parse::<f64>() {
                    rtts_ms.push(v);
                }
            }
        } else if line.contains("packets transmitted") {
            let mut nums = line.split(',').map(|part| {
                part.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u32>().ok())
            });
            let tx = nums.next().flatten();
            let rx = nums.next().flatten();
            if let (Some(tx), Some(rx)) = (tx, rx) {
                summary = Some((tx, rx));
            }
        }
    }
    let (transmitted, received) =
        summary.context("ping printed no `N packets transmitted, M received` line")?;
    Ok(PingRun {
        rtts_ms,
        transmitted,
        received,
    })
}

/// `ping -c COUNT -i INTERVAL -W 1 ADDR` inside `ns`. A run with no reply at all is an error; some
/// loss is reported, not an error.
pub async fn run(ns: &str, addr: IpAddr, count: u32, interval: Duration) -> Result<PingRun> {
    let interval = format!("{:.3}", interval.as_secs_f64());
    let out = netns::command(ns, "ping")?
        .args([
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            &interval,
            "-W",
            "1",
            &addr.to_string(),
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("running ping")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let run = parse_ping(&text).with_context(|| {
        format!(
            "ping {addr} from {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if run.received == 0 {
        bail!(
            "ping {addr} from {ns}: no reply to {} requests",
            run.transmitted
        );
    }
    Ok(run)
}

/// Whether `addr` answers a ping from `ns` within `timeout` (one request a second).
pub async fn reachable(ns: &str, addr: IpAddr, timeout: Duration) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let out = netns::command(ns, "ping")?
            .args(["-n", "-c", "1", "-W", "1", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .context("running ping")?;
        if out.success() {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iputils_output() {
        let out = "PING 10.95.0.2 (10.95.0.2) 56(84) bytes of data.
64 bytes from 10.95.0.2: icmp_seq=1 ttl=64 time=2.80 ms
64 bytes from 10.95.0.2: icmp_seq=2 ttl=64 time=0.179 ms
64 bytes from 10.95.0.2: icmp_seq=2 ttl=64 time=0.250 ms (DUP!)
64 bytes from 10.95.0.2: icmp_seq=4 ttl=64 time=123 ms

--- 10.95.0.2 ping statistics ---
4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 404ms
rtt min/avg/max/mdev = 0.179/1.062/2.797/1.226 ms
";
        let r = parse_ping(out).unwrap();
        assert_eq!(r.rtts_ms, vec![2.80, 0.179, 123.0]);
        assert_eq!((r.transmitted, r.received), (4, 3));
    }

    #[test]
    fn total_loss_and_garbage() {
        let out = "PING 10.0.0.9 (10.0.0.9) 56(84) bytes of data.

--- 10.0.0.9 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 2030ms
";
        let r = parse_ping(out).unwrap();
        assert!(r.rtts_ms.is_empty());
        assert_eq!((r.transmitted, r.received), (3, 0));
        // With errors: `3 packets transmitted, 0 received, +3 errors, …`.
        let r =
            parse_ping("3 packets transmitted, 0 received, +3 errors, 100% packet loss\n").unwrap();
        assert_eq!(r.received, 0);
        assert!(parse_ping("ping: connect: Network is unreachable\n").is_err());
        assert!(parse_ping("").is_err());
    }
}
