use anyhow::Result;
use weft_control::expose::ExposeRequest;

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    network: String,
    /// Static address with prefix, e.g. 10.0.0.250/24 (give twice for IPv4 and IPv6; default:
    /// the next free ones, allocated like a container's).
    #[arg(long = "ip")]
    ips: Vec<String>,
    /// This host's name in the cluster (default: the hostname, as the agent uses).
    #[arg(long, env = "WEFT_HOST")]
    host: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(store_url: &str, a: Args) -> Result<i32> {
    super::require_root("weft expose")?;
    let store = weft_control::open_store(store_url).await?;
    let host = weft_control::hosts::local_host_id(a.host.as_deref())?;
    let req = ExposeRequest {
        network: a.network,
        ips: a.ips,
        host,
    };
    let e = weft_control::expose::expose(store.as_ref(), &req).await?;
    if a.json {
        output::json(&e)?;
    } else {
        let v6 = e.ipv6.map(|a| format!(" {a}")).unwrap_or_default();
        println!(
            "exposed host {} on {} as {}{v6} ({} {})",
            e.host, e.network, e.ipv4, e.ifname, e.mac
        );
    }
    Ok(0)
}
