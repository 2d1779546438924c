//! Real readers on a Raspberry Pi (feature `rpi`): an MFRC522 on SPI or a Wiegand 26/34 reader on
//! two GPIO inputs, with the verdict shown on optional LED and buzzer outputs.
//!
//! The drivers are the `no_std` ones from `nimbus_firmware`; rppal provides the Pi's SPI and GPIO.
//! Hardware is driven from one blocking thread per reader (`spawn_blocking`), which talks to the
//! async node through [`submit_tap`] on the runtime's handle. A reader never gives up on its
//! hardware: a chip that does not answer, a missing `/dev/spidev*` or a GPIO that cannot be claimed
//! is logged and retried with exponential backoff (up to [`MAX_BACKOFF`]), so a loose cable costs
//! taps, not the node. Only a configuration that can never work (an SPI bus rppal does not have)
//! or the node going away ends the reader.
//!
//! Cancel the `shutdown` token to stop a reader: the thread checks it between polls (every
//! [`POLL_INTERVAL`] at most), and dropping the reader future alone does not stop the thread.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nimbus_core::reader::{CardRead, Feedback, ReaderKind};
use nimbus_firmware::debounce::{self, Debouncer};
use nimbus_firmware::feedback::{self, Led};
use nimbus_firmware::mfrc522::{self, Mfrc522};
use nimbus_firmware::wiegand::{self, Decoder, Frame};
use rppal::gpio::{Gpio, InputPin, OutputPin, Trigger};
use rppal::hal::Delay;
use rppal::spi::{Bus, Mode, SimpleHalSpiDevice, SlaveSelect, Spi};
use serde::Deserialize;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{CardReader, ReaderError, ReaderTask, TapRequest, submit_tap};

/// How often the MFRC522 is asked for a card: fast enough that a tap feels instant, slow enough
/// to leave the CPU idle (one poll is a handful of SPI transfers, ~25 ms when no card answers).
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long a reader waits for the node's verdict before showing [`Feedback::Error`]; the node
/// answers after a durable write, which takes milliseconds unless the SD card is dying.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// First wait before retrying hardware that failed.
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);

/// Longest wait between hardware retries, so a reconnected reader is picked up within this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Consecutive chip-level MFRC522 errors after which the chip is reset and re-initialised.
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

/// How often the Wiegand edge buffer is checked.
const WIEGAND_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Quiet time after which buffered Wiegand edges are decoded: longer than the decoder's frame gap,
/// so a frame is never cut, and short enough that feedback follows the tap at once.
const WIEGAND_QUIET: Duration = Duration::from_millis(30);

/// Edges buffered per batch; a 34-bit frame needs 34, so anything past this is line noise.
const MAX_EDGES: usize = 256;

/// Which reader is wired to the Pi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpiReaderKind {
    /// An MFRC522 (RC522 module) on SPI.
    #[default]
    Mfrc522,
    /// A Wiegand reader sending 26-bit frames on D0/D1.
    Wiegand26,
    /// A Wiegand reader sending 34-bit frames on D0/D1.
    Wiegand34,
}

impl RpiReaderKind {
    /// The kind recorded with each tap.
    pub const fn reader_kind(self) -> ReaderKind {
        match self {
            RpiReaderKind::Mfrc522 => ReaderKind::Mfrc522,
            RpiReaderKind::Wiegand26 => ReaderKind::Wiegand26,
            RpiReaderKind::Wiegand34 => ReaderKind::Wiegand34,
        }
    }
}

/// Wiring of the reader, from the node's configuration file. Pins are BCM GPIO numbers.
///
/// Every field has a default, so a config only lists what differs from the common wiring.
/// Outputs default to absent: the node never drives a pin nobody said was free.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpiReaderConfig {
    /// Which reader is wired (default `mfrc522`).
    pub kind: RpiReaderKind,
    /// MFRC522: SPI bus, `/dev/spidev<bus>.<slave_select>` (default 0).
    pub spi_bus: u8,
    /// MFRC522: chip select line (default 0, i.e. CE0 on GPIO8).
    pub spi_slave_select: u8,
    /// MFRC522: SPI clock (default 1 MHz; the chip allows 10 MHz, but jumper wires may not).
    pub spi_clock_hz: u32,
    /// MFRC522: GPIO on the RST (NRSTPD) pin, driven high; pulsed low to recover a wedged chip.
    /// Optional because the driver resets the chip over SPI anyway (default none).
    pub reset_pin: Option<u8>,
    /// Wiegand: GPIO on the D0 line (default 17, physical pin 11), via a level shifter.
    pub d0_pin: u8,
    /// Wiegand: GPIO on the D1 line (default 27, physical pin 13), via a level shifter.
    pub d1_pin: u8,
    /// GPIO of the red LED die, active high (default none).
    pub led_red_pin: Option<u8>,
    /// GPIO of the green LED die, active high (default none).
    pub led_green_pin: Option<u8>,
    /// GPIO of the buzzer, active high (default none).
    pub buzzer_pin: Option<u8>,
    /// Reads of one card closer together than this are one tap (default
    /// [`debounce::DEFAULT_WINDOW_MS`]).
    pub debounce_ms: u32,
}

