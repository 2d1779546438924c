//! NXP MFRC522 contactless reader IC over SPI, enough of ISO/IEC 14443-3 type A to get a
//! card's UID: REQA/WUPA, anticollision and SELECT over cascade levels 1 to 3, and HLTA.
//!
//! The driver is a type state: [`Mfrc522::new`] gives an [`Uninitialized`] driver that can only
//! run the datasheet self test or [`init`](Mfrc522::init); card commands exist only on the
//! [`Initialized`] driver, so a card cannot be polled on a chip whose timer and modulation were
//! never configured.
//!
//! Every wait (reset, CRC coprocessor, reception, self test) is a bounded poll paced by the
//! [`DelayNs`] handed to [`Mfrc522::new`]; the limits are the `*_POLLS` constants below. A card
//! that does not answer is reported by the chip's own timer as [`Error::Timeout`]; a chip that
//! stops answering altogether is [`Error::ChipUnresponsive`].
//!
//! ```no_run
//! # fn demo<SPI: embedded_hal::spi::SpiDevice, D: embedded_hal::delay::DelayNs>(spi: SPI, delay: D) {
//! use nimbus_firmware::mfrc522::Mfrc522;
//!
//! let mut reader = match Mfrc522::new(spi, delay).init() {
//!     Ok(reader) => reader,
//!     Err((_uninitialized, _error)) => return, // retry later or release() the bus
//! };
//! if let Ok(Some(uid)) = reader.read_card() {
//!     // hand `uid` to the debouncer
//! #   let _ = uid;
//! }
//! # }
//! ```

use core::fmt;
use core::marker::PhantomData;

use embedded_hal::delay::DelayNs;
use embedded_hal::spi::{ErrorType, SpiDevice};
use nimbus_core::ids::CardUid;

/// MFRC522 registers (datasheet section 9.2); each variant's doc gives the datasheet name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Register {
    // Page 0: command and status.
    /// `CommandReg`: starts and stops command execution.
    Command = 0x01,
    /// `ComIEnReg`: which interrupt requests reach the IRQ pin.
    ComIEn = 0x02,
    /// `DivIEnReg`: which interrupt requests reach the IRQ pin.
    DivIEn = 0x03,
    /// `ComIrqReg`: interrupt request bits (Rx, Idle, Timer, Err...).
    ComIrq = 0x04,
    /// `DivIrqReg`: interrupt request bits (CRCIRq, MfinActIRq).
    DivIrq = 0x05,
    /// `ErrorReg`: error status of the last command.
    Error = 0x06,
    /// `Status1Reg`: communication status bits.
    Status1 = 0x07,
    /// `Status2Reg`: receiver and transmitter status bits.
    Status2 = 0x08,
    /// `FIFODataReg`: input and output of the 64-byte FIFO.
    FifoData = 0x09,
    /// `FIFOLevelReg`: bytes in the FIFO; bit 7 flushes it.
    FifoLevel = 0x0A,
    /// `WaterLevelReg`: FIFO underflow/overflow warning level.
    WaterLevel = 0x0B,
    /// `ControlReg`: timer start/stop and `RxLastBits`.
    Control = 0x0C,
    /// `BitFramingReg`: `StartSend`, `RxAlign` and `TxLastBits` for bit-oriented frames.
    BitFraming = 0x0D,
    /// `CollReg`: position of the first bit collision.
    Coll = 0x0E,
    // Page 1: communication.
    /// `ModeReg`: general transmit/receive modes, CRC preset.
    Mode = 0x11,
    /// `TxModeReg`: transmit data rate and framing.
    TxMode = 0x12,
    /// `RxModeReg`: receive data rate and framing.
    RxMode = 0x13,
    /// `TxControlReg`: antenna driver pins TX1 and TX2.
    TxControl = 0x14,
    /// `TxASKReg`: transmit modulation (100 % ASK).
    TxAsk = 0x15,
    /// `TxSelReg`: internal sources for the antenna driver.
    TxSel = 0x16,
    /// `RxSelReg`: internal receiver settings.
    RxSel = 0x17,
    /// `RxThresholdReg`: bit decoder thresholds.
    RxThreshold = 0x18,
    /// `DemodReg`: demodulator settings.
    Demod = 0x19,
    /// `MfTxReg`: MIFARE transmit parameters.
    MfTx = 0x1C,
    /// `MfRxReg`: MIFARE receive parameters.
    MfRx = 0x1D,
    /// `SerialSpeedReg`: UART interface speed.
    SerialSpeed = 0x1F,
    // Page 2: configuration.
    /// `CRCResultReg` high byte.
    CrcResultH = 0x21,
    /// `CRCResultReg` low byte.
    CrcResultL = 0x22,
    /// `ModWidthReg`: modulation width.
    ModWidth = 0x24,
    /// `RFCfgReg`: receiver gain.
    RfCfg = 0x26,
    /// `GsNReg`: n-driver conductance of TX1/TX2.
    GsN = 0x27,
    /// `CWGsPReg`: p-driver conductance without modulation.
    CwGsP = 0x28,
    /// `ModGsPReg`: p-driver conductance during modulation.
    ModGsP = 0x29,
    /// `TModeReg`: timer mode and prescaler high bits.
    TMode = 0x2A,
    /// `TPrescalerReg`: timer prescaler low byte.
    TPrescaler = 0x2B,
    /// `TReloadReg` high byte: timer reload value.
    TReloadH = 0x2C,
    /// `TReloadReg` low byte.
    TReloadL = 0x2D,
    /// `TCounterValReg` high byte: current timer value.
    TCounterValH = 0x2E,
    /// `TCounterValReg` low byte.
    TCounterValL = 0x2F,
    // Page 3: test.
    /// `TestSel1Reg`: test signal configuration.
    TestSel1 = 0x31,
    /// `TestSel2Reg`: test signal configuration and PRBS control.
    TestSel2 = 0x32,
    /// `TestPinEnReg`: output drivers of pins D1 to D7.
    TestPinEn = 0x33,
    /// `TestPinValueReg`: values of D1 to D7 used as I/O bus.
    TestPinValue = 0x34,
    /// `TestBusReg`: internal test bus status.
    TestBus = 0x35,
    /// `AutoTestReg`: digital self test.
    AutoTest = 0x36,
    /// `VersionReg`: silicon version.
    Version = 0x37,
    /// `AnalogTestReg`: pins AUX1 and AUX2.
    AnalogTest = 0x38,
    /// `TestDAC1Reg`: test value for TestDAC1.
    TestDac1 = 0x39,
    /// `TestDAC2Reg`: test value for TestDAC2.
    TestDac2 = 0x3A,
    /// `TestADCReg`: ADC I and Q channel values.
    TestAdc = 0x3B,
}

