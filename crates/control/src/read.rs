//! Typed reads of store records.

use anyhow::Result;
use weft_model::Record;
use weft_store::{KeyValue, Revision, Store};

pub async fn get<T: Record>(store: &dyn Store, key: &str) -> Result<Option<(T, KeyValue)>> {
    match store.get(key).await? {
        Some(kv) => Ok(Some((T::decode(key, &kv.value)?, kv))),
        None => Ok(None),
    }
}

/// Every record under a prefix, and the revision the list was read at.
pub async fn list<T: Record>(
    store: &dyn Store,
    prefix: &str,
) -> Result<(Vec<(T, KeyValue)>, Revision)> {
    let (kvs, rev) = store.list(prefix).await?;
    let mut out = Vec::with_capacity(kvs.len());
    for kv in kvs {
        out.push((T::decode(&kv.key, &kv.value)?, kv));
    }
    Ok((out, rev))
}
