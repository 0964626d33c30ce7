//! VXLAN devices as weft uses them: one per network (VNI), unicast
//! head-end replication from static FDB entries, no learning, ARP/ND
//! answered locally from the device's neighbour table.

use std::net::IpAddr;

use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags,
    LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::{Context, Result};
use crate::links::{kind_of, link_infos};
use crate::{check_ifname, Ensured, Error, Netlink};

/// The IANA VXLAN port. (The kernel's own default, used when none is given,
/// is the pre-standard 8472, so weft always sends the port explicitly.)
pub const VXLAN_PORT: u16 = 4789;

/// What [`Netlink::ensure_vxlan`] should converge to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Interface name (≤ 15 bytes).
    pub name: String,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// Underlay source address of encapsulated packets.
    pub local: IpAddr,
    /// UDP destination port, normally [`VXLAN_PORT`].
    pub port: u16,
    pub mtu: u32,
    /// Index of the bridge to attach to, if any.
    pub bridge: Option<u32>,
}

/// The identity-defining settings of an existing VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanInfo {
    pub index: u32,
    pub vni: Option<u32>,
    pub local: Option<IpAddr>,
    pub port: Option<u16>,
    pub learning: Option<bool>,
    pub proxy: Option<bool>,
}

impl VxlanInfo {
    fn from_msg(msg: &LinkMessage) -> Option<VxlanInfo> {
        let infos = link_infos(msg);
        if kind_of(infos) != Some(&InfoKind::Vxlan) {
            return None;
        }
        let mut info = VxlanInfo {
            index: msg.header.index,
            vni: None,
            local: None,
            port: None,
            learning: None,
            proxy: None,
        };
        for i in infos {
            if let NlLinkInfo::Data(InfoData::Vxlan(data)) = i {
                for d in data {
                    match d {
                        InfoVxlan::Id(v) => info.vni = Some(*v),
                        InfoVxlan::Local(a) => info.local = Some(IpAddr::V4(*a)),
                        InfoVxlan::Local6(a) => info.local = Some(IpAddr::V6(*a)),
                        InfoVxlan::Port(p) => info.port = Some(*p),
                        InfoVxlan::Learning(l) => info.learning = Some(*l),
                        InfoVxlan::Proxy(p) => info.proxy = Some(*p),
                        _ => {}
                    }
                }
            }
        }
        Some(info)
    }

    /// True if the kernel would have to recreate the device to match `spec`
    /// (VNI, local address, port and proxy cannot be changed in place).
    fn needs_replace(&self, spec: &VxlanSpec) -> bool {
        self.vni != Some(spec.vni)
            || self.local != Some(spec.local)
            || self.port != Some(spec.port)
            || self.proxy != Some(true)
    }
}

impl Netlink {
    /// The VXLAN settings of `name`; `None` if absent or not a VXLAN device.
    pub async fn vxlan_info(&self, name: &str) -> Result<Option<VxlanInfo>> {
        Ok(self
            .link_msg_by_name(name)
            .await?
            .and_then(|m| VxlanInfo::from_msg(&m)))
    }

