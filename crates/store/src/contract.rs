//! The behaviour every [`Store`] backend must show, as reusable checks.
//!
//! Each check takes a store and a key prefix that nothing else writes under, so one store (even a
//! shared etcd) can serve every check, and checks can run at the same time. Assertions therefore
//! never rely on the global revision being quiet: other checks write concurrently. A failing check
//! panics with a message naming what was expected and what the backend did.
//!
//! A backend's tests run the whole suite with `run_all(Arc::new(store)).await` from a
//! multi-threaded tokio test; see [`run_all`].

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{Compare, Event, EventKind, KeyValue, Op, Revision, Store, StoreError, Watch};

type CheckFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Check = fn(Arc<dyn Store>, String) -> CheckFuture;

/// The TTL the lease checks grant: etcd's minimum lease TTL is about 2 s on default settings.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// How long after the grant a lease's keys may take to vanish.
pub const LEASE_EXPIRY_DEADLINE: Duration = Duration::from_secs(5);
/// How long a watch may take to deliver an event before a check gives up.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Per-check bound, so a hung backend fails the suite instead of hanging it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(90);

macro_rules! check {
    ($name:ident) => {
        (stringify!($name), |s, p| {
            Box::pin(async move { $name(s, p).await }) as CheckFuture
        })
    };
}

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    check!(basic_kv),
    check!(revisions_increase),
    check!(txn_compares),
    check!(txn_rejects_bad_ops),
    check!(cas_helper),
    check!(list_prefix),
    check!(watch_events),
    check!(watch_replays_history),
    check!(watch_from_now),
    check!(watch_concurrent_writers),
    check!(lease_expiry),
    check!(lease_keep_alive_extends),
    check!(lease_revoke),
    check!(concurrent_create),
    check!(concurrent_cas_counter),
];

/// Runs every check in [`CHECKS`] concurrently against `store`, each under its own fresh prefix.
/// Panics after all of them finished, listing every failed check with its message.
pub async fn run_all(store: Arc<dyn Store>) {
    let namespace = unique_namespace();
    let started = Instant::now();
    let handles: Vec<_> = CHECKS
        .iter()
        .map(|(name, check)| {
            let fut = check(store.clone(), format!("{namespace}/{name}/"));
            let name = *name;
            (
                name,
                tokio::spawn(async move {
                    let t = Instant::now();
                    if tokio::time::timeout(CHECK_TIMEOUT, fut).await.is_err() {
                        panic!("timed out after {CHECK_TIMEOUT:?}");
                    }
                    t.elapsed()
                }),
            )
        })
        .collect();
    let mut failures = Vec::new();
    for (name, handle) in handles {
        match handle.await {
            Ok(took) => eprintln!("contract check {name}: ok ({took:.1?})"),
            Err(e) => {
                let msg = if e.is_panic() {
                    panic_message(e.into_panic())
                } else {
                    e.to_string()
                };
                eprintln!("contract check {name}: FAILED: {msg}");
                failures.push(format!("{name}: {msg}"));
            }
        }
    }
    eprintln!("contract suite took {:.1?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} store contract check(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// A prefix unique to this run, so repeated runs against one persistent store do not collide.
pub fn unique_namespace() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("contract-{}-{nanos:x}", std::process::id())
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "panic with a non-string payload".to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A compact, comparable view of an event for assertions: (kind, key, value, mod, create).
pub type EventView = (EventKind, String, Vec<u8>, Revision, Revision);

pub fn view(e: &Event) -> EventView {
    (
        e.kind.clone(),
        e.kv.key.clone(),
        e.kv.value.clone(),
        e.kv.mod_revision,
        e.kv.create_revision,
    )
}

fn put_view(key: &str, value: &[u8], mod_rev: Revision, create_rev: Revision) -> EventView {
    (
        EventKind::Put,
        key.to_string(),
        value.to_vec(),
        mod_rev,
        create_rev,
    )
}

fn del_view(key: &str, rev: Revision) -> EventView {
    (EventKind::Delete, key.to_string(), Vec::new(), rev, 0)
}

/// Receives until at least `n` events arrived; panics on timeout, stream end or error.
pub async fn recv_events(w: &mut Watch, n: usize, within: Duration, what: &str) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got: Vec<Event> = Vec::new();
    while got.len() < n {
        match tokio::time::timeout_at(deadline, w.events.recv()).await {
            Err(_) => panic!(
                "{what}: expected {n} events within {within:?}, got {}: {:?}",
                got.len(),
                got.iter().map(view).collect::<Vec<_>>()
            ),
            Ok(None) => panic!(
                "{what}: watch stream ended after {} of {n} events",
                got.len()
            ),
            Ok(Some(Err(e))) => panic!(
                "{what}: watch failed after {} of {n} events: {e}",
                got.len()
            ),
            Ok(Some(Ok(batch))) => {
                assert!(!batch.is_empty(), "{what}: watch delivered an empty batch");
                got.extend(batch);
            }
        }
    }
    got
}

/// Asserts that no event arrives for `quiet`.
pub async fn assert_no_more_events(w: &mut Watch, quiet: Duration, what: &str) {
    match tokio::time::timeout(quiet, w.events.recv()).await {
        Err(_) => {}
        Ok(Some(Ok(batch))) => panic!(
            "{what}: unexpected extra events {:?}",
            batch.iter().map(view).collect::<Vec<_>>()
        ),
        Ok(Some(Err(e))) => panic!("{what}: watch failed: {e}"),
        Ok(None) => panic!("{what}: watch stream ended unexpectedly"),
    }
}

/// Asserts that revisions never decrease, and that events sharing a revision arrived together.
fn assert_ordered(events: &[Event], what: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[0].kv.mod_revision <= pair[1].kv.mod_revision,
            "{what}: events out of order: {:?} then {:?}",
            view(&pair[0]),
            view(&pair[1])
        );
    }
}

