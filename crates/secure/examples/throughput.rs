//! Seal/open throughput of 1400-byte packets through `Peer::encrypt` / `Peer::receive` (the
//! whole per-packet path: header, counter, AEAD, replay window), one core, for both suites,
//! and the handshake rate.
//!
//! `cargo run --release -p weft-secure --example throughput [packets]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use weft_secure::{Config, KeyPair, Outcome, Peer, PresharedKey, Received, Suite, WallClock};

const PACKET: usize = 1400;

fn pair(suite: Suite, t0: Instant) -> (Peer, Peer) {
    let wall = WallClock {
        unix: Duration::from_secs(1_700_000_000),
        at: t0,
    };
    let ka = KeyPair::generate().expect("rng");
    let kb = KeyPair::generate().expect("rng");
    let psk = PresharedKey::from_bytes([9; 32]);
    let config = |index| Config {
        suite,
        ..Config::new(index, 1, wall)
    };
    let a = Peer::new(config(1), &ka, *kb.public(), psk.clone()).expect("peer");
    let b = Peer::new(config(2), &kb, *ka.public(), psk).expect("peer");
    (a, b)
}

fn handshake(a: &mut Peer, b: &mut Peer, now: Instant) {
    let (mut m1, mut m2, mut m3, mut out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    assert_eq!(a.encrypt(&[], &mut m1, now).unwrap(), Outcome::Handshake);
    assert_eq!(b.receive(&m1, &mut m2, now), Ok(Received::Reply));
    assert_eq!(a.receive(&m2, &mut m3, now), Ok(Received::Reply));
    assert_eq!(b.receive(&m3, &mut out, now), Ok(Received::Nothing));
}

fn main() {
    let packets: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(500_000);
    println!("{packets} packets of {PACKET} bytes, one core");
    for suite in [Suite::AesGcm, Suite::ChaChaPoly] {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(suite, t0);
        handshake(&mut a, &mut b, t0);
        let plain = vec![0xa5u8; PACKET];
        // Seal into a ring of buffers, open them all, repeat, so the open side sees real
        // ciphertexts without holding every packet in memory.
        const RING: usize = 4096;
        let mut sealed: Vec<Vec<u8>> = (0..RING).map(|_| Vec::with_capacity(2048)).collect();
        let mut opened = Vec::with_capacity(2048);
        let (mut seal_time, mut open_time) = (Duration::ZERO, Duration::ZERO);
        let mut done = 0;
        while done < packets {
            let batch = RING.min(packets - done);
            let now = t0;
            let start = Instant::now();
            for buf in sealed.iter_mut().take(batch) {
                let outcome = a.encrypt(black_box(&plain), buf, now).unwrap();
                debug_assert_eq!(outcome, Outcome::Send);
            }
            seal_time += start.elapsed();
            let start = Instant::now();
            for buf in sealed.iter().take(batch) {
                let r = b.receive(black_box(buf), &mut opened, now);
                debug_assert_eq!(r, Ok(Received::Data));
                black_box(&opened);
            }
            open_time += start.elapsed();
            done += batch;
        }
        assert_eq!(b.state().rx_packets as usize, packets + 1);
        let rate = |d: Duration| {
            let bytes = (packets * PACKET) as f64;
            format!(
                "{:6.2} GB/s ({:5.2} Gbit/s, {:5.2} Mpps)",
                bytes / d.as_secs_f64() / 1e9,
                bytes * 8.0 / d.as_secs_f64() / 1e9,
                packets as f64 / d.as_secs_f64() / 1e6
            )
        };
        println!(
            "{suite:?}: seal {}  open {}",
            rate(seal_time),
            rate(open_time)
        );
    }
    // Handshakes per second (both sides' work, one core).
    let t0 = Instant::now();
    let n = 200;
    let start = Instant::now();
    for _ in 0..n {
        let (mut a, mut b) = pair(Suite::AesGcm, t0);
        handshake(&mut a, &mut b, t0);
    }
    let per = start.elapsed() / n;
    println!("full handshake (both sides, incl. 2 key pairs): {per:?}");
}
