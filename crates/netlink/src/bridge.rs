//! Linux bridges and bridge-port settings.

use nix::errno::Errno;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind,
    LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::{Context, Result};
use crate::links::{kind_of, link_infos};
use crate::{check_ifname, Ensured, Error, Netlink};

/// The bridge options weft wants, as sent at creation and compared after.
fn wanted_options() -> Vec<InfoBridge> {
    vec![
        // STP off and forward delay 0: a new port forwards at once instead of
        // spending 2 × 15 s in listening/learning, which would make a freshly
        // attached container unreachable.
        InfoBridge::StpState(BridgeStpState::Disabled),
        InfoBridge::ForwardDelay(0),
        // Snooping off: local MLD/IGMP reports would make the bridge stop
        // flooding those groups (IPv6 neighbour solicitations among them) to
        // the VXLAN port, which never reports on behalf of remote containers.
        InfoBridge::MulticastSnooping(false),
    ]
}

fn bridge_options(msg: &LinkMessage) -> &[InfoBridge] {
    link_infos(msg)
        .iter()
        .find_map(|i| match i {
            NlLinkInfo::Data(InfoData::Bridge(v)) => Some(v.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

impl Netlink {
    /// Makes sure a bridge `name` exists, is up, has `mtu`, STP off, forward
    /// delay 0 and multicast snooping off. Idempotent: an existing bridge
    /// keeps its index and is only changed where it differs; `EEXIST` from a
    /// concurrent creator counts as success. Errors if a link of that name
    /// exists but is not a bridge.
    pub async fn ensure_bridge(&self, name: &str, mtu: u32) -> Result<Ensured> {
        check_ifname(name)?;
        let mut created = false;
        let msg = match self.link_msg_by_name(name).await? {
            Some(msg) => msg,
            None => {
                let mut msg = LinkMessage::default();
                msg.header.flags |= LinkFlags::Up;
                msg.header.change_mask |= LinkFlags::Up;
                msg.attributes.push(LinkAttribute::IfName(name.to_string()));
                msg.attributes.push(LinkAttribute::Mtu(mtu));
                msg.attributes.push(LinkAttribute::LinkInfo(vec![
                    NlLinkInfo::Kind(InfoKind::Bridge),
                    NlLinkInfo::Data(InfoData::Bridge(wanted_options())),
                ]));
                match self
                    .ack(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
                    .await
                {
                    Ok(()) => created = true,
                    // A concurrent creator won; converge on what it made.
                    Err(e) if e.errno() == Some(Errno::EEXIST) => {}
                    Err(e) => return Err(e.with(format!("creating bridge {name}"))),
                }
                self.link_msg_by_name(name).await?.ok_or_else(|| {
                    Error::from_errno(format!("ensuring bridge {name}"), Errno::ENODEV)
                })?
            }
        };
        let kind = kind_of(link_infos(&msg)).cloned();
        if kind != Some(InfoKind::Bridge) {
            return Err(Error::msg(
                format!("ensuring bridge {name}"),
                format!(
                    "a link of that name exists with kind {}",
                    kind.map_or("none".into(), |k| k.to_string())
                ),
            ));
        }
        let index = msg.header.index;

        // Converge options that differ; STP first, since the kernel refuses a
        // forward delay of 0 while STP is on.
        let have = bridge_options(&msg);
        for want in wanted_options() {
            if !have.contains(&want) {
                self.bridge_changelink(index, want.clone())
                    .await
                    .ctx(|| format!("setting {want:?} on bridge {name}"))?;
            }
        }
        let info = crate::LinkInfo::from_msg(&msg);
        if info.mtu != mtu {
            self.set_mtu(name, mtu).await?;
        }
        if !info.up {
            self.set_up(name).await?;
        }
        Ok(Ensured { index, created })
    }

    async fn bridge_changelink(
        &self,
        index: u32,
        opt: InfoBridge,
    ) -> Result<(), crate::error::RawError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::Bridge),
            NlLinkInfo::Data(InfoData::Bridge(vec![opt])),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), 0).await
    }

    /// Applies bridge-port options (`ip link set dev X type bridge_slave …`)
    /// to the link with index `port_index`, which must already be a bridge
    /// port.
    pub async fn set_bridge_port_options(
        &self,
        port_index: u32,
        options: Vec<InfoBridgePort>,
    ) -> Result<()> {
        let what = format!("setting bridge port options {options:?} on link index {port_index}");
        let mut msg = LinkMessage::default();
        msg.header.index = port_index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::PortKind(InfoPortKind::Bridge),
            NlLinkInfo::PortData(InfoPortData::BridgePort(options)),
        ]));
        self.ack(RouteNetlinkMessage::NewLink(msg), 0)
            .await
            .ctx(|| what)
    }
}
