//! The libnetwork remote driver and IPAM driver protocol: one POST per call, JSON bodies with
//! Go-style field names (as Docker 20.10 sends them, see the project's traces). Pure types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The content type Docker sends and expects.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// The address space name weft's IPAM driver answers with (Docker passes it back on each pool).
pub const ADDRESS_SPACE: &str = "weft";

/// Docker's option naming the gateway request in `RequestAddress`.
pub const GATEWAY_REQUEST: &str = "com.docker.network.gateway";
pub const OPT_REQUEST_TYPE: &str = "RequestAddressType";
pub const OPT_MAC: &str = "com.docker.network.endpoint.macaddress";

/// Every call weft answers, by its URL path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Activate,
    NetGetCapabilities,
    CreateNetwork,
    DeleteNetwork,
    CreateEndpoint,
    DeleteEndpoint,
    EndpointOperInfo,
    Join,
    Leave,
    /// The container's ports published on its host (`docker run -p`), and taken back.
    ProgramExternalConnectivity,
    RevokeExternalConnectivity,
    /// Calls a local-scope driver has no use for, answered with success as the protocol allows:
    /// DiscoverNew/DiscoverDelete, Allocate/FreeNetwork.
    Ignored,
    IpamGetCapabilities,
    GetDefaultAddressSpaces,
    RequestPool,
    ReleasePool,
    RequestAddress,
    ReleaseAddress,
}

impl Method {
    pub fn from_path(path: &str) -> Option<Method> {
        Some(match path {
            "/Plugin.Activate" => Method::Activate,
            "/NetworkDriver.GetCapabilities" => Method::NetGetCapabilities,
            "/NetworkDriver.CreateNetwork" => Method::CreateNetwork,
            "/NetworkDriver.DeleteNetwork" => Method::DeleteNetwork,
            "/NetworkDriver.CreateEndpoint" => Method::CreateEndpoint,
            "/NetworkDriver.DeleteEndpoint" => Method::DeleteEndpoint,
            "/NetworkDriver.EndpointOperInfo" => Method::EndpointOperInfo,
            "/NetworkDriver.Join" => Method::Join,
            "/NetworkDriver.Leave" => Method::Leave,
            "/NetworkDriver.ProgramExternalConnectivity" => Method::ProgramExternalConnectivity,
            "/NetworkDriver.RevokeExternalConnectivity" => Method::RevokeExternalConnectivity,
            "/NetworkDriver.DiscoverNew"
            | "/NetworkDriver.DiscoverDelete"
            | "/NetworkDriver.AllocateNetwork"
            | "/NetworkDriver.FreeNetwork" => Method::Ignored,
            "/IpamDriver.GetCapabilities" => Method::IpamGetCapabilities,
            "/IpamDriver.GetDefaultAddressSpaces" => Method::GetDefaultAddressSpaces,
            "/IpamDriver.RequestPool" => Method::RequestPool,
            "/IpamDriver.ReleasePool" => Method::ReleasePool,
            "/IpamDriver.RequestAddress" => Method::RequestAddress,
            "/IpamDriver.ReleaseAddress" => Method::ReleaseAddress,
            _ => return None,
        })
    }
}

/// Parses a call's body: Docker sends no body at all on some calls (Activate), which reads as `{}`.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))
}

/// The error answer every failed call gets.
pub fn err(msg: impl std::fmt::Display) -> Value {
    serde_json::json!({ "Err": msg.to_string() })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamData {
    #[serde(default)]
    pub address_space: String,
    pub pool: String,
    #[serde(default)]
    pub gateway: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
    #[serde(default, rename = "IPv4Data")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(default, rename = "IPv6Data")]
    pub ipv6_data: Vec<IpamData>,
}

#[derive(Debug, Deserialize)]
pub struct NetworkRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInterface {
    #[serde(default)]
    pub address: String,
    #[serde(default, rename = "AddressIPv6")]
    pub address_ipv6: String,
    #[serde(default)]
    pub mac_address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub interface: Option<EndpointInterface>,
}

#[derive(Debug, Deserialize)]
pub struct EndpointRef {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub sandbox_key: String,
}

/// `ProgramExternalConnectivity`: the options are the container's sandbox labels, among them
/// its port bindings ([`crate::portmap::OPT_PORTMAP`]).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProgramExternalConnectivity {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default)]
    pub options: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestPool {
    #[serde(default)]
    pub address_space: String,
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub sub_pool: String,
    #[serde(default, rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Deserialize)]
pub struct PoolRef {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    pub src_name: String,
    pub dst_prefix: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bodies exactly as Docker 20.10 sent them (traces/docker-20.10-remote-plugin-calls.log and
    // a run with weft as the IPAM driver).
    #[test]
    fn parses_docker_bodies() {
        let c: CreateNetwork = parse(br#"{"NetworkID": "4dc7", "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {}}, "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": "10.77.50.1/24", "Pool": "10.77.50.0/24"}], "IPv6Data": []}"#).unwrap();
        assert_eq!(c.network_id, "4dc7");
        assert_eq!(c.ipv4_data[0].pool, "10.77.50.0/24");
        assert_eq!(c.ipv4_data[0].address_space, "LocalDefault");
        let e: CreateEndpoint = parse(br#"{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"10.99.0.5/24","AddressIPv6":"fd00::5/64","MacAddress":"02:42:d1:26:20:f1"},"Options":{"com.docker.network.portmap":[]}}"#).unwrap();
        let i = e.interface.unwrap();
        assert_eq!(i.address_ipv6, "fd00::5/64");
        assert_eq!(i.mac_address, "02:42:d1:26:20:f1");
        let j: Join =
            parse(br#"{"NetworkID":"n","EndpointID":"e","SandboxKey":"/x/netns/42","Options":{}}"#)
                .unwrap();
        assert_eq!(j.sandbox_key, "/x/netns/42");
        let p: RequestPool = parse(br#"{"AddressSpace":"weft","Pool":"fd00:99::/64","SubPool":"","Options":{"q":"r"},"V6":true}"#).unwrap();
        assert!(p.v6);
        let a: RequestAddress = parse(br#"{"PoolID":"p","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#).unwrap();
        assert_eq!(a.options[OPT_REQUEST_TYPE], GATEWAY_REQUEST);
    }

    #[test]
    fn empty_body_is_an_empty_object_and_garbage_is_an_error() {
        let _: BTreeMap<String, Value> = parse(b"").unwrap();
        let e = parse::<Join>(b"{not json").unwrap_err();
        assert!(e.starts_with("bad request body"), "{e}");
        let e = parse::<Join>(br#"{"NetworkID":"n"}"#).unwrap_err();
        assert!(e.contains("EndpointID"), "{e}");
    }

    #[test]
    fn methods() {
        assert_eq!(
            Method::from_path("/Plugin.Activate"),
            Some(Method::Activate)
        );
        assert_eq!(
            Method::from_path("/NetworkDriver.DiscoverNew"),
            Some(Method::Ignored)
        );
        assert_eq!(
            Method::from_path("/NetworkDriver.RevokeExternalConnectivity"),
            Some(Method::RevokeExternalConnectivity)
        );
        assert_eq!(Method::from_path("/NetworkDriver.Nope"), None);
        assert_eq!(
            serde_json::to_value(InterfaceName {
                src_name: "a".into(),
                dst_prefix: "eth".into()
            })
            .unwrap(),
            serde_json::json!({"SrcName": "a", "DstPrefix": "eth"})
        );
    }
}
