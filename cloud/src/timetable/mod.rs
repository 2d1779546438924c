//! The timetable service (skeleton: filled in by the timetable service work).

use nimbus_core::event::AnyEvent;

use crate::worker::{Handler, HandlerError, Origin};

/// The seed's service name.
pub const SERVICE: &str = "timetable-service";
/// The service's own database.
pub const DATABASE: &str = "timetable_service_db";

/// The timetable service's reaction to the events its consumer group reads.
pub struct TimetableHandler;

impl Handler for TimetableHandler {
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
pub async fn room_schedule(
    _c: &impl deadpool_postgres::GenericClient,
    _room: &str,
) -> crate::error::Result<Vec<nimbus_core::snapshot::TimetableEntry>> {
    Ok(vec![])
}
