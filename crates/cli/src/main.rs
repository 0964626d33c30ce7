//! The `weft` command: one binary for the agent, the CLI and the lab.

mod cmd;
mod output;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Containers on many hosts share named networks: by IP and by name, IPv4 and IPv6, every protocol"
)]
pub struct Cli {
    /// Cluster store: `embedded` (a file on this machine), `file:///path.db` or `etcd://host:port[,host:port…]`.
    #[arg(long, global = true, env = "WEFT_STORE", default_value = "embedded")]
    pub store: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the per-host agent: registers this host and programs its datapath from the store.
    Agent(cmd::agent::Args),
    /// Create, list, inspect and remove networks.
    #[command(subcommand)]
    Network(cmd::network::NetworkCmd),
    /// Attach a container (named netns, netns path or PID) to a network.
    Attach(cmd::attach::Args),
    /// Detach a container from a network.
    Detach(cmd::detach::Args),
    /// Give this host an address on a network, so that it reaches the network's containers on every host.
    Expose(cmd::expose::Args),
    /// Take back this host's address on a network (`weft expose`).
    Hide(cmd::hide::Args),
    /// List endpoints (attached containers) across the cluster.
    Endpoints(cmd::endpoints::Args),
    /// Show hosts and their lease state, networks and endpoint counts.
    Status(cmd::status::Args),
    /// Check this host against what the cluster wants of it: registration, bridges and uplinks,
    /// forwarding and neighbour entries, endpoints' interfaces and namespaces, encrypted sessions.
    /// Exits 1 when something is broken, and says what to do about it.
    Doctor(cmd::doctor::Args),
    /// Explain the path between two endpoints (names, netns or addresses): the network they share,
    /// every hop, what each agent reports and what this host holds; `--probe` pings across.
    Trace(cmd::trace::Args),
    /// Set up a container runtime to use weft's networks.
    Install {
        #[command(subcommand)]
        runtime: cmd::install::InstallCmd,
    },
    /// Simulated hosts and containers as network namespaces on this machine: demo, test and benchmark bed.
    Lab {
        #[command(subcommand)]
        command: weft_lab::LabCommand,
    },
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| {
        let default = if matches!(cli.command, Command::Agent(_)) {
            "info"
        } else {
            "warn"
        };
        tracing_subscriber::EnvFilter::new(default)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(cmd::run(cli));
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line naming the problem, with its causes.
            eprintln!("weft: error: {e:#}");
            std::process::exit(1);
        }
    }
}
