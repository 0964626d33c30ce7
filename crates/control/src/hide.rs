//! Hide: takes back the host's address on a network (`weft expose`). Its record and allocation
//! go, so every other host drops its entries; here the bridge loses the address (or goes, when
//! no container of the network is left on this host).

use anyhow::{bail, Result};
use weft_model::Endpoint;
use weft_store::Store;

use crate::{attach, detach, expose, networks};

pub async fn hide(store: &dyn Store, host: &str, network: &str) -> Result<Endpoint> {
    let net = networks::get(store, network).await?;
    let Some(ep) = expose::exposure(store, host, network).await? else {
        bail!("host {host} is not exposed on network {network}: nothing to hide");
    };
    attach::delete_records(store, &ep).await?;
    detach::settle_local(store, host, &net).await?;
    Ok(ep)
}
