//! Deterministic event ids: the same outbox row always gets the same `event_id`, however often it
//! is resent, so a duplicate that slips into Kafka (a cloud crash between produce and ack) is
//! caught by consumers deduplicating on `event_id`.

use nimbus_core::ids::NodeId;
use uuid::Uuid;

/// The UUIDv5 namespace of NimbusU edge events, `cddaea0a-0100-43c5-b5ec-4437a594ad3a`.
///
/// Drawn at random once and fixed forever: changing it changes every event id, and consumers
/// would take resent events for new ones.
pub const NAMESPACE: Uuid = Uuid::from_u128(0xcdda_ea0a_0100_43c5_b5ec_4437_a594_ad3a);

/// The event id of the event at `seq` in `node`'s outbox: UUIDv5 in [`NAMESPACE`] over
/// `"{node_id}/{seq}"` (decimal seq). Node ids cannot contain `/`, so distinct pairs give
/// distinct names.
pub fn event_id(node: &NodeId, seq: u64) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{node}/{seq}").as_bytes())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn event_id_is_pinned_for_a_known_input() {
        // Computed once with an independent UUIDv5 implementation (Python's uuid.uuid5).
        let id = event_id(&NodeId::new("room-101").unwrap(), 1);
        assert_eq!(id.to_string(), "b0fe7b7a-ead8-5945-8b9f-38afa08a5b88");
        assert_eq!(id.get_version_num(), 5);
    }

    #[test]
    fn namespace_is_the_documented_constant() {
        assert_eq!(NAMESPACE.to_string(), "cddaea0a-0100-43c5-b5ec-4437a594ad3a");
    }

    #[test]
    fn event_ids_are_stable_and_unique_across_nodes_and_seqs() {
        let nodes = ["room-1", "room-10", "room-101", "room-1-0", "lab-a"].map(|n| NodeId::new(n).unwrap());
        let mut seen = HashSet::new();
        for node in &nodes {
            for seq in (0..200).chain([u64::MAX - 1, u64::MAX]) {
                let id = event_id(node, seq);
                assert_eq!(id, event_id(node, seq));
                assert!(seen.insert(id), "{node}/{seq} collides");
            }
        }
    }
}
