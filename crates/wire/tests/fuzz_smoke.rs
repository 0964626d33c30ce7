//! The fuzz targets of `weft_wire::fuzz`, on stable, in CI: a few hundred thousand random and
//! mutated inputs (seeded, so a failure reproduces) through every decoder. Any panic is a bug:
//! the failing input is printed in hex.
//!
//! `WEFT_FUZZ_ITERS` scales the run (default 1: 40,000 random inputs through all ten targets and
//! about 180,000 mutated seeds through their own, some 580,000 decoder runs).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_wire::fuzz;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn scale() -> usize {
    std::env::var("WEFT_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn run(name: &str, f: fn(&[u8]), input: &[u8]) {
    if std::panic::catch_unwind(|| f(input)).is_err() {
        panic!("fuzz target {name} failed on input {}", hex(input));
    }
}

/// One mutation of `seed`: flip bits, set bytes to interesting values, truncate, extend, or
/// duplicate a span, mostly within the first 80 bytes, where the headers are.
fn mutate(rng: &mut StdRng, seed: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(seed);
    let rounds = rng.gen_range(1..=4);
    for _ in 0..rounds {
        if out.is_empty() {
            out.push(rng.gen());
            continue;
        }
        let hot = out.len().min(80);
        let at = if rng.gen_bool(0.85) {
            rng.gen_range(0..hot)
        } else {
            rng.gen_range(0..out.len())
        };
        match rng.gen_range(0..8) {
            0 | 1 => out[at] ^= 1 << rng.gen_range(0..8),
            2 => out[at] = [0, 1, 0x7f, 0x80, 0xff, 5, 6, 0x40][rng.gen_range(0..8)],
            3 => out[at] = rng.gen(),
            4 => out.truncate(at),
            5 => {
                let n = rng.gen_range(1..64);
                out.extend((0..n).map(|_| rng.gen::<u8>()));
            }
            6 => {
                let end = (at + rng.gen_range(1..16)).min(out.len());
                let span = out[at..end].to_vec();
                let to = rng.gen_range(0..=out.len());
                out.splice(to..to, span);
            }
            _ => {
                if at + 1 < out.len() {
                    let v: u16 = [0, 1, 0xffff, 0x8000, 20, 40, 1448][rng.gen_range(0..7)];
                    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
}

#[test]
fn random_inputs_through_every_decoder() {
    let mut rng = StdRng::seed_from_u64(0x7765_6674);
    let mut buf = Vec::new();
    for _ in 0..40_000 * scale() {
        let len = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..16),
            1 => rng.gen_range(0..64),
            2 => rng.gen_range(0..200),
            _ => rng.gen_range(0..1600),
        };
        buf.clear();
        buf.extend((0..len).map(|_| rng.gen::<u8>()));
        for (name, f) in fuzz::TARGETS {
            run(name, *f, &buf);
        }
    }
}

#[test]
fn mutated_seeds_through_their_decoder() {
    let mut rng = StdRng::seed_from_u64(0x6d75_7461);
    let seeds = fuzz::seeds();
    let mut buf = Vec::new();
    let per_seed = 12_000 * scale();
    for (name, seed) in &seeds {
        let f = fuzz::TARGETS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
            .expect("seed names a target");
        run(name, f, seed);
        for _ in 0..per_seed {
            mutate(&mut rng, seed, &mut buf);
            run(name, f, &buf);
        }
    }
}

#[test]
fn edge_lengths_through_every_decoder() {
    // Every prefix of every seed: the truncation boundaries.
    for (_, seed) in fuzz::seeds() {
        for n in 0..=seed.len().min(200) {
            fuzz::all(&seed[..n]);
        }
    }
}

/// Writes the seeds as a libFuzzer corpus into `fuzz/corpus/<target>/`:
/// `cargo test -p weft-wire --test fuzz_smoke -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (i, (name, bytes)) in fuzz::seeds().into_iter().enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{i}")), bytes).unwrap();
    }
}

/// The MTU arithmetic of the model (default network MTUs) matches the framing defined here.
#[test]
fn model_overheads_match_the_framing() {
    assert_eq!(
        weft_model::VXLAN_OVERHEAD_V4 as usize,
        weft_wire::vxlan::OVERHEAD_V4
    );
    assert_eq!(
        weft_model::ENCRYPTED_OVERHEAD_V4 as usize,
        weft_wire::secure::OVERHEAD_V4
    );
    assert_eq!(
        weft_model::GRE_OVERHEAD_V4 as usize,
        weft_wire::gre::OVERHEAD_V4
    );
}
