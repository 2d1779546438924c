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
    let (structs, payloads) = (seed_structs(), seed_payload_structs());
    let mut filled = 0;
    for example in &examples {
        let ty = example["event_type"].as_str().unwrap_or("?");
        let event = AnyEvent::from_value(example.clone()).unwrap_or_else(|e| panic!("seed example {ty}: {e}"));
        let written = event.to_value();
        // An example that leaves out a field its struct declares (SEND_NOTIFICATION's
        // `recipient_phone`) gets it back as the zero value a Go producer writes.
        let mut expected = example.clone();
        for (key, _) in payloads.get(ty).and_then(|p| structs.get(p)).into_iter().flatten() {
            if expected["payload"].get(key).is_none() {
                let zero = written["payload"][key].clone();
                assert!(
                    matches!(&zero, Value::String(s) if s.is_empty())
                        || zero.is_null()
                        || zero == 0
                        || zero == false
                        || zero.as_array().is_some_and(Vec::is_empty)
                        || zero.as_object().is_some_and(|o| o.is_empty()),
                    "{ty}: `{key}` left out by the example is written as {zero}, not a zero value"
                );
                expected["payload"][key] = zero;
                filled += 1;
            }
        }
        assert_eq!(written, expected, "seed example {ty} changed in a round trip");
        let text = example.to_string();
        let message = Message::from_json(&text, Some(event.topic())).unwrap();
        assert_eq!(message, Message::Event(Box::new(event)));
    }
    report(format_args!(
        "{} seed example events parsed and re-serialised to equal JSON ({filled} fields the examples leave out written as zero values)",
        examples.len()
    ));
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

/// The seed's Go structs: name → fields as (JSON key, Go type), in order.
fn seed_structs() -> BTreeMap<String, Vec<(String, String)>> {
    let mut structs = BTreeMap::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for line in SEED.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("type ").and_then(|r| r.strip_suffix(" struct {")) {
            current = Some((rest.trim().to_owned(), Vec::new()));
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                structs.insert(name, fields);
            }
        } else if let Some((_, fields)) = &mut current
            && let Some((decl, tag)) = line.split_once("`json:\"")
        {
            let key = tag.split(['"', ',']).next().unwrap_or_default().to_owned();
            let go_type = decl.split_whitespace().nth(1).unwrap_or_default().to_owned();
            fields.push((key, go_type));
        }
    }
    structs
}

/// `UPPER_SNAKE` of a Go `CamelCase` name.
fn upper_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Event type → the seed's payload struct for it: a `#### TYPE` heading's struct; else the type
/// the `XxxEvent` (or `XxxCommand`) struct is named after; else (`AnalyticsEvent`, `NotificationStatusEvent`) every
/// type of the section's table that has no struct of its own.
fn seed_payload_structs() -> BTreeMap<String, String> {
    let tables = seed_event_tables();
    let mut by_type = BTreeMap::new();
    let mut shared: Vec<(String, String)> = Vec::new(); // (topic, payload struct)
    let (mut topic, mut heading): (Option<String>, Option<String>) = (None, None);
    let mut event_struct: Option<String> = None;
    for line in SEED.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            topic = h.split('`').nth(1).filter(|t| t.contains('.')).map(str::to_owned);
            heading = None;
        } else if let Some(h) = line.strip_prefix("#### ") {
            heading = h.split_whitespace().next().map(str::to_owned);
        } else if let Some(name) = line
            .strip_prefix("type ")
            .and_then(|r| r.strip_suffix("Event struct {").or_else(|| r.strip_suffix("Command struct {")))
        {
            event_struct = Some(name.to_owned());
        } else if let (Some(name), Some(payload)) = (&event_struct, line.trim().strip_prefix("Payload ")) {
            let payload = payload.split_whitespace().next().unwrap().to_owned();
            let Some(t) = &topic else { continue };
            let types = &tables[t];
            let named = upper_snake(name);
            if let Some(h) = heading.take() {
                by_type.insert(h, payload);
            } else if types.contains(&named) {
                by_type.insert(named, payload);
            } else {
                shared.push((t.clone(), payload));
            }
            event_struct = None;
        }
    }
    for (t, payload) in shared {
        for ty in &tables[&t] {
            by_type.entry(ty.clone()).or_insert_with(|| payload.clone());
        }
    }
    by_type
}