async fn get_kv(store: &Arc<dyn Store>, key: &str, what: &str) -> KeyValue {
    store
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("{what}: get({key}) failed: {e}"))
        .unwrap_or_else(|| panic!("{what}: key {key} is missing"))
}

async fn assert_absent(store: &Arc<dyn Store>, key: &str, what: &str) {
    let got = store.get(key).await.expect("get");
    assert!(
        got.is_none(),
        "{what}: key {key} should be absent, got {got:?}"
    );
}

async fn put(store: &Arc<dyn Store>, key: &str, value: &[u8]) -> Revision {
    store
        .put(key, value.to_vec(), None)
        .await
        .unwrap_or_else(|e| panic!("put({key}) failed: {e}"))
}

async fn list_rev(store: &Arc<dyn Store>, prefix: &str) -> Revision {
    store.list(prefix).await.expect("list").1
}

fn put_op(key: &str, value: &[u8]) -> Op {
    Op::Put {
        key: key.to_string(),
        value: value.to_vec(),
        lease: None,
    }
}

fn del_op(key: &str) -> Op {
    Op::Delete {
        key: key.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// get/put/delete and the create/mod revision bookkeeping.
pub async fn basic_kv(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}k");
    assert_absent(&store, &k, "never-written key").await;

    let r1 = put(&store, &k, b"v1").await;
    assert!(r1 > 0, "put returned a non-positive revision {r1}");
    let kv = get_kv(&store, &k, "after first put").await;
    assert_eq!(
        kv,
        KeyValue {
            key: k.clone(),
            value: b"v1".to_vec(),
            create_revision: r1,
            mod_revision: r1,
            lease: None
        },
        "a new key's create and mod revision are the put's revision"
    );

    let r2 = put(&store, &k, b"v2").await;
    assert!(r2 > r1, "second put revision {r2} is not above {r1}");
    let kv = get_kv(&store, &k, "after update").await;
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (b"v2".as_slice(), r1, r2),
        "an update keeps create_revision and moves mod_revision"
    );

    assert!(
        store.delete(&k).await.expect("delete"),
        "delete of an existing key returned false"
    );
    assert_absent(&store, &k, "after delete").await;
    assert!(
        !store.delete(&k).await.expect("delete"),
        "delete of a missing key returned true"
    );

    let r3 = put(&store, &k, b"v3").await;
    assert!(r3 > r2, "put after delete: revision {r3} is not above {r2}");
    let kv = get_kv(&store, &k, "after re-create").await;
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (r3, r3),
        "a re-created key starts a new life: create_revision is the new put's"
    );

    // Empty values and keys with unusual characters round-trip.
    let empty = format!("{p}empty");
    put(&store, &empty, b"").await;
    assert_eq!(get_kv(&store, &empty, "empty value").await.value, b"");
    let odd = format!("{p}ünï cødé/\u{7f}~");
    let bytes: Vec<u8> = (0u8..=255).collect();
    put(&store, &odd, &bytes).await;
    let kv = get_kv(&store, &odd, "unicode key").await;
    assert_eq!(
        (kv.key, kv.value),
        (odd, bytes),
        "unicode key / binary value round trip"
    );
}

