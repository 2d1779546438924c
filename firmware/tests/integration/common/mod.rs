//! Register-level SPI transcripts of an MFRC522, for `embedded-hal-mock`.
//!
//! Register numbers and bit values are written out from the datasheet here instead of being
//! imported from the driver, so a wrong constant in the driver fails the tests.

use embedded_hal_mock::eh1::spi::{Mock, Transaction};

pub type Tx = Transaction<u8>;

// Registers (datasheet table 20).
pub const COMMAND: u8 = 0x01;
pub const COM_IRQ: u8 = 0x04;
pub const DIV_IRQ: u8 = 0x05;
pub const ERROR: u8 = 0x06;
pub const FIFO_DATA: u8 = 0x09;
pub const FIFO_LEVEL: u8 = 0x0A;
pub const CONTROL: u8 = 0x0C;
pub const BIT_FRAMING: u8 = 0x0D;
pub const COLL: u8 = 0x0E;
pub const MODE: u8 = 0x11;
pub const TX_MODE: u8 = 0x12;
pub const RX_MODE: u8 = 0x13;
pub const TX_CONTROL: u8 = 0x14;
pub const TX_ASK: u8 = 0x15;
pub const CRC_RESULT_H: u8 = 0x21;
pub const CRC_RESULT_L: u8 = 0x22;
pub const T_MODE: u8 = 0x2A;
pub const T_PRESCALER: u8 = 0x2B;
pub const T_RELOAD_H: u8 = 0x2C;
pub const T_RELOAD_L: u8 = 0x2D;
pub const AUTO_TEST: u8 = 0x36;
pub const VERSION: u8 = 0x37;

// Commands.
pub const IDLE: u8 = 0x00;
pub const MEM: u8 = 0x01;
pub const CALC_CRC: u8 = 0x03;
pub const TRANSCEIVE: u8 = 0x0C;
pub const SOFT_RESET: u8 = 0x0F;

// ComIrqReg values as a real chip shows them.
pub const IRQ_TX_RX: u8 = 0x60; // TxIRq | RxIRq
pub const IRQ_TX_TIMER: u8 = 0x41; // TxIRq | TimerIRq
pub const IRQ_TX_ONLY: u8 = 0x40; // transmission done, still receiving

/// CRC_A (ISO/IEC 14443-3 annex B), independent of the chip, to give transcripts real values.
pub fn crc_a(data: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0x6363;
    for &byte in data {
        let mut b = byte ^ (crc as u8);
        b ^= b << 4;
        let b = u16::from(b);
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4);
    }
    crc.to_le_bytes()
}

pub fn bcc(part: &[u8; 4]) -> u8 {
    part[0] ^ part[1] ^ part[2] ^ part[3]
}

/// A transcript built step by step, mirroring what the driver should do on the bus.
#[derive(Default)]
pub struct Transcript(pub Vec<Tx>);

impl Transcript {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn mock(&self) -> Mock<u8> {
        Mock::new(&self.0)
    }

    /// Register write: `0aaaaaa0`, value.
    pub fn write(mut self, reg: u8, value: u8) -> Self {
        self.0.push(Tx::transaction_start());
        self.0.push(Tx::write_vec(vec![(reg << 1) & 0x7E, value]));
        self.0.push(Tx::transaction_end());
        self
    }

    /// Register read: `1aaaaaa0`, 0x00 clocked in full duplex; the value comes in the 2nd byte.
    pub fn read(mut self, reg: u8, value: u8) -> Self {
        self.0.push(Tx::transaction_start());
        self.0.push(Tx::transfer_in_place(vec![((reg << 1) & 0x7E) | 0x80, 0x00], vec![0x00, value]));
        self.0.push(Tx::transaction_end());
        self
    }

    /// Burst write to the FIFO: the address once, then the data.
    pub fn fifo_write(mut self, data: &[u8]) -> Self {
        let mut bytes = vec![(FIFO_DATA << 1) & 0x7E];
        bytes.extend_from_slice(data);
        self.0.push(Tx::transaction_start());
        self.0.push(Tx::write_vec(bytes));
        self.0.push(Tx::transaction_end());
        self
    }

    /// Burst read from the FIFO: the read address once per byte, then 0x00.
    pub fn fifo_read(mut self, data: &[u8]) -> Self {
        let mut sent = vec![((FIFO_DATA << 1) & 0x7E) | 0x80; data.len()];
        sent.push(0x00);
        let mut answer = vec![0x00];
        answer.extend_from_slice(data);
        self.0.push(Tx::transaction_start());
        self.0.push(Tx::transfer_in_place(sent, answer));
        self.0.push(Tx::transaction_end());
        self
    }

