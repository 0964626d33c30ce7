//! Handshakes between two peers through byte buffers, and who is refused.

mod common;

use std::time::Duration;

use common::*;
use weft_secure::message::{self, Header, INITIATION_LEN, RESPONSE_LEN};
use weft_secure::{
    open_initiation, Action, Config, DropReason, HandshakeStatus, KeyPair, Limits, Outcome, Peer,
    PresharedKey, Received, Suite,
};

#[test]
fn full_handshake_then_transport_both_ways() {
    let Pair {
        mut a,
        mut b,
        kb,
        t0,
        ..
    } = pair();
    let now = t0;
    assert_eq!(a.state().handshake, HandshakeStatus::None);

    // A has a frame for B but no session: it queues it and sends an initiation.
    let mut queue_a = vec![b"frame from a".to_vec()];
    let mut init = Vec::new();
    assert_eq!(
        a.encrypt(&queue_a[0], &mut init, now).unwrap(),
        Outcome::Handshake
    );
    assert_eq!(init.len(), INITIATION_LEN);
    assert!(matches!(
        message::peek(&init),
        Ok(Header::Initiation {
            network: NETWORK,
            ..
        })
    ));
    assert!(matches!(
        a.state().handshake,
        HandshakeStatus::Initiated { .. }
    ));
    // Another frame meanwhile: queued, no second initiation.
    let mut out = Vec::new();
    assert_eq!(a.encrypt(b"second", &mut out, now).unwrap(), Outcome::Queue);
    assert!(out.is_empty());
    queue_a.push(b"second".to_vec());

    // B answers; it may not send on the session until A confirms it.
    let now = now + Duration::from_millis(1);
    let mut resp = Vec::new();
    assert_eq!(b.receive(&init, &mut resp, now), Ok(Received::Reply));
    assert_eq!(resp.len(), RESPONSE_LEN);
    assert!(!b.can_send(now));
    let mut queue_b = vec![b"frame from b".to_vec()];
    assert_eq!(
        b.encrypt(&queue_b[0], &mut out, now).unwrap(),
        Outcome::Queue
    );

    // A completes and confirms with a keepalive, then flushes its queue.
    let now = now + Duration::from_millis(1);
    let mut keepalive = Vec::new();
    assert_eq!(a.receive(&resp, &mut keepalive, now), Ok(Received::Reply));
    assert!(a.can_send(now));
    let to_b: Vec<Vec<u8>> = queue_a.drain(..).map(|f| seal(&mut a, &f, now)).collect();

    // B: the keepalive confirms; B flushes its queue.
    let now = now + Duration::from_millis(1);
    assert_eq!(b.receive(&keepalive, &mut out, now), Ok(Received::Nothing));
    assert!(b.can_send(now));
    let to_a: Vec<Vec<u8>> = queue_b.drain(..).map(|f| seal(&mut b, &f, now)).collect();

    assert_eq!(open(&mut b, &to_b[0], now), b"frame from a");
    assert_eq!(open(&mut b, &to_b[1], now), b"second");
    assert_eq!(open(&mut a, &to_a[0], now), b"frame from b");

    // More traffic both ways, various sizes.
    for len in [1usize, 60, 1400, 9000, 65_000] {
        let frame: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let p = seal(&mut a, &frame, now);
        assert_eq!(p.len(), len + message::TRANSPORT_OVERHEAD);
        assert_eq!(open(&mut b, &p, now), frame);
        let p = seal(&mut b, &frame, now);
        assert_eq!(open(&mut a, &p, now), frame);
    }

    let sa = a.state();
    let sb = b.state();
    assert!(matches!(sa.handshake, HandshakeStatus::Established { .. }));
    assert!(matches!(sb.handshake, HandshakeStatus::Established { .. }));
    assert_eq!((sa.handshakes, sa.rekeys), (1, 0));
    assert_eq!((sb.handshakes, sb.rekeys), (1, 0));
    // Keepalive + 2 queued + 5 sizes.
    assert_eq!(sa.tx_packets, 8);
    assert_eq!(sb.rx_packets, 8);
    assert_eq!(sb.tx_packets, 6);
    assert_eq!(sa.rx_packets, 6);
    assert_eq!(sa.public_key, *kb.public());
}

