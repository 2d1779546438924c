//! Per user, category (the notification type) and channel: opted in (the default) or out.
//! Security mail (password resets) ignores them; see [`super::intake::Request::security`].

use nimbus_core::event::notification::Channel as ChannelKind;
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use super::channels::{channel_name, channel_of};
use super::fields;
use crate::error::{FieldError, Result};
use crate::listing::{finish, finish_rules};

/// One preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "category": "content", "channel": "email", "enabled": false }))]
pub struct Preference {
    /// The notification type (`attendance`, `content`, `announcement`, …). `security` cannot be
    /// turned off (422).
    #[schema(schema_with = category)]
    pub category: String,
    /// `email`, `sms`, `push` or `in_app`.
    #[schema(schema_with = fields::channel)]
    pub channel: String,
    /// `false` opts out.
    pub enabled: bool,
}

fn category() -> utoipa::openapi::Object {
    fields::text_schema(Some(64), false)
}

/// Categories that cannot be opted out of.
pub const SECURITY: &[&str] = &["security"];

/// The channels `user_id` opted out of for `category`.
pub async fn opted_out(db: &impl GenericClient, user_id: &str, category: &str) -> Result<Vec<ChannelKind>> {
    let rows = db
        .query(
            "SELECT channel FROM notification_preferences WHERE user_id = $1 AND category = $2 AND NOT enabled",
            &[&user_id, &category],
        )
        .await?;
    Ok(rows.iter().filter_map(|r| channel_of(r.get(0))).collect())
}

/// Every preference `user_id` set.
pub async fn list(db: &impl GenericClient, user_id: &str) -> Result<Vec<Preference>> {
    let rows = db
        .query(
            "SELECT category, channel, enabled FROM notification_preferences WHERE user_id = $1 ORDER BY category, channel",
            &[&user_id],
        )
        .await?;
    Ok(rows.iter().map(|r| Preference { category: r.get(0), channel: r.get(1), enabled: r.get(2) }).collect())
}

/// Sets `preferences` for `user_id` (others stay as they are). A field out of its bounds is a
/// 400; turning security notifications off is a 422 (the rule is between two fields).
pub async fn set(db: &impl GenericClient, user_id: &str, preferences: &[Preference]) -> Result<Vec<Preference>> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    for (i, p) in preferences.iter().enumerate() {
        fields::text(&mut errors, &format!("preferences[{i}].category"), &p.category, 64);
        if SECURITY.contains(&p.category.trim()) && !p.enabled {
            rules.push(FieldError::new(
                format!("preferences[{i}].category"),
                "security notifications cannot be turned off",
            ));
        }
        if channel_of(&p.channel).is_none() {
            errors.push(FieldError::new(format!("preferences[{i}].channel"), "must be email, sms, push or in_app"));
        }
    }
    finish(errors)?;
    finish_rules(rules)?;
    for p in preferences {
        db.execute(
            "INSERT INTO notification_preferences (user_id, category, channel, enabled) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, category, channel) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now()",
            &[&user_id, &p.category.trim(), &channel_name(channel_of(&p.channel).unwrap_or_default()), &p.enabled],
        )
        .await?;
    }
    list(db, user_id).await
}
