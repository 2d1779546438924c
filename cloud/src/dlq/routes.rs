//! The dead-letter queue for admins: list and inspect the letters in `dlq.events` and replay one
//! or all of them to their original topic (with the original key, so per-key order holds).
//!
//! The letters stay in Kafka (30 days' retention, per the seed); each request reads the topic
//! from its low watermark with a group-less consumer, so what the API shows is exactly what the
//! topic holds. Replays are recorded in the registry (`dlq_replays`) so "replay all" does not
//! resend what was already replayed unless asked to (`force`); resending is harmless anyway
//! because every consumer is idempotent on `event_id`.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use nimbus_core::topics::Topic;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, FieldError, Result};
use crate::http::ServicesState;
use crate::http::{Access, ApiPath, ApiRoutes, AppError};
use crate::http::{Acting, Listing, Params};
use crate::listing::Page;

const READ: Access = Access::Permission("dlq:read");
const WRITE: Access = Access::Permission("dlq:write");
/// How long one read of the topic may take.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// One dead letter, with its place in `dlq.events` as id (`partition-offset`).
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    /// `partition-offset` in `dlq.events`.
    pub id: String,
    /// Where the message came from and where a replay sends it.
    pub original_topic: String,
    /// The original message key.
    pub original_key: String,
    /// The original message's `event_type`, when it was a seed envelope.
    pub event_type: Option<String>,
    /// The service that gave up.
    pub service_name: String,
    /// Its consumer group.
    pub consumer_group: String,
    /// Why it gave up.
    pub failure_reason: String,
    /// Attempts made.
    pub failure_count: u64,
    /// When the last attempt failed.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When an admin last replayed it, if ever.
    pub replayed_at: Option<DateTime<Utc>>,
    /// The whole dead letter (the seed's `DeadLetterEvent`), on the inspect route only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub letter: Option<Value>,
    #[serde(skip)]
    partition: i32,
    #[serde(skip)]
    offset: i64,
    #[serde(skip)]
    original_event: Value,
}

/// Filters of the list (and of "replay all").
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LetterFilter {
    /// Only letters from this topic.
    pub original_topic: Option<String>,
    /// Only letters of this service.
    pub service: Option<String>,
    /// Only letters with this original key (one node's, one student's, …).
    pub original_key: Option<String>,
    /// Only (not) yet replayed letters.
    pub replayed: Option<bool>,
}

impl crate::listing::Sorted for LetterFilter {
    const SORT: &'static [(&'static str, &'static str)] = &[("id", "id"), ("last_attempt_at", "last_attempt_at")];
}

/// `POST /api/v1/dlq/replay` options.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReplayAll {
    /// Only letters from this topic.
    pub original_topic: Option<String>,
    /// Only letters of this service.
    pub service: Option<String>,
    /// Only letters with this original key.
    pub original_key: Option<String>,
    /// Also replay letters already replayed.
    pub force: Option<bool>,
}

/// What a replay did.
#[derive(Debug, Serialize)]
pub struct ReplayOutcome {
    /// Letters produced to their original topic (and confirmed by the broker).
    pub replayed: usize,
    /// Letters skipped because they were replayed before.
    pub skipped: usize,
    /// Letters that failed, with why.
    pub failed: Vec<Value>,
}

/// The DLQ routes.
pub fn routes() -> ApiRoutes<ServicesState> {
    ApiRoutes::new()
        .route(Method::GET, "/api/v1/dlq", READ, get(list_letters))
        .route(Method::GET, "/api/v1/dlq/:id", READ, get(get_letter))
        .route(Method::POST, "/api/v1/dlq/:id/replay", WRITE, post(replay_one))
        .route(Method::POST, "/api/v1/dlq/replay", WRITE, post(replay_all))
}

/// The DLQ routes' OpenAPI paths.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_letters, get_letter, replay_one, replay_all))]
pub struct Doc;

