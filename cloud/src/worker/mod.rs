//! # Kafka consumer workers
//!
//! One long-running role per service (`nimbus-cloud worker --service attendance`): it reads the
//! service's topics as the service's consumer group and applies every event to the service's
//! PostgreSQL database **effectively once** through the shared consumer loop ([`crate::consumer`],
//! which documents how one message is handled, failures, retries and the DLQ).
//!
//! ## Subscriptions
//!
//! A worker uses its service's seed group id ([`group_for_service`]) and subscribes to the seed's
//! topics for that group ([`subscriptions`]). One decision of ours extends the seed: the
//! **attendance service also subscribes to `attendance.events`**. The seed lists only
//! `timetable.events`, `course.events` and `enrollment.events` for `attendance-service-group`
//! because, in the seed, the attendance service itself writes attendance to its database and then
//! publishes. In NimbusU Edge, classroom nodes mark attendance and the edge ingest publishes
//! `ATTENDANCE_MARKED` / `ATTENDANCE_UPDATED` to `attendance.events` on the attendance service's
//! behalf, so the service's database is filled by consuming that topic. The alerts the service
//! publishes there itself come back to it and are ignored. The second: the **notification
//! service also subscribes to `auth.events`**, because the password reset e-mail
//! (`PASSWORD_RESET_REQUESTED`) is its to send.
//!
//! The offsets start at the earliest message for a new group (`auto.offset.reset=earliest`) and
//! are only committed by the worker (`enable.auto.commit=false`).
//!
//! ## Layout
//!
//! This role only composes: [`WorkerSettings`], [`Worker`] / [`run`] pick the service's handler
//! (`crate::attendance::AttendanceHandler`, `crate::timetable::TimetableHandler`,
//! `crate::course::CourseHandler`), its background jobs (the attendance service's
//! low-attendance alerts, the outbox relay of services that publish) and run the consumer loop.
//!
//! ## Test hooks
//!
//! Two settings exist for tests and are documented as such: [`WorkerSettings::group_id`] replaces
//! the seed group id (tests share the broker's topics, and each needs its own committed offsets),
//! and [`WorkerSettings::fail_after_db_commit_once`] ([`CrashHook`]) stops the worker right after
//! the database commit of a chosen event and before its offset commit, as a crash would.

use std::sync::Arc;
use std::time::Duration;

use nimbus_core::groups::{ConsumerGroup, group_for_service};
use nimbus_core::retry::RetryPolicy;
use nimbus_core::topics::Topic;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::attendance;
pub use crate::consumer::{
    Claimed, ConsumerHealth, CrashHook, Handler, HandlerError, HealthSnapshot, Membership, MetricsSnapshot, Origin,
    WorkerMetrics,
};
use crate::error::{Error, Result};
use crate::http::metrics::{Kind, Metric};
use crate::http::probe::{self, Probes};
use crate::notification;

/// What a worker needs to run. Built from the configuration by the `worker` subcommand; tests
/// build it directly.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// The service's database (`postgres://…/attendance_service_db`), migrated at start.
    pub database_url: String,
    /// Connections the worker may hold (the consumer uses one at a time; the alert job another).
    pub pool_size: usize,
    /// **Test hook.** Replaces the seed's group id. Production leaves it `None`: offsets are the
    /// service's, and two deployments with different ids would both apply every event.
    pub group_id: Option<String>,
    /// How often and how patiently a failing event is retried before the DLQ.
    pub retry: RetryPolicy,
    /// The attendance service's low-attendance job (ignored by other services).
    pub alerts: attendance::alerts::AlertSettings,
    /// **Test hook.** Stop the worker right after the database commit of the first event the hook
    /// selects and before its offset commit, as if the process had been killed there.
    pub fail_after_db_commit_once: Option<CrashHook>,
    /// How often the outbox relay looks for events to publish when it found none.
    pub outbox_interval: Duration,
    /// The notification service's channels, neighbours and sender (ignored by other services).
    pub notification: notification::NotificationSettings,
    /// The announcement service's neighbours and jobs (ignored by other services).
    pub announcement: AnnouncementSettings,
    /// Most events applied in one database transaction.
    pub batch_size: usize,
    /// How the consumer keeps its group membership and watches its lag.
    pub membership: Membership,
}

