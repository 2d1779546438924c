//! Card-reader firmware for NimbusU Edge classroom nodes: it turns an RFID or Wiegand reader
//! into card taps, and turns the node's verdict on a tap into light and sound.
//!
//! Everything here is `#![no_std]` and allocation-free, so the same code runs on the Raspberry Pi
//! (through `linux-embedded-hal` style SPI/GPIO handles) and on a microcontroller front end.
//! Drivers only speak `embedded-hal` 1.0 traits and hand out [`nimbus_core::ids::CardUid`]s; they
//! know nothing about attendance.
//!
//! # Modules
//!
//! | module | what it is for |
//! |---|---|
//! | [`mfrc522`] | NXP MFRC522 over SPI: init, self test, REQA/WUPA, anticollision + SELECT over cascade levels 1..3, HLTA, `read_card` |
//! | [`wiegand`] | decodes Wiegand 26 and 34 frames from D0/D1 edges and timestamps (no timers or interrupts owned here) |
//! | [`debounce`] | collapses repeated reads of a card that is held on the reader into one tap |
//! | [`feedback`] | LED/buzzer patterns for each [`nimbus_core::reader::Feedback`], a blocking player and a non-blocking stepper |
//!
//! A node's read loop is typically: driver → [`debounce::Debouncer`] → edge daemon (which decides
//! the [`Feedback`](nimbus_core::reader::Feedback)) → [`feedback::Player`].
//!
//! Every wait on hardware is bounded: a missing or wedged chip yields an error, never a hang.
#![no_std]
#![warn(missing_docs)]

pub mod debounce;
pub mod feedback;
pub mod mfrc522;
pub mod wiegand;
