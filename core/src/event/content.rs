//! `content.events`: course material lifecycle and access (seed section 3). Keyed by
//! `content_id`.

use serde::{Deserialize, Serialize};

use super::{Changes, EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `content.events`.
    pub enum ContentEvent on Topic::ContentEvents {
        /// A file was uploaded as new content.
        ContentCreated(ContentCreatedPayload) = "CONTENT_CREATED",
        /// Content metadata changed.
        ContentUpdated(ContentUpdatedPayload) = "CONTENT_UPDATED",
        /// Content was deleted.
        ContentDeleted(ContentDeletedPayload) = "CONTENT_DELETED",
        /// Content became visible to its courses.
        ContentPublished(ContentPublicationPayload) = "CONTENT_PUBLISHED",
        /// Content was hidden again.
        ContentUnpublished(ContentPublicationPayload) = "CONTENT_UNPUBLISHED",
        /// A new version of the file was uploaded.
        ContentVersioned(ContentVersionedPayload) = "CONTENT_VERSIONED",
        /// Someone viewed or downloaded content (also from classroom nodes).
        ContentAccessed(ContentAccessedPayload) = "CONTENT_ACCESSED",
        /// Content was shared with users.
        ContentShared(ContentSharedPayload) = "CONTENT_SHARED",
        /// A permission on content was granted.
        ContentPermissionGranted(ContentPermissionPayload) = "CONTENT_PERMISSION_GRANTED",
        /// A permission on content was revoked.
        ContentPermissionRevoked(ContentPermissionPayload) = "CONTENT_PERMISSION_REVOKED",
    }
}

impl ContentEvent {
    fn key(&self) -> Option<&str> {
        Some(match self {
            ContentEvent::ContentCreated(p) => &p.content_id,
            ContentEvent::ContentUpdated(p) => &p.content_id,
            ContentEvent::ContentDeleted(p) => &p.content_id,
            ContentEvent::ContentPublished(p) | ContentEvent::ContentUnpublished(p) => &p.content_id,
            ContentEvent::ContentVersioned(p) => &p.content_id,
            ContentEvent::ContentAccessed(p) => &p.content_id,
            ContentEvent::ContentShared(p) => &p.content_id,
            ContentEvent::ContentPermissionGranted(p) | ContentEvent::ContentPermissionRevoked(p) => &p.content_id,
        })
    }

    fn check(&self) -> Result<(), EventError> {
        let size = match self {
            ContentEvent::ContentCreated(p) => p.file_size,
            ContentEvent::ContentVersioned(p) => p.file_size,
            _ => 0,
        };
        if size < 0 {
            return Err(EventError::field("payload.file_size", "must not be negative"));
        }
        Ok(())
    }
}

/// Seed `ContentCreatedPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentCreatedPayload {
    pub content_id: String,
    /// GridFS file id of the bytes.
    pub mongo_document_id: String,
    pub title: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub description: Option<String>,
    /// `document`, `video`, `slides`, …
    pub content_type: String,
    pub mime_type: String,
    pub file_size: i64,
    pub created_by: String,
    pub course_ids: Vec<String>,
    pub subject_ids: Vec<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub department_id: Option<String>,
    pub is_published: bool,
    pub tags: Vec<String>,
}

/// Ours: metadata fields changed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentUpdatedPayload {
    pub content_id: String,
    pub changes: Changes,
    pub updated_by: String,
    pub updated_at: Timestamp,
}

/// Ours: content removed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentDeletedPayload {
    pub content_id: String,
    pub mongo_document_id: String,
    pub deleted_by: String,
    pub deleted_at: Timestamp,
    pub is_soft_delete: bool,
}

/// Ours: content published or unpublished.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentPublicationPayload {
    pub content_id: String,
    pub title: String,
    pub course_ids: Vec<String>,
    pub changed_by: String,
    pub changed_at: Timestamp,
}

/// Ours: a new version of the file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentVersionedPayload {
    pub content_id: String,
    pub version_number: u32,
    pub mongo_document_id: String,
    pub mime_type: String,
    pub file_size: i64,
    /// Hex sha256 of the bytes; nodes verify downloads against it.
    pub sha256: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub change_notes: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// How content was accessed (seed: "view, download, share").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessType {
    #[default]
    View,
    Download,
    Share,
}

/// Seed `ContentAccessedPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentAccessedPayload {
    pub content_id: String,
    pub user_id: String,
    pub access_type: AccessType,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub ip_address: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub user_agent: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub device_type: Option<String>,
    /// For views: how long the user looked at it.
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub duration_seconds: Option<u32>,
    pub accessed_at: Timestamp,
}

/// Ours: content shared with users.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentSharedPayload {
    pub content_id: String,
    pub shared_by: String,
    pub shared_with_user_ids: Vec<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub message: Option<String>,
    pub shared_at: Timestamp,
}

/// Who a content permission applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    #[default]
    User,
    Course,
    Role,
}

/// What a content permission allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentPermission {
    #[default]
    View,
    Download,
    Edit,
    Manage,
}

/// Ours: a permission granted or revoked.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContentPermissionPayload {
    pub content_id: String,
    pub permission_id: String,
    pub grantee_type: Grantee,
    pub grantee_id: String,
    pub permission: ContentPermission,
    pub changed_by: String,
    pub changed_at: Timestamp,
}
