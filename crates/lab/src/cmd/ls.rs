//! `weft lab ls [--json]`: the lab's hosts (underlay address, agent process, host record in the
//! store), etcd members, and containers with their host, networks and addresses.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::netns;
use crate::process;
use crate::state::{self, LabState, StoreKind};
use crate::topology::Lab;
use crate::weft;
use crate::PrefixArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub prefix: PrefixArg,
}

#[derive(Debug, Serialize)]
pub struct Listing {
    pub prefix: String,
    pub store: String,
    pub store_kind: StoreKind,
    /// Why the store could not be read (then `registered` and the endpoints are unknown).
    pub store_error: Option<String>,
    pub hosts: Vec<HostRow>,
    pub etcd: Vec<EtcdRow>,
    pub containers: Vec<ContainerRow>,
    /// The outside world (`up --outside`).
    pub outside: Option<crate::state::OutsideEntry>,
}

#[derive(Debug, Serialize)]
pub struct HostRow {
    pub name: String,
    pub netns: String,
    pub underlay: String,
    pub underlay6: Option<String>,
    pub agent_pid: Option<i32>,
    pub agent_alive: bool,
    /// Whether its host record is in the store (None: the store could not be read).
    pub registered: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct EtcdRow {
    pub name: String,
    pub netns: String,
    pub address: String,
    pub pid: Option<i32>,
    pub alive: bool,
}

#[derive(Debug, Serialize)]
pub struct ContainerRow {
    pub name: String,
    pub host: String,
    pub netns: String,
    pub netns_exists: bool,
    pub endpoints: Vec<EndpointRow>,
}

#[derive(Debug, Serialize)]
pub struct EndpointRow {
    pub network: String,
    pub ifname: String,
    pub mac: String,
    pub ipv4: String,
    pub ipv6: Option<String>,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = args.prefix.lab()?;
    let st = state::load(&lab)?;
    let l = listing(&lab, &st).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&l)?);
    } else {
        print_text(&l);
    }
    Ok(())
}

pub async fn listing(lab: &Lab, st: &LabState) -> Listing {
    let timeout = Duration::from_secs(10);
    let q = async {
        let hosts = weft::registered_hosts(lab, st).await?;
        let eps = weft::endpoints(lab, st).await?;
        anyhow::Ok((hosts, eps))
    };
    let (reg, eps, store_error) = match tokio::time::timeout(timeout, q).await {
        Ok(Ok((h, e))) => (Some(h), e, None),
        Ok(Err(e)) => (None, vec![], Some(format!("{e:#}"))),
        Err(_) => (
            None,
            vec![],
            Some("the store did not answer within 10 s".into()),
        ),
    };
    let hosts = st
        .hosts
        .iter()
        .map(|h| {
            let pid = process::read_pid_file(&lab.agent_pid_file(&h.name));
            HostRow {
                name: h.name.clone(),
                netns: h.netns.clone(),
                underlay: h.underlay.to_string(),
                underlay6: h.underlay6.map(|a| a.to_string()),
                agent_pid: pid,
                agent_alive: pid.is_some_and(process::alive),
                registered: reg
                    .as_ref()
                    .map(|r| r.iter().any(|x| x.id == h.name || x.name == h.name)),
            }
        })
        .collect();
    let etcd = st
        .etcd
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let pid = process::read_pid_file(&lab.etcd_pid_file(i as u32 + 1));
            EtcdRow {
                name: e.name.clone(),
                netns: e.netns.clone(),
                address: e.address.to_string(),
                pid,
                alive: pid.is_some_and(process::alive),
            }
        })
        .collect();
    let containers = st
        .containers
        .iter()
        .map(|(name, host)| {
            let ns = lab.container_ns(name);
            ContainerRow {
                name: name.clone(),
                host: host.clone(),
                netns_exists: netns::exists(&ns),
                netns: ns,
                endpoints: eps
                    .iter()
                    .filter(|e| weft::is_container_endpoint(lab, e, name))
                    .map(|e| EndpointRow {
                        network: e.network.clone(),
                        ifname: e.ifname.clone(),
                        mac: e.mac.to_string(),
                        ipv4: e.ipv4.to_string(),
                        ipv6: e.ipv6.map(|a| a.to_string()),
                    })
                    .collect(),
            }
        })
        .collect();
    Listing {
        prefix: st.prefix.clone(),
        store: st.store_url.clone(),
        store_kind: st.store_kind,
        store_error,
        hosts,
        etcd,
        containers,
        outside: st.outside.clone(),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

pub fn print_text(l: &Listing) {
    println!("lab {}: store {}", l.prefix, l.store);
    if let Some(e) = &l.store_error {
        println!("store not readable: {e}");
    }
    println!();
    let rows: Vec<Vec<String>> = l
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.name.clone(),
                h.underlay.clone(),
                h.underlay6.clone().unwrap_or_else(|| "-".into()),
                h.netns.clone(),
                match (h.agent_pid, h.agent_alive) {
                    (Some(p), true) => format!("running (pid {p})"),
                    (Some(p), false) => format!("exited (pid {p})"),
                    (None, _) => "not started".into(),
                },
                h.registered.map(yes_no).unwrap_or_else(|| "?".into()),
            ]
        })
        .collect();
    crate::table::print(
        &[
            "HOST",
            "UNDERLAY",
            "UNDERLAY6",
            "NETNS",
            "AGENT",
            "REGISTERED",
        ],
        &rows,
    );
    if let Some(o) = &l.outside {
        let addrs: Vec<String> = o
            .addresses
            .iter()
            .map(|a| a.to_string())
            .chain(o.addresses6.iter().map(|a| a.to_string()))
            .collect();
        let at: Vec<String> = std::iter::once(o.underlay.to_string())
            .chain(o.underlay6.map(|a| a.to_string()))
            .collect();
        println!(
            "outside: {} at {} holding {}",
            o.netns,
            at.join(", "),
            addrs.join(", ")
        );
    }
    if !l.etcd.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = l
            .etcd
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.address.clone(),
                    e.netns.clone(),
                    if e.alive { "running" } else { "exited" }.into(),
                ]
            })
            .collect();
        crate::table::print(&["ETCD", "ADDRESS", "NETNS", "STATE"], &rows);
    }
    println!();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for c in &l.containers {
        if c.endpoints.is_empty() {
            rows.push(vec![
                c.name.clone(),
                c.host.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for e in &c.endpoints {
            rows.push(vec![
                c.name.clone(),
                c.host.clone(),
                e.network.clone(),
                e.ipv4.clone(),
                e.ipv6.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    crate::table::print(&["CONTAINER", "HOST", "NETWORK", "IPV4", "IPV6"], &rows);
}