impl Register {
    /// SPI address byte for writing (datasheet 8.1.2.3): `0aaaaaa0`.
    pub const fn write_address(self) -> u8 {
        ((self as u8) << 1) & 0x7E
    }

    /// SPI address byte for reading: the write address with the MSB set.
    pub const fn read_address(self) -> u8 {
        self.write_address() | 0x80
    }
}

/// Commands written to `CommandReg` (datasheet section 10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    /// No action; cancels the running command.
    Idle = 0x0,
    /// Stores 25 bytes from the FIFO into the internal buffer.
    Mem = 0x1,
    /// Generates a 10-byte random ID in the internal buffer.
    GenerateRandomId = 0x2,
    /// Runs the CRC coprocessor (or the self test).
    CalcCrc = 0x3,
    /// Transmits the FIFO contents.
    Transmit = 0x4,
    /// Changes `CommandReg` bits without changing the command.
    NoCmdChange = 0x7,
    /// Activates the receiver.
    Receive = 0x8,
    /// Transmits the FIFO, then receives into it.
    Transceive = 0xC,
    /// MIFARE Classic authentication as a reader.
    MfAuthent = 0xE,
    /// Resets the chip.
    SoftReset = 0xF,
}

// Register bits used by the driver.
const POWER_DOWN: u8 = 0x10; // CommandReg
const CLEAR_ALL_IRQS: u8 = 0x7F; // ComIrqReg/DivIrqReg with Set1/Set2 = 0 clears the marked bits
const RX_IRQ: u8 = 0x20; // ComIrqReg
const IDLE_IRQ: u8 = 0x10;
const TIMER_IRQ: u8 = 0x01;
const CRC_IRQ: u8 = 0x04; // DivIrqReg
const TEMP_ERR: u8 = 0x40; // ErrorReg
const BUFFER_OVFL: u8 = 0x10;
const COLL_ERR: u8 = 0x08;
const PARITY_ERR: u8 = 0x02;
const PROTOCOL_ERR: u8 = 0x01;
const FLUSH_BUFFER: u8 = 0x80; // FIFOLevelReg
const FIFO_LEVEL_MASK: u8 = 0x7F;
const RX_LAST_BITS_MASK: u8 = 0x07; // ControlReg
const START_SEND: u8 = 0x80; // BitFramingReg
const COLL_POS_NOT_VALID: u8 = 0x20; // CollReg
const COLL_POS_MASK: u8 = 0x1F;
const ANTENNA_ON: u8 = 0x03; // TxControlReg: Tx1RFEn | Tx2RFEn
const SELF_TEST_ENABLE: u8 = 0x09; // AutoTestReg

/// Size of the chip's FIFO; no frame in or out can be longer.
pub const FIFO_SIZE: usize = 64;