/// Every letter in `dlq.events`, oldest first per partition, with its replay record.
pub async fn letters(s: &ServicesState) -> Result<Vec<Letter>> {
    let brokers = s.brokers.clone();
    let mut letters = tokio::task::spawn_blocking(move || read_topic(&brokers))
        .await
        .map_err(|e| Error::kafka("dlq reader", e))??;
    let c = s.registry.get().await?;
    let rows = c.query("SELECT dlq_partition, dlq_offset, replayed_at FROM dlq_replays", &[]).await?;
    for r in rows {
        let (p, o, at): (i32, i64, DateTime<Utc>) = (r.get(0), r.get(1), r.get(2));
        if let Some(l) = letters.iter_mut().find(|l| l.partition == p && l.offset == o) {
            l.replayed_at = Some(at);
        }
    }
    Ok(letters)
}

fn read_topic(brokers: &str) -> Result<Vec<Letter>> {
    let kafka = |e: rdkafka::error::KafkaError| Error::kafka("dlq reader", e);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "nimbus-api-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(kafka)?;
    let topic = Topic::Dlq.name();
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..Topic::Dlq.spec().partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, READ_TIMEOUT).map_err(kafka)?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low)).map_err(kafka)?;
            ends.push((p, high));
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl).map_err(kafka)?;
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut next: Vec<(i32, i64)> = ends.iter().map(|(p, _)| (*p, 0)).collect();
    while ends.iter().zip(&next).any(|((_, high), (_, seen))| seen < high) {
        if Instant::now() > deadline {
            return Err(Error::kafka_msg("dlq reader: timed out reading dlq.events"));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else { continue };
        let msg = msg.map_err(kafka)?;
        if let Some(n) = next.iter_mut().find(|(p, _)| *p == msg.partition()) {
            n.1 = msg.offset() + 1;
        }
        out.push(letter(msg.partition(), msg.offset(), msg.payload().unwrap_or_default()));
    }
    Ok(out)
}

/// A letter from its bytes; a payload that is not a dead letter is still listed (as unreadable)
/// rather than hidden.
fn letter(partition: i32, offset: i64, payload: &[u8]) -> Letter {
    let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let original_event = v.get("original_event").cloned().unwrap_or(Value::Null);
    Letter {
        id: format!("{partition}-{offset}"),
        original_topic: text("original_topic"),
        original_key: text("original_key"),
        event_type: original_event.get("event_type").and_then(Value::as_str).map(str::to_owned),
        service_name: text("service_name"),
        consumer_group: text("consumer_group"),
        failure_reason: if v.is_null() { "unreadable dead letter".into() } else { text("failure_reason") },
        failure_count: v.get("failure_count").and_then(Value::as_u64).unwrap_or(0),
        last_attempt_at: v.get("last_attempt_at").and_then(Value::as_str).and_then(|t| t.parse().ok()),
        replayed_at: None,
        letter: None,
        partition,
        offset,
        original_event,
    }
    .with_letter(v)
}

impl Letter {
    fn with_letter(mut self, v: Value) -> Self {
        self.letter = Some(v);
        self
    }

    fn matches(&self, f: &LetterFilter) -> bool {
        f.original_topic.as_deref().is_none_or(|t| t == self.original_topic)
            && f.service.as_deref().is_none_or(|s| s == self.service_name)
            && f.original_key.as_deref().is_none_or(|k| k == self.original_key)
            && f.replayed.is_none_or(|r| r == self.replayed_at.is_some())
    }
}

