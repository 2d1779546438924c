//! The admin routes over the services against real PostgreSQL and Kafka: conflicts as 409 with
//! details, the course catalogue, attendance reports (JSON, CSV, faculty-scoped), node
//! registration with credentials, the unknown-card quarantine and DLQ replay to the original
//! topic. Authentication is the gateway's (tested in its own files); here a layer supplies the
//! caller, as the gateway does.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use axum::http::Method;
use chrono::Utc;
use nimbus_core::event::DeadLetterEvent;
use nimbus_core::topics::Topic;
use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common;
use crate::common::ingest::KafkaMark;
use crate::common::services_api::{Services, caller};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_booking_is_a_409_whose_details_name_the_entry_it_conflicts_with() {
    let s = Services::create().await;
    let admin = s.as_caller(&caller("admin-1", "admin"));
    let room = admin
        .call(
            Method::POST,
            "/api/v1/rooms",
            Some(json!({"room_number": "B-101", "building": "B", "capacity": 40, "room_type": "lecture"})),
        )
        .await;
    assert_eq!(room.status, 201, "{}", room.text);
    let tt = admin
        .call(
            Method::POST,
            "/api/v1/timetables",
            Some(json!({"name": "Fall", "semester_id": "s1", "department_id": "d1"})),
        )
        .await;
    assert_eq!(tt.status, 201, "{}", tt.text);
    let entry = |faculty: &str, course: &str| {
        json!({"timetable_id": tt.json["id"], "course_id": course, "course_name": course, "faculty_id": faculty,
               "room_id": room.json["id"], "day_of_week": 1, "start_time": "09:00:00", "end_time": "10:00:00"})
    };
    let first = admin.call(Method::POST, "/api/v1/timetable-entries", Some(entry("f1", "CS101"))).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let clash = admin.call(Method::POST, "/api/v1/timetable-entries", Some(entry("f2", "CS102"))).await;
    assert_eq!(clash.status, 409, "{}", clash.text);
    assert_eq!(clash.json["code"], "CONFLICT");
    assert!(clash.text.contains(first.json["id"].as_str().unwrap()), "details name the booked entry: {}", clash.text);

    let listed = admin.call(Method::GET, "/api/v1/timetable-entries?room_id=".to_owned().as_str(), None).await;
    assert_eq!(listed.status, 400, "an empty uuid filter is a validation error: {}", listed.text);
    let uri =
        format!("/api/v1/timetable-entries?timetable_id={}&sort=-start_time&limit=1", tt.json["id"].as_str().unwrap());
    let page = admin.call(Method::GET, &uri, None).await;
    assert_eq!(
        (page.status, page.json["total"].as_i64(), page.json["items"].as_array().map(Vec::len)),
        (200, Some(1), Some(1))
    );
    let bad_sort = admin.call(Method::GET, "/api/v1/rooms?sort=password", None).await;
    assert_eq!((bad_sort.status, bad_sort.json["code"].as_str()), (400, Some("VALIDATION_ERROR")));
    s.drop_now().await;
}

