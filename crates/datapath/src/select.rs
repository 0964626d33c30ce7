//! The datapaths of one host, each network routed to the one its `NetDesired::path` names.

use std::collections::HashSet;

use anyhow::{anyhow, Result};
use async_trait::async_trait;
use weft_reconcile::{NetChanges, NetDesired, Path};

use crate::{Datapath, Removal};

#[derive(Default)]
pub struct Datapaths {
    pub kernel: Option<Box<dyn Datapath>>,
    pub userspace: Option<Box<dyn Datapath>>,
}

impl Datapaths {
    fn get(&self, path: Path) -> Result<&dyn Datapath> {
        match path {
            Path::Kernel => self.kernel.as_deref(),
            Path::Userspace => self.userspace.as_deref(),
        }
        .ok_or_else(|| anyhow!("this host has no {path:?} datapath"))
    }

    fn all(&self) -> impl Iterator<Item = &dyn Datapath> {
        self.kernel
            .iter()
            .chain(self.userspace.iter())
            .map(|d| d.as_ref())
    }
}

#[async_trait]
impl Datapath for Datapaths {
    async fn present(&self) -> Result<Vec<u32>> {
        let mut vnis = Vec::new();
        for d in self.all() {
            vnis.extend(d.present().await?);
        }
        vnis.sort();
        vnis.dedup();
        Ok(vnis)
    }

    async fn ensure(&self, net: &NetDesired) -> Result<()> {
        self.get(net.path)?.ensure(net).await
    }

    async fn sync(&self, net: &NetDesired) -> Result<NetChanges> {
        self.get(net.path)?.sync(net).await
    }

    async fn add_missing(&self, net: &NetDesired) -> Result<NetChanges> {
        self.get(net.path)?.add_missing(net).await
    }

    async fn apply(&self, net: &NetDesired, changes: &NetChanges) -> Result<()> {
        self.get(net.path)?.apply(net, changes).await
    }

    async fn remove(&self, vni: u32) -> Result<Removal> {
        let mut out = Removal::Absent;
        for d in self.all() {
            match d.remove(vni).await? {
                Removal::Absent => {}
                r => out = r,
            }
        }
        Ok(out)
    }

    async fn collect_orphans(&self, keep: &HashSet<String>) -> Result<Vec<String>> {
        // Endpoint veths hang on the network bridges whichever uplink they have: one pass does.
        match self.all().next() {
            Some(d) => d.collect_orphans(keep).await,
            None => Ok(Vec::new()),
        }
    }
}
