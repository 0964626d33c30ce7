//! The CNI operations, one file each. They do the I/O (store, netlink) through weft's control
//! library, the same code `weft attach`/`weft detach` run, so records, IPAM and rollback are shared.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;

use std::sync::Arc;

use rscni_plugin::error::Error;
use rscni_plugin::types::Args;
use weft_model::{keys, Endpoint, Network};
use weft_store::Store;

use crate::config::PluginConfig;
use crate::errors::{self, Step};

/// What every operation works with: the configuration, the store and this host's name.
pub struct Ctx {
    pub cfg: PluginConfig,
    pub store: Arc<dyn Store>,
    pub host: String,
}

impl Ctx {
    pub async fn open(cfg: PluginConfig) -> Result<Ctx, Error> {
        let host = weft_control::hosts::local_host_id(cfg.host.as_deref())
            .map_err(|e| errors::at(Step::Host, &e))?;
        let store = weft_control::open_store(&cfg.store)
            .await
            .map_err(|e| errors::at(Step::Store, &e))?;
        Ok(Ctx { cfg, store, host })
    }

    /// The configured network; None when it does not exist.
    pub async fn network(&self) -> Result<Option<Network>, Error> {
        weft_control::read::get::<Network>(self.store.as_ref(), &keys::network(&self.cfg.network))
            .await
            .map(|o| o.map(|(n, _)| n))
            .map_err(|e| errors::at(Step::Read, &e))
    }

    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        weft_control::networks::endpoints(self.store.as_ref(), &self.cfg.network)
            .await
            .map_err(|e| errors::at(Step::Read, &e))
    }
}

/// CNI_CONTAINERID and CNI_IFNAME, which ADD, DEL and CHECK need.
pub fn attachment(args: &Args) -> Result<(String, String), Error> {
    let id = args
        .container_id()
        .map(|c| c.as_ref().to_string())
        .ok_or_else(|| Error::missing_env(&["CNI_CONTAINERID"]))?;
    let ifname = args
        .ifname()
        .map(|i| i.as_ref().to_string())
        .ok_or_else(|| Error::missing_env(&["CNI_IFNAME"]))?;
    weft_model::validate::ifname(&ifname)
        .map_err(|e| Error::InvalidEnvValue(format!("CNI_IFNAME: {e}")))?;
    Ok((id, ifname))
}

/// CNI_NETNS, which ADD and CHECK need.
pub fn netns(args: &Args) -> Result<String, Error> {
    args.netns()
        .map(|p| p.display().to_string())
        .ok_or_else(|| Error::missing_env(&["CNI_NETNS"]))
}
