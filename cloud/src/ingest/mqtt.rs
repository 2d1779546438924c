//! The MQTT side of the ingest: one persistent session, a dispatcher that never blocks, and one
//! worker task per node.
//!
//! # Concurrency and backpressure
//!
//! - **The event loop never waits on Kafka or PostgreSQL.** rumqttc must be polled to keep the
//!   connection alive and to send the acks workers publish, so the loop only parses the topic and
//!   drops the frame into the node's mailbox.
//! - **One worker per node, one frame at a time.** A node has one batch in flight, so per-node
//!   serial processing costs nothing, keeps its order, and a node stuck on Kafka holds up no one
//!   else. Across instances, the registry's row lock serialises a node ([`Registry::lock`]).
//! - **Bounded memory: one waiting frame per node.** A mailbox holds the newest uplink frame and
//!   the newest status message; a newer frame replaces a waiting one. That is safe because the
//!   node resends its one in-flight batch until acked, so the newest frame is always the one it
//!   waits on (an older copy would at best be re-acked as a duplicate). With Kafka down, memory
//!   stays at (frames being processed + one per node), however long the outage.
//! - **Bounded work in flight:** a semaphore of `ingest.max_in_flight` permits limits how many
//!   batches are stored at once (each holds a database connection and producer queue space).
//! - **Bounded node count:** at most `ingest.max_nodes` workers; frames of further nodes are
//!   dropped and counted (the broker's accounts bound the node ids anyway).
//!
//! MQTT-level acks are automatic (on receipt). End-to-end safety does not rest on them: a frame
//! lost inside the ingest (crash, shutdown, replaced in a mailbox) is never acked in the
//! protocol, so the node resends it.
//!
//! [`Registry::lock`]: crate::registry::Registry::lock

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_core::ids::NodeId;
use nimbus_sync::topics::{NodeTopic, PREFIX, shared_uplink_filter};
use nimbus_sync::transport::{Backoff, MqttConfig};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Packet, Publish, QoS, SubscribeReasonCode};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::pipeline::{Outcome, Pipeline};
use crate::error::{Error, Result};

/// How the MQTT loop runs.
pub struct LoopSettings {
    /// Broker, client id, credentials.
    pub mqtt: MqttConfig,
    /// Largest packet read (see `mqtt.max_incoming_bytes`).
    pub max_incoming_bytes: usize,
    /// Shared-subscription group.
    pub group: String,
    /// Batches processed at once.
    pub max_in_flight: usize,
    /// Most nodes tracked.
    pub max_nodes: usize,
    /// How long shutdown waits for batches already being stored.
    pub drain_timeout: Duration,
}

/// What a node's worker has waiting.
#[derive(Default)]
struct Pending {
    uplink: Option<Publish>,
    status: Option<Publish>,
    closed: bool,
}

/// A node's mailbox: the newest waiting frames and a wake-up for the worker.
#[derive(Default)]
struct Mailbox {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Mailbox {
    /// Leaves a frame for the worker; `true` if it replaced a waiting one.
    fn put(&self, publish: Publish, uplink: bool) -> bool {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let slot = if uplink { &mut p.uplink } else { &mut p.status };
        let replaced = slot.replace(publish).is_some();
        drop(p);
        self.wake.notify_one();
        replaced
    }

    /// Stops the worker after the frame it is processing; waiting frames are dropped (their
    /// nodes resend).
    fn close(&self) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.closed = true;
        p.uplink = None;
        p.status = None;
        drop(p);
        self.wake.notify_one();
    }

    /// The waiting frames, or `None` once closed.
    async fn next(&self) -> Option<(Option<Publish>, Option<Publish>)> {
        loop {
            {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if p.closed {
                    return None;
                }
                if p.uplink.is_some() || p.status.is_some() {
                    return Some((p.status.take(), p.uplink.take()));
                }
            }
            // `notify_one` stores a permit when nobody waits, so a frame put between the check
            // above and this await still wakes us.
            self.wake.notified().await;
        }
    }
}

