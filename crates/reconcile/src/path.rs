//! Which datapath carries a network on a host: a pure decision from the host's capabilities and
//! the network's options, shared by the agent and attach so that they never disagree.

use serde::Serialize;
use weft_model::{
    DatapathChoice, Encap, Host, Network, CAP_ENCRYPT, CAP_GRE, CAP_KERNEL_VXLAN,
    CAP_USERSPACE_VXLAN,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Path {
    /// The kernel's VXLAN device, programmed over netlink.
    #[default]
    Kernel,
    /// weft's engine over a TAP device.
    Userspace,
}

pub fn choose(host: &Host, net: &Network) -> Result<Path, String> {
    let kernel = host.capabilities.iter().any(|c| c == CAP_KERNEL_VXLAN);
    let user = host.capabilities.iter().any(|c| c == CAP_USERSPACE_VXLAN);
    if net.encrypted {
        if net.datapath == DatapathChoice::Kernel {
            return Err(format!(
                "network {} is encrypted, which only the userspace datapath carries",
                net.name
            ));
        }
        if !host.capabilities.iter().any(|c| c == CAP_ENCRYPT) {
            return Err(format!(
                "network {} is encrypted, and host {} cannot seal its frames (its datapaths: {})",
                net.name,
                host.id,
                host.capabilities.join(", ")
            ));
        }
        return Ok(Path::Userspace);
    }
    if net.encap == Encap::Gre {
        // No kernel GRE here: the engine carries GRE on every host, whatever its datapath.
        if net.datapath == DatapathChoice::Kernel {
            return Err(format!(
                "network {} is GRE, which only the userspace datapath carries",
                net.name
            ));
        }
        if !host.capabilities.iter().any(|c| c == CAP_GRE) {
            return Err(format!(
                "network {} is GRE, and host {} cannot carry it (its datapaths: {})",
                net.name,
                host.id,
                host.capabilities.join(", ")
            ));
        }
        return Ok(Path::Userspace);
    }
    let wanted = match net.datapath {
        DatapathChoice::Userspace => Path::Userspace,
        DatapathChoice::Kernel => Path::Kernel,
        DatapathChoice::Auto if kernel => Path::Kernel,
        DatapathChoice::Auto => Path::Userspace,
    };
    let has = match wanted {
        Path::Kernel => kernel,
        Path::Userspace => user,
    };
    if has {
        Ok(wanted)
    } else {
        Err(format!(
            "network {} needs the {} datapath, which host {} does not have (it has: {})",
            net.name,
            match wanted {
                Path::Kernel => "kernel",
                Path::Userspace => "userspace",
            },
            host.id,
            if host.capabilities.is_empty() {
                "none".to_string()
            } else {
                host.capabilities.join(", ")
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::{host, network};

    fn caps(c: &[&str]) -> Host {
        let mut h = host("h1", "192.0.2.1");
        h.capabilities = c.iter().map(|s| s.to_string()).collect();
        h
    }

    #[test]
    fn auto_prefers_the_kernel() {
        let n = network("a", 10, "10.0.0.0/24");
        assert_eq!(
            choose(&caps(&[CAP_KERNEL_VXLAN, CAP_USERSPACE_VXLAN]), &n),
            Ok(Path::Kernel)
        );
        assert_eq!(
            choose(&caps(&[CAP_USERSPACE_VXLAN]), &n),
            Ok(Path::Userspace)
        );
        assert!(choose(&caps(&[]), &n).is_err());
    }

    #[test]
    fn forced_and_encrypted() {
        let mut n = network("a", 10, "10.0.0.0/24");
        n.datapath = DatapathChoice::Userspace;
        assert_eq!(
            choose(&caps(&[CAP_KERNEL_VXLAN, CAP_USERSPACE_VXLAN]), &n),
            Ok(Path::Userspace)
        );
        n.datapath = DatapathChoice::Kernel;
        let e = choose(&caps(&[CAP_USERSPACE_VXLAN]), &n).unwrap_err();
        assert!(e.contains("needs the kernel datapath"), "{e}");
        n.encrypted = true;
        assert!(choose(&caps(&[CAP_KERNEL_VXLAN, CAP_ENCRYPT]), &n).is_err());
        n.datapath = DatapathChoice::Auto;
        let e = choose(&caps(&[CAP_KERNEL_VXLAN, CAP_USERSPACE_VXLAN]), &n).unwrap_err();
        assert!(e.contains("cannot seal"), "{e}");
        assert_eq!(
            choose(&caps(&[CAP_KERNEL_VXLAN, CAP_ENCRYPT]), &n),
            Ok(Path::Userspace)
        );
    }

    #[test]
    fn gre_goes_to_the_engine_on_every_host() {
        let mut n = network("g", 10, "10.0.0.0/24");
        n.encap = Encap::Gre;
        for c in [
            &[CAP_KERNEL_VXLAN, CAP_ENCRYPT, CAP_GRE][..],
            &[CAP_USERSPACE_VXLAN, CAP_ENCRYPT, CAP_GRE],
        ] {
            assert_eq!(choose(&caps(c), &n), Ok(Path::Userspace), "{c:?}");
        }
        let e = choose(&caps(&[CAP_KERNEL_VXLAN, CAP_USERSPACE_VXLAN]), &n).unwrap_err();
        assert!(e.contains("cannot carry it"), "{e}");
        n.datapath = DatapathChoice::Kernel;
        let e = choose(&caps(&[CAP_KERNEL_VXLAN, CAP_GRE]), &n).unwrap_err();
        assert!(e.contains("only the userspace datapath"), "{e}");
    }
}
