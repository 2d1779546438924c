//! A faculty member's message to their course's conversation, end to end over separate
//! processes on real services: `nimbus-cloud api` (the faculty member starts the course
//! conversation and writes), `nimbus-cloud worker --service communication` (relays the events
//! and the collapsed message notifications), `nimbus-cloud worker --service notification` (the
//! in-app notification of the student who is not connected; the one with a live socket open gets
//! the message over it instead).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::common;
use crate::common::e2e::{Proc, Stack, cloud, course_running_now, created, faculty_with_pin, http, login, wait_for};
use crate::common::ingest::KafkaMark;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faculty_message_to_the_course_conversation_is_message_sent_live_to_the_connected_student_and_an_in_app_notification_for_the_other()
 {
    let stack = Stack::prepare("cm", |_| Vec::new()).await;
    let api_proc = stack.start_api();
    let (suffix, api, room) = (stack.suffix.clone(), stack.api.clone(), stack.room.clone());
    let admin = login(&api, &stack.admin_email, &stack.admin_password);
    let post = |path: &str, body: Value, token: &str| http(&api, "POST", path, Some(body), Some(token));

    let email = format!("grace-{suffix}@campus.test");
    let (faculty_id, _) = faculty_with_pin(&stack, &admin, &email, ("Grace", "Hopper"), "582047").await;
    let course_id = course_running_now(&api, &admin, &room, &suffix, "Networks", &faculty_id);
    let mut students = Vec::new();
    for name in ["Ada", "Ben"] {
        let address = format!("{}-{suffix}@campus.test", name.to_lowercase());
        let s = created(
            "student",
            post(
                "/api/v1/users",
                json!({"email": address, "password": "student-pass-123", "role": "student", "first_name": name}),
                &admin,
            ),
        );
        let id = s["id"].as_str().unwrap().to_owned();
        // The course service's profile, written as its worker would (it does not run here).
        let course_db = stack.dbs.course.pool.get().await.unwrap();
        course_db.execute("INSERT INTO students (user_id, name) VALUES ($1, $2)", &[&id, &name]).await.unwrap();
        created("enrollment", post("/api/v1/enrollments", json!({"course_id": course_id, "student_id": id}), &admin));
        students.push((id, login(&api, &address, "student-pass-123")));
    }

    let brokers = common::kafka_brokers();
    let mut workers = Vec::new();
    for service in ["communication", "notification"] {
        let group = format!("{service}-e2e-cm-{suffix}");
        let topics = nimbus_cloud::worker::subscriptions(nimbus_core::groups::group_for_service(service).unwrap());
        common::prime_group(&brokers, &group, &topics).await;
        let mut vars = stack.env.clone();
        vars.push(("NIMBUS_WORKER_GROUP", group));
        workers.push(Proc(cloud(&["worker", "--service", service], &vars).spawn().unwrap()));
    }
    let events = KafkaMark::now("communication.events").await;

    // Grace starts the course's conversation: its members are the enrolled students.
    let grace = login(&api, &email, "faculty-pass-123");
    let started = post(
        "/api/v1/conversations",
        json!({"conversation_type": "course", "course_id": course_id, "title": "Networks (autumn)"}),
        &grace,
    );
    let conversation = created("course conversation", started);
    let mut members: Vec<&str> =
        conversation["participants"].as_array().unwrap().iter().map(|p| p["user_id"].as_str().unwrap()).collect();
    members.sort();
    let mut expected = vec![faculty_id.as_str(), students[0].0.as_str(), students[1].0.as_str()];
    expected.sort();
    assert_eq!(members, expected);
    let id = conversation["id"].as_str().unwrap().to_owned();
    // A student cannot start the course's conversation.
    let (status, _) = post(
        "/api/v1/conversations",
        json!({"conversation_type": "course", "course_id": course_id, "title": "Mine"}),
        &students[0].1,
    );
    assert_eq!(status, 403);

    // The first student has the conversation open: a live socket on the api process.
    let mut socket = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{api}/api/v1/conversations/live").into_client_request().unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", format!("nimbus.v1, bearer.{}", students[0].1).parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("the live socket opens");
        ws.send(Frame::text(r#"{"type":"resume","after":{}}"#)).await.unwrap();
        assert_eq!(push(&mut ws).await["type"], "ready");
        ws
    };

    let sent = created(
        "message",
        post(&format!("/api/v1/conversations/{id}/messages"), json!({"text": "Quiz on Friday, chapters 3-4."}), &grace),
    );
    let live = push(&mut socket).await;
    assert_eq!((live["type"].as_str(), live["message"]["id"].as_str()), (Some("message"), sent["id"].as_str()));

    // MESSAGE_SENT in Kafka in the seed's shape, once the worker relayed it.
    let record = wait_for("MESSAGE_SENT in communication.events", Duration::from_secs(60), || {
        let rt = tokio::runtime::Handle::current();
        let records = tokio::task::block_in_place(|| rt.block_on(events.read()));
        records.into_iter().find(|r| r.key.as_deref() == Some(id.as_str()) && r.json["event_type"] == "MESSAGE_SENT")
    });
    let payload = &record.json["payload"];
    let mut keys: Vec<&str> = payload.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "attachment_url",
            "conversation_id",
            "conversation_type",
            "message_id",
            "message_text",
            "message_type",
            "recipient_ids",
            "reply_to_message_id",
            "sender_id",
            "sender_name",
            "sent_at"
        ],
        "every field of the seed's struct, present even when empty"
    );
    assert_eq!(payload["message_id"], sent["id"]);
    assert_eq!((payload["attachment_url"].as_str(), payload["reply_to_message_id"].as_str()), (Some(""), Some("")));
    assert_eq!(
        (payload["conversation_type"].as_str(), payload["sender_name"].as_str()),
        (Some("course"), Some("Grace Hopper"))
    );
    let mut recipients: Vec<&str> =
        payload["recipient_ids"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    recipients.sort();
    let mut both = vec![students[0].0.as_str(), students[1].0.as_str()];
    both.sort();
    assert_eq!(recipients, both);

    // The student who is not connected finds one in-app notification in their inbox; the one
    // whose socket delivered the message is not notified.
    let (student, token) = &students[1];
    let inbox = wait_for("the offline student's in-app notification", Duration::from_secs(60), || {
        let (_, page) = http(&api, "GET", "/api/v1/me/notifications", None, Some(token));
        (page["total"].as_i64() == Some(1)).then_some(page)
    });
    let item = &inbox["items"][0];
    assert_eq!(item["title"], "New message from Grace Hopper", "{student}: {inbox}");
    assert_eq!(item["message"], "Quiz on Friday, chapters 3-4.");
    let (_, connected) = http(&api, "GET", "/api/v1/me/notifications", None, Some(&students[0].1));
    assert_eq!(connected["total"], 0, "the connected student is not notified: {connected}");
    drop(socket);

    for w in workers {
        assert!(w.stop(), "the workers stop cleanly");
    }
    assert!(api_proc.stop(), "the API stops cleanly");
    stack.dbs.drop_all().await;
}

/// The next JSON push of a live socket, within 10 s.
async fn push(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a push within 10 s") {
            Some(Ok(Frame::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("the live socket ended: {other:?}"),
        }
    }
}
