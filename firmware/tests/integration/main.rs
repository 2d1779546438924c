//! nimbus-firmware's integration tests, one binary: the drivers against mock hardware.
//!
//! - [`common`]: register-level SPI transcripts of an MFRC522, written from the datasheet.
//! - [`feedback`]: feedback patterns played on mock pins.
//! - [`mfrc522`]: the MFRC522 driver against those transcripts.
//!
//! Run one module with `cargo test -p nimbus-firmware --test integration mfrc522::`.

mod common;
mod feedback;
mod mfrc522;
