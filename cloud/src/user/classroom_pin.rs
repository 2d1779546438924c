//! Classroom PINs: what faculty and students sign in with at a classroom node's pages, where the
//! cloud may be out of reach. They set their own (with their password); administrators reset or
//! clear them. Only an argon2id hash is kept (`classroom_pins`); the downlink puts it in the
//! roster snapshot of the nodes whose rooms the faculty member teaches in
//! ([`classroom_credentials`]) or the student attends a course in ([`student_credentials`]),
//! with the staff or register number and e-mail they may sign in with.
//!
//! A PIN is a short secret by design (typed on a classroom screen or a phone). Whoever steals a
//! node holds the hashes of the people of its room and can guess PINs offline, so a PIN opens
//! nothing but what classroom nodes serve (attendance, the room's course material): it is never
//! accepted by the cloud's login. See `docs/threat-model.md`.

use chrono::Utc;
use deadpool_postgres::Pool;
use nimbus_core::event::user::UserUpdatedPayload;
use nimbus_core::event::{ChangeValue, Changes, UserEvent};
use serde_json::json;
use uuid::Uuid;

use super::password;
use super::service::UserService;
use crate::actor::Actor;
use crate::error::{Error, FieldError, Result};
use crate::listing::{finish, finish_rules};

/// Fewest digits a PIN has.
pub const MIN_DIGITS: usize = 6;
/// Most digits a PIN has.
pub const MAX_DIGITS: usize = 12;

/// What a PIN looks like in the API document: [`MIN_DIGITS`] to [`MAX_DIGITS`] ASCII digits
/// (the field check of [`check_pin`]).
pub const PIN_PATTERN: &str = "^[0-9]{6,12}$";

/// Pushes what is wrong with `pin` as errors of `field`: digits only, [`MIN_DIGITS`] to
/// [`MAX_DIGITS`] of them ([`PIN_PATTERN`], 400), then into `rules` (422: a rule the document
/// cannot state) when it is one digit repeated or a straight run (`123456`, `987654`), the first
/// guesses of anyone at the keypad.
pub fn check_pin(errors: &mut Vec<FieldError>, rules: &mut Vec<FieldError>, field: &str, pin: &str) {
    let digits: Vec<u8> = pin.bytes().collect();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        errors.push(FieldError::new(field, "must be digits only"));
        return;
    }
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
        errors.push(FieldError::new(field, format!("must have {MIN_DIGITS} to {MAX_DIGITS} digits")));
        return;
    }
    let steps: Vec<i16> = digits.windows(2).map(|w| i16::from(w[1]) - i16::from(w[0])).collect();
    if steps.iter().all(|d| *d == steps[0]) && matches!(steps[0], -1..=1) {
        rules.push(FieldError::new(field, "is too easy to guess (a repeated digit or a straight run)"));
    }
}

/// The schema of a PIN field ([`PIN_PATTERN`]).
pub(super) fn pin_schema() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(PIN_PATTERN))
        .examples([serde_json::json!("402913")])
        .build()
}

/// What a node needs to let one faculty member sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassroomCredential {
    /// The user id.
    pub user_id: String,
    /// The staff number (`register_no`).
    pub staff_number: String,
    /// The e-mail address (lower-case).
    pub email: String,
    /// The PIN's argon2id hash; `None` until one is set.
    pub pin_hash: Option<String>,
}

/// The sign-in credentials of the active faculty among `user_ids` (others are left out: a
/// suspended member's PIN stops working at the next snapshot).
pub async fn classroom_credentials(pool: &Pool, user_ids: &[String]) -> Result<Vec<ClassroomCredential>> {
    credentials_of_role(pool, user_ids, "faculty").await
}

/// The sign-in credentials of the active students among `user_ids` (`staff_number` holds their
/// register number); a suspended student's PIN stops working at the next snapshot.
pub async fn student_credentials(pool: &Pool, user_ids: &[String]) -> Result<Vec<ClassroomCredential>> {
    credentials_of_role(pool, user_ids, "student").await
}

async fn credentials_of_role(pool: &Pool, user_ids: &[String], role: &str) -> Result<Vec<ClassroomCredential>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT u.id::text, u.register_no, u.email, p.pin_hash
             FROM users u JOIN roles r ON r.id = u.role_id LEFT JOIN classroom_pins p ON p.user_id = u.id
             WHERE u.id::text = ANY($1) AND u.status = 'active' AND r.name = $2
             ORDER BY u.id",
            &[&user_ids, &role],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ClassroomCredential {
            user_id: r.get(0),
            staff_number: r.get::<_, i64>(1).to_string(),
            email: r.get(2),
            pin_hash: r.get(3),
        })
        .collect())
}

impl UserService {
    /// Sets the caller's own classroom PIN once their password checks out. Only faculty and
    /// students have one.
    pub async fn set_own_classroom_pin(&self, actor: &Actor, user_id: &str, password: &str, pin: &str) -> Result<()> {
        let uid = parse_user(user_id)?;
        let (mut errors, mut rules) = (Vec::new(), Vec::new());
        if password.is_empty() {
            errors.push(FieldError::new("current_password", "is required"));
        }
        check_pin(&mut errors, &mut rules, "pin", pin);
        finish(errors)?;
        finish_rules(rules)?;
        let client = self.pool.get().await?;
        let hash: String = client
            .query_opt("SELECT password_hash FROM users WHERE id = $1", &[&uid])
            .await?
            .ok_or_else(|| Error::NotFound { what: "user", id: user_id.to_owned() })?
            .get(0);
        drop(client);
        if !password::verify(password.to_owned(), hash).await {
            // The caller failed to prove who they are: 403, not a field error of the request.
            return Err(Error::Forbidden("current_password is not correct".into()));
        }
        self.store_pin(actor, uid, Some(pin), true).await
    }

