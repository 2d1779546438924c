//! The SMS (Twilio-style) and push (FCM HTTP v1) channels against a local HTTP endpoint that
//! speaks each provider's request and error shapes, with scripted faults (429 with Retry-After,
//! 5xx, unknown numbers, unregistered device tokens) — faults a real provider produces but no
//! sandbox here can be made to. Then through the worker: what each answer does to the queue row.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nimbus_cloud::config::Secret;
use nimbus_cloud::notification::NotificationSettings;
use nimbus_cloud::notification::channels::push::{Push, PushSettings};
use nimbus_cloud::notification::channels::sms::{Sms, SmsSettings};
use nimbus_cloud::notification::channels::{Channel as _, Outgoing, SendError};
use nimbus_cloud::worker::{Worker, WorkerSettings, subscriptions};
use nimbus_core::event::notification::{Channel, NotificationPayload, Priority};
use nimbus_core::event::{Envelope, NotificationCommand};
use nimbus_core::groups::group_for_service;
use nimbus_core::topics::{Environment, Topic};
use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common;
use crate::common::e2e::migrated;

/// One request the provider received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    auth: String,
    body: String,
    at: Instant,
}

type Scripted = (u16, Vec<(&'static str, String)>, String);
/// Scripts per address.
type PerAddress = Vec<(String, VecDeque<Scripted>)>;

/// A provider endpoint answering from scripts: per address (a request whose body names it), then
/// in order, then success (`ok`) once they run out.
#[derive(Clone, Default)]
struct Provider {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    per_address: Arc<Mutex<PerAddress>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    ok: u16,
}

async fn answer(State(p): State<Provider>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    p.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        auth,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let addressed = p
        .per_address
        .lock()
        .unwrap()
        .iter_mut()
        .find(|(address, script)| body_text.contains(address.as_str()) && !script.is_empty())
        .and_then(|(_, script)| script.pop_front());
    let next = addressed.or_else(|| p.script.lock().unwrap().pop_front());
    let (status, extra, body) =
        next.unwrap_or((p.ok, Vec::new(), r#"{"sid":"SM1","name":"projects/p/messages/1"}"#.into()));
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in extra {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

impl Provider {
    /// Serves on a free port; `ok` is the success status (201 for Twilio, 200 for FCM).
    async fn start(ok: u16) -> (Provider, String) {
        let provider = Provider { ok, ..Provider::default() };
        let app = axum::Router::new().fallback(answer).with_state(provider.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (provider, url)
    }

    fn then(&self, status: u16, headers: &[(&'static str, &str)], body: &str) -> &Self {
        let headers = headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.script.lock().unwrap().push_back((status, headers, body.to_owned()));
        self
    }

    fn then_for(&self, address: &str, status: u16, headers: &[(&'static str, &str)], body: &str) -> &Self {
        let headers = headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut rules = self.per_address.lock().unwrap();
        match rules.iter_mut().find(|(a, _)| a == address) {
            Some((_, script)) => script.push_back((status, headers, body.to_owned())),
            None => rules.push((address.to_owned(), VecDeque::from([(status, headers, body.to_owned())]))),
        }
        self
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn sms_settings(url: &str) -> SmsSettings {
    SmsSettings {
        base_url: url.to_owned(),
        account_sid: "AC123".into(),
        auth_token: Secret::new("sms-token"),
        from: "+15550001".into(),
        timeout: Duration::from_secs(5),
    }
}

fn push_settings(url: &str) -> PushSettings {
    PushSettings {
        base_url: url.to_owned(),
        project: "campus-app".into(),
        access_token: Secret::new("push-token"),
        timeout: Duration::from_secs(5),
    }
}

fn outgoing(address: &str) -> Outgoing {
    Outgoing {
        queue_id: Uuid::new_v4(),
        user_id: "u1".into(),
        address: address.to_owned(),
        subject: "Room change".into(),
        body: "CS101 moves to B2.".into(),
    }
}

#[tokio::test]
async fn sms_provider_answers_become_sent_retry_later_fail_or_drop_the_number() {
    let (provider, url) = Provider::start(201).await;
    let sms = Sms::new(sms_settings(&url)).unwrap();
    assert_eq!(sms.send(&outgoing("+15551234")).await, Ok(()));
    let first = &provider.seen()[0];
    assert_eq!(first.path, "/2010-04-01/Accounts/AC123/Messages.json");
    assert!(first.auth.starts_with("Basic "), "basic auth: {}", first.auth);
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&first.body).unwrap();
    assert!(form.contains(&("To".into(), "+15551234".into())) && form.contains(&("From".into(), "+15550001".into())));
    assert!(form.contains(&("Body".into(), "Room change: CS101 moves to B2.".into())));

    provider.then(429, &[("retry-after", "7")], r#"{"code":20429,"message":"Too Many Requests"}"#);
    match sms.send(&outgoing("+15551234")).await {
        Err(SendError::Transient { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("429 is temporary: {other:?}"),
    }
    provider.then(503, &[], "unavailable");
    assert!(matches!(sms.send(&outgoing("+1")).await, Err(SendError::Transient { retry_after: None, .. })));
    provider.then(400, &[], r#"{"code":21211,"message":"The 'To' number is not a valid phone number."}"#);
    assert!(matches!(sms.send(&outgoing("+0")).await, Err(SendError::InvalidAddress(_))));
    provider.then(401, &[], r#"{"code":20003,"message":"Authenticate"}"#);
    assert!(matches!(sms.send(&outgoing("+1")).await, Err(SendError::Permanent(_))));
    let down = Sms::new(sms_settings("http://127.0.0.1:9")).unwrap();
    assert!(matches!(down.send(&outgoing("+1")).await, Err(SendError::Unavailable(_))));
}

#[tokio::test]
async fn push_provider_answers_become_sent_retry_later_fail_or_drop_the_token() {
    let (provider, url) = Provider::start(200).await;
    let push = Push::new(push_settings(&url)).unwrap();
    let message = outgoing("device-token-1");
    assert_eq!(push.send(&message).await, Ok(()));
    let first = &provider.seen()[0];
    assert_eq!(first.path, "/v1/projects/campus-app/messages:send");
    assert_eq!(first.auth, "Bearer push-token");
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["message"]["token"], "device-token-1");
    assert_eq!(body["message"]["notification"], json!({"title": "Room change", "body": "CS101 moves to B2."}));
    assert_eq!(body["message"]["data"]["queue_id"], message.queue_id.to_string());

    let unregistered = r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
        "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
    provider.then(404, &[], unregistered);
    assert!(matches!(push.send(&message).await, Err(SendError::InvalidAddress(_))));
    let bad_token = r#"{"error":{"code":400,"message":"The registration token is not a valid FCM registration token",
        "status":"INVALID_ARGUMENT"}}"#;
    provider.then(400, &[], bad_token);
    assert!(matches!(push.send(&message).await, Err(SendError::InvalidAddress(_))));
    provider.then(429, &[("retry-after", "3")], r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}"#);
    match push.send(&message).await {
        Err(SendError::Transient { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(3))),
        other => panic!("429 is temporary: {other:?}"),
    }
    provider.then(500, &[], r#"{"error":{"code":500,"status":"INTERNAL"}}"#);
    assert!(matches!(push.send(&message).await, Err(SendError::Transient { .. })));
    provider.then(400, &[], r#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#);
    assert!(
        matches!(push.send(&message).await, Err(SendError::Permanent(_))),
        "a bad payload is not the token's fault"
    );
}

/// Through the worker: a 429 is retried after the provider's Retry-After and then sent; a 500
/// that never ends fails after the policy's four attempts with the reason; an unregistered push
/// token fails at once, is not retried, and is forgotten.
#[tokio::test]
async fn the_queue_honours_retry_after_gives_up_per_policy_and_forgets_dead_tokens() {
    common::capture_logs();
    let brokers = common::kafka_brokers();
    nimbus_cloud::kafka::ensure_topics(&brokers, Environment::Development)
        .await
        .expect("Kafka (NIMBUS_TEST_KAFKA_BROKERS)");
    let group = format!("notification-providers-{}", Uuid::new_v4().simple());
    common::prime_group(&brokers, &group, &subscriptions(group_for_service("notification").unwrap())).await;
    let (db, users, courses) = (
        migrated("notification_service_db").await,
        migrated("user_service_db").await,
        migrated("course_service_db").await,
    );
    let (sms_provider, sms_url) = Provider::start(201).await;
    let (push_provider, push_url) = Provider::start(200).await;
    let c = users.pool.get().await.unwrap();
    let mut ids = Vec::new();
    for (email, phone) in [("phone-a@campus.test", "+15550101"), ("phone-b@campus.test", "+15550102")] {
        let id: Uuid = c
            .query_one(
                "INSERT INTO users (email, password_hash, role_id) SELECT $1, 'x', id FROM roles WHERE name = 'student'
                 RETURNING id",
                &[&email],
            )
            .await
            .unwrap()
            .get(0);
        c.execute("INSERT INTO user_profiles (user_id, phone) VALUES ($1, $2)", &[&id, &phone]).await.unwrap();
        ids.push(id.to_string());
    }
    let n = db.pool.get().await.unwrap();
    n.execute("INSERT INTO push_devices (token, user_id) VALUES ('dead-token', $1), ('live-token', $1)", &[&ids[0]])
        .await
        .unwrap();

    let mut settings = WorkerSettings::new(&brokers, db.url.clone());
    settings.group_id = Some(group);
    settings.notification = NotificationSettings {
        users_url: users.url.clone(),
        courses_url: courses.url.clone(),
        sms: Some(sms_settings(&sms_url)),
        push: Some(push_settings(&push_url)),
        ..NotificationSettings::default()
    };
    settings.notification.sender.poll = Duration::from_millis(50);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(Worker::new("notification", settings).unwrap().run(shutdown.clone()));
    let producer = nimbus_cloud::kafka::at_least_once_producer(&brokers).unwrap();
    let send = |user: &str, channel: Channel, title: &str| {
        Envelope::new(
            "test",
            NotificationCommand::SendNotification(NotificationPayload {
                notification_id: Uuid::new_v4().to_string(),
                recipient_user_id: user.to_owned(),
                notification_type: "general".into(),
                title: title.to_owned(),
                message: "m".into(),
                channels: vec![channel],
                priority: Priority::High,
                ..NotificationPayload::default()
            }),
        )
    };

    // A: SMS refused once with Retry-After: 1, then accepted. B: SMS always 500.
    sms_provider.then_for("15550101", 429, &[("retry-after", "1")], r#"{"code":20429}"#);
    for _ in 0..4 {
        sms_provider.then_for("15550102", 500, &[], "boom");
    }
    let (a, b) = (send(&ids[0], Channel::Sms, "to-a"), send(&ids[1], Channel::Sms, "to-b"));
    for env in [&a, &b] {
        producer
            .send(
                FutureRecord::to(Topic::NotificationCommands.name()).key(&env.partition_key()).payload(&env.to_json()),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    // A's push: one dead token, one live one.
    push_provider.then_for(
        "dead-token",
        404,
        &[],
        r#"{"error":{"code":404,"status":"NOT_FOUND","details":[{"errorCode":"UNREGISTERED"}]}}"#,
    );
    let p = send(&ids[0], Channel::Push, "push-a");
    producer
        .send(
            FutureRecord::to(Topic::NotificationCommands.name()).key(&p.partition_key()).payload(&p.to_json()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();

    let rows = |sql: &'static str| {
        let pool = db.pool.clone();
        async move {
            let c = pool.get().await.unwrap();
            c.query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, i32>(2)))
                .collect::<Vec<_>>()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = loop {
        let r = rows("SELECT address, status, attempts FROM notification_queue ORDER BY address").await;
        if r.len() == 4 && r.iter().all(|(_, s, _)| s != "pending" && s != "sending") {
            break r;
        }
        assert!(Instant::now() < deadline, "rows never settled: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let find = |address: &str| settled.iter().find(|(a, ..)| a == address).cloned().unwrap();
    assert_eq!(find("+15550101").1, "sent");
    assert_eq!(find("+15550101").2, 2, "A: one 429, then sent");
    assert_eq!((find("+15550102").1.as_str(), find("+15550102").2), ("failed", 4), "B: 1 + 3 retries, then failed");
    let to_a: Vec<Instant> = sms_provider.seen().iter().filter(|s| s.body.contains("15550101")).map(|s| s.at).collect();
    assert!(
        to_a[1] - to_a[0] >= Duration::from_millis(950),
        "the retry waited for Retry-After: {:?}",
        to_a[1] - to_a[0]
    );
    assert_eq!(
        (find("dead-token").1.as_str(), find("dead-token").2),
        ("failed", 1),
        "an unregistered token is not retried"
    );
    assert_eq!(find("live-token").1, "sent");
    let error: String =
        n.query_one("SELECT last_error FROM notification_queue WHERE address = '+15550102'", &[]).await.unwrap().get(0);
    assert!(error.contains("HTTP 500"), "{error}");
    let tokens: Vec<String> =
        n.query("SELECT token FROM push_devices", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(tokens, ["live-token"], "the dead token is forgotten");

    shutdown.cancel();
    worker.await.unwrap().unwrap();
    for d in [db, users, courses] {
        d.drop_now().await;
    }
}
