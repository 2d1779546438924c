//! `notification.commands` (seed section 4) and `notification.status` (section 5). Commands are
//! keyed by recipient (`batch_id` for bulk sends), status updates by `user_id`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{EventError, Timestamp, topic_events};
use crate::topics::Topic;

topic_events! {
    /// A command on `notification.commands`.
    pub enum NotificationCommand on Topic::NotificationCommands {
        /// The seed's generic command (its example's `event_type`).
        SendNotification(NotificationPayload) = "SEND_NOTIFICATION",
        /// Email only.
        SendEmail(NotificationPayload) = "SEND_EMAIL",
        /// SMS only (critical alerts).
        SendSms(NotificationPayload) = "SEND_SMS",
        /// Mobile push only.
        SendPush(NotificationPayload) = "SEND_PUSH",
        /// In-app only.
        SendInApp(NotificationPayload) = "SEND_IN_APP",
        /// To many recipients selected by a filter.
        SendBulk(BulkNotificationPayload) = "SEND_BULK",
        /// The seed's schema name for `SEND_BULK`; accepted as a synonym.
        SendBulkNotification(BulkNotificationPayload) = "SEND_BULK_NOTIFICATION",
        /// Deliver at `scheduled_at`.
        ScheduleNotification(NotificationPayload) = "SCHEDULE_NOTIFICATION",
        /// Cancel a scheduled notification.
        CancelNotification(CancelNotificationPayload) = "CANCEL_NOTIFICATION",
    }
}

impl NotificationCommand {
    fn key(&self) -> Option<&str> {
        Some(match self {
            NotificationCommand::SendNotification(p)
            | NotificationCommand::SendEmail(p)
            | NotificationCommand::SendSms(p)
            | NotificationCommand::SendPush(p)
            | NotificationCommand::SendInApp(p)
            | NotificationCommand::ScheduleNotification(p) => &p.recipient_user_id,
            NotificationCommand::SendBulk(p) | NotificationCommand::SendBulkNotification(p) => &p.batch_id,
            NotificationCommand::CancelNotification(p) => &p.notification_id,
        })
    }

    fn check(&self) -> Result<(), EventError> {
        Ok(())
    }
}

/// Delivery channel (seed: "email, sms, push, in_app").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    #[default]
    InApp,
}

/// Urgency (seed: "low, normal, high, urgent").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

/// Seed `NotificationPayload`. `scheduled_at` and `expires_at` are always written (as `null`
/// when unset), as the seed's example shows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NotificationPayload {
    pub notification_id: String,
    pub recipient_user_id: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub recipient_email: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub recipient_phone: Option<String>,
    pub notification_type: String,
    pub title: String,
    pub message: String,
    pub channels: Vec<Channel>,
    pub priority: Priority,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub template_id: Option<String>,
    #[serde(default)]
    pub template_data: Option<Map<String, Value>>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub action_url: Option<String>,
    #[serde(default)]
    pub scheduled_at: Option<Timestamp>,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// Who a bulk notification goes to (seed: "all, department, course, group").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientType {
    #[default]
    All,
    Department,
    Course,
    Group,
}

/// Seed `RecipientFilter`; absent lists do not filter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RecipientFilter {
    #[serde(default)]
    pub department_ids: Option<Vec<String>>,
    #[serde(default)]
    pub course_ids: Option<Vec<String>>,
    #[serde(default)]
    pub program_ids: Option<Vec<String>>,
    #[serde(default)]
    pub group_ids: Option<Vec<String>>,
    #[serde(default)]
    pub role_names: Option<Vec<String>>,
    #[serde(default)]
    pub semesters: Option<Vec<u8>>,
}

/// Seed `BulkNotificationPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BulkNotificationPayload {
    pub batch_id: String,
    pub recipient_type: RecipientType,
    pub recipient_filter: RecipientFilter,
    pub notification_type: String,
    pub title: String,
    pub message: String,
    pub channels: Vec<Channel>,
    pub priority: Priority,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub template_id: Option<String>,
    #[serde(default)]
    pub template_data: Option<Map<String, Value>>,
    /// Ours: named recipients, added to the filter's (with no filter: exactly these). The
    /// announcement service names its resolved audience here.
    #[serde(default)]
    pub user_ids: Option<Vec<String>>,
    /// Ours: a link into the app for every recipient.
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub action_url: Option<String>,
}

/// Ours: cancel a scheduled notification.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CancelNotificationPayload {
    pub notification_id: String,
    pub cancelled_by: String,
    pub cancelled_at: Timestamp,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub reason: Option<String>,
}

topic_events! {
    /// A delivery status update on `notification.status` (all share the seed's one payload).
    pub enum NotificationStatusEvent on Topic::NotificationStatus {
        /// Added to the delivery queue.
        NotificationQueued(NotificationStatusPayload) = "NOTIFICATION_QUEUED",
        /// Handed to the channel.
        NotificationSent(NotificationStatusPayload) = "NOTIFICATION_SENT",
        /// The channel confirmed delivery.
        NotificationDelivered(NotificationStatusPayload) = "NOTIFICATION_DELIVERED",
        /// Delivery failed.
        NotificationFailed(NotificationStatusPayload) = "NOTIFICATION_FAILED",
        /// The recipient read it.
        NotificationRead(NotificationStatusPayload) = "NOTIFICATION_READ",
    }
}

impl NotificationStatusEvent {
    fn payload(&self) -> &NotificationStatusPayload {
        match self {
            NotificationStatusEvent::NotificationQueued(p)
            | NotificationStatusEvent::NotificationSent(p)
            | NotificationStatusEvent::NotificationDelivered(p)
            | NotificationStatusEvent::NotificationFailed(p)
            | NotificationStatusEvent::NotificationRead(p) => p,
        }
    }

    fn key(&self) -> Option<&str> {
        Some(&self.payload().user_id)
    }

    fn check(&self) -> Result<(), EventError> {
        Ok(())
    }
}

/// Seed `NotificationStatusPayload`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NotificationStatusPayload {
    pub notification_id: String,
    pub queue_id: String,
    pub user_id: String,
    pub channel: Channel,
    /// `queued`, `sent`, `delivered`, `failed`, `read`.
    pub status: String,
    pub attempt_count: u32,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub error_message: Option<String>,
    #[serde(default)]
    pub sent_at: Option<Timestamp>,
    #[serde(default)]
    pub delivered_at: Option<Timestamp>,
    #[serde(default)]
    pub read_at: Option<Timestamp>,
}
