//! `docker run -p` on a weft network, end to end against real Docker engines: the bindings
//! Docker hands the driver become the endpoint's published ports (claimed in the store, DNAT in
//! weft's firewall), reachable on the host's underlay address from the lab's outside and from
//! another host, refused when the host port is taken, and gone with the container (also when
//! Docker crashed with it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::sockets::{in_netns, udp_echo};
use common::*;

const NET: &str = "web";
const V4: &str = "10.74.0.0/24";
const H1: &str = "192.0.2.11";
const H2: &str = "192.0.2.12";

/// Serves `/index.html` holding `name` on port 80 (busybox httpd).
fn serve(name: &str) -> String {
    format!("mkdir /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www")
}

/// `docker run -d --name NAME --network web -p … weft-busybox sh -c (serve NAME)`.
fn run(lab: &Lab, host: &str, name: &str, publish: &[&str]) -> std::process::Output {
    let mut a = vec!["run", "-d", "--name", name, "--network", NET];
    for p in publish {
        a.extend(["-p", p]);
    }
    let cmd = serve(name);
    a.extend(["weft-busybox", "sh", "-c", &cmd]);
    lab.docker(host, &a)
}

/// GET / over HTTP/1.0 from namespace `ns`; the body, or None without an answer.
fn get(ns: &str, to: &str) -> Option<String> {
    let to: SocketAddr = to.parse().unwrap();
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut got = String::new();
        s.read_to_string(&mut got).ok()?;
        Some(got.split_once("\r\n\r\n")?.1.trim().to_string())
    })
    .join()
    .unwrap()
}

/// `ns` gets `want` from `to`, allowing the container's server a moment to start.
fn answers(ns: &str, to: &str, want: &str) {
    let mut last = None;
    let ok = eventually(Duration::from_secs(10), || {
        last = get(ns, to);
        last.as_deref() == Some(want)
    });
    assert!(ok, "{ns} → {to}: wanted {want:?}, got {last:?}");
}

/// The weft endpoint record of a Docker container on the network.
fn endpoint(lab: &Lab, host: &str, container: &str) -> serde_json::Value {
    let f = format!("{{{{(index .NetworkSettings.Networks \"{NET}\").EndpointID}}}}");
    let id = lab.docker_ok(host, &["inspect", "-f", &f, container]);
    let eps = lab.inspect(NET)["endpoints"].clone();
    eps.as_array()
        .unwrap()
        .iter()
        .find(|e| e["labels"]["docker.endpoint"] == id.as_str())
        .unwrap_or_else(|| panic!("no endpoint of {container} ({id}) in {eps}"))
        .clone()
}

fn ports(lab: &Lab) -> serde_json::Value {
    lab.inspect(NET)["ports"].clone()
}