/// What the announcement worker needs besides its own database.
#[derive(Debug, Clone)]
pub struct AnnouncementSettings {
    /// `user_service_db` (who is active, with which role).
    pub users_url: String,
    /// `course_service_db` (memberships).
    pub courses_url: String,
    /// `timetable_service_db` (rooms of courses).
    pub timetable_url: String,
    /// How often the jobs look for due publications, expiries and fan-outs.
    pub interval: Duration,
}

impl Default for AnnouncementSettings {
    fn default() -> Self {
        AnnouncementSettings {
            users_url: String::new(),
            courses_url: String::new(),
            timetable_url: String::new(),
            interval: Duration::from_secs(1),
        }
    }
}

impl WorkerSettings {
    /// Production defaults for a worker on `brokers` and the service database at `database_url`.
    pub fn new(brokers: impl Into<String>, database_url: impl Into<String>) -> Self {
        WorkerSettings {
            brokers: brokers.into(),
            database_url: database_url.into(),
            pool_size: 4,
            group_id: None,
            retry: RetryPolicy::SEED,
            alerts: attendance::alerts::AlertSettings::default(),
            fail_after_db_commit_once: None,
            outbox_interval: Duration::from_millis(200),
            notification: notification::NotificationSettings::default(),
            announcement: AnnouncementSettings::default(),
            batch_size: 500,
            membership: Membership::default(),
        }
    }
}

/// The topics `group` reads: the seed's table, plus `attendance.events` for the attendance
/// service (see "Subscriptions" in the module docs).
pub fn subscriptions(group: &ConsumerGroup) -> Vec<Topic> {
    let mut topics = group.topics.to_vec();
    if group.service == attendance::SERVICE && !topics.contains(&Topic::AttendanceEvents) {
        topics.push(Topic::AttendanceEvents);
    }
    if group.service == notification::SERVICE && !topics.contains(&Topic::AuthEvents) {
        topics.push(Topic::AuthEvents);
    }
    topics
}

/// One service's worker, built before it runs so the caller can hold its [`WorkerMetrics`].
pub struct Worker {
    group: &'static ConsumerGroup,
    settings: WorkerSettings,
    metrics: Arc<WorkerMetrics>,
    notification_metrics: Arc<notification::sender::SenderMetrics>,
    health: Arc<ConsumerHealth>,
    probes: Probes,
}

const WORKER_EVENTS: Metric = Metric {
    name: "nimbus_worker_events_total",
    help: "What a worker did with the messages it consumed, by consumer group and outcome",
    kind: Kind::Counter,
};
const NOTIFICATION_DELIVERIES: Metric = Metric {
    name: "nimbus_notification_deliveries_total",
    help: "Notification deliveries settled by the sender, by outcome",
    kind: Kind::Counter,
};

impl Worker {
    /// A worker for `service` (`attendance` or `attendance-service`, `timetable`, `course`).
    /// Fails for a service that has no worker yet, so a typo in the deployment is loud.
    pub fn new(service: &str, settings: WorkerSettings) -> Result<Self> {
        let group = group_for_service(service)
            .ok_or_else(|| Error::Config(format!("worker: {service:?} is not a service of the seed")))?;
        Service::of(group.service)?;
        Ok(Worker {
            group,
            settings,
            metrics: Arc::new(WorkerMetrics::default()),
            notification_metrics: Arc::new(notification::sender::SenderMetrics::default()),
            health: Arc::new(ConsumerHealth::default()),
            probes: Probes::default(),
        })
    }

    /// Records into `probes`' registry and adds the worker's readiness checks to them (its
    /// database, Kafka, its consumer not stalled) when it runs.
    pub fn with_probes(mut self, probes: Probes) -> Self {
        self.probes = probes;
        self
    }

