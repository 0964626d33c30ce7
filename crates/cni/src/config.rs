//! The plugin's configuration (stdin) and per-call arguments (CNI_ARGS, runtimeConfig), read and
//! validated without I/O. Every problem is a CNI error naming it: 7 for the configuration, 4 for
//! the environment.

use std::collections::HashMap;

use rscni_plugin::error::Error;
use rscni_plugin::types::{Dns, NetConf};
use serde_json::Value;
use weft_control::StoreUrl;
use weft_model::{validate, Mac, Network};

/// The `type` runtimes find this plugin by.
pub const PLUGIN_TYPE: &str = "weft";

/// What the configuration asks of weft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The weft network (`network`, else the configuration's `name`).
    pub network: String,
    /// The cluster store URL (`store`, else WEFT_STORE, else the embedded store).
    pub store: String,
    /// This host's name in the cluster (`host`, else WEFT_HOST, else the hostname).
    pub host: Option<String>,
    /// Passed through into results. weft's own names land later; until then, whatever the
    /// configuration says (often nothing).
    pub dns: Dns,
}

/// Values from the plugin's environment that stand in for absent configuration keys.
#[derive(Debug, Clone, Default)]
pub struct EnvDefaults {
    pub store: Option<String>,
    pub host: Option<String>,
}

impl EnvDefaults {
    pub fn from_env() -> EnvDefaults {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        EnvDefaults {
            store: get("WEFT_STORE"),
            host: get("WEFT_HOST"),
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidNetworkConfig(msg.into())
}

fn opt_string(custom: &HashMap<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match custom.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!("\"{key}\" must be a string, not {other}"))),
    }
}

/// Reads and checks the configuration.
pub fn parse(conf: &NetConf, env: &EnvDefaults) -> Result<PluginConfig, Error> {
    if conf.r#type != PLUGIN_TYPE {
        return Err(invalid(format!(
            "\"type\" is {:?}; this plugin is {PLUGIN_TYPE:?}",
            conf.r#type
        )));
    }
    conf.validate_name()?;
    if conf.ipam.is_some() {
        return Err(invalid(
            "weft allocates addresses itself (cluster-wide): remove \"ipam\" from the configuration",
        ));
    }
    let network = opt_string(&conf.custom, "network")?.unwrap_or_else(|| conf.name.clone());
    validate::name("network", &network).map_err(|e| invalid(e.to_string()))?;
    let store = opt_string(&conf.custom, "store")?
        .or_else(|| env.store.clone())
        .unwrap_or_else(|| "embedded".into());
    StoreUrl::parse(&store).map_err(|e| invalid(format!("\"store\": {e}")))?;
    let host = opt_string(&conf.custom, "host")?.or_else(|| env.host.clone());
    if let Some(h) = &host {
        validate::name("host", h).map_err(|e| invalid(format!("\"host\": {e}")))?;
    }
    let dns = conf.dns.clone().unwrap_or_default();
    for ns in &dns.nameservers {
        ns.parse::<std::net::IpAddr>()
            .map_err(|_| invalid(format!("dns nameserver {ns:?} is not an IP address")))?;
    }
    Ok(PluginConfig {
        network,
        store,
        host,
        dns,
    })
}

/// What one ADD asks for beyond the configuration: static addresses and MAC (CNI_ARGS `IP=`,
/// `MAC=`, or the `ips`/`mac` capabilities in runtimeConfig) and the container's name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Addresses as given: with a prefix length, or bare (the network's is added).
    pub ips: Vec<String>,
    pub mac: Option<String>,
    /// The container's name (Podman passes it as K8S_POD_NAME), when it is a valid weft name.
    pub name: Option<String>,
}

