//! Live conversations under load: two api instances (`nimbus_cloud::api::gateway::run` on real
//! ports) over real PostgreSQL and Redis, with 1,000 WebSockets open (half on each instance).
//! Each of the first half is in a direct conversation with one of the second half. Senders post
//! through instance 0's HTTP API; the recipient's socket is on instance 1, so every message goes
//! send → PostgreSQL commit → Redis pub/sub → the other instance's hub → the socket.
//!
//! Prints, per phase, messages sent per second and send → delivery latency on the other
//! instance's socket (p50/p99), and the process's memory per open socket:
//!
//! - `paced`: 16 senders, one message each per 100 ms (latency with the sockets mostly idle);
//! - `flat-out`: 32 senders as fast as the API answers (what one instance sustains).
//!
//! Clients, both instances and the databases share the machine, so the numbers are a floor.
//!
//!     cargo bench -p nimbus-cloud --bench live
//!     LIVE_BENCH_SOCKETS=1000 LIVE_BENCH_SECS=10 cargo bench -p nimbus-cloud --bench live

// The integration tests' support; this bench uses only the test API's configuration.
#[path = "../tests/integration/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nimbus_core::token::{Claims, ISSUER, TokenType};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Latencies recorded by the receiving sockets: (message text's send instant → arrival).
#[derive(Default)]
struct Received {
    latencies: Mutex<Vec<Duration>>,
    count: AtomicUsize,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let sockets = env("LIVE_BENCH_SOCKETS", 1000).max(2) / 2 * 2;
    let secs = env("LIVE_BENCH_SECS", 10) as u64;
    let (config, dbs) = common::api::test_config().await;
    let stop = CancellationToken::new();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        addrs.push(common::api::serve(&config, &stop).await.0);
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    // Tokens signed with the API's own keys; conversations written straight into the database.
    let api = nimbus_cloud::api::ApiState::connect(&config).await.unwrap();
    let half = sockets / 2;
    let users: Vec<String> = (0..sockets).map(|_| Uuid::new_v4().to_string()).collect();
    let now = chrono::Utc::now().timestamp();
    let tokens: Vec<String> = users
        .iter()
        .map(|u| {
            let claims = Claims {
                sub: u.clone(),
                roles: vec!["student".into()],
                iss: ISSUER.into(),
                iat: now,
                exp: now + 3600,
                jti: Uuid::new_v4().to_string(),
                sid: Uuid::new_v4().to_string(),
                typ: TokenType::Access,
            };
            api.users.keys.sign(&claims).unwrap()
        })
        .collect();
    let pool = nimbus_cloud::db::pool(&config.database_url_for(nimbus_cloud::communication::DATABASE), 2).unwrap();
    let db = pool.get().await.unwrap();
    let mut conversations = Vec::new();
    for i in 0..half {
        let (a, b) = (&users[i], &users[i + half]);
        let id = Uuid::new_v4();
        db.execute(
            "INSERT INTO conversations (id, conversation_type, created_by, direct_pair) VALUES ($1, 'direct', $2, $3)",
            &[&id, a, &format!("{a}:{b}")],
        )
        .await
        .unwrap();
        db.execute(
            "INSERT INTO conversation_participants (conversation_id, user_id, role) VALUES ($1, $2, 'member'), ($1, $3, 'member')",
            &[&id, a, b],
        )
        .await
        .unwrap();
        conversations.push(id);
    }

    let before = rss_kib();
    let received = Arc::new(Received::default());
    let started = Instant::now();
    let mut readers = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let mut req =
            format!("ws://{}/api/v1/conversations/live", addrs[usize::from(i >= half)]).into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
        ws.send(Frame::text(r#"{"type":"resume","after":{}}"#)).await.unwrap();
        let recipient = i >= half;
        let received = received.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        readers.push(tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Some(Ok(frame)) = ws.next().await {
                let Frame::Text(text) = frame else { continue };
                let push: Value = serde_json::from_str(&text).unwrap();
                match push["type"].as_str() {
                    Some("ready") => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Some("message") if recipient => {
                        let sent_at: u64 = push["message"]["text"].as_str().unwrap().parse().unwrap();
                        let latency = started.elapsed().saturating_sub(Duration::from_nanos(sent_at));
                        received.latencies.lock().await.push(latency);
                        received.count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }));
        ready_rx.await.unwrap();
    }
    let after = rss_kib();
    println!(
        "sockets={sockets} (two instances) connected in {:.1} s; process memory {} → {} KiB: {:.1} KiB per socket (server and client side)",
        started.elapsed().as_secs_f64(),
        before,
        after,
        (after.saturating_sub(before)) as f64 / sockets as f64
    );

    for (name, senders, pace) in [("paced", 16, Some(Duration::from_millis(100))), ("flat-out", 32, None)] {
        received.latencies.lock().await.clear();
        received.count.store(0, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let sent = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..senders.min(half) {
            let (http, token, conversation) = (http.clone(), tokens[k].clone(), conversations[k]);
            let (sent, errors, addr) = (sent.clone(), errors.clone(), addrs[0]);
            tasks.push(tokio::spawn(async move {
                let url = format!("http://{addr}/api/v1/conversations/{conversation}/messages");
                while Instant::now() < deadline {
                    let text = started.elapsed().as_nanos().to_string();
                    let res = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(json!({ "text": text }).to_string())
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 201 => sent.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                    if let Some(p) = pace {
                        tokio::time::sleep(p).await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = t0.elapsed();
        let total = sent.load(Ordering::Relaxed);
        // Let the last deliveries land.
        let settle = Instant::now() + Duration::from_secs(5);
        while received.count.load(Ordering::Relaxed) < total && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut latencies = received.latencies.lock().await.clone();
        latencies.sort();
        println!(
            "{name:<9} senders={senders:<3} sent={total:<6} {:>7.1} msg/s  delivered={:<6} send→other instance's socket p50={:>6.1} ms p99={:>6.1} ms  errors={}",
            total as f64 / elapsed.as_secs_f64(),
            latencies.len(),
            percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
            percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
            errors.load(Ordering::Relaxed)
        );
    }
    stop.cancel();
    for r in readers {
        r.abort();
    }
    drop(db);
    for d in dbs {
        d.drop_now().await;
    }
}
