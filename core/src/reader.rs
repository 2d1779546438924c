//! What a card reader reports and what the user is told back.
//!
//! Shared by the `no_std` firmware drivers and the edge daemon, so a driver never needs to know
//! about attendance and the daemon never needs to know about SPI registers.

use serde::{Deserialize, Serialize};

use crate::ids::CardUid;

/// Which kind of reader produced a read; kept with every raw tap for field diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderKind {
    /// NXP MFRC522 over SPI (ISO 14443A cards).
    Mfrc522,
    /// A Wiegand reader sending 26-bit frames.
    Wiegand26,
    /// A Wiegand reader sending 34-bit frames.
    Wiegand34,
    /// The development reader fed from a socket, HTTP or a script.
    Simulated,
}

/// One card presented to a reader, after debouncing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRead {
    /// The card's identity.
    pub uid: CardUid,
    /// The reader that saw it.
    pub reader: ReaderKind,
}

/// The feedback the reader gives after the edge node has recorded (or refused) a tap.
/// Each maps to a distinct LED/buzzer pattern so a faculty member can tell them apart by ear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feedback {
    /// The tap is durably stored and counted.
    Accepted,
    /// The card was already counted in this session.
    Duplicate,
    /// The card is not on any roster; the tap is kept in quarantine for an admin.
    UnknownCard,
    /// The tap could not be stored or the reader failed; the student should tap again.
    Error,
}
