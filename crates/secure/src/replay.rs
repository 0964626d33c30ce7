//! The sliding replay window over received counters: WireGuard's algorithm (RFC 6479's bitmap
//! ring, as in Linux's `counter_validate`), 8192 bits, of which 8128 counters behind the
//! highest one are tracked.
//!
//! Check before decrypting ([`ReplayWindow::check`], no change), record after the tag verified
//! ([`ReplayWindow::accept`]): a forged packet must never move the window.

use crate::error::DropReason;

const WORD_BITS: u64 = 64;
/// Bits in the ring.
pub const WINDOW_BITS: u64 = 8192;
const WORDS: usize = (WINDOW_BITS / WORD_BITS) as usize;
/// How far behind the highest counter received a counter is still accepted (once).
pub const WINDOW_SIZE: u64 = WINDOW_BITS - WORD_BITS;

/// Which counters were received, within [`WINDOW_SIZE`] of the highest.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest accepted counter + 1; 0 before the first.
    top: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest())
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    pub const fn new() -> Self {
        ReplayWindow {
            top: 0,
            bits: [0; WORDS],
        }
    }

    /// The highest counter accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.top.checked_sub(1)
    }

    fn slot(shifted: u64) -> (usize, u64) {
        (
            ((shifted / WORD_BITS) % WORDS as u64) as usize,
            1u64 << (shifted % WORD_BITS),
        )
    }

    /// Whether `counter` would be accepted, without recording it. Counters at or beyond `limit`
    /// are [`DropReason::Expired`]; seen or too old ones [`DropReason::Replayed`].
    pub fn check(&self, counter: u64, limit: u64) -> Result<(), DropReason> {
        if counter >= limit {
            return Err(DropReason::Expired);
        }
        let Some(shifted) = counter.checked_add(1) else {
            return Err(DropReason::Expired);
        };
        if shifted.saturating_add(WINDOW_SIZE) < self.top {
            return Err(DropReason::Replayed);
        }
        if shifted > self.top {
            return Ok(());
        }
        let (word, mask) = Self::slot(shifted);
        if self.bits[word] & mask != 0 {
            Err(DropReason::Replayed)
        } else {
            Ok(())
        }
    }

    /// Records `counter`; false if it was already recorded or is too old (the packet must then
    /// be dropped).
    pub fn accept(&mut self, counter: u64) -> bool {
        let Some(shifted) = counter.checked_add(1) else {
            return false;
        };
        if shifted.saturating_add(WINDOW_SIZE) < self.top {
            return false;
        }
        if shifted > self.top {
            let current = self.top / WORD_BITS;
            let new = shifted / WORD_BITS;
            let clear = (new - current).min(WORDS as u64);
            for i in 1..=clear {
                self.bits[((current + i) % WORDS as u64) as usize] = 0;
            }
            self.top = shifted;
        }
        let (word, mask) = Self::slot(shifted);
        let seen = self.bits[word] & mask != 0;
        self.bits[word] |= mask;
        !seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = u64::MAX - (1 << 13);

    fn take(w: &mut ReplayWindow, c: u64) -> bool {
        let checked = w.check(c, LIMIT).is_ok();
        let accepted = w.accept(c);
        assert_eq!(checked, accepted, "check and accept disagree on {c}");
        accepted
    }

    #[test]
    fn in_order() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.highest(), None);
        for c in 0..20_000 {
            assert!(take(&mut w, c), "{c}");
        }
        assert_eq!(w.highest(), Some(19_999));
    }

    #[test]
    fn duplicates_are_refused() {
        let mut w = ReplayWindow::new();
        assert!(take(&mut w, 0));
        assert!(!take(&mut w, 0));
        assert!(take(&mut w, 5));
        assert!(!take(&mut w, 5));
        assert!(take(&mut w, 3));
        assert!(!take(&mut w, 3));
        assert_eq!(w.check(3, LIMIT), Err(DropReason::Replayed));
    }

    #[test]
    fn out_of_order_within_the_window() {
        let mut w = ReplayWindow::new();
        assert!(take(&mut w, 10_000));
        // Everything within the window behind the top, in reverse, once each.
        for c in (10_000 - WINDOW_SIZE + 1..10_000).rev() {
            assert!(take(&mut w, c), "{c}");
        }
        for c in (10_000 - WINDOW_SIZE + 1..=10_000).step_by(97) {
            assert!(!take(&mut w, c), "{c} twice");
        }
        // Shuffled arrival of a burst.
        let mut w = ReplayWindow::new();
        let order = [7u64, 3, 0, 1, 6, 2, 5, 4, 64, 63, 128, 65, 8, 127];
        for c in order {
            assert!(take(&mut w, c), "{c}");
        }
        for c in order {
            assert!(!take(&mut w, c), "{c} twice");
        }
    }

    #[test]
    fn too_old_is_refused() {
        let mut w = ReplayWindow::new();
        assert!(take(&mut w, WINDOW_SIZE + 100));
        // Exactly at the edge: still inside.
        assert!(take(&mut w, 100));
        assert!(!take(&mut w, 99));
        assert!(!take(&mut w, 0));
        assert_eq!(w.check(0, LIMIT), Err(DropReason::Replayed));
    }

    #[test]
    fn a_big_jump_clears_the_ring() {
        let mut w = ReplayWindow::new();
        for c in 0..WINDOW_BITS {
            assert!(take(&mut w, c));
        }
        // Jump far ahead: old bits must not make new counters look replayed.
        let far = 10 * WINDOW_BITS + 17;
        assert!(take(&mut w, far));
        for c in far - WINDOW_SIZE + 1..far {
            assert!(take(&mut w, c), "{c}");
        }
        // Jumps of exactly one ring and one word.
        let mut w = ReplayWindow::new();
        assert!(take(&mut w, 1));
        assert!(take(&mut w, 1 + WINDOW_BITS));
        assert!(take(&mut w, 1 + WINDOW_BITS - 64));
        assert!(!take(&mut w, 1));
    }

    #[test]
    fn limits() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(100, 100), Err(DropReason::Expired));
        assert_eq!(w.check(u64::MAX, u64::MAX), Err(DropReason::Expired));
        assert!(!w.accept(u64::MAX));
        assert!(w.accept(LIMIT - 1));
        assert!(!w.accept(LIMIT - 1));
        assert!(w.accept(LIMIT - 2));
        assert!(!w.accept(0));
    }

    #[test]
    fn matches_a_reference_model() {
        // A set-based model of "accept once, within WINDOW_SIZE of the highest" on a
        // pseudo-random walk with reordering and duplicates.
        let mut w = ReplayWindow::new();
        let mut seen = std::collections::HashSet::new();
        let mut highest: Option<u64> = None;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut base = 0u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            base += x % 3;
            let c = base.saturating_sub(x % (WINDOW_SIZE + 200)) + (x >> 60) % 4;
            let fresh = !seen.contains(&c) && highest.is_none_or(|h| c + WINDOW_SIZE >= h);
            assert_eq!(take(&mut w, c), fresh, "counter {c}, highest {highest:?}");
            if fresh {
                seen.insert(c);
                highest = Some(highest.map_or(c, |h| h.max(c)));
            }
        }
    }
}
