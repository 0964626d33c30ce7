//! The resolver's counters: what happened to queries, for the stats file and the tests.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::answer::Kind;

#[derive(Debug, Default)]
pub struct Counters {
    queries: AtomicU64,
    answered: AtomicU64,
    nodata: AtomicU64,
    nxdomain: AtomicU64,
    refused: AtomicU64,
    malformed: AtomicU64,
    forwarded: AtomicU64,
    forward_failed: AtomicU64,
    /// Queries dropped because too many were already waiting on upstream or on TCP.
    overloaded: AtomicU64,
}

/// A snapshot of the counters, as the stats file holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DnsStats {
    pub queries: u64,
    pub answered: u64,
    pub nodata: u64,
    pub nxdomain: u64,
    pub refused: u64,
    pub malformed: u64,
    pub forwarded: u64,
    pub forward_failed: u64,
    pub overloaded: u64,
    /// Containers on this host with a resolver open in their namespace.
    pub containers: usize,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn query(&self) {
        bump(&self.queries);
    }

    pub fn kind(&self, k: Kind) {
        bump(match k {
            Kind::Answered => &self.answered,
            Kind::NoData => &self.nodata,
            Kind::NxDomain => &self.nxdomain,
            Kind::Malformed => &self.malformed,
            Kind::Refused => &self.refused,
        });
    }

    pub fn forwarded(&self) {
        bump(&self.forwarded);
    }

    pub fn forward_failed(&self) {
        bump(&self.forward_failed);
    }

    pub fn overloaded(&self) {
        bump(&self.overloaded);
    }

    pub fn snapshot(&self, containers: usize) -> DnsStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DnsStats {
            queries: g(&self.queries),
            answered: g(&self.answered),
            nodata: g(&self.nodata),
            nxdomain: g(&self.nxdomain),
            refused: g(&self.refused),
            malformed: g(&self.malformed),
            forwarded: g(&self.forwarded),
            forward_failed: g(&self.forward_failed),
            overloaded: g(&self.overloaded),
            containers,
        }
    }
}
