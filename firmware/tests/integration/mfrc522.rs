//! MFRC522 driver against register-level SPI transcripts.

use std::convert::Infallible;

use embedded_hal::spi::{ErrorType, Operation, SpiDevice};
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as DelayTx};
use embedded_hal_mock::eh1::spi::Mock;
use nimbus_firmware::mfrc522::{Atqa, ChipVersion, Error, Initialized, Mfrc522, RECEIVE_POLLS, RESET_POLLS, Received};

use crate::common::*;

type Reader = Mfrc522<Mock<u8>, NoopDelay, Initialized>;

/// An initialized driver whose bus will then see exactly `after_init`.
fn reader(after_init: Transcript) -> (Reader, Mock<u8>) {
    let mut transcript = Transcript::new().init();
    transcript.0.extend(after_init.0);
    let spi = transcript.mock();
    let reader = Mfrc522::new(spi.clone(), NoopDelay::new()).init().map_err(|(_, e)| e).unwrap();
    (reader, spi)
}

fn finish(reader: Reader, mut spi: Mock<u8>) {
    drop(reader);
    spi.done();
}

#[rustfmt::skip]
const V2_SELF_TEST: [u8; 64] = [
    0x00, 0xEB, 0x66, 0xBA, 0x57, 0xBF, 0x23, 0x95,
    0xD0, 0xE3, 0x0D, 0x3D, 0x27, 0x89, 0x5C, 0xDE,
    0x9D, 0x3B, 0xA7, 0x00, 0x21, 0x5B, 0x89, 0x82,
    0x51, 0x3A, 0xEB, 0x02, 0x0C, 0xA5, 0x00, 0x49,
    0x7C, 0x84, 0x4D, 0xB3, 0xCC, 0xD2, 0x1B, 0x81,
    0x5D, 0x48, 0x76, 0xD5, 0x71, 0x61, 0x21, 0xA9,
    0x86, 0x96, 0x83, 0x38, 0xCF, 0x9D, 0x5B, 0x6D,
    0xDC, 0x15, 0xBA, 0x3E, 0x7D, 0x95, 0x3B, 0x2F,
];

#[rustfmt::skip]
const V1_SELF_TEST: [u8; 64] = [
    0x00, 0xC6, 0x37, 0xD5, 0x32, 0xB7, 0x57, 0x5C,
    0xC2, 0xD8, 0x7C, 0x4D, 0xD9, 0x70, 0xC7, 0x73,
    0x10, 0xE6, 0xD2, 0xAA, 0x5E, 0xA1, 0x3E, 0x5A,
    0x14, 0xAF, 0x30, 0x61, 0xC9, 0x70, 0xDB, 0x2E,
    0x64, 0x22, 0x72, 0xB5, 0xBD, 0x65, 0xF4, 0xEC,
    0x22, 0xBC, 0xD3, 0x72, 0x35, 0xCD, 0xAA, 0x41,
    0x1F, 0xA7, 0xF3, 0x53, 0x14, 0xDE, 0x7E, 0x02,
    0xD9, 0x0F, 0xB5, 0x5E, 0x25, 0x1D, 0x29, 0x79,
];

/// The self test up to and including the 64-byte FIFO read, then the closing soft reset.
fn self_test_transcript(version: u8, result: &[u8; 64]) -> Transcript {
    Transcript::new()
        .soft_reset(0)
        .read(VERSION, version)
        .write(FIFO_LEVEL, 0x80)
        .fifo_write(&[0u8; 25])
        .write(COMMAND, MEM)
        .write(AUTO_TEST, 0x09)
        .fifo_write(&[0x00])
        .write(COMMAND, CALC_CRC)
        .read(FIFO_LEVEL, 0x21) // still running
        .read(FIFO_LEVEL, 0x40)
        .write(COMMAND, IDLE)
        .fifo_read(result)
        .soft_reset(0)
}

