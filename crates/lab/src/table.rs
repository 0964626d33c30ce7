//! Aligned text tables, for the lab's and the CLI's listings and the benchmarks' reports.

/// The table as lines: a header, then one line per row, columns padded to their widest cell.
pub fn lines(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:w$}", c, w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.to_vec())];
    for r in rows {
        out.push(line(r.iter().map(|s| s.as_str()).collect()));
    }
    out
}

/// Prints the table to stdout.
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    for l in lines(header, rows) {
        println!("{l}");
    }
}
