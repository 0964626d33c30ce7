//! Real Podman (Debian's 4.3, CNI backend, runc) as a lab host's container engine. Each host's
//! Podman has its own storage, run root, temp dir, containers.conf and CNI configuration directory
//! under the lab's state dir, so that two "hosts" on one machine do not mix; its CNI configuration
//! (written by `weft install cni`) names that host for weft. The image comes from no registry: a
//! busybox-static rootfs, imported. Dropping it removes every container it ran (their CNI DEL runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{out_text, Lab, WEFT};

pub const IMAGE: &str = "weftbox";

pub struct Podman {
    pub host: String,
    pub netns: String,
    pub dir: PathBuf,
}

/// A tar of a busybox rootfs (one symlink per applet), made once per lab.
fn rootfs_tar(lab_dir: &Path) -> PathBuf {
    let tar = lab_dir.join("busybox-rootfs.tar");
    if tar.exists() {
        return tar;
    }
    let root = lab_dir.join("busybox-rootfs");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox (busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    let o = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out_text(&o));
    tar
}

impl Podman {
    /// Sets up `host`'s Podman with weft's CNI plugin for `network` and imports the image.
    pub fn setup(lab: &Lab, host: &str, network: &str) -> Podman {
        let lab_dir = PathBuf::from(format!("/run/weft/lab/{}", lab.prefix));
        let dir = lab_dir.join(format!("podman-{host}"));
        let bin_dir = lab_dir.join("cni-bin");
        let conf_dir = dir.join("net.d");
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let store = lab.store_url();
        let o = Command::new(WEFT)
            .args(["install", "cni", "--network", network, "--host", host])
            .args(["--store", &store])
            .arg("--bin-dir")
            .arg(&bin_dir)
            .arg("--conf-dir")
            .arg(&conf_dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "weft install cni: {}", out_text(&o));
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
                 [engine]\n\
                 runtime = \"runc\"\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 tmp_dir = \"{tmp}\"\n\
                 [network]\n\
                 network_backend = \"cni\"\n\
                 cni_plugin_dirs = [\"{bin}\", \"/usr/lib/cni\"]\n\
                 network_config_dir = \"{conf}\"\n",
                tmp = dir.join("tmp").display(),
                bin = bin_dir.display(),
                conf = conf_dir.display(),
            ),
        )
        .unwrap();
        let p = Podman {
            host: host.to_string(),
            netns: lab.netns(host),
            dir,
        };
        let tar = rootfs_tar(&lab_dir);
        p.ok(&[
            "import",
            "--change",
            "CMD=[\"/bin/sh\"]",
            tar.to_str().unwrap(),
            IMAGE,
        ]);
        p
    }

    /// `podman ARGS` as this host's engine, inside the host's namespace (nsenter, not `ip netns
    /// exec`, which remounts /sys and hides the cgroups).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("podman")
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .output()
            .expect("running podman")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "podman {args:?} on {} failed:\n{}",
            self.host,
            out_text(&o)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A container's address on `network`, as Podman reports it (from weft's CNI result).
    pub fn ip(&self, container: &str, network: &str) -> String {
        self.ok(&[
            "inspect",
            "--format",
            &format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}"),
            container,
        ])
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let o = self.run(&["rm", "--all", "--force", "--time", "0"]);
        if !o.status.success() {
            eprintln!("podman rm on {} failed:\n{}", self.host, out_text(&o));
        }
    }
}
