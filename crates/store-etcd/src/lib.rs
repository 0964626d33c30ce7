//! The etcd v3 store backend. The [`Store`] contract was modelled on etcd, so most calls map one
//! to one; the work here is in the watch, which survives connection loss: on a stream error it
//! reconnects with backoff and re-watches from the revision after the last one it delivered, so
//! the consumer sees no gap and no duplicate.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions,
    Txn, TxnOp, WatchOptions, WatchStream,
};
use tokio::sync::mpsc;
use weft_store::{
    Compare, Event, EventKind, KeyValue, LeaseId, Op, Result, Revision, Store, StoreError,
    TxnResult, Watch,
};

/// Keys per page when listing, so large prefixes stay under gRPC's message size limit.
const LIST_PAGE: i64 = 1000;
/// gRPC status codes (tonic's `Code` is not re-exported by etcd-client).
const GRPC_UNKNOWN: i32 = 2;
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_NOT_FOUND: i32 = 5;
const GRPC_OUT_OF_RANGE: i32 = 11;
const GRPC_UNAVAILABLE: i32 = 14;

/// Tuning knobs; [`EtcdOptions::default`] suits production.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Bound on each unary call. etcd-client's balanced channel waits for a reachable endpoint
    /// rather than failing, so without this a call hangs for as long as etcd is down.
    pub request_timeout: Duration,
    /// Bound on establishing a TCP connection to one endpoint.
    pub connect_timeout: Duration,
    /// Longest pause between a watch's reconnection attempts.
    pub max_backoff: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// The etcd-backed [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    endpoints: Arc<str>,
    opts: Arc<EtcdOptions>,
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://host:port` or `host:port`) with default options,
    /// and checks that it answers.
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        Self::connect_with(endpoints, EtcdOptions::default()).await
    }

    /// Connects with explicit options, and checks that etcd answers.
    pub async fn connect_with(endpoints: &[String], opts: EtcdOptions) -> Result<Self> {
        let shown = endpoints.join(",");
        let unreachable = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("cannot reach etcd at {shown}: {e}"))
        };
        if endpoints.is_empty() {
            return Err(unreachable(&"no endpoints given"));
        }
        let connect = ConnectOptions::new()
            .with_connect_timeout(opts.connect_timeout)
            // HTTP/2 pings notice a silently dead connection (no FIN/RST), which would
            // otherwise leave a watch stream waiting forever.
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = tokio::time::timeout(
            opts.request_timeout,
            Client::connect(endpoints, Some(connect)),
        )
        .await
        .map_err(|_| unreachable(&format!("no answer within {:?}", opts.request_timeout)))?
        .map_err(|e| unreachable(&e))?;
        let store = Self {
            client,
            endpoints: shown.clone().into(),
            opts: Arc::new(opts),
        };
        // The channel connects lazily: probe, so a wrong address fails here and clearly.
        let probe = store
            .call(Call::Safe, || {
                let mut maintenance = store.client.maintenance_client();
                async move { maintenance.status().await }
            })
            .await;
        match probe {
            Err(e) => Err(e),
            Ok(Err(e)) => Err(unreachable(&e)),
            Ok(Ok(status)) => {
                tracing::debug!(endpoints = %shown, version = status.version(), "connected to etcd");
                Ok(store)
            }
        }
    }

    /// Runs one etcd call under the request timeout. `make` builds the call afresh for each try.
    /// Tried again: a call that never reached etcd (its connection could not be made, e.g. to a
    /// member that is down while others are up: the client spreads calls over the members), one
    /// that a member refused for want of a leader (nothing was proposed), and a `Safe` call
    /// (a read, or one whose repetition changes nothing) that failed because the leader changed
    /// under it, as happens during an election. A write that may have been proposed is never
    /// repeated, so no write can apply twice.
    async fn call<T, F, Fut>(
        &self,
        kind: Call,
        mut make: F,
    ) -> Result<std::result::Result<T, etcd_client::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.opts.request_timeout;
        let mut tries = 0u32;
        let mut last: Option<etcd_client::Error> = None;
        loop {
            let res = match tokio::time::timeout_at(deadline, make()).await {
                Ok(res) => res,
                // Out of time while retrying: the failure that made us retry says more.
                Err(_) => match last {
                    Some(e) => return Ok(Err(e)),
                    None => {
                        return Err(StoreError::Unavailable(format!(
                            "etcd at {} did not answer within {:?}",
                            self.endpoints, self.opts.request_timeout
                        )))
                    }
                },
            };
            let e = match res {
                Ok(v) => return Ok(Ok(v)),
                Err(e) => e,
            };
            match retry(&error_text(&e), kind) {
                // Nobody listening: a few quick tries (another member may take the call), then
                // the error, rather than making a user wait out the whole timeout.
                Retry::Connect if tries < CONNECT_RETRIES => {}
                // An election takes about a second: keep trying until the deadline.
                Retry::Election => {}
                _ => return Ok(Err(e)),
            }
            tries += 1;
            tracing::debug!(endpoints = %self.endpoints, error = %e, tries, "retrying an etcd call");
            last = Some(e);
            let pause = Duration::from_millis(20 * u64::from(tries)).min(RETRY_PAUSE_MAX);
            tokio::time::sleep(pause).await;
        }
    }

    /// The current store revision.
    async fn head_revision(&self) -> Result<Revision> {
        let resp = self
            .call(Call::Safe, || {
                let mut kv = self.client.kv_client();
                async move {
                    kv.get(vec![0], Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await?
            .map_err(|e| self.err(e))?;
        header_revision(resp.header())
    }

    /// Creates a watch on `[key, end)` from `start` and waits for etcd to confirm it.
    async fn open_watch(&self, key: &[u8], end: &[u8], start: Revision) -> Result<WatchStream> {
        let opts = WatchOptions::new()
            .with_range(end.to_vec())
            .with_start_revision(start);
        let (stream, first) = self
            .call(Call::Safe, || {
                let mut wc = self.client.watch_client();
                let opts = opts.clone();
                async move {
                    let mut stream = wc.watch(key.to_vec(), Some(opts)).await?;
                    let first = stream.message().await?;
                    Ok((stream, first))
                }
            })
            .await?
            .map_err(|e| self.err(e))?;
        match first {
            Some(resp) if resp.canceled() && resp.compact_revision() > 0 => {
                Err(StoreError::Compacted {
                    requested: start,
                    oldest: resp.compact_revision(),
                })
            }
            Some(resp) if resp.canceled() => Err(StoreError::Backend(format!(
                "etcd refused the watch: {}",
                resp.cancel_reason()
            ))),
            Some(resp) if resp.created() => Ok(stream),
            Some(_) => Err(StoreError::Backend(
                "etcd sent events before confirming the watch".into(),
            )),
            None => Err(StoreError::Unavailable(format!(
                "etcd at {} closed the watch stream while creating it",
                self.endpoints
            ))),
        }
    }

    fn err(&self, e: etcd_client::Error) -> StoreError {
        map_err(&self.endpoints, e)
    }

    /// Like `err`, but reports etcd's "lease not found" as `LeaseNotFound(lease)`.
    fn lease_err(&self, e: etcd_client::Error, lease: LeaseId) -> StoreError {
        if is_lease_not_found(&e) {
            StoreError::LeaseNotFound(lease)
        } else {
            self.err(e)
        }
    }
}

/// Longest pause between two tries of a call that may be repeated.
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(200);

/// Tries of a call whose connection could not be made, before giving up.
const CONNECT_RETRIES: u32 = 10;

/// Whether repeating a call can change the store more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// A read, or a call whose repetition has the effect of one (lease refresh, revoke).
    Safe,
    /// A write: repeated only when it surely never reached a leader.
    Write,
}

/// The text of a gRPC status with its sources, or of a transport error; empty for other errors
/// (which are never retried).
fn error_text(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let mut t = s.message().to_string();
            let mut src = std::error::Error::source(s);
            while let Some(c) = src {
                t.push_str(&c.to_string());
                src = c.source();
            }
            t
        }
        etcd_client::Error::TransportError(t) => format!("{t:?}"),
        _ => String::new(),
    }
}

