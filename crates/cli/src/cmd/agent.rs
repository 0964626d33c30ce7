use std::time::Duration;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Underlay interface or address that VXLAN traffic to other hosts uses (default: the first IPv4 address found).
    #[arg(long)]
    underlay: Option<String>,
    /// This host's name in the cluster (default: the hostname).
    #[arg(long, env = "WEFT_HOST")]
    name: Option<String>,
    /// Seconds the host's records outlive a dead agent.
    #[arg(long, default_value_t = 10)]
    lease_ttl: u64,
    /// UDP port of VXLAN on the underlay.
    #[arg(long, default_value_t = weft_model::DEFAULT_VXLAN_PORT)]
    vxlan_port: u16,
    /// Seconds between full re-reads of the kernel's state (a safety net; changes apply at once).
    #[arg(long, default_value_t = 30)]
    resync: u64,
    /// Datapath for plain networks: auto (the kernel's VXLAN if it works here, else the userspace
    /// engine), kernel, or userspace (behave as a host without kernel VXLAN).
    #[arg(long, default_value = "auto")]
    datapath: weft_model::DatapathChoice,
    /// The host's private key file, made at first start with mode 0600 (default:
    /// /var/lib/weft/keys/NAME.key); its public key goes into the host record.
    #[arg(long)]
    key_file: Option<std::path::PathBuf>,
    /// Directory of encrypted networks' pre-shared keys (NETWORK.psk), as `network create
    /// --psk-file` installs them.
    #[arg(long, env = "WEFT_PSK_DIR", default_value = weft_control::psk::DEFAULT_PSK_DIR)]
    psk_dir: std::path::PathBuf,
    /// UDP port of the encrypted transport on the underlay.
    #[arg(long, default_value_t = weft_agent::DEFAULT_SECURE_PORT)]
    secure_port: u16,
    /// Where the userspace engine's counters (drops by reason, sessions) are written as JSON,
    /// every second (default: /run/weft/stats/NAME.json).
    #[arg(long, env = "WEFT_STATS_FILE")]
    stats_file: Option<std::path::PathBuf>,
    /// The cluster DNS domain: containers resolve NAME, NAME.NETWORK and NAME.NETWORK.DOMAIN.
    #[arg(long, default_value = weft_model::DEFAULT_DNS_DOMAIN)]
    dns_domain: String,
    /// Resolvers that names outside weft are forwarded to: addresses (ADDR or ADDR:PORT), or
    /// `none` to answer them REFUSED (default: the nameservers of /etc/resolv.conf).
    #[arg(long, num_args = 1..)]
    dns_upstream: Vec<String>,
    /// Serve no DNS to containers (attach then leaves their resolv.conf alone).
    #[arg(long, conflicts_with_all = ["dns_domain", "dns_upstream"])]
    no_dns: bool,
    /// Socket of Docker's network and IPAM driver `weft` (mode 0600; Docker finds plugins in
    /// /run/docker/plugins). `none`: serve no Docker plugin.
    #[arg(long, env = "WEFT_DOCKER_PLUGIN", default_value = weft_docker_plugin::DEFAULT_SOCKET)]
    docker_plugin: String,
    /// Docker's API socket: the plugin reads networks' names there (Docker does not send them).
    #[arg(long, env = "WEFT_DOCKER_API", default_value = weft_docker_plugin::DEFAULT_DOCKER_API)]
    docker_api: std::path::PathBuf,
}

pub async fn run(store: &str, a: Args) -> Result<i32> {
    super::require_root("weft agent")?;
    if a.lease_ttl < 2 {
        anyhow::bail!("--lease-ttl must be at least 2 seconds");
    }
    let dns = if a.no_dns {
        None
    } else {
        weft_model::validate::dns_domain(&a.dns_domain)?;
        let upstreams = weft_dns::upstream::parse_args(&a.dns_upstream)
            .map_err(anyhow::Error::msg)?
            .unwrap_or_else(weft_dns::upstream::from_host);
        Some(weft_dns::DnsConfig::new(&a.dns_domain, upstreams))
    };
    weft_agent::run(weft_agent::AgentConfig {
        store_url: store.to_string(),
        underlay: a.underlay,
        name: a.name,
        lease_ttl: Duration::from_secs(a.lease_ttl),
        vxlan_port: a.vxlan_port,
        resync_every: Duration::from_secs(a.resync.max(1)),
        datapath: a.datapath,
        key_file: a.key_file,
        psk_dir: a.psk_dir,
        secure_port: a.secure_port,
        // WEFT_REKEY_AFTER_MESSAGES / WEFT_REKEY_AFTER_SECS, for tests.
        limits: weft_agent::limits_from_env()?,
        stats_file: a.stats_file,
        dns,
        docker_plugin: (a.docker_plugin != "none").then(|| a.docker_plugin.into()),
        docker_api: a.docker_api,
    })
    .await?;
    Ok(0)
}