#[test]
fn test_crc_helper_matches_the_well_known_hlta_frame() {
    // HLTA on air is 50 00 57 CD; this anchors every CRC in the other transcripts.
    assert_eq!(crc_a(&[0x50, 0x00]), [0x57, 0xCD]);
}

#[test]
fn init_soft_resets_waits_for_the_oscillator_and_configures_timer_ask_crc_and_antenna() {
    let transcript = Transcript::new()
        .soft_reset(1) // PowerDown still set at the first poll
        .write(TX_MODE, 0x00)
        .write(RX_MODE, 0x00)
        .write(COLL, 0x00)
        .write(T_MODE, 0x80)
        .write(T_PRESCALER, 0xA9)
        .write(T_RELOAD_H, 0x03)
        .write(T_RELOAD_L, 0xE8)
        .write(TX_ASK, 0x40)
        .write(MODE, 0x3D)
        .read(TX_CONTROL, 0x80)
        .write(TX_CONTROL, 0x83);
    let mut spi = transcript.mock();
    let mut delay = CheckedDelay::new(&[DelayTx::delay_ms(1), DelayTx::delay_ms(1)]);

    let reader = Mfrc522::new(spi.clone(), delay.clone()).init().map_err(|(_, e)| e).unwrap();

    drop(reader);
    spi.done();
    delay.done();
}

#[test]
fn init_does_not_rewrite_an_antenna_that_is_already_on() {
    let mut t = Transcript::new().soft_reset(0);
    for (reg, value) in [
        (TX_MODE, 0x00),
        (RX_MODE, 0x00),
        (COLL, 0x00),
        (T_MODE, 0x80),
        (T_PRESCALER, 0xA9),
        (T_RELOAD_H, 0x03),
        (T_RELOAD_L, 0xE8),
        (TX_ASK, 0x40),
        (MODE, 0x3D),
    ] {
        t = t.write(reg, value);
    }
    let mut spi = t.read(TX_CONTROL, 0x83).mock();

    let reader = Mfrc522::new(spi.clone(), NoopDelay::new()).init();

    assert!(reader.is_ok());
    drop(reader);
    spi.done();
}

#[test]
fn init_gives_the_driver_back_when_the_chip_never_leaves_power_down() {
    let mut spi = Transcript::new().soft_reset(RESET_POLLS as usize).0;
    spi.truncate(spi.len() - 3); // the chip never reports ready
    let mut spi = Mock::new(&spi);

    let Err((uninitialized, error)) = Mfrc522::new(spi.clone(), NoopDelay::new()).init() else {
        panic!("init must fail");
    };

    assert_eq!(error, Error::ChipUnresponsive);
    let (_bus, _delay) = uninitialized.release();
    spi.done();
}

#[test]
fn version_reads_the_version_register() {
    let (mut reader, spi) = reader(Transcript::new().read(VERSION, 0x92));
    assert_eq!(reader.version(), Ok(ChipVersion::V2));
    finish(reader, spi);
}

#[test]
fn reqa_sends_a_seven_bit_short_frame_and_returns_the_atqa() {
    let (mut reader, spi) = reader(Transcript::new().send(&[0x26], 0x07).answer(&[0x04, 0x00], 0));
    let atqa = reader.reqa().unwrap();
    assert_eq!(atqa, Atqa([0x04, 0x00]));
    finish(reader, spi);
}

#[test]
fn wupa_sends_0x52_as_a_short_frame() {
    let (mut reader, spi) = reader(Transcript::new().send(&[0x52], 0x07).answer(&[0x44, 0x00], 0));
    assert_eq!(reader.wupa(), Ok(Atqa([0x44, 0x00])));
    finish(reader, spi);
}

#[test]
fn reqa_waits_for_reception_and_tolerates_a_collided_atqa() {
    let t = Transcript::new()
        .send(&[0x26], 0x07)
        .read(COM_IRQ, IRQ_TX_ONLY) // transmitted, card still answering
        .collided_answer(0x03, &[0x04, 0x00], 0);
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.reqa(), Ok(Atqa([0x04, 0x00])));
    finish(reader, spi);
}

