//! `weft lab rm CONTAINER`: detaches it from every network it is on (`weft detach` on the host that
//! attached it), stops what runs in it and deletes its netns.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::netns;
use crate::process;
use crate::progress::Progress;
use crate::state;
use crate::topology::Lab;
use crate::weft;
use crate::PrefixArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container to remove.
    pub container: String,
    #[command(flatten)]
    pub prefix: PrefixArg,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = args.prefix.lab()?;
    let p = Progress::new(lab.prefix.as_str());
    remove(&lab, &args.container, &p).await
}

pub async fn remove(lab: &Lab, name: &str, p: &Progress) -> Result<()> {
    let st = state::load(lab)?;
    let ns = lab.container_ns(name);
    let recorded = st.containers.get(name).cloned();
    if recorded.is_none() && !netns::exists(&ns) {
        bail!("lab {} has no container {name:?}", lab.prefix);
    }
    let eps: Vec<_> = weft::endpoints(lab, &st)
        .await?
        .into_iter()
        .filter(|e| weft::is_container_endpoint(lab, e, name))
        .collect();
    let path = netns::path(&ns).display().to_string();
    for e in &eps {
        let host = st
            .host(&e.host)
            .or_else(|| recorded.as_deref().and_then(|h| st.host(h)));
        let Some(host) = host else {
            bail!(
                "container {name}'s endpoint on {} belongs to host {}, which is not in lab {}",
                e.network,
                e.host,
                lab.prefix
            );
        };
        p.step(format!(
            "container {name}: detaching from {} on {}",
            e.network, host.name
        ));
        weft::output(
            &host.netns,
            &st.store_url,
            Some(&host.name),
            &["detach", &path, &e.network],
        )
        .await?;
    }
    if let Some(id) = netns::id_of(&ns) {
        let pids = process::in_namespaces(&BTreeSet::from([id]));
        process::stop_all(&pids, Duration::from_secs(2));
    }
    netns::delete(&ns)?;
    state::update(lab, |s| {
        s.containers.remove(name);
        Ok(())
    })?;
    p.step(format!("container {name}: removed"));
    Ok(())
}
