//! weft's CNI plugin driven as a runtime drives it (CNI_* environment, configuration on stdin)
//! against lab hosts: every command and version, every error code, DEL twice, CHECK after
//! tampering, GC, chaining with the reference portmap plugin, and fuzzed configurations.

mod common;

use std::process::Command;
use std::time::Duration;

use common::cni::Env;
use common::{eventually, out_text, Lab};
use serde_json::{json, Value};

const NET: &str = "prod";

fn lab_with_network(hosts: usize, extra: &[&str]) -> Lab {
    let lab = Lab::up_with(hosts, "embedded", extra);
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            NET,
            "--subnet",
            "10.31.0.0/24",
            "--subnet",
            "fd00:31::/64",
        ],
    );
    lab
}

fn sh(args: &[&str]) -> String {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", out_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ping_from_ns(ns_path: &str, to: &str) -> bool {
    Command::new("nsenter")
        .args([
            &format!("--net={ns_path}"),
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            to,
        ])
        .output()
        .unwrap()
        .status
        .success()
}

/// Addresses allocated in the network, from its records.
fn allocated(lab: &Lab) -> Vec<String> {
    let v = lab.records(NET);
    v["allocations"]
        .as_object()
        .map(|a| a.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_version_add_check_del_across_hosts() {
    let lab = lab_with_network(2, &[]);
    lab.run("h2", "peer", NET);
    let peer = lab.ip4("peer", NET);
    let before_links = lab.links("h1");

    let v = lab
        .cni(
            "h1",
            &Env::new("VERSION", "", ""),
            &json!({"cniVersion": "1.1.0"}),
        )
        .ok()
        .json();
    for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(
            v["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(&json!(want)),
            "{v}"
        );
    }

    let mut made = Vec::new();
    for (i, version) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let name = format!("k{i}");
        let ns = lab.bare_netns(&name);
        let env = Env::new("ADD", &format!("cid{i}"), &ns);
        let conf = lab.cni_conf("h1", version, NET, json!({}));
        let r = lab.cni("h1", &env, &conf).ok().json();
        assert_eq!(r["cniVersion"], *version, "{r}");
        let ip = &r["ips"][0];
        assert!(
            ip["address"].as_str().unwrap().starts_with("10.31.0."),
            "{r}"
        );
        // The 0.x layout names each address's family; 1.x does not.
        assert_eq!(
            ip.get("version").is_some(),
            version.starts_with("0."),
            "{r}"
        );
        assert_eq!(
            r["ips"][1]["address"].as_str().unwrap().split('/').nth(1),
            Some("64")
        );
        let eth0 = &r["interfaces"][ip["interface"].as_u64().unwrap() as usize];
        assert_eq!(eth0["name"], "eth0");
        assert_eq!(eth0["sandbox"], ns.as_str());
        assert!(
            r["routes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["dst"] == "10.31.0.0/24"),
            "{r}"
        );
        // The host's agent serves names: the result points at weft's resolver in the container.
        assert_eq!(r["dns"]["nameservers"][0], "127.0.0.53", "{r}");
        assert!(
            ping_from_ns(&ns, &peer),
            "{name} ({version}) cannot reach {peer} on h2"
        );
        made.push((name, ns, env, conf, r));
    }

    // ADD again for the same attachment answers the same; another container ID for the same
    // namespace and interface is refused and changes nothing.
    let (_, ns2, env2, conf2, r2) = &made[2];
    assert_eq!(&lab.cni("h1", env2, conf2).ok().json(), r2);
    let before = lab.records(NET);
    let mut other = Env::new("ADD", "cid-other", ns2);
    other.ifname = "eth0".into();
    let d = lab.cni("h1", &other, conf2).expect_error(100);
    assert!(d.contains("already attached"), "{d}");
    assert_eq!(lab.records(NET), before);

    // CHECK passes on what ADD made, with the runtime's cached result; 0.3.1 has no CHECK.
    for (_, _, env, conf, r) in &made[1..] {
        let mut c = conf.clone();
        c["prevResult"] = r.clone();
        lab.cni("h1", &env.cmd("CHECK"), &c).ok();
    }
    let (_, _, env031, conf031, _) = &made[0];
    lab.cni("h1", &env031.cmd("CHECK"), conf031).expect_error(1);

    // Tampering is found and named.
    let (_, ns, env, conf, r) = &made[2];
    let mut c = conf.clone();
    c["prevResult"] = r.clone();
    let addr = r["ips"][0]["address"].as_str().unwrap().to_string();
    sh(&[
        "nsenter",
        &format!("--net={ns}"),
        "ip",
        "addr",
        "del",
        &addr,
        "dev",
        "eth0",
    ]);
    let details = lab.cni("h1", &env.cmd("CHECK"), &c).expect_error(101);
    assert!(
        details.contains(&format!("lacks address {addr}")),
        "{details}"
    );
    sh(&[
        "nsenter",
        &format!("--net={ns}"),
        "ip",
        "addr",
        "add",
        &addr,
        "dev",
        "eth0",
    ]);
    lab.cni("h1", &env.cmd("CHECK"), &c).ok();
    let mut wrong = c.clone();
    wrong["prevResult"]["ips"][0]["address"] = json!("10.31.0.250/24");
    let details = lab.cni("h1", &env.cmd("CHECK"), &wrong).expect_error(101);
    assert!(details.contains("prevResult"), "{details}");
    sh(&[
        "nsenter",
        &format!("--net={ns}"),
        "ip",
        "link",
        "set",
        "eth0",
        "address",
        "02:00:00:00:00:99",
    ]);
    let details = lab.cni("h1", &env.cmd("CHECK"), &c).expect_error(101);
    assert!(details.contains("MAC"), "{details}");

    // DEL, twice; and DEL of a container whose namespace is already gone.
    for (name, ns, env, conf, _) in &made[..3] {
        lab.cni("h1", &env.cmd("DEL"), conf).ok();
        lab.cni("h1", &env.cmd("DEL"), conf).ok();
        assert_eq!(lab.links(name), ["lo"], "{name} keeps an interface");
        let _ = ns;
    }
    let (name, _, env, conf, _) = &made[3];
    sh(&["ip", "netns", "del", &lab.netns(name)]);
    lab.cni("h1", &env.cmd("DEL"), conf).ok();
    lab.cni("h1", &env.cmd("CHECK"), conf).expect_error(101);

    // Addresses back to the pool, no record, interface or FDB entry of them left on h1.
    let peer_cidr = lab.endpoint("peer", NET)["ipv4"]
        .as_str()
        .unwrap()
        .to_string();
    let eps: Value =
        serde_json::from_str(&lab.ok_on("h1", &["endpoints", "--network", NET, "--json"])).unwrap();
    assert_eq!(eps.as_array().unwrap().len(), 1, "{eps}");
    assert_eq!(eps[0]["ipv4"], peer_cidr.as_str());
    assert_eq!(allocated(&lab).len(), 2, "{:?}", allocated(&lab));
    assert!(
        eventually(Duration::from_secs(5), || lab.links("h1") == before_links),
        "h1 keeps interfaces: {:?} (was {:?})",
        lab.links("h1"),
        before_links
    );
}

#[test]
fn errors_carry_the_spec_codes() {
    let lab = lab_with_network(1, &[]);
    let ns = lab.bare_netns("e1");
    let add = Env::new("ADD", "cid-e", &ns);
    let good = lab.cni_conf("h1", "1.0.0", NET, json!({}));
    let before = lab.records(NET);

    // 1: a version the plugin does not speak; an operation the version does not have.
    lab.cni("h1", &add, &lab.cni_conf("h1", "9.9.9", NET, json!({})))
        .expect_error(1);
    lab.cni("h1", &add.cmd("STATUS"), &good).expect_error(1);
    lab.cni(
        "h1",
        &add.cmd("GC"),
        &lab.cni_conf("h1", "1.0.0", NET, json!({})),
    )
    .expect_error(1);
    // 4: environment missing or wrong.
    let mut no_id = add.clone();
    no_id.container_id.clear();
    lab.cni("h1", &no_id, &good).expect_error(4);
    lab.cni("h1", &add.cmd("FROB"), &good).expect_error(4);
    let mut bad_ns = add.clone();
    bad_ns.netns = format!("/run/netns/{}-nope", lab.prefix);
    let d = lab.cni("h1", &bad_ns, &good).expect_error(4);
    assert!(d.contains("CNI_NETNS"), "{d}");
    let mut bad_if = add.clone();
    bad_if.ifname = "this-name-is-far-too-long".into();
    lab.cni("h1", &bad_if, &good).expect_error(4);
    let mut bad_args = add.clone();
    bad_args.args = "FOO=bar".into();
    lab.cni("h1", &bad_args, &good).expect_error(4);
    // 6: not JSON, or not a configuration.
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "cid-e"),
        ("CNI_NETNS", ns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    lab.cni_raw("h1", &env, b"{\"cniVersion\": \"1.0.0\", \"name\":")
        .expect_error(6);
    lab.cni_raw("h1", &env, b"[1,2,3]").expect_error(6);
    // 7: the configuration is readable but wrong.
    for extra in [
        json!({"type": "bridge"}),
        json!({"network": "nosuchnet"}),
        json!({"ipam": {"type": "host-local"}}),
        json!({"host": 5}),
        json!({"store": "relative.db"}),
        json!({"runtimeConfig": {"ips": ["10.99.0.5/24"]}}),
    ] {
        let d = lab
            .cni("h1", &add, &lab.cni_conf("h1", "1.0.0", NET, extra.clone()))
            .expect_error(7);
        assert!(!d.is_empty(), "{extra}: no details");
    }
    // 11: nothing wrong with the call, but the store or this host's agent is not there (yet).
    let d = lab
        .cni(
            "h1",
            &add,
            &lab.cni_conf("h1", "1.0.0", NET, json!({"host": "h9"})),
        )
        .expect_error(11);
    assert!(d.contains("h9"), "{d}");
    lab.cni(
        "h1",
        &add,
        &lab.cni_conf("h1", "1.0.0", NET, json!({"store": "etcd://127.0.0.1:9"})),
    )
    .expect_error(11);

    // None of it changed anything.
    assert_eq!(lab.records(NET), before);
    assert_eq!(lab.links("e1"), ["lo"]);
}

#[test]
fn status_is_50_without_agent_or_network_and_51_with_stranded_containers() {
    let lab = lab_with_network(2, &["--lease-ttl", "2"]);
    let st = |host: &str, extra: Value| {
        lab.cni(
            host,
            &Env::new("STATUS", "", ""),
            &lab.cni_conf(host, "1.1.0", NET, extra),
        )
    };
    st("h1", json!({})).ok();
    st("h1", json!({"network": "nosuchnet"})).expect_error(50);
    st("h1", json!({"host": "h9"})).expect_error(50);

    let ns = lab.bare_netns("s1");
    let env = Env::new("ADD", "cid-s", &ns);
    lab.cni("h2", &env, &lab.cni_conf("h2", "1.1.0", NET, json!({})))
        .ok();
    let o = lab.lab(&["agent", "stop", "h2"]);
    assert!(o.status.success(), "{}", out_text(&o));
    // The agent's lease runs out; its container is still plugged in on h2, cut off from updates.
    assert!(
        eventually(Duration::from_secs(15), || st("h2", json!({})).code
            != Some(0)),
        "STATUS still fine without the agent"
    );
    let d = st("h2", json!({})).expect_error(51);
    assert!(d.contains("h2"), "{d}");
    lab.cni(
        "h2",
        &Env::new("ADD", "cid-s2", &lab.bare_netns("s2")),
        &lab.cni_conf("h2", "1.1.0", NET, json!({})),
    )
    .expect_error(11);
}

#[test]
fn gc_removes_only_stale_plugin_endpoints() {
    let lab = lab_with_network(2, &[]);
    lab.run("h1", "manual", NET);
    let conf = lab.cni_conf("h1", "1.1.0", NET, json!({}));
    let mut envs = Vec::new();
    for name in ["g1", "g2", "g3"] {
        let env = Env::new("ADD", &format!("cid-{name}"), &lab.bare_netns(name));
        lab.cni("h1", &env, &conf).ok();
        envs.push(env);
    }
    // Another host's plugin endpoint with the same container ID is not this host's to collect.
    let other = Env::new("ADD", "cid-g2", &lab.bare_netns("g4"));
    lab.cni("h2", &other, &lab.cni_conf("h2", "1.1.0", NET, json!({})))
        .ok();

    let mut gc = conf.clone();
    lab.cni("h1", &Env::new("GC", "", ""), &gc).expect_error(7);
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "cid-g1", "ifname": "eth0"}]);
    lab.cni("h1", &Env::new("GC", "", ""), &gc).ok();

    let eps: Value =
        serde_json::from_str(&lab.ok_on("h1", &["endpoints", "--network", NET, "--json"])).unwrap();
    let mut left: Vec<(String, String)> = eps
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["labels"]["cni.containerID"]
                    .as_str()
                    .unwrap_or("manual")
                    .to_string(),
            )
        })
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ("h1".to_string(), "cid-g1".to_string()),
            ("h1".to_string(), "manual".to_string()),
            ("h2".to_string(), "cid-g2".to_string())
        ]
    );
    assert_eq!(lab.links("g1").len(), 2);
    assert_eq!(lab.links("g2"), ["lo"]);
    assert_eq!(lab.links("g3"), ["lo"]);
    assert_eq!(lab.links("g4").len(), 2);
    // Collected endpoints' DEL still succeeds.
    lab.cni("h1", &envs[1].cmd("DEL"), &conf).ok();
}