/// Reset: polls of `CommandReg.PowerDown`, 1 ms apart (the oscillator needs well under 1 ms).
pub const RESET_POLLS: u32 = 50;
/// Reception: polls of `ComIrqReg`, 100 µs apart, so at least 40 ms, longer than the 25 ms chip
/// timer that normally ends the wait with [`Error::Timeout`].
pub const RECEIVE_POLLS: u32 = 400;
/// CRC coprocessor: polls of `DivIrqReg.CRCIRq`, 10 µs apart (a CRC over a few bytes takes µs).
pub const CRC_POLLS: u32 = 100;
/// Self test: polls of the FIFO level, 100 µs apart.
pub const SELF_TEST_POLLS: u32 = 100;

// Timer set up by `init`: f_timer = 13.56 MHz / (2 * 0x0A9 + 1) ≈ 40 kHz (25 µs per tick),
// reload 1000 ticks ≈ 25 ms. That is far above any ISO 14443-3 frame delay, so a silent card is
// reported quickly enough to poll ~40 times a second.
const T_MODE_AUTO: u8 = 0x80; // TAuto, prescaler high nibble 0
const T_PRESCALER: u8 = 0xA9;
const T_RELOAD: u16 = 1000;
const TX_ASK_FORCE_100: u8 = 0x40; // type A needs 100 % ASK
const MODE_CRC_6363: u8 = 0x3D; // TxWaitRF, PolMFin, CRCPreset = 01 (6363h, the CRC_A preset)

// ISO/IEC 14443-3 type A.
const REQA: u8 = 0x26;
const WUPA: u8 = 0x52;
const HLTA: u8 = 0x50;
const SHORT_FRAME_BITS: u8 = 7;
const CASCADE_LEVELS: [u8; 3] = [0x93, 0x95, 0x97];
const CASCADE_TAG: u8 = 0x88;
const NVB_SELECT: u8 = 0x70;
const SAK_UID_INCOMPLETE: u8 = 0x04;

/// FIFO contents after the self test on a version 1.0 chip (datasheet 16.1.1).
#[rustfmt::skip]
const SELF_TEST_V1: [u8; 64] = [
    0x00, 0xC6, 0x37, 0xD5, 0x32, 0xB7, 0x57, 0x5C,
    0xC2, 0xD8, 0x7C, 0x4D, 0xD9, 0x70, 0xC7, 0x73,
    0x10, 0xE6, 0xD2, 0xAA, 0x5E, 0xA1, 0x3E, 0x5A,
    0x14, 0xAF, 0x30, 0x61, 0xC9, 0x70, 0xDB, 0x2E,
    0x64, 0x22, 0x72, 0xB5, 0xBD, 0x65, 0xF4, 0xEC,
    0x22, 0xBC, 0xD3, 0x72, 0x35, 0xCD, 0xAA, 0x41,
    0x1F, 0xA7, 0xF3, 0x53, 0x14, 0xDE, 0x7E, 0x02,
    0xD9, 0x0F, 0xB5, 0x5E, 0x25, 0x1D, 0x29, 0x79,
];

/// FIFO contents after the self test on a version 2.0 chip (datasheet 16.1.1).
#[rustfmt::skip]
const SELF_TEST_V2: [u8; 64] = [
    0x00, 0xEB, 0x66, 0xBA, 0x57, 0xBF, 0x23, 0x95,
    0xD0, 0xE3, 0x0D, 0x3D, 0x27, 0x89, 0x5C, 0xDE,
    0x9D, 0x3B, 0xA7, 0x00, 0x21, 0x5B, 0x89, 0x82,
    0x51, 0x3A, 0xEB, 0x02, 0x0C, 0xA5, 0x00, 0x49,
    0x7C, 0x84, 0x4D, 0xB3, 0xCC, 0xD2, 0x1B, 0x81,
    0x5D, 0x48, 0x76, 0xD5, 0x71, 0x61, 0x21, 0xA9,
    0x86, 0x96, 0x83, 0x38, 0xCF, 0x9D, 0x5B, 0x6D,
    0xDC, 0x15, 0xBA, 0x3E, 0x7D, 0x95, 0x3B, 0x2F,
];