#[test]
fn reqa_times_out_when_the_chip_timer_expires_without_a_card() {
    let (mut reader, spi) = reader(Transcript::new().send(&[0x26], 0x07).silence());
    assert_eq!(reader.reqa(), Err(Error::Timeout));
    finish(reader, spi);
}

#[test]
fn reqa_with_a_one_byte_answer_is_an_invalid_response() {
    let (mut reader, spi) = reader(Transcript::new().send(&[0x26], 0x07).answer(&[0x04], 0));
    assert_eq!(reader.reqa(), Err(Error::InvalidResponse));
    finish(reader, spi);
}

#[test]
fn transceive_gives_up_when_the_chip_never_raises_an_interrupt() {
    let mut t = Transcript::new().send(&[0x26], 0x07);
    for _ in 0..RECEIVE_POLLS {
        t = t.read(COM_IRQ, 0x00);
    }
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.reqa(), Err(Error::ChipUnresponsive));
    finish(reader, spi);
}

#[test]
fn transceive_maps_error_register_bits_to_errors() {
    for (error_reg, expected) in [
        (0x10, Error::BufferOverflow),
        (0x01, Error::Protocol),
        (0x02, Error::Parity),
        (0x40, Error::Overheated),
        (0x13, Error::BufferOverflow),
    ] {
        let t = Transcript::new().send(&[0x30, 0x04], 0x00).read(COM_IRQ, IRQ_TX_RX).read(ERROR, error_reg);
        let (mut reader, spi) = reader(t);
        let mut rx = [0u8; 16];
        assert_eq!(reader.transceive(&[0x30, 0x04], 0, &mut rx), Err(expected), "ErrorReg {error_reg:#04x}");
        finish(reader, spi);
    }
}

#[test]
fn transceive_returns_the_answer_and_its_valid_bits() {
    let t = Transcript::new().send(&[0x30, 0x04], 0x00).answer(&[0x0A], 4);
    let (mut reader, spi) = reader(t);
    let mut rx = [0u8; 16];
    let received = reader.transceive(&[0x30, 0x04], 0, &mut rx).unwrap();
    assert_eq!(received, Received { len: 1, last_bits: 4 });
    assert_eq!(rx[0], 0x0A);
    finish(reader, spi);
}

#[test]
fn transceive_refuses_an_answer_longer_than_the_receive_buffer() {
    let t = Transcript::new().send(&[0x30, 0x04], 0x00).read(COM_IRQ, IRQ_TX_RX).read(ERROR, 0x00).read(FIFO_LEVEL, 18);
    let (mut reader, spi) = reader(t);
    let mut rx = [0u8; 16];
    assert_eq!(reader.transceive(&[0x30, 0x04], 0, &mut rx), Err(Error::BufferOverflow));
    finish(reader, spi);
}

#[test]
fn transceive_refuses_a_frame_larger_than_the_fifo_without_touching_the_bus() {
    let (mut reader, spi) = reader(Transcript::new());
    let mut rx = [0u8; 4];
    assert_eq!(reader.transceive(&[0u8; 65], 0, &mut rx), Err(Error::BufferOverflow));
    finish(reader, spi);
}

#[test]
fn calculate_crc_uses_the_coprocessor_and_returns_low_byte_first() {
    let (mut reader, spi) = reader(Transcript::new().crc(&[0x93, 0x70, 1, 2, 3, 4, 4]));
    assert_eq!(reader.calculate_crc(&[0x93, 0x70, 1, 2, 3, 4, 4]), Ok(crc_a(&[0x93, 0x70, 1, 2, 3, 4, 4])));
    finish(reader, spi);
}

