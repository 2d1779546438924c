//! nimbus-core's integration tests, one binary: the public contract checked from outside the crate.
//!
//! - [`malformed_events`]: malformed events are refused with an error naming the field at fault.
//! - [`seed_contract`]: the types, topics and consumer groups against the seed document itself.
//!
//! Run one module with `cargo test -p nimbus-core --test integration seed_contract::`.

mod malformed_events;
mod seed_contract;