    /// What the consumer's watchdog last saw (lag, partitions held, stalled).
    pub fn health(&self) -> Arc<ConsumerHealth> {
        self.health.clone()
    }

    /// The worker's counters, shared with the running loop.
    pub fn metrics(&self) -> Arc<WorkerMetrics> {
        self.metrics.clone()
    }

    /// The notification sender's counters (zero for other services).
    pub fn notification_metrics(&self) -> Arc<notification::sender::SenderMetrics> {
        self.notification_metrics.clone()
    }

    /// The group id the worker consumes as: the seed's, unless a test overrides it.
    pub fn group_id(&self) -> &str {
        self.settings.group_id.as_deref().unwrap_or(self.group.group_id)
    }

    /// Migrates the service database, then consumes until `shutdown` is cancelled (or the crash
    /// test hook fires). Returns an error only if the worker cannot start (bad settings, the
    /// database unreachable at start, the consumer cannot be created).
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let service = Service::of(self.group.service)?;
        let pool = crate::db::pool(&self.settings.database_url, self.settings.pool_size.max(2))?;
        let migrations = crate::db::migrations_for(service.database())
            .ok_or_else(|| Error::Config(format!("no migrations for {}", service.database())))?;
        crate::db::migrate(&pool, migrations).await?;
        // Dead letters and alerts are at-least-once with deterministic ids: no idempotent state
        // for a restarted broker to lose (see kafka::at_least_once_producer).
        let producer = crate::kafka::at_least_once_producer(&self.settings.brokers)?;
        let topics = subscriptions(self.group);
        let group_id = self.group_id().to_owned();
        self.observe(&group_id, service, &pool, &producer);
        tracing::info!(
            service = self.group.service,
            group_id = %group_id,
            topics = ?topics.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "worker starting"
        );

        let jobs = shutdown.child_token();
        let mut background = Vec::new();
        if service == Service::Attendance
            && let Some(every) = self.settings.alerts.interval
        {
            let (pool, producer, thresholds, metrics) =
                (pool.clone(), producer.clone(), self.settings.alerts.thresholds, self.metrics.clone());
            let stop = jobs.clone();
            background.push(tokio::spawn(async move {
                attendance::alerts::alert_loop(&pool, &producer, &thresholds, every, &metrics, stop).await;
            }));
        }
        let mut notification_handler = None;
        if service == Service::Notification {
            let n = &self.settings.notification;
            let directory = notification::intake::Directory {
                users: crate::db::pool(&n.users_url, 4)?,
                courses: crate::db::pool(&n.courses_url, 4)?,
            };
            let channels = notification::channels::Channels {
                email: n.email.as_ref().map(notification::channels::Email::new).transpose()?,
                sms: n.sms.clone().map(notification::channels::sms::Sms::new).transpose()?,
                push: n.push.clone().map(notification::channels::push::Push::new).transpose()?,
                in_app: notification::channels::InApp::default(),
            };
            let (p, c, s, m, stop) =
                (pool.clone(), channels.clone(), n.sender.clone(), self.notification_metrics.clone(), jobs.clone());
            background.push(tokio::spawn(notification::sender::run(p, c, s, m, stop)));
            let (p, d, c, every, stop) =
                (pool.clone(), directory.clone(), channels.clone(), n.bulk_interval, jobs.clone());
            background.push(tokio::spawn(notification::bulk::expand_loop(p, d, c, every, stop)));
            let every = std::time::Duration::from_secs(30);
            background.push(tokio::spawn(notification::schedule::digest_loop(pool.clone(), every, jobs.clone())));
            notification_handler =
                Some(notification::NotificationHandler { channels, directory, reset_url: n.reset_url.clone() });
        }
        if service == Service::Announcement {
            let a = &self.settings.announcement;
            let directory = crate::announcement::audience::Directory {
                users: crate::db::pool(&a.users_url, 2)?,
                courses: crate::db::pool(&a.courses_url, 2)?,
                timetable: crate::db::pool(&a.timetable_url, 2)?,
            };
            let (p, every, stop) = (pool.clone(), a.interval, jobs.clone());
            background.push(tokio::spawn(crate::announcement::jobs::run(p, directory, every, stop)));
        }
        if service == Service::Communication {
            let every = std::time::Duration::from_secs(10);
            let reminders = crate::communication::office_hours::remind_loop(pool.clone(), every, jobs.clone());
            background.push(tokio::spawn(reminders));
        }
        if service.publishes() {
            // The service's own events, written by its commands (the admin API) into its outbox.
            let relay =
                crate::outbox::relay(pool.clone(), producer.clone(), self.settings.outbox_interval, jobs.clone());
            background.push(tokio::spawn(relay));
        }