/// Shared by the dispatcher and all workers.
struct Shared {
    pipeline: Arc<Pipeline>,
    client: AsyncClient,
    permits: Semaphore,
    metrics: Arc<Metrics>,
}

/// Routes frames to node workers, starting them on first use.
struct Dispatcher {
    shared: Arc<Shared>,
    mailboxes: HashMap<NodeId, Arc<Mailbox>>,
    workers: JoinSet<()>,
    max_nodes: usize,
}

impl Dispatcher {
    fn dispatch(&mut self, publish: Publish) {
        let (node, uplink) = match NodeTopic::parse(&publish.topic) {
            Some(NodeTopic::Up(node)) => (node, true),
            Some(NodeTopic::Status(node)) => (node, false),
            _ => {
                self.shared.metrics.add_foreign_topic(1);
                tracing::debug!(topic = %publish.topic, "ignoring a message outside the node uplink and status topics");
                return;
            }
        };
        let mailbox = match self.mailboxes.get(&node) {
            Some(m) => m.clone(),
            None => {
                if self.mailboxes.len() >= self.max_nodes {
                    self.shared.metrics.add_frames_shed(1);
                    tracing::warn!(node = %node, max_nodes = self.max_nodes, "too many nodes; dropping the frame");
                    return;
                }
                let mailbox = Arc::new(Mailbox::default());
                self.mailboxes.insert(node.clone(), mailbox.clone());
                self.workers.spawn(worker(node, mailbox.clone(), self.shared.clone()));
                mailbox
            }
        };
        if mailbox.put(publish, uplink) {
            self.shared.metrics.add_frames_superseded(1);
        }
    }

    fn close_all(&mut self) {
        for m in self.mailboxes.values() {
            m.close();
        }
    }
}

/// Processes one node's frames, one at a time, until its mailbox closes.
async fn worker(node: NodeId, mailbox: Arc<Mailbox>, shared: Arc<Shared>) {
    let ack_topic = NodeTopic::Ack(node.clone()).name();
    while let Some((status, uplink)) = mailbox.next().await {
        let Ok(_permit) = shared.permits.acquire().await else {
            return;
        };
        if let Some(s) = status {
            let (pipeline, n) = (shared.pipeline.clone(), node.clone());
            if let Err(e) = tokio::spawn(async move { pipeline.handle_status(&n, &s.payload).await }).await {
                tracing::error!(node = %node, error = %e, "bug: handling a status message failed");
            }
        }
        let Some(u) = uplink else {
            continue;
        };
        // In its own task so that a bug (a panic) costs one frame, not the node's worker: the
        // frame is not acked and the node resends it.
        let (pipeline, n) = (shared.pipeline.clone(), node.clone());
        let outcome = match tokio::spawn(async move { pipeline.handle_uplink(&n, &u.payload).await }).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(node = %node, error = %e, "bug: handling an uplink frame failed");
                Outcome::Failed { error: e.to_string() }
            }
        };
        match &outcome {
            Outcome::Stored { upto, produced, dead_lettered, skipped } => {
                tracing::debug!(node = %node, upto, produced, dead_lettered, skipped, "batch stored")
            }
            Outcome::PartlyStored { upto, failure } => {
                tracing::warn!(node = %node, upto, %failure, "batch partly stored")
            }
            Outcome::Duplicate { upto } => tracing::debug!(node = %node, upto, "duplicate batch; re-acking"),
            Outcome::Gap { resend_from } => tracing::info!(node = %node, resend_from, "gap; asking for a resend"),
            Outcome::Rejected { .. } | Outcome::Failed { .. } => {}
        }
        if let Some(reply) = outcome.reply() {
            let is_ack =
                matches!(outcome, Outcome::Stored { .. } | Outcome::PartlyStored { .. } | Outcome::Duplicate { .. });
            match shared.client.publish(&ack_topic, QoS::AtLeastOnce, false, reply).await {
                Ok(()) => {
                    shared.metrics.add_acks_published(1);
                    if is_ack {
                        shared.metrics.acked(node.as_str());
                    }
                }
                // Only when the event loop is gone (shutdown); the node resends and is re-acked.
                Err(e) => tracing::warn!(node = %node, error = %e, "cannot publish the reply"),
            }
        }
    }
}

