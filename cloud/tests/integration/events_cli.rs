//! `nimbus-cloud events …` as an operator runs it: the real binary, real files and stdin.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn nimbus_cloud(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nimbus-cloud"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nimbus-cloud");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

#[test]
fn validate_accepts_every_seed_example_from_a_file() {
    let out = nimbus_cloud(&["events", "validate", &format!("{FIXTURES}/seed_examples.jsonl")], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.ends_with("5 valid, 0 invalid\n"), "{text}");
    for ty in ["USER_CREATED", "USER_UPDATED", "LOGIN_SUCCESS", "CONTENT_CREATED", "SEND_NOTIFICATION"] {
        assert!(text.contains(&format!("valid: {ty} on ")), "{ty} missing in {text}");
    }
}

#[test]
fn validate_reads_one_pretty_printed_event_from_stdin() {
    let event = std::fs::read_to_string(format!("{FIXTURES}/user_created.json")).unwrap();
    let out = nimbus_cloud(&["events", "validate", "-"], Some(&event));
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("valid: USER_CREATED on user.events (event_id 550e8400-"));
}

#[test]
fn validate_names_the_broken_field_and_exits_1() {
    let good = std::fs::read_to_string(format!("{FIXTURES}/user_created.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&good).unwrap();
    // (expected message start, JSON pointer to break, replacement or None to remove the field)
    let cases: [(&str, &str, Option<serde_json::Value>); 6] = [
        ("event_id: ", "/event_id", Some("not-a-uuid".into())),
        ("event_type: ", "/event_type", Some("user_created".into())),
        ("event_version: ", "/event_version", Some("v1".into())),
        ("timestamp: ", "/timestamp", Some("yesterday".into())),
        ("payload.register_no: required field is missing", "/payload/register_no", None),
        ("metadata.ip_address: expected a string", "/metadata/ip_address", Some(7.into())),
    ];
    for (expected, pointer, replacement) in cases {
        let mut broken = value.clone();
        match replacement {
            Some(v) => *broken.pointer_mut(pointer).unwrap() = v,
            None => {
                let (parent, field) = pointer.rsplit_once('/').unwrap();
                broken.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(field);
            }
        }
        let out = nimbus_cloud(&["events", "validate"], Some(&broken.to_string()));
        assert_eq!(out.status.code(), Some(1), "{expected}");
        let text = stdout(&out);
        assert!(text.starts_with(&format!("invalid: {expected}")), "wanted {expected:?}, got {text}");
    }
    value["event_type"] = "ATTENDANCE_MARKED".into();
    let out = nimbus_cloud(&["events", "validate"], Some(&value.to_string()));
    assert!(stdout(&out).starts_with("invalid: payload.attendance_id: required field is missing"));
}

#[test]
fn validate_with_a_topic_rejects_events_of_another_topic() {
    let out = nimbus_cloud(
        &["events", "validate", "--topic", "attendance.events", &format!("{FIXTURES}/user_created.json")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("USER_CREATED belongs to user.events, not to attendance.events"));
}

#[test]
fn validate_reports_each_bad_line_of_json_lines() {
    let lines = std::fs::read_to_string(format!("{FIXTURES}/seed_examples.jsonl")).unwrap();
    let input = format!("{lines}{{\"event_id\": 1}}\nnot json\n");
    let out = nimbus_cloud(&["events", "validate"], Some(&input));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("line 6: invalid: event_id: expected a string, got a number"), "{text}");
    assert!(text.contains("line 7: invalid: not valid JSON"), "{text}");
    assert!(text.ends_with("5 valid, 2 invalid\n"), "{text}");
}

#[test]
fn validate_exits_2_when_the_file_cannot_be_read() {
    let out = nimbus_cloud(&["events", "validate", "/nonexistent/events.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/events.json"));
}

#[test]
fn topics_prints_the_thirteen_topics_of_the_seed() {
    let out = nimbus_cloud(&["events", "topics"], None);
    assert!(out.status.success());
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 13);
    assert!(rows[0].starts_with("user.events"));
    assert!(rows[12].starts_with("dlq.events") && rows[12].contains("30d"));
    let out = nimbus_cloud(&["events", "topics", "--env", "development", "--json"], None);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 13);
    assert_eq!(json[2]["partitions"], 12);
}

#[test]
fn groups_prints_the_nine_consumer_groups() {
    let out = nimbus_cloud(&["events", "groups"], None);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 10);
    assert!(text.contains(
        "attendance-service-group       attendance-service       timetable.events, course.events, enrollment.events"
    ));
}
