//! Malformed events are rejected with an error that names the field at fault.

use nimbus_core::event::attendance::{AttendanceMarkedPayload, AttendanceStatus, StudentAttendance};
use nimbus_core::event::{AnyEvent, AttendanceEvent, DeadLetterEvent, Envelope, EventError, Message, UserEvent};
use nimbus_core::topics::Topic;
use serde_json::{Value, json};

fn user_created() -> Value {
    json!({
        "event_id": "550e8400-e29b-41d4-a716-446655440000",
        "event_type": "USER_CREATED",
        "event_version": "1.0",
        "timestamp": "2024-12-27T10:30:00Z",
        "service_name": "user-service",
        "correlation_id": "req-12345-abcde",
        "payload": {
            "user_id": "123e4567-e89b-12d3-a456-426614174000",
            "register_no": 2024001234,
            "email": "student@university.edu",
            "role_id": "role-student-uuid",
            "role_name": "student",
            "status": "active",
            "created_by": "admin-user-uuid",
            "requires_approval": false
        }
    })
}

fn attendance_marked() -> Value {
    json!({
        "event_id": "7d3c9a52-0c43-5b3e-9f6e-2b1c9d1a0e11",
        "event_type": "ATTENDANCE_MARKED",
        "event_version": "1.0",
        "timestamp": "2025-01-13T09:55:02Z",
        "service_name": "attendance-service",
        "metadata": {"node_id": "room-101", "seq": "42"},
        "payload": {
            "attendance_id": "att-1",
            "entry_id": "entry-mon-0900",
            "course_id": "course-uuid-001",
            "course_name": "Data Structures",
            "class_date": "2025-01-13",
            "marked_by": "faculty-uuid-12345",
            "marked_at": "2025-01-13T09:55:00Z",
            "total_students": 4,
            "present_count": 2,
            "absent_count": 1,
            "student_records": [
                {"student_id": "s1", "status": "present", "remarks": ""},
                {"student_id": "s2", "status": "late", "remarks": "arrived 09:12"},
                {"student_id": "s3", "status": "absent"},
                {"student_id": "s4", "status": "excused", "remarks": "medical"}
            ]
        }
    })
}

fn err_of(value: Value) -> EventError {
    AnyEvent::from_value(value).expect_err("should be rejected")
}

fn field_of(value: Value) -> String {
    let err = err_of(value);
    err.field_path().unwrap_or_else(|| panic!("no field in {err}")).to_owned()
}

#[test]
fn each_required_base_field_missing_is_named() {
    for field in ["event_id", "event_type", "event_version", "timestamp", "service_name", "payload"] {
        let mut v = user_created();
        v.as_object_mut().unwrap().remove(field);
        let err = err_of(v);
        assert_eq!(err, EventError::field(field, "required field is missing"), "{field}");
        assert_eq!(err.to_string(), format!("{field}: required field is missing"));
    }
}

#[test]
fn optional_base_fields_may_be_absent() {
    let mut v = user_created();
    v.as_object_mut().unwrap().remove("correlation_id");
    v.as_object_mut().unwrap().remove("metadata");
    assert!(AnyEvent::from_value(v).is_ok());
}

#[test]
fn event_id_must_be_a_uuid() {
    for bad in ["", "550e8400", "550e8400-e29b-41d4-a716-44665544000g", "content-uuid-12345"] {
        let mut v = user_created();
        v["event_id"] = bad.into();
        assert_eq!(field_of(v), "event_id", "{bad:?}");
    }
}

#[test]
fn event_type_must_be_upper_case_letters_and_underscores() {
    for bad in ["user_created", "User_Created", "USER-CREATED", "USER CREATED", "USER1", ""] {
        let mut v = user_created();
        v["event_type"] = bad.into();
        let err = err_of(v);
        assert_eq!(err.field_path(), Some("event_type"), "{bad:?}");
        assert!(err.to_string().contains("^[A-Z_]+$"), "{err}");
    }
}

