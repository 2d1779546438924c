//! The low-attendance alert job.
//!
//! [`check_low_attendance`] sends `LOW_ATTENDANCE_ALERT` (on `attendance.events`, keyed by course)
//! and a `SEND_NOTIFICATION` command to the student (on `notification.commands`) once per student,
//! course and level, for students with at least `min_classes` counted classes below a threshold
//! (critical below `critical_percentage`, else warning below `warning_percentage`). Only the
//! current level is sent, and a level is skipped once a level at least as severe was sent: a
//! student who falls straight to critical gets only the critical alert, and one who recovers from
//! critical to warning gets nothing new. Students who dropped the course and inactive courses are
//! skipped.
//!
//! Each alert is decided in its own transaction: insert the `attendance_alerts` row, produce both
//! messages and await both confirmations, then commit. A failed delivery rolls back, so the next
//! run tries again; a crash between the confirmations and the commit sends them again with the
//! same deterministic event ids (UUIDv5 of student, course and level), which consumers that
//! deduplicate on `event_id` (like this worker) recognise. Two job runs at once (two worker
//! replicas) serialise on the row's primary key: the second sees the first's row and sends
//! nothing.
//!
//! Student names are not on any topic this service reads (enrollment events carry only ids), so
//! alerts carry the student id as `student_name`; the notification service resolves the person.
//! Timetable events are consumed and ignored: records carry their `entry_id` and `course_id`.
use std::time::Duration;

use deadpool_postgres::Pool;
use nimbus_core::event::attendance::{AlertLevel, LowAttendanceAlertPayload};
use nimbus_core::event::notification::{Channel, NotificationPayload, Priority};
use nimbus_core::event::{AttendanceEvent, Envelope, NotificationCommand};
use nimbus_core::topics::Topic;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::SERVICE;
use crate::consumer::{WorkerMetrics, error_summary};
use crate::error::{Error, Result};

/// When a student's attendance in a course is low enough to alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertThresholds {
    /// Below this percentage: a warning (seed example: 75).
    pub warning_percentage: f64,
    /// Below this percentage: critical (60).
    pub critical_percentage: f64,
    /// Counted classes (excused ones excluded) before a percentage means anything.
    pub min_classes: u32,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds { warning_percentage: 75.0, critical_percentage: 60.0, min_classes: 3 }
    }
}

impl AlertThresholds {
    /// The level a percentage deserves, if any.
    pub fn level(&self, percentage: f64) -> Option<AlertLevel> {
        if percentage < self.critical_percentage {
            Some(AlertLevel::Critical)
        } else if percentage < self.warning_percentage {
            Some(AlertLevel::Warning)
        } else {
            None
        }
    }

    /// The threshold a level is measured against (the alert's `threshold_percentage`).
    pub fn threshold(&self, level: AlertLevel) -> f64 {
        match level {
            AlertLevel::Warning => self.warning_percentage,
            AlertLevel::Critical => self.critical_percentage,
        }
    }
}

/// The alert job inside the worker: thresholds and how often it runs (`None`: not at all, e.g.
/// when a cron scheduler runs [`check_low_attendance`] instead).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSettings {
    /// The thresholds.
    pub thresholds: AlertThresholds,
    /// The period of the job.
    pub interval: Option<Duration>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings { thresholds: AlertThresholds::default(), interval: Some(Duration::from_secs(600)) }
    }
}

/// One (student, course) that deserves an alert now.
struct Candidate {
    student_id: String,
    course_id: String,
    course_name: String,
    attended: i32,
    total: i32,
    percentage: f64,
    level: AlertLevel,
}

fn level_name(level: AlertLevel) -> &'static str {
    match level {
        AlertLevel::Warning => "warning",
        AlertLevel::Critical => "critical",
    }
}

/// The deterministic ids of one alert and its notification: a resend is the same event.
fn alert_ids(student_id: &str, course_id: &str, level: AlertLevel) -> (Uuid, Uuid) {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:nimbusu:attendance-service:low-attendance-alert");
    let name = format!("{course_id}\n{student_id}\n{}", level_name(level));
    let alert = Uuid::new_v5(&namespace, format!("{name}\nalert").as_bytes());
    let notification = Uuid::new_v5(&namespace, format!("{name}\nnotification").as_bytes());
    (alert, notification)
}