#[test]
fn select_reads_a_four_byte_uid_in_one_cascade_level() {
    let part = [0xDE, 0xAD, 0xBE, 0xEF];
    let (mut reader, spi) = reader(Transcript::new().cascade_level(0x93, part, 0x08));
    let uid = reader.select().unwrap();
    assert_eq!(uid.as_bytes(), &part);
    assert_eq!(uid.to_string(), "DEADBEEF");
    finish(reader, spi);
}

#[test]
fn select_reads_a_seven_byte_uid_over_two_cascade_levels() {
    let t = Transcript::new().cascade_level(0x93, [0x88, 0x04, 0xA1, 0xB2], 0x04).cascade_level(
        0x95,
        [0xC3, 0x5D, 0x80, 0x01],
        0x00,
    );
    let (mut reader, spi) = reader(t);
    let uid = reader.select().unwrap();
    assert_eq!(uid.as_bytes(), &[0x04, 0xA1, 0xB2, 0xC3, 0x5D, 0x80, 0x01]);
    finish(reader, spi);
}

#[test]
fn select_reads_a_ten_byte_uid_over_three_cascade_levels() {
    let t = Transcript::new()
        .cascade_level(0x93, [0x88, 0x01, 0x02, 0x03], 0x04)
        .cascade_level(0x95, [0x88, 0x04, 0x05, 0x06], 0x04)
        .cascade_level(0x97, [0x07, 0x08, 0x09, 0x0A], 0x20);
    let (mut reader, spi) = reader(t);
    let uid = reader.select().unwrap();
    assert_eq!(uid.as_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    finish(reader, spi);
}

#[test]
fn select_rejects_a_uid_part_with_a_wrong_bcc() {
    let t = Transcript::new().send(&[0x93, 0x20], 0x00).answer(&[0x11, 0x22, 0x33, 0x44, 0x45], 0);
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.select(), Err(Error::Bcc));
    finish(reader, spi);
}

#[test]
fn select_rejects_a_sak_whose_crc_does_not_match() {
    let part = [0x11, 0x22, 0x33, 0x44];
    let mut frame = vec![0x93, 0x70, 0x11, 0x22, 0x33, 0x44, bcc(&part)];
    let t = Transcript::new().anticollision(0x93, part).crc(&frame);
    frame.extend_from_slice(&crc_a(&frame));
    let t = t.send(&frame, 0x00).answer(&[0x08, 0x00, 0x00], 0).crc(&[0x08]);
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.select(), Err(Error::Crc));
    finish(reader, spi);
}

#[test]
fn select_rejects_cascade_bit_without_cascade_tag() {
    let (mut reader, spi) = reader(Transcript::new().cascade_level(0x93, [0x04, 0x01, 0x02, 0x03], 0x04));
    assert_eq!(reader.select(), Err(Error::InvalidResponse));
    finish(reader, spi);
}

#[test]
fn select_rejects_a_fourth_cascade_level() {
    let t = Transcript::new()
        .cascade_level(0x93, [0x88, 0x01, 0x02, 0x03], 0x04)
        .cascade_level(0x95, [0x88, 0x04, 0x05, 0x06], 0x04)
        .cascade_level(0x97, [0x88, 0x07, 0x08, 0x09], 0x04);
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.select(), Err(Error::InvalidResponse));
    finish(reader, spi);
}

#[test]
fn select_times_out_when_the_card_leaves_during_anticollision() {
    let (mut reader, spi) = reader(Transcript::new().send(&[0x93, 0x20], 0x00).silence());
    assert_eq!(reader.select(), Err(Error::Timeout));
    finish(reader, spi);
}

