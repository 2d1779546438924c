//! # The edge registry (`edge_registry_db`)
//!
//! Which nodes exist and in which room, their credentials, where each one's stream stands in
//! Kafka (its high-water mark, under the per-node row lock the ingest stores a batch with), when
//! each was last heard from, refused frames, the downlink's published snapshot versions, cards and
//! the unknown-card quarantine, DLQ replay records. Tables: `nodes`, `ingest_rejections`,
//! `node_snapshots`, `cards`, `unknown_cards`, `dlq_replays` (`migrations/edge_registry_db/`).
//! Publishes and consumes no topic.
//!
//! - this file: [`Registry`], including [`Registry::register`], the one registration rule;
//! - [`routes`]: the nodes as admins see them, registration and credentials over HTTP;
//! - [`cards`]: card mapping and the quarantine, over HTTP;
//! - [`node_auth`]: a node's HTTP Basic login, for the content download route;
//! - [`broker`]: the campus broker's node accounts (Mosquitto password file) from the registry.

pub mod broker;
pub mod cards;
pub mod node_auth;
pub mod routes;

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};
use nimbus_core::ids::NodeId;
use tokio_postgres::Row;

use crate::error::{Error, Result};

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
    /// When the cloud last heard from it (status or stored batch).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Its boot at the last birth message, to spot restarts.
    pub boot_id: Option<String>,
    /// Its software version at the last birth message, to follow rollouts.
    pub software_version: Option<String>,
    /// Whether a credential hash is on record.
    pub has_credential: bool,
    /// Events waiting in its outbox at its last heartbeat.
    pub backlog: Option<i64>,
}

const NODE_COLUMNS: &str = "node_id, room_id, high_water_mark, online, last_seen_at, boot_id, software_version, \
                            credential_hash IS NOT NULL, backlog";

fn node_record(r: &Row) -> NodeRecord {
    NodeRecord {
        node_id: r.get(0),
        room_id: r.get(1),
        high_water_mark: r.get::<_, i64>(2) as u64,
        online: r.get(3),
        last_seen_at: r.get(4),
        boot_id: r.get(5),
        software_version: r.get(6),
        has_credential: r.get(7),
        backlog: r.get(8),
    }
}

/// Handle to the registry database.
#[derive(Clone)]
pub struct Registry {
    pool: Pool,
}

/// What [`Registry::register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new node.
    Created,
    /// The node was registered exactly so already.
    Unchanged,
    /// The node moved room or got a new credential (asked for with `replace`).
    Replaced,
}

fn already_registered(node: &NodeId, room: Option<&str>) -> Error {
    let room_note = room.map(|r| format!(" in room {r}")).unwrap_or_default();
    Error::Conflict {
        message: format!(
            "node {} is already registered{room_note}; moving or re-keying it must be asked for explicitly",
            node.as_str()
        ),
        details: serde_json::json!({ "node_id": node.as_str(), "room_id": room }),
    }
}

impl Registry {
    /// Over a pool connected to `edge_registry_db`.
    pub fn new(pool: Pool) -> Self {
        Registry { pool }
    }