/// Every write gets a strictly larger revision; list reports a revision covering the writes.
pub async fn revisions_increase(store: Arc<dyn Store>, p: String) {
    let mut last = 0;
    for i in 0..20 {
        let r = put(&store, &format!("{p}k{}", i % 3), format!("{i}").as_bytes()).await;
        assert!(
            r > last,
            "write {i}: revision {r} is not above the previous {last}"
        );
        last = r;
    }
    let t = store
        .txn(vec![], vec![put_op(&format!("{p}t"), b"x")])
        .await
        .expect("txn");
    assert!(
        t.succeeded && t.revision > last,
        "txn revision {} not above {last}",
        t.revision
    );
    last = t.revision;
    assert!(store.delete(&format!("{p}k0")).await.expect("delete"));
    let (kvs, rev) = store.list(&p).await.expect("list");
    assert!(
        rev > last,
        "list revision {rev} does not cover the delete after {last}"
    );
    for kv in &kvs {
        assert!(
            kv.mod_revision <= rev,
            "listed {kv:?} is newer than the list revision {rev}"
        );
    }
    // A delete of a missing key writes nothing, so it must not produce an event (checked by
    // watching: a no-op would otherwise show up as a spurious delete).
    let mut w = store.watch(&p, rev + 1).await.expect("watch");
    assert!(!store.delete(&format!("{p}missing")).await.expect("delete"));
    let r = put(&store, &format!("{p}after"), b"1").await;
    let got = recv_events(&mut w, 1, EVENT_TIMEOUT, "no-op delete").await;
    assert_eq!(
        got.iter().map(view).collect::<Vec<_>>(),
        vec![put_view(&format!("{p}after"), b"1", r, r)],
        "a delete of a missing key must not produce an event"
    );
}

/// Transactions with Absent / ModRevision / Value compares, both outcomes.
pub async fn txn_compares(store: Arc<dyn Store>, p: String) {
    let a = format!("{p}a");
    let b = format!("{p}b");
    let c = format!("{p}c");
    let rc = put(&store, &c, b"c0").await;

    // Absent holds: the put applies, with the txn's revision.
    let res = store
        .txn(vec![Compare::Absent(a.clone())], vec![put_op(&a, b"1")])
        .await
        .expect("txn");
    assert!(res.succeeded, "Absent on a missing key must hold");
    let kv_a = get_kv(&store, &a, "Absent txn").await;
    assert_eq!(
        (
            kv_a.value.as_slice(),
            kv_a.create_revision,
            kv_a.mod_revision
        ),
        (b"1".as_slice(), res.revision, res.revision),
        "the txn's put carries the txn's revision"
    );

    // Absent fails: none of the ops apply.
    let res = store
        .txn(
            vec![Compare::Absent(a.clone())],
            vec![put_op(&a, b"2"), put_op(&b, b"x"), del_op(&c)],
        )
        .await
        .expect("txn");
    assert!(!res.succeeded, "Absent on an existing key must fail");
    assert!(
        res.revision >= kv_a.mod_revision,
        "failed txn reported an older revision"
    );
    assert_eq!(
        get_kv(&store, &a, "failed txn").await,
        kv_a,
        "failed txn changed a"
    );
    assert_absent(&store, &b, "failed txn must not create b").await;
    assert_eq!(
        get_kv(&store, &c, "failed txn").await.mod_revision,
        rc,
        "failed txn touched c"
    );

    // ModRevision holds with the current mod revision, fails with a stale one.
    let res = store
        .txn(
            vec![Compare::ModRevision(a.clone(), kv_a.mod_revision)],
            vec![put_op(&a, b"3")],
        )
        .await
        .expect("txn");
    assert!(
        res.succeeded,
        "ModRevision with the current revision must hold"
    );
    let res = store
        .txn(
            vec![Compare::ModRevision(a.clone(), kv_a.mod_revision)],
            vec![put_op(&a, b"4"), del_op(&c)],
        )
        .await
        .expect("txn");
    assert!(
        !res.succeeded,
        "ModRevision with a stale revision must fail"
    );
    assert_eq!(get_kv(&store, &a, "stale ModRevision").await.value, b"3");
    assert_eq!(
        get_kv(&store, &c, "stale ModRevision").await.mod_revision,
        rc
    );

    // ModRevision on a missing key fails, whatever the revision (also 0).
    for rev in [0, 1, kv_a.mod_revision] {
        let res = store
            .txn(
                vec![Compare::ModRevision(b.clone(), rev)],
                vec![put_op(&b, b"m")],
            )
            .await
            .expect("txn");
        assert!(
            !res.succeeded,
            "ModRevision({rev}) on a missing key must fail"
        );
        assert_absent(&store, &b, "ModRevision on a missing key").await;
    }

    // Value holds on equal bytes, fails otherwise, and fails on a missing key (even for b"").
    let res = store
        .txn(
            vec![Compare::Value(a.clone(), b"3".to_vec())],
            vec![put_op(&a, b"5")],
        )
        .await
        .expect("txn");
    assert!(res.succeeded, "Value with the current value must hold");
    let res = store
        .txn(
            vec![Compare::Value(a.clone(), b"3".to_vec())],
            vec![put_op(&a, b"6")],
        )
        .await
        .expect("txn");
    assert!(!res.succeeded, "Value with an old value must fail");
    assert_eq!(get_kv(&store, &a, "failed Value").await.value, b"5");
    let res = store
        .txn(
            vec![Compare::Value(b.clone(), Vec::new())],
            vec![put_op(&b, b"z")],
        )
        .await
        .expect("txn");
    assert!(!res.succeeded, "Value on a missing key must fail");
    assert_absent(&store, &b, "Value on a missing key").await;

    // Every compare must hold.
    let res = store
        .txn(
            vec![
                Compare::Absent(b.clone()),
                Compare::Value(a.clone(), b"wrong".to_vec()),
            ],
            vec![put_op(&b, b"1")],
        )
        .await
        .expect("txn");
    assert!(!res.succeeded, "one false compare must fail the txn");
    assert_absent(&store, &b, "partly false compares").await;

    // All hold: several ops apply at one revision.
    let res = store
        .txn(
            vec![
                Compare::Absent(b.clone()),
                Compare::Value(a.clone(), b"5".to_vec()),
                Compare::ModRevision(c.clone(), rc),
            ],
            vec![put_op(&b, b"1"), del_op(&c), put_op(&a, b"7")],
        )
        .await
        .expect("txn");
    assert!(res.succeeded, "all compares hold");
    let kv_b = get_kv(&store, &b, "multi-op txn").await;
    let kv_a = get_kv(&store, &a, "multi-op txn").await;
    assert_eq!(
        (kv_b.mod_revision, kv_a.mod_revision),
        (res.revision, res.revision),
        "every key written by one txn carries the txn's single revision"
    );
    assert_absent(&store, &c, "multi-op txn deleted c").await;

    // No compares: unconditional.
    let d = format!("{p}d");
    let res = store
        .txn(vec![], vec![put_op(&d, b"1")])
        .await
        .expect("txn");
    assert!(res.succeeded, "a txn without compares always succeeds");
    assert_eq!(
        get_kv(&store, &d, "unconditional txn").await.mod_revision,
        res.revision
    );

    // A txn whose only op writes nothing (delete of a missing key) still succeeds.
    let res = store
        .txn(vec![Compare::Absent(c.clone())], vec![del_op(&c)])
        .await
        .expect("txn");
    assert!(res.succeeded, "Absent(c) holds after c was deleted");
}