/// Why a failed call may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// It never reached etcd: the connection could not be made.
    Connect,
    /// An election: the member had no leader, so nothing was proposed ("etcdserver: no
    /// leader"), or, for a `Safe` call, the leader changed while it was in flight or the
    /// member's connection closed under it (a member that just died).
    Election,
    No,
}

/// Whether a call that failed with `text` may be tried again. A leader change while a call was
/// in flight ("etcdserver: leader changed", or a timeout "due to previous leader failure"), or a
/// connection that closed under it, may have let a write through, so only `Safe` calls repeat
/// then.
fn retry(text: &str, kind: Call) -> Retry {
    let never_sent = text.contains("tcp connect error")
        || text.contains("ConnectError")
        || text.contains("Connection refused");
    let never_proposed = text.contains("etcdserver: no leader");
    let leader_changed =
        text.contains("etcdserver: leader changed") || text.contains("previous leader failure");
    let connection_lost =
        text.contains("connection closed") || text.contains("operation was canceled");
    if never_sent {
        Retry::Connect
    } else if never_proposed || (kind == Call::Safe && (leader_changed || connection_lost)) {
        Retry::Election
    } else {
        Retry::No
    }
}

fn map_err(endpoints: &str, e: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    match &e {
        // tonic reports a broken connection as status Unknown carrying the transport error as
        // its source; errors etcd itself sends have no source.
        E::GRpcStatus(s)
            if matches!(s.code() as i32, GRPC_UNAVAILABLE | GRPC_DEADLINE_EXCEEDED)
                || (s.code() as i32 == GRPC_UNKNOWN && std::error::Error::source(s).is_some()) =>
        {
            StoreError::Unavailable(format!("etcd at {endpoints}: {}", s.message()))
        }
        E::TransportError(_) | E::IoError(_) => {
            StoreError::Unavailable(format!("etcd at {endpoints}: {e}"))
        }
        _ => StoreError::Backend(format!("etcd: {e}")),
    }
}

