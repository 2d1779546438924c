//! Turning a stream of card reads into taps.
//!
//! A card resting on the reader, or wobbling at the edge of the field, is read again and again;
//! attendance must count it once. The [`Debouncer`] remembers the last card and when it was last
//! seen: a read is a new tap only if it is a different card, or the same card after it has been
//! absent for longer than the window.
//!
//! Times are `u32` milliseconds from any free-running clock; they may wrap (every ~49.7 days).

use nimbus_core::ids::CardUid;

/// A window that suits classroom taps: long enough to cover a card wobbling on the reader, short
/// enough that a student who taps again on purpose gets feedback (which the node then reports as
/// a duplicate rather than ignoring).
pub const DEFAULT_WINDOW_MS: u32 = 2_000;

/// Suppresses repeated reads of the same card; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Debouncer {
    window_ms: u32,
    last: Option<(CardUid, u32)>,
}

impl Default for Debouncer {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW_MS)
    }
}

impl Debouncer {
    /// A debouncer treating reads of one card less than `window_ms` apart as one tap.
    pub const fn new(window_ms: u32) -> Self {
        Debouncer { window_ms, last: None }
    }

    /// Feeds one read; returns the UID only when it starts a new tap.
    ///
    /// Every read of the current card, reported or not, restarts its absence window, so a card
    /// held on the reader for minutes is still one tap.
    pub fn on_read(&mut self, uid: CardUid, now_ms: u32) -> Option<CardUid> {
        let same_tap = matches!(
            self.last,
            Some((last_uid, seen_ms))
                if last_uid == uid && now_ms.wrapping_sub(seen_ms) <= self.window_ms
        );
        self.last = Some((uid, now_ms));
        if same_tap { None } else { Some(uid) }
    }

    /// Forgets the last card, so its next read is a new tap (e.g. when a new session starts).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(bytes: &[u8]) -> CardUid {
        CardUid::from_slice(bytes).unwrap()
    }

    #[test]
    fn first_read_of_a_card_is_a_tap() {
        let mut debouncer = Debouncer::new(1_000);
        let card = uid(&[0x04, 0xA1, 0xB2, 0xC3]);
        assert_eq!(debouncer.on_read(card, 10), Some(card));
    }

    #[test]
    fn card_held_on_the_reader_is_one_tap() {
        let mut debouncer = Debouncer::new(1_000);
        let card = uid(&[1, 2, 3, 4]);
        assert_eq!(debouncer.on_read(card, 0), Some(card));
        // Read every 300 ms for a minute: the window keeps sliding.
        for t in (300..60_000).step_by(300) {
            assert_eq!(debouncer.on_read(card, t), None, "read at {t} ms");
        }
    }

    #[test]
    fn same_card_after_the_window_is_a_new_tap() {
        let mut debouncer = Debouncer::new(1_000);
        let card = uid(&[1, 2, 3, 4]);
        assert_eq!(debouncer.on_read(card, 0), Some(card));
        assert_eq!(debouncer.on_read(card, 1_000), None, "exactly the window is still the same tap");
        assert_eq!(debouncer.on_read(card, 2_001), Some(card));
    }

    #[test]
    fn different_card_is_a_new_tap_immediately() {
        let mut debouncer = Debouncer::new(1_000);
        let alice = uid(&[1, 2, 3, 4]);
        let bob = uid(&[0x04, 1, 2, 3, 4, 5, 6]);
        assert_eq!(debouncer.on_read(alice, 0), Some(alice));
        assert_eq!(debouncer.on_read(bob, 50), Some(bob));
        assert_eq!(debouncer.on_read(alice, 100), Some(alice));
    }

    #[test]
    fn uids_of_different_lengths_are_different_cards() {
        let mut debouncer = Debouncer::new(1_000);
        let short = uid(&[1, 2, 3]);
        let long = uid(&[1, 2, 3, 0]);
        assert_eq!(debouncer.on_read(short, 0), Some(short));
        assert_eq!(debouncer.on_read(long, 1), Some(long));
    }

    #[test]
    fn window_survives_the_millisecond_counter_wrap() {
        let mut debouncer = Debouncer::new(1_000);
        let card = uid(&[9, 9, 9, 9]);
        assert_eq!(debouncer.on_read(card, u32::MAX - 200), Some(card));
        assert_eq!(debouncer.on_read(card, 300), None);
        assert_eq!(debouncer.on_read(card, 1_301), Some(card));
    }

    #[test]
    fn reset_makes_the_next_read_a_tap() {
        let mut debouncer = Debouncer::default();
        let card = uid(&[1, 2, 3, 4]);
        assert_eq!(debouncer.on_read(card, 0), Some(card));
        debouncer.reset();
        assert_eq!(debouncer.on_read(card, 10), Some(card));
    }

    #[test]
    fn zero_window_only_merges_reads_in_the_same_millisecond() {
        let mut debouncer = Debouncer::new(0);
        let card = uid(&[1, 2, 3, 4]);
        assert_eq!(debouncer.on_read(card, 5), Some(card));
        assert_eq!(debouncer.on_read(card, 5), None);
        assert_eq!(debouncer.on_read(card, 6), Some(card));
    }
}
