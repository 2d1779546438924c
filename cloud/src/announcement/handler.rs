//! `announcement-service-group` over `user.events`: who is no longer active. A suspended,
//! deactivated or deleted person leaves every audience (the fan-out and the read statistics
//! count only active people); reactivated, they are back. Their read marks are kept, so the
//! statistics are the same again when they return.

use nimbus_core::event::AnyEvent;
use tokio_postgres::Transaction;

use crate::consumer::{Handler, HandlerError, Origin};

/// The announcement service's [`Handler`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AnnouncementHandler;

impl Handler for AnnouncementHandler {
    async fn handle(&self, tx: &Transaction<'_>, event: &AnyEvent, _origin: &Origin<'_>) -> Result<(), HandlerError> {
        crate::consumer::inactive::track(tx, event).await
    }
}
