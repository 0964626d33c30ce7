//! The embedded store: one SQLite file that every weft process on a machine (lab agents, the CLI,
//! a single-host control plane) opens at the same time.
//!
//! SQLite gives us cross-process atomicity (WAL mode, `BEGIN IMMEDIATE` write transactions); the
//! etcd semantics are built on top:
//!
//! * `meta` holds the single store revision. Every write transaction that changes something bumps
//!   it exactly once and appends one row per changed key to `log` (the change log), in the same
//!   SQLite transaction. Because writers are serialised by SQLite's write lock and commits are
//!   atomic, a reader's snapshot always holds a gap-free prefix of the log.
//! * Watches poll the log for `rev > last scanned` from a snapshot, which is why they can neither
//!   miss, duplicate nor reorder events, whichever process wrote them.
//! * Leases are rows with an absolute expiry (wall clock, shared by all processes). Any process
//!   sweeps expired leases: at the start of every write and from its background poller, which
//!   wakes when the earliest lease is due, so keys vanish as long as one process has the store
//!   open.
//! * Commits by other processes reach this process's watches through inotify on the store's
//!   directory (`changes`), or by polling where inotify is unavailable.
//! * The log is compacted to the last [`SqliteOptions::retain_revisions`] revisions; a watch from
//!   before that gets [`StoreError::Compacted`].

use std::collections::HashSet;
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, watch};
use weft_store::{
    Compare, Event, EventKind, KeyValue, LeaseId, Op, Result, Revision, Store, StoreError,
    TxnResult, Watch,
};

mod changes;
use changes::{Bell, Changes, Woken};

const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    schema  INTEGER NOT NULL,
    rev     INTEGER NOT NULL,  -- the current store revision
    oldest  INTEGER NOT NULL   -- the oldest revision still in the log (watchable from)
);
INSERT OR IGNORE INTO meta (id, schema, rev, oldest) VALUES (0, 1, 1, 1);
CREATE TABLE IF NOT EXISTS kv (
    key         BLOB PRIMARY KEY,  -- BLOB so ordering and prefix ranges are bytewise, like etcd
    value       BLOB NOT NULL,
    create_rev  INTEGER NOT NULL,
    mod_rev     INTEGER NOT NULL,
    lease       INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease IS NOT NULL;
-- One row per changed key; (rev, sub) because one transaction changes several keys at one revision.
CREATE TABLE IF NOT EXISTS log (
    rev         INTEGER NOT NULL,
    sub         INTEGER NOT NULL,
    key         BLOB NOT NULL,
    kind        INTEGER NOT NULL,  -- 0 put, 1 delete
    value       BLOB NOT NULL,
    create_rev  INTEGER NOT NULL,
    lease       INTEGER,
    PRIMARY KEY (rev, sub)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    id             INTEGER PRIMARY KEY,
    ttl_ms         INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL  -- unix epoch milliseconds: comparable across processes
);
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_at_ms);
";

const KIND_PUT: i64 = 0;
const KIND_DELETE: i64 = 1;
/// Revisions a watcher reads per query, so a far-behind watcher catches up in bounded steps.
const WATCH_BATCH_REVS: i64 = 1000;
/// Longest pause of a watch between two failed reads (it gives up after 30 of them, ~12 s).
const WATCH_RETRY_MAX: Duration = Duration::from_millis(500);
/// Idle connections kept for reuse by the blocking tasks.
const POOL_IDLE_MAX: usize = 8;

/// Tuning knobs; [`SqliteOptions::default`] suits production.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How often the background poller looks for commits by other processes while watches are
    /// open, where inotify cannot tell it (with inotify: once a second, as a safety net).
    /// Same-process writes wake watches at once.
    pub poll_interval: Duration,
    /// The longest time between two looks for expired leases; the poller also wakes when the
    /// earliest lease falls due, and after any commit (which may have added or renewed one).
    pub sweep_interval: Duration,
    /// Revisions kept in the change log for watches that start in the past.
    pub retain_revisions: i64,
    /// How long a write waits for another process holding the write lock.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(5),
            sweep_interval: Duration::from_secs(1),
            retain_revisions: 10_000,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// The SQLite-backed [`Store`]. Cheap to clone; clones share connections and the poller.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// What the poller thread shares with the store handles. It must not own `Inner`, so dropping
