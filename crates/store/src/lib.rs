//! The store contract. Backends live in their own crates (`weft-store-embedded`, `weft-store-etcd`)
//! and depend on this one; code that picks a backend from a URL lives above them (`weft-control`).
//!
//! Semantics follow etcd v3 so that both backends can honour them exactly: every write bumps a single
//! cluster-wide revision; each key carries the revision that created it and the one that last modified it.

pub mod contract;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

/// A store revision: strictly increasing across all writes.
pub type Revision = i64;
/// A lease id (non-zero).
pub type LeaseId = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a delete, `value` is empty, `mod_revision` is the revision of the delete,
    /// `create_revision` is 0 and `lease` is `None` (as etcd reports it).
    pub kv: KeyValue,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent(String),
    /// The key exists and its mod_revision equals the given one.
    ModRevision(String, Revision),
    /// The key exists and its value equals the given bytes.
    Value(String, Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    pub succeeded: bool,
    /// The store revision after the transaction (unchanged when it failed or wrote nothing).
    pub revision: Revision,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested watch revision has been compacted away: re-list and watch from the list's revision.
    #[error("revision {requested} was compacted (oldest available is {oldest}); re-list and watch again")]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    #[error("lease {0} not found or expired")]
    LeaseNotFound(LeaseId),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A live prefix watch. Events arrive in revision order, each exactly once, also across
/// reconnects of the backend. The stream ends with an `Err` on a fatal condition (for example
/// `Compacted`), after which the caller re-lists.
pub struct Watch {
    pub events: mpsc::Receiver<Result<Vec<Event>>>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Writes `value` at `key`, optionally under a lease; returns the new revision.
    /// `LeaseNotFound` if the lease does not exist (any more).
    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision>;

    /// Deletes `key`; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Atomically: if every compare holds, apply every op. A transaction that writes bumps the
    /// revision exactly once: every key it puts or deletes gets that one revision. A key may be
    /// put at most once per transaction and not both put and deleted (etcd rejects that).
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult>;

    /// All keys under `prefix`, sorted by key, and the store revision they were read at.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)>;

    /// Events for keys under `prefix` with revision >= `from`, in order, without gaps or duplicates.
    /// `from <= 0` means "from now": only writes after the current revision. All events of one
    /// revision (one transaction) arrive in the same batch, in the order of the transaction's ops.
    /// `Compacted` if `from` is older than the history the backend still keeps.
    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch>;

    /// Grants a lease; keys put under it vanish (with delete events) when it expires or is revoked.
    /// Backends may round the TTL up (etcd counts whole seconds). Putting a key without a lease
    /// detaches it from the lease it had.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Refreshes a lease's TTL. `LeaseNotFound` if it already expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;

    /// Revokes a lease, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    /// Remaining TTL of a lease, or `None` when it is gone.
    async fn lease_ttl(&self, lease: LeaseId) -> Result<Option<Duration>>;

    /// Convenience compare-and-swap on one key: `expected` = None means "absent", Some(rev) means
    /// "unchanged since rev"; `new` = None deletes.
    async fn cas(
        &self,
        key: &str,
        expected: Option<Revision>,
        new: Option<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Result<TxnResult> {
        let compare = match expected {
            None => Compare::Absent(key.to_string()),
            Some(rev) => Compare::ModRevision(key.to_string(), rev),
        };
        let op = match new {
            Some(value) => Op::Put {
                key: key.to_string(),
                value,
                lease,
            },
            None => Op::Delete {
                key: key.to_string(),
            },
        };
        self.txn(vec![compare], vec![op]).await
    }
}
