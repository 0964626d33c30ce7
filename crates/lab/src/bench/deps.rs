//! What the datapath benchmark needs on the machine, and installing what is missing: Debian's
//! packages with apt-get (`--no-install-recommends`), boringtun with `cargo install` into a cache
//! directory of the benchmark's own. Every step says what it does on stderr; `scripts/bench-deps`
//! installs the same ahead of time.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::etcd::which;
use crate::progress::Progress;

/// The benchmark's programs and the Debian package of each.
pub const TOOLS: [(&str, &str); 10] = [
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("iperf3", "iperf3"),
    ("wg", "wireguard-tools"),
    ("wireguard-go", "wireguard-go"),
    ("ovsdb-tool", "openvswitch-switch"),
    ("ovsdb-server", "openvswitch-switch"),
    ("ovs-vswitchd", "openvswitch-switch"),
    ("ovs-vsctl", "openvswitch-switch"),
    ("ethtool", "ethtool"),
];

/// Where Debian puts daemons and admin tools, searched besides PATH (a non-login root shell may lack
/// the sbin directories).
pub const SBIN_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The boringtun the benchmark installs when it has none: `cargo install --locked` of this version.
pub const BORINGTUN_CRATE: &str = "boringtun-cli";
pub const BORINGTUN_VERSION: &str = "0.7.1";
pub const BORINGTUN_BIN: &str = "boringtun-cli";
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/weft/bench";

/// The packages to install for the tools that `found` says are missing, each once, in table order.
pub fn missing_packages(found: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (tool, package) in TOOLS {
        if !found(tool) && !out.contains(&package) {
            out.push(package);
        }
    }
    out
}

/// A program on PATH or in the sbin directories.
pub fn find(program: &str) -> Option<PathBuf> {
    which(program).or_else(|| {
        SBIN_DIRS
            .iter()
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file())
    })
}

/// Resolved programs, all present.
#[derive(Debug, Clone)]
pub struct Tools {
    pub boringtun: PathBuf,
    pub wireguard_go: PathBuf,
}

/// Makes sure every program is there, installing what is missing unless `no_install`.
pub async fn ensure(cache_dir: &Path, no_install: bool, p: &Progress) -> Result<Tools> {
    if !Path::new("/dev/net/tun").exists() {
        bail!("the benchmark needs /dev/net/tun (TUN/TAP): boringtun, wireguard-go and weft's engine use it");
    }
    let missing = missing_packages(|t| find(t).is_some());
    if !missing.is_empty() {
        if no_install {
            bail!(
                "the benchmark needs the Debian package(s) {}: apt-get install --no-install-recommends {} (or run scripts/bench-deps)",
                missing.join(", "),
                missing.join(" ")
            );
        }
        apt_install(&missing, p).await?;
        let still = missing_packages(|t| find(t).is_some());
        if !still.is_empty() {
            bail!(
                "apt-get installed {}, yet programs of {} are still missing",
                missing.join(" "),
                still.join(", ")
            );
        }
    }
    let boringtun = cache_dir.join("bin").join(BORINGTUN_BIN);
    if !boringtun.is_file() {
        if no_install {
            bail!(
                "the benchmark needs boringtun ({}): cargo install --locked --root {} {BORINGTUN_CRATE}@{BORINGTUN_VERSION} (or run scripts/bench-deps)",
                boringtun.display(),
                cache_dir.display()
            );
        }
        cargo_install_boringtun(cache_dir, p).await?;
        if !boringtun.is_file() {
            bail!(
                "cargo install reported success but {} is not there",
                boringtun.display()
            );
        }
    }
    let wireguard_go = find("wireguard-go").context("wireguard-go vanished")?;
    Ok(Tools {
        boringtun,
        wireguard_go,
    })
}

