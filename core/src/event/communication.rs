//! `communication.events`: messages, conversations and forums (seed section 11). Keyed by
//! `conversation_id`, or `thread_id` for forum posts.

use serde::{Deserialize, Serialize};

use super::{EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `communication.events`.
    pub enum CommunicationEvent on Topic::CommunicationEvents {
        /// A message was sent.
        MessageSent(MessageSentPayload) = "MESSAGE_SENT",
        /// A message was read.
        MessageRead(MessageReadPayload) = "MESSAGE_READ",
        /// A message was deleted.
        MessageDeleted(MessageDeletedPayload) = "MESSAGE_DELETED",
        /// A conversation was started.
        ConversationCreated(ConversationCreatedPayload) = "CONVERSATION_CREATED",
        /// A conversation was archived.
        ConversationArchived(ConversationArchivedPayload) = "CONVERSATION_ARCHIVED",
        /// Someone joined a conversation.
        ParticipantAdded(ParticipantPayload) = "PARTICIPANT_ADDED",
        /// Someone left or was removed from a conversation.
        ParticipantRemoved(ParticipantPayload) = "PARTICIPANT_REMOVED",
        /// A forum thread's first post.
        ForumPostCreated(ForumPostPayload) = "FORUM_POST_CREATED",
        /// A reply in a forum thread.
        ForumReplyAdded(ForumReplyPayload) = "FORUM_REPLY_ADDED",
    }
}

impl CommunicationEvent {
    fn key(&self) -> Option<&str> {
        Some(match self {
            CommunicationEvent::MessageSent(p) => &p.conversation_id,
            CommunicationEvent::MessageRead(p) => &p.conversation_id,
            CommunicationEvent::MessageDeleted(p) => &p.conversation_id,
            CommunicationEvent::ConversationCreated(p) => &p.conversation_id,
            CommunicationEvent::ConversationArchived(p) => &p.conversation_id,
            CommunicationEvent::ParticipantAdded(p) | CommunicationEvent::ParticipantRemoved(p) => &p.conversation_id,
            CommunicationEvent::ForumPostCreated(p) => &p.thread_id,
            CommunicationEvent::ForumReplyAdded(p) => &p.thread_id,
        })
    }

    fn check(&self) -> Result<(), EventError> {
        Ok(())
    }
}

/// Seed `MessageSentPayload`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageSentPayload {
    pub message_id: String,
    pub conversation_id: String,
    pub conversation_type: String,
    pub sender_id: String,
    pub sender_name: String,
    pub message_text: String,
    pub message_type: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub attachment_url: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub reply_to_message_id: Option<String>,
    pub recipient_ids: Vec<String>,
    pub sent_at: Timestamp,
}

/// Ours: a message was read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageReadPayload {
    pub message_id: String,
    pub conversation_id: String,
    pub reader_id: String,
    pub read_at: Timestamp,
}

/// Ours: a message was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MessageDeletedPayload {
    pub message_id: String,
    pub conversation_id: String,
    pub deleted_by: String,
    pub deleted_at: Timestamp,
}

/// Ours: a conversation was started.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConversationCreatedPayload {
    pub conversation_id: String,
    /// `direct`, `group`, `course`.
    pub conversation_type: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub title: Option<String>,
    pub created_by: String,
    pub participant_ids: Vec<String>,
    pub created_at: Timestamp,
}

/// Ours: a conversation was archived.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConversationArchivedPayload {
    pub conversation_id: String,
    pub archived_by: String,
    pub archived_at: Timestamp,
}

/// Ours: a participant joined or left.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ParticipantPayload {
    pub conversation_id: String,
    pub user_id: String,
    pub changed_by: String,
    pub changed_at: Timestamp,
}

/// Ours: the first post of a forum thread.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ForumPostPayload {
    pub post_id: String,
    pub thread_id: String,
    pub forum_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub course_id: Option<String>,
    pub author_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub title: Option<String>,
    pub body: String,
    pub created_at: Timestamp,
}

/// Ours: a reply in a forum thread.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ForumReplyPayload {
    pub post_id: String,
    /// The post being replied to.
    pub parent_post_id: String,
    pub thread_id: String,
    pub forum_id: String,
    pub author_id: String,
    pub body: String,
    pub created_at: Timestamp,
}
