//! The node's half of the sync protocol: ships the outbox to the cloud over MQTT and applies the
//! snapshots the cloud sends back.
//!
//! The protocol decisions (batching, one batch in flight, resend with backoff, acks) live in
//! `nimbus_sync::sender`; this module owns the connection: a persistent MQTT session logged in
//! as the node, a birth message on every connect and a last will, acks turned into outbox
//! deletes (with the acknowledged mark, in one transaction), and retained snapshots applied
//! atomically when newer. It never holds events in memory beyond the batch in flight: the outbox
//! is the queue, so a crash, a restart or a week offline loses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nimbus_core::ids::NodeId;
use nimbus_sync::frame::{self, FrameLimits, Message, Snapshot, Status};
use nimbus_sync::sender::{Action, Effect, Outbox, Sender, SenderConfig};
use nimbus_sync::topics::{NodeTopic, SnapshotKind};
use nimbus_sync::transport::{Backoff, MqttConfig};
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::outbox;
use crate::store::Store;
use crate::timetable::{self, RosterSnapshot, TimetableSnapshot};

/// What the page and `/metrics` show about the link to the cloud.
#[derive(Debug, Default)]
pub struct SyncStatus {
    connected: AtomicBool,
    last_ack_ms: AtomicI64,
    acked_upto: AtomicU64,
    batches_sent: AtomicU64,
    snapshots_applied: AtomicU64,
    snapshots_rejected: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

impl SyncStatus {
    /// Why the last connection attempt failed, while it keeps failing (cleared on connect).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// Whether the MQTT session is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Wall time of the last ack that moved the mark (Unix ms), 0 if none since start.
    pub fn last_ack_ms(&self) -> i64 {
        self.last_ack_ms.load(Ordering::Relaxed)
    }

    /// Highest acknowledged sequence number.
    pub fn acked_upto(&self) -> u64 {
        self.acked_upto.load(Ordering::Relaxed)
    }

    /// Batches published (including resends).
    pub fn batches_sent(&self) -> u64 {
        self.batches_sent.load(Ordering::Relaxed)
    }

    /// Snapshots applied / refused (corrupt, older, invalid).
    pub fn snapshots(&self) -> (u64, u64) {
        (self.snapshots_applied.load(Ordering::Relaxed), self.snapshots_rejected.load(Ordering::Relaxed))
    }
}

/// How often a connected node reports its outbox backlog.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// How the node reaches the cloud.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// This node.
    pub node_id: NodeId,
    /// Broker URL, client id and credentials (username = node id).
    pub mqtt: MqttConfig,
    /// Protocol timing and batch limits.
    pub sender: SenderConfig,
}

struct StoreOutbox<'a>(&'a Store);

impl Outbox for StoreOutbox<'_> {
    type Error = Error;
    fn pending_from(&self, from_seq: u64, max: usize) -> Result<Vec<frame::EdgeEvent>> {
        self.0.with(|c| outbox::pending_from(c, from_seq, max))
    }
}

