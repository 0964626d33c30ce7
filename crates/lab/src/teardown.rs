//! Removing a lab: everything of its prefix, whatever state it is in (also after a crash), and nothing
//! else. Blocking (no netns entering), so that it can run from a `Drop` or a signal path.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns;
use crate::process;
use crate::topology::Lab;

#[derive(Debug, Default)]
pub struct DownReport {
    pub processes: usize,
    pub namespaces: usize,
    /// Directories removed (the state dir, kept logs of a failure).
    pub removed: Vec<std::path::PathBuf>,
}

impl DownReport {
    pub fn is_empty(&self) -> bool {
        self.processes == 0 && self.namespaces == 0 && self.removed.is_empty()
    }
}

/// The error of a lab command stopped by Ctrl-C (its undo keeps no logs).
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Stops every process of the lab (in its namespaces or from its pid files), deletes every netns
/// named `P-*`, the state dir and the logs kept from a failed `up`. Idempotent.
pub fn down(lab: &Lab) -> Result<DownReport> {
    let mut report = down_inner(lab)?;
    match std::fs::remove_dir_all(lab.failed_logs_dir()) {
        Ok(()) => report.removed.push(lab.failed_logs_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing {}", lab.failed_logs_dir().display()))
        }
    }
    Ok(report)
}

/// Undoes a lab that failed to come up, first copying its logs (agents, etcd) to
/// [`Lab::failed_logs_dir`]; returns that dir when there were logs. Rewrites `error` to point there.
pub fn undo_keeping_logs(lab: &Lab, error: anyhow::Error) -> anyhow::Error {
    if error.is::<Interrupted>() {
        if let Err(te) = down(lab) {
            eprintln!("weft lab: cleanup failed: {te:#}");
        }
        return error;
    }
    let kept = lab.failed_logs_dir();
    let _ = std::fs::remove_dir_all(&kept);
    let mut copied = 0;
    if let Ok(rd) = std::fs::read_dir(&lab.dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                if copied == 0 && std::fs::create_dir_all(&kept).is_err() {
                    break;
                }
                if std::fs::copy(&p, kept.join(e.file_name())).is_ok() {
                    copied += 1;
                }
            }
        }
    }
    if let Err(te) = down_inner(lab) {
        eprintln!("weft lab: cleanup failed too: {te:#}");
    }
    let msg = format!("{error:#}");
    if copied == 0 {
        return anyhow::anyhow!(msg);
    }
    let dir = lab.dir.display().to_string();
    let kept_s = kept.display().to_string();
    if msg.contains(&dir) {
        anyhow::anyhow!(msg.replace(&dir, &kept_s))
    } else {
        anyhow::anyhow!("{msg} (logs kept in {kept_s})")
    }
}

fn down_inner(lab: &Lab) -> Result<DownReport> {
    let mut report = DownReport::default();
    let names: Vec<String> = netns::list()?
        .into_iter()
        .filter(|n| lab.owns_ns(n))
        .collect();
    let ids: BTreeSet<netns::NsId> = names.iter().filter_map(|n| netns::id_of(n)).collect();
    let pids = process::lab_processes(&ids, &lab.dir);
    report.processes = pids.len();
    // Short grace: everything of the lab goes (etcd members stopped together can take seconds to
    // give up on each other, for nothing).
    let left = process::stop_all(&pids, Duration::from_secs(2));
    if left > 0 {
        tracing::warn!("{left} process(es) of lab {} survived SIGKILL", lab.prefix);
    }
    for n in &names {
        netns::delete(n)?;
    }
    // resolv.conf files attach wrote for the lab's containers (detach removes them; a lab taken
    // down with containers attached leaves them otherwise).
    for n in etc_netns_names()?.iter().filter(|n| lab.owns_ns(n)) {
        weft_dns::resolvconf::remove_for_netns(n)
            .with_context(|| format!("removing {}/{n}/resolv.conf", netns::NETNS_ETC_DIR))?;
    }
    report.namespaces = names.len();
    match std::fs::remove_dir_all(&lab.dir) {
        Ok(()) => report.removed.push(lab.dir.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", lab.dir.display())),
    }
    Ok(report)
}

/// Names of the directories under /etc/netns.
fn etc_netns_names() -> Result<Vec<String>> {
    match std::fs::read_dir(netns::NETNS_ETC_DIR) {
        Ok(rd) => Ok(rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("listing {}", netns::NETNS_ETC_DIR)),
    }
}

/// What of a lab is left on the machine: its namespaces (named one by one up to 3), and its state dir
/// if present.
pub fn leftovers(lab: &Lab) -> Result<Vec<String>> {
    let names: Vec<String> = netns::list()?
        .into_iter()
        .filter(|n| lab.owns_ns(n))
        .collect();
    let mut out: Vec<String> = if names.len() <= 3 {
        names.iter().map(|n| format!("netns {n}")).collect()
    } else {
        vec![format!("{} namespaces {}-*", names.len(), lab.prefix)]
    };
    if lab.dir.exists() {
        out.push(format!("directory {}", lab.dir.display()));
    }
    Ok(out)
}

/// Tears a lab down when dropped, unless disarmed: for tests and for commands that build a lab and
/// must not leave it behind on an error or a panic.
pub struct Guard {
    lab: Option<Lab>,
}

impl Guard {
    pub fn new(lab: &Lab) -> Guard {
        Guard {
            lab: Some(lab.clone()),
        }
    }
    pub fn disarm(mut self) {
        self.lab = None;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(lab) = self.lab.take() {
            if let Err(e) = down(&lab) {
                eprintln!("weft lab: cleaning up lab {}: {e:#}", lab.prefix);
            }
        }
    }
}

/// Refuses to go on when anything of the lab's prefix exists: commands that build their own lab
/// and tear it down at the end must never remove one that is not theirs.
pub fn refuse_existing(lab: &Lab) -> Result<()> {
    let left = leftovers(lab)?;
    if !left.is_empty() {
        anyhow::bail!(
            "a lab with prefix {} exists ({}); remove it with `weft lab down --prefix {}` or pick another --prefix",
            lab.prefix,
            left.join(", "),
            lab.prefix
        );
    }
    Ok(())
}
