//! Checks nimbus-core against the seed document itself (`docs/contract/004_*.txt`, a verbatim
//! copy of the contract): every example JSON, every event-type table, the topic registry and the
//! consumer-group table. Each check reports what it covered, so CI logs show the coverage.

use std::collections::{BTreeMap, BTreeSet};

use nimbus_core::event::{self, AnyEvent, Envelope, Message, TopicEvent};
use nimbus_core::groups::CONSUMER_GROUPS;
use nimbus_core::topics::{TOPICS, Topic};
use serde_json::Value;

const SEED: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/contract/004_8197c01cb9c83608.txt"));

/// Writes one coverage line straight to stderr: libtest captures `println!`/`eprintln!` of
/// passing tests, not writes to the stream itself.
fn report(what: std::fmt::Arguments) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "seed_contract: {what}");
}

/// The JSON blocks of the seed that are events (the JSON Schema block is not).
fn seed_json_blocks() -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest = SEED;
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + 8..];
        let end = body.find("\n```").expect("unterminated json block in seed");
        let value: Value = serde_json::from_str(&body[..end]).expect("seed json block is valid JSON");
        if value.get("$schema").is_none() {
            out.push(value);
        }
        rest = &body[end..];
    }
    out
}

#[test]
fn every_seed_example_parses_and_reserialises_to_an_equal_value() {
    let examples = seed_json_blocks();
    assert!(examples.len() >= 5, "expected the seed's 5 example events, found {}", examples.len());
    for example in &examples {
        let ty = example["event_type"].as_str().unwrap_or("?");
        let event = AnyEvent::from_value(example.clone()).unwrap_or_else(|e| panic!("seed example {ty}: {e}"));
        assert_eq!(event.to_value(), *example, "seed example {ty} changed in a round trip");
        let text = example.to_string();
        let message = Message::from_json(&text, Some(event.topic())).unwrap();
        assert_eq!(message, Message::Event(Box::new(event)));
    }
    report(format_args!("{} seed example events parsed and re-serialised to equal JSON", examples.len()));
}

/// `## N. Title (`topic`)` sections: the topic and every backticked type in their tables, plus
/// the `#### TYPE` schema headings.
fn seed_event_tables() -> BTreeMap<String, BTreeSet<String>> {
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in SEED.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            current = h.split('`').nth(1).filter(|t| t.contains('.')).map(str::to_owned);
            continue;
        }
        let Some(topic) = &current else { continue };
        let name = if let Some(cell) = line.strip_prefix("| `") {
            cell.split('`').next()
        } else if let Some(h) = line.strip_prefix("#### ") {
            h.split_whitespace().next()
        } else {
            None
        };
        let is_type = |n: &&str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
        if let Some(name) = name.filter(is_type) {
            tables.entry(topic.clone()).or_default().insert(name.to_owned());
        }
    }
    tables
}

#[test]
fn every_event_type_the_seed_lists_is_accepted_on_its_topic() {
    let tables = seed_event_tables();
    assert_eq!(tables.len(), 12, "seed sections with event tables: {:?}", tables.keys());
    let mut count = 0;
    for (topic, types) in &tables {
        let topic: Topic = topic.parse().unwrap();
        for ty in types {
            assert_eq!(event::topic_of(ty), Some(topic), "{ty} should be carried by {topic}");
            count += 1;
        }
        // And nothing beyond the seed's list: every type we accept is named by the seed.
        let ours: BTreeSet<String> =
            event::all_event_types().filter(|(t, _)| *t == topic).map(|(_, ty)| ty.to_owned()).collect();
        assert_eq!(&ours, types, "event types of {topic}");
    }
    report(format_args!("{count} event types listed by the seed, on {} topics, accepted on their topic", tables.len()));
}

