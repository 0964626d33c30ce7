//! Table and JSON output.

use serde::Serialize;

pub fn json<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Aligned columns under a header (shared with the lab's listings).
pub use weft_lab::table::print as table;
