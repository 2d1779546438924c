//! What the content routes share: the service's pools and store ([`ContentState`]), and who may
//! see or change an item.

use deadpool_postgres::Pool;
use serde_json::json;
use uuid::Uuid;

use super::items::{self, ContentItem, Visibility};
use super::store::{Store, UploadPolicy};
use crate::error::Error;
use crate::http::{AppError, Caller};

/// What the content handlers share.
#[derive(Clone)]
pub struct ContentState {
    /// `content_service_db`.
    pub pool: Pool,
    /// `course_service_db` (students' enrolments).
    pub courses: Pool,
    /// `timetable_service_db` (a node's room schedule).
    pub timetable: Pool,
    /// `edge_registry_db` (node credentials and rooms).
    pub registry: Pool,
    /// The GridFS store.
    pub store: Store,
    /// Upload limits.
    pub policy: UploadPolicy,
}

pub(crate) fn is_staff(caller: &Caller) -> bool {
    caller.has_role("admin") || caller.permissions.contains("content:write")
}

impl ContentState {
    /// What `caller` may see: everything (staff) or a student's courses and grants.
    pub(crate) async fn visibility(&self, caller: &Caller) -> Result<Visibility, AppError> {
        if is_staff(caller) {
            return Ok(Visibility::All);
        }
        let client = self.courses.get().await.map_err(Error::from)?;
        let courses = crate::course::roster::courses_of_student(&client, &caller.user_id).await?;
        Ok(Visibility::Student { user_id: caller.user_id.clone(), courses })
    }

    /// The item, if `caller` may see it (else 404).
    pub(crate) async fn visible_item(&self, caller: &Caller, id: Uuid) -> Result<ContentItem, AppError> {
        let visibility = self.visibility(caller).await?;
        let client = self.pool.get().await.map_err(Error::from)?;
        let item = items::get(&client, id).await?;
        if !items::visible(&client, id, &visibility).await? {
            return Err(AppError::from(Error::NotFound { what: "content", id: id.to_string() }));
        }
        Ok(item)
    }

    /// The item, if `caller` may change it: admin, creator or `edit`/`manage` grant (else 403).
    pub(crate) async fn editable_item(&self, caller: &Caller, id: Uuid) -> Result<ContentItem, AppError> {
        let client = self.pool.get().await.map_err(Error::from)?;
        let item = items::get(&client, id).await?;
        if caller.has_role("admin")
            || item.created_by == caller.user_id
            || items::may_edit(&client, id, &caller.user_id).await?
        {
            Ok(item)
        } else {
            Err(AppError::forbidden("Only an admin, the creator or a holder of an edit grant may change this content")
                .with_details(json!({ "content_id": id })))
        }
    }
}
