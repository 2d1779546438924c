//! Wiegand 26 and 34 decoding from the reader's D0/D1 lines.
//!
//! A Wiegand reader pulls D0 low for a 0 bit and D1 low for a 1 bit, MSB first, and marks the end
//! of a frame only by going quiet. The [`Decoder`] is therefore fed from the two falling-edge
//! interrupts ([`Decoder::on_bit`]) with a free-running microsecond timestamp, and asked from the
//! main loop ([`Decoder::poll`]) whether the line has been quiet long enough to close the frame.
//! It owns no pins or timers, so it works with any HAL and is tested without hardware.
//!
//! Timestamps are `u32` microseconds and may wrap (every ~71.6 minutes); only differences are
//! used. Call `poll` at least every few milliseconds while bits are arriving. When `on_bit` runs in
//! the edge interrupts, share the decoder with the main loop through a critical-section mutex.
//!
//! Frames:
//!
//! | bits | layout (first bit first) | UID |
//! |---|---|---|
//! | 26 | even parity over data bits 1–12, 8-bit facility code, 16-bit card number, odd parity over data bits 13–24 | 3 bytes: facility, card (big-endian) |
//! | 34 | even parity over data bits 1–16, 32 data bits, odd parity over data bits 17–32 | 4 bytes, big-endian |

use core::fmt;

use nimbus_core::ids::CardUid;
use nimbus_core::reader::ReaderKind;

/// Default quiet time that ends a frame, in microseconds.
///
/// The Wiegand interface (SIA AC-01) allows 200 µs to 20 ms between bits (readers typically use
/// 1–2 ms), while consecutive frames are a human tap apart (hundreds of ms). 25 ms is just above
/// the slowest legal bit interval, so slow readers are not cut into pieces and a frame is still
/// reported within a few tens of milliseconds.
pub const DEFAULT_FRAME_GAP_US: u32 = 25_000;

/// Most bits one frame can hold; anything longer is [`Error::Overflow`].
pub const MAX_BITS: u8 = 64;

/// Which parity bit of a frame was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParityBit {
    /// The leading bit, even parity over the first half of the data.
    Even,
    /// The trailing bit, odd parity over the second half of the data.
    Odd,
}

/// Why a frame was rejected. The decoder is ready for the next frame either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// A parity check failed: a bit was lost or flipped on the wire.
    Parity {
        /// The failing parity bit (the even one is checked first).
        which: ParityBit,
    },
    /// The frame had this many bits, which is not a supported format (often line noise).
    UnsupportedLength(u8),
    /// More than [`MAX_BITS`] bits arrived without a gap: a stuck or noisy line.
    Overflow,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parity { which: ParityBit::Even } => f.write_str("Wiegand even parity error"),
            Error::Parity { which: ParityBit::Odd } => f.write_str("Wiegand odd parity error"),
            Error::UnsupportedLength(n) => write!(f, "unsupported Wiegand frame of {n} bits"),
            Error::Overflow => write!(f, "Wiegand frame longer than {MAX_BITS} bits"),
        }
    }
}

impl core::error::Error for Error {}

/// A supported Wiegand frame format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// 26 bits: 8-bit facility code + 16-bit card number (H10301).
    W26,
    /// 34 bits: 32 data bits.
    W34,
}

impl Format {
    /// How the edge node labels reads in this format.
    pub const fn reader_kind(self) -> ReaderKind {
        match self {
            Format::W26 => ReaderKind::Wiegand26,
            Format::W34 => ReaderKind::Wiegand34,
        }
    }

    const fn bits(self) -> u8 {
        match self {
            Format::W26 => 26,
            Format::W34 => 34,
        }
    }
}

/// A frame whose parity checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame {
    format: Format,
    data: u32,
    uid: CardUid,
}

impl Frame {
    /// The frame's format.
    pub const fn format(&self) -> Format {
        self.format
    }