/// Runs until `shutdown`: connects (and reconnects with backoff), publishes the outbox, applies
/// acks and snapshots.
pub async fn run(
    store: Store,
    clock: Arc<dyn Clock>,
    settings: SyncSettings,
    status: Arc<SyncStatus>,
    shutdown: CancellationToken,
) -> Result<()> {
    let node = settings.node_id.clone();
    let up = NodeTopic::Up(node.clone()).name();
    let ack = NodeTopic::Ack(node.clone()).name();
    let down = format!("{}/{node}/down/#", nimbus_sync::topics::PREFIX);
    let status_topic = NodeTopic::Status(node.clone()).name();

    let mut options = settings.mqtt.options().map_err(|e| Error::Config(format!("cloud.mqtt_url: {e}")))?;
    let will = frame::encode(&Message::Status(Status::Offline { node_id: node.clone() }));
    options.set_last_will(LastWill::new(&status_topic, will, QoS::AtLeastOnce, true));
    let (client, mut eventloop) = AsyncClient::new(options, 64);

    let acked = store.run(|c| outbox::acked_upto(c)).await?;
    status.acked_upto.store(acked, Ordering::Relaxed);
    let mut sender = Sender::new(node.clone(), acked, settings.sender);
    let mut backoff = Backoff::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connected = false;
    // The first tick comes at once: a heartbeat follows every birth message.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    status.connected.store(true, Ordering::Relaxed);
                    status.set_error(None);
                    backoff.reset();
                    tracing::info!(node = %node, "connected to the cloud broker");
                    // Subscriptions survive in a persistent session, but re-subscribing is cheap
                    // and covers a broker that lost its state.
                    let _ = client.try_subscribe(&ack, QoS::AtLeastOnce);
                    let _ = client.try_subscribe(&down, QoS::AtLeastOnce);
                    let birth = Status::Online {
                        node_id: node.clone(),
                        boot_id: clock.now().boot_id.to_string(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        at_ms: clock.now().wall_ms(),
                    };
                    let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, frame::encode(&Message::Status(birth)));
                    heartbeat.reset_immediately();
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    handle_incoming(&store, clock.as_ref(), &mut sender, &status, &p.topic, &p.payload).await;
                    // An ack frees the window: send the next batch now, not at the next tick.
                    if connected {
                        pump(&mut sender, &store, &client, &up, &status, started, &node);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let why = explain(&e, settings.mqtt.ca_pem.is_some());
                    if connected {
                        tracing::warn!(node = %node, error = %e, "lost the cloud broker; events stay in the outbox");
                    } else if status.last_error().as_deref() != Some(why.as_str()) {
                        tracing::warn!(node = %node, reason = %why, "cannot reach the cloud broker; events stay in the outbox");
                    }
                    status.set_error(Some(why));
                    connected = false;
                    status.connected.store(false, Ordering::Relaxed);
                    sender.on_disconnect();
                    let wait = backoff.next_delay();
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            },
            _ = tick.tick(), if connected => {
                pump(&mut sender, &store, &client, &up, &status, started, &node);
            }
            _ = heartbeat.tick(), if connected => {
                match store.with(|c| outbox::backlog(c)) {
                    Ok(backlog) => {
                        let beat = Status::Heartbeat {
                            node_id: node.clone(),
                            boot_id: clock.now().boot_id.to_string(),
                            backlog,
                            at_ms: clock.now().wall_ms(),
                        };
                        let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, frame::encode(&Message::Status(beat)));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot count the outbox for the heartbeat"),
                }
            }
        }
    }
    if connected {
        let offline = frame::encode(&Message::Status(Status::Offline { node_id: node.clone() }));
        let _ = client.try_publish(&status_topic, QoS::AtLeastOnce, true, offline);
        let _ = client.try_disconnect();
        // Let the event loop flush the goodbye, briefly.
        let _ =
            tokio::time::timeout(Duration::from_millis(500), async { while eventloop.poll().await.is_ok() {} }).await;
    }
    status.connected.store(false, Ordering::Relaxed);
    Ok(())
}

/// A connection failure as the status page says it: a certificate the pinned CA did not sign
/// and a refused login are named for what they are, anything else is the client's words.
fn explain(e: &rumqttc::ConnectionError, pinned: bool) -> String {
    let text = e.to_string();
    if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") || text.contains("certificate") {
        let whose = if pinned { "the CA pinned in cloud.mqtt_ca_file" } else { "a CA this node trusts" };
        return format!("TLS refused: the broker's certificate is not signed by {whose} ({text})");
    }
    if let rumqttc::ConnectionError::ConnectionRefused(code) = e {
        return format!("the broker refused the login ({code:?}): check this node's password and registration");
    }
    text
}

/// Publishes whatever the sender decides is due (the next batch, or a resend).
fn pump(
    sender: &mut Sender,
    store: &Store,
    client: &AsyncClient,
    up: &str,
    status: &SyncStatus,
    started: Instant,
    node: &NodeId,
) {
    let now_ms = started.elapsed().as_millis() as u64;
    match sender.poll(now_ms, &StoreOutbox(store)) {
        Ok(Action::Publish(bytes)) => {
            if client.try_publish(up, QoS::AtLeastOnce, false, bytes).is_ok() {
                status.batches_sent.fetch_add(1, Ordering::Relaxed);
            } else {
                // The request queue is full; the in-flight batch goes again next time.
                sender.on_disconnect();
            }
        }
        Ok(Action::Idle) => {}
        Ok(Action::Stalled(stall)) => tracing::error!(node = %node, ?stall, "outbox cannot be sent as is"),
        Err(e) => tracing::error!(node = %node, error = %e, "reading the outbox failed"),
    }
}

