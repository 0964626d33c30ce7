//! What weft reads from Docker's own API: its list of networks (names and subnets), since Docker
//! never sends a plugin a network's name. One HTTP/1.0 GET over Docker's unix socket; the parsing
//! is pure.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ipnet::IpNet;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pools::DockerNetwork;

/// Docker's API version weft speaks (Docker 20.10's; newer engines accept it).
const API_VERSION: &str = "v1.41";
const TIMEOUT: Duration = Duration::from_secs(5);

pub async fn list_networks(socket: &Path) -> Result<Vec<DockerNetwork>> {
    let body = get(socket, &format!("/{API_VERSION}/networks")).await?;
    parse_networks(&body)
}

async fn get(socket: &Path, path: &str) -> Result<Vec<u8>> {
    let talk = async {
        let mut s = tokio::net::UnixStream::connect(socket).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let raw = tokio::time::timeout(TIMEOUT, talk)
        .await
        .map_err(|_| anyhow!("no answer within {TIMEOUT:?}"))?
        .with_context(|| format!("asking Docker at {}", socket.display()))?;
    split_response(&raw).with_context(|| format!("Docker's answer to GET {path}"))
}

/// The body of a 200 answer to an HTTP/1.0 request (no chunking: the body runs to the end).
fn split_response(raw: &[u8]) -> Result<Vec<u8>> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("not an HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.lines().next().unwrap_or_default();
    let body = raw[end + 4..].to_vec();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{status}: {}", String::from_utf8_lossy(&body).trim());
    }
    Ok(body)
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

    #[test]
    fn responses() {
        assert_eq!(
            split_response(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[]").unwrap(),
            b"[]"
        );
        let e = split_response(b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"page not found\"}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "HTTP/1.0 404 Not Found: {\"message\":\"page not found\"}"
        );
        assert!(split_response(b"garbage").is_err());
    }
}
