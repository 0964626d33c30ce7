//! Running weft itself inside the lab: the current executable IS the weft binary. Queries of the
//! store go through `weft status --json` / `weft endpoints --json` run inside a host netns, so that an
//! etcd store on the lab's underlay is reachable and the lab shares the CLI's view of the records.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use weft_model::Endpoint;

use crate::netns;
use crate::state::LabState;
use crate::topology::Lab;

/// The weft binary (this process's executable).
pub fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("finding the weft executable (current_exe)")
}

/// PATH with the weft binary's directory first, so that `weft` inside the lab is this weft.
pub fn path_with_exe() -> Result<OsString> {
    let exe = exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("weft executable {} has no directory", exe.display()))?
        .to_path_buf();
    let mut dirs = vec![dir.clone()];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| d != &dir));
    }
    std::env::join_paths(dirs).context("building PATH")
}

/// The environment of anything the lab runs: the lab's store, the host identity, PATH with weft.
pub fn lab_env(store_url: &str, host: Option<&str>) -> Result<Vec<(OsString, OsString)>> {
    let mut env = vec![
        ("WEFT_STORE".into(), store_url.into()),
        ("PATH".into(), path_with_exe()?),
    ];
    if let Some(h) = host {
        env.push(("WEFT_HOST".into(), h.into()));
    }
    Ok(env)
}

/// The namespace to ask the store from: the first host (on the underlay, so etcd is reachable).
pub fn query_ns(lab: &Lab, state: &LabState) -> String {
    state
        .hosts
        .first()
        .map(|h| h.netns.clone())
        .unwrap_or_else(|| lab.host_ns(1))
}

/// Runs `weft ARGS…` inside `ns` as host `host` and returns its stdout; an error carries the last line
/// of its stderr.
pub async fn output(
    ns: &str,
    store_url: &str,
    host: Option<&str>,
    args: &[&str],
) -> Result<String> {
    let out = netns::command(ns, exe()?)?
        .args(args)
        .envs(lab_env(store_url, host)?)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running weft {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`weft {}` in {ns} failed: {}",
            args.join(" "),
            last_line(&String::from_utf8_lossy(&out.stderr))
                .map(|l| l.strip_prefix("weft: error: ").unwrap_or(l))
                .unwrap_or("no message")
        );
    }
    String::from_utf8(out.stdout).context("weft printed something that is not UTF-8")
}

pub fn last_line(s: &str) -> Option<&str> {
    s.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

/// A host as `weft status --json` lists it (only the fields the lab reads).
#[derive(Debug, Clone, Deserialize)]
pub struct StatusHost {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub state: String,
}

#[derive(Debug, Deserialize)]
struct Status {
    hosts: Vec<StatusHost>,
}

pub fn parse_status_hosts(json: &str) -> Result<Vec<StatusHost>> {
    let s: Status = serde_json::from_str(json).context("parsing `weft status --json`")?;
    Ok(s.hosts)
}

pub fn parse_endpoints(json: &str) -> Result<Vec<Endpoint>> {
    serde_json::from_str(json).context("parsing `weft endpoints --json`")
}

/// Hosts registered in the lab's store.
pub async fn registered_hosts(lab: &Lab, state: &LabState) -> Result<Vec<StatusHost>> {
    let out = output(
        &query_ns(lab, state),
        &state.store_url,
        None,
        &["status", "--json"],
    )
    .await?;
    parse_status_hosts(&out)
}

/// Every endpoint in the lab's store.
pub async fn endpoints(lab: &Lab, state: &LabState) -> Result<Vec<Endpoint>> {
    let out = output(
        &query_ns(lab, state),
        &state.store_url,
        None,
        &["endpoints", "--json"],
    )
    .await?;
    parse_endpoints(&out)
}

/// Whether an endpoint belongs to the lab container `name` (attach records the container as given:
/// the netns path, or its name).
pub fn is_container_endpoint(lab: &Lab, e: &Endpoint, name: &str) -> bool {
    let ns = lab.container_ns(name);
    let path = netns::path(&ns);
    e.container == ns || std::path::Path::new(&e.container) == path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json() {
        let j = r#"{"store":"file:///x","revision":3,"hosts":[
            {"schema":1,"id":"h1","name":"h1","underlay":"192.0.2.11","vxlan_port":4789,
             "agent_version":"0.1.0","started_at_ms":1,"lease_ttl_s":9.5,"state":"alive","endpoints":0}],
            "networks":[]}"#;
        let hosts = parse_status_hosts(j).unwrap();
        assert_eq!(hosts[0].id, "h1");
        assert_eq!(hosts[0].state, "alive");
    }

    #[test]
    fn container_endpoints() {
        let lab = Lab::named("wl").unwrap();
        let j = r#"[{"schema":1,"id":"e1","network":"demo","host":"h1","container":"/run/netns/wl-c-web",
            "ifname":"eth0","host_ifname":"vw1","mac":"02:00:00:00:00:01","ipv4":"10.0.0.2/24"}]"#;
        let eps = parse_endpoints(j).unwrap();
        assert!(is_container_endpoint(&lab, &eps[0], "web"));
        assert!(!is_container_endpoint(&lab, &eps[0], "we"));
        assert_eq!(
            last_line("a\nweft: error: boom\n\n"),
            Some("weft: error: boom")
        );
    }
}
