//! Attachments: a message may carry a content item by its id, never a copy. The content service
//! stays the one that decides who may open it (`/api/v1/content/{id}/download` answers 404 to
//! anyone it would not show the item to), and a message is refused unless every current
//! participant may open its attachment when it is sent: nobody gets a link they cannot follow,
//! and sending cannot be used to learn that an item exists.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::content::items::{self, Visibility};
use crate::error::{Error, FieldError, Result};

/// Where a participant opens an attachment (the seed's `attachment_url`).
pub fn url(content_id: Uuid) -> String {
    format!("/api/v1/content/{content_id}/download")
}

/// Of `people`, those who see every content item: administrators and roles that may write
/// content, as the content service decides.
async fn staff(users: &impl GenericClient, people: &[String]) -> Result<Vec<String>> {
    Ok(users
        .query(
            "SELECT u.id::text FROM users u JOIN roles r ON r.id = u.role_id
             WHERE u.id::text = ANY($1) AND (r.name = 'admin' OR EXISTS (
                 SELECT 1 FROM role_permissions rp JOIN permissions p ON p.id = rp.permission_id
                 WHERE rp.role_id = r.id AND p.name = 'content:write'))",
            &[&people],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// `Ok` when `sender` and every one of `others` may open content item `id`, reading roles from
/// `users`, a student's courses from `courses` and the item from `content`. An item the sender
/// may not open is reported exactly as one that does not exist.
pub async fn check(
    content: &impl deadpool_postgres::GenericClient,
    courses: &impl deadpool_postgres::GenericClient,
    users: &impl GenericClient,
    id: Uuid,
    sender: &str,
    others: &[String],
) -> Result<()> {
    let mut everyone = vec![sender.to_owned()];
    everyone.extend(others.iter().cloned());
    let staff = staff(users, &everyone).await?;
    let mut shut_out = Vec::new();
    for person in &everyone {
        let visibility = if staff.contains(person) {
            Visibility::All
        } else {
            let courses = crate::course::roster::courses_of_student(courses, person).await?;
            Visibility::Student { user_id: person.clone(), courses }
        };
        if !items::visible(content, id, &visibility).await? {
            if person == sender {
                return Err(field(format!("no content item {id}")));
            }
            shut_out.push(person.clone());
        }
    }
    if shut_out.is_empty() {
        Ok(())
    } else {
        Err(field(format!("{} participant(s) may not open content item {id}", shut_out.len())))
    }
}

/// A well-formed id naming an item that is not there for everyone: a 422.
fn field(message: String) -> Error {
    Error::Unprocessable(vec![FieldError::new("attachment_content_id", message)])
}
