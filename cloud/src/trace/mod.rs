//! # Distributed tracing (a low floor: no service, no role)
//!
//! One admin request that changes something becomes **one trace**: the API's request span, then
//! (through the outbox and Kafka) the span of every worker that handles the event. Spans are
//! exported over OTLP/HTTP with JSON bodies to `OTEL_EXPORTER_OTLP_ENDPOINT` (`<it>/v1/traces`),
//! which any OpenTelemetry collector, Jaeger or Tempo accepts. Tracing is **off** unless that is
//! set; off, no span is created and the only cost is one atomic load per request and message.
//!
//! ## How the context travels (W3C Trace Context)
//!
//! 1. The gateway opens the request span with the caller's `traceparent` header as remote
//!    parent, if it sent a valid one, or in a new trace ([`request_span`]).
//! 2. [`crate::outbox::enqueue`] writes the current span's `traceparent` into the event's
//!    `metadata.traceparent` (the seed's `BaseEvent.metadata` map: no migration, and the context
//!    survives a replay from the DLQ, which keeps the payload).
//! 3. The relay copies it into the Kafka record's `traceparent` header ([`kafka_headers`]).
//! 4. The consumer loop runs the handling of each message in a span whose remote parent is that
//!    header ([`consume_span`]).
//!
//! ## Why hand-written rather than the OpenTelemetry crates
//!
//! The SDK, the OTLP exporter and `tracing-opentelemetry` add 15 crates (tonic and prost among
//! them, even for HTTP/JSON) and 386 KiB (docs/benchmarks.md). What this needs is small: a
//! [`tracing_subscriber::Layer`] ([`OtlpLayer`]) that gives spans W3C ids and, when a span
//! closes, hands it to a background task that posts batches as OTLP JSON with the reqwest client
//! the cloud already has ([`start`]). It does no sampling (every span is exported) and no
//! metrics or logs signal; a deployment that needs those puts a collector in front.
//!
//! Both spans record their trace id as a `trace_id` field, so with `NIMBUS_LOG_FORMAT=json` the
//! log lines written inside them carry it (`span.trace_id`).
//!
//! Spans the exporter cannot keep up with are dropped (a bounded queue), never waited for: a
//! slow or absent collector must not slow the API.

mod export;
mod layer;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub use export::{Exporter, start};
pub use layer::{OtlpLayer, current_traceparent};

/// The W3C header (and `metadata` key) carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// Whether spans are being recorded (set once by [`start`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Where closed spans go: the exporter's queue.
static SINK: OnceLock<tokio::sync::mpsc::Sender<layer::FinishedSpan>> = OnceLock::new();

/// Whether tracing is on in this process. Callers skip building spans when it is not, so tracing
/// off costs nothing measurable.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A W3C trace context: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace's id (never all zero).
    pub trace_id: [u8; 16],
    /// The span that is the parent of whatever continues the trace (never all zero).
    pub span_id: [u8; 8],
}

impl TraceParent {
    /// Parses a `traceparent` header (version `00`; later versions are read by their first four
    /// fields, as the spec asks). `None` for anything invalid: the trace then starts afresh.
    pub fn parse(header: &str) -> Option<TraceParent> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || flags.len() != 2 || (version == "00" && parts.next().is_some()) {
            return None;
        }
        u8::from_str_radix(flags, 16).ok()?;
        u8::from_str_radix(version, 16).ok()?;
        let trace_id: [u8; 16] = decode_hex(trace)?;
        let span_id: [u8; 8] = decode_hex(span)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent { trace_id, span_id })
    }

    /// The header value (always sampled: this exporter keeps every span).
    pub fn to_header(&self) -> String {
        format!("00-{}-{}-01", hex::encode(self.trace_id), hex::encode(self.span_id))
    }
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Lower-case only, per the spec.
    if text.len() != N * 2 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The span of one API request, continuing the caller's `traceparent` if valid; disabled (no
/// cost) when tracing is off.
pub fn request_span(method: &str, route: &str, traceparent: Option<&str>) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let name = format!("{method} {route}");
    with_trace_id(tracing::info_span!(
        "http.request",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        traceparent = traceparent.unwrap_or_default(),
        trace_id = tracing::field::Empty,
    ))
}

/// The span the ingest handles one node's uplink frame in: the root of a trace (a node does not
/// trace) that the Kafka records of the batch carry on ([`crate::ingest`] sets their
/// `traceparent` header), so the workers' handling of a classroom's taps hangs under the batch
/// that brought them. Disabled when tracing is off.
pub fn ingest_span(node: &str, bytes: usize) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    with_trace_id(tracing::info_span!(
        "mqtt.receive",
        otel.name = "uplink process",
        otel.kind = "consumer",
        messaging.system = "mqtt",
        messaging.destination.name = "nimbus/+/uplink",
        messaging.message.body.size = bytes,
        nimbus.node_id = node,
        nimbus.events = tracing::field::Empty,
        nimbus.outcome = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    ))
}