#[test]
fn engine_route_open_then_find_peer_by_key() {
    let Pair {
        mut a,
        mut b,
        ka,
        kb,
        t0,
    } = pair();
    let mut init = Vec::new();
    assert_eq!(a.encrypt(&[], &mut init, t0).unwrap(), Outcome::Handshake);
    let Ok(Header::Initiation { network, .. }) = message::peek(&init) else {
        panic!("not an initiation")
    };
    let opened = open_initiation(&kb, Suite::AesGcm, network, &init).unwrap();
    assert_eq!(opened.remote(), ka.public());
    assert_eq!(opened.remote(), b.remote_key());
    let mut resp = Vec::new();
    assert_eq!(
        b.receive_initiation(opened, &mut resp, t0),
        Ok(Received::Reply)
    );
    let Ok(Header::Response { receiver, .. }) = message::peek(&resp) else {
        panic!("not a response")
    };
    assert_eq!(message::peer_slot(receiver), a.config().index);
    let mut ka = Vec::new();
    assert_eq!(a.receive(&resp, &mut ka, t0), Ok(Received::Reply));
    let Ok(Header::Transport { receiver, .. }) = message::peek(&ka) else {
        panic!("not transport")
    };
    assert_eq!(message::peer_slot(receiver), b.config().index);
}

#[test]
fn replayed_transport_is_dropped() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair();
    establish(&mut a, &mut b, t0);
    let p1 = seal(&mut a, b"one", t0);
    let p2 = seal(&mut a, b"two", t0);
    assert_eq!(open(&mut b, &p2, t0), b"two");
    assert_eq!(open(&mut b, &p1, t0), b"one");
    let mut out = Vec::new();
    assert_eq!(b.receive(&p1, &mut out, t0), Err(DropReason::Replayed));
    assert_eq!(b.receive(&p2, &mut out, t0), Err(DropReason::Replayed));
    assert!(out.is_empty());
}

#[test]
fn forged_transport_is_dropped_and_does_not_move_the_window() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair();
    establish(&mut a, &mut b, t0);
    let genuine = seal(&mut a, b"payload that matters", t0);
    let mut out = Vec::new();
    // A flipped bit anywhere in the counter, ciphertext or tag fails authentication (or,
    // when the counter becomes one already seen, is refused as a replay before decrypting).
    for byte in 8..genuine.len() {
        for bit in [0u8, 3, 7] {
            let mut forged = genuine.clone();
            forged[byte] ^= 1 << bit;
            let expected = if byte == 8 && bit == 0 {
                DropReason::Replayed // counter 1 -> 0, the keepalive's
            } else {
                DropReason::Authentication
            };
            assert_eq!(
                b.receive(&forged, &mut out, t0),
                Err(expected),
                "byte {byte} bit {bit}"
            );
        }
    }
    // A flipped receiver index names no session.
    let mut forged = genuine.clone();
    forged[4] ^= 0x80;
    assert_eq!(
        b.receive(&forged, &mut out, t0),
        Err(DropReason::UnknownIndex)
    );
    // A forged counter far ahead did not move the window: the genuine packet still passes.
    let mut far = genuine.clone();
    far[8..16].copy_from_slice(&1_000_000u64.to_le_bytes());
    assert_eq!(
        b.receive(&far, &mut out, t0),
        Err(DropReason::Authentication)
    );
    assert_eq!(open(&mut b, &genuine, t0), b"payload that matters");
    // Reserved bytes are not authenticated but ignored: a changed one still decrypts (it
    // carries no meaning), once.
    let p = seal(&mut a, b"x", t0);
    let mut changed = p.clone();
    changed[2] = 0xff;
    assert_eq!(open(&mut b, &changed, t0), b"x");
    assert_eq!(b.receive(&p, &mut out, t0), Err(DropReason::Replayed));
}