/// What went wrong talking to the MFRC522 or to a card through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The SPI bus failed.
    Spi(E),
    /// No card answered before the chip's timer expired (about 25 ms).
    Timeout,
    /// The chip did not finish a reset, CRC, reception or self test within its poll budget:
    /// it is missing, unpowered or wedged.
    ChipUnresponsive,
    /// Several cards answered at once and the collision could not be resolved.
    Collision,
    /// A card's CRC_A did not match.
    Crc,
    /// The block check character of a UID part did not match its four bytes.
    Bcc,
    /// The chip saw a parity error in the card's answer.
    Parity,
    /// The chip saw an ISO 14443 framing (SOF/protocol) error.
    Protocol,
    /// A frame did not fit in the 64-byte FIFO or the buffer it was read into.
    BufferOverflow,
    /// The chip's thermal sensor switched the antenna off.
    Overheated,
    /// A card answered with a frame of the wrong length or content for the command.
    InvalidResponse,
    /// The self test produced bytes different from the datasheet's table.
    SelfTestFailed,
    /// The self test has no reference table for this `VersionReg` value (clones, v0.0).
    UnknownVersion(u8),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spi(e) => write!(f, "MFRC522 SPI bus error: {e:?}"),
            Error::Timeout => f.write_str("no card answered before the MFRC522 timer expired"),
            Error::ChipUnresponsive => f.write_str("MFRC522 did not respond in time"),
            Error::Collision => f.write_str("several cards answered at once"),
            Error::Crc => f.write_str("card answer failed its CRC_A check"),
            Error::Bcc => f.write_str("card UID failed its BCC check"),
            Error::Parity => f.write_str("parity error in card answer"),
            Error::Protocol => f.write_str("ISO 14443 protocol error in card answer"),
            Error::BufferOverflow => f.write_str("frame does not fit in the 64-byte FIFO or buffer"),
            Error::Overheated => f.write_str("MFRC522 overheated and switched its antenna off"),
            Error::InvalidResponse => f.write_str("card answer has the wrong length or content"),
            Error::SelfTestFailed => f.write_str("MFRC522 self test failed"),
            Error::UnknownVersion(v) => write!(f, "no self-test reference for MFRC522 version {v:#04X}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// Type state: the chip has not been configured by this driver since it was created.
#[derive(Debug)]
pub struct Uninitialized;

/// Type state: the chip was reset and configured for ISO 14443 A; card commands are available.
#[derive(Debug)]
pub struct Initialized;

/// The silicon revision in `VersionReg`; it selects the self-test reference table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipVersion {
    /// `0x91`.
    V1,
    /// `0x92`.
    V2,
    /// Anything else (early samples, clone chips): there is no self-test reference for it.
    Unknown(u8),
}

impl ChipVersion {
    /// Interprets a raw `VersionReg` value.
    pub const fn from_register(value: u8) -> Self {
        match value {
            0x91 => ChipVersion::V1,
            0x92 => ChipVersion::V2,
            other => ChipVersion::Unknown(other),
        }
    }
}

/// Answer To Request, type A; its UID-size bits say how many cascade levels SELECT will take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Atqa(pub [u8; 2]);

/// UID size announced in an ATQA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidSize {
    /// 4 bytes, one cascade level.
    Single,
    /// 7 bytes, two cascade levels.
    Double,
    /// 10 bytes, three cascade levels.
    Triple,
}

impl Atqa {
    /// The announced UID size, or `None` for the reserved value `11b`.
    pub const fn uid_size(self) -> Option<UidSize> {
        match self.0[0] >> 6 {
            0 => Some(UidSize::Single),
            1 => Some(UidSize::Double),
            2 => Some(UidSize::Triple),
            _ => None,
        }
    }
}

/// Length of an answer read back by [`Mfrc522::transceive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the receive buffer.
    pub len: usize,
    /// Valid bits in the last byte, `0` meaning all eight (the chip's `RxLastBits` convention).
    pub last_bits: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collision {
    None,
    /// 1-based bit number counted from bit 0 of the first FIFO byte.
    At(u8),
    Unknown,
}

struct RawFrame {
    len: usize,
    last_bits: u8,
    collision: Collision,
}

/// Outcome of [`Mfrc522::init`]: the ready driver, or the uninitialized one back with the error.
pub type InitResult<SPI, D> =
    Result<Mfrc522<SPI, D, Initialized>, (Mfrc522<SPI, D, Uninitialized>, Error<<SPI as ErrorType>::Error>)>;

/// An MFRC522 on an SPI device, in type state `S`.
#[derive(Debug)]
pub struct Mfrc522<SPI, D, S> {
    spi: SPI,
    delay: D,
    _state: PhantomData<S>,
}

impl<SPI, D> Mfrc522<SPI, D, Uninitialized> {
    /// Wraps the bus without touching it; `delay` paces every bounded wait.
    pub fn new(spi: SPI, delay: D) -> Self {
        Mfrc522 { spi, delay, _state: PhantomData }
    }
}

impl<SPI: SpiDevice, D: DelayNs, S> Mfrc522<SPI, D, S> {
    /// Reads one register; public so diagnostics can inspect the chip (e.g. `RFCfgReg`).
    pub fn read_register(&mut self, reg: Register) -> Result<u8, Error<SPI::Error>> {
        let mut buf = [reg.read_address(), 0x00];
        self.spi.transfer_in_place(&mut buf).map_err(Error::Spi)?;
        Ok(buf[1])
    }

    /// Writes one register; public so installers can tune e.g. the receiver gain.
    pub fn write_register(&mut self, reg: Register, value: u8) -> Result<(), Error<SPI::Error>> {
        self.spi.write(&[reg.write_address(), value]).map_err(Error::Spi)
    }

