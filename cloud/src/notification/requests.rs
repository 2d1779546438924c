//! The bodies of `POST /api/v1/notifications/send` and `/broadcast`: the seed's
//! `NotificationPayload` and `BulkNotificationPayload` (nimbus-core, which has no OpenAPI
//! derive), field for field, as the routes take and check them. The routes deserialize these
//! types (so the document is what is accepted) and hand the core payloads to the worker.

use chrono::{DateTime, Utc};
use nimbus_core::event::notification::{
    BulkNotificationPayload, Channel, NotificationPayload, Priority, RecipientFilter, RecipientType,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::fields::{self, no_nul};
use crate::error::{FieldError, Result};

/// The seed's `NotificationPayload`: one notification to one person.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "notification_id": "", "recipient_user_id": "8d0c2f4e-3b7a-4c1e-9f6a-2d5b8e7c1a90", "notification_type": "general",
    "title": "Library closes early", "message": "At 4 pm today.", "channels": ["in_app", "email"],
    "priority": "high", "scheduled_at": null, "expires_at": null
}))]
pub struct SendNotification {
    /// The command's id; empty: the api makes one (and answers it).
    #[schema(pattern = r"^[^\u0000]*$")]
    pub notification_id: String,
    /// The recipient's user id.
    #[schema(schema_with = required_text)]
    pub recipient_user_id: String,
    /// An address instead of the profile's (`""` or null: the profile's).
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    pub recipient_email: Option<String>,
    /// A number instead of the profile's (`""` or null: the profile's).
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    pub recipient_phone: Option<String>,
    /// The notification type (and preference category).
    #[schema(pattern = r"^[^\u0000]*$")]
    pub notification_type: String,
    /// Title; required (not blank) without a `template_id` (422).
    #[schema(pattern = r"^[^\u0000]*$")]
    pub title: String,
    /// Text.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub message: String,
    /// `email`, `sms`, `push`, `in_app`: at least one.
    #[schema(schema_with = fields::channel_list)]
    pub channels: Vec<Channel>,
    /// `low`, `normal`, `high` or `urgent`.
    #[schema(schema_with = fields::priority)]
    pub priority: Priority,
    /// A template to render per channel (`""` or null: none).
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    pub template_id: Option<String>,
    /// The template's variables.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub template_data: Option<Map<String, Value>>,
    /// A link into the app (`""` or null: none).
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    pub action_url: Option<String>,
    /// Deliver then (in the future: scheduled; else at once); before the year 10000 (else 422).
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Not delivered after this; before the year 10000 (else 422).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

fn required_text() -> utoipa::openapi::Object {
    fields::text_schema(None, false)
}

/// The seed's `RecipientFilter`; absent or null lists do not filter.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    /// Departments.
    #[serde(default)]
    #[schema(schema_with = fields::maybe_texts)]
    pub department_ids: Option<Vec<String>>,
    /// Courses.
    #[serde(default)]
    #[schema(schema_with = fields::maybe_texts)]
    pub course_ids: Option<Vec<String>>,
    /// Programs.
    #[serde(default)]
    #[schema(schema_with = fields::maybe_texts)]
    pub program_ids: Option<Vec<String>>,
    /// Groups.
    #[serde(default)]
    #[schema(schema_with = fields::maybe_texts)]
    pub group_ids: Option<Vec<String>>,
    /// Role names.
    #[serde(default)]
    #[schema(schema_with = fields::maybe_texts)]
    pub role_names: Option<Vec<String>>,
    /// Semester numbers.
    #[serde(default)]
    #[schema(schema_with = fields::maybe_semesters)]
    pub semesters: Option<Vec<u8>>,
}

