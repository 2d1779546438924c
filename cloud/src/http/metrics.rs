//! The one metrics registry every role records into and `/metrics` renders as Prometheus text:
//! counters, gauges and histograms by label set, named once below ([`Metric`]). The seed's names
//! (`http_*`, `kafka_*`) keep the seed's labels; ours start with `nimbus_`.
//!
//! Counters kept elsewhere as atomics (a worker's, the notification sender's, the ingest's) are
//! copied in by collectors ([`Registry::on_scrape`]) when a scrape renders, so the hot paths that
//! own them never take this registry's lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (Prometheus' default buckets, as the seed
/// asks for `DefBuckets`).
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Any value, set.
    Gauge,
    /// Observations in [`BUCKETS`].
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A metric's name, help and kind: the `# HELP` / `# TYPE` lines.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// One line for `# HELP`.
    pub help: &'static str,
    /// Its type.
    pub kind: Kind,
}

const fn metric(name: &'static str, help: &'static str, kind: Kind) -> Metric {
    Metric { name, help, kind }
}

/// The seed's `http_requests_total{method,endpoint,status}`.
pub const HTTP_REQUESTS: Metric = metric("http_requests_total", "Total number of HTTP requests", Kind::Counter);
/// The seed's `http_request_duration_seconds{method,endpoint}`.
pub const HTTP_DURATION: Metric =
    metric("http_request_duration_seconds", "HTTP request duration in seconds", Kind::Histogram);
/// The seed's `kafka_messages_produced_total{topic,event_type}`: confirmed by the broker.
pub const KAFKA_PRODUCED: Metric =
    metric("kafka_messages_produced_total", "Total number of messages produced", Kind::Counter);
/// The seed's `kafka_messages_consumed_total{topic,consumer_group,event_type}`.
pub const KAFKA_CONSUMED: Metric =
    metric("kafka_messages_consumed_total", "Total number of messages consumed", Kind::Counter);
/// The seed's `kafka_consumer_lag{topic,consumer_group,partition}`: the partition's end offset
/// minus the group's committed offset.
pub const KAFKA_LAG: Metric = metric("kafka_consumer_lag", "Consumer lag per partition", Kind::Gauge);
/// The seed's `kafka_message_processing_duration_seconds{topic,event_type}`: from receipt to the
/// commit of the transaction that applied it.
pub const KAFKA_PROCESSING: Metric =
    metric("kafka_message_processing_duration_seconds", "Message processing duration", Kind::Histogram);
/// The seed's `kafka_producer_errors_total{topic}`: deliveries the broker did not confirm.
pub const KAFKA_PRODUCER_ERRORS: Metric = metric("kafka_producer_errors_total", "Producer errors", Kind::Counter);
/// The seed's `kafka_consumer_errors_total{consumer_group}`: errors the consumer reported.
pub const KAFKA_CONSUMER_ERRORS: Metric = metric("kafka_consumer_errors_total", "Consumer errors", Kind::Counter);
/// The seed's `kafka_dlq_messages_total{original_topic,failure_reason}`; the reason is a class
/// (`unparseable`, `invalid`, `retries_exhausted`), not the error text, so the series stay few.
pub const KAFKA_DLQ: Metric = metric("kafka_dlq_messages_total", "Total messages sent to DLQ", Kind::Counter);
/// Events a node reports waiting in its outbox (its last heartbeat), `{node}`.
pub const NODE_BACKLOG: Metric =
    metric("nimbus_node_backlog_events", "Events waiting in the node's outbox (its last heartbeat)", Kind::Gauge);
/// Seconds since this ingest last acked the node, `{node}`.
pub const NODE_ACK_AGE: Metric =
    metric("nimbus_node_ack_age_seconds", "Seconds since this ingest last acked a batch of the node", Kind::Gauge);

/// One series' value.
#[derive(Debug, Clone)]
enum Value {
    Scalar(f64),
    Histogram { counts: [u64; BUCKETS.len()], sum: f64, count: u64 },
}

#[derive(Debug)]
struct Family {
    metric: Metric,
    /// Rendered label set (`method="GET",status="200"`) → value.
    series: BTreeMap<String, Value>,
}