impl Default for RpiReaderConfig {
    fn default() -> Self {
        RpiReaderConfig {
            kind: RpiReaderKind::default(),
            spi_bus: 0,
            spi_slave_select: 0,
            spi_clock_hz: 1_000_000,
            reset_pin: None,
            d0_pin: 17,
            d1_pin: 27,
            led_red_pin: None,
            led_green_pin: None,
            buzzer_pin: None,
            debounce_ms: debounce::DEFAULT_WINDOW_MS,
        }
    }
}

impl RpiReaderConfig {
    /// The reader this configuration describes.
    pub fn into_reader(self) -> Box<dyn CardReader> {
        match self.kind {
            RpiReaderKind::Mfrc522 => Box::new(Mfrc522Reader::new(self)),
            RpiReaderKind::Wiegand26 | RpiReaderKind::Wiegand34 => Box::new(WiegandReader::new(self)),
        }
    }

    fn spi(&self) -> Result<(Bus, SlaveSelect), ReaderError> {
        let bus = match self.spi_bus {
            0 => Bus::Spi0,
            1 => Bus::Spi1,
            2 => Bus::Spi2,
            3 => Bus::Spi3,
            4 => Bus::Spi4,
            5 => Bus::Spi5,
            6 => Bus::Spi6,
            n => return Err(ReaderError::Hardware(format!("no SPI bus {n} (0 to 6)"))),
        };
        let slave_select = match self.spi_slave_select {
            0 => SlaveSelect::Ss0,
            1 => SlaveSelect::Ss1,
            2 => SlaveSelect::Ss2,
            3 => SlaveSelect::Ss3,
            4 => SlaveSelect::Ss4,
            5 => SlaveSelect::Ss5,
            6 => SlaveSelect::Ss6,
            7 => SlaveSelect::Ss7,
            8 => SlaveSelect::Ss8,
            9 => SlaveSelect::Ss9,
            10 => SlaveSelect::Ss10,
            11 => SlaveSelect::Ss11,
            12 => SlaveSelect::Ss12,
            13 => SlaveSelect::Ss13,
            14 => SlaveSelect::Ss14,
            15 => SlaveSelect::Ss15,
            n => return Err(ReaderError::Hardware(format!("no SPI slave select {n} (0 to 15)"))),
        };
        if self.spi_clock_hz == 0 {
            return Err(ReaderError::Hardware("spi_clock_hz must be above 0".to_owned()));
        }
        Ok((bus, slave_select))
    }

    fn has_outputs(&self) -> bool {
        self.reset_pin.is_some()
            || self.led_red_pin.is_some()
            || self.led_green_pin.is_some()
            || self.buzzer_pin.is_some()
    }
}

/// An MFRC522 on SPI, polled every [`POLL_INTERVAL`]; `config.kind` is not consulted.
#[derive(Debug)]
pub struct Mfrc522Reader {
    config: RpiReaderConfig,
}

impl Mfrc522Reader {
    /// Keeps the wiring; the hardware is first touched when the reader runs.
    pub fn new(config: RpiReaderConfig) -> Self {
        Mfrc522Reader { config }
    }
}

impl CardReader for Mfrc522Reader {
    fn kind(&self) -> ReaderKind {
        ReaderKind::Mfrc522
    }

    fn run(self: Box<Self>, taps: mpsc::Sender<TapRequest>, shutdown: CancellationToken) -> ReaderTask {
        let config = self.config;
        run_blocking(taps, shutdown, move |link| mfrc522_loop(&config, &link))
    }
}

/// A Wiegand reader on two GPIO inputs (falling edges: D0 = 0 bit, D1 = 1 bit). Both 26- and
/// 34-bit frames are decoded whatever `config.kind` says; each tap records the format it arrived in.
#[derive(Debug)]
pub struct WiegandReader {
    config: RpiReaderConfig,
}

