//! Generic link operations: lookup, listing, delete, up/down, MTU, master,
//! MAC, rename, moving to another namespace.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::{Context, Result};
use crate::{check_ifname, Error, MacAddr, Netlink};

/// What the kernel says about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` (`"bridge"`, `"vxlan"`, `"veth"`, …); `None` for
    /// devices without one, such as `lo` or physical NICs.
    pub kind: Option<String>,
    /// Hardware address; [`MacAddr::ZERO`] for devices without a 6-byte
    /// one (tun, some tunnels).
    pub mac: MacAddr,
    pub mtu: u32,
    /// Index of the bridge (or other master) this link is enslaved to.
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`), whatever the carrier.
    pub up: bool,
}

impl LinkInfo {
    pub(crate) fn from_msg(msg: &LinkMessage) -> LinkInfo {
        let mut info = LinkInfo {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mac: MacAddr::ZERO,
            mtu: 0,
            master: None,
            up: msg.header.flags.contains(LinkFlags::Up),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Address(a) => {
                    info.mac = MacAddr::from_slice(a).unwrap_or(MacAddr::ZERO)
                }
                LinkAttribute::Mtu(m) => info.mtu = *m,
                LinkAttribute::Controller(m) if *m != 0 => info.master = Some(*m),
                LinkAttribute::LinkInfo(infos) => info.kind = kind_of(infos).map(|k| k.to_string()),
                _ => {}
            }
        }
        info
    }
}

pub(crate) fn kind_of(infos: &[NlLinkInfo]) -> Option<&InfoKind> {
    infos.iter().find_map(|i| match i {
        NlLinkInfo::Kind(k) => Some(k),
        _ => None,
    })
}

pub(crate) fn link_infos(msg: &LinkMessage) -> &[NlLinkInfo] {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

impl Netlink {
    /// The raw link message for `name`, or `None` if there is no such link.
    pub(crate) async fn link_msg_by_name(&self, name: &str) -> Result<Option<LinkMessage>> {
        check_ifname(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.get_one(RouteNetlinkMessage::GetLink(msg)).await {
            Ok(RouteNetlinkMessage::NewLink(m)) => Ok(Some(m)),
            Ok(other) => Err(Error::msg(
                format!("looking up link {name}"),
                format!("unexpected answer {other:?}"),
            )),
            Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(e.with(format!("looking up link {name}"))),
        }
    }

    /// Looks a link up by name; `None` if it does not exist.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>> {
        Ok(self
            .link_msg_by_name(name)
            .await?
            .map(|m| LinkInfo::from_msg(&m)))
    }

    /// Looks a link up by interface index; `None` if it does not exist.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.get_one(RouteNetlinkMessage::GetLink(msg)).await {
            Ok(RouteNetlinkMessage::NewLink(m)) => Ok(Some(LinkInfo::from_msg(&m))),
            Ok(other) => Err(Error::msg(
                format!("looking up link index {index}"),
                format!("unexpected answer {other:?}"),
            )),
            Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(e.with(format!("looking up link index {index}"))),
        }
    }

    /// Every link of this namespace.
    pub async fn list_links(&self) -> Result<Vec<LinkInfo>> {
        let msgs = self
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .await
            .ctx(|| "listing links")?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(LinkInfo::from_msg(l)),
                _ => None,
            })
            .collect())
    }

    /// Interface index of `name`; an `ENODEV` error naming the link if absent.
    pub async fn index_of(&self, name: &str) -> Result<u32> {
        match self.link_msg_by_name(name).await? {
            Some(m) => Ok(m.header.index),
            None => Err(Error::from_errno(format!("link {name}"), Errno::ENODEV)),
        }
    }

    /// Deletes a link by name. Returns false if it did not exist. Deleting
    /// one end of a veth pair deletes both.
    pub async fn delete_link(&self, name: &str) -> Result<bool> {
        check_ifname(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.ack(RouteNetlinkMessage::DelLink(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(false),
            Err(e) => Err(e.with(format!("deleting link {name}"))),
        }
    }

    /// Deletes a link by index. Returns false if it did not exist.
    pub async fn delete_link_index(&self, index: u32) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.ack(RouteNetlinkMessage::DelLink(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(false),
            Err(e) => Err(e.with(format!("deleting link index {index}"))),
        }
    }

    /// Sends RTM_SETLINK for the link `name` after `edit` filled the message.
    async fn set_link(
        &self,
        name: &str,
        what: impl FnOnce() -> String,
        edit: impl FnOnce(&mut LinkMessage),
    ) -> Result<()> {
        let index = self.index_of(name).await?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        edit(&mut msg);
        self.ack(RouteNetlinkMessage::SetLink(msg), 0)
            .await
            .ctx(what)
    }

    /// Sets the link administratively up.
    pub async fn set_up(&self, name: &str) -> Result<()> {
        self.set_link(
            name,
            || format!("setting link {name} up"),
            |m| {
                m.header.flags |= LinkFlags::Up;
                m.header.change_mask |= LinkFlags::Up;
            },
        )
        .await
    }

    /// Sets the link administratively down.
    pub async fn set_down(&self, name: &str) -> Result<()> {
        self.set_link(
            name,
            || format!("setting link {name} down"),
            |m| {
                m.header.flags.remove(LinkFlags::Up);
                m.header.change_mask |= LinkFlags::Up;
            },
        )
        .await
    }

    /// Sets the MTU.
    pub async fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        self.set_link(
            name,
            || format!("setting mtu of {name} to {mtu}"),
            |m| m.attributes.push(LinkAttribute::Mtu(mtu)),
        )
        .await
    }

    /// Enslaves the link to a bridge (or any master) by the master's index.
    pub async fn set_master(&self, name: &str, bridge_index: u32) -> Result<()> {
        self.set_link(
            name,
            || format!("attaching {name} to master index {bridge_index}"),
            |m| m.attributes.push(LinkAttribute::Controller(bridge_index)),
        )
        .await
    }

    /// Releases the link from its master, if any.
    pub async fn set_nomaster(&self, name: &str) -> Result<()> {
        self.set_link(
            name,
            || format!("detaching {name} from its master"),
            |m| m.attributes.push(LinkAttribute::Controller(0)),
        )
        .await
    }

    /// Sets the hardware address.
    pub async fn set_mac(&self, name: &str, mac: MacAddr) -> Result<()> {
        self.set_link(
            name,
            || format!("setting mac of {name} to {mac}"),
            |m| m.attributes.push(LinkAttribute::Address(mac.0.to_vec())),
        )
        .await
    }

    /// Renames a link. (Older kernels refuse with `EBUSY` while it is up;
    /// the 6.18 kernel here allows it.)
    pub async fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        check_ifname(new_name)?;
        self.set_link(
            name,
            || format!("renaming link {name} to {new_name}"),
            |m| {
                m.attributes
                    .push(LinkAttribute::IfName(new_name.to_string()))
            },
        )
        .await
    }

    /// Moves a link into the network namespace `netns` refers to (an open
    /// `/run/netns/NAME` or `/proc/PID/ns/net`, e.g. a [`crate::Netns`]).
    /// The link loses its addresses and goes down, as with `ip link set netns`.
    pub async fn move_to_netns(&self, name: &str, netns: BorrowedFd<'_>) -> Result<()> {
        let fd = netns.as_raw_fd();
        self.set_link(
            name,
            || format!("moving link {name} to network namespace fd {fd}"),
            |m| m.attributes.push(LinkAttribute::NetNsFd(fd)),
        )
        .await
    }
}
