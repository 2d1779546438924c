//! A full classroom day on the demo timetable (room `demo-101`, Monday 2026-11-23: cs101 09:00-09:50,
//! cs102 10:00-10:50, cs101 13:00-14:30) with early, late, duplicate, unknown and pending taps,
//! manual marks, an auto-close and corrections. The outbox must hold exactly the expected events,
//! and each must be valid against the seed's schema.

use std::sync::Arc;
use std::time::Duration;

use chrono::{FixedOffset, NaiveDate, NaiveDateTime};
use nimbus_core::event::attendance::AttendanceStatus::{self, Absent, Excused, Late, Present};
use nimbus_core::event::{AttendanceEvent, Envelope, TopicEvent};
use nimbus_core::reader::{CardRead, Feedback, ReaderKind};
use nimbus_edge::attendance::{Attendance, Rules, TapOutcome};
use nimbus_edge::clock::ManualClock;
use nimbus_edge::store::Store;
use nimbus_edge::{Error, outbox, timetable};

const ROOM: &str = "demo-101";
const FACULTY_CARD: &str = "FACA0001";

fn monday(h: u32, m: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap().and_hms_opt(h, m, 0).unwrap()
}

struct Day {
    clock: ManualClock,
    att: Attendance,
}

impl Day {
    fn new() -> Day {
        let store = Store::open_in_memory().unwrap();
        let (tt, roster) = timetable::demo(ROOM);
        store.with(|c| timetable::apply_timetable(c, &tt, 0)).unwrap();
        store.with(|c| timetable::apply_roster(c, &roster, 0)).unwrap();
        // Campus in UTC+05:30, to prove local slot times and UTC event times are kept apart.
        let clock = ManualClock::at_local(monday(8, 0), FixedOffset::east_opt(19_800).unwrap());
        let rules = Rules { room_id: ROOM.into(), ..Rules::default() };
        let att = Attendance::new(store, Arc::new(clock.clone()), rules);
        Day { clock, att }
    }

    fn at(&self, h: u32, m: u32) {
        self.clock.set_wall_local(monday(h, m));
    }

    fn tap(&self, uid: &str) -> TapOutcome {
        let read = CardRead { uid: uid.parse().unwrap(), reader: ReaderKind::Simulated };
        self.att.record_tap(read).unwrap().outcome
    }
}

fn student(i: u32) -> String {
    format!("5A00000{i}")
}

fn marked(i: u32, status: AttendanceStatus) -> impl Fn(&TapOutcome) -> bool {
    move |o| matches!(o, TapOutcome::Marked { student_id, status: s, .. } if *student_id == format!("student-{i}") && *s == status)
}

