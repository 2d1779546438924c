//! Messages: send (text, optionally replying to an earlier message), edit within a window,
//! delete as a tombstone, read in order after a sequence number, and move one's read position.

use chrono::{DateTime, Duration, Utc};
use nimbus_core::event::communication::{MessageDeletedPayload, MessageReadPayload, MessageSentPayload};
use nimbus_core::event::notification::{Channel, NotificationPayload, Priority};
use nimbus_core::event::{CommunicationEvent, NotificationCommand};
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::conversations::{conflict, ensure_active, membership};
use super::{SERVICE, fields};
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};

/// Longest message, in characters.
pub const MAX_CHARS: usize = 10_000;

/// How long after sending its author may edit a message.
pub const EDIT_WINDOW: Duration = Duration::minutes(15);

/// Most messages one read returns.
pub const MAX_PAGE: i64 = 200;

/// A message to send: text, an attachment, or both.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "text": "See you at 10 in B-204." }))]
pub struct NewMessage {
    /// Plain text, up to 10,000 characters, no control characters but newlines and tabs (never
    /// rendered as HTML); empty only with an attachment (else 422).
    #[serde(default)]
    #[schema(schema_with = message_text)]
    pub text: String,
    /// A content item every participant may open (else 422).
    #[serde(default)]
    pub attachment_content_id: Option<Uuid>,
    /// An earlier message of the same conversation this one answers (else 422).
    #[serde(default)]
    pub reply_to_message_id: Option<Uuid>,
}

/// [`fields::PLAIN`] text up to [`MAX_CHARS`], or empty (with an attachment).
fn message_text() -> utoipa::openapi::Object {
    let mut o = fields::plain_schema(MAX_CHARS);
    o.min_length = None;
    o.pattern = Some(format!("^$|{}", fields::PLAIN));
    o
}

fn edited_text() -> utoipa::openapi::Object {
    fields::plain_schema(MAX_CHARS)
}

/// An edit: the new text.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "text": "See you at 11 in B-204." }))]
pub struct EditMessage {
    /// Plain text, 1–10,000 characters, no control characters but newlines and tabs.
    #[schema(schema_with = edited_text)]
    pub text: String,
}

/// A read position to set.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "seq": 12 }))]
pub struct ReadUpTo {
    /// Everything up to this sequence number is read (it never moves back); a message of the
    /// conversation must have it (else 422).
    #[schema(minimum = 1)]
    pub seq: i64,
}

/// A message as participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    /// Its id.
    pub id: Uuid,
    /// The conversation.
    pub conversation_id: Uuid,
    /// Its place in the conversation (1, 2, …, without gaps).
    pub seq: i64,
    /// Author.
    pub sender_id: String,
    /// `text`, or `attachment` when it carries one.
    pub message_type: String,
    /// The text; `null` once deleted.
    pub text: Option<String>,
    /// The message it answers.
    pub reply_to_message_id: Option<Uuid>,
    /// The attached content item (opened through the content service, which checks access).
    pub attachment_content_id: Option<Uuid>,
    /// Sent.
    pub sent_at: DateTime<Utc>,
    /// Last edited.
    pub edited_at: Option<DateTime<Utc>>,
    /// Deleted (a tombstone keeps its place).
    pub deleted_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, conversation_id, seq, sender_id, message_type, body, reply_to_message_id, created_at, \
                       edited_at, deleted_at, attachment_content_id";

fn message(r: &Row) -> Message {
    Message {
        id: r.get(0),
        conversation_id: r.get(1),
        seq: r.get(2),
        sender_id: r.get(3),
        message_type: r.get(4),
        text: r.get(5),
        reply_to_message_id: r.get(6),
        sent_at: r.get(7),
        edited_at: r.get(8),
        deleted_at: r.get(9),
        attachment_content_id: r.get::<_, Option<String>>(10).and_then(|a| Uuid::parse_str(&a).ok()),
    }
}

