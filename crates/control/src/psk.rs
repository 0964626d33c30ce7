//! Pre-shared keys of encrypted networks. The key stays on the hosts (a file per network in the
//! PSK directory, mode 0600), so that whoever holds the store alone cannot admit a host; the
//! network record carries only its fingerprint.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use weft_secure::PresharedKey;

pub const DEFAULT_PSK_DIR: &str = "/etc/weft/psk";

pub fn path(dir: &Path, network: &str) -> PathBuf {
    dir.join(format!("{network}.psk"))
}

/// Reads a PSK file given by the user (base64 or hex of 32 bytes).
pub fn read(file: &Path) -> Result<PresharedKey> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading pre-shared key file {}", file.display()))?;
    PresharedKey::parse(&text).with_context(|| format!("pre-shared key file {}", file.display()))
}

/// Installs a network's PSK on this host; refuses to overwrite a different one.
pub fn install(dir: &Path, network: &str, psk: &PresharedKey) -> Result<PathBuf> {
    let p = path(dir, network);
    if let Ok(existing) = read(&p) {
        if existing.fingerprint() == psk.fingerprint() {
            return Ok(p);
        }
        bail!(
            "{} already holds another pre-shared key for network {network}",
            p.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
        .with_context(|| format!("writing {}", p.display()))?;
    writeln!(f, "{}", psk.to_base64()).with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// The PSK of an encrypted network on this host, checked against the network's fingerprint.
pub fn load(dir: &Path, network: &str, fingerprint: Option<&str>) -> Result<PresharedKey> {
    let Some(want) = fingerprint else {
        return Ok(PresharedKey::none());
    };
    let p = path(dir, network);
    let psk = read(&p).with_context(|| {
        format!("network {network} needs its pre-shared key in {} (install the file the network was created with)", p.display())
    })?;
    if psk.fingerprint() != want {
        bail!(
            "the pre-shared key in {} has fingerprint {}, network {network} expects {want}",
            p.display(),
            psk.fingerprint()
        );
    }
    Ok(psk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_load_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let a = PresharedKey::from_bytes([7; 32]);
        let p = install(dir.path(), "prod", &a).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert_eq!(
            load(dir.path(), "prod", Some(&a.fingerprint()))
                .unwrap()
                .as_bytes(),
            a.as_bytes()
        );
        install(dir.path(), "prod", &a).unwrap();
        let b = PresharedKey::from_bytes([8; 32]);
        assert!(install(dir.path(), "prod", &b)
            .unwrap_err()
            .to_string()
            .contains("another"));
        let e = load(dir.path(), "prod", Some(&b.fingerprint()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expects"), "{e}");
        assert!(load(dir.path(), "other", Some("x")).is_err());
        assert_eq!(
            load(dir.path(), "other", None).unwrap().as_bytes(),
            &[0; 32]
        );
    }
}
