//! The edge registry (`edge_registry_db`): which nodes exist, where each one's stream stands in
//! Kafka (its high-water mark), and when it was last heard from.

use deadpool_postgres::Pool;
use nimbus_core::ids::NodeId;

use crate::error::Result;

/// A node as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The node.
    pub node_id: String,
    /// Its room.
    pub room_id: String,
    /// Highest sequence number safely in Kafka.
    pub high_water_mark: u64,
    /// Whether its last status message said online.
    pub online: bool,
}

/// Handle to the registry database.
#[derive(Clone)]
pub struct Registry {
    pool: Pool,
}

impl Registry {
    /// Over a pool connected to `edge_registry_db`.
    pub fn new(pool: Pool) -> Self {
        Registry { pool }
    }

    /// Adds a node (or updates its room and credential hash).
    pub async fn register(&self, node: &NodeId, room_id: &str, credential_hash: Option<&str>) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO nodes (node_id, room_id, credential_hash) VALUES ($1, $2, $3)
             ON CONFLICT (node_id) DO UPDATE SET room_id = excluded.room_id,
                 credential_hash = COALESCE(excluded.credential_hash, nodes.credential_hash)",
            &[&node.as_str(), &room_id, &credential_hash],
        )
        .await?;
        Ok(())
    }

    /// The node, if registered.
    pub async fn node(&self, node: &NodeId) -> Result<Option<NodeRecord>> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT node_id, room_id, high_water_mark, online FROM nodes WHERE node_id = $1",
                &[&node.as_str()],
            )
            .await?;
        Ok(row.map(|r| NodeRecord {
            node_id: r.get(0),
            room_id: r.get(1),
            high_water_mark: r.get::<_, i64>(2) as u64,
            online: r.get(3),
        }))
    }

    /// Records that every event up to `upto` is safely in Kafka. Never moves backwards, so a late
    /// or repeated confirmation cannot undo a newer one. Returns the mark now stored.
    pub async fn advance(&self, node: &NodeId, upto: u64) -> Result<u64> {
        let c = self.pool.get().await?;
        let row = c
            .query_one(
                "UPDATE nodes SET high_water_mark = GREATEST(high_water_mark, $2), last_seen_at = now()
                 WHERE node_id = $1 RETURNING high_water_mark",
                &[&node.as_str(), &(upto as i64)],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Records the node's status message.
    pub async fn status(
        &self,
        node: &NodeId,
        online: bool,
        boot_id: Option<&str>,
        version: Option<&str>,
    ) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE nodes SET online = $2, last_seen_at = now(), boot_id = COALESCE($3, boot_id),
                 software_version = COALESCE($4, software_version) WHERE node_id = $1",
            &[&node.as_str(), &online, &boot_id, &version],
        )
        .await?;
        Ok(())
    }

    /// Counts a refused frame for the node (`corrupt`, `unknown_version`, `impostor`, …).
    pub async fn reject(&self, node: &str, reason: &str) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO ingest_rejections (node_id, reason, count) VALUES ($1, $2, 1)
             ON CONFLICT (node_id, reason) DO UPDATE SET count = ingest_rejections.count + 1, last_at = now()",
            &[&node, &reason],
        )
        .await?;
        Ok(())
    }
}