impl WiegandReader {
    /// Keeps the wiring; the hardware is first touched when the reader runs.
    pub fn new(config: RpiReaderConfig) -> Self {
        WiegandReader { config }
    }
}

impl CardReader for WiegandReader {
    fn kind(&self) -> ReaderKind {
        match self.config.kind {
            RpiReaderKind::Wiegand34 => ReaderKind::Wiegand34,
            _ => ReaderKind::Wiegand26,
        }
    }

    fn run(self: Box<Self>, taps: mpsc::Sender<TapRequest>, shutdown: CancellationToken) -> ReaderTask {
        let config = self.config;
        run_blocking(taps, shutdown, move |link| wiegand_loop(&config, &link))
    }
}

/// What a reader thread needs from the async side.
struct Link {
    handle: Handle,
    taps: mpsc::Sender<TapRequest>,
    shutdown: CancellationToken,
}

impl Link {
    /// Sleeps for `duration`; true if shutdown was requested (then it returns at once).
    fn sleep(&self, duration: Duration) -> bool {
        self.handle.block_on(async {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => true,
                () = tokio::time::sleep(duration) => false,
            }
        })
    }

    /// Hands a read to the node and waits (at most [`REPLY_TIMEOUT`]) for the verdict; `None` if
    /// shutdown came first.
    fn tap(&self, read: CardRead) -> Result<Option<Feedback>, ReaderError> {
        self.handle.block_on(async {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => Ok(None),
                verdict = tokio::time::timeout(REPLY_TIMEOUT, submit_tap(&self.taps, read)) => match verdict {
                    Ok(Ok(feedback)) => Ok(Some(feedback)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => {
                        warn!(uid = %read.uid, "no verdict from the node in time; showing an error");
                        Ok(Some(Feedback::Error))
                    }
                },
            }
        })
    }
}

fn run_blocking<F>(taps: mpsc::Sender<TapRequest>, shutdown: CancellationToken, body: F) -> ReaderTask
where
    F: FnOnce(Link) -> Result<(), ReaderError> + Send + 'static,
{
    Box::pin(async move {
        let link = Link { handle: Handle::current(), taps, shutdown };
        tokio::task::spawn_blocking(move || body(link))
            .await
            .map_err(|e| ReaderError::Hardware(format!("reader thread failed: {e}")))?
    })
}

fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

/// Milliseconds on a wrapping clock, as the debouncer wants.
fn now_ms(epoch: Instant) -> u32 {
    epoch.elapsed().as_millis() as u32 // truncation is the intended wrap
}

fn open_gpio(config: &RpiReaderConfig) -> Option<Gpio> {
    if !config.has_outputs() {
        return None;
    }
    Gpio::new().map_err(|e| warn!(error = %e, "GPIO unavailable: no reset line, LED or buzzer")).ok()
}

fn claim_output(gpio: Option<&Gpio>, pin: Option<u8>, role: &str, high: bool) -> Option<OutputPin> {
    let (gpio, pin) = (gpio?, pin?);
    match gpio.get(pin) {
        Ok(p) if high => Some(p.into_output_high()),
        Ok(p) => Some(p.into_output_low()),
        Err(e) => {
            warn!(pin, role, error = %e, "cannot claim output pin; going without it");
            None
        }
    }
}

/// The LED and buzzer outputs that are wired; any of them may be absent.
struct Indicator {
    red: Option<OutputPin>,
    green: Option<OutputPin>,
    buzzer: Option<OutputPin>,
}

impl Indicator {
    fn open(gpio: Option<&Gpio>, config: &RpiReaderConfig) -> Self {
        Indicator {
            red: claim_output(gpio, config.led_red_pin, "red LED", false),
            green: claim_output(gpio, config.led_green_pin, "green LED", false),
            buzzer: claim_output(gpio, config.buzzer_pin, "buzzer", false),
        }
    }

    fn show(&mut self, led: Led, buzzer: bool) {
        let (red, green) = match led {
            Led::Off => (false, false),
            Led::Green => (false, true),
            Led::Amber => (true, true),
            Led::Red => (true, false),
        };
        for (pin, on) in [(&mut self.red, red), (&mut self.green, green), (&mut self.buzzer, buzzer)] {
            if let Some(pin) = pin {
                if on { pin.set_high() } else { pin.set_low() }
            }
        }
    }

