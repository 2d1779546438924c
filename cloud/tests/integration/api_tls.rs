//! The admin API terminating TLS itself (`api.tls_cert`/`api.tls_key`), with certificates made
//! in the test (rcgen): a client trusting the campus CA gets answers over HTTPS, plain HTTP gets
//! none, a renewed certificate is served to new connections without a restart, a broken renewal
//! leaves the last good one in place, and the health check (`nimbus-cloud probe https://…`)
//! passes against it.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::common::api::test_config;
use crate::common::tls::issue;

fn client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM"))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn status(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    client.get(url).send().await.map(|r| r.status().as_u16()).map_err(|e| format!("{e:?}"))
}

fn write_pair(dir: &Path, cert: &str, key: &str) {
    // Key first: the server reloads when either changes and must find a matching pair.
    std::fs::write(dir.join("key.pem"), key).expect("key");
    std::fs::write(dir.join("cert.pem"), cert).expect("cert");
}

#[tokio::test]
async fn the_api_answers_over_https_and_serves_a_renewed_certificate_without_a_restart() {
    crate::common::capture_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let (ca1, cert1, key1) = issue("campus CA 1");
    write_pair(dir.path(), &cert1, &key1);
    let (mut config, dbs) = test_config().await;
    config.api.tls_cert = Some(dir.path().join("cert.pem").display().to_string());
    config.api.tls_key = Some(dir.path().join("key.pem").display().to_string());
    config.api.tls_reload_secs = 1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    let server = tokio::spawn(nimbus_cloud::api::run(config, listener, stop.clone()));
    let url = format!("https://localhost:{port}/health/ready");

    let trusting_ca1 = client(&ca1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(&trusting_ca1, &url).await != Ok(200) {
        assert!(Instant::now() < deadline, "no answer over HTTPS: {:?}", status(&trusting_ca1, &url).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    assert!(
        status(&plain, &format!("http://localhost:{port}/health")).await.is_err(),
        "plain HTTP must not be answered on the HTTPS port"
    );
    // Off the test's runtime thread, which serves the api meanwhile.
    let probe_url = format!("https://127.0.0.1:{port}/health/ready");
    let probe = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_nimbus-cloud"))
            .args(["probe", &probe_url])
            .env_remove("NIMBUS_CLOUD_CONFIG")
            .output()
            .expect("probe")
    })
    .await
    .expect("join");
    assert!(probe.status.success(), "the health check fails over HTTPS: {}", String::from_utf8_lossy(&probe.stdout));

    // Renewal under another CA: new connections get the new certificate within seconds.
    let (ca2, cert2, key2) = issue("campus CA 2");
    write_pair(dir.path(), &cert2, &key2);
    let trusting_ca2 = client(&ca2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&trusting_ca2, &url).await != Ok(200) {
        assert!(Instant::now() < deadline, "the renewed certificate was not served within 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A fresh client: an old one may resume its TLS session (no certificate is sent then).
    assert!(status(&client(&ca1), &url).await.is_err(), "the old certificate is still served");

    // A broken renewal (half-written file) keeps the last good certificate.
    std::fs::write(dir.path().join("cert.pem"), "-----BEGIN CERTIFICATE-----\ngarbage\n").expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(&client(&ca2), &url).await, Ok(200), "a broken renewal must not take HTTPS down");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the server stops")
        .expect("join")
        .expect("clean stop");
    for db in dbs {
        db.drop_now().await;
    }
}

#[test]
fn a_key_that_does_not_belong_to_the_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, cert, _) = issue("CA");
    let (_, _, other_key) = issue("CA");
    write_pair(dir.path(), &cert, &other_key);
    let err = nimbus_cloud::api::tls::ReloadingCert::new(dir.path().join("cert.pem"), dir.path().join("key.pem"))
        .expect_err("a mismatched pair must not start");
    assert!(err.to_string().contains("does not belong"), "{err}");
}
