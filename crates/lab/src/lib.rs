//! `weft lab`: simulated hosts as network namespaces on a shared underlay bridge, each running a real
//! `weft agent`; containers as namespaces attached with `weft attach`; optionally a real 3-member
//! etcd cluster. The demo, the test bed and the benchmark bed.
//!
//! Modules by concern: [`topology`] (names, address plan: pure), [`state`] (the state file),
//! [`netns`] (namespaces, processes inside them), [`underlay`] (building nodes with `weft-netlink`), [`process`]
//! (daemons, pid files, finding a lab's processes), [`etcd`], [`docker`] (a dockerd per host), [`weft`] (running weft inside the lab),
//! [`teardown`], and one file per subcommand under `cmd`.

pub mod bench;
pub mod cmd;
pub mod docker;
pub mod etcd;
pub mod netns;
pub mod ovs;
pub mod process;
pub mod progress;
pub mod state;
pub mod table;
pub mod teardown;
pub mod topology;
pub mod underlay;
pub mod weft;

pub use topology::{Lab, Prefix};

/// `--prefix`, on every lab command.
#[derive(Debug, Clone, clap::Args)]
pub struct PrefixArg {
    /// The lab's name: its namespaces are PREFIX-ul, PREFIX-h1…, PREFIX-c-NAME, its state
    /// /run/weft/lab/PREFIX. Labs with different prefixes coexist.
    #[arg(long, env = "WEFT_LAB_PREFIX", default_value = topology::DEFAULT_PREFIX)]
    pub prefix: String,
}

impl PrefixArg {
    pub fn lab(&self) -> anyhow::Result<Lab> {
        Lab::named(&self.prefix)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Build N hosts on an underlay, each running `weft agent`, on the lab's own store.
    Up(cmd::up::Args),
    /// Remove everything of a lab (processes, namespaces, state), also after a crash.
    Down(cmd::down::Args),
    /// Run a command inside a host or container of the lab, with WEFT_STORE and WEFT_HOST set.
    Exec(cmd::exec::Args),
    /// Create a container (a netns) on a host and attach it to a network.
    Run(cmd::run::Args),
    /// Detach a container from its networks and delete it.
    Rm(cmd::rm::Args),
    /// List the lab's hosts, agents and containers.
    Ls(cmd::ls::Args),
    /// The tour: 3 hosts, a network, 6 containers, a ping matrix and a throughput figure, torn down after.
    Demo(cmd::demo::Args),
    /// Stop, crash or start a host's agent (to test restarts and host death).
    Agent(cmd::agent::Args),
    /// A real Docker engine on a host, using that host's agent as its `weft` network and IPAM driver.
    Docker(cmd::docker::Args),
    /// The Docker benchmark: `docker run` on a weft network against Docker's bridge driver, and
    /// throughput between Docker containers on two hosts against the underlay (one run).
    BenchDocker(cmd::bench_docker::Args),
    /// Stop, crash or start a member of the lab's etcd cluster.
    Etcd(cmd::etcd::Args),
    /// The benchmark: throughput against baselines, convergence and withdrawal, on each store.
    Bench(cmd::bench::Args),
    /// The datapath benchmark: weft's kernel path, engine and encrypted engine against boringtun,
    /// wireguard-go and Open vSwitch's userspace datapath (iperf3 TCP and ping, one run).
    BenchDatapaths(cmd::bench_datapaths::Args),
}

/// Runs a lab command and returns the process exit code (non-zero only from `exec`, which passes on
/// its command's).
pub async fn run_code(cmd: LabCommand) -> anyhow::Result<i32> {
    match cmd {
        LabCommand::Up(a) => cmd::up::run(a).await.map(|_| 0),
        LabCommand::Down(a) => cmd::down::run(a).await.map(|_| 0),
        LabCommand::Exec(a) => cmd::exec::run(a).await,
        LabCommand::Run(a) => cmd::run::run(a).await.map(|_| 0),
        LabCommand::Rm(a) => cmd::rm::run(a).await.map(|_| 0),
        LabCommand::Ls(a) => cmd::ls::run(a).await.map(|_| 0),
        LabCommand::Demo(a) => cmd::demo::run(a).await.map(|_| 0),
        LabCommand::Agent(a) => cmd::agent::run(a).await.map(|_| 0),
        LabCommand::Docker(a) => cmd::docker::run(a).await,
        LabCommand::BenchDocker(a) => cmd::bench_docker::run(a).await.map(|_| 0),
        LabCommand::Etcd(a) => cmd::etcd::run(a).await.map(|_| 0),
        LabCommand::Bench(a) => cmd::bench::run(a).await.map(|_| 0),
        LabCommand::BenchDatapaths(a) => cmd::bench_datapaths::run(a).await.map(|_| 0),
    }
}

/// Runs a lab command. `exec` ends the process with its command's exit code when that is not 0.
pub async fn run(cmd: LabCommand) -> anyhow::Result<()> {
    let code = run_code(cmd).await?;
    if code != 0 {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// The shape of the `weft` binary's tree: a global `--store` and `weft lab <LabCommand>`.
    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long, global = true, env = "WEFT_STORE", default_value = "embedded")]
        store: String,
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Lab {
            #[command(subcommand)]
            command: LabCommand,
        },
    }

    fn parse(args: &[&str]) -> LabCommand {
        let cli = Cli::try_parse_from(std::iter::once("weft").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let Top::Lab { command } = cli.command;
        command
    }

    #[test]
    fn tree_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_the_rest() {
        match parse(&[
            "lab",
            "exec",
            "h1",
            "--",
            "weft",
            "network",
            "create",
            "x",
            "--subnet",
            "10.0.0.0/24",
        ]) {
            LabCommand::Exec(a) => {
                assert_eq!(a.name, "h1");
                assert_eq!(
                    a.command,
                    ["weft", "network", "create", "x", "--subnet", "10.0.0.0/24"]
                );
                assert_eq!(a.prefix.prefix, "weft");
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "lab", "exec", "--prefix", "wl", "c1", "ping", "-c1", "10.0.0.2",
        ]) {
            LabCommand::Exec(a) => {
                assert_eq!(a.prefix.prefix, "wl");
                assert_eq!(a.command, ["ping", "-c1", "10.0.0.2"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn up_and_run_flags() {
        match parse(&[
            "lab", "up", "--hosts", "2", "--store", "etcd", "--prefix", "wlx",
        ]) {
            LabCommand::Up(a) => {
                assert_eq!(
                    (a.hosts, a.store.as_str(), a.prefix.prefix.as_str()),
                    (2, "etcd", "wlx")
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "lab",
            "run",
            "h2",
            "web",
            "--network",
            "prod",
            "--ip",
            "10.0.0.5/24",
            "--publish",
            "8080:80",
            "-p",
            "53:53/udp",
        ]) {
            LabCommand::Run(a) => {
                assert_eq!((a.host.as_str(), a.container.as_str()), ("h2", "web"));
                assert_eq!(a.ips, ["10.0.0.5/24"]);
                assert_eq!(a.publish, ["8080:80", "53:53/udp"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
