//! The lab's own 3-member etcd cluster: each member in its netns `P-e1..3` on the underlay
//! (192.0.2.201..203), data under the state dir, run by Debian's /usr/bin/etcd.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns;
use crate::process::{self, Daemon};
use crate::topology::{
    etcd_addr, etcd_client_endpoints, etcd_initial_cluster, etcd_name, Lab, ETCD_CLIENT_PORT,
    ETCD_MEMBERS, ETCD_PEER_PORT,
};
use crate::underlay;

pub const ETCD_BIN: &str = "etcd";
pub const ETCDCTL_BIN: &str = "etcdctl";

/// etcd's command line for member `i`.
pub fn member_args(lab: &Lab, i: u32) -> Vec<String> {
    let a = etcd_addr(i);
    let client = format!("http://{a}:{ETCD_CLIENT_PORT}");
    let peer = format!("http://{a}:{ETCD_PEER_PORT}");
    [
        ("--name", etcd_name(i)),
        ("--data-dir", lab.etcd_data_dir(i).display().to_string()),
        (
            "--listen-client-urls",
            format!("{client},http://127.0.0.1:{ETCD_CLIENT_PORT}"),
        ),
        ("--advertise-client-urls", client),
        ("--listen-peer-urls", peer.clone()),
        ("--initial-advertise-peer-urls", peer),
        ("--initial-cluster", etcd_initial_cluster()),
        (
            "--initial-cluster-token",
            format!("weft-lab-{}", lab.prefix),
        ),
        ("--initial-cluster-state", "new".to_string()),
        ("--logger", "zap".to_string()),
        ("--log-outputs", "stderr".to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

/// Creates the members' namespaces on the underlay (which must exist) and starts etcd in each.
pub async fn create_members(lab: &Lab) -> Result<()> {
    for i in 1..=ETCD_MEMBERS {
        underlay::create_node(lab, &lab.etcd_ns(i), &etcd_name(i), etcd_addr(i), None).await?;
        std::fs::create_dir_all(lab.etcd_data_dir(i))?;
        start_member(lab, i)?;
    }
    Ok(())
}

/// Starts member `i` in its namespace (which must exist), on its data dir; returns the pid.
pub fn start_member(lab: &Lab, i: u32) -> Result<i32> {
    let bin = which(ETCD_BIN)
        .context("etcd is not installed (Debian: apt-get install etcd-server etcd-client)")?;
    let ns = lab.etcd_ns(i);
    let pid = process::spawn_daemon(Daemon {
        netns: &ns,
        program: &bin,
        args: member_args(lab, i),
        env: vec![],
        cwd: &lab.dir,
        log: lab.etcd_log(i),
        pid_file: lab.etcd_pid_file(i),
    })?;
    tracing::debug!(ns, pid, "etcd member started");
    Ok(pid)
}

/// Waits until every member answers `endpoint health`, asked from inside `from_ns`.
pub async fn wait_healthy(lab: &Lab, from_ns: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        for i in 1..=ETCD_MEMBERS {
            if let Some(pid) = process::read_pid_file(&lab.etcd_pid_file(i)) {
                if !process::alive(pid) {
                    bail!(
                        "etcd member e{i} exited; see {} ({})",
                        lab.etcd_log(i).display(),
                        process::log_tail(&lab.etcd_log(i), 3)
                    );
                }
            }
        }
        let last = match health(from_ns).await {
            Ok(()) => return Ok(()),
            Err(e) => format!("{e:#}"),
        };
        if start.elapsed() > timeout {
            bail!(
                "etcd cluster not healthy after {} s ({last}); see {}/etcd-e*.log",
                timeout.as_secs(),
                lab.dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `etcdctl endpoint health` over the three members, run inside `ns`.
pub async fn health(ns: &str) -> Result<()> {
    let out = netns::command(ns, ETCDCTL_BIN)?
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd_client_endpoints(),
            "--dial-timeout",
            "1s",
            "--command-timeout",
            "2s",
            "endpoint",
            "health",
        ])
        .kill_on_drop(true)
        .output()
        .await
        .context("running etcdctl (Debian: apt-get install etcd-client)")?;
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    bail!(
        "etcdctl endpoint health: {}",
        text.lines()
            .filter(|l| l.contains("unhealthy") || l.contains("Error"))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_command_line() {
        let lab = Lab::named("wl").unwrap();
        let args = member_args(&lab, 2).join(" ");
        assert!(args.contains("--name e2"), "{args}");
        assert!(
            args.contains("--data-dir /run/weft/lab/wl/etcd/e2"),
            "{args}"
        );
        assert!(
            args.contains("--listen-peer-urls http://192.0.2.202:2380"),
            "{args}"
        );
        assert!(
            args.contains("--advertise-client-urls http://192.0.2.202:2379"),
            "{args}"
        );
        assert!(
            args.contains("--initial-cluster-token weft-lab-wl"),
            "{args}"
        );
    }
}
