//! Templates per notification type and channel (`notification_templates`), rendered with
//! `minijinja`. A template names the variables it may use; saving one that uses any other name is
//! refused, so a typo is found by the admin who made it and not by the recipients. Rendering is
//! strict: a command that lacks a variable its template uses fails (and is dead-lettered) instead
//! of sending a message with a hole in it.

use chrono::{DateTime, Utc};
use minijinja::{Environment, UndefinedBehavior, Value as Jinja};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::GenericClient;

use super::channels::{channel_name, channel_of};
use super::fields;
use crate::error::{Error, FieldError, Result};
use crate::listing::{finish, finish_rules};

/// A template as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    /// The seed's `template_id` (`template-new-content`).
    pub template_id: String,
    /// `email`, `sms`, `push` or `in_app`.
    pub channel: String,
    /// The notification type (and preference category) it is for.
    pub notification_type: String,
    /// Subject (e-mail) or title (push, in-app); may use the variables.
    #[serde(default)]
    pub subject: String,
    /// The text.
    pub body: String,
    /// The variables the template may use; every command using it must supply them.
    #[serde(default)]
    pub variables: Vec<String>,
    /// Inactive templates are not used (the command's own title and message are).
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

fn yes() -> bool {
    true
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// The variables `source` reads that are not in `allowed`, or the syntax error.
fn unknown_variables(source: &str, allowed: &[String]) -> std::result::Result<Vec<String>, String> {
    let env = environment();
    let template = env.template_from_str(source).map_err(|e| e.to_string())?;
    let mut unknown: Vec<String> =
        template.undeclared_variables(false).into_iter().filter(|v| !allowed.contains(v)).collect();
    unknown.sort();
    Ok(unknown)
}

/// Checks a template before it is saved: each field on its own (400: a known channel, a name,
/// a body, variable names, no NUL), then what no schema can state (422: valid syntax, and no
/// variable outside its list).
pub fn check(t: &Template) -> Result<()> {
    let mut errors = Vec::new();
    fields::text(&mut errors, "template_id", &t.template_id, MAX_ID);
    if channel_of(&t.channel).is_none() {
        errors.push(FieldError::new("channel", "must be email, sms, push or in_app"));
    }
    fields::text(&mut errors, "notification_type", &t.notification_type, MAX_TYPE);
    fields::no_nul(&mut errors, "subject", &t.subject);
    fields::text(&mut errors, "body", &t.body, usize::MAX);
    for v in &t.variables {
        if !variable_name(v) {
            errors.push(FieldError::new("variables", format!("{v:?} is not a variable name")));
        }
    }
    finish(errors)?;
    let mut rules = Vec::new();
    for (field, source) in [("subject", &t.subject), ("body", &t.body)] {
        match unknown_variables(source, &t.variables) {
            Ok(unknown) if unknown.is_empty() => {}
            Ok(unknown) => rules.push(FieldError::new(
                field,
                format!("uses unknown variables: {} (declare them in variables)", unknown.join(", ")),
            )),
            Err(e) => rules.push(FieldError::new(field, format!("is not a valid template: {e}"))),
        }
    }
    finish_rules(rules)
}

/// Longest template id.
pub const MAX_ID: usize = 100;

/// Longest notification type.
pub const MAX_TYPE: usize = 100;

/// A variable's name: ASCII letters, digits and `_` ([`VARIABLE`]).
pub const VARIABLE: &str = "^[A-Za-z0-9_]+$";

fn variable_name(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `variables`: names of [`VARIABLE`].
pub fn variables() -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(VARIABLE)))
}

/// Renders `source` with `data`; fails on a variable `data` lacks.
pub fn render(source: &str, data: &Map<String, Value>) -> std::result::Result<String, String> {
    environment().render_str(source, Jinja::from_serialize(data)).map_err(|e| e.to_string())
}

/// A subject and body rendered for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Subject or title.
    pub subject: String,
    /// Text.
    pub body: String,
}

impl Template {
    /// Renders this template with `data`.
    pub fn render(&self, data: &Map<String, Value>) -> std::result::Result<Rendered, String> {
        Ok(Rendered {
            subject: render(&self.subject, data).map_err(|e| format!("template {}: subject: {e}", self.template_id))?,
            body: render(&self.body, data).map_err(|e| format!("template {}: body: {e}", self.template_id))?,
        })
    }