/// The seed's `BulkNotificationPayload`: one notification to everyone a filter selects.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "batch_id": "", "recipient_type": "course", "recipient_filter": { "course_ids": ["5f1e2d3c-4b5a-4978-8a6b-1c2d3e4f5a6b"] },
    "notification_type": "general", "title": "Lab moved", "message": "Lab 3 is in B-204 today.",
    "channels": ["in_app"], "priority": "normal"
}))]
pub struct Broadcast {
    /// The batch's id; empty: the api makes one (and answers it).
    #[schema(pattern = r"^[^\u0000]*$")]
    pub batch_id: String,
    /// `all`, `department`, `course` or `group`.
    #[schema(schema_with = fields::recipient_type)]
    pub recipient_type: RecipientType,
    /// Who, within the recipient type.
    #[serde(deserialize_with = "fields::object")]
    pub recipient_filter: Recipients,
    /// The notification type (and preference category).
    #[schema(pattern = r"^[^\u0000]*$")]
    pub notification_type: String,
    /// Title; required (not blank) without a `template_id` (422).
    #[schema(pattern = r"^[^\u0000]*$")]
    pub title: String,
    /// Text.
    #[schema(pattern = r"^[^\u0000]*$")]
    pub message: String,
    /// `email`, `sms`, `push`, `in_app`: at least one.
    #[schema(schema_with = fields::channel_list)]
    pub channels: Vec<Channel>,
    /// `low`, `normal`, `high` or `urgent`.
    #[schema(schema_with = fields::priority)]
    pub priority: Priority,
    /// A template to render per channel (`""` or null: none).
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    pub template_id: Option<String>,
    /// The template's variables.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub template_data: Option<Map<String, Value>>,
    /// Named recipients, added to the filter's (with no filter: exactly these).
    #[serde(default)]
    #[schema(schema_with = fields::maybe_texts)]
    pub user_ids: Option<Vec<String>>,
    /// A link into the app for every recipient (`""` or null: none).
    #[serde(default)]
    #[schema(pattern = r"^[^\u0000]*$")]
    pub action_url: Option<String>,
}

/// The seed reads an empty string as absent.
fn some(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn no_nul_in(errors: &mut Vec<FieldError>, field: &str, v: Option<&str>) {
    if let Some(v) = v {
        no_nul(errors, field, v);
    }
}

fn no_nul_in_list(errors: &mut Vec<FieldError>, field: &str, v: Option<&Vec<String>>) {
    if v.is_some_and(|v| v.iter().any(|s| s.contains('\0'))) {
        errors.push(FieldError::new(field, "must not contain NUL characters"));
    }
}

/// The rule between the text fields: a title unless a template says it.
fn titled(rules: &mut Vec<FieldError>, title: &str, template_id: Option<&str>) {
    if title.trim().is_empty() && template_id.is_none_or(str::is_empty) {
        rules.push(FieldError::new("title", "is required without a template"));
    }
}

impl SendNotification {
    /// The fields on their own (400), then together (422).
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        no_nul(&mut e, "notification_id", &self.notification_id);
        if self.recipient_user_id.contains('\0') || fields::blank(&self.recipient_user_id) {
            e.push(FieldError::new("recipient_user_id", "is required (without NUL characters)"));
        }
        no_nul_in(&mut e, "recipient_email", self.recipient_email.as_deref());
        no_nul_in(&mut e, "recipient_phone", self.recipient_phone.as_deref());
        no_nul(&mut e, "notification_type", &self.notification_type);
        no_nul(&mut e, "title", &self.title);
        no_nul(&mut e, "message", &self.message);
        if self.channels.is_empty() {
            e.push(FieldError::new("channels", "must name at least one channel"));
        }
        no_nul_in(&mut e, "template_id", self.template_id.as_deref());
        no_nul_in(&mut e, "action_url", self.action_url.as_deref());
        crate::listing::finish(e)?;
        let mut r = Vec::new();
        titled(&mut r, &self.title, self.template_id.as_deref());
        for (field, at) in [("scheduled_at", self.scheduled_at), ("expires_at", self.expires_at)] {
            // The inbox shows them as RFC 3339 times (in UTC, whose years end at 9999).
            if at.is_some_and(|at| chrono::Datelike::year(&at) > 9999) {
                r.push(FieldError::new(field, "must be before the year 10000"));
            }
        }
        crate::listing::finish_rules(r)
    }

    /// The seed's payload.
    pub fn payload(self) -> NotificationPayload {
        NotificationPayload {
            notification_id: self.notification_id,
            recipient_user_id: self.recipient_user_id,
            recipient_email: some(self.recipient_email),
            recipient_phone: some(self.recipient_phone),
            notification_type: self.notification_type,
            title: self.title,
            message: self.message,
            channels: self.channels,
            priority: self.priority,
            template_id: some(self.template_id),
            template_data: self.template_data,
            action_url: some(self.action_url),
            scheduled_at: self.scheduled_at,
            expires_at: self.expires_at,
        }
    }
}

