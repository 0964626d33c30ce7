//! `weft install cni`: the plugin lands as `weft` in each plugin directory, the example
//! configuration list in the configuration directory; a second run changes nothing; bad input
//! writes nothing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{out_text, weft};
use serde_json::Value;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("weft-install-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn install(t: &TempDir, extra: &[&str]) -> std::process::Output {
    let (a, b, c) = (t.0.join("opt-bin"), t.0.join("lib-cni"), t.0.join("net.d"));
    let mut args = vec![
        "--store",
        "file:///run/weft/x.db",
        "install",
        "cni",
        "--bin-dir",
        a.to_str().unwrap(),
        "--bin-dir",
        b.to_str().unwrap(),
        "--conf-dir",
        c.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    weft(&args)
}

#[test]
fn installs_plugin_and_example_once() {
    let t = TempDir::new();
    let o = install(&t, &["--network", "prod", "--host", "h1", "--json"]);
    assert!(o.status.success(), "{}", out_text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["binaries"][0]["action"], "installed");
    assert_eq!(r["config"]["action"], "installed");
    for dir in ["opt-bin", "lib-cni"] {
        let p = t.0.join(dir).join("weft");
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755, "{}", p.display());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(common::cni::WEFT_CNI).unwrap()
        );
    }
    let conf: Value =
        serde_json::from_slice(&std::fs::read(t.0.join("net.d/50-weft-prod.conflist")).unwrap())
            .unwrap();
    assert_eq!(conf["name"], "prod");
    assert_eq!(conf["plugins"][0]["type"], "weft");
    assert_eq!(conf["plugins"][0]["host"], "h1");
    assert_eq!(conf["plugins"][0]["store"], "file:///run/weft/x.db");
    assert_eq!(conf["plugins"][1]["type"], "portmap");

    // The plugin installed answers as a runtime asks.
    let v = std::process::Command::new(t.0.join("opt-bin/weft"))
        .env("CNI_COMMAND", "VERSION")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("\"1.1.0\""),
        "{}",
        out_text(&v)
    );

    // Again: nothing to do.
    let o = install(&t, &["--network", "prod", "--host", "h1", "--json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        r["binaries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["action"] == "unchanged"),
        "{r}"
    );
    assert_eq!(r["config"]["action"], "unchanged");
    // A stale binary is replaced.
    std::fs::write(t.0.join("lib-cni/weft"), b"old").unwrap();
    let o = install(&t, &["--network", "prod", "--host", "h1"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("updated") && l.ends_with("lib-cni/weft")),
        "{text}"
    );
}

#[test]
fn bad_input_writes_nothing() {
    let t = TempDir::new();
    for (extra, want) in [
        (vec!["--network", "Bad!"], "invalid network name"),
        (vec!["--host", "H 1"], "invalid host name"),
        (
            vec!["--from", "/nonexistent/weft-cni"],
            "/nonexistent/weft-cni",
        ),
    ] {
        let o = install(&t, &extra);
        assert!(!o.status.success(), "{extra:?}: {}", out_text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert_eq!(
            std::fs::read_dir(&t.0).unwrap().count(),
            0,
            "{extra:?} wrote something"
        );
    }
}