/// Whether `value` has the JSON type a Go field of `go_type` is written as. A time may be
/// `null` (ours, when the producer has none; Go reads it as the zero time), a slice or map too
/// (Go's nil).
fn has_go_type(value: &Value, go_type: &str, structs: &BTreeMap<String, Vec<(String, String)>>) -> Result<(), String> {
    let ok = match go_type.trim_start_matches('*') {
        "string" => value.is_string(),
        "int" | "int32" | "int64" | "float64" | "float32" => value.is_number(),
        "bool" => value.is_boolean(),
        "time.Time" => value.is_string() || value.is_null(),
        // Go writes a nil slice or map as null.
        t if t.starts_with("[]") => value.is_array() || value.is_null(),
        t if t.starts_with("map[") => value.is_object() || value.is_null(),
        "interface{}" => true,
        t => match structs.get(t) {
            Some(fields) => return payload_has_seed_keys(value, fields, structs),
            None => return Err(format!("unknown Go type {t}")),
        },
    };
    let null_pointer = go_type.starts_with('*') && value.is_null();
    if ok || null_pointer { Ok(()) } else { Err(format!("{value} is not a Go {go_type}")) }
}

fn payload_has_seed_keys(
    payload: &Value,
    fields: &[(String, String)],
    structs: &BTreeMap<String, Vec<(String, String)>>,
) -> Result<(), String> {
    let Some(object) = payload.as_object() else { return Err(format!("{payload} is not an object")) };
    for (key, go_type) in fields {
        let value = object.get(key).ok_or_else(|| format!("`{key}` missing"))?;
        has_go_type(value, go_type, structs).map_err(|e| format!("`{key}`: {e}"))?;
    }
    Ok(())
}

fn default_payload_of(ty: &str) -> Value {
    fn of<E: TopicEvent>(ty: &str) -> Option<Value> {
        E::with_default_payload(ty).map(|e| Envelope::new("test-service", e).to_value()["payload"].clone())
    }
    of::<event::UserEvent>(ty)
        .or_else(|| of::<event::AuthEvent>(ty))
        .or_else(|| of::<event::ContentEvent>(ty))
        .or_else(|| of::<event::NotificationCommand>(ty))
        .or_else(|| of::<event::NotificationStatusEvent>(ty))
        .or_else(|| of::<event::CourseEvent>(ty))
        .or_else(|| of::<event::EnrollmentEvent>(ty))
        .or_else(|| of::<event::TimetableEvent>(ty))
        .or_else(|| of::<event::AttendanceEvent>(ty))
        .or_else(|| of::<event::AnnouncementEvent>(ty))
        .or_else(|| of::<event::CommunicationEvent>(ty))
        .or_else(|| of::<event::AnalyticsEvent>(ty))
        .unwrap_or_else(|| panic!("no default payload for {ty}"))
}

#[test]
fn every_event_with_a_seed_struct_writes_every_field_of_it_even_when_empty() {
    let structs = seed_structs();
    let payloads = seed_payload_structs();
    assert!(payloads.len() >= 20, "seed payload structs found for {} types: {payloads:?}", payloads.len());
    let mut failures = Vec::new();
    for (ty, payload_struct) in &payloads {
        let fields = structs.get(payload_struct).unwrap_or_else(|| panic!("{payload_struct} not in the seed"));
        // The emptiest payload the code can produce: every optional field absent.
        let payload = default_payload_of(ty);
        if let Err(e) = payload_has_seed_keys(&payload, fields, &structs) {
            failures.push(format!("{ty} ({payload_struct}): {e} in {payload}"));
        }
    }
    assert!(failures.is_empty(), "payloads without the seed's fields:\n{}", failures.join("\n"));
    report(format_args!(
        "{} event types write every field of their seed struct ({} structs) even when empty",
        payloads.len(),
        payloads.values().collect::<BTreeSet<_>>().len()
    ));
}
