//! The seed's consumer-group registry ("Consumer Groups" table): one group per service and the
//! topics it subscribes to.

use crate::topics::Topic;

/// One service's consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// The group id on the broker (seed spelling).
    pub group_id: &'static str,
    /// The service that owns the group (also the `service_name` it stamps on events).
    pub service: &'static str,
    /// Topics the group subscribes to.
    pub topics: &'static [Topic],
}

/// "All event topics" of the analytics row: every domain topic. The DLQ is excluded on purpose:
/// its messages are envelopes around other topics' events and would be counted twice.
pub const ALL_EVENT_TOPICS: [Topic; 12] = [
    Topic::UserEvents,
    Topic::AuthEvents,
    Topic::ContentEvents,
    Topic::NotificationCommands,
    Topic::NotificationStatus,
    Topic::CourseEvents,
    Topic::EnrollmentEvents,
    Topic::TimetableEvents,
    Topic::AttendanceEvents,
    Topic::AnnouncementEvents,
    Topic::CommunicationEvents,
    Topic::AnalyticsEvents,
];

/// The nine groups of the seed, in its order.
pub const CONSUMER_GROUPS: [ConsumerGroup; 9] = [
    ConsumerGroup { group_id: "user-service-group", service: "user-service", topics: &[] },
    ConsumerGroup { group_id: "content-service-group", service: "content-service", topics: &[Topic::UserEvents] },
    ConsumerGroup {
        group_id: "notification-service-group",
        service: "notification-service",
        topics: &[
            Topic::NotificationCommands,
            Topic::UserEvents,
            Topic::ContentEvents,
            Topic::AttendanceEvents,
            Topic::AnnouncementEvents,
        ],
    },
    ConsumerGroup { group_id: "course-service-group", service: "course-service", topics: &[Topic::UserEvents] },
    ConsumerGroup { group_id: "timetable-service-group", service: "timetable-service", topics: &[Topic::CourseEvents] },
    ConsumerGroup {
        group_id: "attendance-service-group",
        service: "attendance-service",
        topics: &[Topic::TimetableEvents, Topic::CourseEvents, Topic::EnrollmentEvents],
    },
    ConsumerGroup {
        group_id: "announcement-service-group",
        service: "announcement-service",
        topics: &[Topic::UserEvents],
    },
    ConsumerGroup {
        group_id: "communication-service-group",
        service: "communication-service",
        topics: &[Topic::UserEvents, Topic::CourseEvents],
    },
    ConsumerGroup { group_id: "analytics-service-group", service: "analytics-service", topics: &ALL_EVENT_TOPICS },
];

/// Looks a group up by its service name (`attendance-service` or plain `attendance`).
pub fn group_for_service(service: &str) -> Option<&'static ConsumerGroup> {
    CONSUMER_GROUPS.iter().find(|g| g.service == service || g.service.strip_suffix("-service") == Some(service))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_groups_with_the_seed_subscriptions() {
        assert_eq!(CONSUMER_GROUPS.len(), 9);
        let att = group_for_service("attendance").unwrap();
        assert_eq!(att.group_id, "attendance-service-group");
        assert_eq!(att.topics, &[Topic::TimetableEvents, Topic::CourseEvents, Topic::EnrollmentEvents]);
        assert!(group_for_service("user-service").unwrap().topics.is_empty());
        assert_eq!(group_for_service("notification").unwrap().topics.len(), 5);
        let analytics = group_for_service("analytics").unwrap();
        assert_eq!(analytics.topics.len(), 12);
        assert!(!analytics.topics.contains(&Topic::Dlq));
        assert!(group_for_service("billing").is_none());
    }

    #[test]
    fn every_group_id_is_the_service_name_plus_group() {
        for g in CONSUMER_GROUPS {
            assert_eq!(g.group_id.strip_suffix("-group"), Some(g.service));
        }
    }
}
