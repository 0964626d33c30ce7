//! veth pairs.

use std::os::fd::{AsRawFd, BorrowedFd};

use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::Result;
use crate::links::{kind_of, link_infos};
use crate::{check_ifname, Netlink};

impl Netlink {
    /// Creates a veth pair `host_name` ↔ `peer_name`, both with `mtu` and
    /// both down, in this namespace; returns the host end's index.
    ///
    /// Idempotent: if `host_name` already is a veth whose peer in this
    /// namespace is `peer_name`, that pair is kept.
    pub async fn create_veth(&self, host_name: &str, peer_name: &str, mtu: u32) -> Result<u32> {
        match self.new_veth(host_name, peer_name, mtu, None).await {
            Err(e) if e.is_exists() => {
                if let Some(index) = self.existing_veth(host_name, peer_name).await? {
                    return Ok(index);
                }
                Err(e)
            }
            r => r,
        }
    }

    /// Like [`Netlink::create_veth`], but the peer is created directly
    /// inside the namespace `peer_netns` (so it may take a name such as
    /// `eth0` that is busy here). Not idempotent: `EEXIST` is an error.
    pub async fn create_veth_peer_in(
        &self,
        host_name: &str,
        peer_name: &str,
        mtu: u32,
        peer_netns: BorrowedFd<'_>,
    ) -> Result<u32> {
        self.new_veth(host_name, peer_name, mtu, Some(peer_netns))
            .await
    }

    async fn new_veth(
        &self,
        host_name: &str,
        peer_name: &str,
        mtu: u32,
        peer_netns: Option<BorrowedFd<'_>>,
    ) -> Result<u32> {
        check_ifname(host_name)?;
        check_ifname(peer_name)?;
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_string()));
        peer.attributes.push(LinkAttribute::Mtu(mtu));
        if let Some(fd) = peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::IfName(host_name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Veth),
            NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .await
            .map_err(|e| e.with(format!("creating veth {host_name} (peer {peer_name})")))?;
        self.index_of(host_name).await
    }

    /// Index of `host_name` if it is a veth whose same-namespace peer is
    /// `peer_name`.
    async fn existing_veth(&self, host_name: &str, peer_name: &str) -> Result<Option<u32>> {
        let Some(msg) = self.link_msg_by_name(host_name).await? else {
            return Ok(None);
        };
        if kind_of(link_infos(&msg)) != Some(&InfoKind::Veth) {
            return Ok(None);
        }
        let mut peer_index = None;
        for a in &msg.attributes {
            match a {
                // The peer lives in another namespace: cannot be ours.
                LinkAttribute::LinkNetNsId(_) => return Ok(None),
                LinkAttribute::Link(i) => peer_index = Some(*i),
                _ => {}
            }
        }
        let Some(peer_index) = peer_index else {
            return Ok(None);
        };
        Ok(self
            .link_by_index(peer_index)
            .await?
            .filter(|p| p.name == peer_name)
            .map(|_| msg.header.index))
    }
}