    /// Makes sure the VXLAN device of `spec` exists with learning off,
    /// `proxy` on (ARP/ND answered from its neighbour table, so requests
    /// never cross the underlay), UDP checksums as the kernel defaults, MTU,
    /// bridge attachment and up; as a bridge port it gets learning off and
    /// `neigh_suppress` on.
    ///
    /// An existing device with the same VNI, local address and port is kept
    /// (only differing MTU/master/up/learning are fixed in place, none of
    /// which interrupts traffic). One that differs is deleted and recreated,
    /// losing its FDB and neighbour entries: then `created` is true and the
    /// index changes, and the caller must reprogram them. A link of that
    /// name that is not a VXLAN device is an error, never deleted.
    pub async fn ensure_vxlan(&self, spec: &VxlanSpec) -> Result<Ensured> {
        check_ifname(&spec.name)?;
        let name = spec.name.as_str();
        // Two rounds: the second covers losing a creation race.
        for _ in 0..2 {
            let Some(msg) = self.link_msg_by_name(name).await? else {
                match self.create_vxlan(spec).await {
                    Ok(index) => {
                        self.vxlan_port_options(spec, index).await?;
                        return Ok(Ensured {
                            index,
                            created: true,
                        });
                    }
                    Err(e) if e.is_exists() => continue,
                    Err(e) => return Err(e),
                }
            };
            let Some(have) = VxlanInfo::from_msg(&msg) else {
                let kind = kind_of(link_infos(&msg)).map_or("none".into(), |k| k.to_string());
                return Err(Error::msg(
                    format!("ensuring vxlan {name} (vni {})", spec.vni),
                    format!("a link of that name exists with kind {kind}"),
                ));
            };
            if have.needs_replace(spec) {
                tracing::info!(
                    ?have,
                    ?spec,
                    "replacing vxlan device with different settings"
                );
                self.delete_link_index(have.index).await?;
                let index = self.create_vxlan(spec).await?;
                self.vxlan_port_options(spec, index).await?;
                return Ok(Ensured {
                    index,
                    created: true,
                });
            }
            self.converge_vxlan(spec, &msg, &have).await?;
            return Ok(Ensured {
                index: have.index,
                created: false,
            });
        }
        Err(Error::from_errno(
            format!("ensuring vxlan {name} (vni {})", spec.vni),
            Errno::EAGAIN,
        ))
    }

    async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<u32> {
        let name = spec.name.as_str();
        let mut data = vec![InfoVxlan::Id(spec.vni)];
        data.push(match spec.local {
            IpAddr::V4(a) => InfoVxlan::Local(a),
            IpAddr::V6(a) => InfoVxlan::Local6(a),
        });
        data.push(InfoVxlan::Port(spec.port));
        // Peers are programmed statically; learning would let any sender on
        // the underlay claim a MAC.
        data.push(InfoVxlan::Learning(false));
        data.push(InfoVxlan::Proxy(true));
        let mut msg = LinkMessage::default();
        msg.header.flags |= LinkFlags::Up;
        msg.header.change_mask |= LinkFlags::Up;
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
        if let Some(br) = spec.bridge {
            msg.attributes.push(LinkAttribute::Controller(br));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Vxlan),
            NlLinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .await
            .ctx(|| format!("creating vxlan {name} (vni {})", spec.vni))?;
        self.index_of(name).await
    }

    /// Fixes, in place, what can differ on a kept device.
    async fn converge_vxlan(
        &self,
        spec: &VxlanSpec,
        msg: &LinkMessage,
        have: &VxlanInfo,
    ) -> Result<()> {
        let name = spec.name.as_str();
        let info = crate::LinkInfo::from_msg(msg);
        if have.learning != Some(false) {
            let mut m = LinkMessage::default();
            m.header.index = have.index;
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                NlLinkInfo::Kind(InfoKind::Vxlan),
                NlLinkInfo::Data(InfoData::Vxlan(vec![InfoVxlan::Learning(false)])),
            ]));
            self.ack(RouteNetlinkMessage::NewLink(m), 0)
                .await
                .ctx(|| format!("turning learning off on vxlan {name}"))?;
        }
        if info.mtu != spec.mtu {
            self.set_mtu(name, spec.mtu).await?;
        }
        if let Some(br) = spec.bridge {
            if info.master != Some(br) {
                self.set_master(name, br).await?;
            }
        }
        self.vxlan_port_options(spec, have.index).await?;
        if !info.up {
            self.set_up(name).await?;
        }
        Ok(())
    }

    async fn vxlan_port_options(&self, spec: &VxlanSpec, index: u32) -> Result<()> {
        if spec.bridge.is_none() {
            return Ok(());
        }
        // The bridge must not learn remote MACs from the overlay port: the
        // control plane programs them, and a learned entry could outlive a
        // container that moved.
        self.set_bridge_port_options(index, vec![InfoBridgePort::Learning(false)])
            .await?;
        // neigh_suppress stops the bridge flooding ARP/ND it can answer to the
        // overlay; optional, so a kernel that refuses it is not an error.
        if let Err(e) = self
            .set_bridge_port_options(index, vec![InfoBridgePort::NeighSupress(true)])
            .await
        {
            tracing::debug!(error = %e, "neigh_suppress not set on vxlan port");
        }
        Ok(())
    }
}