fn ruleset(lab: &Lab, host: &str) -> String {
    // Stateless (-s): without counters, so that two listings compare.
    let o = lab.exec(host, &["nft", "-s", "list", "table", "inet", "weft"]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn docker_run_publish() {
    let lab = Lab::up_with(2, "embedded", &["--outside"]);
    lab.docker_start("h1");
    lab.docker_start("h2");
    let out = format!("{}-out", lab.prefix);
    for h in ["h1", "h2"] {
        lab.docker_ok(
            h,
            &[
                "network",
                "create",
                "-d",
                "weft",
                "--ipam-driver",
                "weft",
                "--subnet",
                V4,
                NET,
            ],
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            lab.weft_on("h1", &["network", "inspect", NET])
                .status
                .success()
        }),
        "docker network create made no weft network"
    );
    let start = ports(&lab);
    assert_eq!(start, serde_json::json!({}));

    // A fixed port, a UDP port and a port Docker leaves to the driver (`-p 80`).
    let o = run(
        &lab,
        "h1",
        "c1",
        &["8080:80", "5353:5353/udp", "80", "9000-9002:80"],
    );
    assert!(o.status.success(), "{}", out_text(&o));
    let claims = ports(&lab);
    let claims = claims.as_object().unwrap();
    let mut keys: Vec<&str> = claims.keys().map(String::as_str).collect();
    keys.sort();
    // Docker's bridge takes a port of the kernel's local port range for `-p 80`; so does weft.
    let range = String::from_utf8(
        lab.exec("h1", &["cat", "/proc/sys/net/ipv4/ip_local_port_range"])
            .stdout,
    )
    .unwrap();
    let (lo, hi) = range.trim().split_once('\t').expect("two numbers");
    let (lo, hi): (u16, u16) = (lo.trim().parse().unwrap(), hi.trim().parse().unwrap());
    let dynamic: Vec<u16> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("h1/tcp/")?.parse().ok())
        .filter(|p| ![8080, 9000].contains(p))
        .collect();
    assert_eq!(dynamic.len(), 1, "{keys:?}");
    assert!(
        (lo..=hi).contains(&dynamic[0]),
        "{} not in {range}",
        dynamic[0]
    );
    let dynamic = dynamic[0];
    assert_eq!(
        keys.iter()
            .filter(|k| !k.ends_with(&format!("/{dynamic}")))
            .collect::<Vec<_>>(),
        vec![&"h1/tcp/8080", &"h1/tcp/9000", &"h1/udp/5353"]
    );
    let c1 = endpoint(&lab, "h1", "c1");
    assert!(
        claims.values().all(|c| c["endpoint"] == c1["id"]),
        "{claims:?}"
    );

    // Reachable at h1's underlay address from the outside, from another host and from h1.
    answers(&out, &format!("{H1}:8080"), "c1");
    answers(&lab.netns("h2"), &format!("{H1}:8080"), "c1");
    answers(&lab.netns("h1"), &format!("{H1}:8080"), "c1");
    // And at 127.0.0.1 on h1, as Docker's bridge does.
    answers(&lab.netns("h1"), "127.0.0.1:8080", "c1");
    answers(&out, &format!("{H1}:{dynamic}"), "c1");
    answers(&out, &format!("{H1}:9000"), "c1");
    // UDP: a server in c1's namespace on 5353, called at h1's address.
    let pid = lab.docker_ok("h1", &["inspect", "-f", "{{.State.Pid}}", "c1"]);
    udp_echo(&format!("/proc/{pid}/ns/net"), &out, H1, 5353, 3, 100);

    // The same host port on another host is that host's own.
    let o = run(&lab, "h2", "c2", &["8080:80"]);
    assert!(o.status.success(), "{}", out_text(&o));
    answers(&out, &format!("{H2}:8080"), "c2");
    assert_eq!(get(&out, &format!("{H1}:8080")).as_deref(), Some("c1"));

    // A second container asking for a taken host port is refused by Docker with weft's error,
    // and leaves nothing: no endpoint, address, claim or rule, and c1 keeps its port.
    let before = lab.inspect(NET);
    let rules = ruleset(&lab, "h1");
    let o = run(&lab, "h1", "c3", &["8081:80", "8080:80"]);
    assert!(!o.status.success(), "a second -p 8080 was accepted");
    let text = out_text(&o);
    assert!(
        text.contains("host port 8080/tcp is already published on host h1")
            && text.contains(c1["id"].as_str().unwrap()),
        "{text}"
    );
    let after = lab.inspect(NET);
    assert_eq!(after["endpoints"], before["endpoints"]);
    assert_eq!(after["allocations"], before["allocations"]);
    assert_eq!(after["ports"], before["ports"]);
    assert_eq!(ruleset(&lab, "h1"), rules);
    assert!(get(&out, &format!("{H1}:8081")).is_none());
    answers(&out, &format!("{H1}:8080"), "c1");
    lab.docker_ok("h1", &["rm", "-f", "c3"]);

    // What weft cannot do is refused as clearly, with nothing left either.
    let o = run(&lab, "h1", "c4", &["127.0.0.1:8082:80"]);
    assert!(!o.status.success(), "-p 127.0.0.1:… was accepted");
    assert!(
        out_text(&o).contains("weft publishes ports on all of the host's addresses"),
        "{}",
        out_text(&o)
    );
    assert_eq!(lab.inspect(NET)["ports"], before["ports"]);
    lab.docker_ok("h1", &["rm", "-f", "c4"]);

    // Gone with the container: no answer, no rule, the claims back to their start.
    lab.docker_ok("h1", &["rm", "-f", "c1"]);
    lab.docker_ok("h2", &["rm", "-f", "c2"]);
    assert!(get(&out, &format!("{H1}:8080")).is_none());
    assert!(get(&out, &format!("{H2}:8080")).is_none());
    assert!(!ruleset(&lab, "h1").contains("dport 8080"));
    assert_eq!(ports(&lab), start);
    assert_eq!(lab.inspect(NET)["endpoints"], serde_json::json!([]));
    // The port is free again for the next container.
    let o = run(&lab, "h1", "c5", &["8080:80"]);
    assert!(o.status.success(), "{}", out_text(&o));
    answers(&out, &format!("{H1}:8080"), "c5");
    lab.docker_ok("h1", &["rm", "-f", "c5"]);
    assert_eq!(ports(&lab), start);

    // Docker crashes with a publishing container while the agent is down: once both are back
    // the ports are released (by the agent's stale-endpoint sweep or Docker's own clean-up at
    // its start, whichever comes first) and the rules go.
    let o = run(&lab, "h1", "c6", &["8080:80"]);
    assert!(o.status.success(), "{}", out_text(&o));
    answers(&out, &format!("{H1}:8080"), "c6");
    assert!(lab.lab(&["agent", "kill", "h1"]).status.success());
    let o = lab.lab(&["docker", "kill", "h1"]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert!(lab.lab(&["agent", "start", "h1"]).status.success());
    lab.docker_start("h1");
    assert!(
        eventually(Duration::from_secs(10), || ports(&lab) == start
            && !ruleset(&lab, "h1").contains("dport 8080")),
        "ports of c6 left: {}",
        ports(&lab)
    );
    lab.docker_ok("h1", &["rm", "-f", "c6"]);
    for h in ["h1", "h2"] {
        lab.docker_ok(h, &["network", "rm", NET]);
    }
}