#[test]
fn a_full_day_produces_exactly_the_expected_seed_events() {
    let day = Day::new();

    // --- 09:00 cs101: a tap before the session, an early open by card, duplicates, late, unknown.
    day.at(8, 45);
    assert_eq!(day.tap(&student(1)), TapOutcome::Pending { user_id: "student-1".into() });
    day.at(8, 52);
    let first = match day.tap(FACULTY_CARD) {
        TapOutcome::SessionOpened { session_id, course_id } => {
            assert_eq!(course_id, "cs101");
            session_id
        }
        other => panic!("faculty card should open the session, got {other:?}"),
    };
    day.at(8, 53);
    let dup = day.tap(&student(1));
    assert_eq!(dup, TapOutcome::Duplicate { student_id: "student-1".into() }, "attached from grace already");
    assert_eq!(dup.feedback(), Feedback::Duplicate);
    day.at(8, 55);
    assert!(marked(2, Present)(&day.tap(&student(2))));
    day.at(9, 12);
    assert!(marked(3, Late)(&day.tap(&student(3))));
    day.at(9, 13);
    let unknown = day.tap("DEADBEEF");
    assert_eq!(unknown, TapOutcome::UnknownCard);
    assert_eq!(unknown.feedback(), Feedback::UnknownCard);
    day.at(9, 14);
    assert_eq!(day.tap(FACULTY_CARD), TapOutcome::FacultyRepeat);
    day.att.mark(&first, "student-4", Excused, Some("sports team"), "faculty-demo").unwrap();
    assert!(matches!(day.att.mark(&first, "nobody", Present, None, "faculty-demo"), Err(Error::NotOnRoster(_))));

    // The slot ends: the scheduler's job closes it.
    day.at(9, 49);
    assert!(day.att.close_due().unwrap().is_empty());
    day.at(9, 50);
    assert_eq!(day.att.close_due().unwrap(), vec![first.clone()]);

    // --- 10:00 cs102: opened from the page two minutes early, closed by hand.
    day.at(9, 58);
    let second = day.att.open_session("faculty-demo").unwrap();
    assert_eq!(second.course_id, "cs102");
    assert!(matches!(day.att.open_session("faculty-demo"), Err(Error::SessionAlreadyOpen(_))));
    day.at(10, 5);
    assert!(marked(5, Present)(&day.tap(&student(5))));
    day.at(10, 20);
    day.att.close_session(&second.id, "manual").unwrap();
    assert!(matches!(day.att.close_session(&second.id, "manual"), Err(Error::SessionClosed(_))));

    // --- A correction of the first class within the window.
    day.at(11, 0);
    day.att.correct(&first, "student-5", Excused, Some("medical certificate"), "faculty-demo").unwrap();
    assert!(matches!(day.att.correct(&first, "student-5", Excused, None, "faculty-demo"), Err(Error::NoChange { .. })));

    // --- Between classes: a faculty tap has nothing to open; student taps wait.
    day.at(12, 0);
    let nothing = day.tap(FACULTY_CARD);
    assert_eq!(nothing, TapOutcome::NoClassNow);
    assert_eq!(nothing.feedback(), Feedback::Error);
    day.at(12, 30);
    assert!(matches!(day.tap(&student(2)), TapOutcome::Pending { .. }), "too early: stays pending");
    day.at(12, 50);
    assert!(matches!(day.tap(&student(1)), TapOutcome::Pending { .. }));

    // --- 13:00 cs101 again: opened on time by card; the 12:50 tap is attached, the 12:30 one not.
    day.at(13, 0);
    let third = match day.tap(FACULTY_CARD) {
        TapOutcome::SessionOpened { session_id, .. } => session_id,
        other => panic!("{other:?}"),
    };
    let view = day.att.session_view(&third).unwrap();
    let s1 = view.students.iter().find(|s| s.student_id == "student-1").unwrap();
    assert_eq!((s1.status, s1.source.as_deref()), (Some(Present), Some("grace")));
    let s2 = view.students.iter().find(|s| s.student_id == "student-2").unwrap();
    assert_eq!(s2.status, None);
    day.at(13, 40);
    assert!(marked(2, Late)(&day.tap(&student(2))));
    day.at(14, 30);
    assert_eq!(day.att.close_due().unwrap(), vec![third.clone()]);

    // The 09:00 class cannot be reopened today.
    day.at(9, 5);
    assert_eq!(day.tap(FACULTY_CARD), TapOutcome::NoClassNow);

    // --- After the correction window, corrections are refused.
    day.clock.advance(Duration::from_secs(73 * 3600));
    assert!(matches!(
        day.att.correct(&first, "student-1", Absent, None, "faculty-demo"),
        Err(Error::CorrectionWindowClosed(_))
    ));

    // --- The outbox: exactly four attendance events, in order, each valid against the seed's
    // schema, and one report of the unknown card for the cloud's quarantine.
    let all = day.att.store().with(|c| outbox::pending(c, 100)).unwrap();
    let (events, reports): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e.topic == "attendance.events");
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert_eq!((report.event_type.as_str(), report.topic.as_str()), ("USER_ACTION", "analytics.events"));
    assert_eq!(
        (report.payload["action"].as_str(), report.payload["label"].as_str()),
        (Some("UNKNOWN_CARD"), Some("DEADBEEF"))
    );
    assert!(report.priority > 0, "an unknown-card report is telemetry, droppable under disk pressure");
    nimbus_core::event::AnalyticsEvent::from_payload(&report.event_type, report.payload.clone()).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["ATTENDANCE_MARKED", "ATTENDANCE_MARKED", "ATTENDANCE_UPDATED", "ATTENDANCE_MARKED"]);
    assert!(events.windows(2).all(|w| w[1].seq > w[0].seq));
    let parsed: Vec<AttendanceEvent> = events
        .iter()
        .map(|e| {
            assert_eq!(e.topic, "attendance.events");
            assert_eq!(e.priority, 0, "attendance is never evictable");
            let ev = AttendanceEvent::from_payload(&e.event_type, e.payload.clone())
                .unwrap_or_else(|err| panic!("{} violates the seed schema: {err}", e.event_type));
            // And as a whole envelope, the way the cloud will publish it.
            let json = Envelope::new("attendance-service", ev.clone()).to_json();
            Envelope::<AttendanceEvent>::from_json(&json).unwrap();
            ev
        })
        .collect();

    let AttendanceEvent::AttendanceMarked(m1) = &parsed[0] else { panic!() };
    assert_eq!(m1.attendance_id, first);
    assert_eq!((m1.course_id.as_str(), m1.course_name.as_str()), ("cs101", "Data Structures"));
    assert_eq!(m1.class_date.to_string(), "2026-11-23");
    assert_eq!(m1.marked_by, "faculty-demo");
    assert_eq!(m1.marked_at.to_rfc3339(), "2026-11-23T04:20:00+00:00", "09:50 in UTC+05:30");
    let statuses: Vec<(&str, AttendanceStatus)> =
        m1.student_records.iter().map(|r| (r.student_id.as_str(), r.status)).collect();
    assert_eq!(
        statuses,
        [
            ("student-1", Present),
            ("student-2", Present),
            ("student-3", Late),
            ("student-4", Excused),
            ("student-5", Absent)
        ]
    );
    assert_eq!((m1.total_students, m1.present_count, m1.absent_count), (5, 3, 1));
    assert_eq!(m1.student_records[3].remarks.as_deref(), Some("sports team"));

    let AttendanceEvent::AttendanceMarked(m2) = &parsed[1] else { panic!() };
    assert_eq!((m2.course_id.as_str(), m2.present_count, m2.absent_count), ("cs102", 1, 4));

    let AttendanceEvent::AttendanceUpdated(u) = &parsed[2] else { panic!() };
    assert_eq!((u.attendance_id.as_str(), u.student_id.as_str()), (first.as_str(), "student-5"));
    assert_eq!((u.old_status, u.new_status), (Absent, Excused));
    assert_eq!(u.reason.as_deref(), Some("medical certificate"));

    let AttendanceEvent::AttendanceMarked(m3) = &parsed[3] else { panic!() };
    assert_eq!((m3.attendance_id.as_str(), m3.present_count, m3.absent_count), (third.as_str(), 2, 3));

    // The unknown card is quarantined; the 12:30 tap is still kept, pending.
    let (unknown, pending): (i64, i64) = day
        .att
        .store()
        .with(|c| {
            Ok((
                c.query_row("SELECT tap_count FROM unknown_cards WHERE card_uid = 'DEADBEEF'", [], |r| r.get(0))?,
                c.query_row("SELECT count(*) FROM taps WHERE outcome = 'pending'", [], |r| r.get(0))?,
            ))
        })
        .unwrap();
    assert_eq!((unknown, pending), (1, 1));
}

