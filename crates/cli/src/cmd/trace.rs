use anyhow::Result;

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// One end: a container name or alias, its netns (name or path) or an address.
    a: String,
    /// The other end, named the same ways.
    b: String,
    /// Also send pings from A to each of B's addresses (A must live on this host).
    #[arg(long)]
    probe: bool,
    /// This host's weft name (default: the hostname).
    #[arg(long, env = "WEFT_HOST")]
    host: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Out {
    #[serde(flatten)]
    trace: weft_control::trace::Trace,
    #[serde(skip_serializing_if = "Option::is_none")]
    probes: Option<Vec<weft_control::trace::Probe>>,
}

pub async fn run(store_url: &str, args: Args) -> Result<i32> {
    let host = weft_control::hosts::local_host_id(args.host.as_deref())?;
    let store = weft_control::open_store(store_url).await?;
    let t = weft_control::trace::trace(store.as_ref(), &host, &args.a, &args.b).await?;
    let probes = if args.probe {
        if !args.json {
            let addrs: Vec<&str> =
                t.b.addresses
                    .iter()
                    .map(|a| a.split('/').next().unwrap_or(a))
                    .collect();
            eprintln!("probing {} from {}…", addrs.join(", "), t.a.query);
        }
        Some(weft_control::trace::probe(&t, &host, 3).await?)
    } else {
        None
    };
    let mut code = weft_control::doctor::exit_code(&t.findings);
    if probes.iter().flatten().any(|p| p.received == 0) {
        code = 1;
    }
    let out = Out { trace: t, probes };
    if args.json {
        output::json(&out)?;
        return Ok(code);
    }
    let t = &out.trace;
    match &t.network {
        Some(n) => println!("{} → {} on network {n}", t.a.query, t.b.query),
        None => println!("{} → {}", t.a.query, t.b.query),
    }
    for (i, h) in t.hops.iter().enumerate() {
        println!("  {}. {h}", i + 1);
    }
    println!();
    let rows: Vec<Vec<String>> = t
        .findings
        .iter()
        .map(|f| {
            let mut msg = f.message.clone();
            if let Some(h) = &f.hint {
                msg += &format!("\n  → {h}");
            }
            vec![f.level.to_string(), f.subject.clone(), msg]
        })
        .collect();
    output::table(&["", "WHAT", "FINDING"], &rows);
    for p in out.probes.iter().flatten() {
        println!("ping {}: {}/{} answered", p.target, p.received, p.sent);
    }
    Ok(code)
}
