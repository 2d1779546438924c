//! The announcement service against real PostgreSQL and Kafka: who sees what (every target
//! kind), faculty's limits, exact read counts under concurrency, people leaving audiences, and
//! scheduled publication by two worker processes of which one is killed.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::Method;
use chrono::Utc;
use nimbus_cloud::announcement::audience::Directory;
use nimbus_cloud::announcement::targets::Targets;
use nimbus_cloud::http::Caller;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::TestDb;
use crate::common::e2e::{Proc, cloud, migrated, sigkill, wait_for};
use crate::common::ingest::KafkaMark;
use crate::common::services_api::{Services, caller};

/// A caller with the announcement permissions the migration grants their role.
fn person(user_id: &str, role: &str) -> Caller {
    let mut c = caller(user_id, role);
    match role {
        "admin" => c.permissions.extend(["announcement:create".to_owned(), "announcement:manage".to_owned()]),
        "faculty" => {
            c.permissions.insert("announcement:create".to_owned());
        }
        _ => {}
    }
    c
}

/// A small campus in the course, timetable and user databases of `s`.
struct Campus {
    d1: String,
    d2: String,
    p1: String,
    p2: String,
    c1: String,
    c2: String,
    c3: String,
    room1: String,
    /// `(user id, role)` of everyone.
    people: Vec<(String, &'static str)>,
}

impl Campus {
    fn id(&self, name: &str) -> String {
        let i = ["s1", "s2", "s3", "s4", "f1", "f2", "a1"].iter().position(|n| *n == name).unwrap();
        self.people[i].0.clone()
    }
}

async fn one(
    c: &deadpool_postgres::Object,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> String {
    c.query_one(sql, params).await.unwrap().get::<_, Uuid>(0).to_string()
}

/// Departments D1 (program P1, courses C1 sem 1 and C2 sem 3) and D2 (program P2, course C3
/// sem 3). Students s1 (P1, C1), s2 (P1, C2), s3 (P2, C3), s4 (P1, nothing); faculty f1 (D1,
/// teaches C1), f2 (D2, teaches C3); admin a1. C1 is timetabled in room1, C3 in room2.
async fn campus(s: &Services) -> Campus {
    let users = s.state.users.get().await.unwrap();
    let mut people = Vec::new();
    for (name, role) in [
        ("s1", "student"),
        ("s2", "student"),
        ("s3", "student"),
        ("s4", "student"),
        ("f1", "faculty"),
        ("f2", "faculty"),
        ("a1", "admin"),
    ] {
        let email = format!("{name}-{}@campus.test", Uuid::new_v4().simple());
        let id = one(
            &users,
            "INSERT INTO users (email, password_hash, role_id) SELECT $1, 'x', id FROM roles WHERE name = $2 RETURNING id",
            &[&email, &role],
        )
        .await;
        people.push((id, role));
    }
    let c = s.state.course.get().await.unwrap();
    let tag = Uuid::new_v4().simple().to_string();
    let d1 =
        one(&c, "INSERT INTO departments (code, name) VALUES ($1, 'D1') RETURNING id", &[&format!("d1{tag}")]).await;
    let d2 =
        one(&c, "INSERT INTO departments (code, name) VALUES ($1, 'D2') RETURNING id", &[&format!("d2{tag}")]).await;
    let program = |d: String, code: String| {
        let c = &c;
        async move {
            one(
                c,
                "INSERT INTO programs (department_id, code, name) VALUES ($1::text::uuid, $2, 'P') RETURNING id",
                &[&d, &code],
            )
            .await
        }
    };
    let p1 = program(d1.clone(), format!("p1{tag}")).await;
    let p2 = program(d2.clone(), format!("p2{tag}")).await;
    let mut courses = Vec::new();
    for (n, (d, p, sem)) in [(&d1, &p1, 1), (&d1, &p1, 3), (&d2, &p2, 3)].into_iter().enumerate() {
        let code = format!("c{n}{tag}");
        let subject = one(
            &c,
            "INSERT INTO subjects (department_id, code, name) VALUES ($1::text::uuid, $2, 'S') RETURNING id",
            &[d, &code],
        )
        .await;
        courses.push(
            one(
                &c,
                "INSERT INTO courses (course_code, course_name, subject_id, department_id, program_id, semester,
                                      academic_year, max_students, created_by)
                 VALUES ($1, 'Course', $2::text::uuid, $3::text::uuid, $4::text::uuid, $5, 2026, 500, 'admin') RETURNING id",
                &[&code, &subject, d, p, &sem],
            )
            .await,
        );
    }
    let campus = Campus {
        d1: d1.clone(),
        d2: d2.clone(),
        p1: p1.clone(),
        p2: p2.clone(),
        c1: courses[0].clone(),
        c2: courses[1].clone(),
        c3: courses[2].clone(),
        room1: format!("R1-{tag}"),
        people,
    };
    for (name, program) in [("s1", &p1), ("s2", &p1), ("s3", &p2), ("s4", &p1)] {
        c.execute("INSERT INTO students (user_id, program_id) VALUES ($1, $2)", &[&campus.id(name), program])
            .await
            .unwrap();
    }
    for (name, d) in [("f1", &d1), ("f2", &d2)] {
        c.execute("INSERT INTO faculties (user_id, department_id) VALUES ($1, $2)", &[&campus.id(name), d])
            .await
            .unwrap();
    }
    for (name, course) in [("s1", &campus.c1), ("s2", &campus.c2), ("s3", &campus.c3)] {
        enroll(&c, course, &campus.id(name)).await;
    }
    for (name, course) in [("f1", &campus.c1), ("f2", &campus.c3)] {
        c.execute(
            "INSERT INTO faculty_courses (course_id, faculty_id, assigned_by) VALUES ($1::text::uuid, $2, 'admin')",
            &[course, &campus.id(name)],
        )
        .await
        .unwrap();
    }
    let t = s.state.timetable.get().await.unwrap();
    let timetable = one(
        &t,
        "INSERT INTO timetables (name, semester_id, department_id, status, created_by)
         VALUES ('T', 'sem', 'd', 'published', 'admin') RETURNING id",
        &[],
    )
    .await;
    for (room, course, faculty) in [(&campus.room1, &campus.c1, "f1"), (&format!("R2-{tag}"), &campus.c3, "f2")] {
        let room_id = one(
            &t,
            "INSERT INTO rooms (room_number, building, capacity, room_type) VALUES ($1, 'B', 40, 'lecture') RETURNING id",
            &[room],
        )
        .await;
        t.execute(
            "INSERT INTO timetable_entries (timetable_id, course_id, course_name, faculty_id, room_id, day_of_week,
                                            start_time, end_time, created_by)
             VALUES ($1::text::uuid, $2, 'Course', $3, $4::text::uuid, 1, '09:00', '10:00', 'admin')",
            &[&timetable, course, &campus.id(faculty), &room_id],
        )
        .await
        .unwrap();
    }
    campus
}

