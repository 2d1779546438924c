//! `communication-service-group` over `user.events` and `course.events`. From `user.events`: who
//! is no longer active (a suspended, deactivated or deleted person cannot post, start
//! conversations or be added; reactivated, they can again). From `course.events`: each course's
//! forum ([`super::forums::follow_course`]).

use nimbus_core::event::AnyEvent;
use tokio_postgres::Transaction;

use crate::consumer::{Handler, HandlerError, Origin};

/// The communication service's [`Handler`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CommunicationHandler;

impl Handler for CommunicationHandler {
    async fn handle(&self, tx: &Transaction<'_>, event: &AnyEvent, _origin: &Origin<'_>) -> Result<(), HandlerError> {
        match event {
            AnyEvent::Course(env) => Ok(super::forums::follow_course(tx, &env.event).await?),
            _ => crate::consumer::inactive::track(tx, event).await,
        }
    }
}
