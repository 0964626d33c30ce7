//! The store contract against a real etcd, which each test starts itself (`/usr/bin/etcd`, or
//! `$WEFT_ETCD_BIN`) on 127.0.0.1 with free ports and a temp data dir, and kills on drop.
//! A missing etcd binary fails the tests: silently skipping would hide the backend from CI.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_store::contract::{assert_no_more_events, recv_events};
use weft_store::{EventKind, Revision, Store, StoreError};
use weft_store_etcd::{EtcdOptions, EtcdStore};

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

/// One etcd server for one test (or one member of a test's cluster).
struct Etcd {
    bin: PathBuf,
    dir: tempfile::TempDir,
    name: String,
    /// `--initial-cluster`: empty for a cluster of one.
    cluster: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

fn etcd_bin() -> PathBuf {
    let bin = PathBuf::from(
        std::env::var("WEFT_ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".to_string()),
    );
    assert!(
        bin.is_file(),
        "etcd not found at {} (install Debian's etcd-server, or set WEFT_ETCD_BIN): the etcd \
         store tests need a real etcd",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

impl Etcd {
    fn start() -> Self {
        let bin = etcd_bin();
        // A port picked here may be taken before etcd binds it: try a few pairs.
        let mut last_err = String::new();
        for _ in 0..3 {
            let mut etcd = Etcd {
                bin: bin.clone(),
                dir: tempfile::tempdir().expect("temp dir"),
                name: "weft-test".into(),
                cluster: String::new(),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            };
            etcd.spawn();
            match etcd.wait_healthy() {
                Ok(()) => return etcd,
                Err(e) => last_err = e,
            }
        }
        panic!("etcd did not become healthy: {last_err}");
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log file");
        let cluster = if self.cluster.is_empty() {
            format!("{}={peer}", self.name)
        } else {
            self.cluster.clone()
        };
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("--name={}", self.name))
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={cluster}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it makes the kernel kill etcd if the test process
        // dies without running destructors (e.g. SIGKILL from a CI timeout).
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        self.child = Some(cmd.spawn().expect("spawn etcd"));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Polls etcd's /health until it reports a leader (the same ports across restarts).
    fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("etcd exited ({status}):\n{}", self.log_tail()));
            }
            if self.health().unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("not healthy within 30 s:\n{}", self.log_tail()))
    }

    fn health(&self) -> std::io::Result<bool> {
        let body = self.http("GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        Ok(body.contains("\"health\":\"true\""))
    }

    /// One HTTP/1.0 exchange with the member's client port (etcd's gateway), whole answer.
    fn http(&self, request: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.client_port))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(request.as_bytes())?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    }

    /// Whether this member is the cluster's leader (its status: leader == its own member id).
    fn is_leader(&self) -> bool {
        let body = "{}";
        let req = format!(
            "POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let Ok(answer) = self.http(&req) else {
            return false;
        };
        let field = |name: &str| {
            let at = answer.find(&format!("\"{name}\":\""))? + name.len() + 4;
            let end = answer[at..].find('"')?;
            Some(answer[at..at + end].to_string())
        };
        matches!((field("member_id"), field("leader")), (Some(m), Some(l)) if m == l)
    }

    /// Kills etcd, leaves it down for `down`, and starts it again on the same data dir and ports.
    fn restart(&mut self, down: Duration) {
        self.kill();
        std::thread::sleep(down);
        self.spawn();
        if let Err(e) = self.wait_healthy() {
            panic!("etcd did not come back after a restart: {e}");
        }
    }

    async fn store(&self) -> EtcdStore {
        EtcdStore::connect(&[self.endpoint()])
            .await
            .unwrap_or_else(|e| panic!("connect to the test etcd: {e}"))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_suite() {
    init_tracing();
    let etcd = Etcd::start();
    let store = etcd.store().await;
    weft_store::contract::run_all(Arc::new(store)).await;
}

/// A watch must survive etcd going away and coming back: it resumes from the revision after
/// the last one it delivered, so writes made while it was cut off arrive, and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_restart() {
    init_tracing();
    let mut etcd = Etcd::start();
    let store = etcd.store().await;
    let (_, rev) = store.list("rc/").await.unwrap();
    let mut w = store.watch("rc/", rev + 1).await.unwrap();

    let mut written: Vec<Revision> = Vec::new();
    for i in 0..20 {
        written.push(
            store
                .put(&format!("rc/a{i}"), b"a".to_vec(), None)
                .await
                .unwrap(),
        );
    }
    let mut got = recv_events(&mut w, 10, Duration::from_secs(10), "before restart").await;

    // While etcd is down, calls fail as Unavailable within the request timeout.
    etcd.kill();
    let down = Instant::now();
    let quick = EtcdStore::connect_with(
        &[etcd.endpoint()],
        EtcdOptions {
            request_timeout: Duration::from_secs(1),
            ..EtcdOptions::default()
        },
    )
    .await;
    assert!(
        matches!(quick, Err(StoreError::Unavailable(_))),
        "connect while down: {:?}",
        quick.err()
    );
    match store.get("rc/a0").await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("get while etcd is down: expected Unavailable, got {other:?}"),
    }
    // The watch has been failing to reconnect for a while (its backoff has grown), so the
    // writes below land before it is back and must be replayed to it.
    etcd.restart(Duration::from_millis(
        1000u64.saturating_sub(down.elapsed().as_millis() as u64),
    ));
    for i in 0..20 {
        let rev = store
            .put(&format!("rc/b{i}"), b"b".to_vec(), None)
            .await
            .unwrap_or_else(|e| panic!("put after restart: {e}"));
        written.push(rev);
    }
    let missing = written.len() - got.len();
    got.extend(recv_events(&mut w, missing, Duration::from_secs(30), "after restart").await);
    // And live events keep flowing on the resumed stream.
    written.push(store.put("rc/c", b"c".to_vec(), None).await.unwrap());
    got.extend(recv_events(&mut w, 1, Duration::from_secs(10), "live after restart").await);

    let revs: Vec<Revision> = got.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(
        revs, written,
        "every write exactly once, in order, across the restart"
    );
    assert!(got.iter().all(|e| e.kind == EventKind::Put));
    assert_no_more_events(&mut w, Duration::from_millis(300), "after restart").await;
}