    fn from_row(row: &tokio_postgres::Row) -> Self {
        Template {
            template_id: row.get("template_id"),
            channel: row.get("channel"),
            notification_type: row.get("notification_type"),
            subject: row.get("subject"),
            body: row.get("body"),
            variables: row.get("variables"),
            is_active: row.get("is_active"),
            updated_at: Some(row.get("updated_at")),
        }
    }
}

const COLUMNS: &str = "template_id, channel, notification_type, subject, body, variables, is_active, updated_at";

/// The active template `template_id` for `channel`, if there is one.
pub async fn active(
    db: &impl GenericClient,
    template_id: &str,
    channel: nimbus_core::event::notification::Channel,
) -> Result<Option<Template>> {
    let row = db
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM notification_templates WHERE template_id = $1 AND channel = $2 AND is_active"
            ),
            &[&template_id, &channel_name(channel)],
        )
        .await?;
    Ok(row.as_ref().map(Template::from_row))
}

/// Every template, by id and channel.
pub async fn list(db: &impl GenericClient) -> Result<Vec<Template>> {
    let rows =
        db.query(&format!("SELECT {COLUMNS} FROM notification_templates ORDER BY template_id, channel"), &[]).await?;
    Ok(rows.iter().map(Template::from_row).collect())
}

/// Creates or replaces a template after [`check`].
pub async fn save(db: &impl GenericClient, t: &Template, by: &str) -> Result<Template> {
    check(t)?;
    let row = db
        .query_one(
            &format!(
                "INSERT INTO notification_templates
                   (template_id, channel, notification_type, subject, body, variables, is_active, updated_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (template_id, channel) DO UPDATE SET
                   notification_type = EXCLUDED.notification_type, subject = EXCLUDED.subject,
                   body = EXCLUDED.body, variables = EXCLUDED.variables, is_active = EXCLUDED.is_active,
                   updated_by = EXCLUDED.updated_by, updated_at = now()
                 RETURNING {COLUMNS}"
            ),
            &[
                &t.template_id.trim(),
                &t.channel,
                &t.notification_type.trim(),
                &t.subject,
                &t.body,
                &t.variables,
                &t.is_active,
                &by,
            ],
        )
        .await?;
    Ok(Template::from_row(&row))
}

/// Deletes a template; 404 when there is none.
pub async fn delete(db: &impl GenericClient, template_id: &str, channel: &str) -> Result<()> {
    let n = db
        .execute(
            "DELETE FROM notification_templates WHERE template_id = $1 AND channel = $2",
            &[&template_id, &channel],
        )
        .await?;
    if n == 0 {
        return Err(Error::NotFound { what: "template", id: format!("{template_id} ({channel})") });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(subject: &str, body: &str, variables: &[&str]) -> Template {
        Template {
            template_id: "t".into(),
            channel: "email".into(),
            notification_type: "content".into(),
            subject: subject.into(),
            body: body.into(),
            variables: variables.iter().map(|s| s.to_string()).collect(),
            is_active: true,
            updated_at: None,
        }
    }

    fn data(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_template_using_an_undeclared_variable_is_refused() {
        let ok = template("New: {{ title }}", "Hello {{ name }}", &["title", "name"]);
        assert!(check(&ok).is_ok());
        let typo = template("New: {{ title }}", "Hello {{ nmae }}", &["title", "name"]);
        let err = check(&typo).unwrap_err().to_string();
        assert!(err.contains("nmae"), "{err}");
    }

    #[test]
    fn a_template_with_broken_syntax_is_refused() {
        let broken = template("{{ title", "x", &["title"]);
        assert!(check(&broken).is_err());
        let channel = Template { channel: "fax".into(), ..template("a", "b", &[]) };
        assert!(check(&channel).is_err());
    }

    #[test]
    fn rendering_fills_variables_and_fails_on_a_missing_one() {
        let t = template("Low attendance in {{ course }}", "{{ pct }}% in {{ course }}", &["course", "pct"]);
        let r = t.render(&data(json!({ "course": "CS101", "pct": 61.5 }))).unwrap();
        assert_eq!(r.subject, "Low attendance in CS101");
        assert_eq!(r.body, "61.5% in CS101");
        assert!(t.render(&data(json!({ "course": "CS101" }))).is_err());
    }

    #[test]
    fn text_is_not_html_escaped() {
        assert_eq!(render("{{ x }}", &data(json!({ "x": "A & B <c>" }))).unwrap(), "A & B <c>");
    }
}