#[test]
fn select_resolves_a_collision_by_following_the_card_with_a_one_bit() {
    // Two cards, 04 11 22 33 and 04 15 22 33, differ first in bit 3 of byte 1: UID bit 11.
    // The chip keeps the 10 bits before the collision and clears the rest.
    let chosen = [0x04, 0x15, 0x22, 0x33];
    let t = Transcript::new()
        .send(&[0x93, 0x20], 0x00)
        .collided_answer(11, &[0x04, 0x01, 0x00, 0x00, 0x00], 0)
        // 11 bits known: NVB 0x33, last byte sent with 3 bits, answer aligned to bit 3.
        .send(&[0x93, 0x33, 0x04, 0x05], 0x33)
        .answer(&[0x10, 0x22, 0x33, bcc(&chosen)], 0)
        .select(0x93, chosen, 0x08);
    let (mut reader, spi) = reader(t);
    let uid = reader.select().unwrap();
    assert_eq!(uid.as_bytes(), &chosen);
    finish(reader, spi);
}

#[test]
fn select_reports_a_collision_whose_position_the_chip_could_not_determine() {
    let t = Transcript::new().send(&[0x93, 0x20], 0x00).collided_answer(0x20, &[0x04, 0, 0, 0, 0], 0);
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.select(), Err(Error::Collision));
    finish(reader, spi);
}

#[test]
fn select_reports_a_collision_position_that_does_not_advance() {
    // 11 bits are known after the first round; a chip claiming a collision at bit 2 of the second
    // round's answer (UID bit 10, already known) must not send the driver round in circles.
    let t = Transcript::new()
        .send(&[0x93, 0x20], 0x00)
        .collided_answer(11, &[0x04, 0x01, 0x00, 0x00, 0x00], 0)
        .send(&[0x93, 0x33, 0x04, 0x05], 0x33)
        .collided_answer(2, &[0x00, 0x00, 0x00, 0x00], 0);
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.select(), Err(Error::Collision));
    finish(reader, spi);
}

#[test]
fn hlta_succeeds_when_the_card_stays_silent() {
    let (mut reader, spi) = reader(Transcript::new().hlta());
    assert_eq!(reader.hlta(), Ok(()));
    finish(reader, spi);
}

#[test]
fn hlta_answered_by_a_card_is_an_invalid_response() {
    let t = Transcript::new().crc(&[0x50, 0x00]).send(&[0x50, 0x00, 0x57, 0xCD], 0x00).answer(&[0x00], 4);
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.hlta(), Err(Error::InvalidResponse));
    finish(reader, spi);
}

#[test]
fn read_card_returns_none_when_no_card_answers_reqa() {
    let (mut reader, spi) = reader(Transcript::new().send(&[0x26], 0x07).silence());
    assert_eq!(reader.read_card(), Ok(None));
    finish(reader, spi);
}

#[test]
fn read_card_requests_selects_and_halts_the_card() {
    let part = [0x12, 0x34, 0x56, 0x78];
    let t = Transcript::new().reqa([0x04, 0x00]).cascade_level(0x93, part, 0x08).hlta();
    let (mut reader, spi) = reader(t);
    let uid = reader.read_card().unwrap().unwrap();
    assert_eq!(uid.as_bytes(), &part);
    finish(reader, spi);
}

#[test]
fn read_card_propagates_a_failed_selection() {
    let t = Transcript::new().reqa([0x04, 0x00]).send(&[0x93, 0x20], 0x00).answer(&[1, 2, 3, 4, 0], 0);
    let (mut reader, spi) = reader(t);
    assert_eq!(reader.read_card(), Err(Error::Bcc));
    finish(reader, spi);
}

#[test]
fn self_test_passes_when_the_fifo_matches_the_v2_table() {
    let mut spi = self_test_transcript(0x92, &V2_SELF_TEST).mock();
    let mut chip = Mfrc522::new(spi.clone(), NoopDelay::new());
    assert_eq!(chip.self_test(), Ok(ChipVersion::V2));
    drop(chip);
    spi.done();
}

