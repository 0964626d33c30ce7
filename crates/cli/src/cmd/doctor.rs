use anyhow::Result;

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// This host's weft name (default: the hostname).
    #[arg(long, env = "WEFT_HOST")]
    host: Option<String>,
    /// Show only problems (warnings and failures).
    #[arg(long, short)]
    quiet: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(store_url: &str, args: Args) -> Result<i32> {
    super::require_root("weft doctor")?;
    let host = weft_control::hosts::local_host_id(args.host.as_deref())?;
    let store = weft_control::open_store(store_url).await?;
    let r = weft_control::doctor::doctor(store.as_ref(), store_url, &host).await?;
    let code = weft_control::doctor::exit_code(&r.findings);
    if args.json {
        output::json(&r)?;
        return Ok(code);
    }
    println!(
        "host {} against store {} (revision {})",
        r.host, r.store, r.revision
    );
    println!();
    let rows: Vec<Vec<String>> = r
        .findings
        .iter()
        .filter(|f| !args.quiet || f.level != weft_control::doctor::Level::Ok)
        .map(|f| {
            let mut msg = f.message.clone();
            if let Some(h) = &f.hint {
                msg += &format!("\n  → {h}");
            }
            vec![f.level.to_string(), f.subject.clone(), msg]
        })
        .collect();
    output::table(&["", "WHAT", "FINDING"], &rows);
    let fails = r
        .findings
        .iter()
        .filter(|f| f.level == weft_control::doctor::Level::Fail)
        .count();
    let warns = r
        .findings
        .iter()
        .filter(|f| f.level == weft_control::doctor::Level::Warn)
        .count();
    println!();
    println!(
        "{}",
        match (fails, warns) {
            (0, 0) => "all good".to_string(),
            (0, w) => format!("{w} warning(s)"),
            (f, w) => format!("{f} problem(s), {w} warning(s)"),
        }
    );
    Ok(code)
}
