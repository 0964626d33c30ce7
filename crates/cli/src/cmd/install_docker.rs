//! `weft install docker`: Docker finds remote plugins as sockets in /run/docker/plugins, or through
//! a spec file in /etc/docker/plugins naming a socket elsewhere. The agent serves the socket
//! (`weft agent --docker-plugin PATH`); this makes sure Docker will look where it is, and checks
//! that it answers as Docker's first call expects.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::output;

const PLUGINS_DIR: &str = "/run/docker/plugins";

#[derive(clap::Args)]
pub struct Args {
    /// The agent's plugin socket (its --docker-plugin).
    #[arg(long, default_value = weft_docker_plugin::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Where Docker reads plugin spec files; one is written there when the socket is not
    /// /run/docker/plugins/weft.sock.
    #[arg(long, default_value = "/etc/docker/plugins")]
    spec_dir: PathBuf,
    /// Remove the spec file instead.
    #[arg(long)]
    remove: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    socket: PathBuf,
    /// The spec file pointing Docker at the socket, when one is needed.
    spec_file: Option<PathBuf>,
    /// What the socket answered to /Plugin.Activate; empty when nothing answered.
    implements: Vec<String>,
    /// Why the socket did not answer.
    error: Option<String>,
    docker_found: bool,
}

pub async fn run(a: Args) -> Result<i32> {
    super::require_root("weft install docker")?;
    let spec = a
        .spec_dir
        .join(format!("{}.spec", weft_docker_plugin::DRIVER));
    let default = a.socket == Path::new(weft_docker_plugin::DEFAULT_SOCKET);
    if a.remove {
        match std::fs::remove_file(&spec) {
            Ok(()) => eprintln!("removed {}", spec.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", spec.display())),
        }
        return Ok(0);
    }
    // Docker scans this directory; it must exist before the agent binds its default socket there.
    std::fs::create_dir_all(PLUGINS_DIR).with_context(|| format!("creating {PLUGINS_DIR}"))?;
    let spec_file = if default {
        None
    } else {
        std::fs::create_dir_all(&a.spec_dir)
            .with_context(|| format!("creating {}", a.spec_dir.display()))?;
        std::fs::write(&spec, format!("unix://{}\n", a.socket.display()))
            .with_context(|| format!("writing {}", spec.display()))?;
        Some(spec)
    };
    let (implements, error) = match weft_docker_plugin::probe(&a.socket).await {
        Ok(i) => (i, None),
        Err(e) => (vec![], Some(format!("{e:#}"))),
    };
    let r = Report {
        socket: a.socket,
        spec_file,
        implements,
        error,
        docker_found: [
            "/usr/bin/dockerd",
            "/usr/sbin/dockerd",
            "/usr/local/bin/dockerd",
        ]
        .iter()
        .any(|p| Path::new(p).exists()),
    };
    if a.json {
        output::json(&r)?;
    } else {
        match &r.spec_file {
            Some(s) => println!(
                "spec file: {} points Docker at {}",
                s.display(),
                r.socket.display()
            ),
            None => println!(
                "socket: {} (Docker finds it there, no spec file needed)",
                r.socket.display()
            ),
        }
        match &r.error {
            None => println!("agent: serving {}", r.implements.join(" and ")),
            Some(e) => println!(
                "agent: not answering ({e}); start `weft agent --docker-plugin {}`",
                r.socket.display()
            ),
        }
        if !r.docker_found {
            println!("docker: dockerd not found; install Docker (Debian: docker.io)");
        }
        println!(
            "use: docker network create -d {d} --ipam-driver {d} --subnet 10.0.0.0/24 NAME   (the same on every host)",
            d = weft_docker_plugin::DRIVER
        );
    }
    Ok(if r.error.is_none() { 0 } else { 1 })
}