/// Runs the session until `shutdown`, then lets batches being stored finish (up to
/// `drain_timeout`) so their acks still go out, and disconnects.
pub async fn run(
    settings: LoopSettings,
    pipeline: Arc<Pipeline>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut options = settings.mqtt.options().map_err(|e| Error::Config(format!("mqtt.url (MQTT_URL): {e}")))?;
    // Oversized frames must be read and refused, not break the connection (see the setting).
    let outgoing = nimbus_sync::frame::FrameLimits::DEFAULT_MAX_FRAME_BYTES + 1024;
    options.set_max_packet_size(settings.max_incoming_bytes, outgoing);
    // The request channel only carries replies and subscriptions; rumqttc moves what it holds
    // into its own queue on a disconnect, so a full channel briefly slows workers, never the loop.
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let shared = Arc::new(Shared {
        pipeline,
        client: client.clone(),
        permits: Semaphore::new(settings.max_in_flight),
        metrics: metrics.clone(),
    });
    let mut dispatcher =
        Dispatcher { shared, mailboxes: HashMap::new(), workers: JoinSet::new(), max_nodes: settings.max_nodes };
    let uplink_filter = shared_uplink_filter(&settings.group);
    let status_filter = format!("{PREFIX}/+/status");
    let mut backoff = Backoff::new();
    let mut result = Ok(());

    loop {
        let event = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => dispatcher.dispatch(p),
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code != ConnectReturnCode::Success {
                    tracing::error!(code = ?ack.code, "MQTT broker refused the connection");
                    continue;
                }
                backoff.reset();
                metrics.add_connects(1);
                tracing::info!(session_present = ack.session_present, client_id = %settings.mqtt.client_id,
                               "connected to the MQTT broker");
                // Subscribed on every connect, even when the broker kept the session: a broker
                // that lost its state, or a changed `ingest.group`, must not leave the ingest
                // deaf. Re-subscribing is idempotent; it only replays the retained statuses.
                let filters = [&uplink_filter, &status_filter]
                    .map(|f| rumqttc::SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::error!(error = %e, "cannot subscribe");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    // Without its subscriptions the ingest would run and do nothing; better to
                    // stop and say why.
                    result = Err(Error::mqtt_msg(format!(
                        "the broker refused subscribing to {uplink_filter} or {status_filter}; the cloud account \
                         needs `topic read $share/#` and `topic readwrite nimbus/v1/nodes/#` in the broker ACL"
                    )));
                    break;
                }
                metrics.add_subscribed(ack.return_codes.len() as u64);
                metrics.set_connected(true);
                tracing::info!(uplink = %uplink_filter, status = %status_filter, "subscribed");
            }
            Ok(_) => {}
            Err(e) => {
                metrics.add_disconnects(1);
                metrics.set_connected(false);
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "MQTT connection lost");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }

    // Drain: no new frames; batches being stored finish and their replies are flushed.
    dispatcher.close_all();
    let deadline = tokio::time::Instant::now() + settings.drain_timeout;
    let mut workers = std::mem::take(&mut dispatcher.workers);
    loop {
        tokio::select! {
            done = workers.join_next() => if done.is_none() { break },
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(remaining = workers.len(), "shutdown: abandoning batches still waiting on Kafka");
                workers.shutdown().await;
                break;
            }
            // Keep the connection serving so replies go out; new frames are ignored.
            event = eventloop.poll() => if event.is_err() { tokio::time::sleep(Duration::from_millis(200)).await },
        }
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    tracing::info!("ingest stopped");
    result
}