/// CNI_ARGS keys runtimes pass that weft has no use for.
const KNOWN_IGNORED: &[&str] = &[
    "IgnoreUnknown",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// Reads CNI_ARGS (`K=V;K=V`) and runtimeConfig.
pub fn wanted(conf: &NetConf, cni_args: Option<&str>) -> Result<Wanted, Error> {
    let mut w = Wanted::default();
    let mut pairs = Vec::new();
    for part in cni_args.unwrap_or("").split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            Error::InvalidEnvValue(format!("CNI_ARGS: {part:?} is not KEY=VALUE"))
        })?;
        pairs.push((k, v));
    }
    let ignore_unknown = pairs.iter().any(|(k, v)| {
        *k == "IgnoreUnknown" && matches!(v.to_ascii_lowercase().as_str(), "1" | "true")
    });
    for (k, v) in pairs {
        match k {
            "IP" => w
                .ips
                .extend(v.split(',').filter(|s| !s.is_empty()).map(String::from)),
            "MAC" => w.mac = Some(v.to_string()),
            "K8S_POD_NAME" => w.name = validate::name("container", v).ok().map(|_| v.to_string()),
            k if KNOWN_IGNORED.contains(&k) || ignore_unknown => {}
            k => {
                return Err(Error::InvalidEnvValue(format!(
                    "CNI_ARGS: unknown key {k:?} (add IgnoreUnknown=1 to pass it anyway)"
                )))
            }
        }
    }
    if let Some(rc) = &conf.runtime_config {
        match rc.custom.get("ips") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                for ip in a {
                    let s = ip.as_str().ok_or_else(|| {
                        invalid(format!("runtimeConfig.ips: {ip} is not a string"))
                    })?;
                    w.ips.push(s.to_string());
                }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "runtimeConfig.ips must be a list of addresses, not {other}"
                )))
            }
        }
        match rc.custom.get("mac") {
            None | Some(Value::Null) => {}
            Some(Value::String(m)) => w.mac = Some(m.clone()),
            Some(other) => {
                return Err(invalid(format!(
                    "runtimeConfig.mac must be a string, not {other}"
                )))
            }
        }
    }
    if let Some(m) = &w.mac {
        let mac: Mac = m
            .parse()
            .map_err(|e: String| invalid(format!("MAC {m:?}: {e}")))?;
        if !mac.is_unicast() {
            return Err(invalid(format!("MAC {m} is not a unicast address")));
        }
    }
    for ip in &w.ips {
        if ip.parse::<std::net::IpAddr>().is_err() {
            validate::parse_cidr(ip).map_err(|e| invalid(e.to_string()))?;
        }
    }
    Ok(w)
}

