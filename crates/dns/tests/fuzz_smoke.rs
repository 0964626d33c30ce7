//! The query path's fuzz body (`weft_dns::fuzz::query`) on stable, in CI: random and mutated
//! queries (seeded, so a failure reproduces). Any panic is a bug; the input is printed in hex.
//! `WEFT_FUZZ_ITERS` scales the run (default 1: 20,000 random inputs and 8 × 10,000 mutated seeds).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weft_dns::fuzz;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn scale() -> usize {
    std::env::var("WEFT_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn run(input: &[u8]) {
    if std::panic::catch_unwind(|| fuzz::query(input)).is_err() {
        panic!("the DNS query path failed on input {}", hex(input));
    }
}

#[test]
fn random_queries() {
    let mut rng = StdRng::seed_from_u64(0x646e_7331);
    for _ in 0..20_000 * scale() {
        let len = match rng.gen_range(0..3) {
            0 => rng.gen_range(0..16),
            1 => rng.gen_range(0..64),
            _ => rng.gen_range(0..600),
        };
        let buf: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        run(&buf);
    }
}

#[test]
fn mutated_queries() {
    let mut rng = StdRng::seed_from_u64(0x646e_7332);
    for seed in fuzz::seeds() {
        run(&seed);
        for n in 0..seed.len() {
            run(&seed[..n]);
        }
        for _ in 0..10_000 * scale() {
            let mut b = seed.clone();
            for _ in 0..rng.gen_range(1..=4) {
                match rng.gen_range(0..5) {
                    0 if !b.is_empty() => {
                        let i = rng.gen_range(0..b.len());
                        b[i] ^= 1 << rng.gen_range(0..8);
                    }
                    1 if !b.is_empty() => {
                        let i = rng.gen_range(0..b.len());
                        b[i] = [0, 1, 0x3f, 0x40, 0xc0, 0xff][rng.gen_range(0..6)];
                    }
                    2 => b.truncate(rng.gen_range(0..=b.len())),
                    3 => b.extend((0..rng.gen_range(1..32)).map(|_| rng.gen::<u8>())),
                    _ if b.len() > 12 => {
                        // Counts in the header that lie about the sections.
                        let i = 4 + 2 * rng.gen_range(0..4);
                        b[i + 1] = rng.gen();
                    }
                    _ => {}
                }
            }
            run(&b);
        }
    }
}