async fn enroll(c: &deadpool_postgres::Object, course: &str, student: &str) {
    c.execute(
        "INSERT INTO course_enrollments (course_id, student_id, status, enrolled_by)
         VALUES ($1::text::uuid, $2, 'enrolled', 'admin')",
        &[&course, &student],
    )
    .await
    .unwrap();
}

/// Creates and publishes an announcement as `who`; returns its id.
async fn announce(s: &Services, who: &Caller, title: &str, targets: Value) -> String {
    let api = s.as_caller(who);
    let a = api
        .call(
            Method::POST,
            "/api/v1/announcements",
            Some(json!({ "title": title, "content": "text", "targets": targets })),
        )
        .await;
    assert_eq!(a.status, 201, "{title}: {}", a.json);
    let id = a.json["id"].as_str().unwrap().to_owned();
    let p = api.call(Method::POST, &format!("/api/v1/announcements/{id}/publish"), None).await;
    assert_eq!(p.status, 200, "{title}: {}", p.json);
    id
}

async fn titles_for(s: &Services, who: &Caller) -> BTreeSet<String> {
    let a = s.as_caller(who).call(Method::GET, "/api/v1/me/announcements?limit=200", None).await;
    assert_eq!(a.status, 200, "{}", a.json);
    a.json["items"].as_array().unwrap().iter().map(|i| i["title"].as_str().unwrap().to_owned()).collect()
}

fn directory(s: &Services) -> Directory {
    Directory { users: s.state.users.clone(), courses: s.state.course.clone(), timetable: s.state.timetable.clone() }
}