impl Broadcast {
    /// The fields on their own (400), then together (422).
    pub fn validate(&self) -> Result<()> {
        let mut e = Vec::new();
        no_nul(&mut e, "batch_id", &self.batch_id);
        let f = &self.recipient_filter;
        for (field, list) in [
            ("recipient_filter.department_ids", &f.department_ids),
            ("recipient_filter.course_ids", &f.course_ids),
            ("recipient_filter.program_ids", &f.program_ids),
            ("recipient_filter.group_ids", &f.group_ids),
            ("recipient_filter.role_names", &f.role_names),
            ("user_ids", &self.user_ids),
        ] {
            no_nul_in_list(&mut e, field, list.as_ref());
        }
        no_nul(&mut e, "notification_type", &self.notification_type);
        no_nul(&mut e, "title", &self.title);
        no_nul(&mut e, "message", &self.message);
        if self.channels.is_empty() {
            e.push(FieldError::new("channels", "must name at least one channel"));
        }
        no_nul_in(&mut e, "template_id", self.template_id.as_deref());
        no_nul_in(&mut e, "action_url", self.action_url.as_deref());
        crate::listing::finish(e)?;
        let mut r = Vec::new();
        titled(&mut r, &self.title, self.template_id.as_deref());
        crate::listing::finish_rules(r)
    }

    /// The seed's payload.
    pub fn payload(self) -> BulkNotificationPayload {
        let f = self.recipient_filter;
        BulkNotificationPayload {
            batch_id: self.batch_id,
            recipient_type: self.recipient_type,
            recipient_filter: RecipientFilter {
                department_ids: f.department_ids,
                course_ids: f.course_ids,
                program_ids: f.program_ids,
                group_ids: f.group_ids,
                role_names: f.role_names,
                semesters: f.semesters,
            },
            notification_type: self.notification_type,
            title: self.title,
            message: self.message,
            channels: self.channels,
            priority: self.priority,
            template_id: some(self.template_id),
            template_data: self.template_data,
            user_ids: self.user_ids,
            action_url: some(self.action_url),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_bodies_are_the_seed_payloads_field_for_field() {
        let body = json!({
            "notification_id": "n1", "recipient_user_id": "u1", "recipient_email": "", "notification_type": "general",
            "title": "T", "message": "M", "channels": ["in_app", "email"], "priority": "high",
            "template_id": null, "scheduled_at": null, "expires_at": null
        });
        let mine: SendNotification = serde_json::from_value(body.clone()).unwrap();
        mine.validate().unwrap();
        let seed: NotificationPayload = serde_json::from_value(body).unwrap();
        assert_eq!(mine.payload(), seed);
        let bulk = json!({
            "batch_id": "b1", "recipient_type": "course", "recipient_filter": { "course_ids": ["c1"], "semesters": [3] },
            "notification_type": "general", "title": "", "message": "M", "channels": ["push"], "priority": "low",
            "template_id": "t1", "user_ids": ["u2"]
        });
        let mine: Broadcast = serde_json::from_value(bulk.clone()).unwrap();
        mine.validate().unwrap();
        let seed: BulkNotificationPayload = serde_json::from_value(bulk).unwrap();
        assert_eq!(mine.payload(), seed);
    }

    #[test]
    fn fields_are_400_and_the_title_rule_422() {
        let body = |v: Value| serde_json::from_value::<SendNotification>(v).unwrap().validate().unwrap_err();
        let base = json!({
            "notification_id": "", "recipient_user_id": "u1", "notification_type": "general", "title": "",
            "message": "M", "channels": ["in_app"], "priority": "normal"
        });
        assert!(matches!(body(base.clone()), crate::error::Error::Unprocessable(_)));
        let mut nul = base.clone();
        nul["recipient_user_id"] = json!("u\u{0}1");
        assert!(matches!(body(nul), crate::error::Error::Validation(_)));
        let mut unknown = base.clone();
        unknown["extra"] = json!(1);
        assert!(serde_json::from_value::<SendNotification>(unknown).is_err());
        // Serde reads a struct from an array of its fields' values too; the body is an object.
        let in_order = json!(["", "u1", null, null, "general", "T", "M", ["in_app"], "normal"]);
        assert!(serde_json::from_value::<SendNotification>(in_order.clone()).is_ok(), "serde's own");
        assert!(serde_json::from_value::<fields::Json<SendNotification>>(in_order).is_err());
    }
}
