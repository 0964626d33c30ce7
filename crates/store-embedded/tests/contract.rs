//! The store contract against a temp-file SqliteStore, plus what only the embedded backend has:
//! several processes sharing one file, compaction, file modes, reopening.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_store::contract::{assert_no_more_events, recv_events};
use weft_store::{EventKind, Revision, Store, StoreError};
use weft_store_embedded::{SqliteOptions, SqliteStore};

/// Backend logs in test output (RUST_LOG overrides the default).
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "weft_store=info,weft_store_etcd=info,weft_store_embedded=info".into()
            }),
        )
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_suite() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    weft_store::contract::run_all(Arc::new(store)).await;
}

// ---------------------------------------------------------------------------------------------
// Several processes on one file
// ---------------------------------------------------------------------------------------------

const CHILDREN: usize = 4;
const CHILD_PUTS: usize = 60;
const CHILD_INCREMENTS: u64 = 15;
const ENV_DB: &str = "WEFT_STORE_TEST_DB";
const ENV_CHILD: &str = "WEFT_STORE_TEST_CHILD";
const ENV_OUT: &str = "WEFT_STORE_TEST_OUT";
const ENV_GO: &str = "WEFT_STORE_TEST_GO";

/// Re-execs this test binary as `CHILDREN` writer processes on one store file, while this
/// process writes too and watches: the watch must see every write of every process exactly
/// once, in revision order; cas increments from all processes must not lose any; and leased keys
/// left behind by exited children must be swept by this (the only remaining) process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_process_writers() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let go = dir.path().join("go");
    let store = SqliteStore::open(&db).unwrap();
    store.put("mp/counter", b"0".to_vec(), None).await.unwrap();
    let (_, rev) = store.list("mp/").await.unwrap();
    let mut w = store.watch("mp/", rev + 1).await.unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|i| {
            let out = dir.path().join(format!("child{i}.revs"));
            let child = Command::new(&exe)
                .args([
                    "--exact",
                    "multi_process_child",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env(ENV_DB, &db)
                .env(ENV_CHILD, i.to_string())
                .env(ENV_OUT, &out)
                .env(ENV_GO, &go)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child test process");
            (child, out)
        })
        .collect();
    std::fs::write(&go, b"").unwrap(); // release the children together

    let mut written = BTreeSet::new();
    for i in 0..CHILD_PUTS {
        let r = store
            .put(&format!("mp/parent/{}", i % 7), vec![i as u8], None)
            .await
            .unwrap();
        written.insert(r);
    }
    for (child, out) in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            output.status.success(),
            "child process failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for line in std::fs::read_to_string(&out).unwrap().lines() {
            let r: Revision = line.parse().unwrap();
            assert!(
                written.insert(r),
                "two processes' writes share revision {r}"
            );
        }
    }
    let expected = CHILDREN * (CHILD_PUTS + CHILD_INCREMENTS as usize + 1) + CHILD_PUTS;
    assert_eq!(written.len(), expected);

    // Every put, plus the delete of each child's leased key: the children are gone, so those
    // leases can only expire through this process's sweeper. (They may expire while other
    // children still write, so the deletes can interleave with the puts.)
    let got = recv_events(
        &mut w,
        expected + CHILDREN,
        Duration::from_secs(30),
        "multi-process watch",
    )
    .await;
    let revs: Vec<Revision> = got.iter().map(|e| e.kv.mod_revision).collect();
    for pair in revs.windows(2) {
        assert!(
            pair[0] < pair[1],
            "watch revisions not increasing: {pair:?}"
        );
    }
    let (puts, deletes): (Vec<_>, Vec<_>) = got.iter().partition(|e| e.kind == EventKind::Put);
    assert_eq!(
        puts.iter()
            .map(|e| e.kv.mod_revision)
            .collect::<BTreeSet<_>>(),
        written,
        "the watch saw other revisions than the processes wrote"
    );
    let mut deleted: Vec<&str> = deletes.iter().map(|e| e.kv.key.as_str()).collect();
    deleted.sort();
    let leased: Vec<String> = (0..CHILDREN).map(|i| format!("mp/leased/c{i}")).collect();
    assert_eq!(deleted, leased, "only the orphaned leased keys are deleted");

    let counter = store.get("mp/counter").await.unwrap().unwrap().value;
    assert_eq!(
        String::from_utf8(counter).unwrap(),
        (CHILDREN as u64 * CHILD_INCREMENTS).to_string(),
        "cross-process cas increments were lost"
    );
    assert!(store.list("mp/leased/").await.unwrap().0.is_empty());
    assert_no_more_events(&mut w, Duration::from_millis(200), "multi-process").await;
}

