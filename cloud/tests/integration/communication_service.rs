//! The communication service against real PostgreSQL and Kafka: one direct conversation per
//! pair (even when both start it at once), strangers who cannot tell a conversation exists,
//! ordered and resumable messages under concurrent senders, unread counts, edits, tombstones,
//! groups run by their owner, inactive people, the seed's `communication.events`, and the
//! worker process that relays them and follows `user.events`.

use std::time::Duration;

use axum::http::Method;
use nimbus_cloud::http::Caller;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::e2e::{Proc, cloud, wait_for};
use crate::common::ingest::KafkaMark;
use crate::common::services_api::{Services, caller};

/// Creates students named `names` (first name = the name) in the user database; their callers.
async fn people(s: &Services, names: &[&str]) -> Vec<Caller> {
    let users = s.state.users.get().await.unwrap();
    let mut out = Vec::new();
    for name in names {
        let email = format!("{name}-{}@campus.test", Uuid::new_v4().simple());
        let id: Uuid = users
            .query_one(
                "INSERT INTO users (email, password_hash, role_id) SELECT $1, 'x', id FROM roles WHERE name = 'student' RETURNING id",
                &[&email],
            )
            .await
            .unwrap()
            .get(0);
        users
            .execute("INSERT INTO user_profiles (user_id, first_name, last_name) VALUES ($1, $2, 'Doe')", &[&id, name])
            .await
            .unwrap();
        out.push(caller(&id.to_string(), "student"));
    }
    out
}

async fn start(s: &Services, who: &Caller, body: Value) -> (u16, Value) {
    let a = s.as_caller(who).call(Method::POST, "/api/v1/conversations", Some(body)).await;
    (a.status, a.json)
}

async fn direct(s: &Services, who: &Caller, with: &Caller) -> String {
    let (status, c) = start(s, who, json!({"conversation_type": "direct", "participant_ids": [with.user_id]})).await;
    assert!(status == 201 || status == 200, "{status} {c}");
    c["id"].as_str().unwrap().to_owned()
}

async fn send(s: &Services, who: &Caller, conversation: &str, text: &str) -> Value {
    let a = s
        .as_caller(who)
        .call(Method::POST, &format!("/api/v1/conversations/{conversation}/messages"), Some(json!({"text": text})))
        .await;
    assert_eq!(a.status, 201, "{}", a.json);
    a.json
}

async fn unread(s: &Services, who: &Caller, conversation: &str) -> i64 {
    let a = s.as_caller(who).call(Method::GET, &format!("/api/v1/conversations/{conversation}"), None).await;
    assert_eq!(a.status, 200, "{}", a.json);
    a.json["unread"].as_i64().unwrap()
}

