//! Interface addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Context, Result};
use crate::Netlink;

fn address_message(index: u32, net: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = net.prefix_len();
    match net {
        IpNet::V4(n) => {
            msg.header.family = AddressFamily::Inet;
            msg.attributes
                .push(AddressAttribute::Local(IpAddr::V4(n.addr())));
            msg.attributes
                .push(AddressAttribute::Address(IpAddr::V4(n.addr())));
            if n.prefix_len() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(n.broadcast()));
            }
        }
        IpNet::V6(n) => {
            msg.header.family = AddressFamily::Inet6;
            msg.attributes
                .push(AddressAttribute::Address(IpAddr::V6(n.addr())));
        }
    }
    msg
}

fn net_of(msg: &AddressMessage) -> Option<IpNet> {
    // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS is the
    // peer on point-to-point links); IPv6 only has IFA_ADDRESS.
    let mut local = None;
    let mut address = None;
    for a in &msg.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    IpNet::new(local.or(address)?, msg.header.prefix_len).ok()
}

impl Netlink {
    /// Adds `net` (address and prefix length, e.g. `10.42.0.2/24`) to
    /// `ifname`. IPv6 addresses get `IFA_F_NODAD` so they are usable at once
    /// instead of staying tentative for a second or more. Adding an address
    /// that is already there with the same prefix length succeeds.
    pub async fn add_address(&self, ifname: &str, net: IpNet) -> Result<()> {
        self.add_address_flags(ifname, net, AddressFlags::empty())
            .await
    }

    /// Like [`Netlink::add_address`], without the prefix route the kernel
    /// would add for it (`noprefixroute`): for a caller that routes the
    /// subnet itself, with the source address it chooses.
    pub async fn add_address_noprefixroute(&self, ifname: &str, net: IpNet) -> Result<()> {
        self.add_address_flags(ifname, net, AddressFlags::Noprefixroute)
            .await
    }

    async fn add_address_flags(
        &self,
        ifname: &str,
        net: IpNet,
        mut flags: AddressFlags,
    ) -> Result<()> {
        let index = self.index_of(ifname).await?;
        let mut msg = address_message(index, net);
        if net.addr().is_ipv6() {
            msg.header.flags |= AddressHeaderFlags::Nodad;
            flags |= AddressFlags::Nodad;
        }
        if !flags.is_empty() {
            msg.attributes.push(AddressAttribute::Flags(flags));
        }
        match self
            .ack(
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == Some(Errno::EEXIST) => {
                if self.list_addresses(ifname).await?.contains(&net) {
                    Ok(())
                } else {
                    Err(e.with(format!("adding address {net} to {ifname}")))
                }
            }
            Err(e) => Err(e.with(format!("adding address {net} to {ifname}"))),
        }
    }

    /// The addresses of `ifname` (IPv4 and IPv6, including link-local ones).
    pub async fn list_addresses(&self, ifname: &str) -> Result<Vec<IpNet>> {
        let index = self.index_of(ifname).await?;
        let mut req = AddressMessage::default();
        req.header.index = index;
        let msgs = self
            .dump(RouteNetlinkMessage::GetAddress(req))
            .await
            .ctx(|| format!("listing addresses of {ifname}"))?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                // The kernel ignores the index filter without strict checking.
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => net_of(a),
                _ => None,
            })
            .collect())
    }

    /// Removes `net` from `ifname`; false if it was not there.
    pub async fn del_address(&self, ifname: &str, net: IpNet) -> Result<bool> {
        let index = self.index_of(ifname).await?;
        let msg = address_message(index, net);
        match self.ack(RouteNetlinkMessage::DelAddress(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e.with(format!("deleting address {net} from {ifname}"))),
        }
    }
}