#[test]
fn self_test_passes_when_the_fifo_matches_the_v1_table() {
    let mut spi = self_test_transcript(0x91, &V1_SELF_TEST).mock();
    let mut chip = Mfrc522::new(spi.clone(), NoopDelay::new());
    assert_eq!(chip.self_test(), Ok(ChipVersion::V1));
    drop(chip);
    spi.done();
}

#[test]
fn self_test_fails_when_one_byte_differs() {
    let mut corrupted = V2_SELF_TEST;
    corrupted[37] ^= 0x01;
    let mut spi = self_test_transcript(0x92, &corrupted).mock();
    let mut chip = Mfrc522::new(spi.clone(), NoopDelay::new());
    assert_eq!(chip.self_test(), Err(Error::SelfTestFailed));
    drop(chip);
    spi.done();
}

#[test]
fn self_test_fails_when_a_v1_chip_produces_the_v2_table() {
    let mut spi = self_test_transcript(0x91, &V2_SELF_TEST).mock();
    let mut chip = Mfrc522::new(spi.clone(), NoopDelay::new());
    assert_eq!(chip.self_test(), Err(Error::SelfTestFailed));
    drop(chip);
    spi.done();
}

#[test]
fn self_test_refuses_a_chip_version_without_a_reference_table() {
    let mut spi = Transcript::new().soft_reset(0).read(VERSION, 0x88).mock();
    let mut chip = Mfrc522::new(spi.clone(), NoopDelay::new());
    assert_eq!(chip.self_test(), Err(Error::UnknownVersion(0x88)));
    drop(chip);
    spi.done();
}

#[test]
fn initialized_driver_can_go_back_to_self_test_and_init_again() {
    let mut t = Transcript::new().init();
    t.0.extend(self_test_transcript(0x92, &V2_SELF_TEST).0);
    t.0.extend(Transcript::new().init().0);
    let mut spi = t.mock();

    let reader = Mfrc522::new(spi.clone(), NoopDelay::new()).init().map_err(|(_, e)| e).unwrap();
    let mut chip = reader.into_uninitialized();
    assert_eq!(chip.self_test(), Ok(ChipVersion::V2));
    let reader = chip.init().map_err(|(_, e)| e).unwrap();

    drop(reader);
    spi.done();
}

#[test]
fn errors_describe_themselves_for_logs() {
    assert_eq!(Error::<()>::Timeout.to_string(), "no card answered before the MFRC522 timer expired");
    assert_eq!(Error::<()>::UnknownVersion(0x88).to_string(), "no self-test reference for MFRC522 version 0x88");
    let spi_error: Error<&str> = Error::Spi("nack");
    assert!(spi_error.to_string().contains("nack"));
    let _: &dyn std::error::Error = &spi_error;
}

/// A bus whose every read returns the next byte of a pseudo-random stream (or a constant):
/// a chip that is missing, broken or replaced by noise.
struct NoiseSpi {
    state: u64,
    constant: Option<u8>,
    /// Answer each register with values a real chip could plausibly show, so that random data
    /// reaches anticollision and SELECT instead of failing at the first interrupt poll.
    plausible: bool,
    transactions: u64,
}

impl NoiseSpi {
    fn random(seed: u64) -> Self {
        NoiseSpi {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            constant: None,
            plausible: false,
            transactions: 0,
        }
    }

    fn constant(byte: u8) -> Self {
        NoiseSpi { state: 1, constant: Some(byte), plausible: false, transactions: 0 }
    }

    fn plausible(seed: u64) -> Self {
        NoiseSpi { plausible: true, ..Self::random(seed) }
    }