fn checked_text(text: &str) -> Result<String> {
    super::conversations::plain_text("text", text, MAX_CHARS)?;
    Ok(text.to_owned())
}

/// Sends a message: it takes the conversation's next sequence number, `MESSAGE_SENT` goes to
/// the other current participants (`recipient_ids`), and those not `online` (no live socket
/// open, [`super::live::Bus::online`]) are alerted ([`alert`]).
pub async fn send(
    db: &mut deadpool_postgres::Object,
    users: &impl GenericClient,
    online: &std::collections::HashSet<String>,
    actor: &Actor,
    caller: &str,
    id: Uuid,
    m: NewMessage,
) -> Result<Message> {
    let text = if m.text.is_empty() {
        if m.attachment_content_id.is_none() {
            return Err(Error::Unprocessable(vec![FieldError::new("text", "is required without an attachment")]));
        }
        String::new()
    } else {
        checked_text(&m.text)?
    };
    let message_type = if m.attachment_content_id.is_some() { "attachment" } else { "text" };
    ensure_active(&***db, caller).await?;
    let sender_name =
        crate::user::directory::contacts(users, &[caller.to_owned()]).await?.pop().map(|c| c.name).unwrap_or_default();
    let tx = db.transaction().await?;
    let me = membership(&tx, id, caller, true).await?;
    if me.archived {
        return Err(conflict("the conversation is archived".into()));
    }
    if let Some(reply) = m.reply_to_message_id {
        let same =
            tx.query_opt("SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2", &[&reply, &id]).await?;
        if same.is_none() {
            return Err(Error::Unprocessable(vec![FieldError::new(
                "reply_to_message_id",
                "must be a message of this conversation",
            )]));
        }
    }
    let seq: i64 = tx
        .query_one(
            "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = now() WHERE id = $1 RETURNING last_seq",
            &[&id],
        )
        .await?
        .get(0);
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO messages (id, conversation_id, seq, sender_id, message_type, body, reply_to_message_id,
                                       attachment_content_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &id,
                &seq,
                &caller,
                &message_type,
                &text,
                &m.reply_to_message_id,
                &m.attachment_content_id.map(|a| a.to_string()),
            ],
        )
        .await?;
    let sent = message(&row);
    // The sender has read what they wrote.
    advance(&tx, id, caller, seq).await?;
    let recipients: Vec<String> = tx
        .query(
            "SELECT user_id FROM conversation_participants
             WHERE conversation_id = $1 AND left_at IS NULL AND user_id <> $2 ORDER BY user_id",
            &[&id, &caller],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let offline: Vec<String> = recipients.iter().filter(|r| !online.contains(*r)).cloned().collect();
    alert(&tx, actor, id, &offline, &sender_name, &text, seq).await?;
    let event = MessageSentPayload {
        message_id: sent.id.to_string(),
        conversation_id: id.to_string(),
        conversation_type: me.conversation_type,
        sender_id: caller.to_owned(),
        sender_name,
        message_text: text,
        message_type: message_type.into(),
        attachment_url: m.attachment_content_id.map(super::attachments::url),
        reply_to_message_id: m.reply_to_message_id.map(|r| r.to_string()),
        recipient_ids: recipients,
        sent_at: sent.sent_at,
    };
    crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::MessageSent(event)).await?;
    tx.commit().await?;
    Ok(sent)
}

