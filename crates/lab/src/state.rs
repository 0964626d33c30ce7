//! The lab's state file (`/run/weft/lab/P/state.json`): what `up` built and which containers live where.
//! Parsing and the model are pure; reads and writes go through a lock file so that concurrent
//! `weft lab run` calls do not lose each other's containers.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::topology::Lab;

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The lab's own SQLite file in its state directory.
    Embedded,
    /// The lab's own 3-member etcd cluster.
    Etcd,
    /// A store the user gave (`etcd://…`, `file:///…`).
    External,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub name: String,
    pub netns: String,
    pub underlay: Ipv4Addr,
    /// Its IPv6 underlay address (absent in the state of labs built before the underlay was
    /// dual-stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay6: Option<Ipv6Addr>,
    /// The agent runs the userspace engine (`--datapath userspace`), as a host without kernel VXLAN.
    #[serde(default)]
    pub userspace: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdEntry {
    pub name: String,
    pub netns: String,
    pub address: Ipv4Addr,
}

/// The outside world of a lab built with `up --outside`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideEntry {
    pub netns: String,
    pub underlay: Ipv4Addr,
    pub addresses: Vec<Ipv4Addr>,
    /// Its IPv6 side (absent in the state of labs built before the underlay was dual-stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses6: Vec<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub version: u32,
    pub prefix: String,
    pub store_kind: StoreKind,
    pub store_url: String,
    pub hosts: Vec<HostEntry>,
    #[serde(default)]
    pub etcd: Vec<EtcdEntry>,
    /// Container name → the host it lives on.
    #[serde(default)]
    pub containers: BTreeMap<String, String>,
    pub created_at_ms: u64,
    /// The agents' --lease-ttl, so that `lab agent start` restarts them as `up` started them.
    #[serde(default)]
    pub lease_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside: Option<OutsideEntry>,
}

impl LabState {
    pub fn parse(bytes: &[u8]) -> Result<LabState> {
        #[derive(Deserialize)]
        struct Probe {
            version: Option<u32>,
        }
        let probe: Probe =
            serde_json::from_slice(bytes).context("lab state file is not valid JSON")?;
        match probe.version {
            Some(STATE_VERSION) => {}
            Some(v) => bail!(
                "lab state file has version {v}, this weft reads version {STATE_VERSION}; run `weft lab down` with the weft that made it"
            ),
            None => bail!("lab state file has no version"),
        }
        serde_json::from_slice(bytes).context("lab state file is not valid")
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("state serializes");
        v.push(b'\n');
        v
    }

    pub fn host(&self, name: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn host_names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name.clone()).collect()
    }
}

/// Holds the lab's lock file (flock) until dropped.
pub struct Locked {
    _lock: nix::fcntl::Flock<File>,
}

/// Takes the lab's lock; waits for another weft lab command holding it.
pub fn lock(lab: &Lab) -> Result<Locked> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lab.lock_file())
        .with_context(|| format!("opening {}", lab.lock_file().display()))?;
    let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("locking the lab state")?;
    Ok(Locked { _lock: lock })
}

/// Reads the state of a lab; a clear error when there is none.
pub fn load(lab: &Lab) -> Result<LabState> {
    let path = lab.state_file();
    match fs::read(&path) {
        Ok(bytes) => LabState::parse(&bytes).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no lab with prefix {:?} (no {}): start one with `weft lab up --prefix {}`",
            lab.prefix.as_str(),
            path.display(),
            lab.prefix
        ),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the state atomically (temp file + rename).
pub fn save(lab: &Lab, state: &LabState) -> Result<()> {
    let path = lab.state_file();
    let tmp = lab.dir.join("state.json.tmp");
    let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&state.to_json())?;
    f.sync_all()?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Read-modify-write under the lab's lock.
pub fn update<T>(lab: &Lab, f: impl FnOnce(&mut LabState) -> Result<T>) -> Result<T> {
    let _l = lock(lab)?;
    let mut s = load(lab)?;
    let out = f(&mut s)?;
    save(lab, &s)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LabState {
        LabState {
            version: STATE_VERSION,
            prefix: "weft".into(),
            store_kind: StoreKind::Embedded,
            store_url: "file:///run/weft/lab/weft/store.db".into(),
            hosts: vec![HostEntry {
                name: "h1".into(),
                netns: "weft-h1".into(),
                underlay: "192.0.2.11".parse().unwrap(),
                underlay6: Some("2001:db8::11".parse().unwrap()),
                userspace: false,
            }],
            etcd: vec![],
            containers: [("web".to_string(), "h1".to_string())].into(),
            created_at_ms: 1,
            lease_ttl: None,
            outside: None,
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(LabState::parse(&s.to_json()).unwrap(), s);
        assert_eq!(s.host("h1").unwrap().underlay.to_string(), "192.0.2.11");
        assert!(s.host("h2").is_none());
    }

    #[test]
    fn states_from_before_the_ipv6_underlay_still_read() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["hosts"][0]
            .as_object_mut()
            .unwrap()
            .remove("underlay6")
            .expect("written");
        v["outside"] = serde_json::json!({
            "netns": "weft-out", "underlay": "192.0.2.254", "addresses": ["198.51.100.1"]
        });
        let st = LabState::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(st.hosts[0].underlay6, None);
        let out = st.outside.unwrap();
        assert_eq!((out.underlay6, out.addresses6.len()), (None, 0));
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["version"] = 7.into();
        let err = LabState::parse(v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("version 7"), "{err}");
        assert!(LabState::parse(b"{").is_err());
        assert!(LabState::parse(b"{}").is_err());
    }

    #[test]
    fn store_kind_is_lowercase() {
        let j = String::from_utf8(sample().to_json()).unwrap();
        assert!(j.contains("\"store_kind\": \"embedded\""), "{j}");
    }
}