        let consumer = crate::consumer::Consumer {
            group_id,
            service: self.group.service,
            pool,
            producer,
            handler: (),
            metrics: self.metrics.clone(),
            registry: self.probes.registry.clone(),
            health: self.health.clone(),
            membership: self.settings.membership.clone(),
            retry: self.settings.retry,
            batch_size: self.settings.batch_size.max(1),
            crash_after_db_commit: self.settings.fail_after_db_commit_once.clone(),
        };
        let brokers = &self.settings.brokers;
        let result = match service {
            Service::Attendance => consumer.with(attendance::AttendanceHandler).run(brokers, &topics, shutdown).await,
            Service::Timetable => {
                consumer.with(crate::timetable::TimetableHandler).run(brokers, &topics, shutdown).await
            }
            Service::Course => consumer.with(crate::course::CourseHandler).run(brokers, &topics, shutdown).await,
            Service::Notification => {
                let handler = notification_handler.ok_or_else(|| Error::Config("notification handler".into()))?;
                consumer.with(handler).run(brokers, &topics, shutdown).await
            }
            Service::Announcement => {
                consumer.with(crate::announcement::AnnouncementHandler).run(brokers, &topics, shutdown).await
            }
            Service::Communication => {
                consumer.with(crate::communication::CommunicationHandler).run(brokers, &topics, shutdown).await
            }
        };

        jobs.cancel();
        for job in background {
            let _ = job.await;
        }
        tracing::info!(service = self.group.service, metrics = ?self.metrics.snapshot(), "worker stopped");
        result
    }
}

impl Worker {
    /// The readiness checks (`postgres:<database>`, `kafka`, `consumer:<group>`) and the
    /// collectors that copy the worker's (and the notification sender's) counters into the
    /// registry at each scrape.
    fn observe(&self, group_id: &str, service: Service, pool: &deadpool_postgres::Pool, producer: &FutureProducer) {
        let p = pool.clone();
        self.probes.check(format!("postgres:{}", service.database()), move || probe::postgres(p.clone()));
        let k = producer.clone();
        self.probes.check(format!("kafka:{group_id}"), move || crate::kafka::reachable(k.clone()));
        let h = self.health.clone();
        self.probes.check(format!("consumer:{group_id}"), move || {
            let r = h.check();
            async move { r }
        });
        let (metrics, group) = (Arc::downgrade(&self.metrics), group_id.to_owned());
        self.probes.registry.on_scrape(move |r| {
            let Some(m) = metrics.upgrade() else { return };
            let s = m.snapshot();
            for (outcome, n) in [
                ("processed", s.processed),
                ("duplicate", s.duplicates),
                ("retried", s.retries),
                ("dead_lettered", s.dead_lettered),
                ("outage_wait", s.outage_waits),
                ("commit_failed", s.commit_failures),
                ("alert_sent", s.alerts_sent),
            ] {
                r.set(&WORKER_EVENTS, &[("consumer_group", &group), ("outcome", outcome)], n as f64);
            }
        });
        if service == Service::Notification {
            let sender = Arc::downgrade(&self.notification_metrics);
            self.probes.registry.on_scrape(move |r| {
                let Some(m) = sender.upgrade() else { return };
                let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) as f64;
                for (outcome, n) in [
                    ("sent", get(&m.sent)),
                    ("retried", get(&m.retried)),
                    ("failed", get(&m.failed)),
                    ("lost", get(&m.lost)),
                ] {
                    r.set(&NOTIFICATION_DELIVERIES, &[("outcome", outcome)], n);
                }
            });
        }
    }
}

