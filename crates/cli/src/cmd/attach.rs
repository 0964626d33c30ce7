use anyhow::Result;
use weft_control::attach::AttachRequest;

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The container: a named netns, a netns path (/proc/PID/ns/net, /run/netns/X) or a PID.
    target: String,
    network: String,
    /// Static address with prefix, e.g. 10.0.0.5/24 (give twice for IPv4 and IPv6).
    #[arg(long = "ip")]
    ips: Vec<String>,
    /// MAC address of the container's interface (default: random, locally administered).
    #[arg(long)]
    mac: Option<String>,
    /// Interface name inside the container.
    #[arg(long, default_value = "eth0")]
    ifname: String,
    /// Container name (a DNS label).
    #[arg(long)]
    name: Option<String>,
    /// Another DNS name of the container (a DNS label; repeat for more). Endpoints sharing a name
    /// form a service: its name answers all of them, in rotating order.
    #[arg(long = "alias")]
    aliases: Vec<String>,
    /// Make a container port reachable on this host's addresses: HOSTPORT:PORT[/tcp|udp]
    /// (repeatable; tcp unless said). Refused if another endpoint here already publishes it.
    #[arg(long = "publish", short = 'p', value_name = "HOSTPORT:PORT[/PROTO]")]
    publish: Vec<String>,
    /// This host's name in the cluster (default: the hostname, as the agent uses).
    #[arg(long, env = "WEFT_HOST")]
    host: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(store_url: &str, a: Args) -> Result<i32> {
    super::require_root("weft attach")?;
    let store = weft_control::open_store(store_url).await?;
    let host = weft_control::hosts::local_host_id(a.host.as_deref())?;
    let req = AttachRequest {
        target: a.target,
        network: a.network,
        ips: a.ips,
        mac: a.mac,
        ifname: a.ifname,
        name: a.name,
        aliases: a.aliases,
        host,
        publish: a.publish,
        labels: Default::default(),
    };
    let out = weft_control::attach::attach(store.as_ref(), &req).await?;
    if a.json {
        output::json(&out.endpoint)?;
    } else {
        let e = &out.endpoint;
        let v6 = e.ipv6.map(|a| format!(" {a}")).unwrap_or_default();
        let verb = if out.created {
            "attached"
        } else {
            "already attached"
        };
        let published: String = e
            .publish
            .iter()
            .map(|p| format!(", publishing {p}"))
            .collect();
        println!(
            "{verb} {} to {} as {} {} {}{v6}{published}",
            e.container, e.network, e.ifname, e.mac, e.ipv4
        );
    }
    Ok(0)
}