/// the last handle (and watch) stops the thread.
struct Shared {
    path: PathBuf,
    opts: SqliteOptions,
    /// Serialises this process's writers, so they queue on a mutex instead of spinning in
    /// SQLite's busy handler against each other; other processes still contend via SQLite.
    write_lock: Mutex<()>,
    /// The highest committed revision this process knows of; watches wait on it.
    rev_tx: watch::Sender<Revision>,
    stop: AtomicBool,
}

struct Inner {
    shared: Arc<Shared>,
    pool: Mutex<Vec<Connection>>,
    /// Wakes the poller thread.
    poller: Bell,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.poller.ring();
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store file at `path` with default options.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the store file at `path`. A missing parent directory is created
    /// with mode 0700, a new file with mode 0600: the store holds the cluster's state.
    pub fn open_with(path: &Path, opts: SqliteOptions) -> Result<Self> {
        let ctx = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!("cannot open store {}: {what}: {e}", path.display()))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| ctx("creating its directory", &e))?;
            }
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| ctx("creating the file", &e))?;

        let mut conn = open_conn(path, &opts).map_err(|e| ctx("opening", &e))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| ctx("locking", &e))?;
        tx.execute_batch(SCHEMA)
            .map_err(|e| ctx("creating the schema", &e))?;
        let (schema, rev): (i64, Revision) = tx
            .query_row("SELECT schema, rev FROM meta WHERE id = 0", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| ctx("reading the schema version", &e))?;
        tx.commit().map_err(|e| ctx("creating the schema", &e))?;
        if schema != SCHEMA_VERSION {
            return Err(ctx(
                "unsupported schema",
                &format!("version {schema}, this build knows {SCHEMA_VERSION}"),
            ));
        }

        let (rev_tx, _) = watch::channel(rev);
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            opts,
            write_lock: Mutex::new(()),
            rev_tx,
            stop: AtomicBool::new(false),
        });
        let (changes, poller) =
            Changes::new(path).map_err(|e| ctx("watching its directory", &e))?;
        {
            let shared = shared.clone();
            thread::Builder::new()
                .name("weft-store-poll".into())
                .spawn(move || poll_loop(&shared, changes))
                .map_err(|e| ctx("starting the poller thread", &e))?;
        }
        tracing::debug!(path = %path.display(), rev, "opened embedded store");
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                pool: Mutex::new(vec![conn]),
                poller,
            }),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }
}

// ---------------------------------------------------------------------------------------------
// Connections and blocking execution
// ---------------------------------------------------------------------------------------------

fn open_conn(path: &Path, opts: &SqliteOptions) -> Result<Connection> {
    let (conn, mode) = open_conn_sqlite(path, opts).map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{}: could not switch to WAL mode (got {mode}); is it on a network filesystem?",
            path.display()
        )));
    }
    Ok(conn)
}

/// Opens and configures a connection; also returns the journal mode SQLite ended up in.
fn open_conn_sqlite(path: &Path, opts: &SqliteOptions) -> rusqlite::Result<(Connection, String)> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A busy timeout with short sleeps: SQLite's built-in handler backs off to 100 ms sleeps,
    // which would dominate write latency when several processes write at once.
    let timeout = opts.busy_timeout;
    let mut first_busy = Instant::now();
    conn.busy_handler(Some(move |count: i32| {
        if count == 0 {
            first_busy = Instant::now();
        }
        if first_busy.elapsed() >= timeout {
            return false;
        }
        thread::sleep(Duration::from_micros(if count < 20 { 200 } else { 1000 }));
        true
    }))?;
    // Switching to WAL can answer busy without calling the busy handler while another process
    // opens the same new file: retry it within the same timeout.
    let started = Instant::now();
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy)
                        | Some(rusqlite::ErrorCode::DatabaseLocked)
                ) && started.elapsed() < timeout =>
            {
                thread::sleep(Duration::from_millis(1));
            }
            r => break r?,
        }
    };
    // NORMAL in WAL mode survives process crashes; only an OS crash can lose the last commits.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok((conn, mode))
}

