//! Delivery to Kafka: hands a batch's messages to the idempotent producer at once and waits for
//! every delivery report, so the pipeline knows exactly which prefix of the batch is safely in
//! Kafka before it moves a node's mark.

use std::sync::RwLock;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::mapping::Outgoing;
use crate::error::Result;
use crate::kafka;

/// The outcome of delivering a batch's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// How many messages, from the first, Kafka confirmed without a failure before them.
    pub confirmed: usize,
    /// The first failure, if any message was not confirmed.
    pub failure: Option<String>,
}

impl Delivery {
    /// Whether every message was confirmed.
    pub fn is_complete(&self) -> bool {
        self.failure.is_none()
    }
}

/// The ingest's producer, rebuilt after any batch that failed: an idempotent producer whose
/// sequence state the broker lost (a broker restarted without it) keeps failing with errors
/// librdkafka does not flag as fatal, while a fresh producer (new producer id) works. Rebuilding
/// is safe because a failed batch leaves nothing in flight: every delivery report was awaited.
pub struct KafkaSink {
    brokers: String,
    timeout: Duration,
    producer: RwLock<FutureProducer>,
}

impl KafkaSink {
    /// A sink for `brokers`; connects lazily, so it can be built while Kafka is down.
    pub fn new(brokers: &str, delivery_timeout: Duration) -> Result<Self> {
        Ok(KafkaSink {
            brokers: brokers.to_owned(),
            timeout: delivery_timeout,
            producer: RwLock::new(kafka::producer_with_timeout(brokers, delivery_timeout)?),
        })
    }

    /// The producer in use now.
    pub fn current(&self) -> FutureProducer {
        self.producer.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Produces every message, in order, then awaits every delivery report (they all resolve
    /// within the delivery timeout; a safety margin guards against a report that never comes).
    /// Waiting for all, not just up to the first failure, means nothing of this batch is still
    /// in flight when the caller releases the node.
    pub async fn deliver(&self, messages: &[&Outgoing]) -> Delivery {
        let producer = self.current();
        let mut pending = Vec::with_capacity(messages.len());
        // The batch's span (tracing on) travels with every record, for the consumers' spans.
        let headers = crate::trace::current_headers();
        for m in messages {
            let mut record = FutureRecord::to(m.topic.name()).key(m.key.as_bytes()).payload(m.payload.as_bytes());
            if let Some(h) = &headers {
                record = record.headers(h.clone());
            }
            pending.push(producer.send_result(record).map_err(|(e, _)| format!("enqueue: {e}")));
        }
        let deadline = tokio::time::Instant::now() + self.timeout + Duration::from_secs(5);
        let mut confirmed = 0;
        let mut failure = None;
        for (i, p) in pending.into_iter().enumerate() {
            let result = match p {
                Err(e) => Err(e),
                Ok(fut) => match tokio::time::timeout_at(deadline, fut).await {
                    Ok(Ok(Ok((partition, offset)))) => {
                        tracing::trace!(topic = %messages[i].topic, partition, offset, seq = messages[i].seq, "confirmed");
                        Ok(())
                    }
                    Ok(Ok(Err((e, _)))) => Err(e.to_string()),
                    Ok(Err(_)) => Err("producer dropped the delivery report".into()),
                    Err(_) => Err("no delivery report within the delivery timeout".into()),
                },
            };
            match result {
                Ok(()) if failure.is_none() => confirmed = i + 1,
                Ok(()) => {}
                Err(e) if failure.is_none() => {
                    failure = Some(format!("{} (seq {}): {e}", messages[i].topic, messages[i].seq));
                }
                Err(_) => {}
            }
        }
        if failure.is_some() {
            self.renew(&producer);
        }
        Delivery { confirmed, failure }
    }

    fn renew(&self, used: &FutureProducer) {
        match used.client().fatal_error() {
            Some((code, reason)) => {
                tracing::error!(%code, %reason, "Kafka producer hit a fatal error; creating a new one")
            }
            None => tracing::warn!("a batch failed; replacing the Kafka producer in case the broker lost its state"),
        }
        match kafka::producer_with_timeout(&self.brokers, self.timeout) {
            Ok(fresh) => *self.producer.write().unwrap_or_else(|e| e.into_inner()) = fresh,
            Err(e) => tracing::error!(error = %e, "cannot create a new Kafka producer"),
        }
    }
}
