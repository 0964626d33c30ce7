//! STATUS: can this host serve ADD? Not without the store, the network or a running agent (50);
//! when the agent is gone while containers are attached, they may also have lost peers (51).

use rscni_plugin::error::Error;

use super::Ctx;
use crate::config::PluginConfig;

pub async fn run(cfg: PluginConfig) -> Result<(), Error> {
    let network = cfg.network.clone();
    let ctx = Ctx::open(cfg)
        .await
        .map_err(|e| Error::PluginNotAvailable(e.details().to_string()))?;
    let unavailable = |e: Error| Error::PluginNotAvailable(e.details().to_string());
    if ctx.network().await.map_err(unavailable)?.is_none() {
        return Err(Error::PluginNotAvailable(format!(
            "no weft network {network:?} in the store"
        )));
    }
    if let Err(e) = weft_control::hosts::registered(ctx.store.as_ref(), &ctx.host).await {
        let eps = ctx.endpoints().await.map_err(unavailable)?;
        let details = format!("{e:#}");
        return Err(if eps.iter().any(|ep| ep.host == ctx.host) {
            Error::PluginNotAvailableLimitedConnectivity(details)
        } else {
            Error::PluginNotAvailable(details)
        });
    }
    Ok(())
}