    /// Plays the firmware's pattern for `feedback` (blocking, under a second) and ends dark.
    fn play(&mut self, feedback: Feedback) {
        for step in feedback::pattern(feedback) {
            self.show(step.led, step.buzzer);
            std::thread::sleep(Duration::from_millis(u64::from(step.duration_ms)));
        }
        self.show(Led::Off, false);
    }
}

type Chip = Mfrc522<SimpleHalSpiDevice<Spi>, Delay, mfrc522::Initialized>;

fn open_mfrc522(config: &RpiReaderConfig, bus: Bus, slave_select: SlaveSelect) -> Result<Chip, String> {
    let spi = Spi::new(bus, slave_select, config.spi_clock_hz, Mode::Mode0)
        .map_err(|e| format!("cannot open SPI {bus} {slave_select}: {e}"))?;
    let chip = Mfrc522::new(SimpleHalSpiDevice::new(spi), Delay::new());
    chip.init().map_err(|(_, e)| format!("cannot initialise the MFRC522: {e}"))
}

/// Errors caused by the card (half in the field, two cards at once): retried on the next poll
/// without counting against the chip.
fn is_card_error<E>(e: &mfrc522::Error<E>) -> bool {
    use mfrc522::Error as E;
    matches!(
        e,
        E::Timeout | E::Collision | E::Crc | E::Bcc | E::Parity | E::Protocol | E::BufferOverflow | E::InvalidResponse
    )
}

/// Pulses NRSTPD low: a hard reset for a chip that stopped answering over SPI.
fn hard_reset(pin: &mut OutputPin) {
    pin.set_low();
    std::thread::sleep(Duration::from_millis(10));
    pin.set_high();
    std::thread::sleep(Duration::from_millis(50));
}

fn mfrc522_loop(config: &RpiReaderConfig, link: &Link) -> Result<(), ReaderError> {
    let (bus, slave_select) = config.spi()?;
    let gpio = open_gpio(config);
    let mut reset = claim_output(gpio.as_ref(), config.reset_pin, "MFRC522 reset", true);
    let mut indicator = Indicator::open(gpio.as_ref(), config);
    let mut debouncer = Debouncer::new(config.debounce_ms);
    let epoch = Instant::now();
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut chip = match open_mfrc522(config, bus, slave_select) {
            Ok(chip) => chip,
            Err(e) => {
                warn!(error = %e, retry_in = ?backoff, "MFRC522 not ready");
                if let Some(pin) = reset.as_mut() {
                    hard_reset(pin);
                }
                if link.sleep(backoff) {
                    return Ok(());
                }
                backoff = next_backoff(backoff);
                continue;
            }
        };
        info!(bus = %bus, slave_select = %slave_select, "MFRC522 ready");
        let mut failures = 0;
        while failures < MAX_CONSECUTIVE_FAILURES {
            if link.sleep(POLL_INTERVAL) {
                return Ok(());
            }
            let uid = match chip.read_card() {
                Ok(uid) => {
                    failures = 0;
                    backoff = MIN_BACKOFF; // the chip works: the next outage starts from scratch
                    uid
                }
                Err(e) if is_card_error(&e) => {
                    debug!(error = %e, "card not read cleanly; polling again");
                    None
                }
                Err(e) => {
                    failures += 1;
                    warn!(error = %e, failures, "MFRC522 read failed");
                    None
                }
            };
            let Some(uid) = uid.and_then(|uid| debouncer.on_read(uid, now_ms(epoch))) else { continue };
            match link.tap(CardRead { uid, reader: ReaderKind::Mfrc522 })? {
                Some(feedback) => indicator.play(feedback),
                None => return Ok(()),
            }
        }
        warn!(retry_in = ?backoff, "MFRC522 keeps failing; re-initialising");
        drop(chip);
        if let Some(pin) = reset.as_mut() {
            hard_reset(pin);
        }
        if link.sleep(backoff) {
            return Ok(());
        }
        backoff = next_backoff(backoff);
    }
}

/// Falling edges collected by rppal's interrupt threads (one per pin), with the kernel's timestamp.
#[derive(Debug, Default)]
struct Edges {
    edges: Vec<(Duration, bool)>,
    dropped: usize,
    last_arrival: Option<Instant>,
}

impl Edges {
    fn record(&mut self, at: Duration, bit: bool) {
        if self.edges.len() < MAX_EDGES {
            self.edges.push((at, bit));
        } else {
            self.dropped += 1;
        }
        self.last_arrival = Some(Instant::now());
    }

