//! Addresses are allocated cluster-wide without duplicates when hosts attach at the same moment,
//! and released addresses return to the pool from its start.

mod common;

use std::collections::HashSet;

use common::*;

#[test]
fn concurrent_attaches_never_share_an_address() {
    let lab = Lab::up(3, "embedded");
    lab.ok_on(
        "h1",
        &[
            "network",
            "create",
            "race",
            "--subnet",
            "10.91.0.0/24",
            "--subnet",
            "fd91::/64",
        ],
    );
    let containers: Vec<(String, String)> = (0..12)
        .map(|i| (format!("r{i}"), format!("h{}", i % 3 + 1)))
        .collect();
    let handles: Vec<_> = containers
        .iter()
        .map(|(c, h)| {
            let (c, h, prefix) = (c.clone(), h.clone(), lab.prefix.clone());
            std::thread::spawn(move || {
                let o = weft(&[
                    "lab",
                    "run",
                    "--prefix",
                    &prefix,
                    &h,
                    &c,
                    "--network",
                    "race",
                ]);
                assert!(o.status.success(), "lab run {c} on {h}:\n{}", out_text(&o));
            })
        })
        .collect();
    for h in handles {
        h.join().expect("attach thread");
    }
    let mut v4 = HashSet::new();
    let mut v6 = HashSet::new();
    for (c, _) in &containers {
        assert!(
            v4.insert(lab.ip4(c, "race")),
            "duplicate IPv4 {} for {c}",
            lab.ip4(c, "race")
        );
        assert!(
            v6.insert(lab.ip6(c, "race")),
            "duplicate IPv6 {} for {c}",
            lab.ip6(c, "race")
        );
    }
    // Lowest first: the 12 addresses are exactly .2 to .13.
    let want: HashSet<String> = (2..14).map(|i| format!("10.91.0.{i}")).collect();
    assert_eq!(v4, want);
    // Releasing returns an address to the pool: being the only free one below .14, r0's address
    // is what the next attach gets.
    let r0 = lab.ip4("r0", "race");
    let o = lab.lab(&["rm", "r0"]);
    assert!(o.status.success(), "{}", out_text(&o));
    lab.run("h2", "late", "race");
    assert_eq!(
        lab.ip4("late", "race"),
        r0,
        "the released address was not reused first"
    );
}
