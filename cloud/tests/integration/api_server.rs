//! `nimbus_cloud::api::run` on a real port against PostgreSQL, Redis and Kafka: readiness
//! really probes all three, a login over HTTP works, the outbox relay empties `event_outbox`
//! into Kafka, and cancelling the token stops the server. A dead Kafka makes readiness 503
//! naming it.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::api::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApi, test_config};

#[tokio::test]
async fn the_server_serves_is_ready_relays_its_outbox_and_stops_on_cancel() {
    let (config, dbs) = test_config().await;
    let user_url = config.database_url_for("user_service_db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(nimbus_cloud::api::run(config, listener, stop.clone()));
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");

    let mut ready = None;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await {
            ready = Some((r.status(), r.text().await.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, text) = ready.expect("the server answers");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    for dep in ["postgres", "redis", "kafka"] {
        assert_eq!(body["checks"][dep]["status"], "ok", "{dep}");
    }

    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .header("x-correlation-id", "server-test")
        .body(json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["x-correlation-id"], "server-test");

    // The relay publishes the bootstrap admin's USER_CREATED and the login's events.
    let pool = nimbus_cloud::db::pool(&user_url, 1).unwrap();
    let mut pending = i64::MAX;
    for _ in 0..100 {
        let c = pool.get().await.unwrap();
        pending = c.query_one("SELECT count(*) FROM event_outbox", &[]).await.unwrap().get(0);
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "the outbox relay published every event");

    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("nimbus_api_logins_total{outcome=\"success\"} 1"), "{metrics}");
    let login = "http_requests_total{method=\"POST\",endpoint=\"/api/v1/auth/login\",status=\"200\"} 1";
    assert!(metrics.contains(login), "the seed's name and labels: {metrics}");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), server).await.expect("run returns after cancel").unwrap().unwrap();
    assert!(http.get(format!("{base}/health")).send().await.is_err(), "nothing listens any more");
    pool.close();
    for db in dbs {
        db.drop_now().await;
    }
}

#[tokio::test]
async fn readiness_is_503_naming_an_unreachable_kafka() {
    let api = TestApi::start_with(|c| c.kafka.brokers = "127.0.0.1:1".into()).await;
    let a = api.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!((a.status, a.body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("SERVICE_UNAVAILABLE")));
    assert_eq!(a.body["details"]["checks"]["postgres"]["status"], "ok");
    assert_eq!(a.body["details"]["checks"]["redis"]["status"], "ok");
    assert_eq!(a.body["details"]["checks"]["kafka"]["status"], "failed");
    assert_eq!(api.call(Method::GET, "/health", None, None).await.status, StatusCode::OK);
    api.finish().await;
}
