//! This host's packet filter from the store as it stands. Attach, detach, expose and hide write
//! it themselves so that their change holds when they return; the agent does the same on every
//! change it sees (the whole of weft's tables each time, so the two never disagree for long).

use anyhow::Result;
use weft_firewall::{Firewall, NftFirewall};
use weft_reconcile::{desired, firewall, ClusterState};
use weft_store::Store;

pub async fn apply_state(host: &str, state: &ClusterState) -> Result<()> {
    let want = desired(host, state);
    NftFirewall::new()
        .apply(&firewall(host, state, &want))
        .await
}

pub async fn apply(store: &dyn Store, host: &str) -> Result<()> {
    let (state, _) = crate::state::load(store).await?;
    apply_state(host, &state).await
}