#[test]
fn event_version_must_be_major_dot_minor() {
    for bad in ["1", "1.", ".0", "v1.0", "1.0.0", "one.zero", ""] {
        let mut v = user_created();
        v["event_version"] = bad.into();
        assert_eq!(field_of(v), "event_version", "{bad:?}");
    }
    let mut v = user_created();
    v["event_version"] = "12.34".into();
    assert!(AnyEvent::from_value(v).is_ok());
}

#[test]
fn timestamp_must_be_rfc3339() {
    for bad in ["2024-12-27", "2024-12-27T10:30:00", "27/12/2024 10:30", "1735295400"] {
        let mut v = user_created();
        v["timestamp"] = bad.into();
        assert_eq!(field_of(v), "timestamp", "{bad:?}");
    }
    let mut v = user_created();
    v["timestamp"] = "2024-12-27T16:00:00.250+05:30".into();
    let event = AnyEvent::from_value(v).unwrap();
    assert_eq!(event.to_value()["timestamp"], "2024-12-27T10:30:00.250Z");
}

#[test]
fn base_fields_of_the_wrong_json_type_are_named() {
    let mut v = user_created();
    v["service_name"] = json!(["user-service"]);
    assert_eq!(err_of(v).to_string(), "service_name: expected a string, got an array");
    let mut v = user_created();
    v["metadata"] = json!({"ip_address": 192});
    assert_eq!(err_of(v).to_string(), "metadata.ip_address: expected a string, got a number");
    let mut v = user_created();
    v["correlation_id"] = Value::Null;
    assert_eq!(field_of(v), "correlation_id");
}

#[test]
fn a_payload_of_another_type_is_rejected_at_the_first_missing_field() {
    // A LOGIN_SUCCESS payload under USER_CREATED.
    let mut v = user_created();
    v["payload"] = json!({
        "user_id": "u1", "email": "a@b.c", "role_name": "student", "session_id": "s",
        "login_at": "2024-12-27T09:00:00Z", "expires_at": "2024-12-27T10:00:00Z"
    });
    assert_eq!(err_of(v).to_string(), "payload.register_no: required field is missing");
}

#[test]
fn payload_fields_of_the_wrong_type_are_named_by_path() {
    let mut v = user_created();
    v["payload"]["register_no"] = "2024001234".into();
    assert_eq!(field_of(v), "payload.register_no");
    let mut v = attendance_marked();
    v["payload"]["student_records"][2]["status"] = "presnt".into();
    let err = err_of(v);
    assert_eq!(err.field_path(), Some("payload.student_records[2].status"));
    assert!(err.to_string().contains("unknown variant `presnt`"), "{err}");
    let mut v = attendance_marked();
    v["payload"]["class_date"] = "13/01/2025".into();
    assert_eq!(field_of(v), "payload.class_date");
    let mut v = attendance_marked();
    v["payload"]["student_records"][1].as_object_mut().unwrap().remove("student_id");
    assert_eq!(field_of(v), "payload.student_records[1].student_id");
}

#[test]
fn attendance_totals_must_agree_with_the_student_records() {
    let ok = AnyEvent::from_value(attendance_marked()).unwrap();
    assert_eq!(ok.partition_key(), "course-uuid-001");
    for (field, wrong) in [("total_students", 5), ("present_count", 1), ("absent_count", 2)] {
        let mut v = attendance_marked();
        v["payload"][field] = wrong.into();
        let err = err_of(v);
        assert_eq!(err.field_path(), Some(format!("payload.{field}").as_str()), "{err}");
    }
    let mut v = attendance_marked();
    v["payload"]["student_records"][3]["student_id"] = "s1".into();
    v["payload"]["student_records"][3]["status"] = "excused".into();
    assert_eq!(field_of(v), "payload.student_records[3].student_id");
}

