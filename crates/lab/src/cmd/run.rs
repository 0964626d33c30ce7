//! `weft lab run HOST CONTAINER --network NET [--ip CIDR]… [--publish SPEC]… [--name NAME]
//! [--alias ALIAS]…`: a container netns `P-c-CONTAINER` (lo up) attached with `weft attach` run on
//! HOST; its DNS name is the container's unless `--name` says otherwise. Running it again for an
//! existing container on the same host attaches it to one more network.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::netns;
use crate::progress::Progress;
use crate::state;
use crate::topology::{self, Lab};
use crate::underlay;
use crate::weft;
use crate::PrefixArg;

pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host the container lives on (h1…).
    pub host: String,
    /// The container's name (its netns is PREFIX-c-NAME; its name on the network).
    pub container: String,
    /// The network to attach it to.
    #[arg(long)]
    pub network: String,
    /// Static address(es) (CIDR), passed on to `weft attach --ip`.
    #[arg(long = "ip")]
    pub ips: Vec<String>,
    /// Published port(s) HOSTPORT:PORT[/tcp|udp], passed on to `weft attach --publish`.
    #[arg(long = "publish", short = 'p')]
    pub publish: Vec<String>,
    /// Its DNS name on the network (default: the container's name).
    #[arg(long)]
    pub name: Option<String>,
    /// More DNS names (repeat); containers sharing one form a service.
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    #[command(flatten)]
    pub prefix: PrefixArg,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = args.prefix.lab()?;
    let p = Progress::new(lab.prefix.as_str());
    let extras = Extras {
        publish: args.publish,
        name: args.name,
        aliases: args.aliases,
    };
    let out = create_with(
        &lab,
        &args.host,
        &args.container,
        &args.network,
        &args.ips,
        &extras,
        &p,
    )
    .await?;
    print!("{out}");
    Ok(())
}

/// Creates (or reuses, on the same host) the container and attaches it; returns attach's output.
pub async fn create(
    lab: &Lab,
    host: &str,
    name: &str,
    network: &str,
    ips: &[String],
    p: &Progress,
) -> Result<String> {
    create_with(lab, host, name, network, ips, &Extras::default(), p).await
}

/// What else `weft attach` is told: published ports, the DNS name (default: the container's) and
/// aliases.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub publish: Vec<String>,
    pub name: Option<String>,
    pub aliases: Vec<String>,
}

/// [`create`], with published ports and DNS names.
pub async fn create_with(
    lab: &Lab,
    host: &str,
    name: &str,
    network: &str,
    ips: &[String],
    extras: &Extras,
    p: &Progress,
) -> Result<String> {
    topology::check_container_name(name)?;
    let st = state::load(lab)?;
    let h = st.host(host).with_context(|| {
        format!(
            "lab {} has no host {host} (hosts: {})",
            lab.prefix,
            st.host_names().join(", ")
        )
    })?;
    let ns = lab.container_ns(name);
    let created = match st.containers.get(name) {
        Some(other) if other != host => {
            bail!("container {name} already lives on {other}, not {host}")
        }
        Some(_) => {
            if !netns::exists(&ns) {
                bail!("container {name} is in the lab state but its netns {ns} is gone; remove it with `weft lab rm {name}`");
            }
            false
        }
        None => {
            if netns::exists(&ns) {
                bail!("netns {ns} exists but is not a container of the lab; remove it with `weft lab rm {name}`");
            }
            underlay::create_bare(&ns).await?;
            true
        }
    };
    p.step(format!(
        "container {name} on {host}: attaching to {network}"
    ));
    let path = netns::path(&ns).display().to_string();
    let mut argv = vec!["attach", path.as_str(), network];
    for ip in ips {
        argv.extend(["--ip", ip.as_str()]);
    }
    for spec in &extras.publish {
        argv.extend(["--publish", spec.as_str()]);
    }
    argv.extend(["--name", extras.name.as_deref().unwrap_or(name)]);
    for a in &extras.aliases {
        argv.extend(["--alias", a.as_str()]);
    }
    let attached = tokio::time::timeout(
        ATTACH_TIMEOUT,
        weft::output(&h.netns, &st.store_url, Some(host), &argv),
    )
    .await
    .unwrap_or_else(|_| {
        bail!(
            "`weft attach` did not finish within {} s",
            ATTACH_TIMEOUT.as_secs()
        )
    });
    let result = attached.and_then(|out| {
        if created {
            state::update(lab, |s| {
                s.containers.insert(name.to_string(), host.to_string());
                Ok(())
            })?;
        }
        Ok(out)
    });
    if result.is_err() && created {
        let _ = netns::delete(&ns);
    }
    result.with_context(|| format!("running container {name} on {host}"))
}
