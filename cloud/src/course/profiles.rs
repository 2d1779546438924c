//! The student and faculty profiles the course service keeps from `user.events` (the user
//! service owns the accounts). Rosters take names from here; enrollment and faculty assignment
//! require an active profile.

use tokio_postgres::Transaction;

use crate::error::Result;

/// Which profile table a role maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    /// `students`.
    Student,
    /// `faculties`.
    Faculty,
}

impl ProfileKind {
    /// The profile a seed role name (`student`, `faculty`, …) has, if any.
    pub fn of_role(role: &str) -> Option<Self> {
        match role.trim().to_ascii_lowercase().as_str() {
            "student" => Some(ProfileKind::Student),
            "faculty" | "teacher" | "professor" | "lecturer" => Some(ProfileKind::Faculty),
            _ => None,
        }
    }

    fn table(self) -> &'static str {
        match self {
            ProfileKind::Student => "students",
            ProfileKind::Faculty => "faculties",
        }
    }
}

/// What an event says about a person; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileFields {
    pub register_no: Option<i64>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_active: Option<bool>,
}

/// Creates or updates a profile (idempotent).
pub async fn upsert(tx: &Transaction<'_>, kind: ProfileKind, user_id: &str, f: &ProfileFields) -> Result<()> {
    // The table name comes from the enum, never from input.
    let sql = format!(
        "INSERT INTO {t} (user_id, register_no, email, name, is_active) \
         VALUES ($1, $2, COALESCE($3, ''), COALESCE($4, ''), COALESCE($5, true)) \
         ON CONFLICT (user_id) DO UPDATE SET register_no = COALESCE($2, {t}.register_no), \
           email = COALESCE($3, {t}.email), name = COALESCE($4, {t}.name), \
           is_active = COALESCE($5, {t}.is_active), updated_at = now()",
        t = kind.table()
    );
    tx.execute(&sql, &[&user_id, &f.register_no, &f.email, &f.name, &f.is_active]).await?;
    Ok(())
}

/// Updates whichever profiles `user_id` has; returns how many rows changed.
pub async fn update_existing(tx: &Transaction<'_>, user_id: &str, f: &ProfileFields) -> Result<u64> {
    let mut n = 0;
    for kind in [ProfileKind::Student, ProfileKind::Faculty] {
        let sql = format!(
            "UPDATE {t} SET register_no = COALESCE($2, register_no), email = COALESCE($3, email), \
               name = COALESCE($4, name), is_active = COALESCE($5, is_active), updated_at = now() \
             WHERE user_id = $1",
            t = kind.table()
        );
        n += tx.execute(&sql, &[&user_id, &f.register_no, &f.email, &f.name, &f.is_active]).await?;
    }
    Ok(n)
}

/// Marks one profile (or both, with `None`) inactive.
pub async fn deactivate(tx: &Transaction<'_>, user_id: &str, kind: Option<ProfileKind>) -> Result<()> {
    for k in [ProfileKind::Student, ProfileKind::Faculty] {
        if kind.is_none_or(|want| want == k) {
            let sql = format!("UPDATE {} SET is_active = false, updated_at = now() WHERE user_id = $1", k.table());
            tx.execute(&sql, &[&user_id]).await?;
        }
    }
    Ok(())
}

/// Creates or updates a profile from outside a worker (administration, tests).
pub async fn upsert_profile(
    pool: &deadpool_postgres::Pool,
    kind: ProfileKind,
    user_id: &str,
    fields: &ProfileFields,
) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    upsert(&tx, kind, user_id, fields).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `user_id` has an active `kind` profile. This service learns of people through
/// `user.events`, a moment after the user service commits; when its copy has not caught up (no
/// profile, or an inactive one), it asks the user service's `users` and copies what that says
/// (the event, when it arrives, upserts the same), so an administrator can create a person and
/// enroll or assign them in the very next request.
pub async fn ensure_active(
    tx: &Transaction<'_>,
    users: &impl tokio_postgres::GenericClient,
    kind: ProfileKind,
    user_id: &str,
) -> Result<bool> {
    let local =
        tx.query_opt(&format!("SELECT is_active FROM {} WHERE user_id = $1", kind.table()), &[&user_id]).await?;
    if local.is_some_and(|r| r.get::<_, bool>(0)) {
        return Ok(true);
    }
    let Some(c) = crate::user::directory::contacts(users, &[user_id.to_owned()]).await?.pop() else {
        return Ok(false);
    };
    if !c.active || ProfileKind::of_role(&c.role) != Some(kind) {
        return Ok(false);
    }
    let name = (c.name != c.email).then_some(c.name);
    let f = ProfileFields { register_no: None, email: Some(c.email), name, is_active: Some(true) };
    upsert(tx, kind, user_id, &f).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_student_and_faculty_roles_have_profiles() {
        assert_eq!(ProfileKind::of_role("student"), Some(ProfileKind::Student));
        assert_eq!(ProfileKind::of_role("Faculty"), Some(ProfileKind::Faculty));
        assert_eq!(ProfileKind::of_role("admin"), None);
    }
}
