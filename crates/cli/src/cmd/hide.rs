use anyhow::Result;

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    network: String,
    /// This host's name in the cluster (default: the hostname, as the agent uses).
    #[arg(long, env = "WEFT_HOST")]
    host: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(store_url: &str, a: Args) -> Result<i32> {
    super::require_root("weft hide")?;
    let store = weft_control::open_store(store_url).await?;
    let host = weft_control::hosts::local_host_id(a.host.as_deref())?;
    let e = weft_control::hide::hide(store.as_ref(), &host, &a.network).await?;
    if a.json {
        output::json(&e)?;
    } else {
        let v6 = e.ipv6.map(|a| format!(" {a}")).unwrap_or_default();
        println!(
            "hid host {} from {} (released {}{v6})",
            e.host, e.network, e.ipv4
        );
    }
    Ok(0)
}
