//! The seed's Kafka topic registry (`004_8197c01cb9c83608.txt`, "Topic Registry"), as data.
//!
//! Names, partition counts, retention and replication are the contract: the cloud creates topics
//! from this table and tests compare it with the seed.

use core::fmt;
use core::str::FromStr;
use core::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the cluster runs; decides replication factor and min in-sync replicas (seed: "Broker
/// Configuration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// One broker: replication 1, min ISR 1.
    Development,
    /// A real cluster: replication 3, min ISR 2.
    Production,
}

impl Environment {
    /// Replication factor for every topic in this environment.
    pub const fn replication_factor(self) -> i16 {
        match self {
            Environment::Development => 1,
            Environment::Production => 3,
        }
    }

    /// `min.insync.replicas` for every topic in this environment.
    pub const fn min_insync_replicas(self) -> i16 {
        match self {
            Environment::Development => 1,
            Environment::Production => 2,
        }
    }
}

/// One of the 13 topics of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Topic {
    /// `user.events`
    #[serde(rename = "user.events")]
    UserEvents,
    /// `auth.events`
    #[serde(rename = "auth.events")]
    AuthEvents,
    /// `content.events`
    #[serde(rename = "content.events")]
    ContentEvents,
    /// `notification.commands`
    #[serde(rename = "notification.commands")]
    NotificationCommands,
    /// `notification.status`
    #[serde(rename = "notification.status")]
    NotificationStatus,
    /// `course.events`
    #[serde(rename = "course.events")]
    CourseEvents,
    /// `enrollment.events`
    #[serde(rename = "enrollment.events")]
    EnrollmentEvents,
    /// `timetable.events`
    #[serde(rename = "timetable.events")]
    TimetableEvents,
    /// `attendance.events`
    #[serde(rename = "attendance.events")]
    AttendanceEvents,
    /// `announcement.events`
    #[serde(rename = "announcement.events")]
    AnnouncementEvents,
    /// `communication.events`
    #[serde(rename = "communication.events")]
    CommunicationEvents,
    /// `analytics.events`
    #[serde(rename = "analytics.events")]
    AnalyticsEvents,
    /// `dlq.events`: events a consumer gave up on after the retry policy.
    #[serde(rename = "dlq.events")]
    Dlq,
}

/// How a topic is laid out on the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic.
    pub topic: Topic,
    /// Partition count (ordering is per partition, so this bounds consumer parallelism).
    pub partitions: i32,
    /// How long the broker keeps messages.
    pub retention: Duration,
    /// The field whose value keys messages (ordering unit); see [`Topic::partition_key_rule`].
    pub key_rule: &'static str,
    /// The seed's one-line description.
    pub description: &'static str,
}

const DAY: u64 = 24 * 60 * 60;

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * DAY)
}

/// Every topic with its seed layout, in the seed's order.
pub const TOPICS: [TopicSpec; 13] = [
    spec(Topic::UserEvents, 6, 7, "user_id", "User lifecycle events (created, updated, deleted)"),
    spec(
        Topic::AuthEvents,
        6,
        7,
        "user_id (email when unknown)",
        "Authentication events (login, logout, password reset)",
    ),
    spec(Topic::ContentEvents, 12, 7, "content_id", "Content lifecycle events"),
    spec(Topic::NotificationCommands, 12, 1, "recipient_user_id (batch_id for bulk)", "Notification requests"),
    spec(Topic::NotificationStatus, 6, 3, "user_id", "Notification delivery status updates"),
    spec(Topic::CourseEvents, 6, 7, "course_id", "Course management events"),
    spec(Topic::EnrollmentEvents, 6, 7, "course_id", "Student enrollment events"),
    spec(Topic::TimetableEvents, 3, 7, "timetable_id", "Timetable updates"),
    spec(Topic::AttendanceEvents, 6, 7, "course_id", "Attendance events"),
    spec(Topic::AnnouncementEvents, 3, 7, "announcement_id", "Announcement events"),
    spec(Topic::CommunicationEvents, 6, 3, "conversation_id (thread_id for forums)", "Messaging events"),
    spec(Topic::AnalyticsEvents, 12, 1, "user_id (session_id, then event_id)", "Analytics data collection"),
    spec(Topic::Dlq, 3, 30, "original_key", "Dead letter queue for failed events"),
];

