//! What `weft install cni` writes: the example network configuration list (pure), and where
//! runtimes look for plugins and configurations.

use serde_json::{json, Value};

/// Where runtimes look for plugin binaries: the CNI default, and Debian's (Podman's first choice there).
pub const BIN_DIRS: &[&str] = &["/opt/cni/bin", "/usr/lib/cni"];
/// Where runtimes look for network configurations.
pub const CONF_DIR: &str = "/etc/cni/net.d";
/// The built plugin, beside `weft`.
pub const BINARY: &str = "weft-cni";
/// Its name in a plugin directory: runtimes run the file named by the configuration's `type`.
pub const PLUGIN_FILE: &str = crate::config::PLUGIN_TYPE;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfOptions {
    pub network: String,
    pub store: Option<String>,
    pub host: Option<String>,
    /// Chain the reference `portmap` plugin after weft (port mappings from the runtime).
    pub portmap: bool,
}

/// The file name of the example: runtimes read `*.conflist` in name order.
pub fn conflist_name(network: &str) -> String {
    format!("50-weft-{network}.conflist")
}

/// The network configuration list a runtime reads: weft, then optionally portmap.
pub fn conflist(o: &ConfOptions) -> Value {
    let mut weft = json!({
        "type": crate::config::PLUGIN_TYPE,
        "network": o.network,
        "capabilities": {"ips": true, "mac": true},
    });
    if let Some(s) = &o.store {
        weft["store"] = json!(s);
    }
    if let Some(h) = &o.host {
        weft["host"] = json!(h);
    }
    let mut plugins = vec![weft];
    if o.portmap {
        plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}}));
    }
    json!({
        "cniVersion": "1.0.0",
        "name": o.network,
        "plugins": plugins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rscni_plugin::types::NetConfList;

    #[test]
    fn example_is_a_valid_conflist_whose_weft_part_parses() {
        let o = ConfOptions {
            network: "prod".into(),
            store: Some("etcd://192.0.2.1:2379".into()),
            host: Some("h1".into()),
            portmap: true,
        };
        let v = conflist(&o);
        let list: NetConfList = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(list.name, "prod");
        assert_eq!(list.plugins.len(), 2);
        assert_eq!(list.plugins[1].r#type, "portmap");
        // The runtime injects the list's name and version into each plugin's configuration.
        let mut weft = list.plugins[0].clone();
        weft.name = list.name.clone();
        weft.cni_version = list.cni_version.clone();
        let c = crate::config::parse(&weft, &Default::default()).unwrap();
        assert_eq!(c.store, "etcd://192.0.2.1:2379");
        assert_eq!(c.host.as_deref(), Some("h1"));
        assert_eq!(conflist_name("prod"), "50-weft-prod.conflist");
        let bare = conflist(&ConfOptions {
            portmap: false,
            store: None,
            host: None,
            ..o
        });
        assert_eq!(bare["plugins"].as_array().unwrap().len(), 1);
        assert!(bare["plugins"][0].get("store").is_none());
    }
}
