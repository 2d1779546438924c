//! The downlink's MQTT side: retained QoS 1 snapshot frames on `nimbus/v1/nodes/{node}/down/{kind}`,
//! one at a time, each confirmed by the broker's PUBACK before the next.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nimbus_core::ids::NodeId;
use nimbus_sync::frame::{self, Message, Snapshot};
use nimbus_sync::topics::{NodeTopic, SnapshotKind};
use nimbus_sync::transport::MqttConfig;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// A connected publisher; its event loop runs until the shutdown token is cancelled.
pub struct Publisher {
    client: AsyncClient,
    acks: mpsc::Receiver<u16>,
    timeout: Duration,
    connected: Arc<AtomicBool>,
}

impl Publisher {
    /// Connects (lazily: the event loop keeps reconnecting with backoff) with `mqtt`.
    pub fn start(mqtt: &MqttConfig, timeout: Duration, shutdown: CancellationToken) -> Result<Self> {
        let mut options = mqtt.options().map_err(|e| Error::mqtt("options", e))?;
        // Snapshots are retained on the broker; the downlink itself needs no session.
        options.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let (tx, acks) = mpsc::channel(64);
        let connected = Arc::new(AtomicBool::new(false));
        let up = connected.clone();
        tokio::spawn(async move {
            let mut backoff = nimbus_sync::transport::Backoff::new();
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    e = eventloop.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        let _ = tx.try_send(ack.pkid);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff.reset();
                        up.store(true, Ordering::Relaxed);
                        tracing::info!("downlink connected to the broker");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        up.store(false, Ordering::Relaxed);
                        let wait = backoff.next_delay();
                        tracing::warn!(error = %e, ?wait, "downlink broker connection failed; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
        });
        Ok(Publisher { client, acks, timeout, connected })
    }

    /// Whether the broker connection is up now (readiness).
    pub fn connected(&self) -> Arc<AtomicBool> {
        self.connected.clone()
    }

    /// Publishes one retained snapshot and waits for the broker's confirmation.
    pub async fn publish(&mut self, node: &NodeId, kind: SnapshotKind, version: u64, body: Vec<u8>) -> Result<()> {
        while self.acks.try_recv().is_ok() {} // stale confirmations of timed-out publishes
        let topic = NodeTopic::Down(node.clone(), kind).name();
        let bytes = frame::encode(&Message::Snapshot(Snapshot { kind, version, body }));
        self.client
            .publish(topic.as_str(), QoS::AtLeastOnce, true, bytes)
            .await
            .map_err(|e| Error::mqtt(format!("publish {topic}"), e))?;
        match tokio::time::timeout(self.timeout, self.acks.recv()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::mqtt_msg("downlink connection closed")),
            Err(_) => Err(Error::mqtt_msg(format!("no PUBACK for {topic} within {:?}", self.timeout))),
        }
    }
}
