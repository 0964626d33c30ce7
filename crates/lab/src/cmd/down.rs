//! `weft lab down`: removes everything of a prefix (see [`crate::teardown`]). Idempotent.

use anyhow::Result;

use crate::progress::Progress;
use crate::teardown;
use crate::PrefixArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub prefix: PrefixArg,
}

pub async fn run(args: Args) -> Result<()> {
    let lab = args.prefix.lab()?;
    let p = Progress::new(lab.prefix.as_str());
    let l = lab.clone();
    let report = tokio::task::spawn_blocking(move || teardown::down(&l)).await??;
    if report.is_empty() {
        p.step("nothing to remove");
    } else {
        p.step(format!(
            "down: stopped {} process(es), deleted {} namespace(s){}",
            report.processes,
            report.namespaces,
            report
                .removed
                .iter()
                .map(|d| format!(", removed {}", d.display()))
                .collect::<String>()
        ));
    }
    Ok(())
}
