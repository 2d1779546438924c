//! The timetable service's consumer (`timetable-service-group` reads `course.events`): a course
//! that is deleted or deactivated can no longer be taught, so its active entries are
//! deactivated (each announced as `ENTRY_DELETED`); a renamed course's entries take the new name.
//! Other course events change nothing here.

use nimbus_core::event::course::CourseEvent;
use nimbus_core::event::{AnyEvent, TimetableEvent};
use tokio_postgres::Transaction;

use super::entries::{self, COLUMNS, from_row};
use crate::actor::Actor;
use crate::consumer::{Handler, HandlerError, Origin};

/// The timetable service's [`Handler`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TimetableHandler;

impl Handler for TimetableHandler {
    async fn handle(&self, tx: &Transaction<'_>, event: &AnyEvent, _origin: &Origin<'_>) -> Result<(), HandlerError> {
        let AnyEvent::Course(env) = event else { return Ok(()) };
        // Our events carry the course event's correlation id, so the chain can be followed.
        let actor = Actor { user_id: None, correlation_id: env.correlation_id.clone(), client_ip: None };
        match &env.event {
            CourseEvent::CourseDeleted(p) | CourseEvent::CourseDeactivated(p) => {
                let rows = tx
                    .query(
                        &format!(
                            "UPDATE timetable_entries SET is_active = false, updated_at = now() \
                             WHERE course_id = $1 AND is_active RETURNING {COLUMNS}"
                        ),
                        &[&p.course_id],
                    )
                    .await?;
                for r in &rows {
                    let entry = from_row(r);
                    let by = if p.changed_by.is_empty() { "course-service".to_owned() } else { p.changed_by.clone() };
                    super::publish(tx, &actor, TimetableEvent::EntryDeleted(entries::payload(&entry, by)))
                        .await
                        .map_err(reject)?;
                }
                Ok(())
            }
            CourseEvent::CourseUpdated(p) => {
                if let Some(name) = p.changes.get("course_name").and_then(|c| c.new_value.as_str()) {
                    tx.execute(
                        "UPDATE timetable_entries SET course_name = $2, updated_at = now() WHERE course_id = $1",
                        &[&p.course_id, &name],
                    )
                    .await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn reject(e: crate::error::Error) -> HandlerError {
    match e {
        crate::error::Error::Db(db) => HandlerError::Db(db),
        other => HandlerError::Rejected(other.to_string()),
    }
}