    /// The silicon revision, the cheapest check that a chip is on the bus at all.
    pub fn version(&mut self) -> Result<ChipVersion, Error<SPI::Error>> {
        self.read_register(Register::Version).map(ChipVersion::from_register)
    }

    /// Gives the bus and delay back, e.g. to share them or to recover after an init failure.
    pub fn release(self) -> (SPI, D) {
        (self.spi, self.delay)
    }

    fn into_state<T>(self) -> Mfrc522<SPI, D, T> {
        Mfrc522 { spi: self.spi, delay: self.delay, _state: PhantomData }
    }

    fn command(&mut self, command: Command) -> Result<(), Error<SPI::Error>> {
        self.write_register(Register::Command, command as u8)
    }

    /// Soft reset, then wait for the oscillator (PowerDown reads 1 until the chip is ready).
    fn soft_reset(&mut self) -> Result<(), Error<SPI::Error>> {
        self.command(Command::SoftReset)?;
        for _ in 0..RESET_POLLS {
            self.delay.delay_ms(1);
            if self.read_register(Register::Command)? & POWER_DOWN == 0 {
                return Ok(());
            }
        }
        Err(Error::ChipUnresponsive)
    }

    /// Writes `data` to the FIFO in one burst (address byte once, then the data).
    fn write_fifo(&mut self, data: &[u8]) -> Result<(), Error<SPI::Error>> {
        if data.is_empty() {
            return Ok(());
        }
        if data.len() > FIFO_SIZE {
            return Err(Error::BufferOverflow);
        }
        let mut buf = [0u8; FIFO_SIZE + 1];
        buf[0] = Register::FifoData.write_address();
        buf[1..=data.len()].copy_from_slice(data);
        self.spi.write(&buf[..=data.len()]).map_err(Error::Spi)
    }

    /// Reads `out.len()` bytes from the FIFO: the read address repeated, then a 0 to clock out the
    /// last byte (datasheet 8.1.2.1).
    fn read_fifo(&mut self, out: &mut [u8]) -> Result<(), Error<SPI::Error>> {
        let n = out.len();
        if n == 0 {
            return Ok(());
        }
        if n > FIFO_SIZE {
            return Err(Error::BufferOverflow);
        }
        let mut buf = [0u8; FIFO_SIZE + 1];
        buf[..n].fill(Register::FifoData.read_address());
        self.spi.transfer_in_place(&mut buf[..=n]).map_err(Error::Spi)?;
        out.copy_from_slice(&buf[1..=n]);
        Ok(())
    }
}

impl<SPI: SpiDevice, D: DelayNs> Mfrc522<SPI, D, Uninitialized> {
    /// Resets and configures the chip for ISO 14443 A at 106 kBd: 25 ms receive timeout,
    /// 100 % ASK, CRC preset 6363h, antenna on.
    ///
    /// On failure the uninitialized driver comes back with the error, so a node whose reader is
    /// unplugged at boot can retry later instead of losing its SPI handle.
    pub fn init(mut self) -> InitResult<SPI, D> {
        match self.configure() {
            Ok(()) => Ok(self.into_state()),
            Err(e) => Err((self, e)),
        }
    }

    fn configure(&mut self) -> Result<(), Error<SPI::Error>> {
        self.soft_reset()?;
        // 106 kBd both ways, no hardware CRC: CRC_A is appended only where ISO 14443-3 wants it.
        self.write_register(Register::TxMode, 0x00)?;
        self.write_register(Register::RxMode, 0x00)?;
        // ValuesAfterColl = 0: bits after a collision read as 0, as bitwise anticollision needs.
        self.write_register(Register::Coll, 0x00)?;
        self.write_register(Register::TMode, T_MODE_AUTO)?;
        self.write_register(Register::TPrescaler, T_PRESCALER)?;
        let [reload_h, reload_l] = T_RELOAD.to_be_bytes();
        self.write_register(Register::TReloadH, reload_h)?;
        self.write_register(Register::TReloadL, reload_l)?;
        self.write_register(Register::TxAsk, TX_ASK_FORCE_100)?;
        self.write_register(Register::Mode, MODE_CRC_6363)?;
        let tx_control = self.read_register(Register::TxControl)?;
        if tx_control & ANTENNA_ON != ANTENNA_ON {
            self.write_register(Register::TxControl, tx_control | ANTENNA_ON)?;
        }
        Ok(())
    }

