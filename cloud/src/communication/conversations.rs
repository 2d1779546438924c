//! Conversations and who is in them: start a direct conversation (one per pair) or a group,
//! add and remove participants, leave, archive, and each person's list with unread counts.
//! Every change and its `communication.events` event are one transaction (the outbox).

use chrono::{DateTime, Utc};
use nimbus_core::event::CommunicationEvent;
use nimbus_core::event::communication::{ConversationArchivedPayload, ConversationCreatedPayload, ParticipantPayload};
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::{SERVICE, fields};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};

/// Most participants a group conversation may have.
pub const MAX_PARTICIPANTS: usize = 500;

/// A conversation to start.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "conversation_type": "group", "title": "Lab 3", "participant_ids": ["8d0c2f4e-3b7a-4c1e-9f6a-2d5b8e7c1a90"] }))]
pub struct NewConversation {
    /// `direct` (exactly one other person), `group` (2 to 500 people, the caller included), or
    /// `course` (the course's enrolled students, started by a faculty member who teaches it; one
    /// per course). The rules between the fields are a 422.
    #[schema(schema_with = conversation_types)]
    pub conversation_type: String,
    /// A group's or course conversation's name (1–200 characters); a direct one has none.
    #[serde(default)]
    #[schema(schema_with = maybe_title)]
    pub title: Option<String>,
    /// The other people (active users' ids); the caller is added. Empty for a course
    /// conversation.
    #[serde(default)]
    #[schema(schema_with = fields::uuid_list)]
    pub participant_ids: Vec<String>,
    /// The course of a course conversation.
    #[serde(default)]
    #[schema(schema_with = maybe_course)]
    pub course_id: Option<String>,
}

fn maybe_title() -> utoipa::openapi::Object {
    fields::text_schema(Some(200), true)
}

fn maybe_course() -> utoipa::openapi::Object {
    fields::text_schema(Some(100), true)
}

/// The kinds of conversation.
pub const CONVERSATION_TYPES: &[&str] = &["direct", "group", "course"];

fn conversation_types() -> utoipa::openapi::Object {
    crate::http::schema::one_of(CONVERSATION_TYPES)
}

/// A participant as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Participant {
    /// User id.
    pub user_id: String,
    /// Name from the user service (the e-mail address when the profile has none).
    pub name: String,
    /// `owner` or `member`.
    pub role: String,
}

/// A conversation as one participant sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    /// Its id.
    pub id: Uuid,
    /// `direct` or `group`.
    pub conversation_type: String,
    /// A group's name.
    pub title: Option<String>,
    /// Who started it.
    pub created_by: String,
    /// The current participants.
    pub participants: Vec<Participant>,
    /// The newest message's sequence number (0: none yet).
    pub last_seq: i64,
    /// When the newest message was sent.
    pub last_message_at: Option<DateTime<Utc>>,
    /// Messages after the caller's read position, not counting their own.
    pub unread: i64,
    /// Set once archived (read-only from then on).
    pub archived_at: Option<DateTime<Utc>>,
    /// Started.
    pub created_at: DateTime<Utc>,
}

/// What the conversation is to a participant, read under a lock (see [`membership`]).
#[derive(Debug, Clone)]
pub struct Membership {
    /// `direct` or `group`.
    pub conversation_type: String,
    /// `owner` or `member`.
    pub role: String,
    /// Archived: nothing changes any more.
    pub archived: bool,
}

/// The caller's membership of `id`, locking the conversation row (`FOR UPDATE` when `write`, so
/// messages and membership changes of one conversation apply one after the other). Anyone who
/// is not a current participant gets the same 404 as for a conversation that does not exist.
pub async fn membership(tx: &Transaction<'_>, id: Uuid, user: &str, write: bool) -> Result<Membership> {
    let lock = if write { "FOR UPDATE OF c" } else { "FOR SHARE OF c" };
    let row = tx
        .query_opt(
            &format!(
                "SELECT c.conversation_type, p.role, c.archived_at IS NOT NULL
                 FROM conversations c JOIN conversation_participants p ON p.conversation_id = c.id
                 WHERE c.id = $1 AND p.user_id = $2 AND p.left_at IS NULL {lock}"
            ),
            &[&id, &user],
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Membership { conversation_type: row.get(0), role: row.get(1), archived: row.get(2) })
}