#[test]
fn non_member_static_key_is_refused_by_the_responder() {
    let t0 = std::time::Instant::now();
    let member = KeyPair::generate().unwrap();
    let stranger = KeyPair::generate().unwrap();
    let responder = KeyPair::generate().unwrap();
    let limits = Limits::default();
    // B's peer is `member`. The stranger knows B's public key (it is in the store) and even the
    // PSK: it still cannot be admitted as `member`.
    let mut b = Peer::new(config(2, t0, limits), &responder, *member.public(), psk(7)).unwrap();
    let mut c = Peer::new(
        config(9, t0, limits),
        &stranger,
        *responder.public(),
        psk(7),
    )
    .unwrap();
    let mut init = Vec::new();
    assert_eq!(
        c.encrypt(b"let me in", &mut init, t0).unwrap(),
        Outcome::Handshake
    );
    let mut out = Vec::new();
    assert_eq!(b.receive(&init, &mut out, t0), Err(DropReason::NotMember));
    assert!(out.is_empty());
    assert_eq!(b.state().handshake, HandshakeStatus::None);
    // Through the engine's route: the opened key belongs to no member.
    let opened = open_initiation(&responder, Suite::AesGcm, NETWORK, &init).unwrap();
    let members = [*member.public()];
    assert!(!members.contains(opened.remote()));
    assert_eq!(
        b.receive_initiation(opened, &mut out, t0),
        Err(DropReason::NotMember)
    );
    // An initiation made for another responder key does not even open.
    let other = KeyPair::generate().unwrap();
    assert_eq!(
        open_initiation(&other, Suite::AesGcm, NETWORK, &init).unwrap_err(),
        DropReason::Authentication
    );
}

#[test]
fn wrong_psk_fails_the_handshake() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair_with(Limits::default(), Suite::AesGcm, Suite::AesGcm, 1, 2);
    let mut init = Vec::new();
    assert_eq!(a.encrypt(b"x", &mut init, t0).unwrap(), Outcome::Handshake);
    let mut resp = Vec::new();
    // Message 1 does not involve the PSK: B answers, but its session can never be confirmed.
    assert_eq!(b.receive(&init, &mut resp, t0), Ok(Received::Reply));
    let mut out = Vec::new();
    assert_eq!(
        a.receive(&resp, &mut out, t0),
        Err(DropReason::Authentication)
    );
    assert!(!a.can_send(t0) && !b.can_send(t0));
    // A keeps its handshake pending (a forged response must not spoil it) and retries later.
    let actions = a.tick(t0 + Duration::from_secs(6));
    assert!(matches!(actions.as_slice(), [Action::Send(p)] if p.len() == INITIATION_LEN));
    // And a PSK-less stranger with B's right static key pair is equally refused.
    let Pair {
        mut a, mut b, t0, ..
    } = pair_with(Limits::default(), Suite::AesGcm, Suite::AesGcm, 0, 9);
    let mut init = Vec::new();
    let _ = a.encrypt(b"x", &mut init, t0).unwrap();
    assert_eq!(b.receive(&init, &mut resp, t0), Ok(Received::Reply));
    assert_eq!(
        a.receive(&resp, &mut out, t0),
        Err(DropReason::Authentication)
    );
}

#[test]
fn mismatched_suite_or_network_fails() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair_with(Limits::default(), Suite::AesGcm, Suite::ChaChaPoly, 7, 7);
    let mut init = Vec::new();
    let _ = a.encrypt(b"x", &mut init, t0).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        b.receive(&init, &mut out, t0),
        Err(DropReason::Authentication)
    );

    // Same keys, another network id: refused before any cryptography...
    let Pair {
        mut a, ka, kb, t0, ..
    } = pair();
    let mut b2 = Peer::new(
        Config::new(2, NETWORK + 1, wall(t0)),
        &kb,
        *ka.public(),
        psk(7),
    )
    .unwrap();
    let _ = a.encrypt(b"x", &mut init, t0).unwrap();
    assert_eq!(
        b2.receive(&init, &mut out, t0),
        Err(DropReason::WrongNetwork)
    );
    // ...and a network id rewritten in transit breaks the prologue.
    let mut rewritten = init.clone();
    rewritten[8..12].copy_from_slice(&(NETWORK + 1).to_le_bytes());
    assert_eq!(
        b2.receive(&rewritten, &mut out, t0),
        Err(DropReason::Authentication)
    );
}