#[test]
fn static_address_and_mac_from_args_and_capabilities() {
    let lab = lab_with_network(1, &[]);
    let a = lab.bare_netns("st1");
    let mut env = Env::new("ADD", "cid-st1", &a);
    env.args = "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.31.0.77;MAC=02:00:00:31:00:77".into();
    let conf = lab.cni_conf("h1", "1.0.0", NET, json!({}));
    let r = lab.cni("h1", &env, &conf).ok().json();
    assert_eq!(r["ips"][0]["address"], "10.31.0.77/24", "{r}");
    assert_eq!(r["interfaces"][1]["mac"], "02:00:00:31:00:77", "{r}");
    assert_eq!(lab.endpoint("st1", NET)["names"], json!(["web"]));

    let b = lab.bare_netns("st2");
    let with_caps = lab.cni_conf(
        "h1",
        "1.0.0",
        NET,
        json!({"capabilities": {"ips": true, "mac": true},
               "runtimeConfig": {"ips": ["10.31.0.78/24"], "mac": "02:00:00:31:00:78"}}),
    );
    let r = lab
        .cni("h1", &Env::new("ADD", "cid-st2", &b), &with_caps)
        .ok()
        .json();
    assert_eq!(r["ips"][0]["address"], "10.31.0.78/24", "{r}");
    assert_eq!(r["interfaces"][1]["mac"], "02:00:00:31:00:78", "{r}");

    // Taken: refused, nothing left behind.
    let c = lab.bare_netns("st3");
    let before = lab.records(NET);
    let mut taken = Env::new("ADD", "cid-st3", &c);
    taken.args = "IP=10.31.0.77".into();
    let d = lab.cni("h1", &taken, &conf).expect_error(100);
    assert!(d.contains("already taken"), "{d}");
    assert_eq!(lab.records(NET), before);
    assert_eq!(lab.links("st3"), ["lo"]);
}