async fn relay(s: &Services) {
    let pool = &s.state.communication;
    while nimbus_cloud::outbox::publish_pending(pool, &s.state.producer, Duration::from_secs(10)).await.unwrap() > 0 {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_conversation_is_one_per_pair_even_started_at_once_and_strangers_cannot_tell_it_exists() {
    let s = Services::create().await;
    let p = people(&s, &["Ada", "Ben", "Cy"]).await;
    let (ada, ben, cy) = (&p[0], &p[1], &p[2]);

    let (status, first) =
        start(&s, ada, json!({"conversation_type": "direct", "participant_ids": [ben.user_id]})).await;
    assert_eq!(status, 201, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    let mut names: Vec<&str> =
        first["participants"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["Ada Doe", "Ben Doe"], "names come from the user service");
    // Both sides at once, many times: always the same conversation.
    let answers = futures_util::future::join_all((0..12).map(|i| {
        let (who, with) = if i % 2 == 0 { (ben, &ada.user_id) } else { (ada, &ben.user_id) };
        let (client, body) = (s.as_caller(who), json!({"conversation_type": "direct", "participant_ids": [with]}));
        async move { client.call(Method::POST, "/api/v1/conversations", Some(body)).await }
    }))
    .await;
    for a in answers {
        assert_eq!((a.status, a.json["id"].as_str()), (200, Some(id.as_str())), "{}", a.json);
    }
    // A pair started concurrently from scratch also ends with one conversation.
    let (as_ben, as_cy) = (s.as_caller(ben), s.as_caller(cy));
    let (x, y) = tokio::join!(
        as_ben.call(
            Method::POST,
            "/api/v1/conversations",
            Some(json!({"conversation_type": "direct", "participant_ids": [cy.user_id]}))
        ),
        as_cy.call(
            Method::POST,
            "/api/v1/conversations",
            Some(json!({"conversation_type": "direct", "participant_ids": [ben.user_id]}))
        ),
    );
    assert_eq!(x.json["id"], y.json["id"]);
    assert_eq!([x.status.min(y.status), x.status.max(y.status)], [200, 201]);

    // Cy is not in Ada and Ben's conversation: every route answers as for one that does not exist.
    let ghost = Uuid::new_v4().to_string();
    for (method, path, body) in [
        (Method::GET, "", None),
        (Method::GET, "/messages", None),
        (Method::POST, "/messages", Some(json!({"text": "hi"}))),
        (Method::POST, "/read", Some(json!({"seq": 1}))),
        (Method::POST, "/archive", None),
        (Method::POST, "/participants", Some(json!({"user_id": cy.user_id}))),
    ] {
        let real = as_cy.call(method.clone(), &format!("/api/v1/conversations/{id}{path}"), body.clone()).await;
        let none = as_cy.call(method.clone(), &format!("/api/v1/conversations/{ghost}{path}"), body).await;
        assert_eq!((real.status, &real.json["code"]), (404, &json!("NOT_FOUND")), "{method} {path}: {}", real.json);
        assert_eq!(
            real.json["message"].as_str().unwrap().replace(&id, "X"),
            none.json["message"].as_str().unwrap().replace(&ghost, "X"),
            "{method} {path}: the answers differ only by the id asked for"
        );
    }
    let listed = as_cy.call(Method::GET, "/api/v1/conversations", None).await;
    assert_eq!(listed.json["total"], 1, "Cy sees only the conversation with Ben: {}", listed.json);

    // Bad input: a field out of its bounds is a 400; fields that break the type's rules together,
    // or name no active user, a 422.
    for (body, field, expected) in [
        (json!({"conversation_type": "direct", "participant_ids": [ada.user_id]}), "participant_ids", 422),
        (
            json!({"conversation_type": "direct", "participant_ids": [Uuid::new_v4().to_string()]}),
            "participant_ids",
            422,
        ),
        (json!({"conversation_type": "group", "participant_ids": [ben.user_id]}), "title", 422),
        (json!({"conversation_type": "channel", "participant_ids": [ben.user_id]}), "conversation_type", 400),
    ] {
        let (status, e) = start(&s, ada, body.clone()).await;
        assert_eq!((status, e["details"]["fields"][0]["field"].as_str()), (expected, Some(field)), "{body}: {e}");
    }
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_ordered_without_gaps_resumable_counted_unread_edited_for_a_while_and_deleted_as_tombstones() {
    let s = Services::create().await;
    let p = people(&s, &["Ada", "Ben"]).await;
    let (ada, ben) = (&p[0], &p[1]);
    let id = direct(&s, ada, ben).await;
    let events = KafkaMark::now("communication.events").await;

    // Two people sending at once: every message gets its own place, 1..=40, no gaps.
    let answers = futures_util::future::join_all((0..40).map(|i| {
        let client = s.as_caller(if i % 2 == 0 { ada } else { ben });
        let path = format!("/api/v1/conversations/{id}/messages");
        async move { client.call(Method::POST, &path, Some(json!({"text": format!("message {i}")}))).await }
    }))
    .await;
    assert!(answers.iter().all(|a| a.status == 201));
    let page = |after: i64, limit: i64| {
        let client = s.as_caller(ben);
        let path = format!("/api/v1/conversations/{id}/messages?after_seq={after}&limit={limit}");
        async move { client.call(Method::GET, &path, None).await.json }
    };
    let all = page(0, 200).await;
    let seqs: Vec<i64> = all.as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    // A client that has up to 25 resumes with exactly what follows.
    let resumed: Vec<i64> = page(25, 10).await.as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(resumed, (26..=35).collect::<Vec<_>>());

    let read = |who: &Caller, seq: i64| {
        let client = s.as_caller(who);
        let path = format!("/api/v1/conversations/{id}/read");
        async move { client.call(Method::POST, &path, Some(json!({"seq": seq}))).await.status }
    };
    // Ben has read everything so far (the 40 were sent in any order, his position followed only
    // his own).
    assert_eq!(read(ben, 40).await, 204);
    // Unread: what the others wrote after one's read position; sending moves one's own position.
    let mut tail = Vec::new();
    for text in ["one", "two", "<b>three</b> & 'four'"] {
        tail.push(send(&s, ada, &id, text).await);
    }
    assert_eq!(unread(&s, ben, &id).await, 3);
    assert_eq!(unread(&s, ada, &id).await, 0);
    assert_eq!(read(ben, 42).await, 204);
    assert_eq!(unread(&s, ben, &id).await, 1);
    assert_eq!(read(ben, 5).await, 204, "an older position is accepted and changes nothing");
    assert_eq!(unread(&s, ben, &id).await, 1);
    assert_eq!(read(ben, 999).await, 422);
    assert_eq!(tail[2]["text"], "<b>three</b> & 'four'", "markup is kept as text");

    // Replying to a message of another conversation is refused, naming the field.
    let other = direct(&s, ada, &people(&s, &["Cy"]).await[0]).await;
    let elsewhere = send(&s, ada, &other, "elsewhere").await;
    let a = s
        .as_caller(ben)
        .call(
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"text": "re", "reply_to_message_id": elsewhere["id"]})),
        )
        .await;
    assert_eq!((a.status, a.json["details"]["fields"][0]["field"].as_str()), (422, Some("reply_to_message_id")));
    let reply = s
        .as_caller(ben)
        .call(
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(json!({"text": "re: one", "reply_to_message_id": tail[0]["id"]})),
        )
        .await;
    assert_eq!(reply.status, 201);
    for (text, why, expected) in
        [("", "empty", 422), ("   ", "blank", 400), (&"x".repeat(10_001) as &str, "too long", 400)]
    {
        let a = s
            .as_caller(ben)
            .call(Method::POST, &format!("/api/v1/conversations/{id}/messages"), Some(json!({"text": text})))
            .await;
        assert_eq!((a.status, a.json["details"]["fields"][0]["field"].as_str()), (expected, Some("text")), "{why}");
    }

    // Edits: one's own, within the window.
    let first = &tail[0];
    let edit = |who: &Caller, message: &Value, text: &str| {
        let client = s.as_caller(who);
        let path = format!("/api/v1/conversations/{id}/messages/{}", message["id"].as_str().unwrap());
        let body = json!({"text": text});
        async move { client.call(Method::PATCH, &path, Some(body)).await }
    };
    let edited = edit(ada, first, "one (edited)").await;
    assert_eq!((edited.status, edited.json["text"].as_str()), (200, Some("one (edited)")));
    assert!(edited.json["edited_at"].is_string());
    assert_eq!(edit(ben, first, "not mine").await.status, 403);
    let c = s.state.communication.get().await.unwrap();
    let mid: Uuid = first["id"].as_str().unwrap().parse().unwrap();
    c.execute("UPDATE messages SET created_at = now() - interval '16 minutes' WHERE id = $1", &[&mid]).await.unwrap();
    assert_eq!(edit(ada, first, "too late").await.status, 409);

    // Deletion leaves a tombstone in its place; only its author deletes in a direct conversation.
    let path = format!("/api/v1/conversations/{id}/messages/{}", tail[1]["id"].as_str().unwrap());
    assert_eq!(s.as_caller(ben).call(Method::DELETE, &path, None).await.status, 403);
    assert_eq!(s.as_caller(ada).call(Method::DELETE, &path, None).await.status, 204);
    assert_eq!(s.as_caller(ada).call(Method::DELETE, &path, None).await.status, 204, "again: no change");
    let after = page(40, 200).await;
    let tomb = &after[1];
    assert_eq!((tomb["seq"].as_i64(), tomb["text"].is_null(), tomb["deleted_at"].is_string()), (Some(42), true, true));

    // The seed's MESSAGE_SENT, keyed by conversation; one MESSAGE_DELETED for the double delete.
    relay(&s).await;
    let records = events.read().await;
    let mine: Vec<&_> = records.iter().filter(|r| r.key.as_deref() == Some(id.as_str())).collect();
    let of = |t: &str| mine.iter().filter(|r| r.json["event_type"] == t).count();
    assert_eq!((of("MESSAGE_SENT"), of("MESSAGE_DELETED")), (44, 1));
    // Read positions that moved: to 40 (unless Ben's own message was 40 already), then to 42;
    // the older position 5 wrote nothing.
    let reads: Vec<&Value> =
        mine.iter().filter(|r| r.json["event_type"] == "MESSAGE_READ").map(|r| &r.json["payload"]).collect();
    assert!((1..=2).contains(&reads.len()), "{reads:?}");
    assert_eq!(reads.last().unwrap()["message_id"], tail[1]["id"], "the last read names message 42");
    let sent = mine
        .iter()
        .find(|r| r.json["event_type"] == "MESSAGE_SENT" && r.json["payload"]["message_id"] == reply.json["id"])
        .unwrap();
    let payload = &sent.json["payload"];
    assert_eq!(sent.json["service_name"], "communication-service");
    assert_eq!(payload["conversation_type"], "direct");
    assert_eq!(payload["sender_id"].as_str(), Some(ben.user_id.as_str()));
    assert_eq!(payload["sender_name"], "Ben Doe");
    assert_eq!(payload["message_text"], "re: one");
    assert_eq!(payload["message_type"], "text");
    assert_eq!(payload["reply_to_message_id"], tail[0]["id"]);
    assert_eq!(payload["recipient_ids"], json!([ada.user_id]));
    assert!(payload["sent_at"].is_string());
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_run_by_its_owner_passes_on_when_the_owner_leaves_and_is_read_only_once_archived() {
    let s = Services::create().await;
    let p = people(&s, &["Ada", "Ben", "Cy", "Dee"]).await;
    let (ada, ben, cy, dee) = (&p[0], &p[1], &p[2], &p[3]);
    let events = KafkaMark::now("communication.events").await;
    let (status, g) = start(
        &s,
        ada,
        json!({"conversation_type": "group", "title": "Lab 3", "participant_ids": [ben.user_id, cy.user_id]}),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let id = g["id"].as_str().unwrap().to_owned();
    let roles: Vec<(&str, &str)> = g["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["role"].as_str().unwrap()))
        .collect();
    assert!(roles.contains(&("Ada Doe", "owner")) && roles.contains(&("Ben Doe", "member")), "{roles:?}");
    let participants = format!("/api/v1/conversations/{id}/participants");
    let add = |who: &Caller, user: &str| {
        let (client, path, body) = (s.as_caller(who), participants.clone(), json!({"user_id": user}));
        async move { client.call(Method::POST, &path, Some(body)).await.status }
    };
    let remove = |who: &Caller, user: &str| {
        let (client, path) = (s.as_caller(who), format!("{participants}/{user}"));
        async move { client.call(Method::DELETE, &path, None).await.status }
    };
    assert_eq!(add(ben, &dee.user_id).await, 403, "members do not add people");
    assert_eq!(add(ada, &dee.user_id).await, 204);
    assert_eq!(add(ada, &dee.user_id).await, 204, "again: no change");
    assert_eq!(add(ada, &Uuid::new_v4().to_string()).await, 422, "not a user");
    assert_eq!(remove(ben, &cy.user_id).await, 403, "members do not remove others");
    assert_eq!(remove(ada, &cy.user_id).await, 204);
    assert_eq!(s.as_caller(cy).call(Method::GET, &format!("/api/v1/conversations/{id}"), None).await.status, 404);
    assert_eq!(remove(ben, &ben.user_id).await, 204, "anyone leaves");
    assert_eq!(remove(ada, &ada.user_id).await, 204, "the owner leaves too");
    let left = s.as_caller(dee).call(Method::GET, &format!("/api/v1/conversations/{id}"), None).await.json;
    assert_eq!(left["participants"], json!([{"user_id": dee.user_id, "name": "Dee Doe", "role": "owner"}]));

    // A suspended person (as user.events told the service) can neither post nor be added.
    let ben_dee = direct(&s, dee, ben).await;
    let c = s.state.communication.get().await.unwrap();
    c.execute("INSERT INTO inactive_users (user_id, status) VALUES ($1, 'suspended')", &[&ben.user_id]).await.unwrap();
    assert_eq!(add(dee, &ben.user_id).await, 422);
    let a = s
        .as_caller(ben)
        .call(Method::POST, &format!("/api/v1/conversations/{ben_dee}/messages"), Some(json!({"text": "hi"})))
        .await;
    assert_eq!((a.status, a.json["code"].as_str()), (403, Some("FORBIDDEN")), "{}", a.json);
    let (status, _) = start(&s, ben, json!({"conversation_type": "direct", "participant_ids": [dee.user_id]})).await;
    assert_eq!(status, 403, "a suspended person starts nothing");

    // Archived: read-only.
    let archive = format!("/api/v1/conversations/{id}/archive");
    assert_eq!(s.as_caller(dee).call(Method::POST, &archive, None).await.status, 204);
    let a = s
        .as_caller(dee)
        .call(Method::POST, &format!("/api/v1/conversations/{id}/messages"), Some(json!({"text": "anyone?"})))
        .await;
    assert_eq!(a.status, 409);
    let listed = s.as_caller(dee).call(Method::GET, "/api/v1/conversations?archived=true", None).await.json;
    assert_eq!(listed["items"][0]["id"].as_str(), Some(id.as_str()));

    relay(&s).await;
    let records = events.read().await;
    let types: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.key.as_deref() == Some(id.as_str()))
        .map(|r| {
            (
                r.json["event_type"].as_str().unwrap().to_owned(),
                r.json["payload"]["user_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let name = |c: &Caller| c.user_id.clone();
    assert_eq!(
        types,
        vec![
            ("CONVERSATION_CREATED".to_owned(), String::new()),
            ("PARTICIPANT_ADDED".to_owned(), name(dee)),
            ("PARTICIPANT_REMOVED".to_owned(), name(cy)),
            ("PARTICIPANT_REMOVED".to_owned(), name(ben)),
            ("PARTICIPANT_REMOVED".to_owned(), name(ada)),
            ("CONVERSATION_ARCHIVED".to_owned(), String::new()),
        ],
        "one event per change, in order (one key, one partition)"
    );
    s.drop_now().await;
}

/// The worker role: `communication-service-group` applies a suspension from `user.events`, and
/// relays the service's outbox into `communication.events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_follows_suspensions_from_user_events_and_relays_the_outbox() {
    use nimbus_core::event::user::{UserEvent, UserStatusChangedPayload};
    let s = Services::create().await;
    let p = people(&s, &["Ada", "Ben"]).await;
    let (ada, ben) = (&p[0], &p[1]);
    let group = format!("t-communication-{}", Uuid::new_v4().simple());
    let topics = nimbus_cloud::worker::subscriptions(nimbus_core::groups::group_for_service("communication").unwrap());
    crate::common::prime_group(&crate::common::kafka_brokers(), &group, &topics).await;
    let communication = &s.dbs[7];
    let env = vec![
        ("DATABASE_URL", crate::common::database_server()),
        ("NIMBUS_SERVICE_DB", communication.name.clone()),
        ("NIMBUS_WORKER_GROUP", group.clone()),
        ("KAFKA_BROKERS", crate::common::kafka_brokers()),
    ];
    let worker = Proc(cloud(&["worker", "--service", "communication"], &env).spawn().unwrap());
    let events = KafkaMark::now("communication.events").await;
    let id = direct(&s, ada, ben).await;
    send(&s, ada, &id, "see you at the lab").await;

    let suspended = nimbus_core::event::Envelope::new(
        "user-service",
        UserEvent::UserSuspended(UserStatusChangedPayload {
            user_id: ben.user_id.clone(),
            status: "suspended".into(),
            changed_by: "admin".into(),
            changed_at: chrono::Utc::now(),
            ..UserStatusChangedPayload::default()
        }),
    );
    let (key, payload) = (suspended.partition_key(), suspended.to_json());
    let record = rdkafka::producer::FutureRecord::to("user.events").key(&key).payload(&payload);
    s.state.producer.send(record, Duration::from_secs(5)).await.unwrap();
    let pool = s.state.communication.clone();
    wait_for("the suspension applied", Duration::from_secs(60), || {
        let rt = tokio::runtime::Handle::current();
        let n: i64 = tokio::task::block_in_place(|| {
            rt.block_on(async {
                pool.get()
                    .await
                    .unwrap()
                    .query_one("SELECT count(*) FROM inactive_users WHERE user_id = $1", &[&ben.user_id])
                    .await
                    .unwrap()
                    .get(0)
            })
        });
        (n == 1).then_some(())
    });
    let a = s
        .as_caller(ben)
        .call(Method::POST, &format!("/api/v1/conversations/{id}/messages"), Some(json!({"text": "still here?"})))
        .await;
    assert_eq!((a.status, a.json["code"].as_str()), (403, Some("FORBIDDEN")), "{}", a.json);

    // course.events: a created course gets its forum.
    let course = Uuid::new_v4().to_string();
    let created = nimbus_core::event::Envelope::new("course-service", course_created(&course));
    let (key, payload) = (created.partition_key(), created.to_json());
    let record = rdkafka::producer::FutureRecord::to("course.events").key(&key).payload(&payload);
    s.state.producer.send(record, Duration::from_secs(5)).await.unwrap();
    let pool = s.state.communication.clone();
    wait_for("the course's forum", Duration::from_secs(60), || {
        let rt = tokio::runtime::Handle::current();
        let title: Option<String> = tokio::task::block_in_place(|| {
            rt.block_on(async {
                let c = pool.get().await.unwrap();
                c.query_opt("SELECT title FROM discussion_forums WHERE course_id = $1", &[&course])
                    .await
                    .unwrap()
                    .map(|r| r.get(0))
            })
        });
        title.filter(|t| t == "Networks")
    });

    // The worker relayed the outbox (the test did not).
    let relayed = wait_for("the relayed MESSAGE_SENT", Duration::from_secs(30), || {
        let rt = tokio::runtime::Handle::current();
        let records = tokio::task::block_in_place(|| rt.block_on(events.read()));
        records.into_iter().find(|r| r.key.as_deref() == Some(id.as_str()) && r.json["event_type"] == "MESSAGE_SENT")
    });
    assert_eq!(relayed.json["payload"]["message_text"], "see you at the lab");
    assert!(worker.stop(), "the worker stops cleanly");
    s.drop_now().await;
}

/// A faculty member who may publish office hours.
fn host() -> Caller {
    let mut c = caller(&Uuid::new_v4().to_string(), "faculty");
    c.permissions.insert("office_hours:publish".to_owned());
    c
}

async fn publish(
    s: &Services,
    who: &Caller,
    from_now: chrono::TimeDelta,
    minutes: i64,
    capacity: i32,
    weeks: u32,
) -> Vec<Value> {
    let start = chrono::Utc::now() + from_now;
    let a = s
        .as_caller(who)
        .call(
            Method::POST,
            "/api/v1/office-hours",
            Some(json!({
                "title": "Lab 3 questions", "location": "B-204", "capacity": capacity, "weeks": weeks,
                "starts_at": start, "ends_at": start + chrono::TimeDelta::minutes(minutes)
            })),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.json);
    a.json.as_array().unwrap().clone()
}

async fn book(s: &Services, who: &Caller, slot: &Value) -> (u16, Value) {
    let path = format!("/api/v1/office-hours/{}/bookings", slot["id"].as_str().unwrap());
    let a = s.as_caller(who).call(Method::POST, &path, Some(json!({"note": "recursion"}))).await;
    (a.status, a.json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_students_racing_for_three_places_get_three_bookings_and_nobody_holds_overlapping_slots() {
    let s = Services::create().await;
    let (grace, alan) = (host(), host());
    let students: Vec<Caller> = (0..50).map(|_| caller(&Uuid::new_v4().to_string(), "student")).collect();
    let slot = publish(&s, &grace, chrono::TimeDelta::days(1), 60, 3, 1).await.remove(0);

    let answers = futures_util::future::join_all(students.iter().map(|st| book(&s, st, &slot))).await;
    let won = answers.iter().filter(|(status, _)| *status == 201).count();
    let full: Vec<&Value> = answers.iter().filter(|(status, _)| *status == 409).map(|(_, e)| e).collect();
    assert_eq!((won, full.len()), (3, 47), "{answers:?}");
    assert!(full.iter().all(|e| e["code"] == "CONFLICT" && e["message"] == "the office hour is full"), "{full:?}");
    let path = format!("/api/v1/office-hours/{}/bookings", slot["id"].as_str().unwrap());
    let seen = s.as_caller(&grace).call(Method::GET, &path, None).await;
    assert_eq!(seen.json.as_array().map(Vec::len), Some(3), "{}", seen.json);
    assert_eq!(s.as_caller(&alan).call(Method::GET, &path, None).await.status, 404, "another host's slot");
    assert_eq!(s.as_caller(&students[0]).call(Method::GET, &path, None).await.status, 403, "students do not list");

    // A winner cancels: one place again, taken by the next student, and not twice by anyone.
    let winner = students.iter().zip(&answers).find(|(_, (status, _))| *status == 201).unwrap().0;
    let mine = format!("/api/v1/office-hours/{}/bookings/mine", slot["id"].as_str().unwrap());
    assert_eq!(s.as_caller(winner).call(Method::DELETE, &mine, None).await.status, 204);
    assert_eq!(s.as_caller(winner).call(Method::DELETE, &mine, None).await.status, 404);
    let loser = students.iter().zip(&answers).find(|(_, (status, _))| *status == 409).unwrap().0;
    assert_eq!(book(&s, loser, &slot).await.0, 201);
    let (status, again) = book(&s, loser, &slot).await;
    assert_eq!((status, again["message"].as_str()), (409, Some("already booked")));

    // Two overlapping slots of different hosts booked at once by one student: one booking.
    let ada = caller(&Uuid::new_v4().to_string(), "student");
    let a = publish(&s, &grace, chrono::TimeDelta::days(2), 60, 5, 1).await.remove(0);
    let b = publish(&s, &alan, chrono::TimeDelta::days(2) + chrono::TimeDelta::minutes(30), 60, 5, 1).await.remove(0);
    let (x, y) = tokio::join!(book(&s, &ada, &a), book(&s, &ada, &b));
    let mut statuses = [x.0, y.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{x:?} {y:?}");
    let listed = s.as_caller(&ada).call(Method::GET, "/api/v1/office-hours?mine=true", None).await.json;
    assert_eq!(listed["total"], 1, "{listed}");

    // A weekly series: one slot per week; a host cannot double-book themselves.
    let weekly = publish(&s, &alan, chrono::TimeDelta::days(3), 45, 2, 3).await;
    let starts: Vec<chrono::DateTime<chrono::Utc>> =
        weekly.iter().map(|w| w["starts_at"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(
        (starts[1] - starts[0], starts[2] - starts[1]),
        (chrono::TimeDelta::weeks(1), chrono::TimeDelta::weeks(1))
    );
    assert!(weekly.iter().all(|w| w["series_id"] == weekly[0]["series_id"]));
    let start = starts[1] + chrono::TimeDelta::minutes(10);
    let clash = s
        .as_caller(&alan)
        .call(
            Method::POST,
            "/api/v1/office-hours",
            Some(json!({"title": "x", "location": "y", "capacity": 1, "starts_at": start, "ends_at": start + chrono::TimeDelta::minutes(30)})),
        )
        .await;
    assert_eq!(clash.status, 409, "{}", clash.json);
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booked_student_is_reminded_once_before_the_slot_and_told_when_it_is_cancelled() {
    use nimbus_cloud::communication::office_hours::remind_due;
    let s = Services::create().await;
    let grace = host();
    let (ada, ben) = (caller(&Uuid::new_v4().to_string(), "student"), caller(&Uuid::new_v4().to_string(), "student"));
    let commands = KafkaMark::now("notification.commands").await;
    let soon = publish(&s, &grace, chrono::TimeDelta::minutes(10), 30, 5, 1).await.remove(0);
    let later = publish(&s, &grace, chrono::TimeDelta::days(1), 30, 5, 1).await.remove(0);
    let (status, booking) = book(&s, &ada, &soon).await;
    assert_eq!(status, 201);
    assert_eq!(book(&s, &ben, &later).await.0, 201);

    // Two workers' rounds at once: one reminder, for the slot that is near only.
    let pool = &s.state.communication;
    let (x, y) = tokio::join!(remind_due(pool), remind_due(pool));
    assert_eq!(x.unwrap() + y.unwrap(), 1);
    assert_eq!(remind_due(pool).await.unwrap(), 0, "reminded once");
    // Cancelling the later slot tells Ben.
    let path = format!("/api/v1/office-hours/{}", later["id"].as_str().unwrap());
    assert_eq!(s.as_caller(&ben).call(Method::DELETE, &path, None).await.status, 403);
    assert_eq!(s.as_caller(&grace).call(Method::DELETE, &path, None).await.status, 204);
    assert_eq!(s.as_caller(&grace).call(Method::DELETE, &path, None).await.status, 204, "again: no change");
    assert_eq!(book(&s, &ada, &later).await.0, 409, "a cancelled slot takes no bookings");

    relay(&s).await;
    let sent: Vec<Value> = commands
        .read()
        .await
        .into_iter()
        .filter(|r| r.json["service_name"] == "communication-service")
        .map(|r| r.json)
        .filter(|j| {
            [&ada.user_id, &ben.user_id].contains(&&j["payload"]["recipient_user_id"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let ids: Vec<&str> = sent.iter().map(|j| j["payload"]["notification_id"].as_str().unwrap()).collect();
    let reminder = format!("office-hour-reminder:{}", booking["id"].as_str().unwrap());
    let cancelled = format!("office-hour-cancelled:{}:{}", later["id"].as_str().unwrap(), ben.user_id);
    assert_eq!(ids.len(), 2, "{sent:?}");
    assert!(ids.contains(&reminder.as_str()) && ids.contains(&cancelled.as_str()), "{ids:?}");
    assert!(sent.iter().all(|j| j["event_type"] == "SEND_NOTIFICATION"));
    s.drop_now().await;
}

/// A course in the course database with `faculty` teaching and `students` enrolled; its forum
/// created as `course.events`' `COURSE_CREATED` does it. Returns the course id.
async fn course_with_forum(s: &Services, faculty: &Caller, students: &[&Caller]) -> String {
    let c = s.state.course.get().await.unwrap();
    let tag = Uuid::new_v4().simple().to_string();
    let id = |row: tokio_postgres::Row| row.get::<_, Uuid>(0).to_string();
    let dept = id(c
        .query_one("INSERT INTO departments (code, name) VALUES ($1, 'D') RETURNING id", &[&format!("d{tag}")])
        .await
        .unwrap());
    let program = id(c
        .query_one(
            "INSERT INTO programs (department_id, code, name) VALUES ($1::text::uuid, $2, 'P') RETURNING id",
            &[&dept, &format!("p{tag}")],
        )
        .await
        .unwrap());
    let subject = id(c
        .query_one(
            "INSERT INTO subjects (department_id, code, name) VALUES ($1::text::uuid, $2, 'S') RETURNING id",
            &[&dept, &format!("s{tag}")],
        )
        .await
        .unwrap());
    let course = id(c
        .query_one(
            "INSERT INTO courses (course_code, course_name, subject_id, department_id, program_id, semester,
                                  academic_year, max_students, created_by)
             VALUES ($1, 'Networks', $2::text::uuid, $3::text::uuid, $4::text::uuid, 1, 2026, 500, 'admin') RETURNING id",
            &[&format!("c{tag}"), &subject, &dept, &program],
        )
        .await
        .unwrap());
    c.execute(
        "INSERT INTO faculty_courses (course_id, faculty_id, assigned_by) VALUES ($1::text::uuid, $2, 'admin')",
        &[&course, &faculty.user_id],
    )
    .await
    .unwrap();
    for st in students {
        c.execute(
            "INSERT INTO course_enrollments (course_id, student_id, status, enrolled_by)
             VALUES ($1::text::uuid, $2, 'enrolled', 'admin')",
            &[&course, &st.user_id],
        )
        .await
        .unwrap();
    }
    course_event(s, course_created(&course)).await;
    course
}

fn course_created(course: &str) -> nimbus_core::event::CourseEvent {
    nimbus_core::event::CourseEvent::CourseCreated(nimbus_core::event::course::CourseCreatedPayload {
        course_id: course.to_owned(),
        course_code: "NET".into(),
        course_name: "Networks".into(),
        ..Default::default()
    })
}

/// Applies a course event as the worker's handler would (twice: a redelivery changes nothing).
async fn course_event(s: &Services, event: nimbus_core::event::CourseEvent) {
    for _ in 0..2 {
        let mut c = s.state.communication.get().await.unwrap();
        let tx = c.transaction().await.unwrap();
        nimbus_cloud::communication::forums::follow_course(&tx, &event).await.unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_course_forum_is_for_the_course_s_members_moderated_by_its_faculty_and_closes_with_the_course() {
    let s = Services::create().await;
    let p = people(&s, &["Ada", "Ben", "Cy"]).await;
    let (ada, ben, outsider) = (&p[0], &p[1], &p[2]);
    let grace = caller(&Uuid::new_v4().to_string(), "faculty");
    let admin = {
        let mut a = caller(&Uuid::new_v4().to_string(), "admin");
        a.permissions.insert("forum:moderate".to_owned());
        a
    };
    let course = course_with_forum(&s, &grace, &[ada, ben]).await;
    let events = KafkaMark::now("communication.events").await;
    let forum = format!("/api/v1/courses/{course}/forum");

    let seen = s.as_caller(ada).call(Method::GET, &forum, None).await;
    assert_eq!(
        (seen.status, seen.json["title"].as_str(), seen.json["moderator"].as_bool()),
        (200, Some("Networks"), Some(false))
    );
    assert_eq!(s.as_caller(&grace).call(Method::GET, &forum, None).await.json["moderator"], true);
    assert_eq!(s.as_caller(&admin).call(Method::GET, &forum, None).await.json["moderator"], true);
    let hidden = s.as_caller(outsider).call(Method::GET, &forum, None).await;
    let nothing =
        s.as_caller(outsider).call(Method::GET, &format!("/api/v1/courses/{}/forum", Uuid::new_v4()), None).await;
    assert_eq!((hidden.status, nothing.status), (404, 404), "an outsider cannot tell the forum exists");

    let start = |who: &Caller, title: &str| {
        let (client, path, body) = (
            s.as_caller(who),
            format!("{forum}/threads"),
            json!({"title": title, "body": "How does <b>TCP</b> start?"}),
        );
        async move { client.call(Method::POST, &path, Some(body)).await }
    };
    let t = start(ada, "Handshake").await;
    assert_eq!(t.status, 201, "{}", t.json);
    assert_eq!(t.json["posts"][0]["body"], "How does <b>TCP</b> start?", "markup kept as text");
    let thread = t.json["thread"]["id"].as_str().unwrap().to_owned();
    let first_post = t.json["posts"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(start(outsider, "Spam").await.status, 404);
    assert_eq!(start(ada, " ").await.status, 400);
    let posts = format!("/api/v1/forum-threads/{thread}/posts");
    let reply = s.as_caller(ben).call(Method::POST, &posts, Some(json!({"body": "SYN, SYN-ACK, ACK."}))).await;
    assert_eq!((reply.status, reply.json["parent_post_id"].as_str()), (201, Some(first_post.as_str())));
    assert_eq!(s.as_caller(outsider).call(Method::POST, &posts, Some(json!({"body": "me too"}))).await.status, 404);

    // Moderation: faculty pin and lock; students cannot.
    let thread_path = format!("/api/v1/forum-threads/{thread}");
    assert_eq!(s.as_caller(ben).call(Method::PATCH, &thread_path, Some(json!({"locked": true}))).await.status, 403);
    let locked =
        s.as_caller(&grace).call(Method::PATCH, &thread_path, Some(json!({"locked": true, "pinned": true}))).await;
    assert_eq!((locked.json["locked"].as_bool(), locked.json["pinned"].as_bool()), (Some(true), Some(true)));
    assert_eq!(s.as_caller(ben).call(Method::POST, &posts, Some(json!({"body": "late"}))).await.status, 409);
    let later = start(ben, "Later thread").await;
    let listed = s.as_caller(ada).call(Method::GET, &forum, None).await.json;
    assert_eq!(listed["threads"][0]["id"].as_str(), Some(thread.as_str()), "pinned first: {listed}");
    assert_eq!(listed["threads"][1]["id"], later.json["thread"]["id"]);

    // Removal: authors remove their replies, not others'; faculty remove anything.
    let reply_path = format!("/api/v1/forum-posts/{}", reply.json["id"].as_str().unwrap());
    assert_eq!(s.as_caller(ada).call(Method::DELETE, &reply_path, None).await.status, 403);
    assert_eq!(s.as_caller(ben).call(Method::DELETE, &reply_path, None).await.status, 204);
    let view = s.as_caller(ada).call(Method::GET, &thread_path, None).await.json;
    assert!(view["posts"][1]["body"].is_null() && view["posts"][1]["removed_at"].is_string(), "{view}");
    let later_first = format!("/api/v1/forum-posts/{}", later.json["posts"][0]["id"].as_str().unwrap());
    assert_eq!(
        s.as_caller(ben).call(Method::DELETE, &later_first, None).await.status,
        403,
        "a thread is a moderator's to remove"
    );
    assert_eq!(s.as_caller(&grace).call(Method::DELETE, &later_first, None).await.status, 204);
    assert_eq!(
        s.as_caller(ada).call(Method::GET, &forum, None).await.json["threads"].as_array().map(Vec::len),
        Some(1)
    );

    // Ben drops the course: the forum is gone for him at once.
    let c = s.state.course.get().await.unwrap();
    c.execute("UPDATE course_enrollments SET status = 'dropped' WHERE student_id = $1", &[&ben.user_id]).await.unwrap();
    assert_eq!(s.as_caller(ben).call(Method::GET, &thread_path, None).await.status, 404);

    // The course is deactivated: the forum stays readable and takes nothing new.
    course_event(
        &s,
        nimbus_core::event::CourseEvent::CourseDeactivated(nimbus_core::event::course::CourseRefPayload {
            course_id: course.clone(),
            ..Default::default()
        }),
    )
    .await;
    assert!(s.as_caller(ada).call(Method::GET, &forum, None).await.json["closed_at"].is_string());
    assert_eq!(start(ada, "After the end").await.status, 409);

    relay(&s).await;
    let records = events.read().await;
    let mine: Vec<&Value> =
        records.iter().filter(|r| r.key.as_deref() == Some(thread.as_str())).map(|r| &r.json).collect();
    let kinds: Vec<&str> = mine.iter().map(|j| j["event_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["FORUM_POST_CREATED", "FORUM_REPLY_ADDED"]);
    assert_eq!(mine[0]["payload"]["course_id"].as_str(), Some(course.as_str()));
    assert_eq!(mine[1]["payload"]["parent_post_id"].as_str(), Some(first_post.as_str()));
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_messages_tells_each_other_participant_once_until_they_read_it() {
    let s = Services::create().await;
    let p = people(&s, &["Grace", "Ada", "Ben"]).await;
    let (grace, ada, ben) = (&p[0], &p[1], &p[2]);
    let commands = KafkaMark::now("notification.commands").await;
    let (status, g) = start(
        &s,
        grace,
        json!({"conversation_type": "group", "title": "Networks lab", "participant_ids": [ada.user_id, ben.user_id]}),
    )
    .await;
    assert_eq!(status, 201);
    let id = g["id"].as_str().unwrap().to_owned();
    for n in 1..=5 {
        send(&s, grace, &id, &format!("Lab moved to B-{n}")).await;
    }
    // Ada reads; two more messages: Ada is told once more, Ben (who never read) is not.
    let a =
        s.as_caller(ada).call(Method::POST, &format!("/api/v1/conversations/{id}/read"), Some(json!({"seq": 5}))).await;
    assert_eq!(a.status, 204);
    send(&s, grace, &id, "And bring a laptop").await;
    send(&s, grace, &id, "Charged").await;

    relay(&s).await;
    let told: Vec<Value> = commands
        .read()
        .await
        .into_iter()
        .map(|r| r.json)
        .filter(|j| j["payload"]["action_url"] == format!("/conversations/{id}"))
        .collect();
    let to = |who: &Caller| {
        told.iter()
            .filter(|j| j["payload"]["recipient_user_id"].as_str() == Some(who.user_id.as_str()))
            .collect::<Vec<_>>()
    };
    let (for_ada, for_ben, for_grace) = (to(ada), to(ben), to(grace));
    assert_eq!((for_ada.len(), for_ben.len(), for_grace.len()), (2, 1, 0), "{told:?}");
    let first = &for_ben[0];
    assert_eq!(first["event_type"], "SEND_NOTIFICATION");
    assert_eq!(first["payload"]["title"], "New message from Grace Doe");
    assert_eq!(first["payload"]["message"], "Lab moved to B-1");
    assert_eq!(for_ada[1]["payload"]["message"], "And bring a laptop");
    s.drop_now().await;
}

/// Every communication route, as a participant, a non-participant, the course's faculty, an
/// administrator and a suspended participant: the answers the service's rules give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_kind_of_caller_as_the_rules_say() {
    let s = Services::create().await;
    let p = people(&s, &["Ada", "Ben", "Cy", "Sue"]).await;
    let (ada, ben, cy, sue) = (&p[0], &p[1], &p[2], &p[3]);
    let grace = host();
    let other_faculty = host();
    let admin = {
        let mut a = caller(&Uuid::new_v4().to_string(), "admin");
        a.permissions.extend(["forum:moderate", "office_hours:publish", "office_hours:manage"].map(str::to_owned));
        a
    };
    let (status, g) = start(
        &s,
        ada,
        json!({"conversation_type": "group", "title": "Study group", "participant_ids": [ben.user_id, sue.user_id]}),
    )
    .await;
    assert_eq!(status, 201);
    let conversation = g["id"].as_str().unwrap().to_owned();
    let message = send(&s, ben, &conversation, "hello").await["id"].as_str().unwrap().to_owned();
    let course = course_with_forum(&s, &grace, &[ada, sue]).await;
    let thread = s
        .as_caller(ada)
        .call(
            Method::POST,
            &format!("/api/v1/courses/{course}/forum/threads"),
            Some(json!({"title": "Q", "body": "?"})),
        )
        .await
        .json["thread"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let slot = publish(&s, &grace, chrono::TimeDelta::days(1), 30, 10, 1).await.remove(0);
    let slot = slot["id"].as_str().unwrap().to_owned();
    let c = s.state.communication.get().await.unwrap();
    c.execute("INSERT INTO inactive_users (user_id, status) VALUES ($1, 'suspended')", &[&sue.user_id]).await.unwrap();

    let conv = format!("/api/v1/conversations/{conversation}");
    let msg = format!("{conv}/messages/{message}");
    let forum = format!("/api/v1/courses/{course}/forum");
    let threads = format!("{forum}/threads");
    let thread_path = format!("/api/v1/forum-threads/{thread}");
    let posts = format!("{thread_path}/posts");
    let slot_path = format!("/api/v1/office-hours/{slot}");
    let bookings = format!("{slot_path}/bookings");
    let text = || Some(json!({"text": "hi"}));
    let post_body = || Some(json!({"body": "reply"}));
    let cases: Vec<(&Caller, Method, String, Option<Value>, u16)> = vec![
        // A conversation: its participants only; for everyone else it does not exist.
        (ada, Method::GET, conv.clone(), None, 200),
        (sue, Method::GET, conv.clone(), None, 200),
        (cy, Method::GET, conv.clone(), None, 404),
        (&grace, Method::GET, conv.clone(), None, 404),
        (&admin, Method::GET, conv.clone(), None, 404),
        (ben, Method::POST, format!("{conv}/messages"), text(), 201),
        (sue, Method::POST, format!("{conv}/messages"), text(), 403),
        (cy, Method::POST, format!("{conv}/messages"), text(), 404),
        (&admin, Method::POST, format!("{conv}/messages"), text(), 404),
        (cy, Method::GET, format!("{conv}/messages"), None, 404),
        (ada, Method::PATCH, msg.clone(), text(), 403),
        (cy, Method::PATCH, msg.clone(), text(), 404),
        (ben, Method::POST, format!("{conv}/archive"), None, 403),
        (cy, Method::POST, format!("{conv}/archive"), None, 404),
        (ben, Method::POST, format!("{conv}/participants"), Some(json!({"user_id": cy.user_id})), 403),
        (ada, Method::POST, format!("{conv}/participants"), Some(json!({"user_id": sue.user_id})), 422),
        (cy, Method::DELETE, format!("{conv}/participants/{}", ben.user_id), None, 404),
        // A course forum: enrolled students and teaching faculty; moderators pin and lock.
        (ada, Method::GET, forum.clone(), None, 200),
        (&grace, Method::GET, forum.clone(), None, 200),
        (&admin, Method::GET, forum.clone(), None, 200),
        (cy, Method::GET, forum.clone(), None, 404),
        (&other_faculty, Method::GET, forum.clone(), None, 404),
        (cy, Method::POST, threads.clone(), Some(json!({"title": "x", "body": "y"})), 404),
        (sue, Method::POST, threads.clone(), Some(json!({"title": "x", "body": "y"})), 403),
        (ada, Method::POST, posts.clone(), post_body(), 201),
        (cy, Method::POST, posts.clone(), post_body(), 404),
        (ada, Method::PATCH, thread_path.clone(), Some(json!({"pinned": true})), 403),
        (&grace, Method::PATCH, thread_path.clone(), Some(json!({"pinned": true})), 200),
        (&admin, Method::PATCH, thread_path.clone(), Some(json!({"locked": false})), 200),
        (cy, Method::PATCH, thread_path.clone(), Some(json!({"pinned": true})), 404),
        // Office hours: hosts publish and see bookings; students book.
        (ada, Method::POST, "/api/v1/office-hours".to_owned(), Some(json!({})), 403),
        (ada, Method::POST, bookings.clone(), Some(json!({})), 201),
        (sue, Method::POST, bookings.clone(), Some(json!({})), 403),
        (ada, Method::GET, bookings.clone(), None, 403),
        (&other_faculty, Method::GET, bookings.clone(), None, 404),
        (&grace, Method::GET, bookings.clone(), None, 200),
        (&admin, Method::GET, bookings.clone(), None, 200),
        (&other_faculty, Method::DELETE, slot_path.clone(), None, 404),
        (cy, Method::GET, "/api/v1/office-hours".to_owned(), None, 200),
        (cy, Method::GET, format!("/api/v1/office-hours?faculty_id={}", grace.user_id), None, 200),
    ];
    let mut wrong = Vec::new();
    for (who, method, path, body, expected) in cases {
        let a = s.as_caller(who).call(method.clone(), &path, body).await;
        if a.status != expected {
            wrong.push(format!("{method} {path} as {}: {} (expected {expected}) {}", who.user_id, a.status, a.json));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    s.drop_now().await;
}

/// A content item in the content database: published or not, mapped to `course` when given.
async fn content_item(s: &Services, published: bool, course: Option<&str>) -> Uuid {
    let c = s.state.content.get().await.unwrap();
    let id = Uuid::new_v4();
    c.execute(
        "INSERT INTO content_metadata (id, title, content_type, mongo_document_id, file_name, mime_type, file_size,
                                       sha256, is_published, created_by)
         VALUES ($1, 'Slides', 'slides', 'm', 'slides.pdf', 'application/pdf', 1, 'x', $2, 'admin')",
        &[&id, &published],
    )
    .await
    .unwrap();
    if let Some(course) = course {
        c.execute("INSERT INTO content_course_mapping (content_id, course_id) VALUES ($1, $2)", &[&id, &course])
            .await
            .unwrap();
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_is_sent_only_when_every_participant_may_open_it_and_never_reveals_an_item() {
    let s = Services::create().await;
    let people = people(&s, &["Ana", "Ben"]).await;
    let (ana, ben) = (&people[0], &people[1]);
    // A faculty member in the user database (faculty write content: they see every item).
    let users = s.state.users.get().await.unwrap();
    let grace: Uuid = users
        .query_one(
            "INSERT INTO users (email, password_hash, role_id) SELECT $1, 'x', id FROM roles WHERE name = 'faculty' RETURNING id",
            &[&format!("grace-{}@campus.test", Uuid::new_v4().simple())],
        )
        .await
        .unwrap()
        .get(0);
    let grace = caller(&grace.to_string(), "faculty");
    let course = course_with_forum(&s, &grace, &[ana]).await;
    let slides = content_item(&s, true, Some(&course)).await; // Ana's course's, published
    let draft = content_item(&s, false, Some(&course)).await; // staff only

    let with_grace = direct(&s, ana, &grace).await;
    let with_ben = direct(&s, ana, ben).await;
    let attach = |conversation: &str, item: Uuid, text: &str| {
        let (s, ana, path) = (&s, ana.clone(), format!("/api/v1/conversations/{conversation}/messages"));
        let body = json!({"text": text, "attachment_content_id": item});
        async move { s.as_caller(&ana).call(Method::POST, &path, Some(body)).await }
    };

    // Ana and Grace may both open the slides: sent, as an attachment, text optional.
    let sent = attach(&with_grace, slides, "").await;
    assert_eq!(sent.status, 201, "{}", sent.json);
    assert_eq!((sent.json["message_type"].as_str(), sent.json["text"].as_str()), (Some("attachment"), Some("")));
    assert_eq!(sent.json["attachment_content_id"], slides.to_string());
    let read =
        s.as_caller(&grace).call(Method::GET, &format!("/api/v1/conversations/{with_grace}/messages"), None).await;
    assert_eq!(read.json[0]["attachment_content_id"], slides.to_string());

    // Ben is not in the course: nobody sends him a link he cannot follow.
    let refused = attach(&with_ben, slides, "look").await;
    assert_eq!((refused.status, refused.json["code"].as_str()), (422, Some("VALIDATION_ERROR")), "{}", refused.json);
    assert!(refused.json["details"].to_string().contains("may not open"), "{}", refused.json);

    // An item Ana may not open answers exactly as one that does not exist.
    let ghost = Uuid::new_v4();
    let (hidden, missing) = (attach(&with_grace, draft, "x").await, attach(&with_grace, ghost, "x").await);
    assert_eq!((hidden.status, missing.status), (422, 422));
    let scrub = |j: &Value, id: Uuid| j["details"].to_string().replace(&id.to_string(), "ID");
    assert_eq!(scrub(&hidden.json, draft), scrub(&missing.json, ghost));
    // Neither text nor attachment is no message.
    let empty = s
        .as_caller(ana)
        .call(Method::POST, &format!("/api/v1/conversations/{with_grace}/messages"), Some(json!({"text": ""})))
        .await;
    assert_eq!(empty.status, 422);
    s.drop_now().await;
}
