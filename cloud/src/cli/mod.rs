//! Operator commands.

pub mod events;
