//! `nimbus-cloud events …`: validate messages against the seed contract and print the registries.

use std::fmt::Write as _;

use nimbus_core::event::{EventError, Message};
use nimbus_core::groups::CONSUMER_GROUPS;
use nimbus_core::topics::{Environment, TOPICS, Topic};
use serde_json::Value;

/// The verdict on one message of the input.
#[derive(Debug)]
pub struct Verdict {
    /// Where in the input: `None` for a single document, else `line N` or `item N`.
    pub location: Option<String>,
    /// What the message is, or what is wrong with it.
    pub result: Result<String, EventError>,
}

/// Validates `text`: one JSON event, a JSON array of events, or JSON lines (one event per line).
/// With `topic`, every message must belong to it; without, dead letters are recognised by shape
/// and events are routed by `event_type`.
pub fn validate(text: &str, topic: Option<Topic>) -> Vec<Verdict> {
    let check = |value: &Value| Message::from_json(&value.to_string(), topic).map(|m| m.describe());
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| Verdict { location: Some(format!("item {}", i + 1)), result: check(v) })
            .collect(),
        Ok(value) => vec![Verdict { location: None, result: check(&value) }],
        Err(_) => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| Verdict {
                location: Some(format!("line {}", i + 1)),
                result: Message::from_json(line, topic).map(|m| m.describe()),
            })
            .collect(),
    }
}

/// Renders verdicts for a terminal, one per line, with a summary when there are several.
pub fn render(verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    for v in verdicts {
        let at = v.location.as_deref().map(|l| format!("{l}: ")).unwrap_or_default();
        match &v.result {
            Ok(what) => writeln!(out, "{at}valid: {what}"),
            Err(e) => writeln!(out, "{at}invalid: {e}"),
        }
        .ok();
    }
    if verdicts.is_empty() {
        out.push_str("invalid: no event in the input\n");
    } else if verdicts.len() > 1 {
        let bad = verdicts.iter().filter(|v| v.result.is_err()).count();
        writeln!(out, "{} valid, {bad} invalid", verdicts.len() - bad).ok();
    }
    out
}

/// True when the input held at least one message and all were valid.
pub fn all_valid(verdicts: &[Verdict]) -> bool {
    !verdicts.is_empty() && verdicts.iter().all(|v| v.result.is_ok())
}

/// The topic registry as a table.
pub fn topics_table(env: Environment) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "{:<22} {:>10} {:>9} {:>11} {:>7}  {:<40} description",
        "topic", "partitions", "retention", "replication", "min.isr", "key"
    )
    .ok();
    for spec in TOPICS {
        writeln!(
            out,
            "{:<22} {:>10} {:>8}d {:>11} {:>7}  {:<40} {}",
            spec.topic.name(),
            spec.partitions,
            spec.retention.as_secs() / 86_400,
            env.replication_factor(),
            env.min_insync_replicas(),
            spec.key_rule,
            spec.description
        )
        .ok();
    }
    out
}

/// The topic registry as JSON, for scripts.
pub fn topics_json(env: Environment) -> Value {
    let topics = TOPICS
        .iter()
        .map(|spec| {
            serde_json::json!({
                "name": spec.topic.name(),
                "partitions": spec.partitions,
                "retention_ms": spec.retention.as_millis() as u64,
                "replication_factor": env.replication_factor(),
                "min_insync_replicas": env.min_insync_replicas(),
                "key": spec.key_rule,
                "description": spec.description,
            })
        })
        .collect();
    Value::Array(topics)
}

/// The consumer-group registry as a table.
pub fn groups_table() -> String {
    let mut out = String::new();
    writeln!(out, "{:<30} {:<24} topics", "group", "service").ok();
    for g in CONSUMER_GROUPS {
        let topics: Vec<&str> = g.topics.iter().map(|t| t.name()).collect();
        let topics = if topics.is_empty() { "-".to_owned() } else { topics.join(", ") };
        writeln!(out, "{:<30} {:<24} {topics}", g.group_id, g.service).ok();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"event_id":"550e8400-e29b-41d4-a716-446655440000","event_type":"USER_ACTIVATED","event_version":"1.0","timestamp":"2024-12-27T10:30:00Z","service_name":"user-service","payload":{"user_id":"u1","status":"active","changed_by":"admin","changed_at":"2024-12-27T10:30:00Z"}}"#;

    #[test]
    fn a_single_document_gets_one_verdict_without_location() {
        let v = validate(GOOD, None);
        assert_eq!(v.len(), 1);
        assert!(v[0].location.is_none());
        assert!(all_valid(&v));
        assert!(render(&v).starts_with("valid: USER_ACTIVATED on user.events"));
    }

    #[test]
    fn json_lines_get_a_verdict_per_line_and_blank_lines_are_skipped() {
        let bad = GOOD.replace("USER_ACTIVATED", "user_activated");
        let text = format!("{GOOD}\n\n{bad}\n");
        let v = validate(&text, None);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].location.as_deref(), Some("line 3"));
        assert!(!all_valid(&v));
        let out = render(&v);
        assert!(out.contains("line 3: invalid: event_type:"), "{out}");
        assert!(out.ends_with("1 valid, 1 invalid\n"), "{out}");
    }

    #[test]
    fn a_topic_restriction_rejects_events_of_other_topics() {
        let v = validate(GOOD, Some(Topic::AttendanceEvents));
        let err = v[0].result.as_ref().unwrap_err();
        assert_eq!(err.field_path(), Some("event_type"));
    }

    #[test]
    fn empty_input_is_not_valid() {
        let v = validate("  \n", None);
        assert!(!all_valid(&v));
        assert!(render(&v).contains("no event"));
    }

    #[test]
    fn topics_table_lists_all_thirteen_with_environment_replication() {
        let t = topics_table(Environment::Production);
        assert_eq!(t.lines().count(), 14);
        assert!(t.lines().any(|l| l.starts_with("content.events") && l.contains(" 12 ") && l.contains(" 3 ")));
        let j = topics_json(Environment::Development);
        assert_eq!(j.as_array().unwrap().len(), 13);
        assert_eq!(j[12]["name"], "dlq.events");
        assert_eq!(j[12]["retention_ms"], 30 * 86_400_000u64);
        assert_eq!(j[0]["replication_factor"], 1);
    }
}
