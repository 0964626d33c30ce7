//! Long-running lab processes (agents, etcd members): started detached inside a netns with their
//! output in a log file and their pid in a pid file; found again and stopped by `down`.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::netns::{self, NsId, SpawnOpts};

/// What to start.
pub struct Daemon<'a> {
    pub netns: &'a str,
    pub program: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory: the lab's state dir, which is also how `down` recognises the process.
    pub cwd: &'a Path,
    pub log: PathBuf,
    pub pid_file: PathBuf,
}

/// Starts a daemon detached from the terminal (own session, stdin from /dev/null, output appended to
/// its log) and writes its pid file. Returns the pid.
pub fn spawn_daemon(d: Daemon<'_>) -> Result<i32> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&d.log)
        .with_context(|| format!("opening {}", d.log.display()))?;
    let mut cmd = std::process::Command::new(d.program);
    cmd.args(&d.args)
        .envs(d.env.iter().map(|(k, v)| (k, v)))
        .current_dir(d.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    netns::prepare_command(&mut cmd, d.netns, &SpawnOpts { setsid: true })?;
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} in {}", d.program.display(), d.netns))?;
    let pid = child.id() as i32;
    // The child is not waited for here: it outlives this command. `alive` reaps it if it dies while
    // this process still runs.
    drop(child);
    fs::write(&d.pid_file, format!("{pid}\n"))
        .with_context(|| format!("writing {}", d.pid_file.display()))?;
    Ok(pid)
}

pub fn read_pid_file(path: &Path) -> Option<i32> {
    fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&p| p > 0)
}

/// Whether a process runs (a zombie does not count; one that is our child gets reaped).
pub fn alive(pid: i32) -> bool {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // `pid (comm) S …`: the state follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// The working directory of a process ("(deleted)" suffix stripped).
pub fn cwd_of(pid: i32) -> Option<PathBuf> {
    let p = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let s = p.to_string_lossy();
    Some(PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(&s)))
}

pub fn all_pids() -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                out.push(pid);
            }
        }
    }
    out
}

/// Processes that belong to a lab: every process inside one of its namespaces, and each pid of its
/// pid files whose process still works in its state dir (guards against a reused pid), also after
/// the netns is gone. Never includes this process.
pub fn lab_processes(ns_ids: &BTreeSet<NsId>, state_dir: &Path) -> BTreeSet<i32> {
    let me = std::process::id() as i32;
    let mut out = in_namespaces(ns_ids);
    if let Ok(rd) = fs::read_dir(state_dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "pid") {
                if let Some(pid) = read_pid_file(&p) {
                    let ours = cwd_of(pid).is_some_and(|c| c.starts_with(state_dir));
                    if pid != me && ours && alive(pid) {
                        out.insert(pid);
                    }
                }
            }
        }
    }
    with_descendants(out)
}

/// The processes and all their live descendants: a Docker engine's containers run in namespaces
/// of their own, as children of its shims.
pub fn with_descendants(roots: BTreeSet<i32>) -> BTreeSet<i32> {
    let me = std::process::id() as i32;
    let parents: Vec<(i32, i32)> = all_pids()
        .into_iter()
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut out = roots;
    loop {
        let more: Vec<i32> = parents
            .iter()
            .filter(|(pid, ppid)| out.contains(ppid) && !out.contains(pid) && *pid != me)
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ppid …`
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every live process inside one of the given network namespaces, except this one and init.
pub fn in_namespaces(ns_ids: &BTreeSet<NsId>) -> BTreeSet<i32> {
    let me = std::process::id() as i32;
    let mut out = BTreeSet::new();
    if ns_ids.is_empty() {
        return out;
    }
    for pid in all_pids() {
        if pid == me || pid == 1 {
            continue;
        }
        if netns::id_of_pid(pid).is_some_and(|id| ns_ids.contains(&id)) && alive(pid) {
            out.insert(pid);
        }
    }
    out
}

/// Stops processes: SIGTERM, then SIGKILL for those still there after `grace`. Returns how many were
/// still alive after everything (0 normally).
pub fn stop_all(pids: &BTreeSet<i32>, grace: Duration) -> usize {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let wait = |limit: Duration| {
        let start = Instant::now();
        loop {
            let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
            if left.is_empty() || start.elapsed() >= limit {
                return left;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let left = wait(grace);
    for &pid in &left {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if left.is_empty() {
        return 0;
    }
    wait(Duration::from_secs(3)).len()
}

/// The last lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}
