use anyhow::Result;

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub async fn run(store_url: &str, args: Args) -> Result<i32> {
    let store = weft_control::open_store(store_url).await?;
    let s = weft_control::hosts::status(store.as_ref(), store_url).await?;
    if args.json {
        output::json(&s)?;
        return Ok(0);
    }
    println!("store: {} (revision {})", s.store, s.revision);
    println!();
    let rows: Vec<Vec<String>> = s
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host.id.clone(),
                h.host.underlay.to_string(),
                h.state.to_string(),
                h.lease_ttl_s
                    .map(|t| format!("{t:.0}s"))
                    .unwrap_or_else(|| "-".into()),
                h.endpoints.to_string(),
                h.host.capabilities.join(","),
            ]
        })
        .collect();
    output::table(
        &[
            "HOST",
            "UNDERLAY",
            "STATE",
            "LEASE",
            "ENDPOINTS",
            "DATAPATHS",
        ],
        &rows,
    );
    println!();
    super::network::print_networks(&s.networks);
    println!();
    let rows: Vec<Vec<String>> = s
        .peers
        .iter()
        .map(|p| {
            vec![
                p.host.clone(),
                p.peer.peer.clone(),
                p.peer.network.clone(),
                format!("{} -> {}", p.peer.path, p.peer.peer_path),
                p.peer.handshake.clone(),
            ]
        })
        .collect();
    output::table(&["HOST", "PEER", "NETWORK", "PATH", "HANDSHAKE"], &rows);
    Ok(0)
}