#[test]
fn replayed_initiation_is_refused_by_its_timestamp() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair();
    let mut init1 = Vec::new();
    let _ = a.encrypt(b"x", &mut init1, t0).unwrap();
    let mut out = Vec::new();
    assert_eq!(b.receive(&init1, &mut out, t0), Ok(Received::Reply));
    let later = t0 + Duration::from_secs(1);
    assert_eq!(
        b.receive(&init1, &mut out, later),
        Err(DropReason::StaleTimestamp)
    );
    // A retransmission carries a newer timestamp and is accepted; then the old one stays stale.
    let actions = a.tick(t0 + Duration::from_secs(6));
    let [Action::Send(init2)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_ne!(init1, *init2);
    let t2 = t0 + Duration::from_secs(6);
    assert_eq!(b.receive(init2, &mut out, t2), Ok(Received::Reply));
    assert_eq!(
        b.receive(&init1, &mut out, t2 + Duration::from_secs(1)),
        Err(DropReason::StaleTimestamp)
    );
    assert_eq!(
        b.receive(init2, &mut out, t2 + Duration::from_secs(1)),
        Err(DropReason::StaleTimestamp)
    );
}

#[test]
fn restarted_initiator_is_accepted_and_floods_are_rate_limited() {
    let Pair {
        mut a,
        mut b,
        ka,
        kb,
        t0,
    } = pair();
    establish(&mut a, &mut b, t0);
    // A's agent restarts (a new Peer, same keys, a new clock anchor reading the same wall
    // clock): its timestamps come from the wall clock, so they are newer than before and B
    // accepts.
    let t1 = t0 + Duration::from_secs(3);
    let restarted = |at: std::time::Instant| weft_secure::WallClock {
        unix: wall(t0).unix_at(at),
        at,
    };
    let new_config = |at| Config {
        wall_clock: restarted(at),
        ..config(1, t0, Limits::default())
    };
    let mut a2 = Peer::new(new_config(t1), &ka, *kb.public(), psk(7)).unwrap();
    let mut init = Vec::new();
    assert_eq!(
        a2.encrypt(b"hi", &mut init, t1).unwrap(),
        Outcome::Handshake
    );
    // Another restart 1 ms later: a genuine, newer initiation, but too soon.
    let mut a3 = Peer::new(
        new_config(t1 + Duration::from_millis(1)),
        &ka,
        *kb.public(),
        psk(7),
    )
    .unwrap();
    let mut init3 = Vec::new();
    let _ = a3.encrypt(b"hi", &mut init3, t1 + Duration::from_millis(1));
    let mut resp = Vec::new();
    assert_eq!(b.receive(&init, &mut resp, t1), Ok(Received::Reply));
    let mut out = Vec::new();
    assert_eq!(
        b.receive(&init3, &mut out, t1 + Duration::from_millis(1)),
        Err(DropReason::RateLimited)
    );
    // The rate-limited one was not recorded: it is accepted once the interval passed.
    let mut resp3 = Vec::new();
    assert_eq!(
        b.receive(&init3, &mut resp3, t1 + Duration::from_millis(30)),
        Ok(Received::Reply)
    );
    // a2's response is now stale (B replaced that handshake), a3 completes.
    let now = t1 + Duration::from_millis(31);
    let mut ka3 = Vec::new();
    assert_eq!(a3.receive(&resp3, &mut ka3, now), Ok(Received::Reply));
    assert_eq!(b.receive(&ka3, &mut out, now), Ok(Received::Nothing));
    let p = seal(&mut b, b"welcome back", now);
    assert_eq!(open(&mut a3, &p, now), b"welcome back");
    let _ = a2;
}