    /// The value of a single-register read at SPI address `address`.
    fn register(&mut self, address: u8) -> u8 {
        let noise = self.next_byte();
        if !self.plausible {
            return noise;
        }
        let dice = self.next_byte();
        match (address & 0x7E) >> 1 {
            COMMAND => 0x00,
            DIV_IRQ => 0x04,
            COM_IRQ if dice < 230 => IRQ_TX_RX,
            ERROR if dice < 150 => 0x00,
            ERROR if dice < 220 => 0x08,
            FIFO_LEVEL => noise % 8,
            COLL => noise & 0x3F,
            _ => noise,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if let Some(byte) = self.constant {
            return byte;
        }
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    }
}

impl ErrorType for NoiseSpi {
    type Error = Infallible;
}

impl SpiDevice for NoiseSpi {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Infallible> {
        self.transactions += 1;
        for op in operations {
            match op {
                Operation::TransferInPlace(buf) if buf.len() == 2 => {
                    let address = buf[0];
                    buf[0] = self.next_byte();
                    buf[1] = self.register(address);
                }
                Operation::Read(buf) | Operation::TransferInPlace(buf) => {
                    buf.iter_mut().for_each(|b| *b = self.next_byte())
                }
                Operation::Transfer(read, _) => read.iter_mut().for_each(|b| *b = self.next_byte()),
                Operation::Write(_) | Operation::DelayNs(_) => {}
            }
        }
        Ok(())
    }
}

#[test]
fn read_card_never_panics_or_hangs_whatever_the_chip_answers() {
    let mut outcomes = [0usize; 3]; // card, no card, error
    for seed in 0..3_000u64 {
        let chip = Mfrc522::new(NoiseSpi::random(seed), NoopDelay::new());
        let Ok(mut reader) = chip.init() else { continue };
        for _ in 0..5 {
            match reader.read_card() {
                Ok(Some(_)) => outcomes[0] += 1,
                Ok(None) => outcomes[1] += 1,
                Err(_) => outcomes[2] += 1,
            }
        }
        let (bus, _) = reader.release();
        // Bounded: a handful of polls per wait, never an endless loop.
        assert!(bus.transactions < 20_000, "seed {seed}: {} transactions", bus.transactions);
    }
    assert!(outcomes[1] + outcomes[2] > 0);
}

#[test]
fn read_card_never_panics_on_plausible_but_garbled_answers() {
    let mut errors = std::collections::HashSet::new();
    for seed in 0..3_000u64 {
        let chip = Mfrc522::new(NoiseSpi::plausible(seed), NoopDelay::new());
        let mut reader = chip.init().map_err(|(_, e)| e).unwrap();
        for _ in 0..5 {
            if let Err(e) = reader.read_card() {
                errors.insert(std::mem::discriminant(&e));
            }
        }
        let (bus, _) = reader.release();
        assert!(bus.transactions < 20_000, "seed {seed}: {} transactions", bus.transactions);
    }
    // The garbage got past the interrupt poll into anticollision and SELECT checks.
    for deep in [Error::Bcc, Error::Collision, Error::InvalidResponse] {
        assert!(errors.contains(&std::mem::discriminant(&deep)), "{deep:?} never reached");
    }
}

#[test]
fn self_test_never_panics_on_noise() {
    for seed in 0..500u64 {
        let mut chip = Mfrc522::new(NoiseSpi::random(seed), NoopDelay::new());
        assert!(chip.self_test().is_err(), "noise cannot pass the self test");
    }
}

#[test]
fn a_bus_reading_all_zeros_is_an_unresponsive_chip_not_an_empty_field() {
    let reader = Mfrc522::new(NoiseSpi::constant(0x00), NoopDelay::new());
    let mut reader = reader.init().map_err(|(_, e)| e).unwrap();
    assert_eq!(reader.read_card(), Err(Error::ChipUnresponsive));
}

#[test]
fn a_bus_reading_all_ones_never_yields_a_card() {
    let chip = Mfrc522::new(NoiseSpi::constant(0xFF), NoopDelay::new());
    // PowerDown reads as set forever.
    let Err((chip, error)) = chip.init() else { panic!("init must fail") };
    assert_eq!(error, Error::ChipUnresponsive);
    let (bus, _) = chip.release();
    assert_eq!(bus.transactions, 1 + u64::from(RESET_POLLS));
}