#[utoipa::path(get, path = "/api/v1/dlq", tag = "dlq", params(LetterFilter, crate::listing::Paging<LetterFilter>), responses((status = 200, description = "A page of dead letters")))]
async fn list_letters(
    State(s): State<ServicesState>,
    l: Listing<LetterFilter>,
) -> Result<Json<Page<Letter>>, AppError> {
    let (limit, offset, _) = l.query.resolve(<LetterFilter as crate::listing::Sorted>::SORT)?;
    let mut all: Vec<Letter> =
        letters(&s).await.map_err(answer)?.into_iter().filter(|x| x.matches(&l.filter)).collect();
    match l.query.sort.as_deref() {
        Some("last_attempt_at") => all.sort_by_key(|x| x.last_attempt_at),
        Some("-last_attempt_at") => all.sort_by_key(|x| std::cmp::Reverse(x.last_attempt_at)),
        Some("-id") => all.sort_by_key(|x| std::cmp::Reverse((x.partition, x.offset))),
        _ => all.sort_by_key(|x| (x.partition, x.offset)),
    }
    let total = all.len() as i64;
    let items = all
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|mut x| {
            x.letter = None;
            x
        })
        .collect();
    Ok(Json(Page { items, total, limit, offset }))
}

/// A letter's id as the document states it: `<partition>-<offset>`, decimal digits only (at
/// most 9 and 18 of them, so that every id of this shape fits `i32`/`i64`).
const ID_PATTERN: &str = "^[0-9]{1,9}-[0-9]{1,18}$";

fn parse_id(id: &str) -> Result<(i32, i64)> {
    let digits = |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    id.split_once('-')
        .filter(|(p, o)| digits(p, 9) && digits(o, 18))
        .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)))
        .ok_or_else(|| {
            Error::Validation(vec![FieldError::new("id", format!("must be <partition>-<offset> ({ID_PATTERN})"))])
        })
}

/// The answer for an error: Kafka being unreachable is a 503 (the broker is a dependency), the
/// rest as every route answers them.
fn answer(e: Error) -> AppError {
    match e {
        e @ Error::Kafka { .. } => {
            tracing::warn!(error = %e, "dead-letter queue unavailable");
            AppError::unavailable("Kafka is unavailable")
        }
        e => e.into(),
    }
}

async fn find(s: &ServicesState, id: &str) -> Result<Letter> {
    let (p, o) = parse_id(id)?;
    letters(s)
        .await?
        .into_iter()
        .find(|l| l.partition == p && l.offset == o)
        .ok_or_else(|| Error::NotFound { what: "dead letter", id: id.to_owned() })
}

#[utoipa::path(get, path = "/api/v1/dlq/{id}", tag = "dlq", params(("id" = String, Path, description = "`<partition>-<offset>` in `dlq.events`", pattern = "^[0-9]{1,9}-[0-9]{1,18}$")), responses((status = 200, description = "The dead letter with the original event"), (status = 404, description = "No such letter")))]
async fn get_letter(State(s): State<ServicesState>, ApiPath(id): ApiPath<String>) -> Result<Json<Letter>, AppError> {
    Ok(Json(find(&s, &id).await.map_err(answer)?))
}

