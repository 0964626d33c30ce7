//! Which datapaths this host runs and what it advertises. One UDP port cannot be served by both
//! the kernel's VXLAN and the engine, so a host carries plain networks on one of them: the kernel
//! where it can (auto), or the engine when told to or when the kernel lacks VXLAN. Encrypted
//! and GRE networks always go to the engine, which every host runs when it can (it binds the
//! VXLAN port only on hosts whose plain networks it carries, so it never collides with the
//! kernel's; GRE takes a raw IP socket, no port).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use weft_datapath::{Datapaths, KernelDatapath, PskLoader, UserspaceDatapath, UserspaceOptions};
use weft_engine::Engine;
use weft_model::{DatapathChoice, CAP_ENCRYPT, CAP_GRE, CAP_KERNEL_VXLAN, CAP_USERSPACE_VXLAN};
use weft_secure::{KeyPair, Limits};

use crate::AgentConfig;

/// The datapaths of this host, the capabilities it advertises, and its engine if it runs one.
pub(crate) struct Built {
    pub dp: Datapaths,
    pub capabilities: Vec<String>,
    pub engine: Option<Arc<Engine>>,
}

/// The device the engine's TAPs are made through: without it, no engine.
const TUN_DEVICE: &str = "/dev/net/tun";

pub(crate) async fn build(
    cfg: &AgentConfig,
    underlay: std::net::IpAddr,
    keys: &KeyPair,
) -> Result<Built> {
    let kernel = KernelDatapath::new(underlay, cfg.vxlan_port).await?;
    let use_kernel = match cfg.datapath {
        DatapathChoice::Userspace => false,
        DatapathChoice::Kernel => {
            kernel.probe().await.context(
                "this kernel cannot run weft's VXLAN datapath (try --datapath userspace)",
            )?;
            true
        }
        DatapathChoice::Auto => match kernel.probe().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("kernel VXLAN unavailable ({e:#}); using the userspace engine");
                false
            }
        },
    };
    let user = match start_engine(cfg, underlay, keys, !use_kernel).await {
        Ok(u) => Some(u),
        Err(e) if use_kernel => {
            tracing::warn!("the userspace engine cannot run here ({e:#}); encrypted networks are not carried on this host");
            None
        }
        Err(e) => return Err(e.context("starting the userspace engine")),
    };
    let mut capabilities = Vec::new();
    if use_kernel {
        capabilities.push(CAP_KERNEL_VXLAN.to_string());
    } else {
        capabilities.push(CAP_USERSPACE_VXLAN.to_string());
    }
    if user.is_some() {
        capabilities.push(CAP_ENCRYPT.to_string());
        capabilities.push(CAP_GRE.to_string());
    }
    let engine = user.as_ref().map(|u| u.engine_handle());
    let dp = Datapaths {
        kernel: use_kernel.then(|| Box::new(kernel) as _),
        userspace: user.map(|u| Box::new(u) as _),
    };
    Ok(Built {
        dp,
        capabilities,
        engine,
    })
}

async fn start_engine(
    cfg: &AgentConfig,
    underlay: std::net::IpAddr,
    keys: &KeyPair,
    plain: bool,
) -> Result<UserspaceDatapath> {
    if let Err(e) = std::fs::metadata(TUN_DEVICE) {
        bail!("{TUN_DEVICE}: {e}");
    }
    let dir: PathBuf = cfg.psk_dir.clone();
    let psk: PskLoader =
        Arc::new(move |network, fingerprint| weft_control::psk::load(&dir, network, fingerprint));
    UserspaceDatapath::start(UserspaceOptions {
        underlay,
        vxlan_port: cfg.vxlan_port,
        secure_port: cfg.secure_port,
        keys: keys.clone(),
        psk,
        limits: cfg.limits,
        plain,
    })
    .await
}

/// Session limits from the environment, for tests and experiments: `WEFT_REKEY_AFTER_MESSAGES`
/// (a new handshake after this many messages on a session) and `WEFT_REKEY_AFTER_SECS` (after
/// this many seconds; sessions are refused 60 s later, or at 1.5 × for short ones). `None`
/// when neither is set: the engine's defaults (WireGuard's).
pub fn limits_from_env() -> Result<Option<Limits>> {
    let read = |name: &str| -> Result<Option<u64>> {
        match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .with_context(|| format!("{name}={v:?} is not a number")),
            Err(_) => Ok(None),
        }
    };
    let messages = read("WEFT_REKEY_AFTER_MESSAGES")?;
    let secs = read("WEFT_REKEY_AFTER_SECS")?;
    if messages.is_none() && secs.is_none() {
        return Ok(None);
    }
    let mut l = weft_engine::default_limits();
    if let Some(m) = messages {
        if m == 0 {
            bail!("WEFT_REKEY_AFTER_MESSAGES must be above 0");
        }
        l.rekey_after_messages = m;
    }
    if let Some(s) = secs {
        if s == 0 {
            bail!("WEFT_REKEY_AFTER_SECS must be above 0");
        }
        l.rekey_after_time = Duration::from_secs(s);
        l.reject_after_time = Duration::from_secs(reject_after(s));
    }
    Ok(Some(l))
}

/// When a session rekeyed after `rekey` seconds is refused: WireGuard's 60 s later, or 1.5 ×
/// for short test settings; always later than `rekey`.
fn reject_after(rekey: u64) -> u64 {
    (rekey + 60)
        .min(rekey.saturating_mul(3) / 2 + 1)
        .max(rekey + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reject_time_stays_above_rekey_time() {
        assert_eq!(super::reject_after(120), 180);
        for s in [1u64, 2, 10, 120, 1000, u64::MAX / 4] {
            assert!(super::reject_after(s) > s, "{s}");
        }
    }
}
