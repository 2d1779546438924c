//! The API's Prometheus metrics: requests by route and status, latency histogram by route,
//! rate-limited requests and logins, rendered as text at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Counters of the API process.
#[derive(Default)]
pub struct ApiMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Successful logins.
    pub logins_ok: AtomicU64,
    /// Refused logins.
    pub logins_failed: AtomicU64,
}

impl ApiMetrics {
    /// Records one answered request.
    pub fn record(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry((method.to_owned(), route.to_owned(), status)).or_default() += 1;
        drop(r);
        let secs = latency.as_secs_f64();
        let mut l = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = l.entry(route.to_owned()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus text exposition; `rate_limited` comes from the limiter.
    pub fn render(&self, rate_limited: u64) -> String {
        let mut out = String::new();
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str("# HELP nimbus_api_requests_total Requests answered, by method, route and status.\n");
        out.push_str("# TYPE nimbus_api_requests_total counter\n");
        for ((m, r, s), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ =
                writeln!(out, "nimbus_api_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}", esc(r));
        }
        out.push_str("# HELP nimbus_api_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE nimbus_api_request_duration_seconds histogram\n");
        for (r, h) in self.latency.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let r = esc(r);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "nimbus_api_request_duration_seconds_bucket{{route=\"{r}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ =
                writeln!(out, "nimbus_api_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "nimbus_api_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
            let _ = writeln!(out, "nimbus_api_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
        }
        out.push_str("# HELP nimbus_api_rate_limited_total Requests refused with 429.\n");
        out.push_str("# TYPE nimbus_api_rate_limited_total counter\n");
        let _ = writeln!(out, "nimbus_api_rate_limited_total {rate_limited}");
        out.push_str("# HELP nimbus_api_logins_total Login attempts by outcome.\n");
        out.push_str("# TYPE nimbus_api_logins_total counter\n");
        let _ =
            writeln!(out, "nimbus_api_logins_total{{outcome=\"success\"}} {}", self.logins_ok.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "nimbus_api_logins_total{{outcome=\"failure\"}} {}",
            self.logins_failed.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_latency_render_as_prometheus_text() {
        let m = ApiMetrics::default();
        m.record("GET", "/api/v1/users/:id", 200, Duration::from_millis(20));
        m.record("GET", "/api/v1/users/:id", 200, Duration::from_millis(300));
        let text = m.render(3);
        assert!(
            text.contains("nimbus_api_requests_total{method=\"GET\",route=\"/api/v1/users/:id\",status=\"200\"} 2")
        );
        assert!(
            text.contains("nimbus_api_request_duration_seconds_bucket{route=\"/api/v1/users/:id\",le=\"0.025\"} 1")
        );
        assert!(text.contains("nimbus_api_request_duration_seconds_count{route=\"/api/v1/users/:id\"} 2"));
        assert!(text.contains("nimbus_api_rate_limited_total 3"));
    }
}