/// Ops a backend must refuse: unknown leases, and one key written twice in one txn.
pub async fn txn_rejects_bad_ops(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}k");
    let bogus: i64 = 0x5eed_0000_0000_0001;
    match store.put(&k, b"x".to_vec(), Some(bogus)).await {
        Err(StoreError::LeaseNotFound(id)) => {
            assert_eq!(id, bogus, "LeaseNotFound names the lease")
        }
        other => panic!("put under an unknown lease: expected LeaseNotFound, got {other:?}"),
    }
    assert_absent(&store, &k, "put under an unknown lease").await;
    let res = store
        .txn(
            vec![],
            vec![
                put_op(&format!("{p}other"), b"1"),
                Op::Put {
                    key: k.clone(),
                    value: b"x".to_vec(),
                    lease: Some(bogus),
                },
            ],
        )
        .await;
    assert!(
        matches!(res, Err(StoreError::LeaseNotFound(id)) if id == bogus),
        "txn put under an unknown lease: expected LeaseNotFound, got {res:?}"
    );
    assert_absent(
        &store,
        &format!("{p}other"),
        "rejected txn must apply nothing",
    )
    .await;

    let res = store
        .txn(vec![], vec![put_op(&k, b"1"), put_op(&k, b"2")])
        .await;
    assert!(
        res.is_err(),
        "a txn putting one key twice must be rejected, got {res:?}"
    );
    let res = store.txn(vec![], vec![put_op(&k, b"1"), del_op(&k)]).await;
    assert!(
        res.is_err(),
        "a txn putting and deleting one key must be rejected, got {res:?}"
    );
    assert_absent(&store, &k, "rejected txns apply nothing").await;
}

