//! Operator commands.

pub mod events;
pub mod nodes;