pub(crate) fn not_found(id: Uuid) -> Error {
    Error::NotFound { what: "conversation", id: id.to_string() }
}

/// For each of `ids`, in order: `Some(true)` for an active user, `Some(false)` for one the user
/// service says is not active or this service has heard is inactive, `None` for no user.
async fn activity(db: &impl GenericClient, users: &impl GenericClient, ids: &[String]) -> Result<Vec<Option<bool>>> {
    let contacts = crate::user::directory::contacts(users, ids).await?;
    let inactive: Vec<String> = db
        .query("SELECT user_id FROM inactive_users WHERE user_id = ANY($1)", &[&ids])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(ids
        .iter()
        .map(|id| contacts.iter().find(|c| &c.user_id == id).map(|c| c.active && !inactive.contains(id)))
        .collect())
}

/// Refuses people who are not active users, naming each in `field` (422: the ids are well
/// formed, the rows they refer to are missing or inactive).
pub(crate) async fn active_people(
    db: &impl GenericClient,
    users: &impl GenericClient,
    ids: &[String],
    field: &str,
) -> Result<()> {
    let errors: Vec<FieldError> = ids
        .iter()
        .zip(activity(db, users, ids).await?)
        .filter_map(|(id, active)| match active {
            Some(true) => None,
            Some(false) => Some(FieldError::new(field, format!("{id} is not an active user"))),
            None => Some(FieldError::new(field, format!("{id} is not a user"))),
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(Error::Unprocessable(errors)) }
}

/// Those of `ids` who are active users (for members taken from elsewhere, such as a course's
/// students: the inactive are left out rather than refused).
async fn still_active(db: &impl GenericClient, users: &impl GenericClient, ids: &[String]) -> Result<Vec<String>> {
    let activity = activity(db, users, ids).await?;
    Ok(ids.iter().zip(activity).filter(|(_, a)| *a == Some(true)).map(|(id, _)| id.clone()).collect())
}

/// Refuses a caller the service has heard is suspended or otherwise inactive (their token may
/// still be valid for a moment: the user service revokes it, this is the service's own check).
pub(crate) async fn ensure_active(db: &impl GenericClient, user: &str) -> Result<()> {
    match db.query_opt("SELECT status FROM inactive_users WHERE user_id = $1", &[&user]).await? {
        Some(r) => Err(Error::Forbidden(format!("the account is {}", r.get::<_, String>(0)))),
        None => Ok(()),
    }
}

/// Checks a new conversation: each field on its own (400), then the rules of its type (422).
/// Returns the other people, once each.
fn validate(n: &NewConversation, caller: &str) -> Result<Vec<String>> {
    let mut errors = Vec::new();
    if !CONVERSATION_TYPES.contains(&n.conversation_type.as_str()) {
        errors.push(FieldError::new("conversation_type", "must be direct, group or course"));
    }
    if let Some(title) = &n.title {
        fields::text(&mut errors, "title", title, 200);
    }
    if let Some(id) = n.participant_ids.iter().find(|id| !fields::is_uuid(id)) {
        let shown: String = id.chars().take(40).collect();
        errors.push(FieldError::new("participant_ids", format!("{shown:?} is not a user id")));
    }
    if let Some(course) = &n.course_id {
        fields::text(&mut errors, "course_id", course, 100);
    }
    crate::listing::finish(errors)?;
    let mut rules = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for id in &n.participant_ids {
        if id != caller && !others.iter().any(|o| o == id) {
            others.push(id.clone());
        }
    }
    match n.conversation_type.as_str() {
        "direct" => {
            if others.len() != 1 {
                rules.push(FieldError::new("participant_ids", "a direct conversation has exactly one other person"));
            }
            if n.title.is_some() {
                rules.push(FieldError::new("title", "a direct conversation has no title"));
            }
        }
        "group" => {
            if others.is_empty() || others.len() + 1 > MAX_PARTICIPANTS {
                rules.push(FieldError::new(
                    "participant_ids",
                    format!("a group has 2 to {MAX_PARTICIPANTS} participants, the caller included"),
                ));
            }
        }
        _ => {
            if n.course_id.is_none() {
                rules.push(FieldError::new("course_id", "a course conversation names its course"));
            }
            if !n.participant_ids.is_empty() {
                rules.push(FieldError::new("participant_ids", "a course conversation's members are the course's"));
            }
        }
    }
    // Groups and course conversations have a name.
    if n.conversation_type != "direct" && n.title.is_none() {
        rules.push(FieldError::new("title", "needs a title of 1 to 200 characters"));
    }
    if n.conversation_type != "course" && n.course_id.is_some() {
        rules.push(FieldError::new("course_id", "only a course conversation names a course"));
    }
    crate::listing::finish_rules(rules)?;
    Ok(others)
}

/// Starts a conversation; `(conversation, true)` when it is new. Starting a direct conversation
/// with someone the caller already has one with gives that one (unarchived), even when both
/// start it at the same moment.
pub async fn start(
    db: &mut deadpool_postgres::Object,
    users: &impl GenericClient,
    courses: &impl GenericClient,
    actor: &Actor,
    caller: &str,
    n: NewConversation,
) -> Result<(Conversation, bool)> {
    let mut others = validate(&n, caller)?;
    ensure_active(&***db, caller).await?;
    if let Some(course) = &n.course_id {
        if crate::course::audience::role_in_course(courses, caller, course).await? != Some("faculty") {
            return Err(Error::Forbidden("only faculty who teach the course start its conversation".into()));
        }
        let enrolled = crate::course::audience::enrolled_students(courses, std::slice::from_ref(course)).await?;
        others = still_active(&***db, users, &enrolled).await?;
    } else {
        active_people(&***db, users, &others, "participant_ids").await?;
    }
    let tx = db.transaction().await?;
    let id = Uuid::new_v4();
    let pair = (n.conversation_type == "direct").then(|| {
        let mut two = [caller.to_owned(), others[0].clone()];
        two.sort();
        two.join(":")
    });
    let title = n.title.as_deref().map(str::trim).map(str::to_owned);
    let inserted = tx
        .execute(
            "INSERT INTO conversations (id, conversation_type, title, created_by, direct_pair, course_id)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[&id, &n.conversation_type, &title, &caller, &pair, &n.course_id],
        )
        .await?;
    if inserted == 0 {
        // The pair already talks, or the course has its conversation: that one (reopened; for a
        // course, with the students enrolled since added).
        let existing: Uuid = tx
            .query_one("SELECT id FROM conversations WHERE direct_pair = $1 OR course_id = $2", &[&pair, &n.course_id])
            .await?
            .get(0);
        tx.execute("UPDATE conversations SET archived_at = NULL WHERE id = $1", &[&existing]).await?;
        if n.course_id.is_some() {
            let joined = tx
                .query(
                    "INSERT INTO conversation_participants (conversation_id, user_id, role)
                     SELECT $1, unnest($2::text[]), 'member' ON CONFLICT DO NOTHING RETURNING user_id",
                    &[&existing, &others],
                )
                .await?;
            for r in &joined {
                let event = participant_event(existing, r.get::<_, &str>(0), caller);
                crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::ParticipantAdded(event)).await?;
            }
        }
        tx.commit().await?;
        return Ok((get(&***db, users, existing, caller).await?, false));
    }
    let mut everyone = vec![caller.to_owned()];
    everyone.extend(others);
    for (i, user) in everyone.iter().enumerate() {
        let role = if i == 0 && n.conversation_type != "direct" { "owner" } else { "member" };
        tx.execute(
            "INSERT INTO conversation_participants (conversation_id, user_id, role) VALUES ($1, $2, $3)",
            &[&id, user, &role],
        )
        .await?;
    }
    let created_at: DateTime<Utc> =
        tx.query_one("SELECT created_at FROM conversations WHERE id = $1", &[&id]).await?.get(0);
    let event = ConversationCreatedPayload {
        conversation_id: id.to_string(),
        conversation_type: n.conversation_type.clone(),
        title,
        created_by: caller.to_owned(),
        participant_ids: everyone,
        created_at,
    };
    crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::ConversationCreated(event)).await?;
    tx.commit().await?;
    Ok((get(&***db, users, id, caller).await?, true))
}