/// The `cas` convenience: None = absent, Some(rev) = unchanged since rev, new None = delete.
pub async fn cas_helper(store: Arc<dyn Store>, p: String) {
    let k = format!("{p}k");
    let res = store
        .cas(&k, None, Some(b"1".to_vec()), None)
        .await
        .expect("cas");
    assert!(res.succeeded, "cas create on a missing key");
    let r1 = get_kv(&store, &k, "cas create").await.mod_revision;
    assert_eq!(r1, res.revision);

    let res = store
        .cas(&k, None, Some(b"2".to_vec()), None)
        .await
        .expect("cas");
    assert!(!res.succeeded, "cas create on an existing key must fail");
    assert_eq!(get_kv(&store, &k, "cas create failed").await.value, b"1");

    let res = store
        .cas(&k, Some(r1), Some(b"2".to_vec()), None)
        .await
        .expect("cas");
    assert!(res.succeeded, "cas update with the current revision");
    let r2 = res.revision;
    let res = store
        .cas(&k, Some(r1), Some(b"3".to_vec()), None)
        .await
        .expect("cas");
    assert!(!res.succeeded, "cas update with a stale revision must fail");
    assert_eq!(get_kv(&store, &k, "stale cas").await.value, b"2");

    let res = store.cas(&k, Some(r1), None, None).await.expect("cas");
    assert!(!res.succeeded, "cas delete with a stale revision must fail");
    let res = store.cas(&k, Some(r2), None, None).await.expect("cas");
    assert!(res.succeeded, "cas delete with the current revision");
    assert_absent(&store, &k, "cas delete").await;
    let res = store.cas(&k, Some(r2), None, None).await.expect("cas");
    assert!(!res.succeeded, "cas delete of a missing key must fail");

    let lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("grant");
    let res = store
        .cas(&k, None, Some(b"l".to_vec()), Some(lease))
        .await
        .expect("cas");
    assert!(res.succeeded);
    assert_eq!(
        get_kv(&store, &k, "cas with lease").await.lease,
        Some(lease)
    );
    store.revoke_lease(lease).await.expect("revoke");
    assert_absent(&store, &k, "cas key under a revoked lease").await;
}

/// list returns exactly the keys under the prefix, sorted, with a covering revision.
pub async fn list_prefix(store: Arc<dyn Store>, p: String) {
    let keys = [
        "a/2", "ab", "a/1", "a", "a/1/x", "b", "a/0", "ü/1", "üx", "ü", "v", "a/~", "a0",
    ];
    let mut last = 0;
    for k in keys {
        last = put(&store, &format!("{p}{k}"), k.as_bytes()).await;
    }
    let names = |kvs: &[KeyValue]| -> Vec<String> {
        kvs.iter().map(|kv| kv.key[p.len()..].to_string()).collect()
    };

    let (kvs, rev) = store.list(&format!("{p}a/")).await.expect("list");
    assert_eq!(
        names(&kvs),
        ["a/0", "a/1", "a/1/x", "a/2", "a/~"],
        "list(\"a/\") must hold exactly the keys under a/, sorted (not \"a\", \"ab\", \"a0\")"
    );
    assert!(
        rev >= last,
        "list revision {rev} is older than the last put {last}"
    );
    for kv in &kvs {
        assert_eq!(
            kv.value,
            &kv.key.as_bytes()[p.len()..],
            "listed value of {}",
            kv.key
        );
        assert!(kv.create_revision > 0 && kv.mod_revision >= kv.create_revision);
    }

    let (kvs, _) = store.list(&format!("{p}ü/")).await.expect("list");
    assert_eq!(names(&kvs), ["ü/1"], "non-ASCII prefix is prefix-exact");

    let (kvs, _) = store.list(&p).await.expect("list");
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(
        names(&kvs),
        sorted,
        "list of the whole prefix, sorted bytewise"
    );

    let (kvs, rev) = store.list(&format!("{p}nothing/")).await.expect("list");
    assert!(kvs.is_empty(), "empty prefix listed {kvs:?}");
    assert!(
        rev >= last,
        "an empty list still reports the store revision"
    );

    let (kvs, _) = store.list(&format!("{p}a/1")).await.expect("list");
    assert_eq!(
        names(&kvs),
        ["a/1", "a/1/x"],
        "a prefix includes the key equal to it"
    );
}

