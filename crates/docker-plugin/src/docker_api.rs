//! What weft reads from Docker's own API: its list of networks (names and subnets), since Docker
//! never sends a plugin a network's name. One GET over Docker's unix socket; the parsing is pure.

use std::path::Path;

use anyhow::{Context, Result};
use ipnet::IpNet;
use serde::Deserialize;

use crate::http_client;
use crate::pools::DockerNetwork;

/// Docker's API version weft speaks (Docker 20.10's; newer engines accept it).
const API_VERSION: &str = "v1.41";

pub async fn list_networks(socket: &Path) -> Result<Vec<DockerNetwork>> {
    let body =
        http_client::request(socket, "GET", &format!("/{API_VERSION}/networks"), b"").await?;
    parse_networks(&body)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiNetwork {
    id: String,
    name: String,
    driver: String,
    #[serde(rename = "IPAM", default)]
    ipam: Option<ApiIpam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiIpam {
    #[serde(default)]
    config: Option<Vec<ApiIpamConfig>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiIpamConfig {
    #[serde(default)]
    subnet: String,
}

pub fn parse_networks(body: &[u8]) -> Result<Vec<DockerNetwork>> {
    let nets: Vec<ApiNetwork> =
        serde_json::from_slice(body).context("parsing Docker's list of networks")?;
    Ok(nets
        .into_iter()
        .map(|n| DockerNetwork {
            subnets: n
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.subnet.parse::<IpNet>().ok())
                .collect(),
            id: n.id,
            name: n.name,
            driver: n.driver,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_network_list() {
        let body = br#"[{"Name":"prod","Id":"824d","Created":"2026-11-28T07:47:30Z","Scope":"local","Driver":"weft","EnableIPv6":true,"IPAM":{"Driver":"weft","Options":{"q":"r"},"Config":[{"Subnet":"10.99.0.0/24","Gateway":"10.99.0.1"},{"Subnet":"fd00:99::/64"}]},"Internal":false,"Labels":{}},{"Name":"none","Id":"1","Driver":"null","IPAM":{"Driver":"default","Options":null,"Config":[]}},{"Name":"host","Id":"2","Driver":"host","IPAM":{"Driver":"default","Options":null,"Config":null}}]"#;
        let nets = parse_networks(body).unwrap();
        assert_eq!(nets.len(), 3);
        assert_eq!(nets[0].name, "prod");
        assert_eq!(
            nets[0].subnets,
            vec![
                "10.99.0.0/24".parse::<IpNet>().unwrap(),
                "fd00:99::/64".parse().unwrap()
            ]
        );
        assert!(nets[2].subnets.is_empty());
        assert!(parse_networks(b"{}").is_err());
    }
}
