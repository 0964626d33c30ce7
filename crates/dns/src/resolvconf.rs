//! resolv.conf: the host's (where upstream resolvers come from) and the one weft writes for a named
//! container (`/etc/netns/NAME/resolv.conf`, which `ip netns exec` and `weft lab exec` bind over
//! /etc/resolv.conf). Rendering and parsing are pure; [`write_for_netns`] and [`remove_for_netns`]
//! touch files, and only files weft wrote.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The first line of every resolv.conf weft writes: how it knows the file is its own.
pub const MARKER: &str = "# written by weft attach; removed by weft detach";

/// Where `ip netns exec NAME` finds its files.
pub const NETNS_ETC_DIR: &str = "/etc/netns";

/// The nameservers of a resolv.conf, as socket addresses on port 53 (the agent forwards from the
/// host's own namespace, so a host-local stub such as 127.0.0.53 on the host works too).
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // A scoped IPv6 address (fe80::1%eth0) is not worth the trouble here.
            words.next()?.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The resolv.conf of a container on `networks` (in attach order) under `domain`.
pub fn render(resolver: Ipv4Addr, domain: &str, networks: &[String]) -> String {
    let mut search: Vec<String> = networks.iter().map(|n| format!("{n}.{domain}")).collect();
    search.push(domain.to_string());
    format!(
        "{MARKER}\nnameserver {resolver}\nsearch {}\noptions ndots:1 timeout:2 attempts:2\n",
        search.join(" ")
    )
}

pub fn path_for_netns(netns_name: &str) -> PathBuf {
    Path::new(NETNS_ETC_DIR)
        .join(netns_name)
        .join("resolv.conf")
}

/// Whether `path` is a resolv.conf weft wrote (absent: no).
pub fn is_ours(path: &Path) -> io::Result<bool> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t.lines().next() == Some(MARKER)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        // Not text: certainly not ours.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(false),
        Err(e) => Err(e),
    }
}

/// What [`write_for_netns`] did, so that a rollback can undo exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written (or rewritten: it was ours). `previous` holds what weft had there before.
    Wrote {
        path: PathBuf,
        previous: Option<String>,
        made_dir: bool,
    },
    /// Weft's file already says this: left alone.
    Unchanged,
    /// Someone else's file is there: left alone.
    NotOurs(PathBuf),
}

/// Writes `content` as the resolv.conf of named netns `netns_name`, unless a file weft did not
/// write is there. Atomic (a reader never sees half a file).
pub fn write_for_netns(netns_name: &str, content: &str) -> io::Result<Written> {
    let path = path_for_netns(netns_name);
    let dir = path.parent().expect("has a parent").to_path_buf();
    let previous = match std::fs::read_to_string(&path) {
        Ok(t) if t == content => return Ok(Written::Unchanged),
        Ok(t) if t.lines().next() == Some(MARKER) => Some(t),
        Ok(_) => return Ok(Written::NotOurs(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(_) => return Ok(Written::NotOurs(path)),
    };
    let made_dir = !dir.exists();
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(".resolv.conf.weft");
    std::fs::write(&tmp, content)?;
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        if made_dir {
            let _ = std::fs::remove_dir(&dir);
        }
        return Err(e);
    }
    Ok(Written::Wrote {
        path,
        previous,
        made_dir,
    })
}

/// Undoes a [`write_for_netns`]: the previous content back, or the file (and a directory weft
/// made) gone.
pub fn undo(w: &Written) -> io::Result<()> {
    match w {
        Written::NotOurs(_) | Written::Unchanged => Ok(()),
        Written::Wrote {
            path,
            previous: Some(p),
            ..
        } => std::fs::write(path, p),
        Written::Wrote { path, made_dir, .. } => {
            remove_file(path)?;
            if *made_dir {
                remove_empty_dir(path.parent().expect("has a parent"));
            }
            Ok(())
        }
    }
}

/// Removes the resolv.conf of named netns `netns_name` if weft wrote it, and its directory if
/// that is then empty. True if a file was removed.
pub fn remove_for_netns(netns_name: &str) -> io::Result<bool> {
    let path = path_for_netns(netns_name);
    if !is_ours(&path)? {
        return Ok(false);
    }
    remove_file(&path)?;
    remove_empty_dir(path.parent().expect("has a parent"));
    Ok(true)
}

fn remove_file(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_empty_dir(dir: &Path) {
    // Fails harmlessly when something else lives there.
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers() {
        let t = "# comment\nsearch example\nnameserver 192.0.2.53\nnameserver  2001:db8::53 \nnameserver fe80::1%eth0\nnameserver\noptions edns0\n";
        assert_eq!(
            nameservers(t),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
        assert!(nameservers("").is_empty());
    }

    #[test]
    fn renders() {
        let t = render(
            Ipv4Addr::new(127, 0, 0, 53),
            "weft.internal",
            &["prod".into(), "db".into()],
        );
        assert_eq!(
            t,
            format!("{MARKER}\nnameserver 127.0.0.53\nsearch prod.weft.internal db.weft.internal weft.internal\noptions ndots:1 timeout:2 attempts:2\n")
        );
        assert_eq!(
            nameservers(&t),
            vec!["127.0.0.53:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
