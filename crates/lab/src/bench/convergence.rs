//! Convergence and withdrawal, measured as a user sees them.
//!
//! For each attach: a fresh container netns on host A (not timed), `weft attach` run as a
//! subprocess on A with a static address; t0 is when it returns. A pinger thread inside container B
//! on host B sends an ICMP echo request every millisecond to the new address; t1 is when the first
//! reply arrives; convergence = t1 − t0. Then `weft detach` on A; from its return, B's host is polled
//! every millisecond until its VXLAN device no longer holds the container's MAC: the withdrawal time.
//!
//! Names: the container is attached with `--name cvI`; from attach's return, a container on every
//! host asks its host's resolver for `cvI.NETWORK.weft.internal` every millisecond until all answer
//! the address; from detach's return, until all answer NXDOMAIN (see `dns.rs`).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use weft_model::{Endpoint, Mac};
use weft_netlink::{MacAddr, Netlink};

use super::dns::{Resolvers, Want};
use super::icmp::Pinger;
use crate::netns;
use crate::progress::Progress;
use crate::topology::Lab;
use crate::underlay;
use crate::weft;

/// How often B sends an echo request, and how long it tries.
pub const PING_EVERY: Duration = Duration::from_millis(1);
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How often B's FDB is read after a detach, and for how long.
pub const POLL_EVERY: Duration = Duration::from_millis(1);
pub const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(10);
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// The address of the i-th attach: 10.201.1.10 onwards, skipping .0 and .255 in every /24 (the
/// network is 10.201.0.0/16; the throughput containers live in 10.201.0.0/24).
pub fn attach_addr(i: u32) -> Option<Ipv4Addr> {
    let pos = i.checked_add(9)?;
    let block = 1 + pos / 254;
    let host = 1 + pos % 254;
    (block <= 255).then(|| Ipv4Addr::new(10, 201, block as u8, host as u8))
}

/// The i-th attach's container name (netns `P-c-cvI`).
pub fn container_name(i: u32) -> String {
    format!("cv{i}")
}

/// Where the measurement runs.
pub struct Bed<'a> {
    pub lab: &'a Lab,
    pub store_url: &'a str,
    pub network: &'a str,
    pub prefix_len: u8,
    /// Host A: its name and netns.
    pub a_host: &'a str,
    pub a_ns: &'a str,
    /// Host B's netns and the network's VXLAN device there.
    pub b_ns: &'a str,
    pub b_vxlan: &'a str,
    /// Container B's netns (the pinger lives there).
    pub b_container_ns: &'a str,
    /// A container on every host, asking its host's resolver.
    pub resolvers: &'a Resolvers,
}

/// One attach and detach.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub addr: Ipv4Addr,
    /// t1 − t0; None if no reply came within the timeout.
    pub convergence_ms: Option<f64>,
    /// Echo requests B sent up to the first reply.
    pub pings: u32,
    /// Whether B's host already had the container's FDB entry (its MAC → A's underlay address) and
    /// neighbour entry (its address → MAC, for the VXLAN device's ARP proxy) when attach returned
    /// (read once, right after t0).
    pub b_ready_at_return: bool,
    /// Whether both ends of the container's veth were operationally up (`IFF_RUNNING`: the kernel's
    /// link watcher has run, so their queues transmit and the bridge port forwards) when attach
    /// returned (read once, right after t0).
    pub links_running_at_return: bool,
    /// From detach's return to the FDB entry's disappearance on B's host; None on timeout.
    pub withdrawal_ms: Option<f64>,
    /// From attach's return until every host's resolver answered the name; None on timeout.
    pub dns_answered_ms: Option<f64>,
    /// From detach's return until every host's resolver answered NXDOMAIN; None on timeout.
    pub dns_gone_ms: Option<f64>,
    /// How long `weft attach` itself took (context, not a target).
    pub attach_ms: f64,
    /// When attach returned (t0), wall clock in ms since the epoch: to match the agents' logs.
    pub returned_at_unix_ms: f64,
    /// When detach returned, likewise.
    pub detach_returned_at_unix_ms: f64,
}

pub async fn measure(bed: &Bed<'_>, attaches: u32, p: &Progress) -> Result<Vec<Sample>> {
    let pinger = Pinger::start(&netns::open(bed.b_container_ns)?)
        .with_context(|| format!("starting the pinger in {}", bed.b_container_ns))?;
    let b_nl = Netlink::open_in(&netns::open(bed.b_ns)?)?;
    let a_nl = Netlink::open_in(&netns::open(bed.a_ns)?)?;
    let b_vx = b_nl
        .index_of(bed.b_vxlan)
        .await
        .with_context(|| format!("finding {} in {}", bed.b_vxlan, bed.b_ns))?;
    let mut out = Vec::new();
    for i in 0..attaches {
        let s = one(bed, &pinger, &a_nl, &b_nl, b_vx, i)
            .await
            .with_context(|| format!("attach {} of {attaches}", i + 1))?;
        out.push(s);
        let n = out.len();
        if n % 10 == 0 || n as u32 == attaches {
            let conv: Vec<f64> = out.iter().filter_map(|s| s.convergence_ms).collect();
            p.step(format!(
                "convergence: {n}/{attaches} attaches, median so far {:.1} ms",
                super::stats::median(&conv).unwrap_or(f64::NAN)
            ));
        }
    }
    Ok(out)
}

