//! DEL: remove what ADD made for (CNI_CONTAINERID, CNI_IFNAME) on this host. Idempotent: nothing
//! to remove (a second DEL, a network or netns already gone) is success.

use rscni_plugin::error::Error;
use rscni_plugin::types::Args;

use super::Ctx;
use crate::config::PluginConfig;
use crate::errors::{self, Step};
use crate::labels;

pub async fn run(args: &Args, cfg: PluginConfig) -> Result<(), Error> {
    let (container_id, ifname) = super::attachment(args)?;
    let ctx = Ctx::open(cfg).await?;
    let Some(net) = ctx.network().await? else {
        return Ok(());
    };
    let eps = ctx.endpoints().await?;
    for ep in labels::matching(&eps, &ctx.host, &container_id, &ifname) {
        weft_control::detach::detach_endpoint(ctx.store.as_ref(), &net, ep)
            .await
            .map_err(|e| errors::at(Step::Detach, &e))?;
    }
    Ok(())
}