/// A watch delivers puts and deletes under its prefix, in order, exactly once.
pub async fn watch_events(store: Arc<dyn Store>, p: String) {
    let w_prefix = format!("{p}w/");
    let rev = list_rev(&store, &p).await;
    let mut w = store.watch(&w_prefix, rev + 1).await.expect("watch");
    let (ka, kb, kc) = (
        format!("{w_prefix}a"),
        format!("{w_prefix}b"),
        format!("{w_prefix}c"),
    );

    let r1 = put(&store, &ka, b"1").await;
    let r2 = put(&store, &kb, b"2").await;
    put(&store, &format!("{p}wx"), b"outside").await; // shares the bytes "w" but not "w/"
    let r3 = put(&store, &ka, b"3").await;
    assert!(store.delete(&ka).await.expect("delete"));
    let t = store
        .txn(vec![], vec![put_op(&kc, b"c"), del_op(&kb)])
        .await
        .expect("txn");
    let got = recv_events(&mut w, 6, EVENT_TIMEOUT, "watch_events").await;
    let delete_rev = got.get(3).map(|e| e.kv.mod_revision).unwrap_or_default();
    assert!(
        delete_rev > r3 && delete_rev < t.revision,
        "delete revision {delete_rev}"
    );
    assert_eq!(
        got.iter().map(view).collect::<Vec<_>>(),
        vec![
            put_view(&ka, b"1", r1, r1),
            put_view(&kb, b"2", r2, r2),
            put_view(&ka, b"3", r3, r1),
            del_view(&ka, delete_rev),
            put_view(&kc, b"c", t.revision, t.revision),
            del_view(&kb, t.revision),
        ],
        "watch must deliver exactly the writes under the prefix, in order"
    );
    for e in &got {
        if e.kind == EventKind::Delete {
            assert_eq!(e.kv.lease, None, "delete events carry no lease");
        }
    }
    assert_no_more_events(&mut w, Duration::from_millis(300), "watch_events").await;
}

/// A watch from an old revision replays history, then continues live.
pub async fn watch_replays_history(store: Arc<dyn Store>, p: String) {
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(put(&store, &format!("{p}k{}", i % 4), format!("{i}").as_bytes()).await);
    }
    assert!(store.delete(&format!("{p}k0")).await.expect("delete"));
    let t = store
        .txn(vec![], vec![put_op(&format!("{p}k9"), b"t")])
        .await
        .expect("txn");

    let mut w = store.watch(&p, revs[0]).await.expect("watch");
    let got = recv_events(&mut w, 12, EVENT_TIMEOUT, "replay").await;
    assert_ordered(&got, "replay");
    let puts: Vec<Revision> = got[..10].iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        puts, revs,
        "replay must deliver every historical put at its revision"
    );
    let del_rev = got[10].kv.mod_revision;
    assert!(
        del_rev > revs[9] && del_rev < t.revision,
        "replayed delete at {del_rev}"
    );
    assert_eq!(
        got[10..].iter().map(view).collect::<Vec<_>>(),
        vec![
            del_view(&format!("{p}k0"), del_rev),
            put_view(&format!("{p}k9"), b"t", t.revision, t.revision),
        ],
        "replay ends with the delete and the txn"
    );
    for (i, e) in got[..10].iter().enumerate() {
        assert_eq!(
            e.kv.value,
            format!("{i}").as_bytes(),
            "replayed value of put {i}"
        );
    }

    // Live events follow the replay seamlessly.
    let live = put(&store, &format!("{p}live"), b"l").await;
    let got = recv_events(&mut w, 1, EVENT_TIMEOUT, "live after replay").await;
    assert_eq!(
        got.iter().map(view).collect::<Vec<_>>(),
        vec![put_view(&format!("{p}live"), b"l", live, live)]
    );

    // A watch from the middle of history starts exactly there.
    let mut w2 = store.watch(&p, revs[5]).await.expect("watch");
    let got = recv_events(&mut w2, 8, EVENT_TIMEOUT, "replay from the middle").await;
    assert_eq!(
        got[0].kv.mod_revision, revs[5],
        "first replayed event is at `from`"
    );
    assert_eq!(got.last().map(|e| e.kv.mod_revision), Some(live));
    assert_no_more_events(
        &mut w2,
        Duration::from_millis(200),
        "replay from the middle",
    )
    .await;
}

/// `from <= 0` watches from now: older writes are not replayed.
pub async fn watch_from_now(store: Arc<dyn Store>, p: String) {
    put(&store, &format!("{p}old"), b"old").await;
    let mut w = store.watch(&p, 0).await.expect("watch");
    let r = put(&store, &format!("{p}new"), b"new").await;
    let got = recv_events(&mut w, 1, EVENT_TIMEOUT, "watch from now").await;
    assert_eq!(
        got.iter().map(view).collect::<Vec<_>>(),
        vec![put_view(&format!("{p}new"), b"new", r, r)],
        "a watch from now must not replay older writes"
    );
}