    /// SoftReset, then PowerDown polls: `busy_polls` reads with the bit set, then one clear.
    pub fn soft_reset(self, busy_polls: usize) -> Self {
        let mut t = self.write(COMMAND, SOFT_RESET);
        for _ in 0..busy_polls {
            t = t.read(COMMAND, 0x10);
        }
        t.read(COMMAND, 0x00)
    }

    /// The whole of `init()` on a chip that is ready at the first poll, antenna off at reset.
    pub fn init(self) -> Self {
        self.soft_reset(0)
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
            .write(TX_CONTROL, 0x83)
    }

    /// The chip's CRC coprocessor computing CRC_A of `data` (done at the first poll).
    pub fn crc(self, data: &[u8]) -> Self {
        let [low, high] = crc_a(data);
        self.write(COMMAND, IDLE)
            .write(DIV_IRQ, 0x04)
            .write(FIFO_LEVEL, 0x80)
            .fifo_write(data)
            .write(COMMAND, CALC_CRC)
            .read(DIV_IRQ, 0x04)
            .write(COMMAND, IDLE)
            .read(CRC_RESULT_L, low)
            .read(CRC_RESULT_H, high)
    }

    /// Start of a Transceive: idle, clear IRQs, flush, load FIFO, framing, go.
    pub fn send(self, tx: &[u8], framing: u8) -> Self {
        self.write(COMMAND, IDLE)
            .write(COM_IRQ, 0x7F)
            .write(FIFO_LEVEL, 0x80)
            .fifo_write(tx)
            .write(BIT_FRAMING, framing)
            .write(COMMAND, TRANSCEIVE)
            .write(BIT_FRAMING, framing | 0x80)
    }

    /// A clean answer: RxIRq, no error, FIFO level, RxLastBits, FIFO contents.
    pub fn answer(self, rx: &[u8], last_bits: u8) -> Self {
        self.read(COM_IRQ, IRQ_TX_RX).answer_after_irq(0x00, rx, last_bits)
    }

    /// What follows the IRQ poll when ErrorReg holds `error` (no collision).
    pub fn answer_after_irq(self, error: u8, rx: &[u8], last_bits: u8) -> Self {
        self.read(ERROR, error).read(FIFO_LEVEL, rx.len() as u8).read(CONTROL, last_bits).fifo_read(rx)
    }

    /// An answer with CollErr set and CollReg = `coll`.
    pub fn collided_answer(self, coll: u8, rx: &[u8], last_bits: u8) -> Self {
        self.read(COM_IRQ, IRQ_TX_RX)
            .read(ERROR, 0x08)
            .read(COLL, coll)
            .read(FIFO_LEVEL, rx.len() as u8)
            .read(CONTROL, last_bits)
            .fifo_read(rx)
    }

    /// The chip timer expiring: no card answered.
    pub fn silence(self) -> Self {
        self.read(COM_IRQ, IRQ_TX_TIMER)
    }

    /// REQA answered with `atqa`.
    pub fn reqa(self, atqa: [u8; 2]) -> Self {
        self.send(&[0x26], 0x07).answer(&atqa, 0)
    }

    /// Anticollision at one level with a single card answering `part` + its BCC.
    pub fn anticollision(self, sel: u8, part: [u8; 4]) -> Self {
        let answer = [part[0], part[1], part[2], part[3], bcc(&part)];
        self.send(&[sel, 0x20], 0x00).answer(&answer, 0)
    }

    /// SELECT of `part` at one level, answered with `sak` + CRC_A, and the SAK CRC check.
    pub fn select(self, sel: u8, part: [u8; 4], sak: u8) -> Self {
        let mut frame = vec![sel, 0x70, part[0], part[1], part[2], part[3], bcc(&part)];
        let t = self.crc(&frame);
        frame.extend_from_slice(&crc_a(&frame));
        let [low, high] = crc_a(&[sak]);
        t.send(&frame, 0x00).answer(&[sak, low, high], 0).crc(&[sak])
    }

    /// One full cascade level: anticollision then SELECT.
    pub fn cascade_level(self, sel: u8, part: [u8; 4], sak: u8) -> Self {
        self.anticollision(sel, part).select(sel, part, sak)
    }

    /// HLTA with its CRC, and the card (correctly) staying silent.
    pub fn hlta(self) -> Self {
        self.crc(&[0x50, 0x00]).send(&[0x50, 0x00, 0x57, 0xCD], 0x00).silence()
    }
}
