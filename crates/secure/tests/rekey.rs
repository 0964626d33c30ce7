//! Rekeying by messages and by time, under traffic, without losing a packet; timers.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use weft_secure::{Action, DropReason, HandshakeStatus, Limits, Outcome, Peer, Received, Suite};

fn small_limits(rekey_after_messages: u64) -> Limits {
    Limits {
        rekey_after_messages,
        reject_after_messages: rekey_after_messages * 1000,
        ..Limits::default()
    }
}

/// Takes the single initiation a tick must produce.
fn initiation(actions: Vec<Action>) -> Vec<u8> {
    match actions.as_slice() {
        [Action::Send(p)] if p.len() == weft_secure::message::INITIATION_LEN => p.clone(),
        other => panic!("expected one initiation, got {other:?}"),
    }
}

#[test]
fn rekey_by_messages_loses_nothing_in_flight() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair_with(small_limits(10), Suite::AesGcm, Suite::AesGcm, 5, 5);
    establish(&mut a, &mut b, t0);
    // Past the minimum interval between two initiations.
    let mut now = t0 + Duration::from_millis(100);

    // A reaches its message limit (the keepalive counted as one); B is far from its own.
    let mut old_a_to_b: Vec<Vec<u8>> = (0..9u8).map(|i| seal(&mut a, &[i], now)).collect();
    let old_b_to_a: Vec<Vec<u8>> = (0..3u8).map(|i| seal(&mut b, &[100 + i], now)).collect();
    // Deliver a few on time, hold the rest in flight.
    for p in old_a_to_b.drain(..3) {
        let _ = open(&mut b, &p, now);
    }
    assert!(b.tick(now).is_empty(), "B is under its limit");
    let init = initiation(a.tick(now));
    assert!(a.state().rekeying);
    // While the handshake runs, A still sends on the old session.
    old_a_to_b.push(seal(&mut a, &[9], now));

    now += Duration::from_millis(1);
    let mut resp = Vec::new();
    assert_eq!(b.receive(&init, &mut resp, now), Ok(Received::Reply));
    // B keeps sending on the old session until A confirms the new one.
    let mut b_pre_confirm = vec![seal(&mut b, &[103], now)];

    now += Duration::from_millis(1);
    let mut keepalive = Vec::new();
    assert_eq!(a.receive(&resp, &mut keepalive, now), Ok(Received::Reply));
    // A switched: new packets use the new session.
    let new_a = seal(&mut a, &[50], now);
    assert_ne!(new_a[4..8], old_a_to_b[0][4..8], "new receiver index");

    // Old-session packets from B arrive at A after A switched.
    for (i, p) in old_b_to_a.iter().enumerate() {
        assert_eq!(open(&mut a, p, now), [100 + i as u8]);
    }
    // The new-session packet arrives at B before the keepalive: it confirms the session.
    assert_eq!(open(&mut b, &new_a, now), [50]);
    let mut out = Vec::new();
    assert_eq!(b.receive(&keepalive, &mut out, now), Ok(Received::Nothing));
    // Old-session packets from A, delivered after B switched, in reverse.
    for p in old_a_to_b.iter().rev() {
        let got = open(&mut b, p, now);
        assert!(got[0] < 10, "{got:?}");
    }
    b_pre_confirm.push(seal(&mut b, &[104], now));
    assert_eq!(open(&mut a, &b_pre_confirm[1], now), [104]);
    assert_eq!(open(&mut a, &b_pre_confirm[0], now), [103]);

    assert_eq!(a.state().rekeys, 1);
    assert_eq!(b.state().rekeys, 1);
    assert!(!a.state().rekeying && !b.state().rekeying);
    // Replays across the switch are still refused.
    assert_eq!(
        b.receive(&old_a_to_b[0], &mut out, now),
        Err(DropReason::Replayed)
    );
}