#[test]
fn simultaneous_initiations_resolve_to_one_session() {
    for winner_first in [true, false] {
        let t0 = std::time::Instant::now();
        let (hi, lo) = ordered_keys();
        let limits = Limits::default();
        let mut w = Peer::new(config(1, t0, limits), &hi, *lo.public(), psk(3)).unwrap();
        let mut l = Peer::new(config(2, t0, limits), &lo, *hi.public(), psk(3)).unwrap();
        let (mut init_w, mut init_l) = (Vec::new(), Vec::new());
        assert_eq!(
            w.encrypt(b"w", &mut init_w, t0).unwrap(),
            Outcome::Handshake
        );
        assert_eq!(
            l.encrypt(b"l", &mut init_l, t0).unwrap(),
            Outcome::Handshake
        );
        let now = t0 + Duration::from_millis(1);
        let (mut from_w, mut from_l) = (Vec::new(), Vec::new());
        let (rw, rl) = if winner_first {
            let rw = w.receive(&init_l, &mut from_w, now);
            (rw, l.receive(&init_w, &mut from_l, now))
        } else {
            let rl = l.receive(&init_w, &mut from_l, now);
            (w.receive(&init_l, &mut from_w, now), rl)
        };
        // The greater key stays initiator; the other answers.
        assert_eq!(rw, Ok(Received::Nothing));
        assert_eq!(rl, Ok(Received::Reply));
        let mut keepalive = Vec::new();
        assert_eq!(w.receive(&from_l, &mut keepalive, now), Ok(Received::Reply));
        let mut out = Vec::new();
        assert_eq!(l.receive(&keepalive, &mut out, now), Ok(Received::Nothing));
        assert!(w.can_send(now) && l.can_send(now));
        let p = seal(&mut w, b"w", now);
        assert_eq!(open(&mut l, &p, now), b"w");
        let p = seal(&mut l, b"l", now);
        assert_eq!(open(&mut w, &p, now), b"l");
        assert_eq!(w.state().handshakes, 1);
        assert_eq!(l.state().handshakes, 1);
        // Nothing left dangling: no retransmission later.
        assert!(w.tick(now + Duration::from_secs(6)).is_empty());
        assert!(l.tick(now + Duration::from_secs(6)).is_empty());
    }
}