/// 4 tasks write 200 keys concurrently; two watchers each see every write exactly once, in order.
pub async fn watch_concurrent_writers(store: Arc<dyn Store>, p: String) {
    const TASKS: usize = 4;
    const PER_TASK: usize = 50;
    let rev = list_rev(&store, &p).await;
    let mut w1 = store.watch(&p, rev + 1).await.expect("watch");
    let mut w2 = store.watch(&p, rev + 1).await.expect("watch");

    let writers: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let p = p.clone();
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..PER_TASK {
                    // Keys repeat, so updates (not only creates) race too.
                    let key = format!("{p}t{t}/{}", i % 10);
                    revs.push(put(&store, &key, format!("{t}-{i}").as_bytes()).await);
                }
                revs
            })
        })
        .collect();
    let mut written = BTreeSet::new();
    for w in writers {
        for r in w.await.expect("writer task") {
            assert!(written.insert(r), "two writes got the same revision {r}");
        }
    }
    assert_eq!(written.len(), TASKS * PER_TASK);

    for (name, w) in [("watcher 1", &mut w1), ("watcher 2", &mut w2)] {
        let got = recv_events(w, TASKS * PER_TASK, Duration::from_secs(30), name).await;
        let revs: Vec<Revision> = got.iter().map(|e| e.kv.mod_revision).collect();
        for pair in revs.windows(2) {
            assert!(
                pair[0] < pair[1],
                "{name}: revisions not strictly increasing: {pair:?}"
            );
        }
        let seen: BTreeSet<Revision> = revs.iter().copied().collect();
        assert_eq!(
            seen, written,
            "{name}: the watched revisions differ from the written ones"
        );
        assert!(got.iter().all(|e| e.kind == EventKind::Put));
        assert_no_more_events(w, Duration::from_millis(200), name).await;
    }
}

/// Keys under an expiring lease vanish, with delete events, within the deadline.
pub async fn lease_expiry(store: Arc<dyn Store>, p: String) {
    let granted = Instant::now();
    let lease = store.grant_lease(LEASE_TTL).await.expect("grant");
    assert_ne!(lease, 0, "lease ids are non-zero");
    let ttl = store.lease_ttl(lease).await.expect("ttl");
    assert!(
        matches!(ttl, Some(t) if t > Duration::ZERO && t <= LEASE_TTL),
        "fresh lease TTL {ttl:?} should be in (0, {LEASE_TTL:?}]"
    );

    let (k1, k2, k3) = (format!("{p}l1"), format!("{p}l2"), format!("{p}plain"));
    store
        .put(&k1, b"1".to_vec(), Some(lease))
        .await
        .expect("put under lease");
    store
        .put(&k2, b"2".to_vec(), Some(lease))
        .await
        .expect("put under lease");
    put(&store, &k3, b"3").await;
    assert_eq!(get_kv(&store, &k1, "leased key").await.lease, Some(lease));
    let rev = list_rev(&store, &p).await;
    let mut w = store.watch(&p, rev + 1).await.expect("watch");

    tokio::time::sleep(Duration::from_secs(1).saturating_sub(granted.elapsed())).await;
    get_kv(&store, &k1, "leased key half way through its TTL").await;

    let left = LEASE_EXPIRY_DEADLINE.saturating_sub(granted.elapsed());
    let got = recv_events(&mut w, 2, left, "lease expiry deletes").await;
    let mut keys: Vec<&str> = got.iter().map(|e| e.kv.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [k1.as_str(), k2.as_str()],
        "expiry deletes exactly the leased keys"
    );
    assert!(
        got.iter().all(|e| e.kind == EventKind::Delete),
        "expiry events are deletes: {got:?}"
    );
    assert_eq!(
        got[0].kv.mod_revision, got[1].kv.mod_revision,
        "an expiring lease deletes its keys in one revision"
    );
    let took = granted.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "lease expired too early ({took:?})"
    );

    assert_absent(&store, &k1, "expired").await;
    assert_absent(&store, &k2, "expired").await;
    get_kv(&store, &k3, "key without a lease survives").await;
    assert_eq!(
        store.lease_ttl(lease).await.expect("ttl"),
        None,
        "expired lease has no TTL"
    );
    match store.keep_alive(lease).await {
        Err(StoreError::LeaseNotFound(id)) => assert_eq!(id, lease),
        other => panic!("keep_alive on an expired lease: expected LeaseNotFound, got {other:?}"),
    }
    match store.put(&k1, b"again".to_vec(), Some(lease)).await {
        Err(StoreError::LeaseNotFound(_)) => {}
        other => panic!("put under an expired lease: expected LeaseNotFound, got {other:?}"),
    }
    assert_no_more_events(&mut w, Duration::from_millis(200), "after expiry").await;
}

/// keep_alive pushes expiry out: a key outlives its TTL while the lease is refreshed.
pub async fn lease_keep_alive_extends(store: Arc<dyn Store>, p: String) {
    let lease = store.grant_lease(LEASE_TTL).await.expect("grant");
    let k = format!("{p}k");
    store
        .put(&k, b"1".to_vec(), Some(lease))
        .await
        .expect("put");
    let start = Instant::now();
    while start.elapsed() < LEASE_TTL + Duration::from_millis(1500) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        store
            .keep_alive(lease)
            .await
            .unwrap_or_else(|e| panic!("keep_alive after {:?}: {e}", start.elapsed()));
    }
    get_kv(
        &store,
        &k,
        "key under a refreshed lease, past the original TTL",
    )
    .await;
    let ttl = store.lease_ttl(lease).await.expect("ttl");
    assert!(
        matches!(ttl, Some(t) if t > Duration::ZERO && t <= LEASE_TTL),
        "refreshed lease TTL {ttl:?}"
    );
    store.revoke_lease(lease).await.expect("revoke");
    assert_absent(&store, &k, "after revoke").await;
}