    /// The data bits without parity: 24 bits for W26, 32 for W34.
    pub const fn data(&self) -> u32 {
        self.data
    }

    /// The data bits as the UID rosters know the card by (3 or 4 bytes, big-endian).
    pub const fn uid(&self) -> CardUid {
        self.uid
    }

    /// The facility (site) code of a W26 frame; W34 has no standard split.
    pub const fn facility_code(&self) -> Option<u8> {
        match self.format {
            Format::W26 => Some((self.data >> 16) as u8),
            Format::W34 => None,
        }
    }

    /// The card number of a W26 frame (the number printed on most cards).
    pub const fn card_number(&self) -> Option<u16> {
        match self.format {
            Format::W26 => Some(self.data as u16),
            Format::W34 => None,
        }
    }
}

/// Collects bits into frames; see the [module docs](self) for how to drive it.
#[derive(Debug, Clone)]
pub struct Decoder {
    frame_gap_us: u32,
    bits: u64,
    count: u8,
    overflow: bool,
    last_edge_us: u32,
    ready: Option<Result<Frame, Error>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder using [`DEFAULT_FRAME_GAP_US`].
    pub const fn new() -> Self {
        Self::with_frame_gap_us(DEFAULT_FRAME_GAP_US)
    }

    /// A decoder for a reader whose timing differs from the default; `frame_gap_us` must exceed
    /// the reader's longest bit interval and be shorter than its shortest pause between frames.
    pub const fn with_frame_gap_us(frame_gap_us: u32) -> Self {
        Decoder { frame_gap_us, bits: 0, count: 0, overflow: false, last_edge_us: 0, ready: None }
    }

    /// Records one bit: `false` for a falling edge on D0, `true` for D1.
    ///
    /// If the previous frame's gap has already elapsed (poll was late), that frame is closed
    /// first and kept for the next [`poll`](Self::poll), so a late poll does not merge frames.
    /// Only one finished frame is kept: if it has not been polled, the newer one is dropped.
    pub fn on_bit(&mut self, bit: bool, now_us: u32) {
        if self.gap_elapsed(now_us) {
            let result = self.finish();
            if self.ready.is_none() {
                self.ready = Some(result);
            }
        }
        if self.count >= MAX_BITS {
            self.overflow = true;
        } else {
            self.bits = (self.bits << 1) | u64::from(bit);
            self.count += 1;
        }
        self.last_edge_us = now_us;
    }

    /// Returns a finished frame (or why it was rejected) once the line has been quiet for the
    /// frame gap; `None` while idle or mid-frame.
    pub fn poll(&mut self, now_us: u32) -> Option<Result<Frame, Error>> {
        if let Some(result) = self.ready.take() {
            return Some(result);
        }
        if self.gap_elapsed(now_us) {
            return Some(self.finish());
        }
        None
    }

    /// Drops any partial or unpolled frame, e.g. after the reader was power-cycled.
    pub fn reset(&mut self) {
        self.clear();
        self.ready = None;
    }

    /// True while a frame is being received.
    pub const fn is_receiving(&self) -> bool {
        self.count > 0 || self.overflow
    }

    fn gap_elapsed(&self, now_us: u32) -> bool {
        self.is_receiving() && now_us.wrapping_sub(self.last_edge_us) >= self.frame_gap_us
    }

    fn clear(&mut self) {
        self.bits = 0;
        self.count = 0;
        self.overflow = false;
    }

    fn finish(&mut self) -> Result<Frame, Error> {
        let (bits, count, overflow) = (self.bits, self.count, self.overflow);
        self.clear();
        if overflow {
            return Err(Error::Overflow);
        }
        match count {
            26 => decode(Format::W26, bits),
            34 => decode(Format::W34, bits),
            n => Err(Error::UnsupportedLength(n)),
        }
    }
}