fn is_lease_not_found(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() as i32 == GRPC_NOT_FOUND && s.message().contains("lease not found")
        }
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
        _ => false,
    }
}

fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.code() as i32 == GRPC_OUT_OF_RANGE && s.message().contains("compacted"))
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    h.map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd response without a header".into()))
}

fn convert_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        // Keys are written as UTF-8 by this crate; a foreign binary key is shown, not fatal.
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: Some(kv.lease()).filter(|&l| l != 0),
    }
}

fn convert_event(e: &etcd_client::Event) -> Option<Event> {
    let kv = convert_kv(e.kv()?);
    let kind = match e.event_type() {
        EventType::Put => EventKind::Put,
        EventType::Delete => EventKind::Delete,
    };
    Some(Event { kind, kv })
}

/// The `[key, range_end)` that covers exactly the keys starting with `prefix`.
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    // etcd has no empty key: "\0" with range_end "\0" means every key.
    if prefix.is_empty() {
        return (vec![0], vec![0]);
    }
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.as_bytes().to_vec(), end);
        }
    }
    (prefix.as_bytes().to_vec(), vec![0])
}

fn to_etcd_compares(compares: &[Compare]) -> Vec<EtcdCompare> {
    compares
        .iter()
        .map(|c| match c {
            // A missing key reads as create_revision 0 in etcd.
            Compare::Absent(k) => EtcdCompare::create_revision(k.as_str(), CompareOp::Equal, 0),
            Compare::ModRevision(k, rev) if *rev > 0 => {
                EtcdCompare::mod_revision(k.as_str(), CompareOp::Equal, *rev)
            }
            // etcd would match a missing key against mod_revision 0; the contract says the key
            // must exist, and no existing key has a revision <= 0: a compare that never holds.
            Compare::ModRevision(k, _) => {
                EtcdCompare::create_revision(k.as_str(), CompareOp::Less, 0)
            }
            // etcd fails a value compare on a missing key, as the contract wants.
            Compare::Value(k, v) => EtcdCompare::value(k.as_str(), CompareOp::Equal, v.clone()),
        })
        .collect()
}