/// Adds `user` to a group; only its owner may. Adding a current participant changes nothing.
pub async fn add(
    db: &mut deadpool_postgres::Object,
    users: &impl GenericClient,
    actor: &Actor,
    caller: &str,
    id: Uuid,
    user: &str,
) -> Result<()> {
    if !fields::is_uuid(user) {
        return Err(Error::Validation(vec![FieldError::new("user_id", "not a user id")]));
    }
    active_people(&***db, users, &[user.to_owned()], "user_id").await?;
    let tx = db.transaction().await?;
    let m = membership(&tx, id, caller, true).await?;
    owner_of_open_group(&m)?;
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM conversation_participants WHERE conversation_id = $1 AND left_at IS NULL",
            &[&id],
        )
        .await?
        .get(0);
    if count as usize >= MAX_PARTICIPANTS {
        return Err(conflict(format!("a group has at most {MAX_PARTICIPANTS} participants")));
    }
    let changed = tx
        .execute(
            "INSERT INTO conversation_participants (conversation_id, user_id, role) VALUES ($1, $2, 'member')
             ON CONFLICT (conversation_id, user_id) DO UPDATE SET left_at = NULL, joined_at = now()
             WHERE conversation_participants.left_at IS NOT NULL",
            &[&id, &user],
        )
        .await?;
    if changed > 0 {
        let event = participant_event(id, user, caller);
        crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::ParticipantAdded(event)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Removes `user` from a group: the owner removes anyone else; anyone may leave (remove
/// themselves). An owner who leaves hands the group to the longest-standing member.
pub async fn remove(
    db: &mut deadpool_postgres::Object,
    actor: &Actor,
    caller: &str,
    id: Uuid,
    user: &str,
) -> Result<()> {
    let tx = db.transaction().await?;
    let m = membership(&tx, id, caller, true).await?;
    if m.conversation_type == "direct" {
        return Err(conflict("a direct conversation keeps its two participants; archive it instead".into()));
    }
    if user != caller {
        owner_of_open_group(&m)?;
    }
    let left = tx
        .execute(
            "UPDATE conversation_participants SET left_at = now(), role = 'member'
             WHERE conversation_id = $1 AND user_id = $2 AND left_at IS NULL",
            &[&id, &user],
        )
        .await?;
    if left == 0 {
        return Err(Error::NotFound { what: "participant", id: user.to_owned() });
    }
    if user == caller && m.role == "owner" {
        tx.execute(
            "UPDATE conversation_participants SET role = 'owner'
             WHERE (conversation_id, user_id) = (SELECT conversation_id, user_id FROM conversation_participants
                 WHERE conversation_id = $1 AND left_at IS NULL ORDER BY joined_at, user_id LIMIT 1)",
            &[&id],
        )
        .await?;
    }
    let event = participant_event(id, user, caller);
    crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::ParticipantRemoved(event)).await?;
    tx.commit().await?;
    Ok(())
}

/// Archives a conversation: read-only from then on. A group's owner archives it; either person
/// archives a direct one (starting it again reopens it). Archiving twice changes nothing.
pub async fn archive(db: &mut deadpool_postgres::Object, actor: &Actor, caller: &str, id: Uuid) -> Result<()> {
    let tx = db.transaction().await?;
    let m = membership(&tx, id, caller, true).await?;
    if m.archived {
        return Ok(());
    }
    if m.conversation_type != "direct" && m.role != "owner" {
        return Err(Error::Forbidden("only the group's owner archives it".into()));
    }
    let at: DateTime<Utc> = tx
        .query_one("UPDATE conversations SET archived_at = now() WHERE id = $1 RETURNING archived_at", &[&id])
        .await?
        .get(0);
    let event = ConversationArchivedPayload {
        conversation_id: id.to_string(),
        archived_by: caller.to_owned(),
        archived_at: at,
    };
    crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::ConversationArchived(event)).await?;
    tx.commit().await?;
    Ok(())
}

