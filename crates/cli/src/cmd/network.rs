use anyhow::Result;
use clap::Subcommand;
use weft_control::networks::{self, NetworkSpec};

use crate::output;

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        name: String,
        /// IPv4 subnet (required) and optionally an IPv6 subnet: give --subnet twice.
        #[arg(long = "subnet", required = true)]
        subnets: Vec<String>,
        /// VXLAN network identifier (default: the first free one from 4096).
        #[arg(long)]
        vni: Option<u32>,
        /// MTU of the overlay (default: a 1500-byte underlay less the encapsulation's overhead:
        /// 1450 for VXLAN, 1458 for GRE, 1426 encrypted).
        #[arg(long)]
        mtu: Option<u32>,
        /// Encapsulation of a plain network: vxlan (UDP 4789, the kernel's or the engine's) or gre
        /// (Ethernet over GRE with key = VNI, as Linux gretap and Open vSwitch send it; carried by
        /// the userspace engine on every host).
        #[arg(long, default_value = "vxlan")]
        encap: weft_model::Encap,
        /// Datapath: auto (the kernel's VXLAN where the host has it, else weft's userspace engine), kernel or userspace.
        #[arg(long, default_value = "auto")]
        datapath: weft_model::DatapathChoice,
        /// Seal frames between hosts (Noise handshake between host keys, AEAD transport); carried
        /// by the userspace engine of hosts that advertise `encrypt`.
        #[arg(long)]
        encrypt: bool,
        /// A pre-shared key (32 bytes, base64 or hex) mixed into every handshake, so that the store
        /// alone cannot admit a host; installed here in PSK_DIR/NAME.psk (mode 0600), and to
        /// be installed there on every host of the network.
        #[arg(long, requires = "encrypt")]
        psk_file: Option<std::path::PathBuf>,
        /// No way beyond the overlay: containers get no default route and nothing is
        /// masqueraded (egress through each container's own host is on by default).
        #[arg(long)]
        no_egress: bool,
        /// Where this host keeps pre-shared keys (the agent's --psk-dir).
        #[arg(long, env = "WEFT_PSK_DIR", default_value = weft_control::psk::DEFAULT_PSK_DIR)]
        psk_dir: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Show a network with its endpoints and address allocations.
    Inspect { name: String },
    /// Remove a network (refused while it has endpoints, unless --force).
    Rm {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(store_url: &str, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create {
            name,
            subnets,
            vni,
            mtu,
            encap,
            datapath,
            encrypt,
            psk_file,
            psk_dir,
            no_egress,
            json,
        } => {
            super::require_root("weft network create")?;
            let psk = psk_file
                .as_deref()
                .map(weft_control::psk::read)
                .transpose()?;
            let store = weft_control::open_store(store_url).await?;
            let spec = NetworkSpec {
                name,
                subnets,
                vni,
                mtu,
                datapath,
                encrypted: encrypt,
                encap,
                psk_fingerprint: psk.as_ref().map(|p| p.fingerprint()),
                no_egress,
                ..Default::default()
            };
            let n = networks::create(store.as_ref(), &spec).await?;
            if let Some(psk) = &psk {
                if let Err(e) = weft_control::psk::install(&psk_dir, &n.name, psk) {
                    // Nothing half-done: without its key here, the network goes again.
                    let _ = networks::remove(store.as_ref(), &n.name, false).await;
                    return Err(e);
                }
            }
            if json {
                output::json(&n)?;
            } else {
                let v6 = n.subnet6.map(|s| format!(" {s}")).unwrap_or_default();
                let egress = if n.egress { "" } else { ", no egress" };
                println!(
                    "created network {} (vni {}, {}{v6}, mtu {}, {}{egress})",
                    n.name,
                    n.vni,
                    n.subnet4,
                    n.mtu,
                    transport(&n)
                );
            }
        }
        NetworkCmd::Ls { json } => {
            let store = weft_control::open_store(store_url).await?;
            let status = weft_control::hosts::status(store.as_ref(), store_url).await?;
            if json {
                output::json(&status.networks)?;
            } else {
                print_networks(&status.networks);
            }
        }
        NetworkCmd::Inspect { name } => {
            let store = weft_control::open_store(store_url).await?;
            output::json(&networks::inspect(store.as_ref(), &name).await?)?;
        }
        NetworkCmd::Rm { name, force } => {
            super::require_root("weft network rm")?;
            let store = weft_control::open_store(store_url).await?;
            let n = networks::remove(store.as_ref(), &name, force).await?;
            if n > 0 {
                println!("removed network {name} and its {n} endpoint(s)");
            } else {
                println!("removed network {name}");
            }
        }
    }
    Ok(0)
}

/// How a network's frames cross between hosts, for tables: `vxlan`, `gre` or `encrypted`.
pub fn transport(n: &weft_model::Network) -> &'static str {
    if n.encrypted {
        "encrypted"
    } else {
        n.encap.as_str()
    }
}

/// The networks table, shared by `network ls` and `status`.
pub fn print_networks(networks: &[weft_control::hosts::NetworkStatus]) {
    let rows: Vec<Vec<String>> = networks
        .iter()
        .map(|n| {
            vec![
                n.network.name.clone(),
                n.network.vni.to_string(),
                n.network.subnet4.to_string(),
                n.network
                    .subnet6
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                n.network.mtu.to_string(),
                transport(&n.network).to_string(),
                if n.network.egress { "yes" } else { "no" }.to_string(),
                n.endpoints.to_string(),
                n.hosts.join(","),
            ]
        })
        .collect();
    output::table(
        &[
            "NETWORK",
            "VNI",
            "IPV4",
            "IPV6",
            "MTU",
            "ENCAP",
            "EGRESS",
            "ENDPOINTS",
            "HOSTS",
        ],
        &rows,
    );
}