    /// Runs the digital self test of datasheet section 16.1.1 and compares the 64 result bytes
    /// with the reference for the chip's version.
    ///
    /// Catches a chip that answers SPI but computes garbage. The chip is soft-reset afterwards,
    /// so [`init`](Self::init) is still required.
    pub fn self_test(&mut self) -> Result<ChipVersion, Error<SPI::Error>> {
        self.soft_reset()?;
        let version = self.version()?;
        let expected = match version {
            ChipVersion::V1 => &SELF_TEST_V1,
            ChipVersion::V2 => &SELF_TEST_V2,
            ChipVersion::Unknown(v) => return Err(Error::UnknownVersion(v)),
        };
        // Clear the 25-byte internal buffer: 25 zero bytes through the FIFO, then Mem.
        self.write_register(Register::FifoLevel, FLUSH_BUFFER)?;
        self.write_fifo(&[0u8; 25])?;
        self.command(Command::Mem)?;
        self.write_register(Register::AutoTest, SELF_TEST_ENABLE)?;
        self.write_fifo(&[0x00])?;
        self.command(Command::CalcCrc)?;

        let mut finished = false;
        for _ in 0..SELF_TEST_POLLS {
            let level = self.read_register(Register::FifoLevel)? & FIFO_LEVEL_MASK;
            if usize::from(level) >= FIFO_SIZE {
                finished = true;
                break;
            }
            self.delay.delay_us(100);
        }
        self.command(Command::Idle)?;
        let mut result = [0u8; FIFO_SIZE];
        if finished {
            self.read_fifo(&mut result)?;
        }
        // Leave the chip in its power-on state (this also switches the self test off).
        self.soft_reset()?;
        if !finished {
            Err(Error::ChipUnresponsive)
        } else if &result != expected {
            Err(Error::SelfTestFailed)
        } else {
            Ok(version)
        }
    }
}

impl<SPI: SpiDevice, D: DelayNs> Mfrc522<SPI, D, Initialized> {
    /// Forgets the configuration so that [`Mfrc522::self_test`] can run; [`Mfrc522::init`]
    /// resets the chip anyway, so no bus traffic is needed.
    pub fn into_uninitialized(self) -> Mfrc522<SPI, D, Uninitialized> {
        self.into_state()
    }

    /// Sends `tx` to the card and reads its answer into `rx`, for commands this driver does not
    /// wrap. `tx_last_bits` is the number of bits to send from the last byte (`0` = all 8).
    ///
    /// A collision is an error here; only anticollision resolves them.
    pub fn transceive(&mut self, tx: &[u8], tx_last_bits: u8, rx: &mut [u8]) -> Result<Received, Error<SPI::Error>> {
        let frame = self.transceive_raw(tx, tx_last_bits, 0, rx)?;
        if frame.collision != Collision::None {
            return Err(Error::Collision);
        }
        Ok(Received { len: frame.len, last_bits: frame.last_bits })
    }

    fn transceive_raw(
        &mut self,
        tx: &[u8],
        tx_last_bits: u8,
        rx_align: u8,
        rx: &mut [u8],
    ) -> Result<RawFrame, Error<SPI::Error>> {
        if tx.len() > FIFO_SIZE {
            return Err(Error::BufferOverflow);
        }
        self.command(Command::Idle)?;
        self.write_register(Register::ComIrq, CLEAR_ALL_IRQS)?;
        self.write_register(Register::FifoLevel, FLUSH_BUFFER)?;
        self.write_fifo(tx)?;
        let framing = ((rx_align & 0x07) << 4) | (tx_last_bits & 0x07);
        self.write_register(Register::BitFraming, framing)?;
        self.command(Command::Transceive)?;
        self.write_register(Register::BitFraming, framing | START_SEND)?;
        self.wait_for_answer()?;

        let errors = self.read_register(Register::Error)?;
        if errors & TEMP_ERR != 0 {
            return Err(Error::Overheated);
        }
        if errors & BUFFER_OVFL != 0 {
            return Err(Error::BufferOverflow);
        }
        if errors & PROTOCOL_ERR != 0 {
            return Err(Error::Protocol);
        }
        // Collided bits carry no meaningful parity, so a collision outranks a parity error.
        let collision = if errors & COLL_ERR != 0 {
            let coll = self.read_register(Register::Coll)?;
            if coll & COLL_POS_NOT_VALID != 0 {
                Collision::Unknown
            } else {
                match coll & COLL_POS_MASK {
                    0 => Collision::At(32),
                    pos => Collision::At(pos),
                }
            }
        } else if errors & PARITY_ERR != 0 {
            return Err(Error::Parity);
        } else {
            Collision::None
        };

        let len = usize::from(self.read_register(Register::FifoLevel)? & FIFO_LEVEL_MASK);
        if len > rx.len() || len > FIFO_SIZE {
            return Err(Error::BufferOverflow);
        }
        let last_bits = self.read_register(Register::Control)? & RX_LAST_BITS_MASK;
        self.read_fifo(&mut rx[..len])?;
        Ok(RawFrame { len, last_bits, collision })
    }

    /// Waits for the end of reception, or for the chip timer that says no card answered.
    fn wait_for_answer(&mut self) -> Result<(), Error<SPI::Error>> {
        for _ in 0..RECEIVE_POLLS {
            let irq = self.read_register(Register::ComIrq)?;
            if irq & (RX_IRQ | IDLE_IRQ) != 0 {
                return Ok(());
            }
            if irq & TIMER_IRQ != 0 {
                return Err(Error::Timeout);
            }
            self.delay.delay_us(100);
        }
        Err(Error::ChipUnresponsive)
    }

