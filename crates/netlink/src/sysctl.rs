//! Kernel parameters under `/proc/sys`, read and written in a chosen
//! network namespace. `/proc/sys/net` shows the namespace of the thread
//! that opens the file, so writes for another namespace happen on a
//! dedicated thread that entered it ([`crate::in_netns`]).
//!
//! Keys use `sysctl` syntax, `net.ipv4.ip_forward`; when a component holds
//! a dot (an interface such as `eth0.100`), write the key with `/` as
//! separator instead: `net/ipv6/conf/eth0.100/accept_dad` (see
//! [`iface_key`]).

use std::path::PathBuf;

use crate::error::{Context, Result};
use crate::{in_netns, Netns};

/// `net.ipv4.ip_forward`: route between interfaces.
pub const IPV4_FORWARD: &str = "net.ipv4.ip_forward";
/// `net.ipv6.conf.all.forwarding`.
pub const IPV6_FORWARD: &str = "net.ipv6.conf.all.forwarding";
/// `net.ipv6.conf.all.disable_ipv6`.
pub const IPV6_DISABLE_ALL: &str = "net.ipv6.conf.all.disable_ipv6";
/// `net.ipv6.conf.default.disable_ipv6`: for interfaces created later.
pub const IPV6_DISABLE_DEFAULT: &str = "net.ipv6.conf.default.disable_ipv6";
/// `net.bridge.bridge-nf-call-iptables`: with br_netfilter loaded (built in
/// on weft's hosts), bridged IPv4 traffic traverses iptables unless 0.
pub const BRIDGE_NF_CALL_IPTABLES: &str = "net.bridge.bridge-nf-call-iptables";
/// `net.bridge.bridge-nf-call-ip6tables`.
pub const BRIDGE_NF_CALL_IP6TABLES: &str = "net.bridge.bridge-nf-call-ip6tables";

/// Key of a per-interface setting, safe for names containing dots, e.g.
/// `iface_key("ipv6", "eth0", "accept_dad")` = `net/ipv6/conf/eth0/accept_dad`.
pub fn iface_key(family: &str, ifname: &str, leaf: &str) -> String {
    format!("net/{family}/conf/{ifname}/{leaf}")
}

/// Key of `accept_dad` for `ifname` (0 = no duplicate address detection,
/// so IPv6 addresses added later are usable at once).
pub fn accept_dad_key(ifname: &str) -> String {
    iface_key("ipv6", ifname, "accept_dad")
}

/// The file under `/proc/sys` for `key` (dots or slashes as separators).
pub fn path(key: &str) -> PathBuf {
    let rel = if key.contains('/') {
        key.trim_start_matches('/').to_string()
    } else {
        key.replace('.', "/")
    };
    PathBuf::from("/proc/sys").join(rel)
}

fn write_here(key: &str, value: &str) -> Result<()> {
    std::fs::write(path(key), value).ctx(|| format!("setting sysctl {key}={value}"))
}

fn read_here(key: &str) -> Result<String> {
    std::fs::read_to_string(path(key))
        .map(|s| s.trim_end().to_string())
        .ctx(|| format!("reading sysctl {key}"))
}

/// Sets `key` to `value` in `netns` (`None`: the calling thread's
/// namespace).
pub fn set(netns: Option<&Netns>, key: &str, value: &str) -> Result<()> {
    set_all(netns, &[(key, value)])
}

/// Sets several keys in one visit to `netns`, in order; stops at the first
/// failure.
pub fn set_all(netns: Option<&Netns>, settings: &[(&str, &str)]) -> Result<()> {
    let work = || -> Result<()> {
        for (k, v) in settings {
            write_here(k, v)?;
        }
        Ok(())
    };
    match netns {
        None => work(),
        Some(ns) => in_netns(ns, work)?,
    }
}

/// Reads `key` in `netns` (`None`: the calling thread's namespace), without
/// the trailing newline.
pub fn get(netns: Option<&Netns>, key: &str) -> Result<String> {
    match netns {
        None => read_here(key),
        Some(ns) => in_netns(ns, || read_here(key))?,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_paths() {
        assert_eq!(
            path(IPV4_FORWARD),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path(&accept_dad_key("eth0.100")),
            PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/accept_dad")
        );
    }
}
