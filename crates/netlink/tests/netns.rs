//! Named namespaces, targets, running code and children inside, sysctls.

mod common;

use std::os::fd::AsFd;
use std::process::Command;

use common::NsGuard;
use weft_netlink::{
    delete_named_netns, in_netns, list_named_netns, run_in_netns, run_in_netns_blocking,
    spawn_in_netns, sysctl, Netlink, Netns, NetnsTarget,
};

#[tokio::test]
async fn named_namespace_lifecycle_and_targets() {
    let mut g = NsGuard::new();
    let ns = g.create("a");
    let name = g.name("a");
    assert!(list_named_netns().unwrap().contains(&name));

    // Name, path and the handle we got all denote one namespace, not ours.
    let by_name: NetnsTarget = name.parse().unwrap();
    let by_path: NetnsTarget = format!("/run/netns/{name}").parse().unwrap();
    assert_eq!(by_name, NetnsTarget::Named(name.clone()));
    assert_eq!(by_name.open().unwrap().id().unwrap(), ns.id().unwrap());
    assert_eq!(by_path.open().unwrap().id().unwrap(), ns.id().unwrap());
    assert_ne!(Netns::current().unwrap().id().unwrap(), ns.id().unwrap());

    let again = weft_netlink::create_named_netns(&name).unwrap_err();
    assert!(again.is_exists(), "{again}");
    assert_eq!(
        weft_netlink::ensure_named_netns(&name)
            .unwrap()
            .id()
            .unwrap(),
        ns.id().unwrap()
    );

    let missing = g.name("missing");
    let e = missing.parse::<NetnsTarget>().unwrap().open().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("no such network namespace: {missing}")
    );

    // A child spawned inside is found again through its PID.
    let mut child = spawn_in_netns(Command::new("sleep").arg("30"), &ns).unwrap();
    let by_pid: NetnsTarget = child.id().to_string().parse().unwrap();
    assert_eq!(by_pid, NetnsTarget::Pid(child.id()));
    let pid_ns = by_pid.open();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(pid_ns.unwrap().id().unwrap(), ns.id().unwrap());

    drop(by_name);
    assert!(delete_named_netns(&name).unwrap());
    assert!(!delete_named_netns(&name).unwrap());
    assert!(!list_named_netns().unwrap().contains(&name));
}

#[tokio::test]
async fn code_runs_inside_and_netlink_is_bound_to_its_namespace() {
    let mut g = NsGuard::new();
    let ns = g.create("b");
    let want = ns.id().unwrap();

    // Async closure with its own runtime; a Netlink opened there sees only lo.
    let (id, links) = run_in_netns(&ns, || async {
        let nl = Netlink::open().unwrap();
        let links = nl.list_links().await.unwrap();
        (Netns::current().unwrap().id().unwrap(), links)
    })
    .await
    .unwrap();
    assert_eq!(id, want);
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].name, "lo");

    let id =
        run_in_netns_blocking(&ns, || async { Netns::current().unwrap().id().unwrap() }).unwrap();
    assert_eq!(id, want);
    // The calling thread never moved.
    assert_ne!(Netns::current().unwrap().id().unwrap(), want);

    // open_in from here: create a link through it and see it only there.
    let nl = Netlink::open_in(&ns).unwrap();
    nl.create_veth("wnlt0", "wnlt1", 1500).await.unwrap();
    // /proc/net is /proc/self/net, the main thread's namespace: a thread
    // that entered another one must read /proc/thread-self/net.
    let (thread_view, process_view) = in_netns(&ns, || {
        let read = |p: &str| std::fs::read_to_string(p).unwrap();
        (
            read("/proc/thread-self/net/dev"),
            read("/proc/self/net/dev"),
        )
    })
    .unwrap();
    assert!(thread_view.contains("wnlt0"));
    assert!(!process_view.contains("wnlt0"));
    assert!(Netlink::open()
        .unwrap()
        .link_by_name("wnlt0")
        .await
        .unwrap()
        .is_none());

    // Panics inside come back out.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        in_netns(&ns, || panic!("boom inside")).ok()
    }));
    assert!(r.is_err());
}

#[tokio::test]
async fn sysctls_are_per_namespace() {
    let mut g = NsGuard::new();
    let ns = g.create("c");
    let root_forward = sysctl::get(None, sysctl::IPV4_FORWARD).unwrap();
    let target = if root_forward == "1" { "0" } else { "1" };

    let nl = Netlink::open_in(&ns).unwrap();
    nl.create_veth("wnls.0", "wnls1", 1500).await.unwrap();
    sysctl::set_all(
        Some(&ns),
        &[
            (sysctl::IPV4_FORWARD, target),
            (sysctl::BRIDGE_NF_CALL_IPTABLES, "0"),
            (sysctl::IPV6_DISABLE_ALL, "0"),
            (&sysctl::accept_dad_key("wnls.0"), "0"),
        ],
    )
    .unwrap();
    assert_eq!(
        sysctl::get(Some(&ns), sysctl::IPV4_FORWARD).unwrap(),
        target
    );
    assert_eq!(
        sysctl::get(Some(&ns), sysctl::BRIDGE_NF_CALL_IPTABLES).unwrap(),
        "0"
    );
    assert_eq!(
        sysctl::get(Some(&ns), &sysctl::accept_dad_key("wnls.0")).unwrap(),
        "0"
    );
    // The root namespace is untouched.
    assert_eq!(
        sysctl::get(None, sysctl::IPV4_FORWARD).unwrap(),
        root_forward
    );

    let e = sysctl::get(Some(&ns), &sysctl::accept_dad_key("nosuchif")).unwrap_err();
    assert!(e.to_string().contains("nosuchif"), "{e}");
    let _ = ns.as_fd();
}
