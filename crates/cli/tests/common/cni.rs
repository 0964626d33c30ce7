//! Driving weft's CNI plugin as a runtime does: CNI_* in the environment (nothing else of ours), the
//! configuration on stdin, run inside a lab host's namespace; and snapshots of what it may change.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{out_text, Lab};

pub const WEFT_CNI: &str = env!("CARGO_BIN_EXE_weft-cni");

/// One plugin run.
#[derive(Debug)]
pub struct Answer {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("plugin stdout is not JSON ({e}): {self:?}"))
    }

    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "plugin failed: {self:?}");
        self
    }

    /// The spec's error: non-zero exit and `{"code": N, "msg": …}` on stdout. Returns N.
    pub fn error_code(&self) -> u64 {
        assert_ne!(
            self.code,
            Some(0),
            "plugin succeeded, an error was expected: {self:?}"
        );
        assert_eq!(self.code, Some(1), "plugin did not exit cleanly: {self:?}");
        assert!(
            !self.stderr.contains("panicked"),
            "plugin panicked: {self:?}"
        );
        let v = self.json();
        assert!(v["msg"].is_string(), "error without msg: {self:?}");
        v["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("error without code: {self:?}"))
    }

    pub fn expect_error(&self, code: u64) -> String {
        assert_eq!(self.error_code(), code, "{self:?}");
        self.json()["details"].as_str().unwrap_or("").to_string()
    }
}

/// The CNI_* environment of one call.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
}

impl Env {
    pub fn new(command: &str, container_id: &str, netns: &str) -> Env {
        Env {
            command: command.into(),
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            args: String::new(),
        }
    }

    pub fn cmd(&self, command: &str) -> Env {
        Env {
            command: command.into(),
            ..self.clone()
        }
    }
}

impl Lab {
    pub fn store_url(&self) -> String {
        let st: Value = serde_json::from_slice(
            &std::fs::read(format!("/run/weft/lab/{}/state.json", self.prefix)).expect("lab state"),
        )
        .expect("lab state json");
        st["store_url"].as_str().expect("store_url").to_string()
    }

    /// A plugin configuration for `host` of this lab, with `extra` keys merged in.
    pub fn cni_conf(&self, host: &str, version: &str, network: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version,
            "name": network,
            "type": "weft",
            "store": self.store_url(),
            "host": host,
        });
        if let Value::Object(m) = extra {
            for (k, v) in m {
                c[k] = v;
            }
        }
        c
    }

    /// Runs the plugin in `host`'s namespace with exactly the runtime's environment.
    pub fn cni_raw(&self, host: &str, env: &[(&str, &str)], stdin: &[u8]) -> Answer {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns(host)))
            .arg(WEFT_CNI)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("running weft-cni");
        // A plugin may refuse before reading all of stdin; that is not the test's failure.
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let o = child.wait_with_output().expect("weft-cni output");
        Answer {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn cni(&self, host: &str, env: &Env, conf: &Value) -> Answer {
        self.cni_raw(
            host,
            &[
                ("CNI_COMMAND", env.command.as_str()),
                ("CNI_CONTAINERID", env.container_id.as_str()),
                ("CNI_NETNS", env.netns.as_str()),
                ("CNI_IFNAME", env.ifname.as_str()),
                ("CNI_ARGS", env.args.as_str()),
                ("CNI_PATH", "/usr/lib/cni"),
            ],
            conf.to_string().as_bytes(),
        )
    }

    /// A bare namespace `P-c-NAME` for a container the test drives the plugin for (the lab's
    /// teardown deletes it with the rest); returns its path.
    pub fn bare_netns(&self, name: &str) -> String {
        let ns = self.netns(name);
        let o = Command::new("ip")
            .args(["netns", "add", &ns])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out_text(&o));
        let o = Command::new("ip")
            .args(["-n", &ns, "link", "set", "lo", "up"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out_text(&o));
        format!("/run/netns/{ns}")
    }

    /// Interface names in a namespace of the lab (host or container).
    pub fn links(&self, name: &str) -> Vec<String> {
        let o = Command::new("ip")
            .args(["-n", &self.netns(name), "-o", "link", "show"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out_text(&o));
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect();
        v.sort();
        v
    }

    /// Every record of the network as `weft network inspect` shows it (endpoints, allocations).
    pub fn records(&self, network: &str) -> Value {
        self.inspect(network)
    }
}
