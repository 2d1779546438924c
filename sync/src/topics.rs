//! MQTT topic layout (DESIGN.md, "Sync protocol"). Every topic of a node sits under
//! `nimbus/v1/nodes/{node_id}/`, so the broker ACL `pattern write nimbus/v1/nodes/%u/up` lets a
//! node publish only as itself.

use nimbus_core::ids::NodeId;
use serde::{Deserialize, Serialize};

/// Protocol generation in every topic; a breaking change gets a new prefix, so old and new
/// nodes can share a broker during a rollout.
pub const PREFIX: &str = "nimbus/v1/nodes";

/// Kinds of retained downlink snapshot a node caches.
///
/// Also part of the frame wire format (`frame::Snapshot`), where postcard writes a kind as its
/// variant index: append new kinds at the end, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// The room's timetable entries.
    Timetable,
    /// Course rosters: students and their card ids.
    Roster,
    /// The cloud's public keys for verifying user tokens offline.
    Keys,
    /// The content the node should cache.
    Manifest,
    /// The announcements shown in the room (the announcement service's).
    Announcements,
}

impl SnapshotKind {
    /// All kinds.
    pub const ALL: [SnapshotKind; 5] = [
        SnapshotKind::Timetable,
        SnapshotKind::Roster,
        SnapshotKind::Keys,
        SnapshotKind::Manifest,
        SnapshotKind::Announcements,
    ];

    /// The kind's topic segment.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Timetable => "timetable",
            SnapshotKind::Roster => "roster",
            SnapshotKind::Keys => "keys",
            SnapshotKind::Manifest => "manifest",
            SnapshotKind::Announcements => "announcements",
        }
    }
}

/// A node's topics, parsed from or rendered to MQTT topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeTopic {
    /// Batches of events, node -> cloud (QoS 1).
    Up(NodeId),
    /// Acknowledgements and resend requests, cloud -> node.
    Ack(NodeId),
    /// A retained snapshot, cloud -> node.
    Down(NodeId, SnapshotKind),
    /// Birth message and last will.
    Status(NodeId),
}

impl NodeTopic {
    /// The MQTT topic name.
    pub fn name(&self) -> String {
        match self {
            NodeTopic::Up(n) => format!("{PREFIX}/{n}/up"),
            NodeTopic::Ack(n) => format!("{PREFIX}/{n}/ack"),
            NodeTopic::Down(n, kind) => format!("{PREFIX}/{n}/down/{}", kind.as_str()),
            NodeTopic::Status(n) => format!("{PREFIX}/{n}/status"),
        }
    }

    /// Parses a topic name; `None` for anything outside the layout (including invalid node ids).
    pub fn parse(topic: &str) -> Option<NodeTopic> {
        let rest = topic.strip_prefix(PREFIX)?.strip_prefix('/')?;
        let (node, tail) = rest.split_once('/')?;
        let node = NodeId::new(node).ok()?;
        match tail {
            "up" => Some(NodeTopic::Up(node)),
            "ack" => Some(NodeTopic::Ack(node)),
            "status" => Some(NodeTopic::Status(node)),
            _ => {
                let kind = tail.strip_prefix("down/")?;
                let kind = SnapshotKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
                Some(NodeTopic::Down(node, kind))
            }
        }
    }
}

/// The shared-subscription filter several ingest instances use to split all nodes' uplink.
pub fn shared_uplink_filter(group: &str) -> String {
    format!("$share/{group}/{PREFIX}/+/up")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        NodeId::new("room-101").unwrap()
    }

    #[test]
    fn every_topic_renders_under_the_node_and_parses_back() {
        let mut topics = vec![NodeTopic::Up(node()), NodeTopic::Ack(node()), NodeTopic::Status(node())];
        topics.extend(SnapshotKind::ALL.map(|k| NodeTopic::Down(node(), k)));
        for t in topics {
            let name = t.name();
            assert!(name.starts_with("nimbus/v1/nodes/room-101/"), "{name}");
            assert_eq!(NodeTopic::parse(&name), Some(t));
        }
        assert_eq!(NodeTopic::Down(node(), SnapshotKind::Roster).name(), "nimbus/v1/nodes/room-101/down/roster");
    }

    #[test]
    fn foreign_or_malformed_topics_do_not_parse() {
        for bad in [
            "nimbus/v2/nodes/room-101/up",
            "nimbus/v1/nodes/room-101",
            "nimbus/v1/nodes/room-101/up/extra",
            "nimbus/v1/nodes/Room 101/up",
            "nimbus/v1/nodes/+/up",
            "nimbus/v1/nodes/room-101/down/grades",
            "nimbus/v1/nodes//up",
        ] {
            assert_eq!(NodeTopic::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn shared_subscription_covers_every_node_uplink() {
        assert_eq!(shared_uplink_filter("ingest"), "$share/ingest/nimbus/v1/nodes/+/up");
    }
}