/// Both sides send continuously over a link that delays each packet 0–10 ms (reordering
/// freely) and tick every 5 ms. Every frame must arrive exactly once, and no packet may be
/// dropped, but for the yielding side's initiation of a simultaneous pair that arrives after
/// the handshake completed (refused as stale, by design).
fn soak(limits: Limits, steps: u64, a_rate: u64, b_rate: u64, seed: u64) -> (Peer, Peer, u64) {
    let Pair {
        mut a, mut b, t0, ..
    } = pair_with(limits, Suite::AesGcm, Suite::AesGcm, 1, 1);
    let mut rng = Rng(seed);
    let (mut to_b, mut to_a) = (Link::default(), Link::default());
    let (mut queue_a, mut queue_b): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    let (mut got_a, mut got_b) = (BTreeSet::new(), BTreeSet::new());
    let (mut sent_a, mut sent_b) = (0u64, 0u64);
    let mut stale = 0u64;
    let mut out = Vec::new();

    fn push(p: &mut Peer, frame: Vec<u8>, queue: &mut Vec<Vec<u8>>, link: &mut Link, at: Instant) {
        let mut out = Vec::new();
        match p.encrypt(&frame, &mut out, at).unwrap() {
            Outcome::Send => link.send(at, out),
            Outcome::Handshake => {
                queue.push(frame);
                link.send(at, out)
            }
            Outcome::Queue => queue.push(frame),
        }
    }
    fn flush(p: &mut Peer, queue: &mut Vec<Vec<u8>>, link: &mut Link, at: Instant) {
        if p.can_send(at) {
            for frame in std::mem::take(queue) {
                push(p, frame, queue, link, at);
            }
        }
    }

    let end = steps + 200;
    for step in 0..end {
        let now = t0 + Duration::from_millis(step);
        let delay = |rng: &mut Rng| now + Duration::from_millis(rng.below(11));
        if step < steps {
            for _ in 0..a_rate {
                let at = delay(&mut rng);
                push(
                    &mut a,
                    sent_a.to_le_bytes().to_vec(),
                    &mut queue_a,
                    &mut to_b,
                    at,
                );
                sent_a += 1;
            }
            for _ in 0..b_rate {
                let at = delay(&mut rng);
                push(
                    &mut b,
                    sent_b.to_le_bytes().to_vec(),
                    &mut queue_b,
                    &mut to_a,
                    at,
                );
                sent_b += 1;
            }
        }
        for p in to_b.due(now) {
            match b.receive(&p, &mut out, now) {
                Ok(Received::Data) => {
                    let seq = u64::from_le_bytes(out[..8].try_into().unwrap());
                    assert!(got_b.insert(seq), "B got {seq} twice");
                }
                Ok(Received::Reply) => to_a.send(delay(&mut rng), out.clone()),
                Ok(Received::Nothing) => {}
                Err(DropReason::StaleTimestamp) if p[0] == 1 => stale += 1,
                Err(e) => panic!("B dropped a packet at step {step}: {e:?}"),
            }
            flush(&mut b, &mut queue_b, &mut to_a, now);
        }
        for p in to_a.due(now) {
            match a.receive(&p, &mut out, now) {
                Ok(Received::Data) => {
                    let seq = u64::from_le_bytes(out[..8].try_into().unwrap());
                    assert!(got_a.insert(seq), "A got {seq} twice");
                }
                Ok(Received::Reply) => to_b.send(delay(&mut rng), out.clone()),
                Ok(Received::Nothing) => {}
                Err(DropReason::StaleTimestamp) if p[0] == 1 => stale += 1,
                Err(e) => panic!("A dropped a packet at step {step}: {e:?}"),
            }
            flush(&mut a, &mut queue_a, &mut to_b, now);
        }
        if step % 5 == 0 {
            assert!(!apply(a.tick(now), &mut to_b, delay(&mut rng)));
            assert!(!apply(b.tick(now), &mut to_a, delay(&mut rng)));
        }
    }
    assert!(queue_a.is_empty() && queue_b.is_empty());
    assert_eq!(got_b.len() as u64, sent_a, "frames A→B lost");
    assert_eq!(got_a.len() as u64, sent_b, "frames B→A lost");
    eprintln!(
        "soak seed {seed:#x}: {} frames, {} rekeys, {stale} late initiations refused as stale",
        sent_a + sent_b,
        a.state().rekeys
    );
    (a, b, stale)
}