/// Revoking deletes the lease's keys (one revision, delete events); keys re-put without the
/// lease were detached and survive; a revoked lease is gone for every lease call.
pub async fn lease_revoke(store: Arc<dyn Store>, p: String) {
    let lease = store
        .grant_lease(Duration::from_secs(60))
        .await
        .expect("grant");
    let (a, b, c, d) = (
        format!("{p}a"),
        format!("{p}b"),
        format!("{p}c"),
        format!("{p}d"),
    );
    for k in [&a, &b, &c] {
        store
            .put(k, b"x".to_vec(), Some(lease))
            .await
            .expect("put under lease");
    }
    put(&store, &c, b"detached").await;
    assert_eq!(get_kv(&store, &c, "re-put without lease").await.lease, None);
    put(&store, &d, b"plain").await;
    let ttl = store
        .lease_ttl(lease)
        .await
        .expect("ttl")
        .expect("live lease has a TTL");
    assert!(
        ttl > Duration::from_secs(50) && ttl <= Duration::from_secs(60),
        "TTL {ttl:?}"
    );

    let rev = list_rev(&store, &p).await;
    let mut w = store.watch(&p, rev + 1).await.expect("watch");
    store.revoke_lease(lease).await.expect("revoke");
    let got = recv_events(&mut w, 2, EVENT_TIMEOUT, "revoke deletes").await;
    let r = got[0].kv.mod_revision;
    assert_eq!(
        got.iter().map(view).collect::<Vec<_>>(),
        vec![del_view(&a, r), del_view(&b, r)],
        "revoke deletes the leased keys, sorted, in one revision"
    );
    assert_absent(&store, &a, "revoked").await;
    assert_absent(&store, &b, "revoked").await;
    assert_eq!(get_kv(&store, &c, "detached key").await.value, b"detached");
    get_kv(&store, &d, "plain key").await;
    assert_eq!(store.lease_ttl(lease).await.expect("ttl"), None);
    assert!(
        matches!(store.revoke_lease(lease).await, Err(StoreError::LeaseNotFound(id)) if id == lease),
        "revoking twice: expected LeaseNotFound"
    );
    assert!(
        matches!(store.keep_alive(lease).await, Err(StoreError::LeaseNotFound(id)) if id == lease),
        "keep_alive on a revoked lease: expected LeaseNotFound"
    );
    assert_no_more_events(&mut w, Duration::from_millis(200), "after revoke").await;

    // Two grants give two distinct leases.
    let l1 = store
        .grant_lease(Duration::from_secs(30))
        .await
        .expect("grant");
    let l2 = store
        .grant_lease(Duration::from_secs(30))
        .await
        .expect("grant");
    assert_ne!(l1, l2, "lease ids must be unique");
    store.revoke_lease(l1).await.expect("revoke");
    store.revoke_lease(l2).await.expect("revoke");
}

/// 8 tasks race to create one key: exactly one wins, and its value is stored.
pub async fn concurrent_create(store: Arc<dyn Store>, p: String) {
    for round in 0..3 {
        let k = format!("{p}race{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let (store, k, barrier) = (store.clone(), k.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let res = store.cas(&k, None, Some(vec![i]), None).await.expect("cas");
                    (i, res.succeeded)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (i, won) = t.await.expect("task");
            if won {
                winners.push(i);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one creator must win, got {winners:?}"
        );
        assert_eq!(get_kv(&store, &k, "race").await.value, vec![winners[0]]);
    }
}

/// 4 tasks increment a counter with cas retry loops: no increment may be lost.
pub async fn concurrent_cas_counter(store: Arc<dyn Store>, p: String) {
    const TASKS: u64 = 4;
    const EACH: u64 = 10;
    let k = format!("{p}counter");
    put(&store, &k, b"0").await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                for _ in 0..EACH {
                    loop {
                        let kv = store.get(&k).await.expect("get").expect("counter");
                        let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                        let res = store
                            .cas(
                                &k,
                                Some(kv.mod_revision),
                                Some((n + 1).to_string().into()),
                                None,
                            )
                            .await
                            .expect("cas");
                        if res.succeeded {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let v = get_kv(&store, &k, "counter").await.value;
    assert_eq!(
        v,
        (TASKS * EACH).to_string().into_bytes(),
        "a cas increment was lost"
    );
}