/// Checks both parity bits of a 26- or 34-bit frame and extracts its data bits.
fn decode(format: Format, bits: u64) -> Result<Frame, Error> {
    let n = u32::from(format.bits());
    let half = (n - 2) / 2; // data bits covered by each parity bit
    // Leading parity bit plus the first half of the data: an even number of ones.
    if (bits >> (half + 1)).count_ones() % 2 != 0 {
        return Err(Error::Parity { which: ParityBit::Even });
    }
    // Second half of the data plus the trailing parity bit: an odd number of ones.
    if (bits & ((1u64 << (half + 1)) - 1)).count_ones() % 2 != 1 {
        return Err(Error::Parity { which: ParityBit::Odd });
    }
    let data = ((bits >> 1) & ((1u64 << (n - 2)) - 1)) as u32;
    let bytes = data.to_be_bytes();
    let uid_bytes = match format {
        Format::W26 => &bytes[1..],
        Format::W34 => &bytes[..],
    };
    // 3 or 4 bytes always fit in a CardUid.
    let uid = CardUid::from_slice(uid_bytes).map_err(|_| Error::UnsupportedLength(format.bits()))?;
    Ok(Frame { format, data, uid })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit interval of a typical reader.
    const BIT_US: u32 = 2_000;

    /// Builds a frame MSB first with correct parity: (bits, count).
    fn encode(format: Format, data: u32) -> (u64, u8) {
        let n = format.bits();
        let half = u32::from(n - 2) / 2;
        let data_bits = u64::from(data) & ((1u64 << (n - 2)) - 1);
        let first_half = data_bits >> half;
        let second_half = data_bits & ((1u64 << half) - 1);
        let even = u64::from(first_half.count_ones() % 2 == 1);
        let odd = u64::from(second_half.count_ones() % 2 == 0);
        ((even << (n - 1)) | (data_bits << 1) | odd, n)
    }

    /// Feeds `count` bits of `bits` starting at `start_us`; returns the time of the last edge.
    fn feed(decoder: &mut Decoder, bits: u64, count: u8, start_us: u32) -> u32 {
        let mut now = start_us;
        for i in (0..count).rev() {
            decoder.on_bit((bits >> i) & 1 == 1, now);
            now = now.wrapping_add(BIT_US);
        }
        now.wrapping_sub(BIT_US)
    }

    fn w26(facility: u8, card: u16) -> (u64, u8) {
        encode(Format::W26, (u32::from(facility) << 16) | u32::from(card))
    }

    #[test]
    fn wiegand_26_frame_decodes_to_facility_and_card_number() {
        let mut decoder = Decoder::new();
        let (bits, count) = w26(123, 45678);
        let last = feed(&mut decoder, bits, count, 1_000);

        let frame = decoder.poll(last + DEFAULT_FRAME_GAP_US).unwrap().unwrap();
        assert_eq!(frame.format(), Format::W26);
        assert_eq!(frame.facility_code(), Some(123));
        assert_eq!(frame.card_number(), Some(45678));
        assert_eq!(frame.uid().as_bytes(), &[0x7B, 0xB2, 0x6E]);
        assert_eq!(frame.format().reader_kind(), ReaderKind::Wiegand26);
        assert_eq!(decoder.poll(last + 2 * DEFAULT_FRAME_GAP_US), None);
    }

    #[test]
    fn wiegand_26_known_bit_pattern_is_accepted() {
        // Facility 123 (0111 1011), card 45678 (1011 0010 0110 1110): the first 12 data bits hold
        // nine ones, so the even parity bit is 1; the last 12 hold six, so the odd parity bit is 1.
        #[allow(clippy::unusual_byte_groupings)] // grouped by field: parity, facility, card, parity
        let bits = 0b1_01111011_1011001001101110_1u64;
        let mut decoder = Decoder::new();
        let last = feed(&mut decoder, bits, 26, 0);
        let frame = decoder.poll(last + DEFAULT_FRAME_GAP_US).unwrap().unwrap();
        assert_eq!(frame.data(), 0x7B_B26E);
    }

    #[test]
    fn wiegand_34_frame_decodes_to_a_four_byte_uid() {
        let mut decoder = Decoder::new();
        let (bits, count) = encode(Format::W34, 0xDEAD_BEEF);
        let last = feed(&mut decoder, bits, count, 0);

        let frame = decoder.poll(last + DEFAULT_FRAME_GAP_US).unwrap().unwrap();
        assert_eq!(frame.format(), Format::W34);
        assert_eq!(frame.data(), 0xDEAD_BEEF);
        assert_eq!(frame.uid().as_bytes(), &[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(frame.facility_code(), None);
        assert_eq!(frame.card_number(), None);
        assert_eq!(frame.format().reader_kind(), ReaderKind::Wiegand34);
    }

    #[test]
    fn frame_is_not_reported_before_the_gap_has_elapsed() {
        let mut decoder = Decoder::new();
        let (bits, count) = w26(1, 2);
        let last = feed(&mut decoder, bits, count, 0);
        assert_eq!(decoder.poll(last), None);
        assert_eq!(decoder.poll(last + DEFAULT_FRAME_GAP_US - 1), None);
        assert!(decoder.is_receiving());
        assert!(decoder.poll(last + DEFAULT_FRAME_GAP_US).unwrap().is_ok());
        assert!(!decoder.is_receiving());
    }

    #[test]
    fn flipped_bit_in_first_half_is_an_even_parity_error() {
        let mut decoder = Decoder::new();
        let (bits, count) = w26(123, 45678);
        let last = feed(&mut decoder, bits ^ (1 << 20), count, 0);
        assert_eq!(decoder.poll(last + DEFAULT_FRAME_GAP_US), Some(Err(Error::Parity { which: ParityBit::Even })));
    }

    #[test]
    fn flipped_bit_in_second_half_is_an_odd_parity_error() {
        let mut decoder = Decoder::new();
        let (bits, count) = w26(123, 45678);
        let last = feed(&mut decoder, bits ^ (1 << 3), count, 0);
        assert_eq!(decoder.poll(last + DEFAULT_FRAME_GAP_US), Some(Err(Error::Parity { which: ParityBit::Odd })));
    }

    #[test]
    fn wrong_parity_bits_of_a_34_bit_frame_are_reported() {
        let (bits, count) = encode(Format::W34, 0x1234_5678);
        for (flip, which) in [(33, ParityBit::Even), (0, ParityBit::Odd)] {
            let mut decoder = Decoder::new();
            let last = feed(&mut decoder, bits ^ (1 << flip), count, 0);
            assert_eq!(decoder.poll(last + DEFAULT_FRAME_GAP_US), Some(Err(Error::Parity { which })));
        }
    }

    #[test]
    fn frames_of_other_lengths_are_unsupported() {
        for count in [4u8, 25, 27, 32, 35, 37] {
            let mut decoder = Decoder::new();
            let last = feed(&mut decoder, 0x5555_5555_5555, count, 0);
            assert_eq!(decoder.poll(last + DEFAULT_FRAME_GAP_US), Some(Err(Error::UnsupportedLength(count))));
        }
    }

    #[test]
    fn too_many_bits_without_a_gap_is_an_overflow_and_the_next_frame_decodes() {
        let mut decoder = Decoder::new();
        let mut now = 0u32;
        for i in 0..100u32 {
            decoder.on_bit(i % 3 == 0, now);
            now += BIT_US;
        }
        now += DEFAULT_FRAME_GAP_US;
        assert_eq!(decoder.poll(now), Some(Err(Error::Overflow)));

        let (bits, count) = w26(7, 4242);
        let last = feed(&mut decoder, bits, count, now);
        let frame = decoder.poll(last + DEFAULT_FRAME_GAP_US).unwrap().unwrap();
        assert_eq!(frame.card_number(), Some(4242));
    }

    #[test]
    fn noise_glitch_is_rejected_and_the_following_frame_decodes() {
        let mut decoder = Decoder::new();
        decoder.on_bit(true, 500);
        decoder.on_bit(false, 530);
        assert_eq!(decoder.poll(30_000), Some(Err(Error::UnsupportedLength(2))));

        let (bits, count) = w26(123, 45678);
        let last = feed(&mut decoder, bits, count, 100_000);
        let frame = decoder.poll(last + DEFAULT_FRAME_GAP_US).unwrap().unwrap();
        assert_eq!(frame.card_number(), Some(45678));
    }

    #[test]
    fn parity_error_does_not_poison_the_next_frame() {
        let mut decoder = Decoder::new();
        let (bits, count) = w26(9, 999);
        let last = feed(&mut decoder, bits ^ 1, count, 0);
        assert!(matches!(decoder.poll(last + DEFAULT_FRAME_GAP_US), Some(Err(Error::Parity { .. }))));
        let last = feed(&mut decoder, bits, count, last + 300_000);
        assert!(decoder.poll(last + DEFAULT_FRAME_GAP_US).unwrap().is_ok());
    }

    #[test]
    fn glitch_just_before_a_frame_is_kept_separate_when_the_gap_is_respected() {
        // A stray edge 30 ms before the frame must not be glued onto it even if nobody polled.
        let mut decoder = Decoder::new();
        decoder.on_bit(true, 0);
        let (bits, count) = w26(123, 45678);
        let last = feed(&mut decoder, bits, count, 30_000);
        assert_eq!(decoder.poll(last), Some(Err(Error::UnsupportedLength(1))));
        let frame = decoder.poll(last + DEFAULT_FRAME_GAP_US).unwrap().unwrap();
        assert_eq!(frame.card_number(), Some(45678));
    }

    #[test]
    fn frame_spanning_the_microsecond_counter_wrap_decodes() {
        let mut decoder = Decoder::new();
        let (bits, count) = w26(200, 65535);
        let start = u32::MAX - 10 * BIT_US;
        let last = feed(&mut decoder, bits, count, start);
        assert!(last < start, "the counter should have wrapped");
        assert_eq!(decoder.poll(last.wrapping_add(DEFAULT_FRAME_GAP_US - 1)), None);
        let frame = decoder.poll(last.wrapping_add(DEFAULT_FRAME_GAP_US)).unwrap().unwrap();
        assert_eq!(frame.facility_code(), Some(200));
        assert_eq!(frame.card_number(), Some(65535));
    }

    #[test]
    fn gap_that_straddles_the_wrap_still_closes_the_frame() {
        let mut decoder = Decoder::new();
        let (bits, count) = w26(1, 1);
        let last = feed(&mut decoder, bits, count, u32::MAX - 60_000);
        assert_eq!(last, u32::MAX - 10_000);
        assert_eq!(decoder.poll(u32::MAX), None);
        assert!(decoder.poll(last.wrapping_add(DEFAULT_FRAME_GAP_US)).unwrap().is_ok());
    }

    #[test]
    fn custom_frame_gap_is_honoured() {
        let mut decoder = Decoder::with_frame_gap_us(5_000);
        let (bits, count) = w26(1, 1);
        // 2 ms bits stay within one frame even with a short gap.
        let last = feed(&mut decoder, bits, count, 0);
        assert_eq!(decoder.poll(last + 4_999), None);
        assert!(decoder.poll(last + 5_000).unwrap().is_ok());
    }

    #[test]
    fn reset_discards_a_partial_frame() {
        let mut decoder = Decoder::new();
        feed(&mut decoder, 0b1010, 4, 0);
        decoder.reset();
        assert!(!decoder.is_receiving());
        assert_eq!(decoder.poll(1_000_000), None);
    }

    #[test]
    fn idle_decoder_reports_nothing() {
        let mut decoder = Decoder::default();
        assert_eq!(decoder.poll(0), None);
        assert_eq!(decoder.poll(u32::MAX), None);
    }
}