#[test]
fn a_yielded_initiation_arriving_after_the_handshake_is_stale() {
    let t0 = std::time::Instant::now();
    let (hi, lo) = ordered_keys();
    let limits = Limits::default();
    let mut w = Peer::new(config(1, t0, limits), &hi, *lo.public(), psk(3)).unwrap();
    let mut l = Peer::new(config(2, t0, limits), &lo, *hi.public(), psk(3)).unwrap();
    let (mut init_w, mut init_l) = (Vec::new(), Vec::new());
    let _ = w.encrypt(b"w", &mut init_w, t0).unwrap();
    let _ = l.encrypt(b"l", &mut init_l, t0).unwrap();
    // L gets W's initiation first and yields; W completes; then L's own initiation arrives.
    let now = t0 + Duration::from_millis(1);
    let mut resp = Vec::new();
    assert_eq!(l.receive(&init_w, &mut resp, now), Ok(Received::Reply));
    let mut keepalive = Vec::new();
    assert_eq!(w.receive(&resp, &mut keepalive, now), Ok(Received::Reply));
    let later = now + Duration::from_millis(50);
    let mut out = Vec::new();
    assert_eq!(
        w.receive(&init_l, &mut out, later),
        Err(DropReason::StaleTimestamp)
    );
    assert_eq!(
        l.receive(&keepalive, &mut out, later),
        Ok(Received::Nothing)
    );
    assert!(w.can_send(later) && l.can_send(later));
    // A genuinely new initiation from L afterwards is accepted.
    let mut l2 = l;
    let t = later + Duration::from_secs(1);
    let actions = {
        // Force one: L's session is young, so make it unanswered for 15 s.
        let _ = seal(&mut l2, b"data", t);
        l2.tick(t + Duration::from_secs(15))
    };
    let [Action::Send(init2)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    assert_eq!(
        w.receive(init2, &mut out, t + Duration::from_secs(15)),
        Ok(Received::Reply)
    );
}

#[test]
fn retransmits_then_gives_up() {
    let Pair { mut a, t0, .. } = pair();
    let mut init1 = Vec::new();
    assert_eq!(a.encrypt(b"x", &mut init1, t0).unwrap(), Outcome::Handshake);
    assert!(a.tick(t0 + Duration::from_secs(4)).is_empty());
    let mut sends = 0;
    let mut gave_up_at = None;
    for s in 5..=100 {
        let now = t0 + Duration::from_secs(s);
        for action in a.tick(now) {
            match action {
                Action::Send(p) => {
                    assert_eq!(p.len(), INITIATION_LEN);
                    sends += 1
                }
                Action::GiveUp => gave_up_at = Some(s),
            }
        }
        let mut out = Vec::new();
        if gave_up_at.is_none() {
            assert_eq!(a.encrypt(b"y", &mut out, now).unwrap(), Outcome::Queue);
        }
    }
    // Every ~5.x s for 90 s.
    assert!((14..=18).contains(&sends), "{sends} retransmissions");
    let gave_up_at = gave_up_at.expect("gave up");
    assert!((90..=96).contains(&gave_up_at), "{gave_up_at}");
    assert_eq!(a.state().handshake, HandshakeStatus::None);
    // New data starts over.
    let mut out = Vec::new();
    let now = t0 + Duration::from_secs(101);
    assert_eq!(a.encrypt(b"z", &mut out, now).unwrap(), Outcome::Handshake);
}

#[test]
fn a_late_response_to_a_replaced_initiation_is_unknown() {
    let Pair {
        mut a, mut b, t0, ..
    } = pair();
    let mut init1 = Vec::new();
    let _ = a.encrypt(b"x", &mut init1, t0).unwrap();
    let mut resp1 = Vec::new();
    assert_eq!(b.receive(&init1, &mut resp1, t0), Ok(Received::Reply));
    let t1 = t0 + Duration::from_secs(6);
    let actions = a.tick(t1);
    let [Action::Send(init2)] = actions.as_slice() else {
        panic!("{actions:?}")
    };
    let mut out = Vec::new();
    assert_eq!(
        a.receive(&resp1, &mut out, t1),
        Err(DropReason::UnknownIndex)
    );
    let mut resp2 = Vec::new();
    assert_eq!(b.receive(init2, &mut resp2, t1), Ok(Received::Reply));
    assert_eq!(a.receive(&resp2, &mut out, t1), Ok(Received::Reply));
}

#[test]
fn peer_new_refuses_bad_keys_and_config() {
    let t0 = std::time::Instant::now();
    let k = KeyPair::generate().unwrap();
    let other = KeyPair::generate().unwrap();
    let zero = weft_secure::PublicKey::from_bytes([0; 32]);
    assert!(Peer::new(Config::new(1, 1, wall(t0)), &k, zero, PresharedKey::none()).is_err());
    assert!(Peer::new(
        Config::new(1, 1, wall(t0)),
        &k,
        *k.public(),
        PresharedKey::none()
    )
    .is_err());
    assert!(Peer::new(
        Config::new(1 << 24, 1, wall(t0)),
        &k,
        *other.public(),
        PresharedKey::none()
    )
    .is_err());
    let bad = Limits {
        rekey_after_messages: 10,
        reject_after_messages: 5,
        ..Limits::default()
    };
    assert!(Peer::new(
        config(1, t0, bad),
        &k,
        *other.public(),
        PresharedKey::none()
    )
    .is_err());
    assert!(Peer::new(
        Config::new(0xff_ffff, 1, wall(t0)),
        &k,
        *other.public(),
        PresharedKey::none()
    )
    .is_ok());
}