async fn one(
    bed: &Bed<'_>,
    pinger: &Pinger,
    a_nl: &Netlink,
    b_nl: &Netlink,
    b_vx: u32,
    i: u32,
) -> Result<Sample> {
    let addr = attach_addr(i).with_context(|| format!("no address left for attach {i}"))?;
    let ns = bed.lab.container_ns(&container_name(i));
    let path = netns::path(&ns).display().to_string();
    if netns::exists(&ns) {
        netns::delete(&ns)?;
    }
    underlay::create_bare(&ns).await?;
    let c_nl = Netlink::open_in(&netns::open(&ns)?)?;
    let ip = format!("{addr}/{}", bed.prefix_len);
    let name = container_name(i);
    let fqdn = format!("{name}.{}.{}", bed.network, weft_model::DEFAULT_DNS_DOMAIN);

    let started = Instant::now();
    let out = weft_cmd(
        bed,
        &[
            "attach",
            &path,
            bed.network,
            "--ip",
            &ip,
            "--name",
            &name,
            "--json",
        ],
    )
    .await?;
    let t0 = Instant::now();
    let returned_at_unix_ms = unix_ms();
    let ep: Endpoint = serde_json::from_str(&out).context("parsing `weft attach --json`")?;
    let (probe, fdb_at_return, neigh_at_return, c_running, h_running, dns_answered) = tokio::join!(
        pinger.first_reply(addr, PING_EVERY, PING_TIMEOUT),
        dump(|| b_nl.fdb_dump(b_vx)),
        dump(|| b_nl.neigh_dump(b_vx)),
        running(&c_nl, &ep.ifname),
        running(a_nl, &ep.host_ifname),
        bed.resolvers.every_host(&fqdn, Want::Addr(addr), t0),
    );
    let probe = probe?;
    let dns_answered_ms = dns_answered?;
    let attach_ms = ms(t0 - started);
    let mac = mac_of(ep.mac);
    let b_ready_at_return = fdb_at_return?.iter().any(|e| e.mac == mac)
        && neigh_at_return?
            .iter()
            .any(|n| n.ip == std::net::IpAddr::V4(addr) && n.mac == mac);
    let links_running_at_return = c_running? && h_running?;
    let convergence_ms = probe.reply_at.map(|t1| ms(t1 - t0));

    // The entry must be there before detaching, or its absence would measure nothing.
    let deadline = Instant::now() + WITHDRAW_TIMEOUT;
    while !dump(|| b_nl.fdb_dump(b_vx))
        .await?
        .iter()
        .any(|e| e.mac == mac)
    {
        if Instant::now() > deadline {
            bail!(
                "{} of {addr} never appeared on {} in {}",
                ep.mac,
                bed.b_vxlan,
                bed.b_ns
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    weft_cmd(bed, &["detach", &path, bed.network]).await?;
    let t0 = Instant::now();
    let detach_returned_at_unix_ms = unix_ms();
    let fdb_gone = async {
        while t0.elapsed() < WITHDRAW_TIMEOUT {
            let fdb = dump(|| b_nl.fdb_dump(b_vx)).await?;
            if !fdb.iter().any(|e| e.mac == mac) {
                return Ok::<_, anyhow::Error>(Some(ms(t0.elapsed())));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
        Ok(None)
    };
    let (withdrawal_ms, dns_gone_ms) =
        tokio::join!(fdb_gone, bed.resolvers.every_host(&fqdn, Want::Gone, t0));
    let (withdrawal_ms, dns_gone_ms) = (withdrawal_ms?, dns_gone_ms?);
    netns::delete(&ns)?;
    Ok(Sample {
        addr,
        convergence_ms,
        pings: probe.sent,
        b_ready_at_return,
        links_running_at_return,
        withdrawal_ms,
        dns_answered_ms,
        dns_gone_ms,
        attach_ms,
        returned_at_unix_ms,
        detach_returned_at_unix_ms,
    })
}

async fn weft_cmd(bed: &Bed<'_>, args: &[&str]) -> Result<String> {
    tokio::time::timeout(
        CMD_TIMEOUT,
        weft::output(bed.a_ns, bed.store_url, Some(bed.a_host), args),
    )
    .await
    .unwrap_or_else(|_| {
        bail!(
            "`weft {}` did not finish within {} s",
            args.join(" "),
            CMD_TIMEOUT.as_secs()
        )
    })
}

/// A netlink dump, asked again when the kernel interrupted it because the table changed meanwhile
/// (EBUSY: the containers' gateway ARP/ND keeps the neighbour table moving).
async fn dump<T, F, Fut>(f: F) -> Result<Vec<T>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = weft_netlink::Result<Vec<T>>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Err(e) if tries < 10 && e.errno() == Some(nix::errno::Errno::EBUSY) => tries += 1,
            r => return Ok(r?),
        }
    }
}

/// Whether a link is operationally up (`IFF_RUNNING`), as opposed to merely set up (`IFF_UP`).
async fn running(nl: &Netlink, name: &str) -> Result<bool> {
    use futures::TryStreamExt;
    use rtnetlink::packet_route::link::LinkFlags;
    let msg = nl
        .handle()
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .with_context(|| format!("reading link {name}"))?
        .with_context(|| format!("no link {name}"))?;
    Ok(msg.header.flags.contains(LinkFlags::Running))
}

fn mac_of(m: Mac) -> MacAddr {
    MacAddr(m.0)
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(ms)
        .unwrap_or(0.0)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(attach_addr(0), Some(Ipv4Addr::new(10, 201, 1, 10)));
        assert_eq!(attach_addr(244), Some(Ipv4Addr::new(10, 201, 1, 254)));
        assert_eq!(attach_addr(245), Some(Ipv4Addr::new(10, 201, 2, 1)));
        assert_eq!(
            attach_addr(254 * 255 - 10),
            Some(Ipv4Addr::new(10, 201, 255, 254))
        );
        assert_eq!(attach_addr(254 * 255 - 9), None, "stays inside 10.201/16");
        assert_eq!(container_name(7), "cv7");
    }
}