/// The services that have a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Attendance,
    Timetable,
    Course,
    Notification,
    Announcement,
    Communication,
}

impl Service {
    fn of(seed_service: &str) -> Result<Self> {
        match seed_service {
            attendance::SERVICE => Ok(Service::Attendance),
            crate::timetable::SERVICE => Ok(Service::Timetable),
            crate::course::SERVICE => Ok(Service::Course),
            notification::SERVICE => Ok(Service::Notification),
            crate::announcement::SERVICE => Ok(Service::Announcement),
            crate::communication::SERVICE => Ok(Service::Communication),
            other => Err(Error::Config(format!(
                "worker: {other} has no worker yet (only {}, {}, {}, {}, {} and {})",
                attendance::SERVICE,
                crate::timetable::SERVICE,
                crate::course::SERVICE,
                notification::SERVICE,
                crate::announcement::SERVICE,
                crate::communication::SERVICE
            ))),
        }
    }

    fn database(self) -> &'static str {
        match self {
            Service::Attendance => attendance::DATABASE,
            Service::Timetable => crate::timetable::DATABASE,
            Service::Course => crate::course::DATABASE,
            Service::Notification => notification::DATABASE,
            Service::Announcement => crate::announcement::DATABASE,
            Service::Communication => crate::communication::DATABASE,
        }
    }

    /// Whether the service's commands publish through a transactional outbox.
    fn publishes(self) -> bool {
        matches!(
            self,
            Service::Timetable
                | Service::Course
                | Service::Notification
                | Service::Announcement
                | Service::Communication
        )
    }
}

/// Runs `service`'s worker until `shutdown` is cancelled: the entry point of `nimbus-cloud worker
/// --service <name>`.
pub async fn run(service: &str, settings: WorkerSettings, shutdown: CancellationToken) -> Result<()> {
    Worker::new(service, settings)?.run(shutdown).await
}

/// [`run`], with its checks and metrics in `probes` (served by the caller).
pub async fn run_with(
    service: &str,
    settings: WorkerSettings,
    probes: Probes,
    shutdown: CancellationToken,
) -> Result<()> {
    Worker::new(service, settings)?.with_probes(probes).run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::{error_chain, error_summary};

    #[test]
    fn attendance_reads_the_seed_topics_plus_attendance_events() {
        let group = group_for_service("attendance").unwrap();
        assert_eq!(
            subscriptions(group),
            [Topic::TimetableEvents, Topic::CourseEvents, Topic::EnrollmentEvents, Topic::AttendanceEvents]
        );
        let notification = group_for_service("notification").unwrap();
        let mut expected = notification.topics.to_vec();
        expected.push(Topic::AuthEvents);
        assert_eq!(subscriptions(notification), expected);
    }

    #[test]
    fn only_services_with_a_worker_are_accepted() {
        let s = WorkerSettings::new("b", "postgres://x/y");
        assert!(Worker::new("attendance", s.clone()).is_ok());
        assert_eq!(Worker::new("attendance-service", s.clone()).unwrap().group_id(), "attendance-service-group");
        assert!(Worker::new("timetable", s.clone()).is_ok());
        assert!(Worker::new("course-service", s.clone()).is_ok());
        assert!(Worker::new("billing", s.clone()).is_err());
        assert!(Worker::new("notification", s.clone()).is_ok());
        assert_eq!(Worker::new("announcement", s.clone()).unwrap().group_id(), "announcement-service-group");
        assert!(Worker::new("user", s).is_err());
    }

    #[test]
    fn the_error_chain_lists_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&e), "outer\ncaused by: inner");
        assert_eq!(error_summary(&e), "outer: inner");
    }
}