fn owner_of_open_group(m: &Membership) -> Result<()> {
    if m.conversation_type == "direct" {
        return Err(conflict("a direct conversation keeps its two participants".into()));
    }
    if m.archived {
        return Err(conflict("the conversation is archived".into()));
    }
    if m.role != "owner" {
        return Err(Error::Forbidden("only the group's owner changes who is in it".into()));
    }
    Ok(())
}

/// Checks a person's plain text: 1 to `max` characters, not blank, no control characters but
/// newlines and tabs ([`fields::PLAIN`]). Markup is text like any other (it is never rendered as
/// HTML).
pub(crate) fn plain_text(field: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if fields::blank(value) || n > max {
        return Err(Error::Validation(vec![FieldError::new(field, format!("must be 1 to {max} characters"))]));
    }
    if !fields::plain(value) {
        return Err(Error::Validation(vec![FieldError::new(field, "must not contain control characters")]));
    }
    Ok(())
}

pub(crate) fn conflict(message: String) -> Error {
    Error::Conflict { message, details: serde_json::Value::Null }
}

fn participant_event(id: Uuid, user: &str, by: &str) -> ParticipantPayload {
    ParticipantPayload {
        conversation_id: id.to_string(),
        user_id: user.to_owned(),
        changed_by: by.to_owned(),
        changed_at: Utc::now(),
    }
}