/// Watching from a compacted revision fails with etcd's compact revision as the oldest.
#[tokio::test]
async fn watch_from_compacted_revision() {
    init_tracing();
    let etcd = Etcd::start();
    let store = etcd.store().await;
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(store.put("cp/k", vec![i], None).await.unwrap());
    }
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    client.compact(revs[5], None).await.unwrap();

    match store.watch("cp/", revs[2]).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!((requested, oldest), (revs[2], revs[5]));
        }
        Ok(_) => panic!("a watch from a compacted revision must fail"),
        Err(e) => panic!("expected Compacted, got {e}"),
    }
    let mut w = store.watch("cp/", revs[5]).await.unwrap();
    let got = recv_events(
        &mut w,
        5,
        Duration::from_secs(10),
        "from the compact revision",
    )
    .await;
    assert_eq!(
        got.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(),
        revs[5..].to_vec()
    );
}

#[tokio::test]
async fn connect_error_names_the_endpoint() {
    init_tracing();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let opts = EtcdOptions {
        request_timeout: Duration::from_secs(2),
        ..EtcdOptions::default()
    };
    let started = Instant::now();
    let err = EtcdStore::connect_with(std::slice::from_ref(&endpoint), opts)
        .await
        .err()
        .expect("connecting to a closed port must fail");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        msg.contains(&format!("cannot reach etcd at {endpoint}")),
        "unclear connect error: {msg}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connect failure took {:?}",
        started.elapsed()
    );
}

/// Three members on 127.0.0.1, each with its own ports and data dir.
fn start_cluster() -> Vec<Etcd> {
    let bin = etcd_bin();
    // As in `Etcd::start`: a port picked here may be taken before etcd binds it.
    let mut last_err = String::new();
    for _ in 0..3 {
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Etcd> = ports
            .iter()
            .enumerate()
            .map(|(i, &(client_port, peer_port))| Etcd {
                bin: bin.clone(),
                dir: tempfile::tempdir().expect("temp dir"),
                name: format!("m{i}"),
                cluster: cluster.clone(),
                client_port,
                peer_port,
                child: None,
            })
            .collect();
        // All three must be up before any can elect a leader.
        for m in &mut members {
            m.spawn();
        }
        match members
            .iter_mut()
            .map(|m| m.wait_healthy().map_err(|e| format!("{}: {e}", m.name)))
            .collect::<Result<Vec<()>, String>>()
        {
            Ok(_) => return members,
            Err(e) => last_err = e,
        }
    }
    panic!("the etcd cluster did not become healthy: {last_err}");
}

/// Killing the leader starts an election, during which members answer "no leader" or "leader
/// changed". Reads ride it out (they are retried within the request timeout); a write either
/// succeeds or fails with an error (never applied twice), and writes work again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_a_leader_election() {
    init_tracing();
    let mut members = start_cluster();
    let endpoints: Vec<String> = members.iter().map(Etcd::endpoint).collect();
    let store = EtcdStore::connect(&endpoints).await.expect("connect");
    store.put("le/k", b"v".to_vec(), None).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let leader = loop {
        if let Some(i) = members.iter().position(Etcd::is_leader) {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "no member reports being the leader"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    members[leader].kill();

    // Reads straight through the election: every one must answer, with the value.
    let started = Instant::now();
    let mut reads = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let got = store.get("le/k").await;
        let kv = got.unwrap_or_else(|e| panic!("read {reads} during the election failed: {e}"));
        assert_eq!(kv.map(|kv| kv.value), Some(b"v".to_vec()));
        reads += 1;
    }
    // Writes afterwards succeed; the list holds exactly what was written.
    for i in 0..5 {
        store
            .put(&format!("le/after{i}"), b"x".to_vec(), None)
            .await
            .unwrap_or_else(|e| panic!("write {i} after the election: {e}"));
    }
    let (kvs, _) = store.list("le/after").await.unwrap();
    assert_eq!(kvs.len(), 5);
    eprintln!("{reads} reads through the election of a new leader (member m{leader} killed)");
}
