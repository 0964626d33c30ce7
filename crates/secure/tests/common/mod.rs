//! Helpers shared by the integration tests: two peers over byte buffers, a clock, a lossless
//! reordering "network".
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use weft_secure::{
    Action, Config, KeyPair, Limits, Outcome, Peer, PresharedKey, Received, Suite, WallClock,
};

pub const NETWORK: u32 = 4242;

pub fn wall(t0: Instant) -> WallClock {
    WallClock {
        unix: Duration::from_secs(1_700_000_000),
        at: t0,
    }
}

pub fn config(index: u32, t0: Instant, limits: Limits) -> Config {
    Config {
        limits,
        ..Config::new(index, NETWORK, wall(t0))
    }
}

pub fn psk(byte: u8) -> PresharedKey {
    PresharedKey::from_bytes([byte; 32])
}

/// Two hosts' key pairs, `hi` having the greater public key (the simultaneous-initiation
/// winner).
pub fn ordered_keys() -> (KeyPair, KeyPair) {
    let a = KeyPair::generate().unwrap();
    let b = KeyPair::generate().unwrap();
    if a.public() > b.public() {
        (a, b)
    } else {
        (b, a)
    }
}

pub struct Pair {
    pub a: Peer,
    pub b: Peer,
    pub ka: KeyPair,
    pub kb: KeyPair,
    pub t0: Instant,
}

pub fn pair_with(limits: Limits, suite_a: Suite, suite_b: Suite, psk_a: u8, psk_b: u8) -> Pair {
    let t0 = Instant::now();
    let ka = KeyPair::generate().unwrap();
    let kb = KeyPair::generate().unwrap();
    let a = Peer::new(
        Config {
            suite: suite_a,
            ..config(1, t0, limits)
        },
        &ka,
        *kb.public(),
        psk(psk_a),
    )
    .unwrap();
    let b = Peer::new(
        Config {
            suite: suite_b,
            ..config(2, t0, limits)
        },
        &kb,
        *ka.public(),
        psk(psk_b),
    )
    .unwrap();
    Pair { a, b, ka, kb, t0 }
}

pub fn pair() -> Pair {
    pair_with(Limits::default(), Suite::AesGcm, Suite::AesGcm, 7, 7)
}

/// Drives a first handshake from `a` to `b` at `now` (no data queued) and checks both ends can
/// send afterwards.
pub fn establish(a: &mut Peer, b: &mut Peer, now: Instant) {
    let mut init = Vec::new();
    assert_eq!(a.encrypt(&[], &mut init, now).unwrap(), Outcome::Handshake);
    let mut resp = Vec::new();
    assert_eq!(b.receive(&init, &mut resp, now).unwrap(), Received::Reply);
    let mut keepalive = Vec::new();
    assert_eq!(
        a.receive(&resp, &mut keepalive, now).unwrap(),
        Received::Reply
    );
    let mut out = Vec::new();
    assert_eq!(
        b.receive(&keepalive, &mut out, now).unwrap(),
        Received::Nothing
    );
    assert!(a.can_send(now) && b.can_send(now));
}

/// Encrypts and expects a transport message.
pub fn seal(p: &mut Peer, plain: &[u8], now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    assert_eq!(p.encrypt(plain, &mut out, now).unwrap(), Outcome::Send);
    out
}

/// Receives and expects data.
pub fn open(p: &mut Peer, packet: &[u8], now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    assert_eq!(p.receive(packet, &mut out, now), Ok(Received::Data));
    out
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One direction of a network that delays each packet by a random time (so it reorders) but
/// never loses one.
#[derive(Default)]
pub struct Link {
    pub in_flight: VecDeque<(Instant, Vec<u8>)>,
}

impl Link {
    pub fn send(&mut self, at: Instant, packet: Vec<u8>) {
        self.in_flight.push_back((at, packet));
    }

    /// Packets due at `now`, in delivery-time order (ties in send order).
    pub fn due(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut due: Vec<(Instant, usize, Vec<u8>)> = Vec::new();
        let mut keep = VecDeque::new();
        for (i, (at, p)) in self.in_flight.drain(..).enumerate() {
            if at <= now {
                due.push((at, i, p));
            } else {
                keep.push_back((at, p));
            }
        }
        self.in_flight = keep;
        due.sort_by_key(|(at, i, _)| (*at, *i));
        due.into_iter().map(|(_, _, p)| p).collect()
    }
}

/// Sends the actions of a tick onto a link; returns whether the peer gave up.
pub fn apply(actions: Vec<Action>, link: &mut Link, at: Instant) -> bool {
    let mut gave_up = false;
    for a in actions {
        match a {
            Action::Send(p) => link.send(at, p),
            Action::GiveUp => gave_up = true,
        }
    }
    gave_up
}