    /// The edges of a burst once the lines have been quiet for [`WIEGAND_QUIET`], with how many
    /// edges overflowed the buffer.
    fn take_quiet(&mut self, now: Instant) -> Option<(Vec<(Duration, bool)>, usize)> {
        let last = self.last_arrival?;
        if now.saturating_duration_since(last) < WIEGAND_QUIET {
            return None;
        }
        self.last_arrival = None;
        Some((std::mem::take(&mut self.edges), std::mem::take(&mut self.dropped)))
    }
}

/// Feeds a burst of edges to the decoder in kernel-timestamp order and closes the last frame.
///
/// D0 and D1 interrupts arrive on two threads, so edges of one frame can be recorded out of order;
/// sorting by the kernel's timestamps restores the wire order before any bit is decoded.
fn decode_burst(decoder: &mut Decoder, mut edges: Vec<(Duration, bool)>) -> Vec<Result<Frame, wiegand::Error>> {
    edges.sort_by_key(|&(at, _)| at);
    let mut frames = Vec::new();
    let mut last_us = None;
    for (at, bit) in edges {
        let us = at.as_micros() as u32; // truncation is the decoder's intended wrap
        decoder.on_bit(bit, us);
        frames.extend(decoder.poll(us)); // a frame this edge's gap closed
        last_us = Some(us);
    }
    if let Some(last_us) = last_us {
        // The lines have been quiet for longer than a frame gap: close what is open.
        while let Some(frame) = decoder.poll(last_us.wrapping_add(wiegand::DEFAULT_FRAME_GAP_US)) {
            frames.push(frame);
        }
    }
    frames
}

type WiegandPins = (Gpio, InputPin, InputPin);

fn open_wiegand(config: &RpiReaderConfig, edges: &Arc<Mutex<Edges>>) -> Result<WiegandPins, rppal::gpio::Error> {
    let gpio = Gpio::new()?;
    let mut d0 = gpio.get(config.d0_pin)?.into_input_pullup();
    let mut d1 = gpio.get(config.d1_pin)?.into_input_pullup();
    for (pin, bit) in [(&mut d0, false), (&mut d1, true)] {
        let edges = Arc::clone(edges);
        pin.set_async_interrupt(Trigger::FallingEdge, None, move |event| {
            edges.lock().unwrap_or_else(PoisonError::into_inner).record(event.timestamp, bit);
        })?;
    }
    Ok((gpio, d0, d1))
}

