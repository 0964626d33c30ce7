//! `weft lab up`: the underlay, N hosts each running `weft agent`, the store (embedded file, the lab's
//! own etcd cluster, or an existing one); waits until every agent has registered. Undoes everything
//! on failure or Ctrl-C.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::etcd;
use crate::process::{self, Daemon};
use crate::progress::Progress;
use crate::state::{self, EtcdEntry, HostEntry, LabState, OutsideEntry, StoreKind, STATE_VERSION};
use crate::teardown;
use crate::topology::{self, Lab, STATE_ROOT};
use crate::underlay;
use crate::weft;
use crate::PrefixArg;

pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(20);
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of hosts (h1…hN).
    #[arg(long, default_value_t = 3)]
    pub hosts: u32,
    /// The lab's store: `embedded` (a file in the lab's state dir), `etcd` (a 3-member etcd cluster
    /// started in the lab), or the URL of an existing store reachable from the lab's hosts.
    #[arg(long, default_value = "embedded")]
    pub store: String,
    /// Passed on to each agent's --lease-ttl.
    #[arg(long)]
    pub lease_ttl: Option<u64>,
    /// Hosts whose agents use weft's userspace engine instead of the kernel's VXLAN
    /// (`weft agent --datapath userspace`), e.g. `h2,h3`.
    #[arg(long, value_delimiter = ',')]
    pub userspace_hosts: Vec<String>,
    /// Also build `out`, the outside world: a namespace on the underlay at 192.0.2.254 and
    /// 2001:db8::254 holding 198.51.100.1 and .2 and 2001:db8:100::1 and ::2, which every host
    /// routes 198.51.100.0/24 and 2001:db8:100::/64 to (`weft lab exec out -- …`).
    #[arg(long)]
    pub outside: bool,
    #[command(flatten)]
    pub prefix: PrefixArg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    Embedded,
    Etcd,
    External(String),
}