/// Tells the recipients (those with no live socket open) who have not been told since they last
/// read the conversation: one `SEND_NOTIFICATION` (in-app and e-mail, as their preferences
/// allow) per person and unread run, however many messages the run has.
async fn alert(
    tx: &tokio_postgres::Transaction<'_>,
    actor: &Actor,
    id: Uuid,
    recipients: &[String],
    sender_name: &str,
    text: &str,
    seq: i64,
) -> Result<()> {
    let fresh = tx
        .query(
            "INSERT INTO message_alerts (conversation_id, user_id) SELECT $1, unnest($2::text[])
             ON CONFLICT (conversation_id, user_id) DO NOTHING RETURNING user_id",
            &[&id, &recipients],
        )
        .await?;
    let preview: String = if text.is_empty() { "Sent an attachment".into() } else { text.chars().take(200).collect() };
    for r in &fresh {
        let user: String = r.get(0);
        let command = NotificationCommand::SendNotification(NotificationPayload {
            notification_id: format!("message:{id}:{user}:{seq}"),
            recipient_user_id: user,
            notification_type: "message".into(),
            title: format!("New message from {sender_name}"),
            message: preview.clone(),
            channels: vec![Channel::InApp, Channel::Email],
            priority: Priority::Normal,
            action_url: Some(format!("/conversations/{id}")),
            ..NotificationPayload::default()
        });
        crate::outbox::publish(tx, SERVICE, actor, command).await?;
    }
    Ok(())
}

async fn advance(tx: &tokio_postgres::Transaction<'_>, id: Uuid, user: &str, seq: i64) -> Result<bool> {
    // Whoever reads (or writes) is told again of the next message.
    tx.execute("DELETE FROM message_alerts WHERE conversation_id = $1 AND user_id = $2", &[&id, &user]).await?;
    let moved = tx
        .execute(
            "INSERT INTO message_reads (conversation_id, user_id, last_read_seq) VALUES ($1, $2, $3)
             ON CONFLICT (conversation_id, user_id) DO UPDATE SET last_read_seq = EXCLUDED.last_read_seq, read_at = now()
             WHERE message_reads.last_read_seq < EXCLUDED.last_read_seq",
            &[&id, &user, &seq],
        )
        .await?;
    Ok(moved > 0)
}

/// Filters of a message read.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Since {
    /// Messages after this sequence number (0, the default: from the first).
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    pub after_seq: i64,
    /// At most this many (1–200, default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<i64>,
}