#[test]
fn rekey_by_messages_under_continuous_reordered_traffic_loses_nothing() {
    // A sends 3 frames per ms, B 1: A reaches the limit first and rekeys.
    let (a, b, _) = soak(small_limits(200), 2000, 3, 1, 0x5eed);
    let (sa, sb) = (a.state(), b.state());
    assert!(sa.rekeys >= 15, "{sa:?}");
    assert_eq!(sa.rekeys, sb.rekeys);
    // Symmetric traffic: both reach the limit together, simultaneous initiations included.
    let mut stale = 0;
    for seed in [0xfeed, 0xbeef, 0xcafe] {
        let (a, b, s) = soak(small_limits(200), 2000, 2, 2, seed);
        assert!(a.state().rekeys >= 15, "{:?}", a.state());
        assert_eq!(a.state().rekeys, b.state().rekeys);
        stale += s;
    }
    // The races did happen.
    assert!(stale > 0);
}

#[test]
fn rekey_by_time_under_traffic() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair();
    establish(&mut a, &mut b, t0);
    let mut out = Vec::new();
    let mut rekeyed_at = None;
    // One frame each way per second for 400 s; initiations and replies delivered at once.
    for s in 1..=400u64 {
        let now = t0 + Duration::from_secs(s);
        let p = seal(&mut a, &s.to_le_bytes(), now);
        assert_eq!(open(&mut b, &p, now), s.to_le_bytes());
        let p = seal(&mut b, &s.to_le_bytes(), now);
        assert_eq!(open(&mut a, &p, now), s.to_le_bytes());
        for action in a.tick(now) {
            let Action::Send(init) = action else {
                panic!("gave up")
            };
            rekeyed_at.get_or_insert(s);
            let mut resp = Vec::new();
            assert_eq!(b.receive(&init, &mut resp, now), Ok(Received::Reply));
            let mut keepalive = Vec::new();
            assert_eq!(a.receive(&resp, &mut keepalive, now), Ok(Received::Reply));
            assert_eq!(b.receive(&keepalive, &mut out, now), Ok(Received::Nothing));
        }
        // The responder never needs to start one: the initiator does it first.
        assert!(b.tick(now).is_empty(), "B started a handshake at {s}s");
    }
    assert_eq!(rekeyed_at, Some(120));
    // 120, 240, 360.
    assert_eq!(a.state().rekeys, 3);
    assert_eq!(b.state().rekeys, 3);
}

#[test]
fn responder_rekeys_when_the_initiator_is_idle() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair();
    establish(&mut a, &mut b, t0);
    let mut first = None;
    for s in 1..=200u64 {
        let now = t0 + Duration::from_secs(s);
        // Only B sends (A's keepalives aside).
        let p = seal(&mut b, &[1], now);
        assert_eq!(open(&mut a, &p, now), [1]);
        for action in a.tick(now) {
            let Action::Send(p) = action else { panic!() };
            // A's keepalives every 10 s, or its receive-side rekey at 165 s.
            let mut out = Vec::new();
            assert!(b.receive(&p, &mut out, now).is_ok());
        }
        for action in b.tick(now) {
            let Action::Send(init) = action else { panic!() };
            first.get_or_insert(s);
            let mut resp = Vec::new();
            assert_eq!(a.receive(&init, &mut resp, now), Ok(Received::Reply));
            let mut ka = Vec::new();
            assert_eq!(b.receive(&resp, &mut ka, now), Ok(Received::Reply));
            let mut out = Vec::new();
            assert_eq!(a.receive(&ka, &mut out, now), Ok(Received::Nothing));
        }
        assert!(b.can_send(now));
    }
    // The session's responder waits rekey_timeout longer than an initiator would.
    assert_eq!(first, Some(125));
}