const SELECT: &str = "SELECT c.id, c.conversation_type, c.title, c.created_by, c.last_seq, c.last_message_at,
        c.archived_at, c.created_at,
        (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.seq > COALESCE(r.last_read_seq, 0)
            AND m.sender_id <> $1 AND m.deleted_at IS NULL)
     FROM conversations c
     JOIN conversation_participants me ON me.conversation_id = c.id AND me.user_id = $1 AND me.left_at IS NULL
     LEFT JOIN message_reads r ON r.conversation_id = c.id AND r.user_id = $1";

/// One conversation as `caller` sees it (404 unless they are a participant).
pub async fn get(db: &impl GenericClient, users: &impl GenericClient, id: Uuid, caller: &str) -> Result<Conversation> {
    let row =
        db.query_opt(&format!("{SELECT} WHERE c.id = $2"), &[&caller, &id]).await?.ok_or_else(|| not_found(id))?;
    let mut all = with_participants(db, users, vec![row]).await?;
    Ok(all.remove(0))
}

/// Filters of a person's conversation list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MineFilter {
    /// `true`: only archived ones; `false` (default): only open ones.
    #[serde(default)]
    pub archived: bool,
}

impl crate::listing::Sorted for MineFilter {
    const SORT: &'static [(&'static str, &'static str)] = &[("last_message_at", "c.last_message_at")];
}

/// `caller`'s conversations, the most recently active first.
pub async fn mine(
    db: &impl GenericClient,
    users: &impl GenericClient,
    caller: &str,
    filter: &MineFilter,
    query: &crate::listing::ListQuery,
) -> Result<crate::listing::Page<Conversation>> {
    let (limit, offset, _) = query.resolve(<MineFilter as crate::listing::Sorted>::SORT)?;
    let archived = if filter.archived { "IS NOT NULL" } else { "IS NULL" };
    let total: i64 = db
        .query_one(
            &format!(
                "SELECT count(*) FROM conversations c JOIN conversation_participants me
                   ON me.conversation_id = c.id AND me.user_id = $1 AND me.left_at IS NULL
                 WHERE c.archived_at {archived}"
            ),
            &[&caller],
        )
        .await?
        .get(0);
    let rows = db
        .query(
            &format!(
                "{SELECT} WHERE c.archived_at {archived}
                 ORDER BY COALESCE(c.last_message_at, c.created_at) DESC, c.id LIMIT $2 OFFSET $3"
            ),
            &[&caller, &limit, &offset],
        )
        .await?;
    Ok(crate::listing::Page { items: with_participants(db, users, rows).await?, total, limit, offset })
}

