//! The timetable service's commands against a real PostgreSQL: double bookings rejected and
//! recorded (with their events in the outbox), concurrency, publishing, the room schedule,
//! validation and hostile text. Each test has its own database.

use chrono::NaiveTime;
use nimbus_cloud::actor::Actor;
use nimbus_cloud::error::Error;
use nimbus_cloud::listing::ListQuery;
use nimbus_cloud::timetable::entries::{self, EntryFilter, NewEntry};
use nimbus_cloud::timetable::rooms::{self, NewRoom, RoomFilter};
use nimbus_cloud::timetable::timetables::{self, NewTimetable};
use nimbus_cloud::timetable::{conflicts, room_schedule};
use nimbus_core::event::{AnyEvent, Message, TimetableEvent};
use nimbus_core::topics::Topic;
use uuid::Uuid;

use crate::common;

async fn service_db() -> common::TestDb {
    let db = common::TestDb::create().await;
    let m = nimbus_cloud::db::migrations_for("timetable_service_db").unwrap();
    nimbus_cloud::db::migrate(&db.pool, m).await.unwrap();
    db
}

fn admin() -> Actor {
    Actor::user("admin-1", "req-1")
}

fn t(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

async fn room(db: &common::TestDb, number: &str) -> Uuid {
    rooms::create_room(
        &db.pool,
        &admin(),
        NewRoom {
            room_number: number.into(),
            building: "Main".into(),
            capacity: 60,
            room_type: "lecture".into(),
            is_active: true,
        },
    )
    .await
    .unwrap()
    .id
}

async fn timetable(db: &common::TestDb) -> Uuid {
    timetables::create_timetable(
        &db.pool,
        &admin(),
        NewTimetable {
            name: "CSE sem 3".into(),
            semester_id: "sem-2025-1".into(),
            semester_name: "Spring 2025".into(),
            semester_number: Some(3),
            department_id: "dept-cse".into(),
            department_name: "Computer Science".into(),
            program_id: Some("prog-btech".into()),
            effective_from: None,
            effective_until: None,
        },
    )
    .await
    .unwrap()
    .id
}

fn entry(tt: Uuid, room: Uuid, course: &str, faculty: &str, day: i16, start: NaiveTime, end: NaiveTime) -> NewEntry {
    NewEntry {
        timetable_id: tt,
        course_id: course.into(),
        course_name: format!("Course {course}"),
        faculty_id: faculty.into(),
        room_id: room,
        time_slot_id: None,
        day_of_week: Some(day),
        start_time: Some(start),
        end_time: Some(end),
        effective_from: None,
        effective_until: None,
    }
}

/// Every event in the outbox of `db`, parsed with the seed contract.
async fn outbox_events(db: &common::TestDb) -> Vec<TimetableEvent> {
    let c = db.pool.get().await.unwrap();
    let rows = c.query("SELECT topic, payload FROM event_outbox ORDER BY id", &[]).await.unwrap();
    rows.iter()
        .map(|r| {
            assert_eq!(r.get::<_, &str>(0), "timetable.events");
            match Message::from_json(r.get(1), Some(Topic::TimetableEvents)).expect("outbox rows follow the seed") {
                Message::Event(e) => match *e {
                    AnyEvent::Timetable(env) => env.event,
                    other => panic!("not a timetable event: {other:?}"),
                },
                other => panic!("not an event: {other:?}"),
            }
        })
        .collect()
}

fn conflict_ids(err: &Error) -> Vec<String> {
    let Error::Conflict { details, .. } = err else { panic!("expected a conflict, got {err:?}") };
    details["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conflicting_entry_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_room_double_booking_is_rejected_and_recorded_with_its_event() {
    let db = service_db().await;
    let (r, tt) = (room(&db, "LH-101").await, timetable(&db).await);
    let first =
        entries::add_entry(&db.pool, &admin(), entry(tt, r, "c1", "fac-1", 1, t(9, 0), t(10, 0))).await.unwrap();
    let err =
        entries::add_entry(&db.pool, &admin(), entry(tt, r, "c2", "fac-2", 1, t(9, 30), t(10, 30))).await.unwrap_err();
    assert_eq!(conflict_ids(&err), [first.id.to_string()]);
    let Error::Conflict { details, .. } = &err else { unreachable!() };
    assert_eq!(details["conflicts"][0]["kind"], "room");
    assert_eq!(details["start_time"], "09:30:00");
    let rejected_id = details["entry_id"].as_str().unwrap().to_owned();

    // Not inserted, but recorded.
    let listed = entries::list_entries(&db.pool, EntryFilter::default(), ListQuery::default()).await.unwrap();
    assert_eq!(listed.total, 1);
    let recorded = conflicts::list_conflicts(&db.pool, Default::default(), ListQuery::default()).await.unwrap();
    assert_eq!(recorded.items.len(), 1);
    assert_eq!(recorded.items[0].conflict_type, "room");
    assert_eq!(recorded.items[0].conflicting_entry_id, first.id);
    assert_eq!(recorded.items[0].proposed["course_id"], "c2");

    let events = outbox_events(&db).await;
    let conflict = events
        .iter()
        .find_map(|e| match e {
            TimetableEvent::RoomConflictDetected(p) => Some(p.clone()),
            _ => None,
        })
        .expect("ROOM_CONFLICT_DETECTED in the outbox");
    assert_eq!(conflict.conflicting_entry_id, first.id.to_string());
    assert_eq!(conflict.entry_id, rejected_id);
    assert_eq!(conflict.timetable_id, tt.to_string());
    assert_eq!(conflict.room_id, Some(r.to_string()));
    assert_eq!(conflict.faculty_id, None);
    assert_eq!((conflict.day_of_week, conflict.start_time, conflict.end_time), (1, t(9, 30), t(10, 30)));
    assert_eq!(conflict.conflict_id, recorded.items[0].id.to_string());
    assert_eq!(events.iter().filter(|e| matches!(e, TimetableEvent::EntryAdded(_))).count(), 1);
    db.drop_now().await;
}

#[tokio::test]
async fn a_faculty_double_booking_in_another_room_is_rejected() {
    let db = service_db().await;
    let (r1, r2, tt) = (room(&db, "A").await, room(&db, "B").await, timetable(&db).await);
    let first =
        entries::add_entry(&db.pool, &admin(), entry(tt, r1, "c1", "fac-1", 2, t(11, 0), t(12, 0))).await.unwrap();
    let err =
        entries::add_entry(&db.pool, &admin(), entry(tt, r2, "c2", "fac-1", 2, t(11, 59), t(13, 0))).await.unwrap_err();
    assert_eq!(conflict_ids(&err), [first.id.to_string()]);
    let Error::Conflict { details, .. } = &err else { unreachable!() };
    assert_eq!(details["conflicts"][0]["kind"], "faculty");
    let events = outbox_events(&db).await;
    assert!(events.iter().any(|e| matches!(e, TimetableEvent::FacultyConflictDetected(p)
        if p.faculty_id.as_deref() == Some("fac-1") && p.room_id.is_none())));
    db.drop_now().await;
}

#[tokio::test]
async fn non_overlapping_entries_are_accepted() {
    let db = service_db().await;
    let (r, tt) = (room(&db, "LH-1").await, timetable(&db).await);
    let a = admin();
    // Back to back, another day, and the same time after the first stops applying.
    entries::add_entry(&db.pool, &a, entry(tt, r, "c1", "f1", 1, t(9, 0), t(10, 0))).await.unwrap();
    entries::add_entry(&db.pool, &a, entry(tt, r, "c2", "f1", 1, t(10, 0), t(11, 0))).await.unwrap();
    entries::add_entry(&db.pool, &a, entry(tt, r, "c3", "f1", 2, t(9, 0), t(10, 0))).await.unwrap();
    let mut dated = entry(tt, r, "c4", "f2", 3, t(9, 0), t(10, 0));
    dated.effective_until = chrono::NaiveDate::from_ymd_opt(2025, 3, 31);
    entries::add_entry(&db.pool, &a, dated).await.unwrap();
    let mut later = entry(tt, r, "c5", "f3", 3, t(9, 0), t(10, 0));
    later.effective_from = chrono::NaiveDate::from_ymd_opt(2025, 4, 1);
    entries::add_entry(&db.pool, &a, later).await.unwrap();
    // A deleted entry frees its slot.
    let gone = entries::add_entry(&db.pool, &a, entry(tt, r, "c6", "f4", 4, t(9, 0), t(10, 0))).await.unwrap();
    entries::delete_entry(&db.pool, &a, gone.id).await.unwrap();
    entries::add_entry(&db.pool, &a, entry(tt, r, "c7", "f5", 4, t(9, 0), t(10, 0))).await.unwrap();

    let listed = entries::list_entries(
        &db.pool,
        EntryFilter { is_active: Some(true), ..Default::default() },
        ListQuery::default(),
    )
    .await
    .unwrap();
    assert_eq!(listed.total, 6);
    let events = outbox_events(&db).await;
    assert_eq!(events.iter().filter(|e| matches!(e, TimetableEvent::EntryAdded(_))).count(), 7);
    assert_eq!(events.iter().filter(|e| matches!(e, TimetableEvent::EntryDeleted(_))).count(), 1);
    db.drop_now().await;
}

#[tokio::test]
async fn twenty_concurrent_conflicting_bookings_let_exactly_one_win() {
    let db = service_db().await;
    let (r, tt) = (room(&db, "HOT").await, timetable(&db).await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let pool = db.pool.clone();
        // Half collide on the room, half on the faculty member too.
        let faculty = if i % 2 == 0 { "shared-fac".to_owned() } else { format!("fac-{i}") };
        let e = entry(tt, r, &format!("c{i}"), &faculty, 5, t(14, 0), t(15, 0));
        tasks.push(tokio::spawn(async move { entries::add_entry(&pool, &admin(), e).await }));
    }
    let mut won = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((won, conflicts), (1, 19));
    let c = db.pool.get().await.unwrap();
    let active: i64 = c.query_one("SELECT count(*) FROM timetable_entries WHERE is_active", &[]).await.unwrap().get(0);
    assert_eq!(active, 1);
    let recorded: i64 = c
        .query_one("SELECT count(DISTINCT entry_id) FROM timetable_conflicts WHERE conflict_type = 'room'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 19);
    db.drop_now().await;
}

#[tokio::test]
async fn publishing_emits_timetable_published_and_the_room_schedule_shows_only_published_entries() {
    let db = service_db().await;
    let (r1, r2) = (room(&db, "R-1").await, room(&db, "R-2").await);
    let (published, draft) = (timetable(&db).await, timetable(&db).await);
    let a = admin();
    let mine = entries::add_entry(&db.pool, &a, entry(published, r1, "c1", "f1", 1, t(8, 0), t(9, 0))).await.unwrap();
    entries::add_entry(&db.pool, &a, entry(published, r2, "c2", "f2", 1, t(8, 0), t(9, 0))).await.unwrap();
    entries::add_entry(&db.pool, &a, entry(draft, r1, "c3", "f3", 2, t(8, 0), t(9, 0))).await.unwrap();

    let c = db.pool.get().await.unwrap();
    assert!(room_schedule(&c, "R-1").await.unwrap().is_empty(), "nothing is published yet");
    let tt = timetables::publish_timetable(&db.pool, &a, published).await.unwrap();
    assert_eq!(tt.status, "published");
    let again = timetables::publish_timetable(&db.pool, &a, published).await.unwrap_err();
    assert!(matches!(again, Error::Conflict { .. }));

    let events = outbox_events(&db).await;
    let p = events
        .iter()
        .find_map(|e| match e {
            TimetableEvent::TimetablePublished(p) => Some(p.clone()),
            _ => None,
        })
        .expect("TIMETABLE_PUBLISHED");
    assert_eq!(p.timetable_id, published.to_string());
    assert_eq!(p.entry_count, 2);
    assert_eq!(p.semester_name, "Spring 2025");
    assert_eq!(p.department_name, "Computer Science");
    assert_eq!(p.program_id, "prog-btech");
    assert_eq!(p.semester_number, 3);
    assert_eq!(p.published_by, "admin-1");

    let by_number = room_schedule(&c, "R-1").await.unwrap();
    assert_eq!(by_number.len(), 1);
    assert_eq!(by_number[0].entry_id, mine.id.to_string());
    assert_eq!(by_number[0].room_id, "R-1");
    assert_eq!((by_number[0].start_time, by_number[0].end_time, by_number[0].day_of_week), (t(8, 0), t(9, 0), 1));
    let by_id = room_schedule(&c, &r1.to_string()).await.unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].course_name, "Course c1");
    assert!(room_schedule(&c, "nowhere").await.unwrap().is_empty());
    drop(c);
    db.drop_now().await;
}

#[tokio::test]
async fn validation_errors_name_the_fields() {
    let db = service_db().await;
    let bad = NewRoom {
        room_number: " ".into(),
        building: "".into(),
        capacity: 0,
        room_type: "cave".into(),
        is_active: true,
    };
    let Err(Error::Validation(errors)) = rooms::create_room(&db.pool, &admin(), bad).await else {
        panic!("expected validation")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["room_number", "building", "capacity", "room_type"]);

    let tt = timetable(&db).await;
    let r = room(&db, "V-1").await;
    let mut e = entry(tt, r, "", "f", 8, t(10, 0), t(9, 0));
    e.start_time = Some(t(10, 0));
    let Err(Error::Validation(errors)) = entries::add_entry(&db.pool, &admin(), e).await else {
        panic!("expected validation")
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    // Fields that break the document's own rules first (400); the end before the start is a rule
    // between fields, answered 422 once the fields themselves are valid.
    assert_eq!(fields, ["course_id", "day_of_week"]);
    let mut e = entry(tt, r, "c", "f", 1, t(10, 0), t(9, 0));
    e.start_time = Some(t(10, 0));
    let Err(Error::Unprocessable(rules)) = entries::add_entry(&db.pool, &admin(), e).await else {
        panic!("expected a broken rule")
    };
    assert_eq!(rules.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["end_time"]);

    let unknown: Result<NewRoom, _> =
        serde_json::from_str(r#"{"room_number":"x","building":"y","capacity":1,"room_type":"lab","colour":"red"}"#);
    assert!(unknown.is_err(), "unknown fields are refused");
    let sort = ListQuery { sort: Some("capacity; DROP TABLE rooms".into()), ..Default::default() };
    assert!(matches!(rooms::list_rooms(&db.pool, RoomFilter::default(), sort).await, Err(Error::Validation(_))));
    db.drop_now().await;
}

#[tokio::test]
async fn sql_injection_text_is_stored_verbatim_and_never_executed() {
    let db = service_db().await;
    let evil = "R'); DROP TABLE rooms; --";
    let r = rooms::create_room(
        &db.pool,
        &admin(),
        NewRoom {
            room_number: evil.into(),
            building: "' OR '1'='1".into(),
            capacity: 5,
            room_type: "lab".into(),
            is_active: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(r.room_number, evil);
    let filter = RoomFilter { building: Some("' OR '1'='1".into()), ..Default::default() };
    let found = rooms::list_rooms(&db.pool, filter, ListQuery::default()).await.unwrap();
    assert_eq!(found.items.len(), 1);
    let none = RoomFilter { building: Some("x' OR '1'='1".into()), ..Default::default() };
    assert_eq!(rooms::list_rooms(&db.pool, none, ListQuery::default()).await.unwrap().total, 0);
    let c = db.pool.get().await.unwrap();
    assert!(room_schedule(&c, "' OR '1'='1").await.unwrap().is_empty());
    let rooms_left: i64 = c.query_one("SELECT count(*) FROM rooms", &[]).await.unwrap().get(0);
    assert_eq!(rooms_left, 1, "the table survived");
    drop(c);
    db.drop_now().await;
}