async fn handle_incoming(
    store: &Store,
    clock: &dyn Clock,
    sender: &mut Sender,
    status: &SyncStatus,
    topic: &str,
    payload: &[u8],
) {
    let message = match frame::decode(payload, FrameLimits::default()) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(topic, error = %e, "ignoring an undecodable frame from the cloud");
            if matches!(NodeTopic::parse(topic), Some(NodeTopic::Down(..))) {
                status.snapshots_rejected.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    };
    match (NodeTopic::parse(topic), message) {
        (Some(NodeTopic::Ack(_)), msg) => {
            if let Effect::Delete { upto_seq } = sender.on_message(&msg) {
                match store.run(move |c| outbox::acknowledge(c, upto_seq)).await {
                    Ok(deleted) => {
                        status.acked_upto.store(upto_seq, Ordering::Relaxed);
                        status.last_ack_ms.store(clock.now().wall_ms(), Ordering::Relaxed);
                        tracing::debug!(upto_seq, deleted, "cloud acknowledged");
                    }
                    // The rows stay; the next ack (or a duplicate one after a resend) retries.
                    Err(e) => tracing::error!(upto_seq, error = %e, "could not delete acknowledged events"),
                }
            }
        }
        (Some(NodeTopic::Down(_, kind)), Message::Snapshot(snapshot)) if snapshot.kind == kind => {
            let now_ms = clock.now().wall_ms();
            match apply_snapshot(store, snapshot, now_ms).await {
                Ok(true) => {
                    status.snapshots_applied.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(?kind, "applied a newer snapshot");
                }
                Ok(false) => tracing::debug!(?kind, "snapshot not newer than the cached one"),
                Err(e) => {
                    status.snapshots_rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(?kind, error = %e, "refused a snapshot; the cached one stays in force");
                }
            }
        }
        (_, other) => tracing::warn!(topic, kind = ?std::mem::discriminant(&other), "unexpected message"),
    }
}

/// Applies a snapshot if it is newer than the cached one; the body must agree with the frame's
/// version. Everything happens in one SQLite transaction (in `timetable::apply_*`), so a bad
/// snapshot changes nothing.
pub async fn apply_snapshot(store: &Store, snapshot: Snapshot, now_ms: i64) -> Result<bool> {
    store
        .run(move |c| match snapshot.kind {
            SnapshotKind::Timetable => {
                let snap: TimetableSnapshot = serde_json::from_slice(&snapshot.body)?;
                check_version(snap.version, snapshot.version)?;
                timetable::apply_timetable(c, &snap, now_ms)
            }
            SnapshotKind::Roster => {
                let snap: RosterSnapshot = serde_json::from_slice(&snapshot.body)?;
                check_version(snap.version, snapshot.version)?;
                timetable::apply_roster(c, &snap, now_ms)
            }
            SnapshotKind::Announcements => {
                // Checked against its type, then kept verbatim for the pages that show it.
                let snap: nimbus_core::snapshot::AnnouncementsSnapshot = serde_json::from_slice(&snapshot.body)?;
                check_version(snap.version, snapshot.version)?;
                timetable::apply_raw(c, "announcements", snapshot.version, &snapshot.body, now_ms)
            }
            SnapshotKind::Keys | SnapshotKind::Manifest => {
                let kind = snapshot.kind.as_str();
                // Kept verbatim (validated as JSON) for the content and token features that use them.
                serde_json::from_slice::<serde_json::Value>(&snapshot.body)?;
                timetable::apply_raw(c, kind, snapshot.version, &snapshot.body, now_ms)
            }
        })
        .await
}

fn check_version(body: u64, frame: u64) -> Result<()> {
    if body == frame { Ok(()) } else { Err(Error::Snapshot(format!("body says version {body}, frame says {frame}"))) }
}