    /// An administrator sets (`Some`) or clears (`None`) a faculty member's or student's
    /// classroom PIN.
    pub async fn reset_classroom_pin(&self, actor: &Actor, user_id: &str, pin: Option<&str>) -> Result<()> {
        let uid = parse_user(user_id)?;
        if let Some(pin) = pin {
            let (mut errors, mut rules) = (Vec::new(), Vec::new());
            check_pin(&mut errors, &mut rules, "pin", pin);
            finish(errors)?;
            finish_rules(rules)?;
        }
        self.store_pin(actor, uid, pin, false).await
    }

    /// Writes the hash (or removes it) with its `USER_UPDATED` / `PROFILE_UPDATED` event, which
    /// also tells the downlink to send the rooms' rosters again. The event says only that a PIN
    /// is set or not, never anything of it.
    async fn store_pin(&self, actor: &Actor, uid: Uuid, pin: Option<&str>, own: bool) -> Result<()> {
        let hash = match pin {
            Some(p) => Some(password::hash(p.to_owned()).await?),
            None => None,
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let role: Option<String> = tx
            .query_opt(
                "SELECT r.name FROM users u JOIN roles r ON r.id = u.role_id WHERE u.id = $1 FOR UPDATE OF u",
                &[&uid],
            )
            .await?
            .map(|r| r.get(0));
        match role.as_deref() {
            None => return Err(Error::NotFound { what: "user", id: uid.to_string() }),
            Some("faculty" | "student") => {}
            Some(other) => {
                return Err(Error::Conflict {
                    message: "Only faculty and students have a classroom PIN".into(),
                    details: json!({ "role": other }),
                });
            }
        }
        let had: bool =
            tx.query_one("SELECT EXISTS (SELECT 1 FROM classroom_pins WHERE user_id = $1)", &[&uid]).await?.get(0);
        let set_by = actor.user_id.as_deref().and_then(|a| Uuid::parse_str(a).ok());
        match &hash {
            Some(h) => {
                tx.execute(
                    "INSERT INTO classroom_pins (user_id, pin_hash, set_by) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id) DO UPDATE SET pin_hash = $2, set_by = $3, updated_at = now()",
                    &[&uid, h, &set_by],
                )
                .await?;
            }
            None => {
                tx.execute("DELETE FROM classroom_pins WHERE user_id = $1", &[&uid]).await?;
            }
        }
        let state = |set: bool| if set { "set" } else { "not set" };
        let mut changes = Changes::new();
        changes.insert(
            "classroom_pin".to_owned(),
            ChangeValue { old_value: json!(state(had)), new_value: json!(state(hash.is_some())) },
        );
        let payload = UserUpdatedPayload {
            user_id: uid.to_string(),
            changes,
            updated_by: actor.user_id.clone().unwrap_or_else(|| "system".to_owned()),
            updated_at: Utc::now(),
        };
        let event = if own { UserEvent::ProfileUpdated(payload) } else { UserEvent::UserUpdated(payload) };
        super::service::publish(&tx, actor, event).await?;
        let action = if hash.is_some() { "CLASSROOM_PIN_SET" } else { "CLASSROOM_PIN_CLEARED" };
        super::service::log_activity(&tx, Some(uid), action, actor, json!({})).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn parse_user(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound { what: "user", id: id.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complaints(pin: &str) -> Vec<String> {
        let (mut errors, mut rules) = (Vec::new(), Vec::new());
        check_pin(&mut errors, &mut rules, "pin", pin);
        assert!(errors.is_empty() || rules.is_empty(), "a PIN of the wrong shape is not also judged as too easy");
        errors.into_iter().chain(rules).map(|e| e.message).collect()
    }

    fn shape_ok(pin: &str) -> bool {
        let (mut errors, mut rules) = (Vec::new(), Vec::new());
        check_pin(&mut errors, &mut rules, "pin", pin);
        errors.is_empty()
    }

    #[test]
    fn the_shape_check_is_the_documented_pattern() {
        // ^[0-9]{6,12}$, spelt out: the too-easy rule is separate (422).
        for (pin, ok) in [
            ("402913", true),
            ("123456", true),
            ("402913402913", true),
            ("40291", false),
            ("4029134029134", false),
            ("40291 ", false),
            ("٤٠٢٩١٣", false),
            ("+402913", false),
        ] {
            assert_eq!(shape_ok(pin), ok, "{pin}");
        }
        assert_eq!(PIN_PATTERN, format!("^[0-9]{{{MIN_DIGITS},{MAX_DIGITS}}}$"));
    }

    #[test]
    fn a_pin_is_six_to_twelve_digits_and_not_an_obvious_one() {
        assert!(complaints("402913").is_empty());
        assert!(complaints("402913402913").is_empty());
        assert_eq!(complaints("12345"), ["must have 6 to 12 digits"]);
        assert_eq!(complaints("4029134029134"), ["must have 6 to 12 digits"]);
        assert_eq!(complaints("40291a"), ["must be digits only"]);
        assert_eq!(complaints(""), ["must be digits only"]);
        assert_eq!(complaints("４０２９１３"), ["must be digits only"], "full-width digits are not digits here");
        for easy in ["000000", "777777777", "123456", "456789", "987654", "876543210"] {
            assert_eq!(complaints(easy).len(), 1, "{easy}");
        }
        assert!(complaints("135791").is_empty(), "steps of two are allowed");
    }
}
