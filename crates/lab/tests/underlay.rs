//! Builds a real lab underlay (3 hosts) and a real 3-member etcd cluster under a unique prefix, checks
//! what crosses between them, tears down and checks that nothing of the prefix remains.
//! Needs root (skipped otherwise) and etcd/etcdctl, ping, ip.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use weft_lab::topology::{etcd_client_endpoints, host_addr, host_addr6, host_name, Lab};
use weft_lab::{etcd, netns, process, teardown, underlay};

fn unique_lab() -> Lab {
    Lab::named(&format!("wl{:04x}", rand::random::<u16>())).unwrap()
}

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root");
    false
}

async fn in_ns(ns: &str, program: &str, args: &[&str]) -> (bool, String) {
    let out = netns::command(ns, program)
        .unwrap()
        .args(args)
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Tears down explicitly and checks that nothing of the lab is left; the guard covers panics.
async fn down_and_check(lab: &Lab, pids: &[i32]) {
    let l = lab.clone();
    let report = tokio::task::spawn_blocking(move || teardown::down(&l))
        .await
        .unwrap()
        .unwrap();
    assert!(report.namespaces > 0);
    assert_eq!(teardown::leftovers(lab).unwrap(), Vec::<String>::new());
    for &pid in pids {
        assert!(!process::alive(pid), "pid {pid} survived down");
    }
    // Idempotent.
    let l = lab.clone();
    let again = tokio::task::spawn_blocking(move || teardown::down(&l))
        .await
        .unwrap()
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underlay_hosts_and_etcd_cluster() {
    if !root() {
        return;
    }
    let t0 = Instant::now();
    let lab = unique_lab();
    assert!(teardown::leftovers(&lab).unwrap().is_empty());
    std::fs::create_dir_all(&lab.dir).unwrap();
    let guard = teardown::Guard::new(&lab);

    underlay::create_underlay(&lab).await.unwrap();
    for n in 1..=3 {
        underlay::create_node(
            &lab,
            &lab.host_ns(n),
            &host_name(n),
            host_addr(n),
            Some(host_addr6(n)),
        )
        .await
        .unwrap();
    }
    eprintln!("underlay with 3 hosts built in {:?}", t0.elapsed());

    // Every host reaches every other over the underlay, on both families.
    for a in 1..=3 {
        for b in 1..=3 {
            if a != b {
                for to in [host_addr(b).to_string(), host_addr6(b).to_string()] {
                    let (ok, out) =
                        in_ns(&lab.host_ns(a), "ping", &["-n", "-c", "1", "-W", "2", &to]).await;
                    assert!(ok, "h{a} cannot ping h{b} at {to}: {out}");
                }
            }
        }
    }
    // The lab's settings, as a process in the netns sees them.
    for ns in [lab.ul_ns(), lab.host_ns(2)] {
        let (ok, out) = in_ns(
            &ns,
            "cat",
            &["/proc/sys/net/bridge/bridge-nf-call-iptables"],
        )
        .await;
        assert!(
            ok && out.trim() == "0",
            "{ns}: bridge-nf-call-iptables = {out:?}"
        );
        let (ok, out) = in_ns(&ns, "cat", &["/proc/sys/net/ipv6/conf/all/disable_ipv6"]).await;
        assert!(ok && out.trim() == "0", "{ns}: disable_ipv6 = {out:?}");
    }
    let (ok, out) = in_ns(&lab.host_ns(1), "ip", &["-o", "link", "show", "ul0"]).await;
    assert!(
        ok && out.contains("mtu 1500") && out.contains("UP"),
        "{out}"
    );
    let (ok, out) = in_ns(&lab.host_ns(1), "ip", &["-o", "addr", "show", "ul0"]).await;
    assert!(ok && out.contains("192.0.2.11/24"), "{out}");
    let (ok, out) = in_ns(&lab.host_ns(1), "ip", &["-o", "link", "show", "lo"]).await;
    assert!(ok && out.contains("UP"), "{out}");

    // A stray process in a host netns, not started by the lab: down must stop it too.
    let mut stray = netns::command(&lab.host_ns(3), "sleep")
        .unwrap()
        .arg("300")
        .spawn()
        .unwrap();
    let stray_pid = stray.id().unwrap() as i32;

    // The etcd cluster, reached from a host over the underlay.
    let t1 = Instant::now();
    etcd::create_members(&lab).await.unwrap();
    etcd::wait_healthy(&lab, &lab.host_ns(1), Duration::from_secs(30))
        .await
        .unwrap();
    eprintln!("etcd cluster healthy in {:?}", t1.elapsed());
    let eps = etcd_client_endpoints();
    let (ok, out) = in_ns(
        &lab.host_ns(2),
        "etcdctl",
        &["--endpoints", &eps, "endpoint", "health"],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out.matches("is healthy").count(), 3, "{out}");
    let (ok, out) = in_ns(
        &lab.host_ns(2),
        "etcdctl",
        &["--endpoints", &eps, "put", "/lab/k", "v"],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = in_ns(
        &lab.host_ns(3),
        "etcdctl",
        &["--endpoints", &eps, "get", "/lab/k"],
    )
    .await;
    assert!(ok && out.contains('v'), "{out}");
    let etcd_pids: Vec<i32> = (1..=3)
        .map(|i| process::read_pid_file(&lab.etcd_pid_file(i)).unwrap())
        .collect();
    assert!(etcd_pids.iter().all(|&p| process::alive(p)));

    let t2 = Instant::now();
    let mut pids = etcd_pids.clone();
    pids.push(stray_pid);
    down_and_check(&lab, &pids).await;
    let _ = stray.wait().await;
    guard.disarm();
    eprintln!(
        "teardown in {:?}; whole test {:?}",
        t2.elapsed(),
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_basics_and_etc_binds() {
    if !root() {
        return;
    }
    let lab = unique_lab();
    std::fs::create_dir_all(&lab.dir).unwrap();
    let guard = teardown::Guard::new(&lab);
    let ns = lab.container_ns("box");
    underlay::create_bare(&ns).await.unwrap();
    assert!(netns::exists(&ns));
    assert!(netns::create(&ns)
        .unwrap_err()
        .to_string()
        .contains("exists"));
    assert!(netns::list().unwrap().contains(&ns));

    // The netns has only lo, up.
    let nl = weft_netlink::Netlink::open_in(&netns::open(&ns).unwrap()).unwrap();
    let links: Vec<String> = nl
        .list_links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(links, vec!["lo".to_string()]);

    // /etc/netns/NAME/hosts is bound over /etc/hosts for processes started in the netns.
    let etc = std::path::Path::new(netns::NETNS_ETC_DIR);
    let etc_existed = etc.exists();
    let dir = etc.join(&ns);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hosts"), "192.0.2.99 lab-marker\n").unwrap();
    let out = netns::command(&ns, "cat")
        .unwrap()
        .arg("/etc/hosts")
        .output()
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    if !etc_existed {
        let _ = std::fs::remove_dir(etc);
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("lab-marker"));
    // Our own /etc/hosts is untouched.
    assert!(!std::fs::read_to_string("/etc/hosts")
        .unwrap()
        .contains("lab-marker"));

    // The netns's id matches what a process inside it reports.
    let mut child = netns::command(&ns, "sleep")
        .unwrap()
        .arg("300")
        .spawn()
        .unwrap();
    let pid = child.id().unwrap() as i32;
    let id = netns::id_of(&ns).unwrap();
    assert_eq!(netns::id_of_pid(pid), Some(id));
    assert_eq!(
        process::in_namespaces(&BTreeSet::from([id])),
        BTreeSet::from([pid])
    );

    down_and_check(&lab, &[pid]).await;
    let _ = child.wait().await;
    guard.disarm();
}
