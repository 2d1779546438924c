//! A faculty member created through the cloud's admin API signs in at a classroom node's page in
//! Chromium with the uplink down. Separate processes on real services: `nimbus-cloud api` (the
//! admin creates the faculty member, the course, its assignment and the room's timetable; the
//! faculty member sets a classroom PIN), `nimbus-cloud downlink` (the roster snapshot carries the
//! PIN's argon2 hash, staff number and e-mail), a private Mosquitto, and `nimbus-edge`. Then the
//! downlink, the API and the broker stop, and the faculty member signs in on the node with their
//! staff number (and later their e-mail) and opens the class's session.

use std::time::Duration;

use nimbus_edge::testing::{Browser, Screen};

use crate::common;
use crate::common::e2e::{Proc, Stack, cloud, course_running_now, faculty_with_pin, http, login, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faculty_member_created_in_the_cloud_signs_in_at_the_node_with_the_uplink_down() {
    let stack = Stack::prepare("cl", |_| Vec::new()).await;
    let api_proc = stack.start_api();
    let Stack { suffix, room, api, admin_email, admin_password, env, .. } = &stack;
    let (suffix, api) = (suffix.clone(), api.clone());
    let admin = login(&api, admin_email, admin_password);

    // The admin creates the faculty member (with the course service's profile); a course she
    // teaches runs now in the node's room; she sets her classroom PIN with her own account.
    let email = format!("Ada-{suffix}@Campus.Test");
    let (faculty_id, staff_number) = faculty_with_pin(&stack, &admin, &email, ("Ada", "Lovelace"), "402913").await;
    let course_id = course_running_now(&api, &admin, room, &suffix, "Analysis", &faculty_id);

    // The downlink and the node; the roster snapshot brings her credentials.
    let downlink = Proc(cloud(&["downlink"], env).spawn().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config = stack.node_config(dir.path(), "");
    let node_proc = common::e2e::start_simulated_node(&config);
    let lan = node_proc.http.clone();
    // The simulated node starts with the demo data (versions 1); the cloud's are newer.
    wait_for("the cloud's timetable and roster on the node", Duration::from_secs(60), || {
        let status = http(&lan, "GET", "/api/status", None, None).1;
        let newer = |kind: &str| status["snapshots"][kind].as_u64().is_some_and(|v| v > 1);
        (newer("roster") && newer("timetable") && status["current_entry"]["course_id"] == course_id.as_str())
            .then_some(())
    });

    // The cloud goes away.
    assert!(downlink.stop(), "the downlink stops cleanly");
    assert!(api_proc.stop(), "the API stops cleanly");
    let Stack { broker, dbs, .. } = stack;
    drop(broker);

    let b = Browser::start(Screen::Phone { width: 390, height: 844 }).await;
    let base = format!("http://{lan}");
    b.goto(&format!("{base}/login")).await;
    b.fill("input[name=user_id]", &staff_number).await;
    b.fill("input[name=pin]", "999999").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    let text = b.text().await;
    assert!(text.contains("Staff ID or PIN is incorrect."), "a wrong PIN is refused: {text}");
    b.fill("input[name=user_id]", &staff_number).await;
    b.fill("input[name=pin]", "402913").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    let text = b.text().await;
    assert!(text.contains(&format!("Signed in as Ada Lovelace ({faculty_id})")), "{text}");
    b.submit("form[action='/page/open'] button").await;
    let text = b.text().await;
    assert!(text.contains(&format!("Session opened for {course_id} Analysis.")), "{text}");
    b.submit("form[action='/logout'] button").await;

    // Her e-mail, in any case, works too.
    b.fill("input[name=user_id]", &email.to_uppercase()).await;
    b.fill("input[name=pin]", "402913").await;
    b.submit("form[action='/login'] button[type=submit]").await;
    assert!(b.text().await.contains("Signed in as Ada Lovelace"), "{}", b.text().await);

    assert!(node_proc.proc.stop(), "the node stops cleanly");
    dbs.drop_all().await;
}