    /// CRC_A of `data` computed by the chip's coprocessor, low byte first as it goes on air.
    pub fn calculate_crc(&mut self, data: &[u8]) -> Result<[u8; 2], Error<SPI::Error>> {
        if data.len() > FIFO_SIZE {
            return Err(Error::BufferOverflow);
        }
        self.command(Command::Idle)?;
        self.write_register(Register::DivIrq, CRC_IRQ)?;
        self.write_register(Register::FifoLevel, FLUSH_BUFFER)?;
        self.write_fifo(data)?;
        self.command(Command::CalcCrc)?;
        for _ in 0..CRC_POLLS {
            if self.read_register(Register::DivIrq)? & CRC_IRQ != 0 {
                self.command(Command::Idle)?;
                let low = self.read_register(Register::CrcResultL)?;
                let high = self.read_register(Register::CrcResultH)?;
                return Ok([low, high]);
            }
            self.delay.delay_us(10);
        }
        self.command(Command::Idle)?;
        Err(Error::ChipUnresponsive)
    }

    /// REQA: wakes cards in IDLE state only, so a card that was halted after being read stays
    /// quiet until it leaves the field. [`Error::Timeout`] means no card.
    pub fn reqa(&mut self) -> Result<Atqa, Error<SPI::Error>> {
        self.request(REQA)
    }

    /// WUPA: like [`reqa`](Self::reqa) but also wakes halted cards, to find a card that is
    /// still lying on the reader.
    pub fn wupa(&mut self) -> Result<Atqa, Error<SPI::Error>> {
        self.request(WUPA)
    }

    fn request(&mut self, command: u8) -> Result<Atqa, Error<SPI::Error>> {
        let mut rx = [0u8; FIFO_SIZE];
        // A collided ATQA still proves a card is there; anticollision sorts the cards out.
        let frame = self.transceive_raw(&[command], SHORT_FRAME_BITS, 0, &mut rx)?;
        if frame.len != 2 || frame.last_bits != 0 {
            return Err(Error::InvalidResponse);
        }
        Ok(Atqa([rx[0], rx[1]]))
    }

    /// Anticollision and SELECT over as many cascade levels as the card needs, after a
    /// successful [`reqa`](Self::reqa)/[`wupa`](Self::wupa). Returns the 4-, 7- or 10-byte UID
    /// of one card; with several cards in the field the one chosen is deterministic but arbitrary.
    pub fn select(&mut self) -> Result<CardUid, Error<SPI::Error>> {
        let mut uid = [0u8; CardUid::MAX_LEN];
        let mut len = 0usize;
        for (level, &sel) in CASCADE_LEVELS.iter().enumerate() {
            let part = self.anticollision(sel)?;
            let sak = self.select_level(sel, part)?;
            if sak & SAK_UID_INCOMPLETE == 0 {
                uid[len..len + 4].copy_from_slice(&part);
                return CardUid::from_slice(&uid[..len + 4]).map_err(|_| Error::InvalidResponse);
            }
            // "UID not complete" must come with a cascade tag, and there is no level 4.
            if part[0] != CASCADE_TAG || level + 1 == CASCADE_LEVELS.len() {
                return Err(Error::InvalidResponse);
            }
            uid[len..len + 3].copy_from_slice(&part[1..]);
            len += 3;
        }
        Err(Error::InvalidResponse)
    }

    /// The bit-oriented anticollision loop of one cascade level: returns UID CLn (BCC checked).
    ///
    /// On a collision the card(s) with a 1 at the first colliding bit are chosen and the loop
    /// continues with that bit known. Every round learns at least one bit, so 33 rounds bound it.
    fn anticollision(&mut self, sel: u8) -> Result<[u8; 4], Error<SPI::Error>> {
        // SEL, NVB, UID CLn (4 bytes), BCC.
        let mut frame = [0u8; 7];
        frame[0] = sel;
        let mut known_bits = 0usize;
        for _ in 0..=32 {
            let full = known_bits / 8;
            let extra = known_bits % 8;
            // NVB: high nibble whole bytes sent (SEL and NVB included), low nibble extra bits.
            frame[1] = (((2 + full) << 4) | extra) as u8;
            let tx_len = 2 + full + usize::from(extra != 0);
            let mut rx = [0u8; FIFO_SIZE];
            let answer = self.transceive_raw(&frame[..tx_len], extra as u8, extra as u8, &mut rx)?;

            // The card sends the rest of the 40 bits; the first byte is aligned to `extra`.
            let expected = 5 - full;
            let received = answer.len.min(expected);
            let ours = (1u8 << extra) - 1;
            for (i, &byte) in rx[..received].iter().enumerate() {
                let slot = &mut frame[2 + full + i];
                *slot = if i == 0 { (*slot & ours) | (byte & !ours) } else { byte };
            }

            match answer.collision {
                Collision::None => {
                    if answer.len != expected || answer.last_bits != 0 {
                        return Err(Error::InvalidResponse);
                    }
                    let uid = [frame[2], frame[3], frame[4], frame[5]];
                    if uid.iter().fold(0, |acc, b| acc ^ b) != frame[6] {
                        return Err(Error::Bcc);
                    }
                    return Ok(uid);
                }
                Collision::Unknown => return Err(Error::Collision),
                Collision::At(pos) => {
                    let pos = usize::from(pos);
                    // 1-based number of the colliding bit within UID CLn.
                    let bit = full * 8 + pos;
                    if bit <= known_bits || bit > 32 || (pos - 1) / 8 >= received {
                        return Err(Error::Collision);
                    }
                    frame[2 + (bit - 1) / 8] |= 1 << ((bit - 1) % 8);
                    known_bits = bit;
                }
            }
        }
        Err(Error::Collision)
    }

