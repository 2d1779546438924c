//! `http::run` on a real socket: it serves HTTP/1.1 on a `TcpListener` and stops promptly when its
//! cancellation token fires.

use std::sync::Arc;
use std::time::Duration;

use chrono::{FixedOffset, NaiveDate};
use nimbus_edge::attendance::{Attendance, Rules};
use nimbus_edge::clock::ManualClock;
use nimbus_edge::http::{AppState, run};
use nimbus_edge::metrics::Metrics;
use nimbus_edge::store::Store;
use nimbus_edge::timetable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Upper bound for anything that should happen promptly; generous for a loaded 2-core box.
const PROMPTLY: Duration = Duration::from_secs(5);

fn state() -> (AppState, Store) {
    let store = Store::open_in_memory().unwrap();
    let (tt, roster) = timetable::demo("demo-101");
    store.with(|c| timetable::apply_timetable(c, &tt, 0)).unwrap();
    store.with(|c| timetable::apply_roster(c, &roster, 0)).unwrap();
    let at = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(9, 5, 0).unwrap();
    let clock = ManualClock::at_local(at, FixedOffset::east_opt(19_800).unwrap());
    let att = Attendance::new(store.clone(), Arc::new(clock), Rules { room_id: "demo-101".into(), ..Rules::default() });
    (AppState::new(att, Arc::new(Metrics::default()), None), store)
}

/// Sends raw bytes and reads the whole answer (the request asks the server to close).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PROMPTLY, s.read_to_end(&mut out)).await.expect("answer in time").unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn run_serves_http_on_a_socket_and_stops_when_cancelled() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let (state, _) = state();
    let server = tokio::spawn(run(listener, state, shutdown.clone()));

    let answer = exchange(addr, b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("{\"status\":\"ok\"}"), "{answer}");

    // A chunked body (no Content-Length) over the limit is still refused with our JSON.
    let chunk = "a".repeat(8192);
    let mut req = b"POST /api/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    for _ in 0..10 {
        req.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(addr, &req).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("\"code\":\"PAYLOAD_TOO_LARGE\""), "{answer}");

    // An idle keep-alive connection must not hold the shutdown up.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));

    shutdown.cancel();
    let stopped = tokio::time::timeout(PROMPTLY, server).await.expect("run returns promptly after cancel");
    stopped.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_still_gets_its_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (state, store) = state();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(run(listener, state, shutdown.clone()));

    // Make the readiness probe slow (but within its own timeout) by holding the database until
    // the shutdown has begun.
    let hold = crate::common::StoreHold::take(store);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health/ready HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    // Long enough for the server to read the request (the probe then waits on the database).
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    // The server is shutting down with the request still waiting; now let it finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = hold.release();

    let mut out = Vec::new();
    tokio::time::timeout(PROMPTLY, s.read_to_end(&mut out)).await.expect("answer in time").unwrap();
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\"status\":\"ready\""), "{answer}");
    tokio::time::timeout(PROMPTLY, server).await.expect("run returns once drained").unwrap().unwrap();
    held.join().unwrap();
}