/// The body of one child process of `multi_process_writers`; does nothing when run directly.
#[test]
#[ignore = "child process of multi_process_writers, which runs it"]
fn multi_process_child() {
    let (Ok(db), Ok(id), Ok(out), Ok(go)) = (
        std::env::var(ENV_DB),
        std::env::var(ENV_CHILD),
        std::env::var(ENV_OUT),
        std::env::var(ENV_GO),
    ) else {
        eprintln!("multi_process_child only runs as a child of multi_process_writers");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let revs = rt.block_on(async move {
        let store = SqliteStore::open(Path::new(&db)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Path::new(&go).exists() {
            assert!(Instant::now() < deadline, "never released");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut revs = Vec::new();
        for i in 0..CHILD_PUTS {
            let key = format!("mp/c{id}/{}", i % 10);
            revs.push(store.put(&key, vec![i as u8], None).await.unwrap());
        }
        for _ in 0..CHILD_INCREMENTS {
            loop {
                let kv = store.get("mp/counter").await.unwrap().unwrap();
                let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                let res = store
                    .cas(
                        "mp/counter",
                        Some(kv.mod_revision),
                        Some((n + 1).to_string().into_bytes()),
                        None,
                    )
                    .await
                    .unwrap();
                if res.succeeded {
                    revs.push(res.revision);
                    break;
                }
            }
        }
        // Exit with a leased key left behind: only the parent remains to expire it.
        let lease = store.grant_lease(Duration::from_secs(2)).await.unwrap();
        let key = format!("mp/leased/c{id}");
        revs.push(store.put(&key, b"x".to_vec(), Some(lease)).await.unwrap());
        revs
    });
    let text: String = revs.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(out, text).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Embedded-only behaviour
// ---------------------------------------------------------------------------------------------

/// Two handles on one file share nothing in memory, like two processes: a watch on one sees
/// the other's writes through polling alone, within the convergence budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_handle_watch_latency() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let writer = SqliteStore::open(&db).unwrap();
    let watcher = SqliteStore::open(&db).unwrap();
    let mut w = watcher.watch("lat/", 0).await.unwrap();
    let mut latencies = Vec::new();
    for i in 0..50u8 {
        let rev = writer.put("lat/k", vec![i], None).await.unwrap();
        let written = Instant::now();
        let got = recv_events(&mut w, 1, Duration::from_secs(5), "latency").await;
        latencies.push(written.elapsed());
        assert_eq!(got[0].kv.mod_revision, rev);
        tokio::time::sleep(Duration::from_millis(3)).await; // de-phase from the poll tick
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!("cross-handle watch latency: p50 {p50:?}, p99 {p99:?}");
    assert!(
        p50 <= Duration::from_millis(50),
        "watch p50 latency {p50:?} over 50 ms"
    );
}

#[tokio::test]
async fn compaction_bounds_the_log() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        retain_revisions: 100,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&dir.path().join("store.db"), opts).unwrap();
    let mut head = 0;
    for i in 0..300u32 {
        head = store
            .put(&format!("c/{}", i % 5), i.to_be_bytes().to_vec(), None)
            .await
            .unwrap();
    }
    match store.watch("c/", 1).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, 1);
            assert!(
                oldest > 1 && oldest <= head - 99,
                "oldest {oldest}, head {head}"
            );
        }
        Ok(_) => panic!("watch from revision 1 after compaction must fail with Compacted"),
        Err(e) => panic!("expected Compacted, got {e}"),
    }
    let mut w = store.watch("c/", head - 49).await.unwrap();
    let got = recv_events(&mut w, 50, Duration::from_secs(5), "retained history").await;
    assert_eq!(got[0].kv.mod_revision, head - 49);
    assert_eq!(got[49].kv.mod_revision, head);
}

/// A watcher whose consumer stalls while the log is compacted past it ends with Compacted
/// (after everything it could still deliver), instead of silently skipping events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_watcher_gets_compacted() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        retain_revisions: 50,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&dir.path().join("store.db"), opts).unwrap();
    let mut w = store.watch("s/", 0).await.unwrap();
    // One event per batch until the watch channel (64 batches) is full and the watch stalls.
    for i in 0..80u32 {
        store
            .put("s/k", i.to_be_bytes().to_vec(), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    for i in 0..300u32 {
        store
            .put("s/k", i.to_be_bytes().to_vec(), None)
            .await
            .unwrap();
    }
    let mut last = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), w.events.recv()).await {
            Ok(Some(Ok(batch))) => {
                for e in batch {
                    assert!(e.kv.mod_revision > last, "out of order");
                    last = e.kv.mod_revision;
                }
            }
            Ok(Some(Err(StoreError::Compacted { requested, .. }))) => {
                assert_eq!(
                    requested,
                    last + 1,
                    "Compacted must name the first missed revision"
                );
                break;
            }
            other => panic!("expected the stalled watch to end with Compacted, got {other:?}"),
        }
    }
    assert!(
        w.events.recv().await.is_none(),
        "the stream ends after Compacted"
    );
}

#[tokio::test]
async fn creates_private_dir_and_file_and_persists() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("state/weft");
    let db = sub.join("store.db");
    let rev = {
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(store.path(), db);
        store.put("p/k", b"v".to_vec(), None).await.unwrap()
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sub), 0o700, "store directory mode");
    assert_eq!(mode(&db), 0o600, "store file mode");
    let store = SqliteStore::open(&db).unwrap(); // keeps the WAL and shared-memory files around
    for side in ["store.db-wal", "store.db-shm"] {
        assert_eq!(
            mode(&sub.join(side)),
            0o600,
            "{side} mode follows the store file"
        );
    }
    drop(store);

    let store = SqliteStore::open(&db).unwrap();
    let kv = store
        .get("p/k")
        .await
        .unwrap()
        .expect("data survives reopening");
    assert_eq!((kv.value, kv.mod_revision), (b"v".to_vec(), rev));
    assert!(
        store.put("p/k", b"w".to_vec(), None).await.unwrap() > rev,
        "revisions continue"
    );
}

/// Many openers racing on a file that does not exist yet (schema creation, WAL switch) all
/// succeed, and their writes all land.
#[test]
fn concurrent_first_open() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let store = SqliteStore::open(&db).unwrap_or_else(|e| panic!("open {i}: {e}"));
                    store.put(&format!("o/{i}"), vec![i], None).await.unwrap()
                })
            })
        })
        .collect();
    let revs: BTreeSet<Revision> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(revs.len(), 8, "every opener's write got its own revision");
}

#[test]
fn open_error_names_the_path() {
    init_tracing();
    let err = SqliteStore::open(Path::new("/dev/null/weft/store.db"))
        .err()
        .expect("opening under /dev/null must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("/dev/null/weft/store.db"),
        "error does not name the path: {msg}"
    );
}