fn to_etcd_op(op: &Op) -> TxnOp {
    match op {
        Op::Put { key, value, lease } => TxnOp::put(
            key.as_str(),
            value.clone(),
            lease.map(|l| PutOptions::new().with_lease(l)),
        ),
        Op::Delete { key } => TxnOp::delete(key.as_str(), None),
    }
}

// ---------------------------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------------------------

/// What ended the pumping of one watch stream.
enum StreamEnd {
    ReceiverGone,
    Compacted(Revision),
    Broken(String),
}

/// Forwards events until the stream breaks. `next` is the first revision not yet delivered;
/// events below it (replayed after a reconnect) are dropped, so nothing is delivered twice.
async fn pump(
    stream: &mut WatchStream,
    next: &mut Revision,
    tx: &mpsc::Sender<Result<Vec<Event>>>,
) -> StreamEnd {
    loop {
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = tx.closed() => return StreamEnd::ReceiverGone,
        };
        let resp = match msg {
            Err(e) => return StreamEnd::Broken(e.to_string()),
            Ok(None) => return StreamEnd::Broken("stream closed".into()),
            Ok(Some(resp)) => resp,
        };
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                return StreamEnd::Compacted(resp.compact_revision());
            }
            return StreamEnd::Broken(format!("watch canceled: {}", resp.cancel_reason()));
        }
        let events: Vec<Event> = resp
            .events()
            .iter()
            .filter_map(convert_event)
            .filter(|e| e.kv.mod_revision >= *next)
            .collect();
        let Some(last) = events.last() else { continue };
        // etcd sends whole revisions per response (we do not ask for fragments).
        *next = last.kv.mod_revision + 1;
        if tx.send(Ok(events)).await.is_err() {
            return StreamEnd::ReceiverGone;
        }
    }
}

async fn watch_task(
    store: EtcdStore,
    prefix: String,
    mut next: Revision,
    mut stream: WatchStream,
    tx: mpsc::Sender<Result<Vec<Event>>>,
) {
    let (key, end) = prefix_range(&prefix);
    loop {
        match pump(&mut stream, &mut next, &tx).await {
            StreamEnd::ReceiverGone => return,
            StreamEnd::Compacted(oldest) => {
                let _ = tx
                    .send(Err(StoreError::Compacted {
                        requested: next,
                        oldest,
                    }))
                    .await;
                return;
            }
            StreamEnd::Broken(reason) => {
                tracing::warn!(endpoints = %store.endpoints, prefix = %prefix, next, %reason,
                    "etcd watch broke; re-watching");
            }
        }
        let mut backoff = Duration::from_millis(50);
        let mut attempts = 0u32;
        stream = loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = tx.closed() => return,
            }
            attempts += 1;
            let result = tokio::select! {
                r = store.open_watch(&key, &end, next) => r,
                _ = tx.closed() => return,
            };
            match result {
                Ok(s) => {
                    tracing::info!(endpoints = %store.endpoints, prefix = %prefix, next, attempts,
                        "etcd watch resumed");
                    break s;
                }
                Err(e @ StoreError::Compacted { .. }) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(e) => {
                    // Log at attempts 1, 2, 4, 8...: etcd may be down for a while.
                    if attempts.is_power_of_two() {
                        tracing::warn!(endpoints = %store.endpoints, prefix = %prefix, attempts,
                            error = %e, "cannot re-watch etcd yet");
                    }
                    backoff = (backoff * 2).min(store.opts.max_backoff);
                }
            }
        };
    }
}

