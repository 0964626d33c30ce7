//! `weft lab exec NAME -- CMD…`: runs a command inside a lab host or container (or `ul`, `e1`…), with
//! WEFT_STORE, WEFT_HOST and PATH set so that `weft …` there talks to the lab. Passes the command's
//! exit code on.

use anyhow::{bail, Context, Result};

use crate::netns;
use crate::state::{self, LabState};
use crate::topology::{self, Lab};
use crate::weft;
use crate::PrefixArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A host (h1…), a container, `ul` (the underlay bridge), `out` (the outside world, after
    /// `up --outside`) or an etcd member (e1…e3).
    pub name: String,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub prefix: PrefixArg,
}

/// Where a lab name lives: its netns and the host it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub netns: String,
    pub host: Option<String>,
}

pub fn resolve(lab: &Lab, st: &LabState, name: &str) -> Result<Place> {
    if let Some(h) = st.host(name) {
        return Ok(Place {
            netns: h.netns.clone(),
            host: Some(h.name.clone()),
        });
    }
    if let Some(host) = st.containers.get(name) {
        return Ok(Place {
            netns: lab.container_ns(name),
            host: Some(host.clone()),
        });
    }
    if name == "ul" {
        return Ok(Place {
            netns: lab.ul_ns(),
            host: None,
        });
    }
    if name == topology::OUTSIDE_NAME {
        return match &st.outside {
            Some(o) => Ok(Place {
                netns: o.netns.clone(),
                host: None,
            }),
            None => bail!(
                "lab {} has no outside namespace (build it with `weft lab up --outside`)",
                lab.prefix
            ),
        };
    }
    if let Some(e) = st.etcd.iter().find(|e| e.name == name) {
        return Ok(Place {
            netns: e.netns.clone(),
            host: None,
        });
    }
    if topology::parse_host_name(name).is_some() {
        bail!(
            "lab {} has no host {name} (hosts: {})",
            lab.prefix,
            st.host_names().join(", ")
        );
    }
    bail!(
        "lab {} has no host or container named {name:?} (hosts: {}; containers: {})",
        lab.prefix,
        st.host_names().join(", "),
        if st.containers.is_empty() {
            "none".to_string()
        } else {
            st.containers.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    )
}

pub async fn run(args: Args) -> Result<i32> {
    let lab = args.prefix.lab()?;
    let st = state::load(&lab)?;
    let place = resolve(&lab, &st, &args.name)?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut cmd = netns::command(&place.netns, program)?;
    cmd.args(rest)
        .envs(weft::lab_env(&st.store_url, place.host.as_deref())?);
    match &place.host {
        // `weft network create --psk-file` there installs into that host's own directory.
        Some(h) => {
            cmd.env("WEFT_PSK_DIR", lab.psk_dir(h));
        }
        None => {
            cmd.env_remove("WEFT_HOST");
        }
    }
    // Ctrl-C reaches the command (same process group); this process stays to pass its status on.
    let _sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let status = cmd
        .status()
        .await
        .with_context(|| format!("running {program:?} in {}", place.netns))?;
    Ok(exit_code(status))
}

/// A shell's view of how a process ended: its code, or 128 + the signal that killed it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{EtcdEntry, HostEntry, StoreKind, STATE_VERSION};

    fn st() -> LabState {
        LabState {
            version: STATE_VERSION,
            prefix: "wl".into(),
            store_kind: StoreKind::Etcd,
            store_url: "etcd://x:1".into(),
            hosts: vec![HostEntry {
                name: "h1".into(),
                netns: "wl-h1".into(),
                underlay: "192.0.2.11".parse().unwrap(),
                underlay6: None,
                userspace: false,
            }],
            etcd: vec![EtcdEntry {
                name: "e1".into(),
                netns: "wl-e1".into(),
                address: "192.0.2.201".parse().unwrap(),
            }],
            containers: [("web".to_string(), "h1".to_string())].into(),
            created_at_ms: 0,
            lease_ttl: None,
            outside: None,
        }
    }

    #[test]
    fn resolves_names() {
        let lab = Lab::named("wl").unwrap();
        let s = st();
        let host = |n: &str| resolve(&lab, &s, n).unwrap();
        assert_eq!(host("h1").netns, "wl-h1");
        assert_eq!(host("h1").host.as_deref(), Some("h1"));
        assert_eq!(host("web").netns, "wl-c-web");
        assert_eq!(host("web").host.as_deref(), Some("h1"));
        assert_eq!(host("ul").netns, "wl-ul");
        assert_eq!(host("e1").netns, "wl-e1");
        assert!(resolve(&lab, &s, "h2")
            .unwrap_err()
            .to_string()
            .contains("no host h2"));
        assert!(resolve(&lab, &s, "db").is_err());
    }

    #[test]
    fn exit_codes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
    }
}
