use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The container: a named netns, a netns path or a PID.
    target: String,
    network: String,
    /// This host's name in the cluster (default: the hostname).
    #[arg(long, env = "WEFT_HOST")]
    host: Option<String>,
}

pub async fn run(store_url: &str, a: Args) -> Result<i32> {
    super::require_root("weft detach")?;
    let store = weft_control::open_store(store_url).await?;
    let host = weft_control::hosts::local_host_id(a.host.as_deref())?;
    let ep = weft_control::detach::detach(store.as_ref(), &host, &a.target, &a.network).await?;
    let addrs: Vec<String> = ep.addresses().iter().map(|a| a.to_string()).collect();
    println!(
        "detached {} from {} ({})",
        ep.container,
        ep.network,
        addrs.join(" ")
    );
    Ok(0)
}