#[tokio::test]
async fn each_person_sees_exactly_the_announcements_whose_targets_reach_them() {
    let s = Services::create().await;
    let campus = campus(&s).await;
    let admin = person(&campus.id("a1"), "admin");
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("everyone", json!({ "everyone": true }), &["s1", "s2", "s3", "s4", "f1", "f2", "a1"]),
        ("faculty", json!({ "roles": ["faculty"] }), &["f1", "f2"]),
        ("department D1", json!({ "department_ids": [campus.d1] }), &["s1", "s2", "s4", "f1"]),
        ("program P2", json!({ "program_ids": [campus.p2] }), &["s3"]),
        ("semester 3", json!({ "semesters": [3] }), &["s2", "s3"]),
        ("course C1", json!({ "course_ids": [campus.c1] }), &["s1", "f1"]),
        ("course C2 or C3", json!({ "course_ids": [campus.c2, campus.c3] }), &["s2", "s3", "f2"]),
        ("a group", json!({ "group_ids": ["study-group-1"] }), &[]),
        ("s4 by name", json!({ "user_ids": [campus.id("s4")] }), &["s4"]),
        ("room 1", json!({ "room_ids": [campus.room1] }), &["s1", "f1"]),
        (
            "D1 students and f2",
            json!({ "department_ids": [campus.d1], "roles": ["student"], "user_ids": [campus.id("f2")] }),
            &["s1", "s2", "s4", "f2"],
        ),
        ("P1 in semester 1", json!({ "program_ids": [campus.p1], "semesters": [1] }), &["s1"]),
        ("D2 faculty", json!({ "department_ids": [campus.d2], "roles": ["faculty"] }), &["f2"]),
    ];
    let mut ids = Vec::new();
    for (title, targets, _) in &cases {
        ids.push(announce(&s, &admin, title, targets.clone()).await);
    }
    // Neither a draft nor an expired announcement reaches anyone.
    let draft = s
        .as_caller(&admin)
        .call(
            Method::POST,
            "/api/v1/announcements",
            Some(json!({ "title": "draft", "content": "x", "targets": { "everyone": true } })),
        )
        .await;
    assert_eq!(draft.status, 201);
    let expired = announce(&s, &admin, "expired", json!({ "everyone": true })).await;
    s.state
        .announcement
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE announcements SET expires_at = now() - interval '1 second' WHERE id = $1::text::uuid",
            &[&expired],
        )
        .await
        .unwrap();

    let d = directory(&s);
    let db = s.state.announcement.get().await.unwrap();
    for name in ["s1", "s2", "s3", "s4", "f1", "f2", "a1"] {
        let role = campus.people.iter().find(|p| p.0 == campus.id(name)).unwrap().1;
        let expected: BTreeSet<String> = cases.iter().filter(|c| c.2.contains(&name)).map(|c| c.0.to_owned()).collect();
        assert_eq!(titles_for(&s, &person(&campus.id(name), role)).await, expected, "what {name} sees");
    }
    // The fan-out's audience follows the same rule.
    for ((title, targets, reached), id) in cases.iter().zip(&ids) {
        let mut t: Targets = serde_json::from_value(targets.clone()).unwrap();
        t.normalise();
        let audience: BTreeSet<String> = d.audience(&**db, &t).await.unwrap().into_iter().collect();
        let expected: BTreeSet<String> = reached.iter().map(|n| campus.id(n)).collect();
        assert_eq!(audience, expected, "the audience of {title} ({id})");
    }
    s.drop_now().await;
}

