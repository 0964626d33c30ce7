use anyhow::Result;
use weft_model::{keys, Endpoint};

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// Only endpoints of this network.
    #[arg(long)]
    network: Option<String>,
    /// Only endpoints on this host.
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn run(store_url: &str, args: Args) -> Result<i32> {
    let store = weft_control::open_store(store_url).await?;
    let prefix = match &args.network {
        Some(n) => {
            weft_control::networks::get(store.as_ref(), n).await?;
            keys::endpoints_of(n)
        }
        None => keys::ENDPOINTS.to_string(),
    };
    let (eps, _) = weft_control::read::list::<Endpoint>(store.as_ref(), &prefix).await?;
    let eps: Vec<Endpoint> = eps
        .into_iter()
        .map(|(e, _)| e)
        .filter(|e| args.host.as_ref().is_none_or(|h| &e.host == h))
        .collect();
    if args.json {
        output::json(&eps)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = eps
        .iter()
        .map(|e| {
            vec![
                e.network.clone(),
                // The name, then its aliases.
                if e.names.is_empty() {
                    "-".into()
                } else {
                    e.names.join(",")
                },
                e.host.clone(),
                e.container.clone(),
                e.ifname.clone(),
                e.mac.to_string(),
                e.ipv4.to_string(),
                e.ipv6.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                if e.publish.is_empty() {
                    "-".into()
                } else {
                    e.publish
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                },
            ]
        })
        .collect();
    output::table(
        &[
            "NETWORK",
            "NAME",
            "HOST",
            "CONTAINER",
            "IF",
            "MAC",
            "IPV4",
            "IPV6",
            "PUBLISH",
        ],
        &rows,
    );
    Ok(0)
}