/// The messages after `since.after_seq`, oldest first: a client that keeps the last `seq` it has
/// resumes with no gap and no duplicate.
pub async fn since(db: &mut deadpool_postgres::Object, caller: &str, id: Uuid, since: &Since) -> Result<Vec<Message>> {
    let limit = since.limit.unwrap_or(50);
    let mut errors = Vec::new();
    if !(1..=MAX_PAGE).contains(&limit) {
        errors.push(FieldError::new("limit", format!("must be between 1 and {MAX_PAGE}")));
    }
    if since.after_seq < 0 {
        errors.push(FieldError::new("after_seq", "must not be negative"));
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let tx = db.transaction().await?;
    membership(&tx, id, caller, false).await?;
    let rows = tx
        .query(
            &format!("SELECT {COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
            &[&id, &since.after_seq, &limit],
        )
        .await?;
    tx.commit().await?;
    Ok(rows.iter().map(message).collect())
}

/// Edits the caller's own message within [`EDIT_WINDOW`] of sending it.
pub async fn edit(
    db: &mut deadpool_postgres::Object,
    caller: &str,
    id: Uuid,
    message_id: Uuid,
    e: EditMessage,
) -> Result<Message> {
    let text = checked_text(&e.text)?;
    ensure_active(&***db, caller).await?;
    let tx = db.transaction().await?;
    let me = membership(&tx, id, caller, true).await?;
    let current = fetch(&tx, id, message_id).await?;
    if current.sender_id != caller {
        return Err(Error::Forbidden("only its author edits a message".into()));
    }
    if me.archived {
        return Err(conflict("the conversation is archived".into()));
    }
    if current.deleted_at.is_some() {
        return Err(conflict("the message was deleted".into()));
    }
    if Utc::now() - current.sent_at > EDIT_WINDOW {
        return Err(conflict(format!("messages can be edited for {} minutes", EDIT_WINDOW.num_minutes())));
    }
    let row = tx
        .query_one(
            &format!("UPDATE messages SET body = $2, edited_at = now() WHERE id = $1 RETURNING {COLUMNS}"),
            &[&message_id, &text],
        )
        .await?;
    tx.commit().await?;
    Ok(message(&row))
}

/// Deletes a message, keeping its place as a tombstone without its text: its author deletes
/// their own; a group's owner deletes anyone's. Deleting twice changes nothing (`None`: it was
/// already deleted); else the tombstone.
pub async fn delete(
    db: &mut deadpool_postgres::Object,
    actor: &Actor,
    caller: &str,
    id: Uuid,
    message_id: Uuid,
) -> Result<Option<Message>> {
    let tx = db.transaction().await?;
    let me = membership(&tx, id, caller, true).await?;
    let m = fetch(&tx, id, message_id).await?;
    if m.sender_id != caller && !(me.conversation_type != "direct" && me.role == "owner") {
        return Err(Error::Forbidden("only its author or the group's owner deletes a message".into()));
    }
    if m.deleted_at.is_some() {
        return Ok(None);
    }
    let tombstone = message(
        &tx.query_one(
            &format!("UPDATE messages SET body = NULL, deleted_at = now() WHERE id = $1 RETURNING {COLUMNS}"),
            &[&message_id],
        )
        .await?,
    );
    let at = tombstone.deleted_at.unwrap_or_else(Utc::now);
    let event = MessageDeletedPayload {
        message_id: message_id.to_string(),
        conversation_id: id.to_string(),
        deleted_by: caller.to_owned(),
        deleted_at: at,
    };
    crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::MessageDeleted(event)).await?;
    tx.commit().await?;
    Ok(Some(tombstone))
}

/// A message of conversation `id` (404 when it is not one of its messages).
async fn fetch(tx: &tokio_postgres::Transaction<'_>, id: Uuid, message_id: Uuid) -> Result<Message> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM messages WHERE id = $1 AND conversation_id = $2"),
            &[&message_id, &id],
        )
        .await?
        .ok_or(Error::NotFound { what: "message", id: message_id.to_string() })?;
    Ok(message(&row))
}

/// Moves the caller's read position forward to `up.seq` (never back, never past the newest
/// message); `MESSAGE_READ` names the message at that position when it moved. `true` when it
/// moved.
pub async fn read(
    db: &mut deadpool_postgres::Object,
    actor: &Actor,
    caller: &str,
    id: Uuid,
    up: ReadUpTo,
) -> Result<bool> {
    if up.seq < 1 {
        return Err(Error::Validation(vec![FieldError::new("seq", "must be at least 1")]));
    }
    let tx = db.transaction().await?;
    membership(&tx, id, caller, false).await?;
    let row = tx
        .query_opt("SELECT id FROM messages WHERE conversation_id = $1 AND seq = $2", &[&id, &up.seq])
        .await?
        .ok_or_else(|| {
        Error::Unprocessable(vec![FieldError::new("seq", "no message of this conversation has it")])
    })?;
    let message_id: Uuid = row.get(0);
    let moved = advance(&tx, id, caller, up.seq).await?;
    if moved {
        let event = MessageReadPayload {
            message_id: message_id.to_string(),
            conversation_id: id.to_string(),
            reader_id: caller.to_owned(),
            read_at: Utc::now(),
        };
        crate::outbox::publish(&tx, SERVICE, actor, CommunicationEvent::MessageRead(event)).await?;
    }
    tx.commit().await?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_one_to_ten_thousand_characters_without_control_characters() {
        assert!(checked_text("hello\nworld\t!").is_ok());
        assert!(checked_text("<script>alert(1)</script>").is_ok(), "markup is text, stored as sent");
        assert!(checked_text("   ").is_err());
        assert!(checked_text(&"é".repeat(MAX_CHARS)).is_ok());
        assert!(checked_text(&"é".repeat(MAX_CHARS + 1)).is_err());
        assert!(checked_text("bell\u{7}").is_err());
    }
}