/// The Kafka headers that carry the current span's context, when tracing is on and a span is
/// current.
pub fn current_headers() -> Option<rdkafka::message::OwnedHeaders> {
    let value = current_traceparent()?;
    Some(
        rdkafka::message::OwnedHeaders::new()
            .insert(rdkafka::message::Header { key: TRACEPARENT, value: Some(&value) }),
    )
}

/// The span a worker handles one Kafka message in, child of the producer's `traceparent` header
/// when the record has one; disabled when tracing is off.
pub fn consume_span(msg: &rdkafka::message::OwnedMessage, group_id: &str) -> tracing::Span {
    use rdkafka::Message;
    if !enabled() {
        return tracing::Span::none();
    }
    let parent = traceparent_of(msg).unwrap_or_default();
    let name = format!("{} process", msg.topic());
    with_trace_id(tracing::info_span!(
        "kafka.consume",
        otel.name = %name,
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = msg.topic(),
        messaging.consumer.group.name = group_id,
        messaging.kafka.offset = msg.offset(),
        traceparent = parent,
        trace_id = tracing::field::Empty,
    ))
}

/// The spans a worker handles one batch in: the first message's (the batch runs inside it), and
/// one more for every later message carrying a trace context not seen yet in the batch, so that
/// each traced change's trace reaches the worker even when other changes shared its batch. The
/// extra spans cover the batch's handling (they close when dropped after it). Empty when tracing
/// is off.
pub fn consume_spans<'a>(
    mut msgs: impl Iterator<Item = &'a rdkafka::message::OwnedMessage>,
    group_id: &str,
) -> Vec<tracing::Span> {
    if !enabled() {
        return Vec::new();
    }
    let Some(first) = msgs.next() else { return Vec::new() };
    let mut seen = vec![traceparent_of(first)];
    let mut spans = vec![consume_span(first, group_id)];
    for msg in msgs {
        let parent = traceparent_of(msg);
        if parent.is_some() && !seen.contains(&parent) {
            spans.push(consume_span(msg, group_id));
            seen.push(parent);
        }
    }
    spans
}

fn traceparent_of(msg: &rdkafka::message::OwnedMessage) -> Option<String> {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    msg.headers()
        .and_then(|h| h.iter().find(|h| h.key == TRACEPARENT))
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

/// Records the span's trace id as its `trace_id` field, so JSON log lines written inside it
/// carry the id that finds the trace in the collector.
fn with_trace_id(span: tracing::Span) -> tracing::Span {
    if let Some(tp) = layer::context_of(&span) {
        span.record("trace_id", hex::encode(tp.trace_id));
    }
    span
}

/// The Kafka headers for an outbox row whose event JSON is `payload`: its
/// `metadata.traceparent`, if it has one. Rows without one (tracing off when they were written)
/// get none, so the relay does not parse payloads that cannot carry a context.
pub fn kafka_headers(payload: &str) -> Option<rdkafka::message::OwnedHeaders> {
    #[derive(serde::Deserialize)]
    struct Event {
        metadata: Option<std::collections::BTreeMap<String, String>>,
    }
    if !payload.contains(TRACEPARENT) {
        return None;
    }
    let mut event: Event = serde_json::from_str(payload).ok()?;
    let value = event.metadata.as_mut()?.remove(TRACEPARENT)?;
    TraceParent::parse(&value)?;
    Some(
        rdkafka::message::OwnedHeaders::new()
            .insert(rdkafka::message::Header { key: TRACEPARENT, value: Some(&value) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_round_trips_and_invalid_ones_are_refused() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(header).unwrap();
        assert_eq!(hex::encode(tp.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.to_header(), header);
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version is read by its first four fields.
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what").is_some());
    }

    #[test]
    fn only_an_outbox_row_with_a_valid_traceparent_gets_a_kafka_header() {
        use rdkafka::message::Headers;
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let with = format!(r#"{{"event_id":"x","metadata":{{"actor_id":"a","traceparent":"{tp}"}}}}"#);
        let headers = kafka_headers(&with).unwrap();
        let header = headers.iter().next().unwrap();
        assert_eq!((header.key, header.value), (TRACEPARENT, Some(tp.as_bytes())));
        assert!(kafka_headers(r#"{"event_id":"x","metadata":{"actor_id":"a"}}"#).is_none());
        assert!(kafka_headers(r#"{"event_id":"x","metadata":{"traceparent":"nonsense"}}"#).is_none());
    }
}
