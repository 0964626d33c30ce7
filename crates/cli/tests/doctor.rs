//! `weft doctor` on a lab host: all good on a healthy host; a missing forwarding entry, a downed
//! interface, a stopped agent and a vanished container namespace are each named, with exit 1; the
//! agent's repair is seen. `weft trace` between two containers: hops, probe, a missing entry named,
//! isolation explained.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, out_text, Lab};

fn doctor(lab: &Lab, host: &str) -> (i32, serde_json::Value) {
    let o = lab.weft_on(host, &["doctor", "--json"]);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}\n{}", out_text(&o)));
    (o.status.code().unwrap_or(-1), v)
}

fn problems(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] != "ok")
        .map(|f| format!("{} {}: {}", f["level"], f["subject"], f["message"]))
        .collect()
}

fn sh(lab: &Lab, host: &str, cmd: &str) {
    let o = lab.exec(host, &["sh", "-c", cmd]);
    assert!(o.status.success(), "{cmd}:\n{}", out_text(&o));
}

#[test]
fn doctor_names_what_is_broken() {
    let lab = Lab::up_with(2, "embedded", &["--lease-ttl", "60"]);
    lab.ok_on(
        "h1",
        &["network", "create", "dn", "--subnet", "10.91.0.0/24"],
    );
    lab.run("h1", "a", "dn");
    lab.run("h2", "b", "dn");

    let mut last = serde_json::Value::Null;
    let healthy = eventually(Duration::from_secs(10), || {
        let (code, v) = doctor(&lab, "h1");
        let ok = code == 0 && problems(&v).is_empty();
        last = v;
        ok
    });
    assert!(healthy, "a healthy host has findings: {last:#}");
    let text = lab.ok_on("h1", &["doctor"]);
    assert!(text.contains("all good"), "{text}");
    assert!(text.contains("network dn"), "{text}");

    // trace: the two share dn; every hop named; the probe crosses.
    let b_ip = lab.ip4("b", "dn");
    let t: serde_json::Value =
        serde_json::from_str(&lab.ok_on("h1", &["trace", "a", &b_ip, "--probe", "--json"]))
            .unwrap();
    assert_eq!(t["network"], "dn", "{t:#}");
    let hops = t["hops"].to_string();
    assert!(hops.contains("192.0.2.11 → 192.0.2.12"), "{hops}");
    assert_eq!(t["probes"][0]["received"], 3, "{t:#}");
    assert!(
        t["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["level"] == "ok"),
        "{t:#}"
    );
    // Isolation is explained, with exit 1.
    lab.ok_on(
        "h1",
        &["network", "create", "other", "--subnet", "10.92.0.0/24"],
    );
    lab.run("h2", "c", "other");
    let o = lab.weft_on("h1", &["trace", "a", "c"]);
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("share no network"),
        "{}",
        out_text(&o)
    );
    let o = lab.weft_on("h1", &["trace", "a", "nobody"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no endpoint matches \"nobody\""),
        "{}",
        out_text(&o)
    );

    // With the agent stopped nothing repairs what we break.
    let o = lab.lab(&["agent", "stop", "h1"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let vni = lab.vni("dn");
    let b = lab.endpoint("b", "dn");
    let mac = b["mac"].as_str().unwrap().to_string();
    sh(
        &lab,
        "h1",
        &format!("bridge fdb del {mac} dev wvx{vni} dst 192.0.2.12 self"),
    );
    let a = lab.endpoint("a", "dn");
    let veth = a["host_ifname"].as_str().unwrap().to_string();
    sh(&lab, "h1", &format!("ip link set {veth} down"));

    let (code, v) = doctor(&lab, "h1");
    assert_eq!(code, 1, "{v:#}");
    let p = problems(&v).join("\n");
    assert!(
        p.contains("1 forwarding/neighbour entries missing") && p.contains(&mac),
        "{p}"
    );
    assert!(p.contains(&format!("{veth} is down")), "{p}");
    // The human form names them too, with what to do.
    let o = lab.weft_on("h1", &["doctor", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("FAIL") && text.contains("→"), "{text}");
    assert!(
        !text.contains("network dn  kernel"),
        "quiet shows only problems: {text}"
    );

    // The agent puts the entry back on start; the link is the user's to raise.
    let o = lab.lab(&["agent", "start", "h1"]);
    assert!(o.status.success(), "{}", out_text(&o));
    sh(&lab, "h1", &format!("ip link set {veth} up"));
    let repaired = eventually(Duration::from_secs(10), || {
        let (code, v) = doctor(&lab, "h1");
        last = v;
        code == 0
    });
    assert!(repaired, "not repaired: {last:#}");

    // A container that vanished without a detach.
    let ns = lab.netns("b");
    let st = Command::new("ip")
        .args(["netns", "del", &ns])
        .status()
        .unwrap();
    assert!(st.success());
    let (code, v) = doctor(&lab, "h2");
    assert_eq!(code, 1, "{v:#}");
    let p = problems(&v).join("\n");
    assert!(p.contains("namespace is gone"), "{p}");
    lab.ok_on("h2", &["detach", &format!("/run/netns/{ns}"), "dn"]);
    let (code, v) = doctor(&lab, "h2");
    assert_eq!(code, 0, "{v:#}");
}