#[test]
fn portmap_chained_after_weft_reaches_the_container() {
    let lab = lab_with_network(2, &[]);
    let ns = lab.bare_netns("web");
    let env = Env::new("ADD", "cid-web", &ns);
    let conf = lab.cni_conf("h1", "1.0.0", NET, json!({}));
    let r = lab.cni("h1", &env, &conf).ok().json();
    assert_eq!(r["ips"][0]["gateway"], "10.31.0.1", "{r}");
    assert!(
        r["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["dst"] == "0.0.0.0/0"),
        "{r}"
    );

    // portmap, the next plugin in the chain, gets weft's result as prevResult.
    let pm = json!({
        "cniVersion": "1.0.0", "name": NET, "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": r,
    });
    let run_portmap = |cmd: &str, conf: &Value| {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", lab.netns("h1")))
            .arg("/usr/lib/cni/portmap")
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", "cid-web")
            .env("CNI_NETNS", &ns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "portmap {cmd}: {}", out_text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let chained: Value = serde_json::from_str(&run_portmap("ADD", &pm)).unwrap();
    assert_eq!(chained["ips"], r["ips"], "portmap passes weft's result on");

    // A client on h2 reaches h1's underlay address at the mapped port, and so the container.
    let (tx, rx) = std::sync::mpsc::channel();
    let server = common::sockets::in_netns(&lab.netns("web"), move || {
        let l = std::net::TcpListener::bind("0.0.0.0:80").unwrap();
        tx.send(()).unwrap();
        let (mut s, from) = l.accept().unwrap();
        use std::io::Write;
        s.write_all(b"weft-portmap").unwrap();
        from
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let got = common::sockets::in_netns(&lab.netns("h2"), || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect_timeout(
            &"192.0.2.11:18080".parse().unwrap(),
            Duration::from_secs(5),
        )
        .expect("connecting to the mapped port on h1");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    })
    .join()
    .unwrap();
    assert_eq!(got, "weft-portmap");
    let from = server.join().unwrap();
    assert_eq!(
        from.ip().to_string(),
        "192.0.2.12",
        "the container sees the real client"
    );

    // The runtime tears the chain down in reverse.
    let mut pm_del = pm.clone();
    pm_del["prevResult"] = chained.clone();
    run_portmap("DEL", &pm_del);
    let mut del = conf.clone();
    del["prevResult"] = chained;
    lab.cni("h1", &env.cmd("DEL"), &del).ok();
    assert_eq!(lab.links("web"), ["lo"]);
    assert_eq!(allocated(&lab).len(), 0);
}

/// A mutation of a valid configuration: keys dropped, set to values of every JSON kind, versions
/// garbled, the text cut short or its bytes flipped.
fn mutate(rng: &mut impl rand::Rng, base: &Value) -> Vec<u8> {
    let keys = [
        "cniVersion",
        "name",
        "type",
        "network",
        "host",
        "ipam",
        "dns",
        "runtimeConfig",
        "prevResult",
        "capabilities",
        "args",
        "cni.dev/valid-attachments",
    ];
    let mut v = base.clone();
    for _ in 0..rng.gen_range(0..=2) {
        let k = keys[rng.gen_range(0..keys.len())];
        match rng.gen_range(0..10) {
            0 => {
                v.as_object_mut().unwrap().remove(k);
            }
            1 => v[k] = Value::Null,
            2 => v[k] = json!(rng.gen::<bool>()),
            3 => v[k] = json!(rng.gen::<i64>()),
            4 => v[k] = json!(rng.gen::<f64>() * 1e300),
            5 => {
                let len = rng.gen_range(0..40);
                let s: String = (0..len)
                    .map(|_| char::from_u32(rng.gen_range(0x20..0x3000)).unwrap_or('x'))
                    .collect();
                v[k] = json!(s);
            }
            6 => v[k] = json!([1, "a", null, {"x": []}]),
            7 => v[k] = json!({"ips": ["10.31.0.300/24"], "nameservers": [5], "type": ""}),
            8 => {
                v["cniVersion"] = json!(
                    ["", "1", "0.4", "1.0.0-rc1", "a.b.c", "0.2.0", "1.0.0.0"][rng.gen_range(0..7)]
                )
            }
            _ => {
                v["runtimeConfig"] = json!({"ips": [["x"]], "mac": "ff:ff:ff:ff:ff:ff"});
            }
        }
    }
    // The store key always names this lab's store (or garbage that opens none): a mutated
    // path would have the plugin create a store file anywhere.
    if !v["store"].is_string() || rng.gen_range(0..8) == 0 {
        v["store"] = match rng.gen_range(0..3) {
            0 => json!(42),
            1 => json!("not a url"),
            _ => base["store"].clone(),
        };
    }
    let mut bytes = serde_json::to_vec(&v).unwrap();
    match rng.gen_range(0..6) {
        0 if !bytes.is_empty() => bytes.truncate(rng.gen_range(0..bytes.len())),
        1 if !bytes.is_empty() => {
            let i = rng.gen_range(0..bytes.len());
            bytes[i] = rng.gen();
        }
        _ => {}
    }
    bytes
}

#[test]
fn fuzzed_configurations_fail_cleanly_and_change_nothing() {
    let lab = lab_with_network(1, &[]);
    lab.run("h1", "anchor", NET);
    let ns = lab.bare_netns("fz");
    let base = lab.cni_conf("h1", "1.1.0", NET, json!({"network": NET}));
    let seed: u64 = std::env::var("WEFT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("fuzz seed {seed} (WEFT_FUZZ_SEED to repeat)");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let snapshot = || (lab.records(NET), lab.links("h1"), lab.links("fz"));
    let before = snapshot();
    let (mut failed, mut succeeded) = (0, 0);
    for i in 0..100 {
        let stdin = mutate(&mut rng, &base);
        let cmd = ["ADD", "DEL", "CHECK", "ADD", "GC", "STATUS"][i % 6];
        let env = [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "cid-fz"),
            ("CNI_NETNS", ns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        let a = lab.cni_raw("h1", &env, &stdin);
        let text = String::from_utf8_lossy(&stdin);
        if std::env::var("WEFT_FUZZ_VERBOSE").is_ok() {
            eprintln!("{cmd} {text} -> {:?} {}", a.code, a.stdout);
        }
        assert!(!a.stderr.contains("panicked"), "{cmd} {text}: {a:?}");
        if a.code == Some(0) {
            succeeded += 1;
            if cmd == "ADD" {
                // Still a valid configuration: what it made must go away with DEL.
                let r = a.json();
                assert!(r["cniVersion"].is_string(), "{text}: {r}");
                let mut del_env = env;
                del_env[0] = ("CNI_COMMAND", "DEL");
                let del = lab.cni_raw("h1", &del_env, &stdin);
                assert_eq!(del.code, Some(0), "DEL after fuzzed ADD {text}: {del:?}");
            }
        } else {
            failed += 1;
            let code = a.error_code();
            assert!(
                [1, 4, 6, 7, 11, 50, 51, 100, 101, 102, 103].contains(&code),
                "{cmd} {text}: unexpected code {code}: {a:?}"
            );
        }
        assert_eq!(
            snapshot(),
            before,
            "{cmd} with {text} changed something: {a:?}"
        );
    }
    eprintln!("fuzz: {failed} refused, {succeeded} accepted");
    assert!(failed > 30, "too few mutations were refused ({failed})");
    assert!(
        succeeded > 5,
        "too few mutations were still valid ({succeeded})"
    );
}

#[test]
fn add_check_del_on_the_etcd_store() {
    let lab = Lab::up(2, "etcd");
    lab.ok_on(
        "h1",
        &["network", "create", NET, "--subnet", "10.33.0.0/24"],
    );
    assert!(
        lab.store_url().starts_with("etcd://"),
        "{}",
        lab.store_url()
    );
    lab.run("h1", "peer", NET);
    let ns = lab.bare_netns("ek");
    let env = Env::new("ADD", "cid-ek", &ns);
    let mut conf = lab.cni_conf("h2", "0.4.0", NET, json!({}));
    let r = lab.cni("h2", &env, &conf).ok().json();
    assert_eq!(r["ips"][0]["version"], "4", "{r}");
    assert!(ping_from_ns(&ns, &lab.ip4("peer", NET)));
    conf["prevResult"] = r;
    lab.cni("h2", &env.cmd("CHECK"), &conf).ok();
    lab.cni("h2", &env.cmd("DEL"), &conf).ok();
    lab.cni("h2", &env.cmd("DEL"), &conf).ok();
    assert_eq!(allocated(&lab).len(), 1);
    assert_eq!(lab.links("ek"), ["lo"]);
}