#[tokio::test]
async fn faculty_announce_only_to_courses_they_teach_and_manage_only_their_own() {
    let s = Services::create().await;
    let campus = campus(&s).await;
    let f1 = person(&campus.id("f1"), "faculty");
    let admin = person(&campus.id("a1"), "admin");
    let draft = |targets: Value| json!({ "title": "Quiz on Friday", "content": "Chapters 1-3", "priority": "high", "targets": targets });
    let api = s.as_caller(&f1);
    let own = api.call(Method::POST, "/api/v1/announcements", Some(draft(json!({ "course_ids": [campus.c1] })))).await;
    assert_eq!(own.status, 201, "{}", own.json);
    assert_eq!(own.json["status"], "draft");
    assert_eq!(own.json["target_audience"], "courses");
    let narrowed = api
        .call(
            Method::POST,
            "/api/v1/announcements",
            Some(draft(json!({ "course_ids": [campus.c1], "roles": ["student"] }))),
        )
        .await;
    assert_eq!(narrowed.status, 201, "{}", narrowed.json);
    for (why, targets) in [
        ("a course of another", json!({ "course_ids": [campus.c3] })),
        ("one taught and one not", json!({ "course_ids": [campus.c1, campus.c3] })),
        ("everyone", json!({ "everyone": true })),
        ("a department", json!({ "department_ids": [campus.d1] })),
        ("a person", json!({ "user_ids": [campus.id("s3")] })),
    ] {
        let a = api.call(Method::POST, "/api/v1/announcements", Some(draft(targets))).await;
        assert_eq!(a.status, 403, "faculty announcing to {why}: {}", a.json);
        assert_eq!(a.json["code"], "FORBIDDEN");
    }
    let theirs =
        s.as_caller(&admin).call(Method::POST, "/api/v1/announcements", Some(draft(json!({ "everyone": true })))).await;
    let theirs = theirs.json["id"].as_str().unwrap().to_owned();
    for (method, path) in [
        (Method::GET, format!("/api/v1/announcements/{theirs}")),
        (Method::POST, format!("/api/v1/announcements/{theirs}/publish")),
        (Method::DELETE, format!("/api/v1/announcements/{theirs}")),
        (Method::GET, format!("/api/v1/announcements/{theirs}/reads")),
    ] {
        let a = api.call(method.clone(), &path, None).await;
        assert_eq!(a.status, 404, "{method} {path} by another author: {}", a.json);
    }
    let listed = api.call(Method::GET, "/api/v1/announcements", None).await;
    assert_eq!(listed.json["total"], 2, "faculty list their own only: {}", listed.json);
    let all = s.as_caller(&admin).call(Method::GET, "/api/v1/announcements?status=draft", None).await;
    assert_eq!(all.json["total"], 3, "{}", all.json);
    // Bad input is named field by field.
    let bad = api
        .call(
            Method::POST,
            "/api/v1/announcements",
            Some(json!({ "title": " ", "content": "x", "priority": "loud", "expires_at": "2020-01-01T00:00:00Z", "targets": {} })),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.json);
    let fields: BTreeSet<&str> =
        bad.json["details"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, BTreeSet::from(["title", "priority"]), "{}", bad.json);
    // Fields valid on their own that break a rule together (no target, an expiry gone): 422.
    let rules = api
        .call(
            Method::POST,
            "/api/v1/announcements",
            Some(json!({ "title": "t", "content": "x", "expires_at": "2020-01-01T00:00:00Z", "targets": {} })),
        )
        .await;
    assert_eq!(rules.status, 422, "{}", rules.json);
    let fields: BTreeSet<&str> =
        rules.json["details"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, BTreeSet::from(["expires_at", "targets"]), "{}", rules.json);
    let unknown = api
        .call(
            Method::POST,
            "/api/v1/announcements",
            Some(json!({ "title": "t", "content": "c", "targets": { "planets": [1] } })),
        )
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.json);
    // The life cycle: edit, schedule, unpublish, delete; an expired one cannot change.
    let id = own.json["id"].as_str().unwrap();
    let edited = api
        .call(Method::PATCH, &format!("/api/v1/announcements/{id}"), Some(json!({ "title": "Quiz moved to Monday" })))
        .await;
    assert_eq!((edited.status, edited.json["title"].as_str()), (200, Some("Quiz moved to Monday")));
    let at = (Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let scheduled = api
        .call(Method::POST, &format!("/api/v1/announcements/{id}/schedule"), Some(json!({ "publish_at": at })))
        .await;
    assert_eq!((scheduled.status, scheduled.json["status"].as_str()), (200, Some("scheduled")), "{}", scheduled.json);
    let past = api
        .call(
            Method::POST,
            &format!("/api/v1/announcements/{id}/schedule"),
            Some(json!({ "publish_at": "2020-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(past.status, 422);
    let back = api.call(Method::POST, &format!("/api/v1/announcements/{id}/unpublish"), None).await;
    assert_eq!(back.json["status"], "draft");
    assert_eq!(api.call(Method::POST, &format!("/api/v1/announcements/{id}/unpublish"), None).await.status, 409);
    assert_eq!(api.call(Method::DELETE, &format!("/api/v1/announcements/{id}"), None).await.status, 204);
    assert_eq!(api.call(Method::GET, &format!("/api/v1/announcements/{id}"), None).await.status, 404);
    // Every change went out through the outbox as the seed's events, in order.
    let types: Vec<String> = s
        .state
        .announcement
        .get()
        .await
        .unwrap()
        .query(
            "SELECT payload::json->>'event_type' FROM event_outbox WHERE payload::json->'payload'->>'announcement_id' = $1 ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        types,
        [
            "ANNOUNCEMENT_CREATED",
            "ANNOUNCEMENT_UPDATED",
            "ANNOUNCEMENT_SCHEDULED",
            "ANNOUNCEMENT_UPDATED",
            "ANNOUNCEMENT_DELETED"
        ]
    );
    s.drop_now().await;
}

#[tokio::test]
async fn read_counts_are_exact_under_concurrent_marks_and_follow_people_leaving_the_audience() {
    let s = Services::create().await;
    let campus = campus(&s).await;
    let admin = person(&campus.id("a1"), "admin");
    // 100 students more in C2 (s2 is already there, and no faculty teaches C2).
    let users = s.state.users.get().await.unwrap();
    let c = s.state.course.get().await.unwrap();
    let mut students = vec![campus.id("s2")];
    for n in 0..100 {
        let email = format!("many-{n}-{}@campus.test", Uuid::new_v4().simple());
        let id = one(
            &users,
            "INSERT INTO users (email, password_hash, role_id) SELECT $1, 'x', id FROM roles WHERE name = 'student' RETURNING id",
            &[&email],
        )
        .await;
        c.execute("INSERT INTO students (user_id, program_id) VALUES ($1, $2)", &[&id, &campus.p1]).await.unwrap();
        enroll(&c, &campus.c2, &id).await;
        students.push(id);
    }
    let id = announce(&s, &admin, "Lab closed", json!({ "course_ids": [campus.c2] })).await;
    let readers = &students[1..];
    // 200 marks in flight at once, each reader twice (on as many pool connections as there are).
    let path = format!("/api/v1/me/announcements/{id}/read");
    let clients: Vec<_> = (0..2).flat_map(|_| readers.iter().map(|u| s.as_caller(&person(u, "student")))).collect();
    let statuses = futures_util::future::join_all(
        clients.iter().map(|api| async { api.call(Method::POST, &path, None).await.status }),
    )
    .await;
    assert_eq!(statuses.len(), 200);
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    let stats = s.as_caller(&admin).call(Method::GET, &format!("/api/v1/announcements/{id}/reads"), None).await;
    assert_eq!(stats.status, 200, "{}", stats.json);
    assert_eq!(
        (stats.json["audience"].as_u64(), stats.json["read"].as_u64(), stats.json["unread"].as_u64()),
        (Some(101), Some(100), Some(1))
    );
    assert_eq!(stats.json["not_read"], json!([campus.id("s2")]), "who has not read the course announcement");
    let rows: i64 = s
        .state
        .announcement
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM announcement_reads", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 100, "one read per person");
    let mine = s.as_caller(&person(&readers[0], "student")).call(Method::GET, "/api/v1/me/announcements", None).await;
    assert_eq!((mine.json["items"][0]["read"].as_bool(), mine.json["total"].as_i64()), (Some(true), Some(1)));
    let unread = s
        .as_caller(&person(&readers[0], "student"))
        .call(Method::GET, "/api/v1/me/announcements?unread=true", None)
        .await;
    assert_eq!(unread.json["total"], 0);
    // Someone outside the audience cannot mark it.
    let outsider = s.as_caller(&person(&campus.id("s3"), "student"));
    assert_eq!(outsider.call(Method::POST, &format!("/api/v1/me/announcements/{id}/read"), None).await.status, 404);

    // A suspended reader and a student who dropped the course leave the counts.
    let db = s.state.announcement.get().await.unwrap();
    db.execute("INSERT INTO inactive_users (user_id, status) VALUES ($1, 'suspended')", &[&readers[0]]).await.unwrap();
    c.execute("UPDATE course_enrollments SET status = 'dropped' WHERE student_id = $1", &[&readers[1]]).await.unwrap();
    let stats = s.as_caller(&admin).call(Method::GET, &format!("/api/v1/announcements/{id}/reads"), None).await;
    assert_eq!(
        (stats.json["audience"].as_u64(), stats.json["read"].as_u64(), stats.json["unread"].as_u64()),
        (Some(99), Some(98), Some(1))
    );
    s.drop_now().await;
}

/// The worker role's environment over the given databases.
fn worker_env(
    ann: &TestDb,
    users: &TestDb,
    courses: &TestDb,
    timetable: &TestDb,
    group: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", crate::common::database_server()),
        ("NIMBUS_SERVICE_DB", ann.name.clone()),
        ("NIMBUS_WORKER_GROUP", group.to_owned()),
        ("USER_DATABASE_URL", users.url.clone()),
        ("COURSE_DATABASE_URL", courses.url.clone()),
        ("TIMETABLE_DATABASE_URL", timetable.url.clone()),
        ("KAFKA_BROKERS", crate::common::kafka_brokers()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_announcement_is_published_and_fanned_out_once_by_two_workers_one_of_them_killed() {
    use nimbus_cloud::announcement::store::{self, Author, Draft};
    let (ann, users, courses, timetable) = (
        migrated("announcement_service_db").await,
        migrated("user_service_db").await,
        migrated("course_service_db").await,
        migrated("timetable_service_db").await,
    );
    let u = users.pool.get().await.unwrap();
    let mut people = Vec::new();
    for n in 0..3 {
        let email = format!("sched-{n}-{}@campus.test", Uuid::new_v4().simple());
        people.push(
            one(&u, "INSERT INTO users (email, password_hash, role_id) SELECT $1, 'x', id FROM roles WHERE name = 'student' RETURNING id", &[&email])
                .await,
        );
    }
    let directory =
        Directory { users: users.pool.clone(), courses: courses.pool.clone(), timetable: timetable.pool.clone() };
    let admin = Author { user_id: Uuid::new_v4().to_string(), admin: true };
    let actor = nimbus_cloud::actor::Actor::user(&admin.user_id, "corr-sched");
    let mut db = ann.pool.get().await.unwrap();
    let draft = |title: &str| Draft {
        title: title.into(),
        content: "Evacuate building B.".into(),
        announcement_type: "emergency".into(),
        priority: "urgent".into(),
        expires_at: None,
        targets: Targets { user_ids: people.clone(), ..Targets::default() },
    };
    let soon = store::create(&mut db, &directory, &actor, &admin, draft("in five seconds")).await.unwrap();
    let later = store::create(&mut db, &directory, &actor, &admin, draft("while nothing runs")).await.unwrap();
    let events = KafkaMark::now("announcement.events").await;
    let commands = KafkaMark::now("notification.commands").await;
    let at = Utc::now() + chrono::TimeDelta::seconds(5);
    store::schedule(&mut db, &actor, &admin, soon.id, at).await.unwrap();
    store::schedule(&mut db, &actor, &admin, later.id, Utc::now() + chrono::TimeDelta::seconds(8)).await.unwrap();

    let group = format!("t-announcement-{}", Uuid::new_v4().simple());
    crate::common::prime_group(&crate::common::kafka_brokers(), &group, &[nimbus_core::topics::Topic::UserEvents])
        .await;
    let env = worker_env(&ann, &users, &courses, &timetable, &group);
    let start = || Proc(cloud(&["worker", "--service", "announcement"], &env).spawn().unwrap());
    let (mut a, b) = (start(), start());
    std::thread::sleep(Duration::from_secs(2));
    sigkill(&mut a);
    let status = |id: Uuid| {
        let pool = ann.pool.clone();
        move || {
            let rt = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| {
                rt.block_on(async {
                    let c = pool.get().await.unwrap();
                    c.query_one("SELECT status, published_at FROM announcements WHERE id = $1", &[&id])
                        .await
                        .map(|r| (r.get::<_, String>(0), r.get::<_, Option<chrono::DateTime<Utc>>>(1)))
                        .unwrap()
                })
            })
        }
    };
    let published_at = wait_for("the scheduled publication", Duration::from_secs(30), || {
        let (s, at) = status(soon.id)();
        (s == "published").then_some(at)
    })
    .unwrap();
    assert!(
        published_at >= at && published_at < at + chrono::TimeDelta::seconds(4),
        "published at {published_at}, due {at}"
    );
    // Every process stops before the second one is due; a new one publishes it on start.
    assert!(b.stop());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(status(later.id)().0, "scheduled");
    let c = start();
    wait_for("the overdue publication", Duration::from_secs(30), || {
        (status(later.id)().0 == "published").then_some(())
    });
    wait_for("both fan-outs", Duration::from_secs(30), || {
        let rt = tokio::runtime::Handle::current();
        let pending: i64 = tokio::task::block_in_place(|| {
            rt.block_on(async {
                let c = ann.pool.get().await.unwrap();
                c.query_one("SELECT count(*) FROM announcements WHERE fanout_due OR status <> 'published'", &[])
                    .await
                    .unwrap()
                    .get(0)
            })
        });
        (pending == 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3)); // the relay's last round
    assert!(c.stop());

    for (announcement, title) in [(soon.id, "in five seconds"), (later.id, "while nothing runs")] {
        let key = announcement.to_string();
        let published: Vec<_> = events
            .read()
            .await
            .into_iter()
            .filter(|r| r.key.as_deref() == Some(&key) && r.json["event_type"] == "ANNOUNCEMENT_PUBLISHED")
            .collect();
        assert_eq!(published.len(), 1, "{title}: one ANNOUNCEMENT_PUBLISHED");
        assert_eq!(published[0].json["payload"]["priority"], "urgent");
        let prefix = format!("announcement:{announcement}:");
        let bulks: Vec<_> = commands
            .read()
            .await
            .into_iter()
            .filter(|r| r.json["payload"]["batch_id"].as_str().is_some_and(|b| b.starts_with(&prefix)))
            .collect();
        assert_eq!(bulks.len(), 1, "{title}: one fan-out");
        let named: BTreeSet<&str> =
            bulks[0].json["payload"]["user_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(named, people.iter().map(String::as_str).collect(), "{title}: to its audience");
        assert_eq!(bulks[0].json["payload"]["channels"], json!(["push", "email"]));
    }
    for db in [ann, users, courses, timetable] {
        db.drop_now().await;
    }
}

#[tokio::test]
async fn the_worker_follows_user_events_expires_once_and_tells_a_high_announcements_audience_in_app() {
    use nimbus_cloud::announcement::jobs;
    use nimbus_cloud::announcement::store::{self, Author, Draft};
    use nimbus_core::event::Envelope;
    use nimbus_core::event::user::{UserEvent, UserStatusChangedPayload};
    let (ann, users, courses, timetable) = (
        migrated("announcement_service_db").await,
        migrated("user_service_db").await,
        migrated("course_service_db").await,
        migrated("timetable_service_db").await,
    );
    let brokers = crate::common::kafka_brokers();
    nimbus_cloud::kafka::ensure_topics(&brokers, nimbus_core::topics::Environment::Development).await.unwrap();
    let group = format!("t-announcement-{}", Uuid::new_v4().simple());
    crate::common::prime_group(&brokers, &group, &[nimbus_core::topics::Topic::UserEvents]).await;
    let mut settings = nimbus_cloud::worker::WorkerSettings::new(&brokers, ann.url.clone());
    settings.group_id = Some(group);
    settings.announcement.users_url = users.url.clone();
    settings.announcement.courses_url = courses.url.clone();
    settings.announcement.timetable_url = timetable.url.clone();
    settings.announcement.interval = Duration::from_secs(3600); // the jobs are driven by hand below
    let shutdown = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(nimbus_cloud::worker::run("announcement", settings, shutdown.clone()));

    let u = users.pool.get().await.unwrap();
    let mut people = Vec::new();
    for n in 0..3 {
        let email = format!("high-{n}-{}@campus.test", Uuid::new_v4().simple());
        people.push(
            one(&u, "INSERT INTO users (email, password_hash, role_id) SELECT $1, 'x', id FROM roles WHERE name = 'student' RETURNING id", &[&email])
                .await,
        );
    }
    // The user service suspends one of them, and suspends and reactivates another.
    let producer = nimbus_cloud::kafka::at_least_once_producer(&brokers).unwrap();
    let status = |user: &str, status: &str| {
        Envelope::new(
            "user-service",
            match status {
                "active" => UserEvent::UserActivated,
                _ => UserEvent::UserSuspended,
            }(UserStatusChangedPayload {
                user_id: user.to_owned(),
                status: status.to_owned(),
                changed_by: "admin".into(),
                changed_at: Utc::now(),
                ..UserStatusChangedPayload::default()
            }),
        )
    };
    for e in [status(&people[0], "suspended"), status(&people[1], "suspended"), status(&people[1], "active")] {
        producer
            .send(
                rdkafka::producer::FutureRecord::to("user.events").key(&e.partition_key()).payload(&e.to_json()),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
    let pool = ann.pool.clone();
    let inactive = || {
        let pool = pool.clone();
        async move {
            let c = pool.get().await.unwrap();
            let rows = c.query("SELECT user_id FROM inactive_users", &[]).await.unwrap();
            rows.iter().map(|r| r.get::<_, String>(0)).collect::<BTreeSet<String>>()
        }
    };
    let applied: i64 = 'wait: {
        for _ in 0..240 {
            let c = pool.get().await.unwrap();
            let n: i64 = c.query_one("SELECT count(*) FROM processed_events", &[]).await.unwrap().get(0);
            if n >= 3 {
                break 'wait n;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the worker did not apply the three user events");
    };
    assert_eq!(applied, 3);
    assert_eq!(inactive().await, BTreeSet::from([people[0].clone()]), "suspended out, reactivated back in");

    // A high announcement to the three: the fan-out names the two active ones, in-app, once.
    let directory =
        Directory { users: users.pool.clone(), courses: courses.pool.clone(), timetable: timetable.pool.clone() };
    let admin = Author { user_id: Uuid::new_v4().to_string(), admin: true };
    let actor = nimbus_cloud::actor::Actor::user(&admin.user_id, "corr-high");
    let mut db = ann.pool.get().await.unwrap();
    let draft = Draft {
        title: "Timetable change".into(),
        content: "Thursday's lab moves to Friday.".into(),
        announcement_type: "academic".into(),
        priority: "high".into(),
        expires_at: Some(Utc::now() + chrono::TimeDelta::hours(1)),
        targets: Targets { user_ids: people.clone(), ..Targets::default() },
    };
    let events = KafkaMark::now("announcement.events").await;
    let commands = KafkaMark::now("notification.commands").await;
    let a = store::create(&mut db, &directory, &actor, &admin, draft).await.unwrap();
    store::publish(&mut db, &actor, &admin, a.id).await.unwrap();
    assert!(jobs::fan_out_one(&ann.pool, &directory).await.unwrap());
    assert!(!jobs::fan_out_one(&ann.pool, &directory).await.unwrap(), "once per publication");

    // Expiry: once due, exactly one ANNOUNCEMENT_EXPIRED.
    db.execute("UPDATE announcements SET expires_at = now() - interval '1 second' WHERE id = $1", &[&a.id])
        .await
        .unwrap();
    assert_eq!(jobs::expire_due(&ann.pool).await.unwrap(), 1);
    assert_eq!(jobs::expire_due(&ann.pool).await.unwrap(), 0, "expired once");
    assert_eq!(store::load(&**db, a.id).await.unwrap().unwrap().status, "expired");

    // The worker's relay sends everything; then Kafka holds what was decided.
    'relayed: {
        for _ in 0..120 {
            let left: i64 = db.query_one("SELECT count(*) FROM event_outbox", &[]).await.unwrap().get(0);
            if left == 0 {
                break 'relayed;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the outbox was not relayed");
    }
    let prefix = format!("announcement:{}:", a.id);
    let bulks: Vec<_> = commands
        .read()
        .await
        .into_iter()
        .filter(|r| r.json["payload"]["batch_id"].as_str().is_some_and(|b| b.starts_with(&prefix)))
        .collect();
    assert_eq!(bulks.len(), 1, "one fan-out");
    let named: BTreeSet<&str> =
        bulks[0].json["payload"]["user_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(named, BTreeSet::from([people[1].as_str(), people[2].as_str()]), "the active ones");
    assert_eq!(bulks[0].json["payload"]["channels"], json!(["in_app"]));
    let key = a.id.to_string();
    let types: Vec<String> = events
        .read()
        .await
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(key.as_str()))
        .map(|r| r.json["event_type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(types, ["ANNOUNCEMENT_CREATED", "ANNOUNCEMENT_PUBLISHED", "ANNOUNCEMENT_EXPIRED"]);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), worker).await.unwrap().unwrap().unwrap();
    for db in [ann, users, courses, timetable] {
        db.drop_now().await;
    }
}

#[tokio::test]
async fn bad_input_gets_app_errors_and_markup_stays_inert_text() {
    let s = Services::create().await;
    let campus = campus(&s).await;
    let admin = s.as_caller(&person(&campus.id("a1"), "admin"));
    let post = |body: Value| {
        let admin = &admin;
        async move { admin.call(Method::POST, "/api/v1/announcements", Some(body)).await }
    };
    let everyone = json!({ "everyone": true });
    for (why, body, status) in [
        ("targets of the wrong type", json!({ "title": "t", "content": "c", "targets": "everyone" }), 400),
        ("no targets at all", json!({ "title": "t", "content": "c" }), 400),
        ("a title too long", json!({ "title": "x".repeat(201), "content": "c", "targets": everyone }), 400),
        ("content too long", json!({ "title": "t", "content": "x".repeat(10_001), "targets": everyone }), 400),
        ("an unknown field", json!({ "title": "t", "content": "c", "targets": everyone, "pinned": true }), 400),
        (
            "a bad type word",
            json!({ "title": "t", "content": "c", "announcement_type": "DROP TABLE", "targets": everyone }),
            400,
        ),
        ("a semester out of range", json!({ "title": "t", "content": "c", "targets": { "semesters": [21] } }), 400),
        (
            "an expiry that is not a time",
            json!({ "title": "t", "content": "c", "expires_at": "tomorrow", "targets": everyone }),
            400,
        ),
    ] {
        let a = post(body).await;
        assert_eq!(a.status, status, "{why}: {}", a.json);
        assert_eq!(a.json["code"], "VALIDATION_ERROR", "{why}: {}", a.json);
    }
    for (method, path, status) in [
        (Method::GET, "/api/v1/announcements/not-a-uuid".to_owned(), 400),
        (Method::POST, format!("/api/v1/announcements/{}/publish", Uuid::new_v4()), 404),
        (Method::GET, "/api/v1/announcements?limit=0".to_owned(), 400),
        (Method::GET, "/api/v1/announcements?status=archived".to_owned(), 400),
        (Method::GET, "/api/v1/announcements?sort=password".to_owned(), 400),
        (Method::GET, "/api/v1/me/announcements?offset=-1".to_owned(), 400),
        (Method::POST, format!("/api/v1/me/announcements/{}/read", Uuid::new_v4()), 404),
    ] {
        let a = admin.call(method.clone(), &path, None).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.json);
        assert!(a.json["code"].is_string() && a.json["message"].is_string(), "{method} {path}: an AppError");
    }
    let nothing: i64 = s
        .state
        .announcement
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM announcements", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(nothing, 0, "a refused request stores nothing");
    // Markup is text: stored and returned as written, for the reader to escape.
    let markup = "<script>alert('x')</script> & <b>bold</b>";
    let id = announce(&s, &person(&campus.id("a1"), "admin"), markup, everyone.clone()).await;
    let mine =
        s.as_caller(&person(&campus.id("s1"), "student")).call(Method::GET, "/api/v1/me/announcements", None).await;
    assert_eq!(mine.json["items"][0]["title"], markup);
    assert_eq!(mine.json["items"][0]["id"], id.as_str());
    assert!(mine.content_type.starts_with("application/json"));
    s.drop_now().await;
}