#[test]
fn a_tap_stored_but_not_interpreted_before_a_crash_is_interpreted_at_start() {
    let day = Day::new();
    day.at(9, 0);
    day.tap(FACULTY_CARD);
    // Simulate a crash between the two transactions: the raw tap is there, no outcome.
    day.att
        .store()
        .with(|c| {
            c.execute(
                "INSERT INTO taps (card_uid, reader, wall_ms, mono_ms, boot_id, clock_synced)
                 VALUES ('5A000002', 'simulated', ?1, 5, 'b', 1)",
                [day.att.now().wall_ms()],
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(day.att.interpret_leftovers().unwrap(), 1);
    assert_eq!(day.att.interpret_leftovers().unwrap(), 0);
    let open = day.att.open().unwrap().unwrap();
    let s2 = open.students.iter().find(|s| s.student_id == "student-2").unwrap();
    assert_eq!(s2.status, Some(Present));
}

#[test]
fn taps_record_the_clock_state_so_the_cloud_can_correct_them() {
    let day = Day::new();
    day.at(9, 0);
    day.clock.set_synced(false);
    day.tap(FACULTY_CARD);
    let (synced, boot, mono): (bool, String, i64) = day
        .att
        .store()
        .with(|c| {
            Ok(c.query_row("SELECT clock_synced, boot_id, mono_ms FROM taps", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
        })
        .unwrap();
    assert!(!synced);
    assert_eq!(boot, "test-boot");
    assert!(mono > 0);
    day.at(9, 50);
    day.att.close_due().unwrap();
    let events = day.att.store().with(|c| outbox::pending(c, 10)).unwrap();
    assert!(!events[0].clock_synced, "events written with an untrusted clock say so");
}
