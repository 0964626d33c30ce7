//! `weft install cni`: copies weft-cni (built beside weft) into the runtimes' plugin directories as
//! `weft` (the file a `"type": "weft"` configuration runs) and writes an example configuration list. Idempotent: what is already in place is left alone.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use weft_cni::install::{self, ConfOptions};

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// Where to put the plugin, as `weft` (repeatable; default /opt/cni/bin and /usr/lib/cni).
    #[arg(long = "bin-dir")]
    bin_dirs: Vec<PathBuf>,
    /// Where to write the example configuration list.
    #[arg(long, default_value = install::CONF_DIR)]
    conf_dir: PathBuf,
    /// The weft network the example puts containers on (also its CNI network name).
    #[arg(long, default_value = "weft")]
    network: String,
    /// This host's name in the cluster, written into the example (default: the hostname).
    #[arg(long)]
    host: Option<String>,
    /// Leave the reference portmap plugin out of the example.
    #[arg(long)]
    no_portmap: bool,
    /// The plugin binary to install (default: weft-cni beside this weft).
    #[arg(long)]
    from: Option<PathBuf>,
    /// Write no example configuration, only the binary.
    #[arg(long)]
    no_conf: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Placed {
    path: PathBuf,
    /// `installed`, `updated` or `unchanged`.
    action: &'static str,
}

#[derive(Serialize)]
struct Report {
    binaries: Vec<Placed>,
    config: Option<Placed>,
}

/// `store` (weft's global --store) goes into the example, so the plugin uses the store this weft does.
pub fn run(store: &str, a: Args) -> Result<i32> {
    super::require_root("weft install cni")?;
    weft_model::validate::name("network", &a.network)?;
    weft_control::StoreUrl::parse(store)?;
    if let Some(h) = &a.host {
        weft_model::validate::name("host", h)?;
    }
    let from = match a.from {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("locating weft's directory")?
            .join(install::BINARY),
    };
    let binary = fs::read(&from).with_context(|| {
        format!(
            "reading the plugin {} (build it with `cargo build --bin weft-cni`, or give --from)",
            from.display()
        )
    })?;
    let dirs: Vec<PathBuf> = if a.bin_dirs.is_empty() {
        install::BIN_DIRS.iter().map(PathBuf::from).collect()
    } else {
        a.bin_dirs
    };
    let mut report = Report {
        binaries: Vec::new(),
        config: None,
    };
    for d in &dirs {
        let action = place(&d.join(install::PLUGIN_FILE), &binary, 0o755)?;
        report.binaries.push(Placed {
            path: d.join(install::PLUGIN_FILE),
            action,
        });
    }
    if !a.no_conf {
        let conf = install::conflist(&ConfOptions {
            network: a.network.clone(),
            store: Some(store.to_string()),
            host: a.host,
            portmap: !a.no_portmap,
        });
        let mut text = serde_json::to_vec_pretty(&conf)?;
        text.push(b'\n');
        let path = a.conf_dir.join(install::conflist_name(&a.network));
        let action = place(&path, &text, 0o644)?;
        report.config = Some(Placed { path, action });
    }
    if a.json {
        output::json(&report)?;
    } else {
        for p in report.binaries.iter().chain(report.config.iter()) {
            println!("{:<9} {}", p.action, p.path.display());
        }
    }
    Ok(0)
}

/// Writes `content` at `path` (a temporary file renamed over it, so a runtime never runs half a
/// binary) unless it is already there.
fn place(path: &Path, content: &[u8], mode: u32) -> Result<&'static str> {
    let existing = match fs::read(path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if existing.as_deref() == Some(content) {
        return Ok("unchanged");
    }
    let dir = path.parent().context("a path with a directory")?;
    if dir.exists() && !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("weft"),
        std::process::id()
    ));
    let write = || -> Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", path.display())));
    }
    Ok(if existing.is_some() {
        "updated"
    } else {
        "installed"
    })
}