#[test]
fn unknown_and_misplaced_event_types_are_rejected() {
    let mut v = user_created();
    v["event_type"] = "USER_TELEPORTED".into();
    assert_eq!(err_of(v), EventError::UnknownEventType("USER_TELEPORTED".into()));

    let err = Envelope::<AttendanceEvent>::from_value(user_created()).unwrap_err();
    assert_eq!(
        err,
        EventError::WrongTopic {
            event_type: "USER_CREATED".into(),
            expected: Topic::AttendanceEvents,
            actual: Topic::UserEvents
        }
    );
    let err = Message::from_json(&user_created().to_string(), Some(Topic::AttendanceEvents)).unwrap_err();
    assert_eq!(err.field_path(), Some("event_type"));
}

#[test]
fn non_objects_and_broken_json_are_rejected() {
    assert_eq!(AnyEvent::from_json("[1,2]"), Err(EventError::NotAnObject));
    assert!(matches!(AnyEvent::from_json("{\"event_id\":"), Err(EventError::Syntax(_))));
    assert!(matches!(Envelope::<UserEvent>::from_slice(b"\xff\xfe"), Err(EventError::Syntax(_))));
}

#[test]
fn a_built_attendance_event_serialises_in_the_seed_shape_and_is_keyed_by_course() {
    let mut payload = AttendanceMarkedPayload {
        attendance_id: "att-9".into(),
        course_id: "course-7".into(),
        student_records: vec![
            StudentAttendance { student_id: "s1".into(), status: AttendanceStatus::Late, remarks: None },
            StudentAttendance { student_id: "s2".into(), status: AttendanceStatus::Absent, remarks: None },
        ],
        ..Default::default()
    };
    payload.recount();
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"room-101/42");
    let event = Envelope::new("attendance-service", AttendanceEvent::AttendanceMarked(payload))
        .with_event_id(id)
        .with_metadata("node_id", "room-101");
    let json = event.to_value();
    assert_eq!(json["event_type"], "ATTENDANCE_MARKED");
    assert_eq!(json["event_id"], id.to_string());
    assert_eq!(json["payload"]["present_count"], 1);
    assert_eq!(json["payload"]["absent_count"], 1);
    assert_eq!(json["payload"]["class_date"], "1970-01-01");
    assert_eq!(event.partition_key(), "course-7");
    assert_eq!(Envelope::<AttendanceEvent>::from_value(json).unwrap(), event);
}

#[test]
fn dead_letters_validate_and_replay_their_original_bytes() {
    let dlq = json!({
        "original_topic": "attendance.events",
        "original_event": attendance_marked(),
        "original_key": "course-uuid-001",
        "original_timestamp": "2025-01-13T09:55:03Z",
        "failure_reason": "attendance_service_db: connection refused",
        "failure_count": 4,
        "last_attempt_at": "2025-01-13T09:55:04Z",
        "consumer_group": "attendance-service-group",
        "service_name": "attendance-service",
        "stack_trace": "connection refused\ncaused by: os error 111"
    });
    let letter = DeadLetterEvent::from_value(dlq.clone()).unwrap();
    assert_eq!(letter.original_topic, Topic::AttendanceEvents);
    assert_eq!(serde_json::to_value(&letter).unwrap(), dlq);
    let replayed: Value = serde_json::from_slice(&letter.original_bytes()).unwrap();
    assert_eq!(replayed, attendance_marked());
    assert!(matches!(Message::from_json(&dlq.to_string(), None), Ok(Message::DeadLetter(_))));

    let mut bad = dlq.clone();
    bad["original_topic"] = "attendance.evts".into();
    assert_eq!(DeadLetterEvent::from_value(bad).unwrap_err().field_path(), Some("original_topic"));
    let mut bad = dlq;
    bad.as_object_mut().unwrap().remove("failure_count");
    assert_eq!(DeadLetterEvent::from_value(bad).unwrap_err().to_string(), "failure_count: required field is missing");

    let raw = DeadLetterEvent { original_event: Value::String("\u{1}garbage".into()), ..letter };
    assert_eq!(raw.original_bytes(), b"\x01garbage");
}