fn round_trip<E: TopicEvent>() -> usize {
    for ty in E::EVENT_TYPES {
        let event = E::with_default_payload(ty).unwrap_or_else(|| panic!("no default for {ty}"));
        let envelope =
            Envelope::new("test-service", event).with_correlation_id("req-1").with_metadata("node_id", "room-101");
        assert_eq!(envelope.event_type(), *ty);
        let json = envelope.to_json();
        let back = Envelope::<E>::from_json(&json).unwrap_or_else(|e| panic!("{ty}: {e}\n{json}"));
        assert_eq!(back, envelope, "{ty} typed round trip");
        let any = AnyEvent::from_json(&json).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(any.topic(), E::TOPIC);
        assert_eq!(any.event_type(), *ty);
        assert_eq!(any.to_value(), envelope.to_value(), "{ty} AnyEvent round trip");
        assert!(!any.partition_key().is_empty());
        let message = Message::from_json(&json, None).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(message.topic(), E::TOPIC);
    }
    E::EVENT_TYPES.len()
}

#[test]
fn every_event_type_round_trips_through_envelope_and_any_event() {
    let round_tripped = round_trip::<event::UserEvent>()
        + round_trip::<event::AuthEvent>()
        + round_trip::<event::ContentEvent>()
        + round_trip::<event::NotificationCommand>()
        + round_trip::<event::NotificationStatusEvent>()
        + round_trip::<event::CourseEvent>()
        + round_trip::<event::EnrollmentEvent>()
        + round_trip::<event::TimetableEvent>()
        + round_trip::<event::AttendanceEvent>()
        + round_trip::<event::AnnouncementEvent>()
        + round_trip::<event::CommunicationEvent>()
        + round_trip::<event::AnalyticsEvent>();
    report(format_args!("{round_tripped} event types round-tripped (typed envelope, AnyEvent, Message)"));
}

#[test]
fn topic_registry_matches_the_seed_table() {
    // Rows like: | `user.events` | 6 | 7 days | 3 | User lifecycle events ... |
    let section = SEED.split("### Topic Registry").nth(1).unwrap();
    let section = section.split("###").next().unwrap();
    let mut rows = 0;
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`');
        let spec = TOPICS.iter().find(|s| s.topic.name() == name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(spec.partitions.to_string(), cells[2], "{name} partitions");
        let days: u64 = cells[3].trim_end_matches(" days").trim_end_matches(" day").parse().unwrap();
        assert_eq!(spec.retention.as_secs(), days * 86_400, "{name} retention");
        assert_eq!(cells[4], "3", "{name} production replication");
        assert_eq!(spec.description, cells[5], "{name} description");
        rows += 1;
    }
    assert_eq!(rows, TOPICS.len());
    report(format_args!("{rows} topics match the seed's registry (partitions, retention)"));
}

#[test]
fn consumer_groups_match_the_seed_table() {
    let section = SEED.split("## Consumer Groups").nth(1).unwrap();
    let section = section.split("### Consumer Group Code").next().unwrap();
    let mut rows = 0;
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let id = cells[1].trim_matches('`');
        let group = CONSUMER_GROUPS.iter().find(|g| g.group_id == id).unwrap_or_else(|| panic!("{id}"));
        let ours: Vec<&str> = group.topics.iter().map(|t| t.name()).collect();
        if cells[3] == "All event topics" {
            assert_eq!(ours.len(), 12, "{id}");
        } else {
            let seed: Vec<&str> =
                cells[3].split(',').map(|t| t.trim().trim_matches('`')).filter(|t| *t != "-").collect();
            assert_eq!(ours, seed, "{id} subscriptions");
        }
        rows += 1;
    }
    assert_eq!(rows, CONSUMER_GROUPS.len());
    report(format_args!("{rows} consumer groups match the seed's subscriptions"));
}

#[test]
fn event_type_names_are_unique_and_well_formed() {
    let mut seen = BTreeSet::new();
    for (topic, ty) in event::all_event_types() {
        assert!(seen.insert(ty), "{ty} appears on two topics");
        assert!(ty.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{ty}");
        assert_eq!(event::topic_of(ty), Some(topic));
    }
}
