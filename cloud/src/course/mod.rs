//! The course service (skeleton: filled in by the course service work).

use nimbus_core::event::AnyEvent;

use crate::worker::{Handler, HandlerError, Origin};

/// The seed's service name.
pub const SERVICE: &str = "course-service";
/// The service's own database.
pub const DATABASE: &str = "course_service_db";

/// The course service's reaction to the events its consumer group reads.
pub struct CourseHandler;

impl Handler for CourseHandler {
    async fn handle(
        &self,
        _tx: &tokio_postgres::Transaction<'_>,
        _event: &AnyEvent,
        _origin: &Origin<'_>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}
/// Placeholder until the service lands.
pub async fn rosters(
    _c: &impl deadpool_postgres::GenericClient,
    _ids: &[String],
) -> crate::error::Result<(Vec<nimbus_core::snapshot::Faculty>, Vec<nimbus_core::snapshot::Enrollment>)> {
    Ok((vec![], vec![]))
}