// ---------------------------------------------------------------------------------------------
// The Store implementation
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .call(Call::Safe, || {
                let mut kv = self.client.kv_client();
                async move { kv.get(key, None).await }
            })
            .await?
            .map_err(|e| self.err(e))?;
        Ok(resp.kvs().first().map(convert_kv))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let opts = lease.map(|l| PutOptions::new().with_lease(l));
        let resp = self
            .call(Call::Write, || {
                let mut kv = self.client.kv_client();
                let (value, opts) = (value.clone(), opts.clone());
                async move { kv.put(key, value, opts).await }
            })
            .await?
            .map_err(|e| self.lease_err(e, lease.unwrap_or_default()))?;
        header_revision(resp.header())
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let resp = self
            .call(Call::Write, || {
                let mut kv = self.client.kv_client();
                async move { kv.delete(key, None).await }
            })
            .await?
            .map_err(|e| self.err(e))?;
        Ok(resp.deleted() > 0)
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        let txn = Txn::new()
            .when(to_etcd_compares(&compares))
            .and_then(ops.iter().map(to_etcd_op).collect::<Vec<_>>());
        let res = self
            .call(Call::Write, || {
                let mut kv = self.client.kv_client();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
        match res {
            Ok(resp) => Ok(TxnResult {
                succeeded: resp.succeeded(),
                revision: header_revision(resp.header())?,
            }),
            Err(e) if is_lease_not_found(&e) => {
                // etcd does not say which lease; name the first one that is gone.
                for op in &ops {
                    if let Op::Put { lease: Some(l), .. } = op {
                        if self.lease_ttl(*l).await?.is_none() {
                            return Err(StoreError::LeaseNotFound(*l));
                        }
                    }
                }
                Err(self.err(e))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let (start, end) = prefix_range(prefix);
        // Pages are read at the first page's revision, so the list is one consistent snapshot.
        // A compaction between pages invalidates that revision: start over (a few times).
        let mut attempt = 0;
        'retry: loop {
            attempt += 1;
            let mut kvs = Vec::new();
            let mut rev = 0;
            let mut from = start.clone();
            loop {
                let mut opts = GetOptions::new()
                    .with_range(end.clone())
                    .with_limit(LIST_PAGE);
                if rev > 0 {
                    opts = opts.with_revision(rev);
                }
                let got = self
                    .call(Call::Safe, || {
                        let mut kv = self.client.kv_client();
                        let (from, opts) = (from.clone(), opts.clone());
                        async move { kv.get(from, Some(opts)).await }
                    })
                    .await?;
                let resp = match got {
                    Ok(resp) => resp,
                    Err(e) if is_compacted(&e) && attempt < 3 => continue 'retry,
                    Err(e) => return Err(self.err(e)),
                };
                if rev == 0 {
                    rev = header_revision(resp.header())?;
                }
                kvs.extend(resp.kvs().iter().map(convert_kv));
                match resp.kvs().last() {
                    Some(last) if resp.more() => {
                        from = last.key().to_vec();
                        from.push(0); // the smallest key after `last`
                    }
                    _ => return Ok((kvs, rev)),
                }
            }
        }
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        let start = if from <= 0 {
            self.head_revision().await? + 1
        } else {
            from
        };
        let (key, end) = prefix_range(prefix);
        // etcd reports a compacted start revision only asynchronously on the stream; a read at
        // that revision tells us now, so the caller gets `Compacted` from this call.
        let probe = GetOptions::new()
            .with_range(end.clone())
            .with_revision(start)
            .with_count_only();
        let got = self
            .call(Call::Safe, || {
                let mut kv = self.client.kv_client();
                let (key, probe) = (key.clone(), probe.clone());
                async move { kv.get(key, Some(probe)).await }
            })
            .await?;
        let compacted = match got {
            Ok(_) => false,
            Err(e) if is_compacted(&e) => true,
            // "required revision is a future revision": nothing to replay yet, fine.
            Err(etcd_client::Error::GRpcStatus(s))
                if s.code() as i32 == GRPC_OUT_OF_RANGE && s.message().contains("future") =>
            {
                false
            }
            Err(e) => return Err(self.err(e)),
        };
        let mut stream = self.open_watch(&key, &end, start).await?;
        if compacted {
            // The cancellation carrying etcd's compact revision follows the creation promptly.
            let oldest = tokio::time::timeout(self.opts.request_timeout, async {
                while let Ok(Some(resp)) = stream.message().await {
                    if resp.canceled() {
                        return Some(resp.compact_revision());
                    }
                }
                None
            })
            .await;
            return Err(StoreError::Compacted {
                requested: start,
                oldest: oldest
                    .ok()
                    .flatten()
                    .filter(|&r| r > 0)
                    .unwrap_or(start + 1),
            });
        }
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(watch_task(
            self.clone(),
            prefix.to_string(),
            start,
            stream,
            tx,
        ));
        Ok(Watch { events: rx })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        // etcd counts whole seconds: round up so a lease never lives shorter than asked.
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let resp = self
            .call(Call::Write, || {
                let mut lease = self.client.lease_client();
                async move { lease.grant(secs.max(1) as i64, None).await }
            })
            .await?
            .map_err(|e| self.err(e))?;
        if !resp.error().is_empty() {
            return Err(StoreError::Backend(format!(
                "etcd lease grant: {}",
                resp.error()
            )));
        }
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        // etcd-client's keep_alive sends one refresh and waits for its answer; the stream
        // closes when the returned handles drop.
        self.call(Call::Safe, || {
            let mut client = self.client.lease_client();
            async move { client.keep_alive(lease).await }
        })
        .await?
        .map(drop)
        .map_err(|e| self.lease_err(e, lease))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.call(Call::Write, || {
            let mut client = self.client.lease_client();
            async move { client.revoke(lease).await }
        })
        .await?
        .map(drop)
        .map_err(|e| self.lease_err(e, lease))
    }

    async fn lease_ttl(&self, lease: LeaseId) -> Result<Option<Duration>> {
        let resp = self
            .call(Call::Safe, || {
                let mut client = self.client.lease_client();
                async move { client.time_to_live(lease, None).await }
            })
            .await?
            .map_err(|e| self.lease_err(e, lease));
        match resp {
            // etcd answers -1 for a lease it does not know.
            Ok(r) if r.ttl() < 0 => Ok(None),
            Ok(r) => Ok(Some(Duration::from_secs(r.ttl() as u64))),
            Err(StoreError::LeaseNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{prefix_range, retry, Call, Retry};

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range("a/"), (b"a/".to_vec(), b"a0".to_vec()));
        assert_eq!(prefix_range(""), (vec![0], vec![0]));
    }

    #[test]
    fn which_failures_are_retried() {
        let connect = "transport error: tcp connect error: Connection refused (os error 111)";
        let no_leader = "etcdserver: no leader";
        let changed = "etcdserver: leader changed";
        let timed_out = "etcdserver: request timed out, possibly due to previous leader failure";
        let closed = "operation was canceledhyper::Error(Canceled, \"connection closed\")";
        for kind in [Call::Safe, Call::Write] {
            assert_eq!(retry(connect, kind), Retry::Connect);
            assert_eq!(retry(no_leader, kind), Retry::Election);
        }
        // A write may have been committed by the new leader: never twice.
        for text in [changed, timed_out, closed] {
            assert_eq!(retry(text, Call::Safe), Retry::Election);
            assert_eq!(retry(text, Call::Write), Retry::No);
        }
        let others = [
            "etcdserver: mvcc: required revision has been compacted",
            "",
            "lease not found",
        ];
        for other in others {
            assert_eq!(retry(other, Call::Safe), Retry::No, "{other}");
        }
    }
}