#[test]
fn idle_sessions_expire_and_traffic_starts_a_new_handshake() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair();
    establish(&mut a, &mut b, t0);
    // A keepalive (no data, so no "unanswered data" timer) on the session.
    let old = seal(&mut a, b"", t0);
    assert!(a.tick(t0 + Duration::from_secs(179)).is_empty());
    assert!(b.tick(t0 + Duration::from_secs(179)).is_empty());
    let late = t0 + Duration::from_secs(180);
    let mut out = Vec::new();
    assert_eq!(b.receive(&old, &mut out, late), Err(DropReason::Expired));
    assert!(!a.can_send(late));
    assert!(a.tick(late).is_empty());
    assert!(b.tick(late).is_empty());
    assert_eq!(a.state().handshake, HandshakeStatus::None);
    assert_eq!(
        b.receive(&old, &mut out, late),
        Err(DropReason::UnknownIndex)
    );
    assert_eq!(
        a.encrypt(b"new", &mut out, late).unwrap(),
        Outcome::Handshake
    );
}

#[test]
fn keepalive_after_receiving_and_new_handshake_when_unanswered() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair();
    establish(&mut a, &mut b, t0);
    let p = seal(&mut a, b"ping", t0);
    let _ = open(&mut b, &p, t0);
    // B received data and sent nothing: a keepalive after 10 s, once.
    assert!(b.tick(t0 + Duration::from_secs(9)).is_empty());
    let actions = b.tick(t0 + Duration::from_secs(10));
    let [Action::Send(keepalive)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(keepalive.len(), weft_secure::message::TRANSPORT_OVERHEAD);
    assert!(b.tick(t0 + Duration::from_secs(11)).is_empty());
    // A sent data at 0 and heard back (the keepalive) at 10: no new handshake.
    let mut out = Vec::new();
    let t10 = t0 + Duration::from_secs(10);
    assert_eq!(a.receive(keepalive, &mut out, t10), Ok(Received::Nothing));
    assert!(a.tick(t0 + Duration::from_secs(20)).is_empty());
    // Now B goes silent: 15 s after A's unanswered data, A starts a handshake.
    let t21 = t0 + Duration::from_secs(21);
    let _ = seal(&mut a, b"anyone?", t21);
    assert!(a.tick(t0 + Duration::from_secs(35)).is_empty());
    let _ = initiation(a.tick(t0 + Duration::from_secs(36)));
}

#[test]
fn hard_message_limit_forces_a_handshake() {
    let limits = Limits {
        rekey_after_messages: 5,
        reject_after_messages: 8,
        ..Limits::default()
    };
    let Pair {
        mut a, mut b, t0, ..
    } = pair_with(limits, Suite::ChaChaPoly, Suite::ChaChaPoly, 0, 0);
    establish(&mut a, &mut b, t0);
    // The keepalive used counter 0; 1..=7 remain.
    for i in 1..8u8 {
        let p = seal(&mut a, &[i], t0);
        assert_eq!(open(&mut b, &p, t0), [i]);
    }
    let mut out = Vec::new();
    assert!(!a.can_send(t0));
    assert_eq!(a.encrypt(b"x", &mut out, t0).unwrap(), Outcome::Handshake);
    // A counter at the limit is refused before any decryption.
    let at_limit = seal_raw_counter(&mut b, 8, t0);
    assert_eq!(a.receive(&at_limit, &mut out, t0), Err(DropReason::Expired));
    let beyond = seal_raw_counter(&mut b, u64::MAX, t0);
    assert_eq!(a.receive(&beyond, &mut out, t0), Err(DropReason::Expired));
}

/// A transport packet from `p` with its counter field rewritten (its tag then fails).
fn seal_raw_counter(p: &mut Peer, counter: u64, now: Instant) -> Vec<u8> {
    let mut packet = seal(p, b"c", now);
    packet[8..16].copy_from_slice(&counter.to_le_bytes());
    packet
}
