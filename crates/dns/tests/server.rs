//! The resolver's I/O on its own (needs root, and `dnsmasq` from scripts/deps): a DnsServer in a
//! fresh network namespace serves a "container" namespace, answers its names over UDP and TCP,
//! forwards the rest to a real upstream (dnsmasq on the loopback of the test's namespace), refuses
//! without upstream, and closes its sockets when the container goes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_dns::probe::{self, ResponseCode};
use weft_dns::{DnsConfig, DnsServer};
use weft_model::{DatapathChoice, Endpoint, Mac, Network, SCHEMA_VERSION};
use weft_netlink::{Netns, NetnsTarget};

const UPSTREAM_PORT: u16 = 5353;

/// A named netns deleted on drop.
struct NsGuard(String);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = weft_netlink::delete_named_netns(&self.0);
    }
}

/// A child killed on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn network() -> Network {
    Network {
        schema: SCHEMA_VERSION,
        name: "a".into(),
        vni: 1,
        subnet4: "10.1.0.0/24".parse().unwrap(),
        subnet6: None,
        gateway4: "10.1.0.1".parse().unwrap(),
        gateway6: None,
        mtu: 1450,
        encrypted: false,
        psk_fingerprint: None,
        datapath: DatapathChoice::Auto,
        encap: Default::default(),
        egress: true,
        labels: Default::default(),
    }
}

fn endpoint(container: &str) -> Endpoint {
    Endpoint {
        schema: SCHEMA_VERSION,
        id: "e1".into(),
        network: "a".into(),
        host: "h1".into(),
        container: container.into(),
        ifname: "eth0".into(),
        host_ifname: "wve1".into(),
        mac: Mac::ZERO,
        ipv4: "10.1.0.2/24".parse().unwrap(),
        ipv6: None,
        names: vec!["web".into()],
        labels: Default::default(),
        kind: Default::default(),
        publish: Vec::new(),
    }
}

fn resolver() -> SocketAddr {
    SocketAddr::from((weft_model::RESOLVER_ADDR, 53))
}

/// Asks the resolver from inside `ns` over UDP (or TCP): the response code and addresses.
fn ask(ns: &Netns, name: &str, tcp: bool) -> (ResponseCode, Vec<IpAddr>) {
    let name = name.to_string();
    weft_netlink::in_netns(ns, move || {
        let q = probe::query(0x5151, &name, false).unwrap();
        let resp = if tcp {
            let mut s = TcpStream::connect_timeout(&resolver(), Duration::from_secs(3)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            s.write_all(&framed).unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut r).unwrap();
            r
        } else {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.send_to(&q, resolver()).unwrap();
            let mut buf = [0u8; 1500];
            let n = s.recv(&mut buf).expect("an answer");
            buf[..n].to_vec()
        };
        probe::addresses(0x5151, &resp).expect("a response to the query")
    })
    .unwrap()
}

/// Whether the resolver still has a socket or its redirect in `ns`.
fn resolver_in(ns: &Netns) -> bool {
    weft_netlink::in_netns(ns, || {
        let ss = Command::new("ss").args(["-Hlnut"]).output().expect("ss");
        let nft = Command::new("nft")
            .args(["list", "table", "ip", weft_dns::redirect::TABLE])
            .output()
            .expect("nft");
        String::from_utf8_lossy(&ss.stdout).contains("127.0.0.53:") || nft.status.success()
    })
    .unwrap()
}

fn run(cmd: &mut Command) {
    let st = cmd.status().expect("running a command");
    assert!(st.success(), "{cmd:?}: {st}");
}

#[test]
fn answers_forwards_and_lets_go() {
    assert!(
        Command::new("dnsmasq").arg("--version").output().is_ok(),
        "dnsmasq is needed (scripts/deps installs dnsmasq-base)"
    );
    // This test's thread (and the runtime and children it starts) gets its own namespace: the
    // upstream on its loopback is nobody else's.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
    run(Command::new("ip").args(["link", "set", "lo", "up"]));
    let _upstream = Kill(
        Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                &format!("--port={UPSTREAM_PORT}"),
                "--address=/example.test/198.51.100.7",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting dnsmasq"),
    );

    let name = format!("wd{:04x}-c", rand::random::<u16>());
    let _guard = NsGuard(name.clone());
    let ns = weft_netlink::create_named_netns(&name).unwrap();
    let path = NetnsTarget::Named(name.clone())
        .path()
        .display()
        .to_string();
    weft_netlink::in_netns(&ns, || {
        run(Command::new("ip").args(["link", "set", "lo", "up"]))
    })
    .unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A current-thread runtime serves only inside `block_on`: the test asks from other threads
    // and drives the runtime here meanwhile.
    let upstream: SocketAddr = ([127, 0, 0, 1], UPSTREAM_PORT).into();
    let mut srv = DnsServer::new(DnsConfig::new("weft.internal", vec![upstream]));
    let net = network();
    let ep = endpoint(&path);
    srv.set_names([&net], [&ep]);
    rt.block_on(srv.set_local(BTreeMap::from([(path.clone(), vec!["a".to_string()])])));
    assert_eq!(srv.stats().containers, 1);

    let ask_served = |name: &str, tcp: bool| -> (ResponseCode, Vec<IpAddr>) {
        let ns2 = ns.try_clone().unwrap();
        let name = name.to_string();
        let asker = std::thread::spawn(move || ask(&ns2, &name, tcp));
        let deadline = Instant::now() + Duration::from_secs(15);
        while !asker.is_finished() {
            assert!(Instant::now() < deadline, "no answer");
            rt.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
        }
        asker.join().unwrap()
    };

    for tcp in [false, true] {
        let (code, addrs) = ask_served("web.a.weft.internal", tcp);
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(addrs, vec![IpAddr::from([10, 1, 0, 2])]);
        let (code, addrs) = ask_served("example.test", tcp);
        assert_eq!(code, ResponseCode::NoError, "forwarded (tcp: {tcp})");
        assert_eq!(addrs, vec![IpAddr::from([198, 51, 100, 7])]);
        let (code, _) = ask_served("nope.a", tcp);
        assert_eq!(code, ResponseCode::NXDomain);
    }
    let st = srv.stats();
    assert_eq!((st.forwarded, st.forward_failed), (2, 0), "{st:?}");
    // Port 53 stays the container's own: a DNS server of its own binds it beside the resolver.
    weft_netlink::in_netns(&ns, || {
        UdpSocket::bind("0.0.0.0:53").expect("the container binds 0.0.0.0:53");
        std::net::TcpListener::bind("0.0.0.0:53").expect("and over TCP");
    })
    .unwrap();

    // The container goes: its sockets with it (nothing keeps the namespace alive), and the redirect.
    assert!(resolver_in(&ns));
    rt.block_on(srv.set_local(BTreeMap::new()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while resolver_in(&ns) {
        assert!(
            Instant::now() < deadline,
            "the resolver's socket outlived its container"
        );
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
    }
    assert_eq!(srv.stats().containers, 0);

    // Without upstream: names beyond weft are refused.
    let mut srv = DnsServer::new(DnsConfig::new("weft.internal", vec![]));
    srv.set_names([&net], [&ep]);
    rt.block_on(srv.set_local(BTreeMap::from([(path.clone(), vec!["a".to_string()])])));
    let (code, _) = ask_served("example.test", false);
    assert_eq!(code, ResponseCode::Refused);
    let (code, addrs) = ask_served("web", false);
    assert_eq!((code, addrs.len()), (ResponseCode::NoError, 1));
    drop(srv);
}
