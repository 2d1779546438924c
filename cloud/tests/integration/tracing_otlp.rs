//! Tracing end to end (issue 20, part 3): the real `api` and `worker --service course` binaries
//! with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP receiver in this test (axum,
//! `POST /v1/traces` with JSON bodies, as a collector takes them). One admin request that
//! creates a user must come out as one trace: the API's request span, continuing the caller's
//! `traceparent`, and the course worker's handling of the `USER_CREATED` it wrote, reached only
//! through the outbox and the Kafka record's header. The API logs JSON (`NIMBUS_LOG_FORMAT`),
//! and its request line names the trace.
//!
//! A classroom's batch is a trace as well: the real `ingest` binary handles a node's frame in a
//! span whose context every Kafka record of the batch carries in its `traceparent` header (the
//! workers continue it exactly as they continue the outbox's, above).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::e2e::{Proc, Stack, cloud, login, wait_for};

type Received = Arc<Mutex<Vec<Value>>>;

/// Every span received so far, flattened, with its resource's `service.name` as `"service"`.
fn spans(received: &Received) -> Vec<Value> {
    let mut out = Vec::new();
    for body in received.lock().unwrap().iter() {
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["key"] == "service.name")
                .map(|a| a["value"]["stringValue"].clone())
                .unwrap_or(Value::Null);
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let mut s = s.clone();
                    s["service"] = service.clone();
                    out.push(s);
                }
            }
        }
    }
    out
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key).map(|a| &a["value"])
}

