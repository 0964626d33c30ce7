//! Docker and Podman on one weft network: a container Docker started on h1 (weft's network and
//! IPAM driver) and one Podman started on h2 (weft's CNI plugin) reach each other, take their
//! addresses from the same pool, and leave nothing when removed.

mod common;

use common::podman::{Podman, IMAGE};
use common::*;
use serde_json::Value;

const NET: &str = "mixed";

fn endpoints(lab: &Lab) -> Vec<(String, String)> {
    let v: Value =
        serde_json::from_str(&lab.ok_on("h1", &["endpoints", "--network", NET, "--json"])).unwrap();
    let mut out: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["ipv4"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn docker_and_podman_containers_share_a_weft_network() {
    let lab = Lab::up(2, "embedded");
    lab.docker_start("h1");
    let o = lab.docker(
        "h1",
        &[
            "network",
            "create",
            "-d",
            "weft",
            "--ipam-driver",
            "weft",
            "--subnet",
            "10.34.0.0/24",
            NET,
        ],
    );
    assert!(o.status.success(), "{}", out_text(&o));
    // The Docker network is the weft network the CNI configuration names.
    assert!(
        eventually(std::time::Duration::from_secs(10), || {
            lab.weft_on("h1", &["network", "inspect", NET])
                .status
                .success()
        }),
        "docker network create made no weft network"
    );
    assert_eq!(lab.inspect(NET)["subnet4"], "10.34.0.0/24");
    let p2 = Podman::setup(&lab, "h2", NET);

    lab.docker_ok(
        "h1",
        &[
            "run",
            "-d",
            "--name",
            "dk",
            "--network",
            NET,
            "weft-busybox",
            "sleep",
            "600",
        ],
    );
    p2.ok(&[
        "run",
        "-d",
        "--name",
        "pd",
        "--network",
        NET,
        IMAGE,
        "sleep",
        "600",
    ]);
    let dk = lab.docker_ok(
        "h1",
        &[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{NET}\").IPAddress}}}}"),
            "dk",
        ],
    );
    let pd = p2.ip("pd", NET);
    assert_ne!(dk, pd, "one pool, two addresses");
    assert_eq!(
        endpoints(&lab),
        [
            ("h1".to_string(), format!("{dk}/24")),
            ("h2".to_string(), format!("{pd}/24"))
        ]
    );

    let o = lab.docker("h1", &["exec", "dk", "ping", "-c", "1", "-W", "3", &pd]);
    assert!(
        o.status.success(),
        "Docker's dk cannot reach Podman's pd:\n{}",
        out_text(&o)
    );
    p2.ok(&["exec", "pd", "ping", "-c", "1", "-W", "3", &dk]);

    lab.docker_ok("h1", &["rm", "-f", "dk"]);
    p2.ok(&["rm", "--force", "--time", "0", "pd"]);
    assert!(
        eventually(std::time::Duration::from_secs(10), || endpoints(&lab)
            .is_empty()),
        "endpoints left: {:?}",
        endpoints(&lab)
    );
    assert_eq!(
        lab.inspect(NET)["allocations"]
            .as_object()
            .map(|a| a.len())
            .unwrap_or(0),
        0,
        "addresses left allocated"
    );
}
