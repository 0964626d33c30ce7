//! Picks a store backend from a URL.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use weft_store::Store;

pub const DEFAULT_EMBEDDED_PATH: &str = "/var/lib/weft/store.db";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Embedded(PathBuf),
    Etcd(Vec<String>),
}

impl StoreUrl {
    /// Accepts `embedded` (the default file), `embedded:///path`, `file:///path`, a bare absolute
    /// path, or `etcd://host:port[,host:port…]`.
    pub fn parse(s: &str) -> Result<StoreUrl> {
        let s = s.trim();
        if s.is_empty() || s == "embedded" {
            return Ok(StoreUrl::Embedded(PathBuf::from(DEFAULT_EMBEDDED_PATH)));
        }
        if let Some(rest) = s.strip_prefix("etcd://") {
            let eps: Vec<String> = rest
                .split(',')
                .map(|e| e.trim().trim_end_matches('/'))
                .filter(|e| !e.is_empty())
                .map(|e| {
                    if e.contains(':') {
                        Ok(format!("http://{e}"))
                    } else {
                        bail!("invalid store URL {s:?}: etcd endpoint {e:?} needs a port, like etcd://10.0.0.1:2379")
                    }
                })
                .collect::<Result<_>>()?;
            if eps.is_empty() {
                bail!("invalid store URL {s:?}: no etcd endpoint given");
            }
            return Ok(StoreUrl::Etcd(eps));
        }
        let path = s
            .strip_prefix("embedded://")
            .or_else(|| s.strip_prefix("file://"))
            .unwrap_or(s);
        if !path.starts_with('/') {
            bail!(
                "invalid store URL {s:?}: use embedded, file:///absolute/path.db or etcd://host:port[,host:port…]"
            );
        }
        Ok(StoreUrl::Embedded(PathBuf::from(path)))
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Embedded(p) => write!(f, "file://{}", p.display()),
            StoreUrl::Etcd(eps) => {
                let hosts: Vec<&str> = eps
                    .iter()
                    .map(|e| e.trim_start_matches("http://"))
                    .collect();
                write!(f, "etcd://{}", hosts.join(","))
            }
        }
    }
}

pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    let parsed = StoreUrl::parse(url)?;
    Ok(match &parsed {
        StoreUrl::Embedded(path) => Arc::new(
            weft_store_embedded::SqliteStore::open(path)
                .with_context(|| format!("opening embedded store {}", path.display()))?,
        ),
        StoreUrl::Etcd(eps) => Arc::new(
            weft_store_etcd::EtcdStore::connect(eps)
                .await
                .with_context(|| format!("connecting to store {parsed}"))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            StoreUrl::parse("embedded").unwrap(),
            StoreUrl::Embedded(DEFAULT_EMBEDDED_PATH.into())
        );
        assert_eq!(
            StoreUrl::parse("file:///tmp/x.db").unwrap(),
            StoreUrl::Embedded("/tmp/x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("/tmp/y.db").unwrap(),
            StoreUrl::Embedded("/tmp/y.db".into())
        );
        assert_eq!(
            StoreUrl::parse("etcd://192.0.2.1:2379,192.0.2.2:2379").unwrap(),
            StoreUrl::Etcd(vec![
                "http://192.0.2.1:2379".into(),
                "http://192.0.2.2:2379".into()
            ])
        );
        assert_eq!(
            StoreUrl::parse("etcd://192.0.2.1:2379")
                .unwrap()
                .to_string(),
            "etcd://192.0.2.1:2379"
        );
        assert!(StoreUrl::parse("etcd://").is_err());
        assert!(StoreUrl::parse("etcd://host").is_err());
        assert!(StoreUrl::parse("relative.db").is_err());
    }
}
