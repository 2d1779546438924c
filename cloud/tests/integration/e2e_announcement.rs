//! An urgent announcement from the cloud on the classroom's faculty page, offline until it
//! expires. Separate processes on real services: `nimbus-cloud api` (the admin writes and
//! publishes), `nimbus-cloud worker --service announcement` (relays the events and queues the
//! urgent fan-out), `nimbus-cloud downlink` (the room's `announcements` snapshot), a private
//! Mosquitto and `nimbus-edge`, read in Chromium. Then the cloud and the broker stop: the node
//! keeps showing the announcement until its expiry passes on the node's clock.

use std::time::Duration;

use chrono::Utc;
use nimbus_edge::testing::{Browser, Screen};
use serde_json::{Value, json};

use crate::common;
use crate::common::e2e::{Proc, Stack, cloud, course_running_now, created, faculty_with_pin, http, login, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_course_announcement_shows_on_the_classroom_page_offline_until_it_expires() {
    let stack = Stack::prepare("an", |_| Vec::new()).await;
    let api_proc = stack.start_api();
    let Stack { suffix, room, api, admin_email, admin_password, env, dbs, .. } = &stack;
    let (suffix, api) = (suffix.clone(), api.clone());
    let admin = login(&api, admin_email, admin_password);
    let post = |path: &str, body: Value| http(&api, "POST", path, Some(body), Some(&admin));

    let email = format!("grace-{suffix}@campus.test");
    let (faculty_id, staff_number) = faculty_with_pin(&stack, &admin, &email, ("Grace", "Hopper"), "582047").await;
    let course_id = course_running_now(&api, &admin, room, &suffix, "Compilers", &faculty_id);

    let worker = Proc(cloud(&["worker", "--service", "announcement"], env).spawn().unwrap());
    let downlink = Proc(cloud(&["downlink"], env).spawn().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let node = common::e2e::start_simulated_node(&stack.node_config(dir.path(), ""));
    let lan = node.http.clone();

    // An urgent one to the course, expiring soon; a normal one to everyone; one to a course
    // elsewhere, which the room never gets.
    let expires = Utc::now() + chrono::TimeDelta::seconds(50);
    let publish = |title: &str, priority: &str, targets: Value, expires_at: Option<String>| {
        let a = created(
            title,
            post(
                "/api/v1/announcements",
                json!({"title": title, "content": format!("{title}: details"), "priority": priority,
                       "expires_at": expires_at, "targets": targets}),
            ),
        );
        let id = a["id"].as_str().unwrap().to_owned();
        let (status, body) = post(&format!("/api/v1/announcements/{id}/publish"), json!({}));
        assert_eq!(status, 200, "{body}");
        id
    };
    publish("Exam moved to hall C", "urgent", json!({"course_ids": [course_id]}), Some(expires.to_rfc3339()));
    publish("Library open late", "normal", json!({"everyone": true}), None);
    publish("Elsewhere only", "urgent", json!({"course_ids": [uuid::Uuid::new_v4().to_string()]}), None);
    wait_for("the announcements snapshot on the node", Duration::from_secs(60), || {
        let status = http(&lan, "GET", "/api/status", None, None).1;
        (status["snapshots"]["announcements"].as_u64().is_some_and(|v| v > 0)
            && status["snapshots"]["roster"].as_u64().is_some_and(|v| v > 1))
        .then_some(())
    });
    // The urgent fan-out went to the notification service's topic once the worker relayed it.
    wait_for("the fan-out", Duration::from_secs(30), || {
        let rt = tokio::runtime::Handle::current();
        let due: i64 = tokio::task::block_in_place(|| {
            rt.block_on(async {
                let c = dbs.announcement.pool.get().await.unwrap();
                let q = "SELECT count(*) FROM announcements WHERE fanout_due";
                c.query_one(q, &[]).await.unwrap().get::<_, i64>(0)
                    + c.query_one("SELECT count(*) FROM event_outbox", &[]).await.unwrap().get::<_, i64>(0)
            })
        });
        (due == 0).then_some(())
    });

    // The cloud goes away.
    assert!(downlink.stop(), "the downlink stops cleanly");
    assert!(worker.stop(), "the worker stops cleanly");
    assert!(api_proc.stop(), "the API stops cleanly");
    let Stack { broker, dbs, .. } = stack;
    drop(broker);

    let b = Browser::start(Screen::Desktop { width: 1280, height: 900 }).await;
    let base = format!("http://{lan}");
    b.goto(&format!("{base}/login")).await;
    b.fill("input[name=user_id]", &staff_number).await;
    b.fill("input[name=pin]", "582047").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    let text = b.text().await;
    assert!(text.contains("Signed in as Grace Hopper"), "{text}");
    assert!(text.contains("Urgent: Exam moved to hall C"), "the urgent one, prominently: {text}");
    assert_eq!(b.count("section.urgent[role=alert]").await, 1);
    assert!(text.contains("Library open late"), "{text}");
    assert!(!text.contains("Elsewhere only"), "{text}");
    let urgent_first = text.find("Exam moved to hall C").unwrap() < text.find("Library open late").unwrap();
    assert!(urgent_first, "{text}");

    // Past its expiry (node clock), it is gone; the other stays. Still no cloud.
    let wait = (expires - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1);
    tokio::time::sleep(wait).await;
    b.goto(&base).await;
    let text = b.text().await;
    assert!(!text.contains("Exam moved to hall C"), "expired on the node: {text}");
    assert_eq!(b.count("section.urgent").await, 0);
    assert!(text.contains("Library open late"), "{text}");

    assert!(node.proc.stop(), "the node stops cleanly");
    dbs.drop_all().await;
}