/// An OTLP/HTTP receiver on a free port: its base URL and what it received.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let receiver = Router::new()
        .route(
            "/v1/traces",
            post(|State(r): State<Received>, body: String| async move {
                let body: Value = serde_json::from_str(&body).expect("an OTLP JSON body");
                r.lock().unwrap().push(body);
                axum::Json(json!({}))
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    (otlp, received)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_admin_request_is_one_trace_from_the_api_through_kafka_into_the_worker() {
    let (otlp, received) = receiver().await;

    // RUST_LOG stays at the helpers' `warn`: tracing must not depend on the log level.
    let stack = Stack::prepare("tr", |_| vec![("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.clone())]).await;
    let group = format!("tr-{}-course", stack.suffix);
    crate::common::prime_group(&crate::common::kafka_brokers(), &group, &[nimbus_core::topics::Topic::UserEvents])
        .await;
    // The API as `Stack::start_api` runs it, but logging JSON at info into a pipe.
    let mut api_env = stack.env.clone();
    api_env.extend([("NIMBUS_LOG_FORMAT", "json".to_owned()), ("RUST_LOG", "info,rdkafka=warn".to_owned())]);
    let mut child = cloud(&["api"], &api_env).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let api_proc = Proc(child);
    let log_lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let lines = log_lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let api_addr = stack.api.clone();
    tokio::task::spawn_blocking(move || {
        wait_for("the API", Duration::from_secs(60), || {
            std::net::TcpStream::connect(&api_addr).ok().and_then(|_| {
                (crate::common::e2e::http(&api_addr, "GET", "/health", None, None).0 == 200).then_some(())
            })
        })
    })
    .await
    .unwrap();
    let mut worker_env = stack.env.clone();
    worker_env.push(("NIMBUS_WORKER_GROUP", group));
    let worker = Proc(cloud(&["worker", "--service", "course"], &worker_env).spawn().unwrap());

    let admin = login(&stack.api, &stack.admin_email, &stack.admin_password);
    let (trace_id, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let http = reqwest::Client::new();
    let created = http
        .post(format!("http://{}/api/v1/users", stack.api))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("content-type", "application/json")
        .body(
            json!({"email": format!("traced-{}@campus.test", stack.suffix), "password": "Traced-Passw0rd!",
                   "role": "student", "first_name": "Trace"})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    // A request without a context starts its own trace.
    let listed = http.get(format!("http://{}/api/v1/users", stack.api)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(listed.status(), 200);

    let received_in_thread = received.clone();
    let consumed = tokio::task::spawn_blocking(move || {
        wait_for("the worker's span in the caller's trace", Duration::from_secs(60), || {
            spans(&received_in_thread).into_iter().find(|s| {
                s["traceId"] == trace_id
                    && s["service"] == "nimbus-cloud-worker-course"
                    && s["name"] == "user.events process"
            })
        })
    })
    .await
    .unwrap();

    let all = spans(&received);
    let request = all
        .iter()
        .find(|s| s["service"] == "nimbus-cloud-api" && s["name"] == "POST /api/v1/users")
        .expect("the API's request span");
    assert_eq!(request["traceId"], trace_id, "the request continues the caller's trace");
    assert_eq!(request["parentSpanId"], caller_span, "the caller's span is the request's parent");
    assert_eq!(request["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(attribute(request, "http.response.status_code"), Some(&json!({"intValue": "201"})));
    // The worker's span hangs under the request's span: the context went through the outbox row
    // and the Kafka header, nothing else connects the two processes.
    assert_eq!(consumed["parentSpanId"], request["spanId"], "{consumed}");
    assert_eq!(consumed["kind"], 5, "SPAN_KIND_CONSUMER");
    assert_eq!(attribute(&consumed, "messaging.destination.name"), Some(&json!({"stringValue": "user.events"})));
    assert!(consumed["startTimeUnixNano"].as_str().unwrap() >= request["startTimeUnixNano"].as_str().unwrap());

    let listing = wait_for("the listing's span", Duration::from_secs(10), || {
        spans(&received).into_iter().find(|s| s["service"] == "nimbus-cloud-api" && s["name"] == "GET /api/v1/users")
    });
    assert_ne!(listing["traceId"], trace_id);
    assert_eq!(listing["traceId"].as_str().unwrap().len(), 32);
    assert!(listing.get("parentSpanId").is_none(), "a new trace has no parent: {listing}");

    // Every log line is JSON; the request's line carries its trace id.
    let logged = log_lines.lock().unwrap().clone();
    let parsed: Vec<Value> = logged
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let request_line = parsed
        .iter()
        .find(|l| {
            l["fields"]["message"] == "request"
                && l["fields"]["route"] == "/api/v1/users"
                && l["fields"]["status"] == 201
        })
        .unwrap_or_else(|| panic!("no request line for the creation in {logged:#?}"));
    assert_eq!(request_line["span"]["trace_id"], trace_id, "{request_line}");

    assert!(worker.stop(), "the worker stops cleanly with tracing on");
    assert!(api_proc.stop(), "the API stops cleanly with tracing on");
    stack.dbs.drop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_classroom_batch_is_one_trace_whose_context_every_kafka_record_of_it_carries() {
    use crate::common::ingest::{FakeNode, KafkaMark, attendance_batch, setup, unique_node};
    let (otlp, received) = receiver().await;
    let node = unique_node("trace");
    let (db, broker, _registry) = setup(&[&node], &[]).await;
    let (cloud_user, cloud_password) = nimbus_sync::testing::CLOUD_USER;
    let env = vec![
        ("DATABASE_URL", crate::common::database_server()),
        ("NIMBUS_REGISTRY_DB", db.name.clone()),
        ("KAFKA_BROKERS", crate::common::kafka_brokers()),
        ("MQTT_URL", broker.url.clone()),
        ("MQTT_USERNAME", cloud_user.to_owned()),
        ("MQTT_PASSWORD", cloud_password.to_owned()),
        ("INGEST_GROUP", unique_node("g")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
    ];
    let mark = KafkaMark::now("attendance.events").await;
    let ingest = Proc(cloud(&["ingest"], &env).spawn().unwrap());
    let mut fake = FakeNode::connect(&broker, &node).await;
    let reply = fake.send_until_reply(attendance_batch(&fake.id, 1, 3, "course-traced"), Duration::from_secs(60)).await;
    assert_eq!(reply, nimbus_sync::frame::Message::Ack { upto_seq: 3 });

    let batch = tokio::task::spawn_blocking({
        let received = received.clone();
        let node = node.clone();
        move || {
            wait_for("the ingest's span of the batch", Duration::from_secs(30), || {
                spans(&received).into_iter().find(|s| {
                    s["service"] == "nimbus-cloud-ingest"
                        && s["name"] == "uplink process"
                        && attribute(s, "nimbus.node_id") == Some(&json!({ "stringValue": node }))
                        && attribute(s, "nimbus.outcome") == Some(&json!({ "stringValue": "stored" }))
                })
            })
        }
    })
    .await
    .unwrap();
    assert_eq!(batch["kind"], 5, "SPAN_KIND_CONSUMER");
    assert!(batch.get("parentSpanId").is_none(), "a batch starts its own trace: {batch}");
    assert_eq!(attribute(&batch, "nimbus.events"), Some(&json!({ "intValue": "3" })));

    let records = mark.events_of(&fake.id).await;
    assert_eq!(records.len(), 3);
    let expected = format!("00-{}-{}-01", batch["traceId"].as_str().unwrap(), batch["spanId"].as_str().unwrap());
    for r in &records {
        assert_eq!(r.traceparent.as_deref(), Some(expected.as_str()), "every record of the batch continues its span");
    }
    assert!(ingest.stop(), "the ingest stops cleanly with tracing on");
    db.drop_now().await;
}
