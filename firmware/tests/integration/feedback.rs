//! Feedback patterns played on mock pins.

use std::collections::HashSet;
use std::io::ErrorKind;

use embedded_hal_mock::eh1::MockError;
use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as DelayTx};
use embedded_hal_mock::eh1::digital::{Mock as Pin, State, Transaction as PinTx};
use nimbus_core::reader::Feedback;
use nimbus_firmware::feedback::{self, Error, Led, Player, Step, Stepper};

const ALL: [Feedback; 4] = [Feedback::Accepted, Feedback::Duplicate, Feedback::UnknownCard, Feedback::Error];

/// Pin transcript from a sequence of levels (`1` high, `0` low).
fn levels(levels: &[u8]) -> Vec<PinTx> {
    levels.iter().map(|&l| PinTx::set(if l == 1 { State::High } else { State::Low })).collect()
}

fn delays_ms(ms: &[u32]) -> Vec<DelayTx> {
    ms.iter().map(|&ms| DelayTx::delay_ms(ms)).collect()
}

/// Plays `feedback` and checks every pin level and every delay, the final "all off" included.
fn assert_plays(feedback: Feedback, red: &[u8], green: &[u8], buzzer: &[u8], delays: &[u32]) {
    let (mut r, mut g, mut b) = (Pin::new(&levels(red)), Pin::new(&levels(green)), Pin::new(&levels(buzzer)));
    let mut delay = CheckedDelay::new(&delays_ms(delays));

    let mut player = Player::new(r.clone(), g.clone(), b.clone(), delay.clone());
    player.play(feedback).unwrap();

    drop(player);
    r.done();
    g.done();
    b.done();
    delay.done();
}

#[test]
fn accepted_is_short_green_with_one_short_beep() {
    assert_plays(Feedback::Accepted, &[0, 0, 0], &[1, 1, 0], &[1, 0, 0], &[100, 200]);
}

#[test]
fn duplicate_is_amber_with_two_short_beeps() {
    assert_plays(Feedback::Duplicate, &[1, 1, 1, 1, 0], &[1, 1, 1, 1, 0], &[1, 0, 1, 0, 0], &[80, 80, 80, 260]);
}

#[test]
fn unknown_card_is_long_red_with_one_long_beep() {
    assert_plays(Feedback::UnknownCard, &[1, 0], &[0, 0], &[1, 0], &[800]);
}

#[test]
fn error_is_three_fast_red_blinks_each_with_a_beep() {
    assert_plays(
        Feedback::Error,
        &[1, 0, 1, 0, 1, 0, 0],
        &[0, 0, 0, 0, 0, 0, 0],
        &[1, 0, 1, 0, 1, 0, 0],
        &[60, 60, 60, 60, 60, 60],
    );
}

/// What a listener hears: the lengths of the beeps and of the silences between them.
fn beep_rhythm(steps: &[Step]) -> Vec<(bool, u32)> {
    let mut rhythm: Vec<(bool, u32)> = Vec::new();
    for step in steps {
        match rhythm.last_mut() {
            Some((on, ms)) if *on == step.buzzer => *ms += u32::from(step.duration_ms),
            _ => rhythm.push((step.buzzer, u32::from(step.duration_ms))),
        }
    }
    rhythm
}

#[test]
fn every_feedback_sounds_different_and_looks_different() {
    let rhythms: HashSet<_> = ALL.iter().map(|&f| beep_rhythm(feedback::pattern(f))).collect();
    assert_eq!(rhythms.len(), ALL.len(), "two feedbacks share a beep rhythm");

    let colours: HashSet<Vec<Led>> =
        ALL.iter().map(|&f| feedback::pattern(f).iter().map(|s| s.led).collect()).collect();
    assert_eq!(colours.len(), ALL.len(), "two feedbacks share an LED sequence");

    let beeps = |f| beep_rhythm(feedback::pattern(f)).iter().filter(|(on, _)| *on).count();
    assert_eq!(beeps(Feedback::Accepted), 1);
    assert_eq!(beeps(Feedback::Duplicate), 2);
    assert_eq!(beeps(Feedback::UnknownCard), 1);
    assert_eq!(beeps(Feedback::Error), 3);
}

#[test]
fn patterns_are_short_enough_not_to_hold_up_the_queue() {
    for f in ALL {
        let total = feedback::duration_ms(feedback::pattern(f));
        assert!((200..=1_000).contains(&total), "{f:?} lasts {total} ms");
    }
    assert!(feedback::duration_ms(feedback::UNKNOWN_CARD) > feedback::duration_ms(feedback::ACCEPTED));
}

#[test]
fn failing_buzzer_is_reported_and_everything_is_switched_off() {
    let err = MockError::Io(ErrorKind::NotConnected);
    let mut r = Pin::new(&levels(&[0, 0]));
    let mut g = Pin::new(&levels(&[1, 0]));
    let mut b = Pin::new(&[PinTx::set(State::High).with_error(err.clone()), PinTx::set(State::Low)]);
    let mut delay = CheckedDelay::new(&[]);

    let mut player = Player::new(r.clone(), g.clone(), b.clone(), delay.clone());
    assert_eq!(player.play(Feedback::Accepted), Err(Error::Buzzer(err)));

    drop(player);
    r.done();
    g.done();
    b.done();
    delay.done();
}

#[test]
fn show_and_off_drive_the_pins_for_non_blocking_use() {
    let mut r = Pin::new(&levels(&[1, 0]));
    let mut g = Pin::new(&levels(&[1, 0]));
    let mut b = Pin::new(&levels(&[0, 0]));

    let mut player = Player::new(r.clone(), g.clone(), b.clone(), ());
    player.show(Led::Amber, false).unwrap();
    player.off().unwrap();

    let (_r, _g, _b, ()) = player.release();
    r.done();
    g.done();
    b.done();
}

#[test]
fn stepper_reports_the_step_due_and_then_the_end() {
    let stepper = Stepper::start(Feedback::Duplicate, 1_000);
    let beep = Step { led: Led::Amber, buzzer: true, duration_ms: 80 };
    let gap = Step { led: Led::Amber, buzzer: false, duration_ms: 80 };
    assert_eq!(stepper.at(1_000), Some(beep));
    assert_eq!(stepper.at(1_079), Some(beep));
    assert_eq!(stepper.at(1_080), Some(gap));
    assert_eq!(stepper.at(1_160), Some(beep));
    assert_eq!(stepper.at(1_240).map(|s| s.duration_ms), Some(260));
    assert_eq!(stepper.at(1_499).map(|s| s.buzzer), Some(false));
    assert_eq!(stepper.at(1_500), None);
    assert_eq!(stepper.at(60_000), None);
}

#[test]
fn stepper_works_across_the_millisecond_counter_wrap() {
    let stepper = Stepper::start(Feedback::UnknownCard, u32::MAX - 100);
    assert_eq!(stepper.at(500).map(|s| s.led), Some(Led::Red));
    assert_eq!(stepper.at(698), Some(feedback::UNKNOWN_CARD[0]));
    assert_eq!(stepper.at(699), None);
}

#[test]
fn pin_errors_describe_themselves_for_logs() {
    let error: Error<&str> = Error::GreenLed("gpio 27 busy");
    assert_eq!(error.to_string(), "green LED pin error: \"gpio 27 busy\"");
}
