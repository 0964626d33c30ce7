//! GC: remove this host's plugin-made endpoints of the network that the runtime no longer lists in
//! `cni.dev/valid-attachments`. Endpoints made otherwise (`weft attach`, Docker) are never touched.
//! Goes on past a failure and reports every one.

use rscni_plugin::error::Error;
use rscni_plugin::types::NetConf;

use super::Ctx;
use crate::config::PluginConfig;
use crate::errors::{self, Step};
use crate::labels;

pub async fn run(conf: &NetConf, cfg: PluginConfig) -> Result<(), Error> {
    let valid: Vec<(String, String)> = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| {
            Error::InvalidNetworkConfig(
                "GC needs \"cni.dev/valid-attachments\" (an empty list removes every attachment)"
                    .into(),
            )
        })?
        .iter()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let ctx = Ctx::open(cfg).await?;
    let Some(net) = ctx.network().await? else {
        return Ok(());
    };
    let eps = ctx.endpoints().await?;
    let mut failed = Vec::new();
    for ep in labels::stale(&eps, &ctx.host, &valid) {
        if let Err(e) = weft_control::detach::detach_endpoint(ctx.store.as_ref(), &net, ep).await {
            failed.push(format!("{}: {e:#}", ep.id));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(errors::at(Step::Gc, &anyhow::anyhow!(failed.join("; "))))
    }
}