fn wiegand_loop(config: &RpiReaderConfig, link: &Link) -> Result<(), ReaderError> {
    let edges = Arc::new(Mutex::new(Edges::default()));
    let mut backoff = MIN_BACKOFF;
    // The input pins must stay alive: dropping them stops their interrupt threads.
    let (gpio, _d0, _d1) = loop {
        match open_wiegand(config, &edges) {
            Ok(pins) => break pins,
            Err(e) => {
                warn!(error = %e, d0 = config.d0_pin, d1 = config.d1_pin, retry_in = ?backoff, "Wiegand GPIO not ready");
                if link.sleep(backoff) {
                    return Ok(());
                }
                backoff = next_backoff(backoff);
            }
        }
    };
    info!(d0 = config.d0_pin, d1 = config.d1_pin, "Wiegand reader ready");
    let mut indicator = Indicator::open(Some(&gpio), config);
    let mut decoder = Decoder::new();
    let mut debouncer = Debouncer::new(config.debounce_ms);
    let epoch = Instant::now();
    loop {
        if link.sleep(WIEGAND_POLL_INTERVAL) {
            return Ok(());
        }
        let burst = edges.lock().unwrap_or_else(PoisonError::into_inner).take_quiet(Instant::now());
        let Some((burst, dropped)) = burst else { continue };
        if dropped > 0 {
            warn!(edges = burst.len() + dropped, "Wiegand burst too long (line noise?); ignored");
            continue;
        }
        for frame in decode_burst(&mut decoder, burst) {
            let frame = match frame {
                Ok(frame) => frame,
                Err(e @ wiegand::Error::Parity { .. }) => {
                    // A real card, garbled on the wire: ask for another tap.
                    warn!(error = %e, "Wiegand frame rejected");
                    indicator.play(Feedback::Error);
                    continue;
                }
                Err(e) => {
                    debug!(error = %e, "Wiegand noise ignored");
                    continue;
                }
            };
            let Some(uid) = debouncer.on_read(frame.uid(), now_ms(epoch)) else { continue };
            match link.tap(CardRead { uid, reader: frame.format().reader_kind() })? {
                Some(feedback) => indicator.play(feedback),
                None => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Edges of a 26-bit frame for `data` (24 bits), one every 2 ms from `start`.
    fn w26(data: u32, start: Duration) -> Vec<(Duration, bool)> {
        let bit = |i: u32| (data >> (23 - i)) & 1 == 1;
        let even = (0..12).filter(|&i| bit(i)).count() % 2 == 1;
        let odd = (12..24).filter(|&i| bit(i)).count() % 2 == 0;
        std::iter::once(even)
            .chain((0..24).map(bit))
            .chain(std::iter::once(odd))
            .enumerate()
            .map(|(i, b)| (start + Duration::from_millis(2 * i as u64), b))
            .collect()
    }

    #[test]
    fn burst_decodes_a_wiegand26_frame() {
        let frames = decode_burst(&mut Decoder::new(), w26(0x12_3456, Duration::from_secs(7)));
        assert_eq!(frames.len(), 1);
        let frame = frames[0].expect("valid frame");
        assert_eq!(frame.format().reader_kind(), ReaderKind::Wiegand26);
        assert_eq!(frame.uid().as_bytes(), &[0x12, 0x34, 0x56]);
    }

    #[test]
    fn burst_edges_recorded_out_of_order_across_pins_still_decode() {
        let mut edges = w26(0xA5_0F3C, Duration::from_secs(1));
        // The D1 thread ran late: all its edges were recorded after the D0 ones.
        edges.sort_by_key(|&(_, bit)| bit);
        let frames = decode_burst(&mut Decoder::new(), edges);
        assert_eq!(frames[0].expect("valid frame").uid().as_bytes(), &[0xA5, 0x0F, 0x3C]);
    }

    #[test]
    fn burst_with_two_frames_yields_both() {
        let mut edges = w26(0x00_0001, Duration::from_secs(1));
        edges.extend(w26(0x00_0002, Duration::from_secs(2)));
        let frames = decode_burst(&mut Decoder::new(), edges);
        let uids: Vec<_> = frames.iter().map(|f| f.expect("valid frame").uid()).collect();
        assert_eq!(uids.len(), 2);
        assert_eq!(uids[0].as_bytes(), &[0, 0, 1]);
        assert_eq!(uids[1].as_bytes(), &[0, 0, 2]);
    }

    #[test]
    fn burst_with_a_flipped_bit_is_a_parity_error() {
        let mut edges = w26(0x12_3456, Duration::ZERO);
        edges[5].1 = !edges[5].1;
        let frames = decode_burst(&mut Decoder::new(), edges);
        assert!(matches!(frames[..], [Err(wiegand::Error::Parity { .. })]), "{frames:?}");
    }

    #[test]
    fn edges_are_handed_over_only_after_the_lines_go_quiet_and_stay_bounded() {
        let mut edges = Edges::default();
        for i in 0..(MAX_EDGES as u64 + 10) {
            edges.record(Duration::from_micros(i), true);
        }
        let now = Instant::now();
        assert!(edges.take_quiet(now).is_none(), "still arriving");
        let (burst, dropped) = edges.take_quiet(now + WIEGAND_QUIET).expect("quiet");
        assert_eq!((burst.len(), dropped), (MAX_EDGES, 10));
        assert!(edges.take_quiet(now + WIEGAND_QUIET * 2).is_none(), "nothing new");
    }

    #[test]
    fn config_defaults_fill_in_missing_fields() {
        let config: RpiReaderConfig =
            serde_json::from_str(r#"{"kind": "wiegand34", "led_green_pin": 5}"#).expect("config");
        assert_eq!(config.kind, RpiReaderKind::Wiegand34);
        assert_eq!(config.led_green_pin, Some(5));
        assert_eq!(config.spi_clock_hz, RpiReaderConfig::default().spi_clock_hz);
        assert_eq!(config.debounce_ms, debounce::DEFAULT_WINDOW_MS);
        assert_eq!(config.clone().into_reader().kind(), ReaderKind::Wiegand34);
        assert!(serde_json::from_str::<RpiReaderConfig>(r#"{"spi_buss": 1}"#).is_err(), "typos are errors");
    }

    #[test]
    fn impossible_spi_wiring_is_rejected() {
        let config = RpiReaderConfig { spi_bus: 9, ..RpiReaderConfig::default() };
        assert!(matches!(config.spi(), Err(ReaderError::Hardware(_))));
        assert!(RpiReaderConfig::default().spi().is_ok());
    }
}
