use anyhow::Result;
use weft_model::keys;
use weft_reconcile::ClusterState;
use weft_store::{Revision, Store};

/// The whole cluster state from one list. Records that cannot be read are skipped with an error
/// logged, never guessed at.
pub async fn load(store: &dyn Store) -> Result<(ClusterState, Revision)> {
    let (kvs, rev) = store.list(keys::ROOT).await?;
    let mut state = ClusterState::default();
    for kv in kvs {
        if let Err(e) = state.apply(&kv.key, Some(&kv.value)) {
            tracing::error!("ignoring record: {e}");
        }
    }
    Ok((state, rev))
}