impl StoreChoice {
    pub fn parse(s: &str) -> Result<StoreChoice> {
        match s {
            "embedded" => Ok(StoreChoice::Embedded),
            "etcd" => Ok(StoreChoice::Etcd),
            u if u.starts_with("etcd://") || u.starts_with("file:///") => {
                Ok(StoreChoice::External(u.to_string()))
            }
            other => bail!(
                "invalid --store {other:?}: use embedded, etcd (a cluster started in the lab) or a URL (etcd://host:port,… or file:///path.db)"
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub hosts: u32,
    pub userspace_hosts: Vec<String>,
    pub store: StoreChoice,
    pub lease_ttl: Option<u64>,
    pub outside: bool,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = args.prefix.lab()?;
    let opts = UpOptions {
        hosts: args.hosts,
        userspace_hosts: args.userspace_hosts,
        store: StoreChoice::parse(&args.store)?,
        lease_ttl: args.lease_ttl,
        outside: args.outside,
    };
    let p = Progress::new(lab.prefix.as_str());
    let st = up(&lab, &opts, &p).await?;
    p.step(format!(
        "up: {} hosts on {} (store {}); try `weft lab exec h1 --prefix {} -- weft status`",
        st.hosts.len(),
        "192.0.2.0/24 and 2001:db8::/64",
        st.store_url,
        lab.prefix
    ));
    Ok(())
}

/// Builds a lab; on failure or Ctrl-C removes whatever it built.
pub async fn up(lab: &Lab, opts: &UpOptions, p: &Progress) -> Result<LabState> {
    topology::check_hosts(opts.hosts)?;
    for h in &opts.userspace_hosts {
        let known = (1..=opts.hosts).any(|n| &topology::host_name(n) == h);
        if !known {
            bail!(
                "--userspace-hosts names {h:?}, which is not one of h1…h{}",
                opts.hosts
            );
        }
    }
    let exe = weft::exe()?;
    if opts.store == StoreChoice::Etcd {
        etcd::which(etcd::ETCD_BIN).ok_or_else(|| {
            anyhow!("--store etcd needs etcd (Debian: apt-get install etcd-server etcd-client)")
        })?;
    }
    claim(lab)?;
    // From here on the prefix is ours: a failure removes everything of it.
    let guard = teardown::Guard::new(lab);
    let result = tokio::select! {
        r = build(lab, opts, &exe, p) => r,
        _ = tokio::signal::ctrl_c() => Err(teardown::Interrupted.into()),
    };
    guard.disarm();
    match result {
        Ok(st) => Ok(st),
        Err(e) => {
            p.step("failed; removing what was built");
            let l = lab.clone();
            Err(
                tokio::task::spawn_blocking(move || teardown::undo_keeping_logs(&l, e))
                    .await
                    .unwrap_or_else(|_| anyhow!("cleanup panicked")),
            )
        }
    }
}

/// Refuses when anything of the prefix exists; else creates its state dir (atomically, so that two
/// concurrent `up` of one prefix cannot both proceed).
fn claim(lab: &Lab) -> Result<()> {
    let left = teardown::leftovers(lab)?;
    if !left.is_empty() {
        bail!(
            "a lab with prefix {} exists ({}); use it, or remove it with `weft lab down --prefix {}`",
            lab.prefix,
            left.join(", "),
            lab.prefix
        );
    }
    std::fs::create_dir_all(STATE_ROOT).with_context(|| format!("creating {STATE_ROOT}"))?;
    match std::fs::create_dir(&lab.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "a lab with prefix {} is being created by another command",
            lab.prefix
        ),
        Err(e) => Err(e).with_context(|| format!("creating {}", lab.dir.display())),
    }
}

async fn build(
    lab: &Lab,
    opts: &UpOptions,
    exe: &std::path::Path,
    p: &Progress,
) -> Result<LabState> {
    p.step(format!(
        "underlay: netns {} with bridge {}",
        lab.ul_ns(),
        topology::UNDERLAY_BRIDGE
    ));
    underlay::create_underlay(lab).await?;
    let mut hosts = Vec::new();
    for n in 1..=opts.hosts {
        let name = topology::host_name(n);
        let ns = lab.host_ns(n);
        let addr = topology::host_addr(n);
        let addr6 = topology::host_addr6(n);
        p.step(format!(
            "host {name}: netns {ns}, {}={addr}/24 {addr6}/{}",
            topology::UNDERLAY_IFNAME,
            topology::UNDERLAY6_PREFIX_LEN
        ));
        underlay::create_node(lab, &ns, &name, addr, Some(addr6)).await?;
        hosts.push(HostEntry {
            userspace: opts.userspace_hosts.contains(&name),
            name,
            netns: ns,
            underlay: addr,
            underlay6: Some(addr6),
        });
    }
    let outside = if opts.outside {
        let ns = lab.outside_ns();
        p.step(format!(
            "outside: netns {ns}, {}={}/24 {}/{} holding {}, {}",
            topology::UNDERLAY_IFNAME,
            topology::OUTSIDE_UNDERLAY,
            topology::OUTSIDE_UNDERLAY6,
            topology::UNDERLAY6_PREFIX_LEN,
            topology::OUTSIDE_ADDRS.map(|a| a.to_string()).join(", "),
            topology::OUTSIDE_ADDRS6.map(|a| a.to_string()).join(", ")
        ));
        underlay::create_outside(lab, &hosts).await?;
        Some(OutsideEntry {
            netns: ns,
            underlay: topology::OUTSIDE_UNDERLAY,
            addresses: topology::OUTSIDE_ADDRS.to_vec(),
            underlay6: Some(topology::OUTSIDE_UNDERLAY6),
            addresses6: topology::OUTSIDE_ADDRS6.to_vec(),
        })
    } else {
        None
    };
    let (store_kind, store_url, etcd_members) = match &opts.store {
        StoreChoice::Embedded => (StoreKind::Embedded, lab.embedded_store_url(), vec![]),
        StoreChoice::External(u) => (StoreKind::External, u.clone(), vec![]),
        StoreChoice::Etcd => {
            p.step(format!(
                "etcd: 3 members in {}…{} ({}…)",
                lab.etcd_ns(1),
                lab.etcd_ns(topology::ETCD_MEMBERS),
                topology::etcd_addr(1)
            ));
            etcd::create_members(lab).await?;
            etcd::wait_healthy(lab, &hosts[0].netns, ETCD_TIMEOUT).await?;
            p.step("etcd: 3 members healthy");
            let members = (1..=topology::ETCD_MEMBERS)
                .map(|i| EtcdEntry {
                    name: topology::etcd_name(i),
                    netns: lab.etcd_ns(i),
                    address: topology::etcd_addr(i),
                })
                .collect();
            (StoreKind::Etcd, topology::etcd_store_url(), members)
        }
    };
    let st = LabState {
        version: STATE_VERSION,
        prefix: lab.prefix.to_string(),
        store_kind,
        store_url: store_url.clone(),
        hosts: hosts.clone(),
        etcd: etcd_members,
        containers: Default::default(),
        created_at_ms: now_ms(),
        lease_ttl: opts.lease_ttl,
        outside,
    };
    state::save(lab, &st)?;
    for h in &hosts {
        let pid = start_agent(lab, exe, h, &st)?;
        p.step(format!(
            "agent {}: pid {pid}, log {}",
            h.name,
            lab.agent_log(&h.name).display()
        ));
    }
    wait_registered(lab, &st, REGISTER_TIMEOUT).await?;
    p.step(format!("all {} agents registered", hosts.len()));
    Ok(st)
}

/// `weft agent --store URL --underlay ADDR --name hN` inside the host's netns, detached.
pub fn start_agent(lab: &Lab, exe: &std::path::Path, h: &HostEntry, st: &LabState) -> Result<i32> {
    let store_url = st.store_url.as_str();
    let mut args = vec![
        "agent".to_string(),
        "--store".into(),
        store_url.to_string(),
        "--underlay".into(),
        h.underlay.to_string(),
        "--name".into(),
        h.name.clone(),
    ];
    if let Some(t) = st.lease_ttl {
        args.extend(["--lease-ttl".to_string(), t.to_string()]);
    }
    if h.userspace {
        args.extend(["--datapath".to_string(), "userspace".to_string()]);
    }
    args.extend(dns_upstream_args(st.outside.as_ref()));
    // The lab's own key files, so that two labs' h1 never share a key and `down` removes them.
    let key = lab.dir.join("keys").join(format!("{}.key", h.name));
    args.extend(["--key-file".to_string(), key.display().to_string()]);
    args.extend([
        "--psk-dir".to_string(),
        lab.psk_dir(&h.name).display().to_string(),
        "--stats-file".to_string(),
        lab.stats_file(&h.name).display().to_string(),
        // Each host's own Docker plugin socket and Docker API (see `weft lab docker`).
        "--docker-plugin".to_string(),
        lab.docker_plugins_dir(&h.name)
            .join("weft.sock")
            .display()
            .to_string(),
        "--docker-api".to_string(),
        lab.docker_api_socket(&h.name).display().to_string(),
    ]);
    let env = weft::lab_env(store_url, Some(&h.name))?
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    process::spawn_daemon(Daemon {
        netns: &h.netns,
        program: exe,
        args,
        env,
        cwd: &lab.dir,
        log: lab.agent_log(&h.name),
        pid_file: lab.agent_pid_file(&h.name),
    })
}

/// Where lab agents forward names outside weft: to the lab's outside (where a test runs a
/// resolver), else nowhere. Never to the machine's real resolvers.
pub fn dns_upstream_args(outside: Option<&crate::state::OutsideEntry>) -> [String; 2] {
    let to = outside.map_or_else(|| "none".to_string(), |o| o.underlay.to_string());
    ["--dns-upstream".to_string(), to]
}

/// Waits until every host's record is in the store; fails early, naming the log, when an agent exits.
pub async fn wait_registered(lab: &Lab, st: &LabState, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last_err = None;
    loop {
        for h in &st.hosts {
            let pid = process::read_pid_file(&lab.agent_pid_file(&h.name));
            if !pid.is_some_and(process::alive) {
                let log = lab.agent_log(&h.name);
                bail!(
                    "the agent on {} exited; see {} (last lines: {})",
                    h.name,
                    log.display(),
                    process::log_tail(&log, 3)
                );
            }
        }
        let missing: Vec<&HostEntry> = match weft::registered_hosts(lab, st).await {
            Ok(reg) => st
                .hosts
                .iter()
                .filter(|h| !reg.iter().any(|r| r.id == h.name || r.name == h.name))
                .collect(),
            Err(e) => {
                last_err = Some(e);
                st.hosts.iter().collect()
            }
        };
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let h = missing[0];
            let log = lab.agent_log(&h.name);
            let why = last_err
                .map(|e| format!("; last store query: {e:#}"))
                .unwrap_or_default();
            bail!(
                "the agent on {} did not register within {} s{why}; see {} (last lines: {})",
                h.name,
                timeout.as_secs(),
                log.display(),
                process::log_tail(&log, 3)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_forward_only_to_the_outside() {
        assert_eq!(dns_upstream_args(None), ["--dns-upstream", "none"]);
        let out = crate::state::OutsideEntry {
            netns: "x-out".into(),
            underlay: topology::OUTSIDE_UNDERLAY,
            addresses: vec![],
            underlay6: None,
            addresses6: vec![],
        };
        assert_eq!(
            dns_upstream_args(Some(&out)),
            ["--dns-upstream", "192.0.2.254"]
        );
    }

    #[test]
    fn store_choices() {
        assert_eq!(
            StoreChoice::parse("embedded").unwrap(),
            StoreChoice::Embedded
        );
        assert_eq!(StoreChoice::parse("etcd").unwrap(), StoreChoice::Etcd);
        assert_eq!(
            StoreChoice::parse("etcd://10.0.0.1:2379").unwrap(),
            StoreChoice::External("etcd://10.0.0.1:2379".into())
        );
        assert!(StoreChoice::parse("file:///x.db").is_ok());
        assert!(StoreChoice::parse("sqlite").is_err());
    }
}