/// Produces the original event to its topic and records the replay.
async fn replay(s: &ServicesState, l: &Letter, by: &str) -> Result<()> {
    // What the letter holds cannot be replayed: a conflict with the letter, not a bad request.
    let unplayable = |why: &str| Error::Conflict {
        message: format!("the letter cannot be replayed: {why}"),
        details: serde_json::json!({ "id": l.id, "original_topic": l.original_topic }),
    };
    let topic: Topic = l.original_topic.parse().map_err(|_| unplayable("its topic is not one of the contract"))?;
    if topic == Topic::Dlq {
        return Err(unplayable("it came from the dead-letter queue itself"));
    }
    let payload = match &l.original_event {
        // Bytes that were not JSON were kept as a JSON string: send them as they came.
        Value::String(raw) => raw.clone().into_bytes(),
        Value::Null => return Err(unplayable("it holds no original event")),
        v => serde_json::to_vec(v)?,
    };
    let record = FutureRecord::to(topic.name()).key(l.original_key.as_bytes()).payload(&payload);
    s.producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| Error::kafka("replay", e))?;
    let c = s.registry.get().await?;
    c.execute(
        "INSERT INTO dlq_replays (dlq_partition, dlq_offset, original_topic, replayed_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (dlq_partition, dlq_offset) DO UPDATE
             SET replayed_at = now(), replayed_by = excluded.replayed_by, replays = dlq_replays.replays + 1",
        &[&l.partition, &l.offset, &topic.name(), &by],
    )
    .await?;
    tracing::info!(letter = %l.id, topic = topic.name(), by, "dead letter replayed");
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/dlq/{id}/replay", tag = "dlq", params(("id" = String, Path, description = "`<partition>-<offset>` in `dlq.events`", pattern = "^[0-9]{1,9}-[0-9]{1,18}$")), responses((status = 200, description = "Replayed to the original topic"), (status = 404, description = "No such letter"), (status = 409, description = "The letter cannot be replayed (no original event, or not a topic of the contract)")))]
async fn replay_one(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReplayOutcome>, AppError> {
    let l = find(&s, &id).await.map_err(answer)?;
    replay(&s, &l, a.user_id.as_deref().unwrap_or("")).await.map_err(answer)?;
    Ok(Json(ReplayOutcome { replayed: 1, skipped: 0, failed: Vec::new() }))
}

#[utoipa::path(post, path = "/api/v1/dlq/replay", tag = "dlq", params(ReplayAll), responses((status = 200, description = "How many were replayed, skipped, failed")))]
async fn replay_all(
    State(s): State<ServicesState>,
    Acting(a): Acting,
    Params(q): Params<ReplayAll>,
) -> Result<Json<ReplayOutcome>, AppError> {
    let filter = LetterFilter {
        original_topic: q.original_topic,
        service: q.service,
        original_key: q.original_key,
        replayed: None,
    };
    let by = a.user_id.unwrap_or_default();
    let mut outcome = ReplayOutcome { replayed: 0, skipped: 0, failed: Vec::new() };
    for l in letters(&s).await.map_err(answer)?.iter().filter(|l| l.matches(&filter)) {
        if l.replayed_at.is_some() && !q.force.unwrap_or(false) {
            outcome.skipped += 1;
            continue;
        }
        match replay(&s, l, &by).await {
            Ok(()) => outcome.replayed += 1,
            Err(e) => outcome.failed.push(serde_json::json!({ "id": l.id, "error": e.to_string() })),
        }
    }
    Ok(Json(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_ids_are_partition_and_offset() {
        assert_eq!(parse_id("2-15").unwrap(), (2, 15));
        assert_eq!(parse_id("999999999-999999999999999999").unwrap(), (999_999_999, 999_999_999_999_999_999));
        for bad in
            ["", "2", "x-1", "1-y", "../1", "+1-2", "1-+2", "1-2-3", " 1-2", "1234567890-1", "1-1234567890123456789"]
        {
            assert!(matches!(parse_id(bad), Err(Error::Validation(_))), "{bad}");
        }
    }

    #[test]
    fn the_document_states_the_id_pattern_the_parser_checks() {
        use utoipa::OpenApi as _;
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        for (path, method) in [("/api/v1/dlq/{id}", "get"), ("/api/v1/dlq/{id}/replay", "post")] {
            let params = &doc["paths"][path][method]["parameters"];
            assert_eq!(params[0]["schema"]["pattern"], ID_PATTERN, "{path}");
        }
    }

    #[test]
    fn an_unreadable_payload_is_listed_not_hidden() {
        let l = letter(0, 3, b"not json");
        assert_eq!((l.id.as_str(), l.failure_reason.as_str()), ("0-3", "unreadable dead letter"));
        let l = letter(1, 4, br#"{"original_topic":"attendance.events","original_event":{"event_type":"ATTENDANCE_MARKED"},"original_key":"k","failure_count":3}"#);
        assert_eq!(l.event_type.as_deref(), Some("ATTENDANCE_MARKED"));
        assert!(l.matches(&LetterFilter { original_topic: Some("attendance.events".into()), ..Default::default() }));
        assert!(!l.matches(&LetterFilter { replayed: Some(true), ..Default::default() }));
    }
}
