//! What the student sees and hears after a tap.
//!
//! Each [`Feedback`] has its own LED colour and beep rhythm so that it can be told apart without
//! looking (a lecturer hears "two beeps" from across the room):
//!
//! | feedback | LED | buzzer |
//! |---|---|---|
//! | [`Feedback::Accepted`] | short green | one short beep |
//! | [`Feedback::Duplicate`] | amber | two short beeps |
//! | [`Feedback::UnknownCard`] | long red | one long beep |
//! | [`Feedback::Error`] | three fast red blinks | a beep with each blink |
//!
//! Patterns are plain data ([`pattern`]); [`Player`] plays one by blocking on a delay, and
//! [`Stepper`] tells a non-blocking main loop which step is due at a given time.
//!
//! The LED is a two-colour (red/green) LED, amber being both on; all outputs are active high
//! (wrap an inverted pin if a buzzer module is active low).

use core::fmt;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use nimbus_core::reader::Feedback;

/// LED colour of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Led {
    /// Both dies off.
    Off,
    /// Green die only.
    Green,
    /// Red and green dies together.
    Amber,
    /// Red die only.
    Red,
}

impl Led {
    /// (red, green) die states.
    const fn dies(self) -> (bool, bool) {
        match self {
            Led::Off => (false, false),
            Led::Green => (false, true),
            Led::Amber => (true, true),
            Led::Red => (true, false),
        }
    }
}

/// One segment of a pattern: hold these outputs for `duration_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    /// LED colour for this step.
    pub led: Led,
    /// Whether the buzzer sounds during this step.
    pub buzzer: bool,
    /// How long the step lasts.
    pub duration_ms: u16,
}

const fn step(led: Led, buzzer: bool, duration_ms: u16) -> Step {
    Step { led, buzzer, duration_ms }
}

/// Short green with a short beep: the tap counted.
pub const ACCEPTED: &[Step] = &[step(Led::Green, true, 100), step(Led::Green, false, 200)];

/// Amber with two short beeps: already counted in this session.
pub const DUPLICATE: &[Step] = &[
    step(Led::Amber, true, 80),
    step(Led::Amber, false, 80),
    step(Led::Amber, true, 80),
    step(Led::Amber, false, 260),
];

/// Long red with a long beep: the card is not on any roster.
pub const UNKNOWN_CARD: &[Step] = &[step(Led::Red, true, 800)];

/// Three fast red blinks, each with a beep: tap again.
pub const ERROR: &[Step] = &[
    step(Led::Red, true, 60),
    step(Led::Off, false, 60),
    step(Led::Red, true, 60),
    step(Led::Off, false, 60),
    step(Led::Red, true, 60),
    step(Led::Off, false, 60),
];

/// The pattern for a feedback.
pub const fn pattern(feedback: Feedback) -> &'static [Step] {
    match feedback {
        Feedback::Accepted => ACCEPTED,
        Feedback::Duplicate => DUPLICATE,
        Feedback::UnknownCard => UNKNOWN_CARD,
        Feedback::Error => ERROR,
    }
}

/// Total length of a pattern, e.g. to decide how long to ignore the reader.
pub fn duration_ms(steps: &[Step]) -> u32 {
    steps.iter().map(|s| u32::from(s.duration_ms)).sum()
}

/// A pin that could not be driven, carrying the HAL's pin error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The red LED pin failed.
    RedLed(E),
    /// The green LED pin failed.
    GreenLed(E),
    /// The buzzer pin failed.
    Buzzer(E),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::RedLed(e) => write!(f, "red LED pin error: {e:?}"),
            Error::GreenLed(e) => write!(f, "green LED pin error: {e:?}"),
            Error::Buzzer(e) => write!(f, "buzzer pin error: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// Drives the red and green LED dies and the buzzer.
#[derive(Debug)]
pub struct Player<R, G, B, D> {
    red: R,
    green: G,
    buzzer: B,
    delay: D,
}

impl<R, G, B, D> Player<R, G, B, D> {
    /// Takes the three outputs and the delay used by [`play`](Self::play). A caller that only
    /// uses [`show`](Self::show) with a [`Stepper`] may pass any value, e.g. `()`, as the delay.
    pub fn new(red: R, green: G, buzzer: B, delay: D) -> Self {
        Player { red, green, buzzer, delay }
    }

    /// Gives the pins and delay back.
    pub fn release(self) -> (R, G, B, D) {
        (self.red, self.green, self.buzzer, self.delay)
    }
}

impl<R, G, B, D> Player<R, G, B, D>
where
    R: OutputPin,
    G: OutputPin<Error = R::Error>,
    B: OutputPin<Error = R::Error>,
{
    /// Sets the outputs for one step (red, then green, then buzzer).
    pub fn show(&mut self, led: Led, buzzer: bool) -> Result<(), Error<R::Error>> {
        let (red, green) = led.dies();
        self.red.set_state(red.into()).map_err(Error::RedLed)?;
        self.green.set_state(green.into()).map_err(Error::GreenLed)?;
        self.buzzer.set_state(buzzer.into()).map_err(Error::Buzzer)
    }

    /// Everything off: the idle state between taps.
    pub fn off(&mut self) -> Result<(), Error<R::Error>> {
        self.show(Led::Off, false)
    }
}

impl<R, G, B, D> Player<R, G, B, D>
where
    R: OutputPin,
    G: OutputPin<Error = R::Error>,
    B: OutputPin<Error = R::Error>,
    D: DelayNs,
{
    /// Plays the pattern for `feedback`, blocking for its [`duration_ms`], and ends with
    /// everything off.
    pub fn play(&mut self, feedback: Feedback) -> Result<(), Error<R::Error>> {
        self.play_steps(pattern(feedback))
    }

    /// Plays any pattern, ending with everything off. If a pin fails, the outputs are switched
    /// off on a best-effort basis so a buzzer is not left sounding, and the first error returned.
    pub fn play_steps(&mut self, steps: &[Step]) -> Result<(), Error<R::Error>> {
        for step in steps {
            if let Err(e) = self.show(step.led, step.buzzer) {
                let _ = self.off();
                return Err(e);
            }
            self.delay.delay_ms(u32::from(step.duration_ms));
        }
        self.off()
    }
}

/// Non-blocking playback: which step of a pattern is due at a given time.
///
/// For main loops that must keep polling the reader while feedback plays; apply the step with
/// [`Player::show`], and [`Player::off`] once [`at`](Self::at) returns `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stepper {
    steps: &'static [Step],
    started_ms: u32,
}

impl Stepper {
    /// Starts the pattern for `feedback` at `now_ms` (a wrapping millisecond clock).
    pub const fn start(feedback: Feedback, now_ms: u32) -> Self {
        Stepper { steps: pattern(feedback), started_ms: now_ms }
    }

    /// The step due at `now_ms`, or `None` once the pattern is over.
    pub fn at(&self, now_ms: u32) -> Option<Step> {
        let mut elapsed = now_ms.wrapping_sub(self.started_ms);
        for step in self.steps {
            let duration = u32::from(step.duration_ms);
            if elapsed < duration {
                return Some(*step);
            }
            elapsed -= duration;
        }
        None
    }
}