/// A department, program, subject and course through the API; returns the course id.
async fn course(admin: &common::services_api::Client, code: &str) -> String {
    let dept = admin.call(Method::POST, "/api/v1/departments", Some(json!({"code": code, "name": "Dept"}))).await;
    assert_eq!(dept.status, 201, "{}", dept.text);
    let d = dept.json["id"].clone();
    let prog = admin
        .call(Method::POST, "/api/v1/programs", Some(json!({"department_id": d, "code": code, "name": "P"})))
        .await;
    assert_eq!(prog.status, 201, "{}", prog.text);
    let subj = admin
        .call(
            Method::POST,
            "/api/v1/subjects",
            Some(json!({"department_id": d, "code": code, "name": "S", "credits": 4})),
        )
        .await;
    assert_eq!(subj.status, 201, "{}", subj.text);
    let c = admin
        .call(
            Method::POST,
            "/api/v1/courses",
            Some(
                json!({"course_code": code, "course_name": "Course", "subject_id": subj.json["id"], "department_id": d,
                        "program_id": prog.json["id"], "semester": 1, "academic_year": 2026, "max_students": 30}),
            ),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    c.json["id"].as_str().unwrap().to_owned()
}

async fn mark(s: &Services, course: &str, student: &str, date: &str, status: &str) {
    let c = s.state.attendance.get().await.unwrap();
    c.execute(
        "INSERT INTO attendance_records (attendance_id, student_id, course_id, entry_id, class_date, status,
             marked_by, marked_at, status_at, event_id)
         VALUES ($1, $2, $3, 'e', $4::text::date, $5, 'f1', now(), now(), $6)",
        &[&format!("{course}-{date}"), &student, &course, &date, &status, &Uuid::new_v4()],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attendance_reports_count_per_student_export_csv_and_show_faculty_only_their_courses() {
    let s = Services::create().await;
    let admin = s.as_caller(&caller("admin-1", "admin"));
    let (mine, other) = (course(&admin, "CS201").await, course(&admin, "MA201").await);
    // Faculty profiles come from user.events (the course worker); here the row is written directly.
    let c = s.state.course.get().await.unwrap();
    c.execute("INSERT INTO faculties (user_id, name) VALUES ('fac-1', 'Dr One')", &[]).await.unwrap();
    let assigned = admin
        .call(Method::POST, &format!("/api/v1/courses/{mine}/faculty"), Some(json!({"faculty_id": "fac-1"})))
        .await;
    assert_eq!(assigned.status, 201, "{}", assigned.text);
    for (date, st) in
        [("2026-09-01", "present"), ("2026-09-02", "late"), ("2026-09-03", "absent"), ("2026-10-01", "present")]
    {
        mark(&s, &mine, "stu-1", date, st).await;
    }
    mark(&s, &mine, "=cmd|'/c calc'!A1", "2026-09-01", "present").await;
    mark(&s, &other, "stu-1", "2026-09-01", "absent").await;

    let range = "from=2026-09-01&to=2026-09-30";
    let report = admin.call(Method::GET, &format!("/api/v1/reports/attendance/courses/{mine}?{range}"), None).await;
    assert_eq!(report.status, 200, "{}", report.text);
    let rows = report.json["rows"].as_array().unwrap();
    let stu = rows.iter().find(|r| r["key"] == "stu-1").unwrap();
    assert_eq!((stu["present"].as_i64(), stu["late"].as_i64(), stu["absent"].as_i64()), (Some(1), Some(1), Some(1)));
    assert_eq!(stu["percentage"].as_f64(), Some(66.67), "October's class is outside the range");

    let csv =
        admin.call(Method::GET, &format!("/api/v1/reports/attendance/courses/{mine}?{range}&format=csv"), None).await;
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    assert!(csv.disposition.starts_with("attachment; filename=\"attendance-course-"), "{}", csv.disposition);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines[0], "student_id,present,late,absent,excused,total_classes,percentage");
    assert!(lines.contains(&"stu-1,1,1,1,0,3,66.67"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("'=cmd")), "a formula-looking id is defused: {lines:?}");
    let accept = admin
        .call_with(
            Method::GET,
            &format!("/api/v1/reports/attendance/students/stu-1?{range}"),
            None,
            &[("accept", "text/csv")],
        )
        .await;
    assert!(accept.text.starts_with("course_id,"), "Accept: text/csv is honoured: {}", accept.text);

    let faculty = s.as_caller(&caller("fac-1", "faculty"));
    let own = faculty.call(Method::GET, &format!("/api/v1/reports/attendance/courses/{mine}?{range}"), None).await;
    assert_eq!(own.status, 200, "{}", own.text);
    let foreign = faculty.call(Method::GET, &format!("/api/v1/reports/attendance/courses/{other}?{range}"), None).await;
    assert_eq!(foreign.status, 404, "another teacher's course is invisible: {}", foreign.text);
    let per_student =
        faculty.call(Method::GET, &format!("/api/v1/reports/attendance/students/stu-1?{range}"), None).await;
    let courses: Vec<&str> =
        per_student.json["rows"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(courses, [mine.as_str()], "faculty see the student only in their own courses");
    let daily =
        admin.call(Method::GET, &format!("/api/v1/reports/attendance/daily?{range}&course_id={mine}"), None).await;
    assert_eq!(daily.json["rows"].as_array().unwrap().len(), 3, "{}", daily.text);

    let backwards =
        admin.call(Method::GET, "/api/v1/reports/attendance/daily?from=2026-10-01&to=2026-09-01", None).await;
    assert_eq!((backwards.status, backwards.json["code"].as_str()), (422, Some("VALIDATION_ERROR")));
    assert_eq!(backwards.json["details"]["fields"][0]["field"], "from");
    let mine_as_student = s.as_caller(&caller("stu-1", "student"));
    let me = mine_as_student.call(Method::GET, &format!("/api/v1/me/attendance?{range}"), None).await;
    assert_eq!((me.status, me.json["rows"].as_array().map(Vec::len)), (200, Some(2)), "{}", me.text);
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_node_gets_a_password_only_its_hash_is_kept_and_reissuing_replaces_it() {
    let s = Services::create().await;
    let admin = s.as_caller(&caller("admin-1", "admin"));
    let reg =
        admin.call(Method::POST, "/api/v1/nodes", Some(json!({"node_id": "room-b101", "room_id": "B-101"}))).await;
    assert_eq!(reg.status, 201, "{}", reg.text);
    let password = reg.json["password"].as_str().unwrap().to_owned();
    let stored: String = s
        .state
        .registry
        .get()
        .await
        .unwrap()
        .query_one("SELECT credential_hash FROM nodes WHERE node_id = 'room-b101'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("$argon2id$") && !stored.contains(&password));
    let verify = |p: &str, h: &str| {
        argon2::Argon2::default().verify_password(p.as_bytes(), &PasswordHash::new(h).unwrap()).is_ok()
    };
    assert!(verify(&password, &stored));

    let again =
        admin.call(Method::POST, "/api/v1/nodes", Some(json!({"node_id": "room-b101", "room_id": "C-1"}))).await;
    assert_eq!(again.status, 409, "{}", again.text);
    let bad = admin.call(Method::POST, "/api/v1/nodes", Some(json!({"node_id": "../etc", "room_id": ""}))).await;
    assert_eq!(bad.status, 400);
    let fields: Vec<&str> =
        bad.json["details"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["node_id", "room_id"]);

    let reissued = admin.call(Method::POST, "/api/v1/nodes/room-b101/credentials", None).await;
    assert_eq!(reissued.status, 200, "{}", reissued.text);
    let stored2: String = s
        .state
        .registry
        .get()
        .await
        .unwrap()
        .query_one("SELECT credential_hash FROM nodes WHERE node_id = 'room-b101'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(verify(reissued.json["password"].as_str().unwrap(), &stored2) && !verify(&password, &stored2));

    let view = admin.call(Method::GET, "/api/v1/nodes/room-b101", None).await;
    assert_eq!((view.json["room_id"].as_str(), view.json["has_credential"].as_bool()), (Some("B-101"), Some(true)));
    assert!(view.json.get("credential_hash").is_none() && !view.text.contains("argon2"));
    let list = admin.call(Method::GET, "/api/v1/nodes?room_id=B-101", None).await;
    assert_eq!(list.json["total"], 1);
    assert_eq!(admin.call(Method::GET, "/api/v1/nodes/room-zzz", None).await.status, 404);
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_card_mapped_to_a_user_leaves_quarantine_and_cannot_be_mapped_twice() {
    let s = Services::create().await;
    let registry = s.state.registry.get().await.unwrap();
    registry.execute("INSERT INTO nodes (node_id, room_id) VALUES ('room-a', 'A-1')", &[]).await.unwrap();
    registry
        .execute(
            "INSERT INTO unknown_cards (card_uid, node_id, first_seen, last_seen, tap_count) VALUES ('04A1B2C3D4', 'room-a', now(), now(), 3)",
            &[],
        )
        .await
        .unwrap();
    let admin = s.as_caller(&caller("admin-1", "admin"));
    let q = admin.call(Method::GET, "/api/v1/cards/unknown?node_id=room-a", None).await;
    assert_eq!((q.json["total"].as_i64(), q.json["items"][0]["tap_count"].as_i64()), (Some(1), Some(3)), "{}", q.text);
    let node = admin.call(Method::GET, "/api/v1/nodes/room-a", None).await;
    assert_eq!(node.json["unknown_cards"], 1);

    let holder = json!({"user_id": "stu-9", "role": "student", "display_name": "<script>alert(1)</script>"});
    let mapped = admin.call(Method::POST, "/api/v1/cards/unknown/04a1b2c3d4/map", Some(holder.clone())).await;
    assert_eq!(mapped.status, 201, "{}", mapped.text);
    assert_eq!(mapped.json["display_name"], "<script>alert(1)</script>", "stored as text, never interpreted");
    assert_eq!(admin.call(Method::GET, "/api/v1/cards/unknown", None).await.json["total"], 0);
    let again = admin
        .call(
            Method::POST,
            "/api/v1/cards",
            Some(json!({"card_uid": "04A1B2C3D4", "user_id": "stu-7", "role": "student"})),
        )
        .await;
    assert_eq!((again.status, again.json["details"]["user_id"].as_str()), (409, Some("stu-9")));
    let not_quarantined = admin.call(Method::POST, "/api/v1/cards/unknown/DEADBEEF/map", Some(holder)).await;
    assert_eq!(not_quarantined.status, 404);
    let bad_role = admin
        .call(Method::POST, "/api/v1/cards", Some(json!({"card_uid": "DEADBEEF", "user_id": "x", "role": "admin"})))
        .await;
    assert_eq!((bad_role.status, bad_role.json["details"]["fields"][0]["field"].as_str()), (400, Some("role")));
    assert_eq!(admin.call(Method::DELETE, "/api/v1/cards/04A1B2C3D4", None).await.status, 204);
    assert_eq!(admin.call(Method::GET, "/api/v1/cards?user_id=stu-9", None).await.json["total"], 0);
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_inspected_and_replayed_to_its_original_topic_once_unless_forced() {
    let s = Services::create().await;
    let key = format!("replay-test-{}", Uuid::new_v4().simple());
    let original =
        json!({"event_id": Uuid::new_v4(), "event_type": "ATTENDANCE_MARKED", "payload": {"course_id": key}});
    let letter = DeadLetterEvent {
        original_topic: Topic::AttendanceEvents,
        original_event: original.clone(),
        original_key: key.clone(),
        original_timestamp: Utc::now(),
        failure_reason: "poison".into(),
        failure_count: 3,
        last_attempt_at: Utc::now(),
        consumer_group: "attendance-service-group".into(),
        service_name: "attendance-service".into(),
        stack_trace: "poison".into(),
    };
    let json_letter = letter.to_json();
    s.state
        .producer
        .send(
            FutureRecord::to("dlq.events").key(key.as_bytes()).payload(json_letter.as_bytes()),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    let admin = s.as_caller(&caller("admin-1", "admin"));
    let page = admin.call(Method::GET, &format!("/api/v1/dlq?original_key={key}"), None).await;
    assert_eq!((page.status, page.json["total"].as_i64()), (200, Some(1)), "{}", page.text);
    let item = &page.json["items"][0];
    assert_eq!((item["event_type"].as_str(), item["failure_count"].as_u64()), (Some("ATTENDANCE_MARKED"), Some(3)));
    let id = item["id"].as_str().unwrap().to_owned();
    let inspected = admin.call(Method::GET, &format!("/api/v1/dlq/{id}"), None).await;
    assert_eq!(inspected.json["letter"]["original_event"], original);

    let target = KafkaMark::now("attendance.events").await;
    let replayed = admin.call(Method::POST, &format!("/api/v1/dlq/{id}/replay"), None).await;
    assert_eq!((replayed.status, replayed.json["replayed"].as_u64()), (200, Some(1)), "{}", replayed.text);
    let arrived: Vec<Value> =
        target.read().await.into_iter().filter(|r| r.key.as_deref() == Some(key.as_str())).map(|r| r.json).collect();
    assert_eq!(arrived, vec![original], "the original event, with its key, on its original topic");

    let again = admin.call(Method::POST, &format!("/api/v1/dlq/replay?original_key={key}"), None).await;
    assert_eq!((again.json["replayed"].as_u64(), again.json["skipped"].as_u64()), (Some(0), Some(1)), "{}", again.text);
    let forced = admin.call(Method::POST, &format!("/api/v1/dlq/replay?original_key={key}&force=true"), None).await;
    assert_eq!(forced.json["replayed"].as_u64(), Some(1));
    let listed = admin.call(Method::GET, &format!("/api/v1/dlq?original_key={key}&replayed=true"), None).await;
    assert_eq!(listed.json["total"], 1);
    assert_eq!(admin.call(Method::GET, "/api/v1/dlq/0-999999999", None).await.status, 404);
    assert_eq!(admin.call(Method::GET, "/api/v1/dlq/not-an-id", None).await.status, 400);
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_may_read_the_catalogue_but_not_change_it_or_request_schedule_changes() {
    let s = Services::create().await;
    let student = s.as_caller(&caller("stu-1", "student"));
    assert_eq!(student.call(Method::GET, "/api/v1/courses", None).await.status, 200);
    let write = student.call(Method::POST, "/api/v1/departments", Some(json!({"code": "X", "name": "X"}))).await;
    assert_eq!((write.status, write.json["details"]["required_permission"].as_str()), (403, Some("course:write")));
    let ask = student
        .call(
            Method::POST,
            "/api/v1/schedule-change-requests",
            Some(json!({"entry_id": Uuid::new_v4(), "reason": "x"})),
        )
        .await;
    assert_eq!(ask.status, 403, "{}", ask.text);
    assert_eq!(student.call(Method::GET, "/api/v1/reports/attendance/daily", None).await.status, 403);
    assert_eq!(student.call(Method::GET, "/api/v1/dlq", None).await.status, 403);
    s.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_created_through_the_api_can_be_enrolled_assigned_and_given_a_card_in_the_very_next_request() {
    // The whole API, no worker: the course service has not heard `user.events` of anyone.
    let api = common::api::TestApi::start().await;
    let admin = api.admin_token().await;
    let post = |path: &'static str, body: Value| {
        let (api, admin) = (&api, admin.clone());
        async move { api.call(Method::POST, path, Some(&admin), Some(body)).await }
    };
    let tag = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let dept = post("/api/v1/departments", json!({"code": format!("D{tag}"), "name": "Dept"})).await.body;
    let prog = post("/api/v1/programs", json!({"department_id": dept["id"], "code": format!("P{tag}"), "name": "P"}))
        .await
        .body;
    let subj = post(
        "/api/v1/subjects",
        json!({"department_id": dept["id"], "code": format!("S{tag}"), "name": "S", "credits": 4}),
    )
    .await
    .body;
    let course = post(
        "/api/v1/courses",
        json!({"course_code": format!("C{tag}"), "course_name": "Course", "subject_id": subj["id"], "department_id": dept["id"],
               "program_id": prog["id"], "semester": 1, "academic_year": 2026, "max_students": 30}),
    )
    .await;
    assert_eq!(course.status, 201, "{}", course.body);
    let course_id = course.body["id"].as_str().unwrap().to_owned();

    // Create, then use at once: no sleep, no retry.
    let (student, _) = api.user(&admin, "student").await;
    let enrolled = post("/api/v1/enrollments", json!({"course_id": course_id, "student_id": student})).await;
    assert_eq!(enrolled.status, 201, "create-then-enroll: {}", enrolled.body);
    let (faculty, _) = api.user(&admin, "faculty").await;
    let path = format!("/api/v1/courses/{course_id}/faculty");
    let assigned = api
        .call(Method::POST, &path, Some(&admin), Some(json!({"faculty_id": faculty, "assignment_role": "primary"})))
        .await;
    assert_eq!(assigned.status, 201, "create-then-assign-faculty: {}", assigned.body);
    let (holder, _) = api.user(&admin, "student").await;
    let card = post(
        "/api/v1/cards",
        json!({"card_uid": "04AA11BB22", "user_id": holder, "role": "student", "display_name": "New"}),
    )
    .await;
    assert_eq!(card.status, 201, "create-then-map-card: {}", card.body);

    // Still refused: someone who does not exist, and a student where faculty is needed.
    let nobody = post("/api/v1/enrollments", json!({"course_id": course_id, "student_id": Uuid::new_v4()})).await;
    assert_eq!((nobody.status.as_u16(), nobody.body["code"].as_str()), (422, Some("VALIDATION_ERROR")));
    let wrong = api
        .call(Method::POST, &path, Some(&admin), Some(json!({"faculty_id": student, "assignment_role": "primary"})))
        .await;
    assert_eq!(wrong.status.as_u16(), 422, "{}", wrong.body);
    // A suspended student, suspended in the request before, is not enrolled.
    let (late, _) = api.user(&admin, "student").await;
    let suspended =
        api.call(Method::POST, &format!("/api/v1/users/{late}/suspend"), Some(&admin), Some(json!({}))).await;
    assert!(suspended.status.is_success(), "{}", suspended.body);
    let refused = post("/api/v1/enrollments", json!({"course_id": course_id, "student_id": late})).await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.body);
    api.finish().await;
}