/// The `LOW_ATTENDANCE_ALERT` and the `SEND_NOTIFICATION` for one candidate.
fn alert_messages(
    c: &Candidate,
    thresholds: &AlertThresholds,
) -> (Envelope<AttendanceEvent>, Envelope<NotificationCommand>) {
    let (alert_id, notification_id) = alert_ids(&c.student_id, &c.course_id, c.level);
    let threshold = thresholds.threshold(c.level);
    let course = if c.course_name.is_empty() { c.course_id.clone() } else { c.course_name.clone() };
    let alert = Envelope::new(
        SERVICE,
        AttendanceEvent::LowAttendanceAlert(LowAttendanceAlertPayload {
            student_id: c.student_id.clone(),
            student_name: c.student_id.clone(),
            course_id: c.course_id.clone(),
            course_name: c.course_name.clone(),
            attendance_percentage: c.percentage,
            threshold_percentage: threshold,
            total_classes: c.total.max(0) as u32,
            classes_attended: c.attended.clamp(0, c.total.max(0)) as u32,
            alert_level: c.level,
        }),
    )
    .with_event_id(alert_id);
    let critical = c.level == AlertLevel::Critical;
    let template_data: Map<String, Value> = match json!({
        "course_id": c.course_id,
        "course_name": course,
        "attendance_percentage": c.percentage,
        "threshold_percentage": threshold,
        "classes_attended": c.attended,
        "total_classes": c.total,
        "alert_level": level_name(c.level),
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let notification = Envelope::new(
        SERVICE,
        NotificationCommand::SendNotification(NotificationPayload {
            notification_id: notification_id.to_string(),
            recipient_user_id: c.student_id.clone(),
            notification_type: "attendance".into(),
            title: if critical {
                format!("Critical: low attendance in {course}")
            } else {
                format!("Warning: low attendance in {course}")
            },
            message: format!(
                "Your attendance in {course} is {:.1}% ({} of {} classes), below the required {threshold:.0}%.",
                c.percentage, c.attended, c.total
            ),
            channels: vec![Channel::Email, Channel::InApp],
            priority: if critical { Priority::High } else { Priority::Normal },
            template_id: Some("template-low-attendance".into()),
            template_data: Some(template_data),
            action_url: Some(format!("/attendance/courses/{}", c.course_id)),
            ..NotificationPayload::default()
        }),
    )
    .with_event_id(notification_id)
    .with_correlation_id(alert_id.to_string());
    (alert, notification)
}

/// Produces both messages and waits for both confirmations.
async fn publish(
    producer: &FutureProducer,
    alert: &Envelope<AttendanceEvent>,
    notification: &Envelope<NotificationCommand>,
) -> std::result::Result<(), String> {
    let (alert_key, alert_json) = (alert.partition_key(), alert.to_json());
    let (note_key, note_json) = (notification.partition_key(), notification.to_json());
    let a = producer.send(
        FutureRecord::to(Topic::AttendanceEvents.name()).key(&alert_key).payload(&alert_json),
        Duration::from_secs(5),
    );
    let n = producer.send(
        FutureRecord::to(Topic::NotificationCommands.name()).key(&note_key).payload(&note_json),
        Duration::from_secs(5),
    );
    let (a, n) = tokio::join!(a, n);
    a.map_err(|(e, _)| format!("LOW_ATTENDANCE_ALERT: {e}"))?;
    n.map_err(|(e, _)| format!("SEND_NOTIFICATION: {e}"))?;
    Ok(())
}

/// The low-attendance job: sends every alert that is due (see "Alerts" in the module docs) and
/// returns how many it sent. Safe to run at any time and from several processes. A delivery
/// failure leaves that alert for the next run and is returned after the others were tried.
pub async fn check_low_attendance(
    pool: &Pool,
    producer: &FutureProducer,
    thresholds: &AlertThresholds,
) -> Result<usize> {
    let min_classes = i32::try_from(thresholds.min_classes).unwrap_or(i32::MAX);
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT s.student_id, s.course_id, COALESCE(c.course_name, ''), s.attended, s.total_classes, s.percentage, \
               EXISTS (SELECT 1 FROM attendance_alerts a WHERE a.student_id = s.student_id \
                       AND a.course_id = s.course_id AND a.level = 'warning'), \
               EXISTS (SELECT 1 FROM attendance_alerts a WHERE a.student_id = s.student_id \
                       AND a.course_id = s.course_id AND a.level = 'critical') \
             FROM attendance_summary s \
             LEFT JOIN courses c ON c.course_id = s.course_id \
             LEFT JOIN enrollments e ON e.course_id = s.course_id AND e.student_id = s.student_id \
             WHERE s.total_classes >= $1 AND s.percentage < $2 \
               AND COALESCE(c.active, TRUE) AND COALESCE(e.status, 'enrolled') <> 'dropped' \
             ORDER BY s.course_id, s.student_id",
            &[&min_classes, &thresholds.warning_percentage],
        )
        .await?;
    let mut due = Vec::new();
    for row in rows {
        let percentage: f64 = row.get(5);
        let Some(level) = thresholds.level(percentage) else { continue };
        let (warned, critical_sent): (bool, bool) = (row.get(6), row.get(7));
        if critical_sent || (level == AlertLevel::Warning && warned) {
            continue;
        }
        due.push(Candidate {
            student_id: row.get(0),
            course_id: row.get(1),
            course_name: row.get(2),
            attended: row.get(3),
            total: row.get(4),
            percentage,
            level,
        });
    }

    let mut sent = 0;
    let mut first_error = None;
    for c in &due {
        match send_one(pool, producer, thresholds, c).await {
            Ok(true) => sent += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(student_id = %c.student_id, course_id = %c.course_id, error = %error_summary(&e), "alert not sent; next run retries");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(sent),
    }
}

/// Claims, publishes and records one alert; `false` if another run claimed it first.
async fn send_one(pool: &Pool, producer: &FutureProducer, thresholds: &AlertThresholds, c: &Candidate) -> Result<bool> {
    let (alert, notification) = alert_messages(c, thresholds);
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let claimed = tx
        .execute(
            "INSERT INTO attendance_alerts (student_id, course_id, level, event_id, notification_event_id, \
               attendance_percentage, total_classes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                &c.student_id,
                &c.course_id,
                &level_name(c.level),
                &alert.event_id,
                &notification.event_id,
                &c.percentage,
                &c.total,
            ],
        )
        .await?;
    if claimed == 0 {
        return Ok(false);
    }
    publish(producer, &alert, &notification).await.map_err(|why| Error::kafka_msg(format!("alert: {why}")))?;
    tx.commit().await?;
    tracing::info!(
        student_id = %c.student_id,
        course_id = %c.course_id,
        level = level_name(c.level),
        percentage = c.percentage,
        "low-attendance alert sent"
    );
    Ok(true)
}

/// Runs [`check_low_attendance`] every `every` until `shutdown` (first run at once). Kept separate
/// so a cron scheduler can call [`check_low_attendance`] instead.
pub(crate) async fn alert_loop(
    pool: &Pool,
    producer: &FutureProducer,
    thresholds: &AlertThresholds,
    every: Duration,
    metrics: &WorkerMetrics,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match check_low_attendance(pool, producer, thresholds).await {
            Ok(n) => metrics.alerts_sent(n),
            Err(e) => {
                tracing::warn!(error = %error_summary(&e), "low-attendance job failed; it runs again next period")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_thresholds() {
        let t = AlertThresholds::default();
        assert_eq!(t.level(80.0), None);
        assert_eq!(t.level(75.0), None);
        assert_eq!(t.level(74.99), Some(AlertLevel::Warning));
        assert_eq!(t.level(60.0), Some(AlertLevel::Warning));
        assert_eq!(t.level(59.99), Some(AlertLevel::Critical));
        assert_eq!(t.threshold(AlertLevel::Critical), 60.0);
    }

    #[test]
    fn alert_ids_are_deterministic_per_student_course_and_level() {
        let a = alert_ids("s1", "c1", AlertLevel::Warning);
        assert_eq!(a, alert_ids("s1", "c1", AlertLevel::Warning));
        assert_ne!(a, alert_ids("s1", "c1", AlertLevel::Critical));
        assert_ne!(a, alert_ids("s2", "c1", AlertLevel::Warning));
        assert_ne!(a.0, a.1);
    }

    #[test]
    fn alert_messages_are_valid_seed_events_with_the_right_keys() {
        let c = Candidate {
            student_id: "stu-1".into(),
            course_id: "crs-1".into(),
            course_name: "Data Structures".into(),
            attended: 1,
            total: 4,
            percentage: 25.0,
            level: AlertLevel::Critical,
        };
        let (alert, note) = alert_messages(&c, &AlertThresholds::default());
        assert_eq!(alert.partition_key(), "crs-1");
        assert_eq!(note.partition_key(), "stu-1");
        let back = Envelope::<AttendanceEvent>::from_json(&alert.to_json()).unwrap();
        let AttendanceEvent::LowAttendanceAlert(p) = back.event else { panic!("not an alert") };
        assert_eq!((p.total_classes, p.classes_attended, p.alert_level), (4, 1, AlertLevel::Critical));
        assert_eq!(p.threshold_percentage, 60.0);
        let back = Envelope::<NotificationCommand>::from_json(&note.to_json()).unwrap();
        let NotificationCommand::SendNotification(n) = back.event else { panic!("not SEND_NOTIFICATION") };
        assert_eq!(n.channels, [Channel::Email, Channel::InApp]);
        assert_eq!(n.priority, Priority::High);
        assert_eq!(back.correlation_id.as_deref(), Some(alert.event_id.to_string().as_str()));
    }
}