fn db_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("store is locked by another process: {e}"))
        }
        _ => StoreError::Backend(format!("sqlite: {e}")),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves nothing half-done (SQLite rolls back), so a
    // poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Runs `f` with a pooled connection on tokio's blocking pool: rusqlite blocks.
    async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared, &mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = lock(&inner.pool).pop();
            let mut conn = match conn {
                Some(c) => c,
                None => open_conn(&inner.shared.path, &inner.shared.opts)?,
            };
            let out = f(&inner.shared, &mut conn);
            let mut pool = lock(&inner.pool);
            if pool.len() < POOL_IDLE_MAX {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn key_string(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// The first key after every key starting with `prefix` (etcd's range_end), or None for "no end".
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------

/// The state of one `BEGIN IMMEDIATE` transaction.
struct Writer<'c> {
    conn: &'c Connection,
    rev: Revision,
    oldest: Revision,
    now_ms: i64,
}

impl Shared {
    /// Runs `f` inside a write transaction, after sweeping expired leases, and commits. Returns
    /// `f`'s result and the store revision after the commit; wakes this process's watches.
    fn write<T>(
        &self,
        conn: &mut Connection,
        f: impl FnOnce(&mut Writer) -> Result<T>,
    ) -> Result<(T, Revision)> {
        let _guard = lock(&self.write_lock);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let (rev, oldest) = tx
            .query_row("SELECT rev, oldest FROM meta WHERE id = 0", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(db_err)?;
        let mut w = Writer {
            conn: &tx,
            rev,
            oldest,
            now_ms: now_ms(),
        };
        w.sweep_expired()?;
        let out = f(&mut w)?;
        let new_rev = w.rev;
        if new_rev != rev {
            w.compact(self.opts.retain_revisions)?;
            tx.execute("UPDATE meta SET rev = ?1 WHERE id = 0", [new_rev])
                .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        if new_rev != rev {
            self.notify(new_rev);
        }
        Ok((out, new_rev))
    }

    fn notify(&self, rev: Revision) {
        self.rev_tx.send_if_modified(|known| {
            let newer = rev > *known;
            if newer {
                *known = rev;
            }
            newer
        });
    }
}

impl Writer<'_> {
    fn lease_exists(&self, lease: LeaseId) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM leases WHERE id = ?1")
            .and_then(|mut s| s.exists([lease]))
            .map_err(db_err)
    }

    /// Applies `ops` at one new revision (only if something actually changes).
    fn apply(&mut self, ops: &[Op]) -> Result<()> {
        let rev = self.rev + 1;
        let mut sub = 0;
        for op in ops {
            let changed = match op {
                Op::Put { key, value, lease } => {
                    self.put(rev, sub, key, value, *lease)?;
                    true
                }
                Op::Delete { key } => self.delete(rev, sub, key)?,
            };
            if changed {
                sub += 1;
            }
        }
        if sub > 0 {
            self.rev = rev;
        }
        Ok(())
    }

    fn put(
        &self,
        rev: Revision,
        sub: i64,
        key: &str,
        value: &[u8],
        lease: Option<LeaseId>,
    ) -> Result<()> {
        if let Some(lease) = lease {
            if !self.lease_exists(lease)? {
                return Err(StoreError::LeaseNotFound(lease));
            }
        }
        let key = key.as_bytes();
        let create_rev: Revision = self
            .conn
            .prepare_cached("SELECT create_rev FROM kv WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(db_err)?
            .unwrap_or(rev);
        self.conn
            .prepare_cached(
                "INSERT INTO kv (key, value, create_rev, mod_rev, lease) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key) DO UPDATE SET
                    value = excluded.value, mod_rev = excluded.mod_rev, lease = excluded.lease",
            )
            .and_then(|mut s| s.execute(params![key, value, create_rev, rev, lease]))
            .map_err(db_err)?;
        self.log(rev, sub, key, KIND_PUT, value, create_rev, lease)
    }

    fn delete(&self, rev: Revision, sub: i64, key: &str) -> Result<bool> {
        let key = key.as_bytes();
        let n = self
            .conn
            .prepare_cached("DELETE FROM kv WHERE key = ?1")
            .and_then(|mut s| s.execute([key]))
            .map_err(db_err)?;
        if n == 0 {
            return Ok(false);
        }
        // Delete events carry no create revision or lease, as etcd's do.
        self.log(rev, sub, key, KIND_DELETE, &[], 0, None)?;
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    fn log(
        &self,
        rev: Revision,
        sub: i64,
        key: &[u8],
        kind: i64,
        value: &[u8],
        create_rev: Revision,
        lease: Option<LeaseId>,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO log (rev, sub, key, kind, value, create_rev, lease)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| s.execute(params![rev, sub, key, kind, value, create_rev, lease]))
            .map_err(db_err)?;
        Ok(())
    }

    /// Deletes a lease and its keys (sorted, at one revision, like etcd); false if it is unknown.
    fn revoke(&mut self, lease: LeaseId) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM leases WHERE id = ?1")
            .and_then(|mut s| s.execute([lease]))
            .map_err(db_err)?;
        if n == 0 {
            return Ok(false);
        }
        let keys: Vec<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT key FROM kv WHERE lease = ?1 ORDER BY key")
            .and_then(|mut s| {
                s.query_map([lease], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(db_err)?;
        let ops: Vec<Op> = keys
            .into_iter()
            .map(|k| key_string(k).map(|key| Op::Delete { key }))
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)?;
        self.apply(&ops)?;
        Ok(true)
    }

    fn sweep_expired(&mut self) -> Result<()> {
        let expired: Vec<LeaseId> = self
            .conn
            .prepare_cached(
                "SELECT id FROM leases WHERE expires_at_ms <= ?1 ORDER BY expires_at_ms, id",
            )
            .and_then(|mut s| {
                s.query_map([self.now_ms], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(db_err)?;
        for lease in expired {
            tracing::debug!(lease, "lease expired; deleting its keys");
            self.revoke(lease)?;
        }
        Ok(())
    }

    /// Drops log revisions older than the retention, in chunks of a tenth of it, so a single
    /// write never pays for a large delete.
    fn compact(&mut self, retain: i64) -> Result<()> {
        let retain = retain.max(1);
        let slack = (retain / 10).max(1);
        if self.rev - self.oldest < retain + slack {
            return Ok(());
        }
        let oldest = self.rev - retain + 1;
        self.conn
            .execute("DELETE FROM log WHERE rev < ?1", [oldest])
            .map_err(db_err)?;
        self.conn
            .execute("UPDATE meta SET oldest = ?1 WHERE id = 0", [oldest])
            .map_err(db_err)?;
        tracing::debug!(oldest, "compacted the change log");
        self.oldest = oldest;
        Ok(())
    }

    fn compare_holds(&self, c: &Compare) -> Result<bool> {
        let key = match c {
            Compare::Absent(k) | Compare::ModRevision(k, _) | Compare::Value(k, _) => k,
        };
        let row: Option<(Vec<u8>, Revision)> = self
            .conn
            .prepare_cached("SELECT value, mod_rev FROM kv WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row([key.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(db_err)?;
        Ok(match (c, row) {
            (Compare::Absent(_), row) => row.is_none(),
            (Compare::ModRevision(_, want), Some((_, rev))) => rev == *want,
            (Compare::Value(_, want), Some((value, _))) => value == *want,
            (_, None) => false,
        })
    }
}

/// etcd rejects a txn that puts a key twice, or puts and deletes it; so do we, for parity.
fn check_ops(ops: &[Op]) -> Result<()> {
    let mut puts = HashSet::new();
    for op in ops {
        if let Op::Put { key, .. } = op {
            if !puts.insert(key.as_str()) {
                return Err(StoreError::Backend(format!(
                    "duplicate key given in txn request: {key}"
                )));
            }
        }
    }
    for op in ops {
        if let Op::Delete { key } = op {
            if puts.contains(key.as_str()) {
                return Err(StoreError::Backend(format!(
                    "key both put and deleted in one txn request: {key}"
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

fn read_kv(row: &rusqlite::Row) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(row.get(0)?)?,
        value: row.get(1)?,
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
        lease: row.get(4)?,
    })
}

fn read_meta(conn: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    conn.prepare_cached("SELECT rev, oldest FROM meta WHERE id = 0")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// The log entries under `prefix` with revision in (after, after + WATCH_BATCH_REVS], from one
/// snapshot. Returns the events, the revision scanned up to, and the head revision.
fn read_log(
    conn: &mut Connection,
    prefix: &str,
    after: Revision,
) -> Result<(Vec<Event>, Revision, Revision)> {
    let tx = conn.transaction().map_err(db_err)?;
    let (head, oldest) = read_meta(&tx).map_err(db_err)?;
    if after + 1 < oldest {
        return Err(StoreError::Compacted {
            requested: after + 1,
            oldest,
        });
    }
    let upto = head.min(after + WATCH_BATCH_REVS);
    if upto <= after {
        return Ok((Vec::new(), after, head));
    }
    let lo = prefix.as_bytes();
    let map = |r: &rusqlite::Row| -> rusqlite::Result<Event> {
        let kind: i64 = r.get(2)?;
        Ok(Event {
            kind: if kind == KIND_DELETE {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            kv: KeyValue {
                key: key_string(r.get(1)?)?,
                value: r.get(3)?,
                create_revision: r.get(4)?,
                mod_revision: r.get(0)?,
                lease: r.get(5)?,
            },
        })
    };
    const COLS: &str = "SELECT rev, key, kind, value, create_rev, lease FROM log";
    let events = match prefix_end(lo) {
        Some(hi) => tx
            .prepare_cached(&format!(
                "{COLS} WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev, sub"
            ))
            .and_then(|mut s| {
                s.query_map(params![after, upto, lo, hi], map)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
        None => tx
            .prepare_cached(&format!(
                "{COLS} WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 ORDER BY rev, sub"
            ))
            .and_then(|mut s| {
                s.query_map(params![after, upto, lo], map)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
    }
    .map_err(db_err)?;
    Ok((events, upto, head))
}

// ---------------------------------------------------------------------------------------------
// Background poller and watches
// ---------------------------------------------------------------------------------------------

/// One thread per open store: notices commits by other processes (told by inotify; read only
/// while this process watches something) and sweeps expired leases when the earliest is due, so
/// keys vanish even when nobody writes. Idle, it sleeps.
fn poll_loop(shared: &Shared, mut changes: Changes) {
    // Safety net when inotify reports changes: a missed event costs at most this.
    const RECHECK: Duration = Duration::from_secs(1);
    let mut conn: Option<Connection> = None;
    // Look at everything on the first pass.
    let mut changed = true;
    let mut next_sweep = Instant::now();
    let mut failing = false;
    while !shared.stop.load(Ordering::Relaxed) {
        let watching = shared.rev_tx.receiver_count() > 0;
        let sweep_due = changed || Instant::now() >= next_sweep;
        if (watching && changed) || sweep_due {
            let result = (|| -> Result<()> {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => conn.insert(open_conn(&shared.path, &shared.opts)?),
                };
                if watching {
                    let (rev, _) = read_meta(c).map_err(db_err)?;
                    shared.notify(rev);
                }
                if sweep_due {
                    let now = now_ms();
                    let earliest: Option<i64> = c
                        .prepare_cached("SELECT MIN(expires_at_ms) FROM leases")
                        .and_then(|mut s| s.query_row([], |r| r.get(0)))
                        .map_err(db_err)?;
                    if earliest.is_some_and(|t| t <= now) {
                        // `write` sweeps before running the (empty) body.
                        shared.write(c, |_| Ok(()))?;
                        // The sweep's commit wakes this loop again, which looks at what is left.
                    }
                    let until_due = earliest
                        .map(|t| Duration::from_millis(t.saturating_sub(now).max(1) as u64))
                        .unwrap_or(shared.opts.sweep_interval);
                    next_sweep = Instant::now() + until_due.min(shared.opts.sweep_interval);
                }
                Ok(())
            })();
            match result {
                Ok(()) => failing = false,
                Err(e) => {
                    // Log once per failure streak: the poller retries every tick.
                    if !failing {
                        tracing::warn!(path = %shared.path.display(), error = %e, "store poller failed; retrying");
                    }
                    failing = true;
                    conn = None;
                    next_sweep =
                        Instant::now() + shared.opts.poll_interval.max(Duration::from_millis(10));
                }
            }
        }
        let mut nap = next_sweep
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        if watching {
            let look = if changes.notifies() {
                RECHECK
            } else {
                shared.opts.poll_interval
            };
            nap = nap.min(look);
        }
        changed = match changes.wait(nap) {
            Woken::Changed => true,
            // A new watch, or stop: look now.
            Woken::Bell => true,
            // Without inotify, every wake-up is a look; with it, the safety net's.
            Woken::Timeout => watching,
        };
    }
    tracing::debug!(path = %shared.path.display(), "store poller stopped");
}

async fn watch_loop(
    inner: Arc<Inner>,
    prefix: String,
    mut scanned: Revision,
    tx: mpsc::Sender<Result<Vec<Event>>>,
    mut rev_rx: watch::Receiver<Revision>,
) {
    let mut failures = 0u32;
    loop {
        // Catch up to the head, in bounded steps.
        loop {
            let p = prefix.clone();
            match inner.run(move |_, c| read_log(c, &p, scanned)).await {
                Ok((events, upto, head)) => {
                    failures = 0;
                    scanned = upto;
                    if !events.is_empty() && tx.send(Ok(events)).await.is_err() {
                        return; // the receiver is gone
                    }
                    if upto >= head {
                        break;
                    }
                }
                Err(e @ StoreError::Compacted { .. }) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(e) => {
                    // Transient (e.g. the file is briefly locked); give up after ~12 s.
                    failures += 1;
                    tracing::warn!(prefix = %prefix, error = %e, failures, "watch poll failed");
                    if failures >= 30 {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    // A lock is usually gone within milliseconds: retry soon, then back off.
                    let pause = Duration::from_millis(10 << failures.min(6)).min(WATCH_RETRY_MAX);
                    tokio::time::sleep(pause).await;
                }
            }
        }
        tokio::select! {
            changed = rev_rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Store implementation
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_string();
        self.inner
            .run(move |_, c| {
                c.prepare_cached(
                    "SELECT key, value, create_rev, mod_rev, lease FROM kv WHERE key = ?1",
                )
                .and_then(|mut s| s.query_row([key.as_bytes()], read_kv).optional())
                .map_err(db_err)
            })
            .await
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        let op = Op::Put {
            key: key.to_string(),
            value,
            lease,
        };
        self.inner
            .run(move |s, c| Ok(s.write(c, |w| w.apply(std::slice::from_ref(&op)))?.1))
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let key = key.to_string();
        self.inner
            .run(move |s, c| {
                let (existed, _) = s.write(c, |w| {
                    let before = w.rev;
                    w.apply(&[Op::Delete { key }])?;
                    Ok(w.rev != before)
                })?;
                Ok(existed)
            })
            .await
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        check_ops(&ops)?;
        self.inner
            .run(move |s, c| {
                let (succeeded, revision) = s.write(c, |w| {
                    for cmp in &compares {
                        if !w.compare_holds(cmp)? {
                            return Ok(false);
                        }
                    }
                    w.apply(&ops)?;
                    Ok(true)
                })?;
                Ok(TxnResult {
                    succeeded,
                    revision,
                })
            })
            .await
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let prefix = prefix.to_string();
        self.inner
            .run(move |_, c| {
                let tx = c.transaction().map_err(db_err)?;
                let (rev, _) = read_meta(&tx).map_err(db_err)?;
                let lo = prefix.as_bytes();
                const COLS: &str = "SELECT key, value, create_rev, mod_rev, lease FROM kv";
                let kvs = match prefix_end(lo) {
                    Some(hi) => tx
                        .prepare_cached(&format!(
                            "{COLS} WHERE key >= ?1 AND key < ?2 ORDER BY key"
                        ))
                        .and_then(|mut s| {
                            s.query_map(params![lo, hi], read_kv)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        }),
                    None => tx
                        .prepare_cached(&format!("{COLS} WHERE key >= ?1 ORDER BY key"))
                        .and_then(|mut s| {
                            s.query_map([lo], read_kv)?
                                .collect::<rusqlite::Result<Vec<_>>>()
                        }),
                }
                .map_err(db_err)?;
                Ok((kvs, rev))
            })
            .await
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<Watch> {
        // Subscribe before reading the head, so no commit can slip between the two unnoticed.
        let rev_rx = self.inner.shared.rev_tx.subscribe();
        self.inner.poller.ring();
        let (head, oldest) = self.inner.run(|_, c| read_meta(c).map_err(db_err)).await?;
        let scanned = if from <= 0 {
            head
        } else if from < oldest {
            return Err(StoreError::Compacted {
                requested: from,
                oldest,
            });
        } else {
            from - 1
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(watch_loop(
            self.inner.clone(),
            prefix.to_string(),
            scanned,
            tx,
            rev_rx,
        ));
        Ok(Watch { events: rx })
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl_ms = (ttl.as_millis() as i64).max(1);
        self.inner
            .run(move |s, c| {
                let (id, _) = s.write(c, |w| loop {
                    // Random positive ids, like etcd's, so ids are not reused across restarts.
                    let id = rand::random::<i64>() & i64::MAX;
                    if id == 0 || w.lease_exists(id)? {
                        continue;
                    }
                    w.conn
                        .execute(
                            "INSERT INTO leases (id, ttl_ms, expires_at_ms) VALUES (?1, ?2, ?3)",
                            params![id, ttl_ms, w.now_ms + ttl_ms],
                        )
                        .map_err(db_err)?;
                    break Ok(id);
                })?;
                Ok(id)
            })
            .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        let (found, _) = self
            .inner
            .run(move |s, c| {
                s.write(c, |w| {
                    // Expired leases were swept by `write`, so a match is a live lease.
                    let n = w
                        .conn
                        .execute(
                            "UPDATE leases SET expires_at_ms = ?2 + ttl_ms WHERE id = ?1",
                            params![lease, w.now_ms],
                        )
                        .map_err(db_err)?;
                    Ok(n > 0)
                })
            })
            .await?;
        if found {
            Ok(())
        } else {
            Err(StoreError::LeaseNotFound(lease))
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let (found, _) = self
            .inner
            .run(move |s, c| s.write(c, |w| w.revoke(lease)))
            .await?;
        if found {
            Ok(())
        } else {
            Err(StoreError::LeaseNotFound(lease))
        }
    }

    async fn lease_ttl(&self, lease: LeaseId) -> Result<Option<Duration>> {
        self.inner
            .run(move |_, c| {
                let expires: Option<i64> = c
                    .prepare_cached("SELECT expires_at_ms FROM leases WHERE id = ?1")
                    .and_then(|mut s| s.query_row([lease], |r| r.get(0)).optional())
                    .map_err(db_err)?;
                // An expired lease that no one has swept yet is already gone for callers.
                let left = expires.map(|e| e - now_ms()).filter(|&ms| ms > 0);
                Ok(left.map(|ms| Duration::from_millis(ms as u64)))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte_below_ff() {
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