/// The static addresses as CIDRs in the network: a bare address gets the subnet's prefix length.
/// Refuses addresses outside the network (error 7), before anything is allocated.
pub fn static_cidrs(ips: &[String], net: &Network) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for ip in ips {
        let cidr = match ip.parse::<std::net::IpAddr>() {
            Ok(a @ std::net::IpAddr::V4(_)) => format!("{a}/{}", net.subnet4.prefix_len()),
            Ok(a @ std::net::IpAddr::V6(_)) => match net.subnet6 {
                Some(s6) => format!("{a}/{}", s6.prefix_len()),
                None => {
                    return Err(invalid(format!(
                        "network {} has no IPv6 subnet, cannot use {a}",
                        net.name
                    )))
                }
            },
            Err(_) => ip.clone(),
        };
        let parsed = validate::parse_cidr(&cidr).map_err(|e| invalid(e.to_string()))?;
        let subnet = match parsed {
            ipnet::IpNet::V4(_) => ipnet::IpNet::V4(net.subnet4),
            ipnet::IpNet::V6(_) => match net.subnet6 {
                Some(s) => ipnet::IpNet::V6(s),
                None => {
                    return Err(invalid(format!(
                        "network {} has no IPv6 subnet, cannot use {cidr}",
                        net.name
                    )))
                }
            },
        };
        weft_ipam::check_static(subnet, parsed).map_err(|e| invalid(format!("{e:#}")))?;
        out.push(cidr);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> NetConf {
        serde_json::from_str(json).unwrap()
    }

    /// A network record as the store holds it (optional fields at their defaults).
    fn net() -> Network {
        serde_json::from_value(serde_json::json!({
            "schema": weft_model::SCHEMA_VERSION,
            "name": "prod",
            "vni": 7,
            "subnet4": "10.9.0.0/24",
            "subnet6": "fd00:9::/64",
            "gateway4": "10.9.0.1",
            "gateway6": "fd00:9::1",
            "mtu": 1450,
        }))
        .unwrap()
    }

    #[test]
    fn defaults_and_options() {
        let c = parse(
            &conf(r#"{"cniVersion":"1.0.0","name":"prod","type":"weft"}"#),
            &EnvDefaults::default(),
        )
        .unwrap();
        assert_eq!(c.network, "prod");
        assert_eq!(c.store, "embedded");
        assert_eq!(c.host, None);
        let c = parse(
            &conf(
                r#"{"cniVersion":"0.4.0","name":"podnet","type":"weft","network":"prod",
                "store":"file:///tmp/s.db","host":"h2",
                "dns":{"nameservers":["10.9.0.1"]}}"#,
            ),
            &EnvDefaults {
                store: Some("etcd://x:1".into()),
                host: Some("other".into()),
            },
        )
        .unwrap();
        assert_eq!(
            (c.network.as_str(), c.store.as_str(), c.host.as_deref()),
            ("prod", "file:///tmp/s.db", Some("h2"))
        );
        assert_eq!(c.dns.nameservers, ["10.9.0.1"]);
        // The environment fills what the configuration leaves out.
        let c = parse(
            &conf(r#"{"cniVersion":"1.0.0","name":"prod","type":"weft"}"#),
            &EnvDefaults {
                store: Some("etcd://192.0.2.1:2379".into()),
                host: Some("h3".into()),
            },
        )
        .unwrap();
        assert_eq!(
            (c.store.as_str(), c.host.as_deref()),
            ("etcd://192.0.2.1:2379", Some("h3"))
        );
    }

    #[test]
    fn refuses_bad_configs_with_code_7() {
        let env = EnvDefaults::default();
        for (json, needle) in [
            (
                r#"{"name":"prod","type":"bridge"}"#,
                "this plugin is \"weft\"",
            ),
            (r#"{"name":"","type":"weft"}"#, "missing network name"),
            (r#"{"name":"Prod!","type":"weft"}"#, "invalid characters"),
            (r#"{"name":"Prod","type":"weft"}"#, "invalid network name"),
            (
                r#"{"name":"p","type":"weft","network":5}"#,
                "\"network\" must be a string",
            ),
            (
                r#"{"name":"p","type":"weft","store":"relative.db"}"#,
                "\"store\"",
            ),
            (r#"{"name":"p","type":"weft","host":"H 1"}"#, "\"host\""),
            (
                r#"{"name":"p","type":"weft","ipam":{"type":"host-local"}}"#,
                "ipam",
            ),
            (
                r#"{"name":"p","type":"weft","dns":{"nameservers":["x"]}}"#,
                "nameserver",
            ),
        ] {
            let e = parse(&conf(json), &env).unwrap_err();
            assert_eq!(u32::from(&e), 7, "{json}: {e}");
            assert!(e.to_string().contains(needle), "{json}: {e}");
        }
    }

    #[test]
    fn cni_args_and_runtime_config() {
        let c = conf(
            r#"{"name":"p","type":"weft","runtimeConfig":{"ips":["10.9.0.7/24"],"mac":"02:00:00:00:00:07"}}"#,
        );
        let w = wanted(&c, Some("IgnoreUnknown=1;K8S_POD_NAME=web_1;FOO=bar")).unwrap();
        assert_eq!(w.ips, ["10.9.0.7/24"]);
        assert_eq!(w.mac.as_deref(), Some("02:00:00:00:00:07"));
        assert_eq!(w.name.as_deref(), Some("web_1"));
        let plain = conf(r#"{"name":"p","type":"weft"}"#);
        let w = wanted(&plain, Some("IP=10.9.0.8,fd00:9::8;MAC=02:00:00:00:00:08")).unwrap();
        assert_eq!(w.ips, ["10.9.0.8", "fd00:9::8"]);
        // Names weft cannot use are left out rather than failing the container.
        assert_eq!(
            wanted(&plain, Some("K8S_POD_NAME=Web.1")).unwrap().name,
            None
        );
        assert_eq!(wanted(&plain, None).unwrap(), Wanted::default());
    }

    #[test]
    fn bad_args_name_the_problem() {
        let plain = conf(r#"{"name":"p","type":"weft"}"#);
        let e = wanted(&plain, Some("FOO=bar")).unwrap_err();
        assert_eq!(u32::from(&e), 4);
        assert!(e.to_string().contains("FOO"), "{e}");
        assert_eq!(u32::from(&wanted(&plain, Some("novalue")).unwrap_err()), 4);
        assert_eq!(u32::from(&wanted(&plain, Some("MAC=zz")).unwrap_err()), 7);
        assert_eq!(
            u32::from(&wanted(&plain, Some("MAC=01:00:5e:00:00:01")).unwrap_err()),
            7
        );
        assert_eq!(
            u32::from(&wanted(&plain, Some("IP=10.9.0.300")).unwrap_err()),
            7
        );
        let c = conf(r#"{"name":"p","type":"weft","runtimeConfig":{"ips":"10.9.0.7"}}"#);
        assert_eq!(u32::from(&wanted(&c, None).unwrap_err()), 7);
    }

    #[test]
    fn static_addresses_get_the_network_prefix() {
        let n = net();
        assert_eq!(
            static_cidrs(&["10.9.0.5".into(), "fd00:9::5".into()], &n).unwrap(),
            ["10.9.0.5/24", "fd00:9::5/64"]
        );
        assert_eq!(
            static_cidrs(&["10.9.0.6/24".into()], &n).unwrap(),
            ["10.9.0.6/24"]
        );
        for bad in ["10.8.0.5", "10.9.0.5/16", "10.9.0.1"] {
            let e = static_cidrs(&[bad.into()], &n).unwrap_err();
            assert_eq!(u32::from(&e), 7, "{bad}: {e}");
        }
        let mut v4only = n.clone();
        v4only.subnet6 = None;
        assert_eq!(
            u32::from(&static_cidrs(&["fd00:9::5".into()], &v4only).unwrap_err()),
            7
        );
    }
}
