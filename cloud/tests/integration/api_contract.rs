//! The OpenAPI document is the contract, checked by a property-based client that knows nothing
//! but the document: schemathesis (installed by `scripts/services.sh`, `NIMBUS_SCHEMATHESIS`)
//! runs every operation of `/openapi.json` against the api on real TCP, with all its checks:
//! no 5xx, every status, header and content type documented, requests the document allows
//! accepted, requests it forbids refused, authentication not ignored, deleted resources gone.
//!
//! A request the document allows may still break a rule between fields that no JSON Schema can
//! state (an end after its start, a referenced row that does not exist): the api answers those
//! 422, which the positive-data check accepts besides schemathesis' defaults; 400 stays a
//! failure, as it means the document allowed what the validation refuses.
//!
//! The live socket (`GET /api/v1/conversations/live`) answers a valid upgrade with 101 Switching
//! Protocols, which the document says and schemathesis' checks do not expect of HTTP: for that
//! one operation, 101 is added to what they accept (its frames are tested by
//! `communication_live` with a WebSocket client).
//!
//! The notification stream never ends: schemathesis reads an event stream until the request
//! timeout, so that operation gets 2 s instead of 30.
//!
//! Bounded (a fixed seed, a few examples per operation) so it fits the test command. The
//! administrator's token is fetched by schemathesis itself and fetched again on a 401, because a
//! generated `POST /api/v1/auth/logout` revokes it. `NIMBUS_SCHEMATHESIS_ARGS` adds arguments
//! (e.g. `--include-tag timetable`) when working on one service.

use std::process::Stdio;

use tokio_util::sync::CancellationToken;

use crate::common::api::{ADMIN_EMAIL, ADMIN_PASSWORD, serve, test_config};

/// Examples per operation and phase: enough to cover each schema's boundaries and its negative
/// cases, small enough for the test command (a few minutes on 2 cores).
const MAX_EXAMPLES: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_keeps_to_the_openapi_document_under_schemathesis() {
    let st = std::env::var("NIMBUS_SCHEMATHESIS")
        .expect("NIMBUS_SCHEMATHESIS names schemathesis' `st` (eval \"$(scripts/services.sh env)\")");
    let (mut config, dbs) = test_config().await;
    // Schemathesis learns the administrator's email from answers and tries passwords with it:
    // the lockout (tested in api_auth) would lock the account the run logs in with.
    config.api.max_failed_logins = 1_000_000;
    let stop = CancellationToken::new();
    let (addr, server) = serve(&config, &stop).await;

    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("schemathesis.toml");
    std::fs::write(
        &toml,
        format!(
            "seed = 20261208\n\
             [generation]\n\
             allow-x00 = false\n\
             [auth.dynamic.openapi.bearerAuth]\n\
             path = \"/api/v1/auth/login\"\n\
             payload = {{ email = \"{ADMIN_EMAIL}\", password = \"{ADMIN_PASSWORD}\" }}\n\
             extract_selector = \"/access_token\"\n\
             [checks.positive_data_acceptance]\n\
             expected-statuses = [\"2xx\", \"3xx\", \"401\", \"403\", \"404\", \"409\", \"422\", \"429\", \"5xx\"]\n\
             [[operations]]\n\
             include-path = \"/api/v1/conversations/live\"\n\
             checks.not_a_server_error.expected-statuses = [\"101\", \"2xx\", \"3xx\", \"4xx\"]\n\
             checks.positive_data_acceptance.expected-statuses = [\"101\", \"401\", \"403\", \"429\", \"5xx\"]\n\
             [[operations]]\n\
             include-path = \"/api/v1/me/notifications/stream\"\n\
             request-timeout = 2\n"
        ),
    )
    .unwrap();
    let extra = std::env::var("NIMBUS_SCHEMATHESIS_ARGS").unwrap_or_default();
    let output = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(&toml)
        .arg("run")
        .arg(format!("http://{addr}/openapi.json"))
        .args(["--checks", "all", "--max-examples", &MAX_EXAMPLES.to_string(), "--workers", "2"])
        .args(["--request-timeout", "30", "--generation-database", "none", "--no-color"])
        .args(extra.split_whitespace())
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {st}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    stop.cancel();
    let _ = server.await;
    for db in dbs {
        db.drop_now().await;
    }
    assert!(output.status.success(), "schemathesis found failures (output above):\n{}", tail(&stdout, 200));
    assert!(stdout.contains("No issues found") || stdout.contains("passed"), "{}", tail(&stdout, 50));
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
