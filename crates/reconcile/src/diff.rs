use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::{FdbEntry, NeighEntry};

/// Entry-level changes for one network's uplink. Removals come first when applied so that a MAC
/// that moved between hosts never has two destinations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetChanges {
    pub fdb_del: Vec<FdbEntry>,
    pub fdb_add: Vec<FdbEntry>,
    pub flood_del: Vec<IpAddr>,
    pub flood_add: Vec<IpAddr>,
    pub neigh_del: Vec<NeighEntry>,
    pub neigh_add: Vec<NeighEntry>,
}

impl NetChanges {
    pub fn is_empty(&self) -> bool {
        self.fdb_del.is_empty()
            && self.fdb_add.is_empty()
            && self.flood_del.is_empty()
            && self.flood_add.is_empty()
            && self.neigh_del.is_empty()
            && self.neigh_add.is_empty()
    }

    pub fn count(&self) -> usize {
        self.fdb_del.len()
            + self.fdb_add.len()
            + self.flood_del.len()
            + self.flood_add.len()
            + self.neigh_del.len()
            + self.neigh_add.len()
    }
}

fn sets<T: Ord + Copy>(have: &BTreeSet<T>, want: &BTreeSet<T>) -> (Vec<T>, Vec<T>) {
    (
        have.difference(want).copied().collect(),
        want.difference(have).copied().collect(),
    )
}

/// What turns `have` into `want`: keeps what is right, removes what is stale, adds what is missing.
/// A neighbour whose MAC changed is replaced by an add (the datapath replaces in place).
pub fn diff_network(
    have_fdb: &BTreeSet<FdbEntry>,
    have_flood: &BTreeSet<IpAddr>,
    have_neigh: &BTreeSet<NeighEntry>,
    want_fdb: &BTreeSet<FdbEntry>,
    want_flood: &BTreeSet<IpAddr>,
    want_neigh: &BTreeSet<NeighEntry>,
) -> NetChanges {
    let (fdb_del, fdb_add) = sets(have_fdb, want_fdb);
    let (flood_del, flood_add) = sets(have_flood, want_flood);
    let (mut neigh_del, neigh_add) = sets(have_neigh, want_neigh);
    // An IP that stays wanted with another MAC is replaced in place, not deleted (no gap in answers).
    let wanted_ips: BTreeSet<IpAddr> = want_neigh.iter().map(|n| n.ip).collect();
    neigh_del.retain(|n| !wanted_ips.contains(&n.ip));
    NetChanges {
        fdb_del,
        fdb_add,
        flood_del,
        flood_add,
        neigh_del,
        neigh_add,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired;
    use crate::desired::tests::cluster;
    use weft_model::{keys, Mac};

    #[test]
    fn empty_when_equal() {
        let d = &desired("h1", &cluster())["a"];
        let c = diff_network(&d.fdb, &d.flood, &d.neigh, &d.fdb, &d.flood, &d.neigh);
        assert!(c.is_empty());
    }

    #[test]
    fn from_nothing_adds_everything() {
        let d = &desired("h1", &cluster())["a"];
        let e = BTreeSet::new();
        let c = diff_network(
            &e,
            &BTreeSet::new(),
            &BTreeSet::new(),
            &d.fdb,
            &d.flood,
            &d.neigh,
        );
        assert_eq!(c.fdb_add.len(), 3);
        assert_eq!(c.flood_add.len(), 2);
        assert_eq!(c.neigh_add.len(), 6);
        assert_eq!(c.count(), 11);
    }

    #[test]
    fn detach_removes_only_its_entries() {
        let mut s = cluster();
        let before = desired("h1", &s)["a"].clone();
        s.apply(&keys::endpoint("a", "e4"), None).unwrap();
        let after = &desired("h1", &s)["a"];
        let c = diff_network(
            &before.fdb,
            &before.flood,
            &before.neigh,
            &after.fdb,
            &after.flood,
            &after.neigh,
        );
        assert_eq!(c.fdb_del.len(), 1);
        assert_eq!(c.neigh_del.len(), 2);
        // h3 still has e3: its flood entry stays.
        assert!(c.flood_del.is_empty());
        assert!(c.fdb_add.is_empty() && c.neigh_add.is_empty());
    }

    #[test]
    fn stale_kernel_entries_removed_and_mac_change_replaced() {
        let d = &desired("h1", &cluster())["a"];
        let mut have_neigh = d.neigh.clone();
        let first = *have_neigh.iter().next().unwrap();
        have_neigh.remove(&first);
        have_neigh.insert(NeighEntry {
            ip: first.ip,
            mac: Mac([2, 9, 9, 9, 9, 9]),
        });
        let stale = NeighEntry {
            ip: "10.0.0.200".parse().unwrap(),
            mac: Mac([2, 1, 1, 1, 1, 1]),
        };
        have_neigh.insert(stale);
        let c = diff_network(&d.fdb, &d.flood, &have_neigh, &d.fdb, &d.flood, &d.neigh);
        assert_eq!(c.neigh_del, vec![stale]);
        assert_eq!(c.neigh_add, vec![first]);
    }
}
