//! Kernel object names. Linux caps interface names at 15 bytes, hence the short forms.

pub const BRIDGE_PREFIX: &str = "wbr";
pub const VXLAN_PREFIX: &str = "wvx";
pub const TAP_PREFIX: &str = "wtp";
pub const VETH_HOST_PREFIX: &str = "wve";
pub const VETH_PEER_PREFIX: &str = "wvp";

pub fn bridge(vni: u32) -> String {
    format!("{BRIDGE_PREFIX}{vni}")
}
pub fn vxlan(vni: u32) -> String {
    format!("{VXLAN_PREFIX}{vni}")
}
/// The userspace engine's TAP uplink of a network.
pub fn tap(vni: u32) -> String {
    format!("{TAP_PREFIX}{vni}")
}
/// Host end of an endpoint's veth pair (endpoint ids are hex; 8 of them keep names unique enough,
/// and attach checks for a clash).
pub fn veth_host(endpoint_id: &str) -> String {
    format!(
        "{VETH_HOST_PREFIX}{}",
        &endpoint_id[..endpoint_id.len().min(8)]
    )
}
/// Temporary name of the container end before it is moved and renamed.
pub fn veth_peer(endpoint_id: &str) -> String {
    format!(
        "{VETH_PEER_PREFIX}{}",
        &endpoint_id[..endpoint_id.len().min(8)]
    )
}
/// The MAC of a network's bridge on a host: fixed, distinct per host within a network (from the
/// host's underlay address), locally administered (`0a:VV:a:b:c:d`, never a container's `02:57:…`).
pub fn bridge_mac(underlay: std::net::IpAddr, vni: u32) -> weft_model::Mac {
    let tail = match underlay {
        std::net::IpAddr::V4(a) => a.octets(),
        std::net::IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    weft_model::Mac([0x0a, vni as u8, tail[0], tail[1], tail[2], tail[3]])
}

/// The VNI a weft bridge or vxlan name stands for.
pub fn vni_of(ifname: &str) -> Option<u32> {
    ifname
        .strip_prefix(BRIDGE_PREFIX)
        .or_else(|| ifname.strip_prefix(VXLAN_PREFIX))
        .or_else(|| ifname.strip_prefix(TAP_PREFIX))
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_enough() {
        assert!(bridge(16_777_215).len() <= 15);
        assert!(vxlan(16_777_215).len() <= 15);
        assert_eq!(veth_host("0123456789abcdef"), "wve01234567");
        assert_eq!(vni_of("wvx42"), Some(42));
        assert_eq!(vni_of("wbr7"), Some(7));
        assert_eq!(vni_of("eth0"), None);
    }
}