type Collector = Arc<dyn Fn(&Registry) + Send + Sync>;

/// The registry: shared by every part of a process (`all` has one for every role).
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
    collectors: Mutex<Vec<Collector>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out
}

impl Registry {
    fn with_series(&self, m: &Metric, pairs: &[(&str, &str)], f: impl FnOnce(&mut Value)) {
        let key = labels(pairs);
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(m.name).or_insert_with(|| Family { metric: *m, series: BTreeMap::new() });
        let value = family.series.entry(key).or_insert_with(|| match m.kind {
            Kind::Histogram => Value::Histogram { counts: [0; BUCKETS.len()], sum: 0.0, count: 0 },
            Kind::Counter | Kind::Gauge => Value::Scalar(0.0),
        });
        f(value);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, m: &Metric, pairs: &[(&str, &str)], n: u64) {
        self.with_series(m, pairs, |v| {
            if let Value::Scalar(x) = v {
                *x += n as f64;
            }
        });
    }

    /// Sets a gauge (or a counter mirrored from an atomic kept elsewhere).
    pub fn set(&self, m: &Metric, pairs: &[(&str, &str)], value: f64) {
        self.with_series(m, pairs, |v| {
            if let Value::Scalar(x) = v {
                *x = value;
            }
        });
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, m: &Metric, pairs: &[(&str, &str)], elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        self.with_series(m, pairs, |v| {
            if let Value::Histogram { counts, sum, count } = v {
                for (c, bound) in counts.iter_mut().zip(BUCKETS) {
                    if secs <= bound {
                        *c += 1;
                    }
                }
                *sum += secs;
                *count += 1;
            }
        });
    }

    /// Replaces the series of `m` that carry `owner` (a label pair) with `series`: a gauge whose
    /// label sets come and go (partitions assigned, nodes seen), refreshed by the one part of the
    /// process that owns them.
    pub fn replace(&self, m: &Metric, owner: (&str, &str), series: &[(Vec<(&str, &str)>, f64)]) {
        let tag = labels(&[owner]);
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(m.name).or_insert_with(|| Family { metric: *m, series: BTreeMap::new() });
        family.series.retain(|k, _| !k.split(',').any(|pair| pair == tag));
        for (pairs, value) in series {
            family.series.insert(labels(pairs), Value::Scalar(*value));
        }
    }

    /// Runs `collect` before every render: copies counters kept elsewhere into the registry.
    pub fn on_scrape(&self, collect: impl Fn(&Registry) + Send + Sync + 'static) {
        self.collectors.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::new(collect));
    }

    /// The value of one series (tests, and collectors that derive one metric from another).
    pub fn value(&self, m: &Metric, pairs: &[(&str, &str)]) -> Option<f64> {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        match families.get(m.name)?.series.get(&labels(pairs))? {
            Value::Scalar(x) => Some(*x),
            Value::Histogram { count, .. } => Some(*count as f64),
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, after running the
    /// collectors.
    pub fn render(&self) -> String {
        let collectors: Vec<Collector> = self.collectors.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for collect in collectors {
            collect(self);
        }
        let mut out = String::new();
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        for family in families.values() {
            let m = family.metric;
            let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
            let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind.name());
            for (key, value) in &family.series {
                let braces = |extra: &str| match (key.is_empty(), extra.is_empty()) {
                    (true, true) => String::new(),
                    (true, false) => format!("{{{extra}}}"),
                    (false, true) => format!("{{{key}}}"),
                    (false, false) => format!("{{{key},{extra}}}"),
                };
                match value {
                    Value::Scalar(x) => {
                        let _ = writeln!(out, "{}{} {x}", m.name, braces(""));
                    }
                    Value::Histogram { counts, sum, count } => {
                        for (c, bound) in counts.iter().zip(BUCKETS) {
                            let _ = writeln!(out, "{}_bucket{} {c}", m.name, braces(&format!("le=\"{bound}\"")));
                        }
                        let _ = writeln!(out, "{}_bucket{} {count}", m.name, braces("le=\"+Inf\""));
                        let _ = writeln!(out, "{}_sum{} {sum}", m.name, braces(""));
                        let _ = writeln!(out, "{}_count{} {count}", m.name, braces(""));
                    }
                }
            }
        }
        out
    }
}