async fn with_participants(
    db: &impl GenericClient,
    users: &impl GenericClient,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<Conversation>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let members = db
        .query(
            "SELECT conversation_id, user_id, role FROM conversation_participants
             WHERE conversation_id = ANY($1) AND left_at IS NULL ORDER BY joined_at, user_id",
            &[&ids],
        )
        .await?;
    let people: Vec<String> = members.iter().map(|m| m.get::<_, String>(1)).collect();
    let contacts = crate::user::directory::contacts(users, &people).await?;
    let name = |u: &str| contacts.iter().find(|c| c.user_id == u).map(|c| c.name.clone()).unwrap_or_default();
    Ok(rows
        .iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            Conversation {
                id,
                conversation_type: r.get(1),
                title: r.get(2),
                created_by: r.get(3),
                participants: members
                    .iter()
                    .filter(|m| m.get::<_, Uuid>(0) == id)
                    .map(|m| {
                        let user: String = m.get(1);
                        Participant { name: name(&user), user_id: user, role: m.get(2) }
                    })
                    .collect(),
                last_seq: r.get(4),
                last_message_at: r.get(5),
                archived_at: r.get(6),
                created_at: r.get(7),
                unread: r.get(8),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: &str, title: Option<&str>, ids: &[&str]) -> NewConversation {
        NewConversation {
            conversation_type: kind.into(),
            title: title.map(Into::into),
            participant_ids: ids.iter().map(|s| s.to_string()).collect(),
            course_id: None,
        }
    }

    const ME: &str = "00000000-0000-0000-0000-000000000001";
    const YOU: &str = "00000000-0000-0000-0000-000000000002";

    #[test]
    fn a_direct_conversation_has_exactly_one_other_person_and_no_title() {
        assert_eq!(validate(&new("direct", None, &[YOU, ME, YOU]), ME).unwrap(), vec![YOU.to_owned()]);
        assert!(validate(&new("direct", None, &[ME]), ME).is_err(), "not with oneself");
        assert!(validate(&new("direct", Some("x"), &[YOU]), ME).is_err());
        assert!(matches!(validate(&new("direct", None, &["nobody"]), ME), Err(Error::Validation(_))));
        assert!(matches!(validate(&new("direct", None, &[ME]), ME), Err(Error::Unprocessable(_))));
    }

    #[test]
    fn a_group_needs_a_title_and_someone_else() {
        assert!(validate(&new("group", Some("Lab 3"), &[YOU]), ME).is_ok());
        assert!(validate(&new("group", Some("  "), &[YOU]), ME).is_err());
        assert!(validate(&new("group", Some("Lab 3"), &[ME]), ME).is_err());
        assert!(validate(&new("channel", Some("Lab 3"), &[YOU]), ME).is_err());
    }

    #[test]
    fn a_course_conversation_names_its_course_and_takes_its_members_from_it() {
        let course = |title: Option<&str>, course: Option<&str>, ids: &[&str]| NewConversation {
            course_id: course.map(Into::into),
            ..new("course", title, ids)
        };
        assert!(validate(&course(Some("Networks"), Some("c1"), &[]), ME).is_ok());
        assert!(validate(&course(Some("Networks"), None, &[]), ME).is_err());
        assert!(validate(&course(Some("Networks"), Some("c1"), &[YOU]), ME).is_err());
        assert!(validate(&course(None, Some("c1"), &[]), ME).is_err());
        assert!(
            validate(&NewConversation { course_id: Some("c1".into()), ..new("group", Some("x"), &[YOU]) }, ME).is_err()
        );
    }
}