    /// SELECT one cascade level with a complete UID CLn; returns the card's SAK.
    fn select_level(&mut self, sel: u8, part: [u8; 4]) -> Result<u8, Error<SPI::Error>> {
        let bcc = part.iter().fold(0, |acc, b| acc ^ b);
        let mut frame = [sel, NVB_SELECT, part[0], part[1], part[2], part[3], bcc, 0, 0];
        let crc = self.calculate_crc(&frame[..7])?;
        frame[7..].copy_from_slice(&crc);
        let mut rx = [0u8; FIFO_SIZE];
        let answer = self.transceive(&frame, 0, &mut rx)?;
        if answer.len != 3 || answer.last_bits != 0 {
            return Err(Error::InvalidResponse);
        }
        if self.calculate_crc(&rx[..1])? != [rx[1], rx[2]] {
            return Err(Error::Crc);
        }
        Ok(rx[0])
    }

    /// HLTA: puts the selected card to sleep so the next REQA finds another card (or none).
    /// ISO 14443-3 says a card never answers HLTA, so silence until the timer is success.
    pub fn hlta(&mut self) -> Result<(), Error<SPI::Error>> {
        let mut frame = [HLTA, 0x00, 0, 0];
        let crc = self.calculate_crc(&frame[..2])?;
        frame[2..].copy_from_slice(&crc);
        let mut rx = [0u8; FIFO_SIZE];
        match self.transceive(&frame, 0, &mut rx) {
            Err(Error::Timeout) => Ok(()),
            Ok(_) => Err(Error::InvalidResponse),
            Err(e) => Err(e),
        }
    }

    /// One polling step: REQA, select, HLTA. `Ok(None)` when no card answers.
    ///
    /// Because the card is halted, a card held on the reader is returned once and then stays
    /// silent until it leaves the field; a flaky card at the edge of the field can still be seen
    /// several times, which is what [`crate::debounce`] is for.
    pub fn read_card(&mut self) -> Result<Option<CardUid>, Error<SPI::Error>> {
        match self.reqa() {
            Ok(_) => {}
            Err(Error::Timeout) => return Ok(None),
            Err(e) => return Err(e),
        }
        let uid = self.select()?;
        // The UID is already known; only a bus or chip failure is worth reporting now.
        match self.hlta() {
            Err(e @ (Error::Spi(_) | Error::ChipUnresponsive)) => Err(e),
            _ => Ok(Some(uid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spi_address_bytes_follow_the_datasheet_encoding() {
        assert_eq!(Register::Command.write_address(), 0x02);
        assert_eq!(Register::Command.read_address(), 0x82);
        assert_eq!(Register::FifoData.write_address(), 0x12);
        assert_eq!(Register::FifoData.read_address(), 0x92);
        assert_eq!(Register::Version.read_address(), 0xEE);
        assert_eq!(Register::TestAdc.write_address(), 0x76);
    }

    #[test]
    fn atqa_uid_size_bits_map_to_cascade_levels() {
        assert_eq!(Atqa([0x04, 0x00]).uid_size(), Some(UidSize::Single));
        assert_eq!(Atqa([0x44, 0x00]).uid_size(), Some(UidSize::Double));
        assert_eq!(Atqa([0x84, 0x00]).uid_size(), Some(UidSize::Triple));
        assert_eq!(Atqa([0xC4, 0x00]).uid_size(), None);
    }

    #[test]
    fn version_register_values_map_to_self_test_tables() {
        assert_eq!(ChipVersion::from_register(0x91), ChipVersion::V1);
        assert_eq!(ChipVersion::from_register(0x92), ChipVersion::V2);
        assert_eq!(ChipVersion::from_register(0x88), ChipVersion::Unknown(0x88));
    }
}
