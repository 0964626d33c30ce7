//! weft's CNI plugin: runtimes (Podman, containerd, CRI-O…) run it with `"type": "weft"` to put
//! their containers on weft networks. The CNI plumbing (environment, stdin, version negotiation,
//! result layouts per version, error JSON) is rscni-plugin's; weft's part is split by concern:
//! [`config`], [`result`], [`errors`] and [`labels`] are pure, [`ops`] has one file per operation.

pub mod config;
pub mod errors;
pub mod install;
pub mod labels;
pub mod ops;
pub mod result;

use rscni_plugin::cni::{Cni, Plugin};
use rscni_plugin::error::Error;
use rscni_plugin::types::{Args, CNIResult};

use config::EnvDefaults;

pub const ABOUT: &str =
    "weft-cni: puts containers on weft networks (CNI plugin, \"type\": \"weft\")";

struct Weft;

/// Each call runs on a runtime of its own: the plugin is one short process per operation.
fn block_on<T>(f: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::IOFailure(format!("starting the runtime: {e}")))?
        .block_on(f)
}

fn cfg(args: &Args) -> Result<config::PluginConfig, Error> {
    config::parse(args.config(), &EnvDefaults::from_env())
}

impl Cni for Weft {
    fn add(&self, args: Args) -> Result<CNIResult, Error> {
        let c = cfg(&args)?;
        block_on(ops::add::run(&args, c))
    }

    fn del(&self, args: Args) -> Result<(), Error> {
        let c = cfg(&args)?;
        block_on(ops::del::run(&args, c))
    }

    fn check(&self, args: Args) -> Result<(), Error> {
        let c = cfg(&args)?;
        block_on(ops::check::run(&args, c))
    }

    fn status(&self, args: Args) -> Result<(), Error> {
        let c = cfg(&args)?;
        block_on(ops::status::run(c))
    }

    fn gc(&self, args: Args) -> Result<(), Error> {
        let c = cfg(&args)?;
        block_on(ops::gc::run(args.config(), c))
    }
}

/// rscni reads stdin as a string, calling bytes that are not UTF-8 an I/O failure (5); they are a
/// configuration that cannot be decoded (6). So stdin is read here first, and handed on unchanged
/// through a pipe when it is text.
fn stdin_must_be_utf8() -> Result<(), Error> {
    use std::io::{Read, Write};
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| Error::IOFailure(format!("reading stdin: {e}")))?;
    if let Err(e) = std::str::from_utf8(&buf) {
        return Err(Error::FailedToDecode(format!(
            "the configuration on stdin is not UTF-8 text: {e}"
        )));
    }
    let io = |e: nix::Error| Error::IOFailure(format!("passing stdin on: {e}"));
    let (r, w) = nix::unistd::pipe().map_err(io)?;
    nix::unistd::dup2_stdin(&r).map_err(io)?;
    drop(r);
    // A writer thread: a configuration larger than the pipe's buffer must not block us.
    std::thread::spawn(move || {
        let mut w = std::fs::File::from(w);
        let _ = w.write_all(&buf);
    });
    Ok(())
}

/// The plugin's whole run: answers on stdout as CNI says; returns the exit code.
pub fn main() -> i32 {
    let arg = std::env::args().nth(1);
    if matches!(arg.as_deref(), Some("--help" | "-h" | "--version" | "-V")) {
        println!(
            "{ABOUT} {}\n\n\
             Run by container runtimes with CNI_COMMAND (ADD, DEL, CHECK, STATUS, GC, VERSION) and\n\
             the other CNI_* variables set, and the network configuration on stdin:\n  \
             {{\"cniVersion\": \"1.0.0\", \"name\": \"prod\", \"type\": \"weft\",\n   \
             \"network\": \"prod\", \"store\": \"embedded\", \"host\": \"h1\"}}\n\
             Speaks CNI 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0. Install with `weft install cni`.",
            env!("CARGO_PKG_VERSION")
        );
        return 0;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    if std::env::var_os("CNI_COMMAND").is_some() {
        if let Err(e) = stdin_must_be_utf8() {
            let out = rscni_types::types::ErrorResult::new(
                rscni_types::version::SpecVersion::CURRENT,
                &e,
            );
            println!("{}", serde_json::to_string(&out).unwrap_or_default());
            return 1;
        }
    }
    match Plugin::default().msg(ABOUT).run(&Weft) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use rscni_types::types::{Cmd, NetConf};
    use rscni_types::version::PluginInfo;

    /// The versions weft answers, as the plugin negotiates them (its `Plugin::default()`).
    #[test]
    fn version_negotiation() {
        let info = PluginInfo::default();
        let conf = |v: &str| -> NetConf {
            serde_json::from_value(
                serde_json::json!({"cniVersion": v, "name": "p", "type": "weft"}),
            )
            .unwrap()
        };
        for v in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            assert_eq!(info.negotiate(&conf(v), Cmd::Add).unwrap().to_string(), v);
            assert!(info.negotiate(&conf(v), Cmd::Del).is_ok());
        }
        // Podman 4.3 writes 0.4.0: CHECK exists there, STATUS and GC only from 1.1.0.
        assert!(info.negotiate(&conf("0.4.0"), Cmd::Check).is_ok());
        for (v, cmd) in [
            ("0.3.1", Cmd::Check),
            ("1.0.0", Cmd::Status),
            ("1.0.0", Cmd::Gc),
            ("9.0.0", Cmd::Add),
            ("0.2.0", Cmd::Add),
        ] {
            let e = info.negotiate(&conf(v), cmd).unwrap_err();
            assert_eq!(u32::from(&e), 1, "{v}: {e}");
        }
        assert_eq!(
            u32::from(&info.negotiate(&conf("a.b"), Cmd::Add).unwrap_err()),
            6
        );
    }
}
