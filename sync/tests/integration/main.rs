//! nimbus-sync's integration tests, one binary: the frame format and the protocol seen from
//! outside the crate.
//!
//! - [`exactly_once`]: sender and receiver through a hostile simulated link end with every event
//!   exactly once, in order.
//! - [`frame_props`]: properties of the frame format over generated input.
//! - [`frame_wire`]: every message round-trips; every damaged or forged frame is refused.
//!
//! Run one module with `cargo test -p nimbus-sync --test integration frame_wire::`.

mod exactly_once;
mod frame_props;
mod frame_wire;