    /// Registers a node: **the one registration rule**, for the API and the operators' CLI alike.
    /// A new id is added. An id already registered is refused with [`Error::Conflict`] (409)
    /// unless the registration says nothing new (same room, no other credential: re-running a
    /// provisioning script is harmless) or `replace` is set, which moves the node to `room_id`
    /// and replaces its credential hash (when one is given) on purpose: a node id is its MQTT
    /// identity, and silently re-keying or moving it would hand that identity to someone else.
    pub async fn register(
        &self,
        node: &NodeId,
        room_id: &str,
        credential_hash: Option<&str>,
        replace: bool,
    ) -> Result<Registered> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let current = tx
            .query_opt("SELECT room_id, credential_hash FROM nodes WHERE node_id = $1 FOR UPDATE", &[&node.as_str()])
            .await?;
        let outcome = match current {
            None => {
                // Two registrations at once: the loser's insert finds the winner's row.
                let n = tx
                    .execute(
                        "INSERT INTO nodes (node_id, room_id, credential_hash) VALUES ($1, $2, $3)
                         ON CONFLICT (node_id) DO NOTHING",
                        &[&node.as_str(), &room_id, &credential_hash],
                    )
                    .await?;
                if n == 0 {
                    return Err(already_registered(node, None));
                }
                Registered::Created
            }
            Some(row) => {
                let (room, hash): (String, Option<String>) = (row.get(0), row.get(1));
                let same = room == room_id && credential_hash.is_none_or(|h| hash.as_deref() == Some(h));
                if same {
                    Registered::Unchanged
                } else if replace {
                    tx.execute(
                        "UPDATE nodes SET room_id = $2, credential_hash = COALESCE($3, credential_hash) WHERE node_id = $1",
                        &[&node.as_str(), &room_id, &credential_hash],
                    )
                    .await?;
                    Registered::Replaced
                } else {
                    return Err(already_registered(node, Some(&room)));
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// The node, if registered.
    pub async fn node(&self, node: &NodeId) -> Result<Option<NodeRecord>> {
        let c = self.pool.get().await?;
        let row =
            c.query_opt(&format!("SELECT {NODE_COLUMNS} FROM nodes WHERE node_id = $1"), &[&node.as_str()]).await?;
        Ok(row.as_ref().map(node_record))
    }

    /// Every node, by id.
    pub async fn list(&self) -> Result<Vec<NodeRecord>> {
        let c = self.pool.get().await?;
        let rows = c.query(&format!("SELECT {NODE_COLUMNS} FROM nodes ORDER BY node_id"), &[]).await?;
        Ok(rows.iter().map(node_record).collect())
    }

    /// Locks the node's row for one batch and reads its mark; `None` if the node is not
    /// registered.
    ///
    /// Two ingest instances can receive copies of the same node's frame at once (the shared
    /// subscription redelivers after a reconnect), and both classifying against the same old
    /// mark would store the events twice. The row lock (`SELECT … FOR UPDATE` in a transaction
    /// held until [`NodeLock::advance`] commits) makes the second wait and then see the new mark,
    /// so it re-acks instead. `wait` bounds that wait (`lock_timeout`); the holder releases within
    /// its Kafka delivery timeout, or PostgreSQL releases it when the holder's connection dies.
    pub async fn lock(&self, node: &NodeId, wait: Duration) -> Result<Option<NodeLock>> {
        let mut lock = NodeLock { client: Some(self.pool.get().await?), node: node.clone(), high_water_mark: 0 };
        let c = lock.client();
        c.batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = {}", wait.as_millis().max(1))).await?;
        let row =
            c.query_opt("SELECT high_water_mark FROM nodes WHERE node_id = $1 FOR UPDATE", &[&node.as_str()]).await?;
        match row {
            Some(r) => {
                lock.high_water_mark = r.get::<_, i64>(0) as u64;
                Ok(Some(lock))
            }
            None => {
                lock.finish("ROLLBACK").await?;
                Ok(None)
            }
        }
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

    /// Records the node's status message (birth, heartbeat with its outbox backlog, or will).
    pub async fn status(
        &self,
        node: &NodeId,
        online: bool,
        boot_id: Option<&str>,
        version: Option<&str>,
        backlog: Option<i64>,
    ) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE nodes SET online = $2, last_seen_at = now(), boot_id = COALESCE($3, boot_id),
                 software_version = COALESCE($4, software_version), backlog = COALESCE($5, backlog)
             WHERE node_id = $1",
            &[&node.as_str(), &online, &boot_id, &version, &backlog],
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

/// A node's registry row, locked for the batch being stored (see [`Registry::lock`]).
///
/// Dropping it without [`NodeLock::advance`] or [`NodeLock::release`] (a failed delivery, an
/// error, a cancelled task) discards its connection instead of returning it to the pool: closing
/// the connection rolls the transaction back and frees the lock, and no pooled connection is ever
/// left inside a transaction.
pub struct NodeLock {
    client: Option<Object>,
    node: NodeId,
    high_water_mark: u64,
}

impl NodeLock {
    /// The node's mark when the lock was taken; nobody else can move it while the lock is held.
    pub fn high_water_mark(&self) -> u64 {
        self.high_water_mark
    }

    fn client(&self) -> &Object {
        // Only `finish` takes the client, and it consumes the lock's last use.
        self.client.as_ref().expect("NodeLock used after finishing")
    }

    /// Records that every event up to `upto` is safely in Kafka (never moving backwards, as
    /// [`Registry::advance`]), commits and releases the lock. Returns the mark now stored.
    pub async fn advance(mut self, upto: u64) -> Result<u64> {
        let row = self
            .client()
            .query_one(
                "UPDATE nodes SET high_water_mark = GREATEST(high_water_mark, $2), last_seen_at = now()
                 WHERE node_id = $1 RETURNING high_water_mark",
                &[&self.node.as_str(), &(upto as i64)],
            )
            .await?;
        let stored = row.get::<_, i64>(0) as u64;
        self.finish("COMMIT").await?;
        Ok(stored)
    }

    /// Records a tap of a card the node did not know, in the same transaction as the mark, so a
    /// resent batch never counts it twice. Admins map quarantined cards to users.
    pub async fn record_unknown_card(&self, card_uid: &str, seen_at: chrono::DateTime<chrono::Utc>) -> Result<()> {
        self.client()
            .execute(
                "INSERT INTO unknown_cards (card_uid, node_id, first_seen, last_seen, tap_count)
                 VALUES ($1, $2, $3, $3, 1)
                 ON CONFLICT (card_uid, node_id) DO UPDATE
                 SET first_seen = LEAST(unknown_cards.first_seen, excluded.first_seen),
                     last_seen = GREATEST(unknown_cards.last_seen, excluded.last_seen),
                     tap_count = unknown_cards.tap_count + 1",
                &[&card_uid, &self.node.as_str(), &seen_at],
            )
            .await?;
        Ok(())
    }

    /// Releases the lock without changing anything (duplicates, gaps).
    pub async fn release(mut self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    async fn finish(&mut self, statement: &str) -> Result<()> {
        self.client().batch_execute(statement).await?;
        // The transaction is over: the connection may go back to the pool.
        drop(self.client.take());
        Ok(())
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}
