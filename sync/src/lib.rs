//! # nimbus-sync
//!
//! The edge<->cloud protocol. Today it holds the MQTT topic layout that both ends and the
//! broker's ACL agree on; frames, sequence numbers, acks and resend arrive with the sync issue.
//!
//! ## Layout
//! - [`topics`]: `nimbus/v1/nodes/{node_id}/…` topic names and their parsing.

pub mod topics;