const fn spec(
    topic: Topic,
    partitions: i32,
    retention_days: u64,
    key_rule: &'static str,
    description: &'static str,
) -> TopicSpec {
    TopicSpec { topic, partitions, retention: days(retention_days), key_rule, description }
}

impl Topic {
    /// All topics in the seed's order.
    pub const ALL: [Topic; 13] = [
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
        Topic::Dlq,
    ];

    /// The topic's name on the broker.
    pub const fn name(self) -> &'static str {
        match self {
            Topic::UserEvents => "user.events",
            Topic::AuthEvents => "auth.events",
            Topic::ContentEvents => "content.events",
            Topic::NotificationCommands => "notification.commands",
            Topic::NotificationStatus => "notification.status",
            Topic::CourseEvents => "course.events",
            Topic::EnrollmentEvents => "enrollment.events",
            Topic::TimetableEvents => "timetable.events",
            Topic::AttendanceEvents => "attendance.events",
            Topic::AnnouncementEvents => "announcement.events",
            Topic::CommunicationEvents => "communication.events",
            Topic::AnalyticsEvents => "analytics.events",
            Topic::Dlq => "dlq.events",
        }
    }

    /// The topic's layout.
    pub fn spec(self) -> &'static TopicSpec {
        // TOPICS is in the same order as Topic::ALL (checked by a test).
        &TOPICS[self as usize]
    }

    /// Which payload field keys this topic's messages. The seed fixes user_id, content_id and
    /// course_id; the other rules are ours and keep each aggregate's events in order.
    pub fn partition_key_rule(self) -> &'static str {
        self.spec().key_rule
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the 13 topics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown topic {0:?}")]
pub struct UnknownTopic(pub alloc::string::String);

impl FromStr for Topic {
    type Err = UnknownTopic;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| UnknownTopic(s.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_order_matches_topic_enum_so_spec_lookup_is_correct() {
        for (i, t) in Topic::ALL.iter().enumerate() {
            assert_eq!(TOPICS[i].topic, *t);
            assert_eq!(t.spec().topic, *t);
            assert_eq!(t.name().parse::<Topic>().unwrap(), *t);
        }
    }

    #[test]
    fn registry_has_the_seed_partitions_and_retention() {
        let expect: [(&str, i32, u64); 13] = [
            ("user.events", 6, 7),
            ("auth.events", 6, 7),
            ("content.events", 12, 7),
            ("notification.commands", 12, 1),
            ("notification.status", 6, 3),
            ("course.events", 6, 7),
            ("enrollment.events", 6, 7),
            ("timetable.events", 3, 7),
            ("attendance.events", 6, 7),
            ("announcement.events", 3, 7),
            ("communication.events", 6, 3),
            ("analytics.events", 12, 1),
            ("dlq.events", 3, 30),
        ];
        for (spec, (name, parts, days)) in TOPICS.iter().zip(expect) {
            assert_eq!(spec.topic.name(), name);
            assert_eq!(spec.partitions, parts, "{name}");
            assert_eq!(spec.retention.as_secs(), days * DAY, "{name}");
        }
        assert_eq!(Environment::Production.replication_factor(), 3);
        assert_eq!(Environment::Development.replication_factor(), 1);
        assert_eq!(Environment::Production.min_insync_replicas(), 2);
    }

    #[test]
    fn unknown_topic_names_are_rejected() {
        assert!("user.event".parse::<Topic>().is_err());
        assert!("".parse::<Topic>().is_err());
    }
}
