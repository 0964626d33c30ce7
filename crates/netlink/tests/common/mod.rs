//! Shared fixtures: namespaces that clean up after themselves, and `ip` /
//! `bridge` runners used only to cross-check what the library did.

#![allow(dead_code)]

use std::process::Command;

use weft_netlink::{create_named_netns, delete_named_netns, Netns};

/// Creates named namespaces `wnl<4 hex>-<suffix>` and deletes them when
/// dropped, also when the test panics. Touches nothing else.
pub struct NsGuard {
    prefix: String,
    names: Vec<String>,
}

impl NsGuard {
    pub fn new() -> NsGuard {
        NsGuard {
            prefix: format!("wnl{:04x}", rand::random::<u16>()),
            names: Vec::new(),
        }
    }

    /// Full name of the namespace with `suffix`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{}", self.prefix, suffix)
    }

    /// Creates `wnl<hex>-<suffix>` and returns it open.
    pub fn create(&mut self, suffix: &str) -> Netns {
        let name = self.name(suffix);
        let ns = create_named_netns(&name).unwrap_or_else(|e| panic!("{e}"));
        self.names.push(name);
        ns
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        for n in &self.names {
            if let Err(e) = delete_named_netns(n) {
                eprintln!("cleanup of {n}: {e}");
            }
        }
    }
}

fn run(program: &str, ns: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} -n {ns} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -n NS args…`, stdout; panics on failure.
pub fn ip(ns: &str, args: &[&str]) -> String {
    run("ip", ns, args)
}

/// `bridge -n NS args…`, stdout; panics on failure.
pub fn bridge(ns: &str, args: &[&str]) -> String {
    run("bridge", ns, args)
}
