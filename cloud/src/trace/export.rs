//! The exporter: a task that collects finished spans and posts them as OTLP/HTTP JSON
//! (`ExportTraceServiceRequest`, `resourceSpans`) to `<endpoint>/v1/traces`, at most every
//! [`FLUSH_EVERY`] or as soon as [`BATCH`] spans are waiting.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::layer::{AttrValue, FinishedSpan};
use super::{ENABLED, SINK};
use crate::error::{Error, Result};

/// Spans per request (the OpenTelemetry SDK's default batch size).
const BATCH: usize = 512;
/// The longest a finished span waits before it is posted.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Finished spans queued at most; beyond it spans are dropped.
const QUEUE: usize = 8192;
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The running exporter: [`Exporter::finish`] posts what is left after the role stopped.
pub struct Exporter {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    /// Stops collecting, posts the spans still queued (at most [`POST_TIMEOUT`]) and returns.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Turns tracing on in this process, exporting to `endpoint` as `service_name`; the
/// subscriber must have [`super::OtlpLayer`]. `None` when no endpoint is configured. Once per
/// process (a second call is a configuration error).
pub fn start(endpoint: Option<&str>, service_name: &str) -> Result<Option<Exporter>> {
    let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else { return Ok(None) };
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    reqwest::Url::parse(&url)
        .map_err(|e| Error::Config(format!("tracing.otlp_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .build()
        .map_err(|e| Error::Config(format!("OTLP exporter client: {e}")))?;
    let (tx, rx) = mpsc::channel(QUEUE);
    SINK.set(tx).map_err(|_| Error::Config("tracing is already started in this process".into()))?;
    ENABLED.store(true, Ordering::Relaxed);
    let stop = CancellationToken::new();
    let resource = json!({ "attributes": [attribute("service.name", &AttrValue::Str(service_name.to_owned()))] });
    let task = tokio::spawn(run(client, url, resource, rx, stop.clone()));
    tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
    Ok(Some(Exporter { stop, task }))
}

async fn run(
    client: reqwest::Client,
    url: String,
    resource: Value,
    mut rx: mpsc::Receiver<FinishedSpan>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tick.tick() => false,
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 { true } else if batch.len() < BATCH { continue } else { false }
            }
        };
        if stopping {
            ENABLED.store(false, Ordering::Relaxed);
            while let Ok(span) = rx.try_recv() {
                batch.push(span);
            }
        }
        if !batch.is_empty() {
            post(&client, &url, &resource, &batch).await;
            batch.clear();
        }
        if stopping {
            return;
        }
    }
}

async fn post(client: &reqwest::Client, url: &str, resource: &Value, spans: &[FinishedSpan]) {
    let body = json!({
        "resourceSpans": [{
            "resource": resource,
            "scopeSpans": [{ "scope": { "name": "nimbus-cloud" }, "spans": spans.iter().map(span_json).collect::<Vec<_>>() }],
        }]
    });
    let request = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    match request.send().await {
        Ok(r) if r.status().is_success() => {}
        // Logged at debug: a collector that is down would otherwise flood the logs it is there
        // to complement; the spans are lost either way.
        Ok(r) => tracing::debug!(status = %r.status(), spans = spans.len(), "OTLP collector refused spans"),
        Err(e) => tracing::debug!(error = %e, spans = spans.len(), "OTLP collector unreachable; spans dropped"),
    }
}

/// One span in OTLP's JSON mapping: ids in hex, times as decimal strings of nanoseconds.
fn span_json(s: &FinishedSpan) -> Value {
    let nanos = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos().to_string();
    let mut span = json!({
        "traceId": hex::encode(s.trace_id),
        "spanId": hex::encode(s.span_id),
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": nanos(s.start),
        "endTimeUnixNano": nanos(s.end),
        "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
        // STATUS_CODE_ERROR = 2, UNSET = 0.
        "status": { "code": if s.error { 2 } else { 0 } },
    });
    if let Some(parent) = s.parent_span_id {
        span["parentSpanId"] = json!(hex::encode(parent));
    }
    span
}

fn attribute(key: &str, value: &AttrValue) -> Value {
    let value = match value {
        AttrValue::Str(s) => json!({ "stringValue": s }),
        AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
        AttrValue::Bool(b) => json!({ "boolValue": b }),
        AttrValue::Double(d) => json!({ "doubleValue": d }),
    };
    json!({ "key": key, "value": value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_written_in_otlp_json() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_123);
        let span = FinishedSpan {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            parent_span_id: Some([0x02; 8]),
            name: "POST /api/v1/departments".into(),
            kind: 2,
            start,
            end: start + Duration::from_millis(5),
            attributes: vec![("http.response.status_code", AttrValue::Int(201))],
            error: false,
        };
        let j = span_json(&span);
        assert_eq!(j["traceId"], "abababababababababababababababab");
        assert_eq!(j["spanId"], "0101010101010101");
        assert_eq!(j["parentSpanId"], "0202020202020202");
        assert_eq!(j["startTimeUnixNano"], "1700000000000000123");
        assert_eq!(j["endTimeUnixNano"], "1700000000005000123");
        assert_eq!(j["attributes"][0], json!({"key": "http.response.status_code", "value": {"intValue": "201"}}));
        assert_eq!(j["status"]["code"], 0);
        let root = span_json(&FinishedSpan { parent_span_id: None, ..span });
        assert!(root.get("parentSpanId").is_none());
    }
}
