//! Who caused a change. Commands of the services (called by the admin API) take an [`Actor`] so
//! every event they publish carries the request's correlation id and the acting user.

use nimbus_core::event::{Envelope, TopicEvent};

/// The user and request behind a command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The acting user's id, when a user (not the system) acts.
    pub user_id: Option<String>,
    /// The request's correlation id (`X-Correlation-ID`).
    pub correlation_id: Option<String>,
    /// The client's address, for activity logs.
    pub client_ip: Option<String>,
}

impl Actor {
    /// The system itself (jobs, workers): no user, no request.
    pub fn system() -> Self {
        Actor::default()
    }

    /// A user acting within a request.
    pub fn user(user_id: impl Into<String>, correlation_id: impl Into<String>) -> Self {
        Actor { user_id: Some(user_id.into()), correlation_id: Some(correlation_id.into()), client_ip: None }
    }

    /// Stamps an event with the correlation id and the acting user (`metadata.actor_id`).
    /// Who to name in an event's `created_by` / `changed_by` / `updated_by`: the acting user, or
    /// `system`.
    pub fn id(&self) -> String {
        self.user_id.clone().unwrap_or_else(|| "system".to_owned())
    }

    /// Stamps an event with the request's correlation id and the acting user (`actor_id`).
    pub fn stamp<E: TopicEvent>(&self, mut event: Envelope<E>) -> Envelope<E> {
        if let Some(c) = &self.correlation_id {
            event = event.with_correlation_id(c.clone());
        }
        if let Some(u) = &self.user_id {
            event = event.with_metadata("actor_id", u.clone());
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_core::event::TimetableEvent;

    #[test]
    fn an_actor_stamps_correlation_id_and_user_onto_events() {
        let event = Envelope::new("timetable-service", TimetableEvent::TimetablePublished(Default::default()));
        let stamped = Actor::user("admin-1", "req-42").stamp(event.clone());
        assert_eq!(stamped.correlation_id.as_deref(), Some("req-42"));
        assert_eq!(stamped.metadata.unwrap()["actor_id"], "admin-1");
        assert_eq!(Actor::system().stamp(event.clone()), event);
    }
}
