//! `analytics.events`: usage and health telemetry (seed section 12), including classroom node
//! health. Keyed by `user_id`, else `session_id`, else the event id.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{EventError, topic_events};
use crate::topics::Topic;

topic_events! {
    /// An event on `analytics.events` (all share the seed's `AnalyticsPayload`).
    pub enum AnalyticsEvent on Topic::AnalyticsEvents {
        /// A page or screen was viewed.
        PageView(AnalyticsPayload) = "PAGE_VIEW",
        /// A user did something.
        UserAction(AnalyticsPayload) = "USER_ACTION",
        /// A session started.
        SessionStart(AnalyticsPayload) = "SESSION_START",
        /// A session ended.
        SessionEnd(AnalyticsPayload) = "SESSION_END",
        /// A feature was used.
        FeatureUsed(AnalyticsPayload) = "FEATURE_USED",
        /// Something failed.
        ErrorOccurred(AnalyticsPayload) = "ERROR_OCCURRED",
        /// A measurement (classroom nodes report their health this way).
        PerformanceMetric(AnalyticsPayload) = "PERFORMANCE_METRIC",
    }
}

impl AnalyticsEvent {
    /// The payload, whatever the type.
    pub fn payload(&self) -> &AnalyticsPayload {
        match self {
            AnalyticsEvent::PageView(p)
            | AnalyticsEvent::UserAction(p)
            | AnalyticsEvent::SessionStart(p)
            | AnalyticsEvent::SessionEnd(p)
            | AnalyticsEvent::FeatureUsed(p)
            | AnalyticsEvent::ErrorOccurred(p)
            | AnalyticsEvent::PerformanceMetric(p) => p,
        }
    }

    fn key(&self) -> Option<&str> {
        let p = self.payload();
        p.user_id.as_deref().or(p.session_id.as_deref())
    }

    fn check(&self) -> Result<(), EventError> {
        match self.payload().value {
            Some(v) if !v.is_finite() => Err(EventError::field("payload.value", "must be a finite number")),
            _ => Ok(()),
        }
    }
}

/// Seed `AnalyticsPayload`. Only the event's name, category and action are required: telemetry
/// from a classroom node has no user, page or browser.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnalyticsPayload {
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub user_id: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub session_id: Option<String>,
    pub event_name: String,
    pub category: String,
    pub action: String,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub label: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub value: Option<f64>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub page_url: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub referrer: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub device_type: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub browser: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub os: Option<String>,
    #[serde(default, serialize_with = "super::wire::or_zero", deserialize_with = "super::wire::zero_is_none")]
    pub screen_size: Option<String>,
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
}
