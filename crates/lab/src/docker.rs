//! A real Docker engine per lab host, for the Docker plugin's tests and benchmark: dockerd runs in
//! the host's netns (entered with setns: `ip netns exec` would hide the cgroups) inside a private
//! mount namespace where the host's own plugin directory is bind-mounted on /run/docker/plugins, so
//! each engine finds its own host's `weft.sock`. Images come from no registry: a busybox-static
//! rootfs (with iperf3 and its libraries for the benchmark), `docker import`ed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::process::{self, Daemon};
use crate::state::HostEntry;
use crate::topology::Lab;

/// Debian's docker.io client, matching its engine (another client may come first in PATH).
pub const DOCKER_CLI: &str = "/usr/bin/docker";
/// The image every lab engine has: busybox applets, iperf3.
pub const IMAGE: &str = "weft-busybox";
/// Where engines look for plugins; each engine sees its host's directory there.
const PLUGINS_MOUNT: &str = "/run/docker/plugins";
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn pid_file(lab: &Lab, host: &str) -> PathBuf {
    lab.dir.join(format!("docker-{host}.pid"))
}

pub fn log_file(lab: &Lab, host: &str) -> PathBuf {
    lab.dir.join(format!("docker-{host}.log"))
}

pub fn running(lab: &Lab, host: &str) -> Option<i32> {
    process::read_pid_file(&pid_file(lab, host)).filter(|&p| process::alive(p))
}

/// A docker client command talking to a host's engine.
pub fn cli(lab: &Lab, host: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(DOCKER_CLI);
    c.arg("-H")
        .arg(format!("unix://{}", lab.docker_api_socket(host).display()))
        .kill_on_drop(true);
    c
}