const RATE_LIMITED: Metric = metric("nimbus_api_rate_limited_total", "Requests refused with 429", Kind::Counter);
const LOGINS: Metric = metric("nimbus_api_logins_total", "Login attempts by outcome", Kind::Counter);

/// The API's view of the registry: requests under the seed's names, logins.
pub struct ApiMetrics {
    /// The registry the API's `/metrics` renders.
    pub registry: Arc<Registry>,
    /// Successful logins.
    pub logins_ok: AtomicU64,
    /// Refused logins.
    pub logins_failed: AtomicU64,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics::new(Arc::new(Registry::default()))
    }
}

impl ApiMetrics {
    /// The API's counters in `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        ApiMetrics { registry, logins_ok: AtomicU64::new(0), logins_failed: AtomicU64::new(0) }
    }

    /// Records one answered request (`endpoint` is the matched route, so the series stay few).
    pub fn record(&self, method: &str, endpoint: &str, status: u16, latency: Duration) {
        let status = status.to_string();
        self.registry.add(&HTTP_REQUESTS, &[("method", method), ("endpoint", endpoint), ("status", &status)], 1);
        self.registry.observe(&HTTP_DURATION, &[("method", method), ("endpoint", endpoint)], latency);
    }

    /// The Prometheus text of the whole registry; `rate_limited` comes from the limiter.
    pub fn render(&self, rate_limited: u64) -> String {
        self.registry.set(&RATE_LIMITED, &[], rate_limited as f64);
        self.registry.set(&LOGINS, &[("outcome", "success")], self.logins_ok.load(Ordering::Relaxed) as f64);
        self.registry.set(&LOGINS, &[("outcome", "failure")], self.logins_failed.load(Ordering::Relaxed) as f64);
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_latency_render_under_the_seed_names_and_labels() {
        let m = ApiMetrics::default();
        m.record("GET", "/api/v1/users/:id", 200, Duration::from_millis(20));
        m.record("GET", "/api/v1/users/:id", 200, Duration::from_millis(300));
        let text = m.render(3);
        assert!(text.contains("# TYPE http_requests_total counter"));
        assert!(text.contains("http_requests_total{method=\"GET\",endpoint=\"/api/v1/users/:id\",status=\"200\"} 2"));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",endpoint=\"/api/v1/users/:id\",le=\"0.025\"} 1"
        ));
        assert!(text.contains("http_request_duration_seconds_count{method=\"GET\",endpoint=\"/api/v1/users/:id\"} 2"));
        assert!(text.contains("nimbus_api_rate_limited_total 3"));
    }

    #[test]
    fn replace_swaps_only_the_owners_series_and_collectors_run_on_render() {
        let r = Registry::default();
        let g1 = [("topic", "a"), ("consumer_group", "g1"), ("partition", "0")];
        let g2 = [("topic", "a"), ("consumer_group", "g2"), ("partition", "0")];
        r.replace(&KAFKA_LAG, ("consumer_group", "g1"), &[(g1.to_vec(), 5.0)]);
        r.replace(&KAFKA_LAG, ("consumer_group", "g2"), &[(g2.to_vec(), 7.0)]);
        r.replace(&KAFKA_LAG, ("consumer_group", "g1"), &[]);
        assert_eq!(r.value(&KAFKA_LAG, &g1), None);
        assert_eq!(r.value(&KAFKA_LAG, &g2), Some(7.0));
        let seen = Arc::new(AtomicU64::new(41));
        let s = seen.clone();
        r.on_scrape(move |r| r.set(&NODE_BACKLOG, &[("node", "n\"1")], s.fetch_add(1, Ordering::Relaxed) as f64));
        assert!(r.render().contains("nimbus_node_backlog_events{node=\"n\\\"1\"} 41"));
        assert!(r.render().contains("nimbus_node_backlog_events{node=\"n\\\"1\"} 42"));
    }
}
