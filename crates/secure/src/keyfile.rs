//! The host's private key file: the only I/O in this crate.
//!
//! The file holds the private key in base64 (hex is also read) and a newline, mode 0600. The
//! public key is derived from it, never stored beside it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::keys::{KeyError, KeyPair, PrivateKey};

/// Why the key file could not be read or made; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("private key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("private key file {path} is accessible by group or others (mode {mode:04o}); run `chmod 600 {path}`")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("private key file {path}: {source}")]
    Invalid { path: PathBuf, source: KeyError },
    #[error("private key file {path} is not a regular file")]
    NotAFile { path: PathBuf },
}

/// Loads the key pair from `path`, or makes one and writes it there (mode 0600, creating the
/// parent directory with mode 0700 if missing). Refuses a file readable by group or others, an
/// empty or undecodable file, and anything that is not a regular file.
///
/// Safe against a concurrent caller: the new key is written to a temporary file and linked into
/// place, so a reader never sees a partial file and only one key wins.
pub fn load_or_create(path: impl AsRef<Path>) -> Result<KeyPair, KeyFileError> {
    let path = path.as_ref();
    match load(path) {
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let pair = KeyPair::generate().map_err(|source| KeyFileError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    match create(path, &pair) {
        Ok(()) => Ok(pair),
        // Another process made it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load(path),
        Err(source) => Err(KeyFileError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Loads the key pair from an existing file (see [`load_or_create`] for the checks).
pub fn load(path: impl AsRef<Path>) -> Result<KeyPair, KeyFileError> {
    let path = path.as_ref();
    let io_err = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = fs::metadata(path).map_err(io_err)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let mut text = fs::read_to_string(path).map_err(io_err)?;
    let parsed = PrivateKey::parse(&text);
    zeroize::Zeroize::zeroize(&mut text);
    parsed
        .map(KeyPair::from_private)
        .map_err(|source| KeyFileError::Invalid {
            path: path.to_owned(),
            source,
        })
}

fn create(path: &Path, pair: &KeyPair) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    tmp.push(format!(".tmp.{}.{seq}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut text = pair.private().to_base64();
        text.push('\n');
        let written = file.write_all(text.as_bytes());
        zeroize::Zeroize::zeroize(&mut text);
        written?;
        file.sync_all()?;
        // link() never replaces: exactly one concurrent creator wins.
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_loads_the_same_key_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/host.key");
        let first = load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.public(), second.public());
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 44);
        assert_eq!(
            fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temporary file left behind"
        );
    }

    #[test]
    fn refuses_a_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Permissions { mode: 0o644, .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn refuses_garbage_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        fs::write(&path, "garbage\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Invalid { .. }));
        assert!(err.to_string().contains("host.key"), "{err}");
        // Never overwritten.
        assert_eq!(fs::read_to_string(&path).unwrap(), "garbage\n");
    }

    #[test]
    fn refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyFileError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn concurrent_creators_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.key");
        let keys: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| load_or_create(&path).map(|p| *p.public())))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = load(&path).unwrap();
        for key in keys {
            assert_eq!(key.unwrap(), *on_disk.public());
        }
    }
}
