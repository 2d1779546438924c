//! `announcement.events`: campus announcements (seed section 10). Keyed by `announcement_id`.

use serde::{Deserialize, Serialize};

use super::{EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `announcement.events`.
    pub enum AnnouncementEvent on Topic::AnnouncementEvents {
        /// A draft announcement was written.
        AnnouncementCreated(AnnouncementPayload) = "ANNOUNCEMENT_CREATED",
        /// An announcement went out to its audience.
        AnnouncementPublished(AnnouncementPayload) = "ANNOUNCEMENT_PUBLISHED",
        /// An announcement was edited.
        AnnouncementUpdated(AnnouncementPayload) = "ANNOUNCEMENT_UPDATED",
        /// An announcement was removed.
        AnnouncementDeleted(AnnouncementRemovedPayload) = "ANNOUNCEMENT_DELETED",
        /// An announcement reached its expiry.
        AnnouncementExpired(AnnouncementRemovedPayload) = "ANNOUNCEMENT_EXPIRED",
        /// An announcement will be published at `published_at`.
        AnnouncementScheduled(AnnouncementPayload) = "ANNOUNCEMENT_SCHEDULED",
    }
}

impl AnnouncementEvent {
    fn key(&self) -> Option<&str> {
        Some(match self {
            AnnouncementEvent::AnnouncementCreated(p)
            | AnnouncementEvent::AnnouncementPublished(p)
            | AnnouncementEvent::AnnouncementUpdated(p)
            | AnnouncementEvent::AnnouncementScheduled(p) => &p.announcement_id,
            AnnouncementEvent::AnnouncementDeleted(p) | AnnouncementEvent::AnnouncementExpired(p) => &p.announcement_id,
        })
    }

    fn check(&self) -> Result<(), EventError> {
        Ok(())
    }
}

/// Seed `Target`; absent lists do not narrow the audience.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Target {
    #[serde(default)]
    pub department_ids: Option<Vec<String>>,
    #[serde(default)]
    pub program_ids: Option<Vec<String>>,
    #[serde(default)]
    pub course_ids: Option<Vec<String>>,
    #[serde(default)]
    pub group_ids: Option<Vec<String>>,
    #[serde(default)]
    pub user_ids: Option<Vec<String>>,
}

/// Seed `AnnouncementPublishedPayload`, used by every type that carries the announcement itself.
/// For drafts and scheduled announcements `published_at` is the (planned) publication time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AnnouncementPayload {
    pub announcement_id: String,
    pub title: String,
    pub content: String,
    pub announcement_type: String,
    pub priority: String,
    pub target_audience: String,
    pub target_details: Target,
    pub created_by: String,
    pub published_at: Timestamp,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// Ours: an announcement deleted or expired.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AnnouncementRemovedPayload {
    pub announcement_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub title: Option<String>,
    /// Who removed it; absent for expiry.
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub changed_by: Option<String>,
    pub occurred_at: Timestamp,
}