/// Child output goes to our stderr: stdout stays the report's (`--json`).
fn to_stderr() -> Result<Stdio> {
    Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

async fn apt_install(packages: &[&str], p: &Progress) -> Result<()> {
    if find("apt-get").is_none() {
        bail!(
            "the benchmark needs the Debian package(s) {} and there is no apt-get to install them",
            packages.join(", ")
        );
    }
    p.step(format!(
        "installing {} with apt-get (--no-install-recommends): apt-get update first",
        packages.join(" ")
    ));
    let update = tokio::process::Command::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(to_stderr()?)
        .stderr(to_stderr()?)
        .status()
        .await
        .context("running apt-get update")?;
    if !update.success() {
        p.step("apt-get update failed; trying the install with the package lists there are");
    }
    p.step(format!("apt-get install {}", packages.join(" ")));
    let st = tokio::process::Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(to_stderr()?)
        .stderr(to_stderr()?)
        .status()
        .await
        .context("running apt-get install")?;
    if !st.success() {
        bail!(
            "apt-get install --no-install-recommends {} failed ({st}); install them by hand or run scripts/bench-deps",
            packages.join(" ")
        );
    }
    p.step(format!("installed {}", packages.join(" ")));
    Ok(())
}

/// cargo: on PATH, or where rustup puts it.
pub fn find_cargo() -> Option<PathBuf> {
    which("cargo").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
        let c = home.join("bin").join("cargo");
        c.is_file().then_some(c)
    })
}

async fn cargo_install_boringtun(cache_dir: &Path, p: &Progress) -> Result<()> {
    let cargo = find_cargo().with_context(|| {
        format!(
            "the benchmark needs boringtun, installed with cargo ({BORINGTUN_CRATE} from crates.io), and there is no cargo (install Rust with rustup, or put boringtun-cli in {}/bin)",
            cache_dir.display()
        )
    })?;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    p.step(format!(
        "installing boringtun: cargo install --locked --root {} {BORINGTUN_CRATE}@{BORINGTUN_VERSION} (builds from source, once: from half a minute to a few minutes on 2 cores)",
        cache_dir.display()
    ));
    let st = tokio::process::Command::new(&cargo)
        .args(["install", "--locked", "--root"])
        .arg(cache_dir)
        .arg(format!("{BORINGTUN_CRATE}@{BORINGTUN_VERSION}"))
        .stdin(Stdio::null())
        .stdout(to_stderr()?)
        .stderr(to_stderr()?)
        .kill_on_drop(true)
        .status()
        .await
        .context("running cargo install")?;
    if !st.success() {
        bail!(
            "cargo install {BORINGTUN_CRATE}@{BORINGTUN_VERSION} into {} failed ({st})",
            cache_dir.display()
        );
    }
    p.step("boringtun installed");
    Ok(())
}

/// The first line a program prints for `ARGS` (its version), or None.
pub async fn version(program: &Path, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    first_line(&String::from_utf8_lossy(&text))
}

pub fn first_line(s: &str) -> Option<String> {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_package_list() {
        assert!(missing_packages(|_| true).is_empty());
        assert_eq!(
            missing_packages(|t| !t.starts_with("ovs") && t != "wg"),
            vec!["wireguard-tools", "openvswitch-switch"]
        );
        let all = missing_packages(|_| false);
        assert_eq!(all.len(), 7, "{all:?}");
        assert_eq!(all[0], "iproute2");
    }

    /// scripts/bench-deps installs the same packages and the same boringtun.
    #[test]
    fn bench_deps_script_agrees() {
        let script = include_str!("../../../../scripts/bench-deps");
        for (_, package) in TOOLS {
            assert!(
                script.contains(package),
                "scripts/bench-deps lacks {package}"
            );
        }
        assert!(script.contains(&format!("{BORINGTUN_CRATE}@{BORINGTUN_VERSION}")));
        assert!(script.contains(DEFAULT_CACHE_DIR));
        assert!(script.contains("--no-install-recommends"));
    }

    #[test]
    fn version_lines() {
        assert_eq!(
            first_line("\n  boringtun 0.7.1\n").as_deref(),
            Some("boringtun 0.7.1")
        );
        assert_eq!(first_line(" \n"), None);
    }
}