/// Runs the docker client against a host's engine; its stdout, or an error with its stderr.
pub async fn docker(lab: &Lab, host: &str, args: &[&str]) -> Result<String> {
    let out = cli(lab, host)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {DOCKER_CLI} (is docker.io installed?)"))?;
    if !out.status.success() {
        bail!(
            "`docker {}` on {host} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts the host's engine and waits until it answers; imports the lab image.
pub async fn start(lab: &Lab, h: &HostEntry) -> Result<i32> {
    if let Some(pid) = running(lab, &h.name) {
        bail!("Docker of {} is already running (pid {pid})", h.name);
    }
    if !Path::new(DOCKER_CLI).exists() {
        bail!("{DOCKER_CLI} is missing: install docker.io (scripts/deps does)");
    }
    let dir = lab.docker_dir(&h.name);
    let plugins = lab.docker_plugins_dir(&h.name);
    for d in [&dir, &plugins] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    // Left by a killed engine: dockerd refuses to start over its own, and takes a live process
    // whose pid the old containerd's file names (pids are reused) for that containerd.
    let _ = std::fs::remove_file(dir.join("dockerd.pid"));
    let _ = std::fs::remove_file(dir.join("exec").join("containerd").join("containerd.pid"));
    // The mount point only; what is mounted there stays private to each engine.
    std::fs::create_dir_all(PLUGINS_MOUNT).with_context(|| format!("creating {PLUGINS_MOUNT}"))?;
    let script = format!(
        "mount --bind \"$0\" {PLUGINS_MOUNT} && exec dockerd --data-root \"$1\" --exec-root \"$2\" --pidfile \"$3\" -H \"unix://$4\""
    );
    let p = |x: PathBuf| x.display().to_string();
    let pid = process::spawn_daemon(Daemon {
        netns: &h.netns,
        program: Path::new("unshare"),
        args: vec![
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            script,
            p(plugins),
            p(dir.join("data")),
            p(dir.join("exec")),
            p(dir.join("dockerd.pid")),
            p(lab.docker_api_socket(&h.name)),
        ],
        env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        cwd: &lab.dir,
        log: log_file(lab, &h.name),
        pid_file: pid_file(lab, &h.name),
    })?;
    let start = Instant::now();
    loop {
        if !process::alive(pid) {
            bail!(
                "dockerd of {} exited: {}",
                h.name,
                process::log_tail(&log_file(lab, &h.name), 3)
            );
        }
        if docker(
            lab,
            &h.name,
            &["version", "--format", "{{.Server.Version}}"],
        )
        .await
        .is_ok()
        {
            break;
        }
        if start.elapsed() > START_TIMEOUT {
            bail!(
                "dockerd of {} did not answer within {START_TIMEOUT:?}: {}",
                h.name,
                process::log_tail(&log_file(lab, &h.name), 3)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    import_image(lab, &h.name).await?;
    Ok(pid)
}

/// Removes the host's containers, stops its engine (and whatever it left running) and deletes its
/// data. Docker's networks go with the data; `docker network rm` first to see weft's side cleaned.
pub async fn stop(lab: &Lab, host: &str) -> Result<()> {
    if let Some(pid) = running(lab, host) {
        if let Ok(ids) = docker(lab, host, &["ps", "-aq"]).await {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                if let Err(e) = docker(lab, host, &args).await {
                    tracing::warn!("{e:#}");
                }
            }
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let t = Instant::now();
        while process::alive(pid) && t.elapsed() < Duration::from_secs(15) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its containerd and any shim or container it left behind.
        let rest = process::with_descendants([pid].into());
        process::stop_all(&rest, Duration::from_secs(2));
    }
    let _ = std::fs::remove_file(pid_file(lab, host));
    let dir = lab.docker_dir(host);
    let data: Vec<PathBuf> = ["data", "exec", "rootfs"]
        .iter()
        .map(|d| dir.join(d))
        .collect();
    for d in data {
        match std::fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", d.display())),
        }
    }
    Ok(())
}

/// A crash of the host's Docker: dockerd, its containerd, shims and containers are killed at once
/// (SIGKILL), its data stays for the next `start` to find.
pub fn kill_engine(lab: &Lab, host: &str) -> Result<i32> {
    let pid = running(lab, host).ok_or_else(|| anyhow!("Docker of {host} is not running"))?;
    let all = process::with_descendants([pid].into());
    for &p in &all {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    let t = Instant::now();
    while all.iter().any(|&p| process::alive(p)) {
        if t.elapsed() > Duration::from_secs(5) {
            bail!("processes of Docker on {host} survived SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pid)
}

/// Imports the lab image unless the engine has it.
async fn import_image(lab: &Lab, host: &str) -> Result<()> {
    if docker(lab, host, &["image", "inspect", IMAGE])
        .await
        .is_ok()
    {
        return Ok(());
    }
    let rootfs = lab.docker_dir(host).join("rootfs");
    build_rootfs(&rootfs)?;
    let mut tar = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running tar")?;
    let tar_out: Stdio = tar
        .stdout
        .take()
        .ok_or_else(|| anyhow!("tar has no stdout"))?
        .try_into()
        .context("piping tar")?;
    let out = cli(lab, host)
        .args(["import", "-c", "CMD [\"/bin/sh\"]", "-", IMAGE])
        .stdin(tar_out)
        .output()
        .await
        .context("running docker import")?;
    tar.wait().await?;
    if !out.status.success() {
        bail!(
            "docker import on {host} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::remove_dir_all(&rootfs).ok();
    Ok(())
}

/// busybox-static with one symlink per applet, and iperf3 with the libraries it links.
fn build_rootfs(root: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(root);
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["tmp", "etc", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        bail!("/bin/busybox is missing: install busybox-static (scripts/deps does)");
    }
    std::fs::copy(busybox, bin.join("busybox")).context("copying busybox")?;
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))?;
        }
    }
    let iperf = Path::new("/usr/bin/iperf3");
    if iperf.exists() {
        copy_with_libs(iperf, root)?;
    }
    Ok(())
}

/// Copies a dynamically linked program and the libraries `ldd` names to the same paths in `root`.
fn copy_with_libs(prog: &Path, root: &Path) -> Result<()> {
    let out = std::process::Command::new("ldd").arg(prog).output()?;
    let mut files = vec![prog.to_path_buf()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libx.so => /lib/…/libx.so (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = line
            .split("=>")
            .last()
            .and_then(|s| s.split_whitespace().next())
            .filter(|s| s.starts_with('/'));
        if let Some(p) = path {
            files.push(PathBuf::from(p));
        }
    }
    for f in files {
        let dst = root.join(f.strip_prefix("/").unwrap_or(&f));
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::copy(&f, &dst).with_context(|| format!("copying {}", f.display()))?;
    }
    Ok(())
}
