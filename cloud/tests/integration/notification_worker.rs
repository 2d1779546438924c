//! The notification worker against the real broker, PostgreSQL and a real SMTP server (aiosmtpd):
//! commands in, e-mail in the server's mailbox and rows in the inbox out, each exactly once;
//! bulk fan-out behind single sends; SMTP outages and refusals; schedules and cancellations;
//! undeliverable commands dead-lettered. The SIGKILL test runs the worker as its own process.
//!
//! Every test has its own notification, user and course databases, its own SMTP server and its
//! own consumer group primed at the end of the shared topics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use nimbus_cloud::notification::NotificationSettings;
use nimbus_cloud::notification::channels::EmailSettings;
use nimbus_cloud::worker::{Worker, WorkerMetrics, WorkerSettings, subscriptions};
use nimbus_core::event::notification::{
    BulkNotificationPayload, CancelNotificationPayload, Channel, NotificationPayload, Priority, RecipientFilter,
};
use nimbus_core::event::{Envelope, NotificationCommand};
use nimbus_core::groups::group_for_service;
use nimbus_core::topics::{Environment, Topic};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::e2e::{Proc, cloud, migrated, sigkill};
use crate::common::smtp::{Mail, SmtpSink};
use crate::common::{self, TestDb};

/// Longer than the sender's lease (30 s), which a killed worker's rows wait out.
const WAIT: Duration = Duration::from_secs(90);

struct Env {
    brokers: String,
    group: String,
    db: TestDb,
    users: TestDb,
    courses: TestDb,
    producer: FutureProducer,
}

impl Env {
    async fn new() -> Env {
        common::capture_logs();
        let brokers = common::kafka_brokers();
        nimbus_cloud::kafka::ensure_topics(&brokers, Environment::Development).await.expect(
            "the Kafka-protocol broker must be reachable (NIMBUS_TEST_KAFKA_BROKERS); run scripts/services.sh up",
        );
        let group = format!("notification-service-group-test-{}", Uuid::new_v4().simple());
        common::prime_group(&brokers, &group, &subscriptions(group_for_service("notification").unwrap())).await;
        let producer = nimbus_cloud::kafka::at_least_once_producer(&brokers).unwrap();
        Env {
            brokers,
            group,
            db: migrated("notification_service_db").await,
            users: migrated("user_service_db").await,
            courses: migrated("course_service_db").await,
            producer,
        }
    }

    fn settings(&self, sink: &SmtpSink) -> WorkerSettings {
        let mut s = WorkerSettings::new(&self.brokers, self.db.url.clone());
        s.group_id = Some(self.group.clone());
        s.notification = NotificationSettings {
            users_url: self.users.url.clone(),
            courses_url: self.courses.url.clone(),
            email: Some(EmailSettings {
                host: "127.0.0.1".into(),
                port: sink.port,
                from: "NimbusU <noreply@campus.test>".into(),
                username: None,
                password: None,
                timeout: Duration::from_secs(10),
            }),
            ..NotificationSettings::default()
        };
        s.notification.sender.poll = Duration::from_millis(50);
        s
    }

    /// A user of `role` with `email`, straight into the user service's tables.
    async fn user(&self, email: &str, role: &str) -> String {
        let c = self.users.pool.get().await.unwrap();
        let id: Uuid = c
            .query_one(
                "INSERT INTO users (email, password_hash, role_id) SELECT $1, 'x', id FROM roles WHERE name = $2 RETURNING id",
                &[&email, &role],
            )
            .await
            .unwrap()
            .get(0);
        id.to_string()
    }

    /// A department of its own with one program: `(department id, program id)`. A bulk to it
    /// reaches this test's people and nobody of another test (they share the command topic).
    async fn department(&self) -> (String, String) {
        let c = self.courses.pool.get().await.unwrap();
        let code = Uuid::new_v4().simple().to_string();
        let dept: Uuid = c
            .query_one("INSERT INTO departments (code, name) VALUES ($1, 'Dept') RETURNING id", &[&code])
            .await
            .unwrap()
            .get(0);
        let program: Uuid = c
            .query_one(
                "INSERT INTO programs (department_id, code, name) VALUES ($1, $2, 'Prog') RETURNING id",
                &[&dept, &code],
            )
            .await
            .unwrap()
            .get(0);
        (dept.to_string(), program.to_string())
    }

    /// `n` students of `program`.
    async fn students(&self, program: &str, prefix: &str, n: usize) -> Vec<String> {
        let ids = self.users(prefix, n, "student").await;
        let c = self.courses.pool.get().await.unwrap();
        c.execute(
            "INSERT INTO students (user_id, program_id) SELECT u, $2 FROM unnest($1::text[]) u",
            &[&ids, &program],
        )
        .await
        .unwrap();
        ids
    }

    /// `n` faculty of `department`.
    async fn faculty(&self, department: &str, prefix: &str, n: usize) -> Vec<String> {
        let ids = self.users(prefix, n, "faculty").await;
        let c = self.courses.pool.get().await.unwrap();
        c.execute(
            "INSERT INTO faculties (user_id, department_id) SELECT u, $2 FROM unnest($1::text[]) u",
            &[&ids, &department],
        )
        .await
        .unwrap();
        ids
    }

    async fn users(&self, prefix: &str, n: usize, role: &str) -> Vec<String> {
        let c = self.users.pool.get().await.unwrap();
        let emails: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:04}@campus.test")).collect();
        let rows = c
            .query(
                "INSERT INTO users (email, password_hash, role_id)
                 SELECT e, 'x', (SELECT id FROM roles WHERE name = $2) FROM unnest($1::text[]) e RETURNING id",
                &[&emails, &role],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, Uuid>(0).to_string()).collect()
    }

    async fn send(&self, command: NotificationCommand) -> Uuid {
        let env = Envelope::new("test-service", command);
        self.send_envelope(&env).await;
        env.event_id
    }

    async fn send_envelope(&self, env: &Envelope<NotificationCommand>) {
        self.producer
            .send(
                FutureRecord::to(Topic::NotificationCommands.name()).key(&env.partition_key()).payload(&env.to_json()),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing a command: {e}"));
    }

    async fn scalar(&self, sql: &str) -> i64 {
        self.db.pool.get().await.unwrap().query_one(sql, &[]).await.unwrap().get(0)
    }

    async fn wait_scalar(&self, what: &str, sql: &str, expected: i64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.scalar(sql).await;
            if got == expected {
                return;
            }
            if Instant::now() > deadline {
                let c = self.db.pool.get().await.unwrap();
                let rows = c
                    .query(
                        "SELECT channel, address, status, attempts, coalesce(last_error, '') FROM notification_queue",
                        &[],
                    )
                    .await
                    .unwrap();
                let queue: Vec<(String, String, String, i32, String)> =
                    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
                panic!("{what}: {got}, expected {expected}; the queue: {queue:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Failed deliveries in today's statistics.
    async fn failed_today(&self) -> i64 {
        let today = Utc::now().date_naive();
        let c = self.db.pool.get().await.unwrap();
        let days = nimbus_cloud::notification::statistics::days(&**c, today, today).await.unwrap();
        days.iter().map(|d| d.failed).sum()
    }

    async fn drop_all(self) {
        for db in [self.db, self.users, self.courses] {
            db.drop_now().await;
        }
    }
}

struct Running {
    handle: JoinHandle<nimbus_cloud::Result<()>>,
    shutdown: CancellationToken,
    metrics: Arc<WorkerMetrics>,
}

impl Running {
    fn start(settings: WorkerSettings) -> Running {
        let worker = Worker::new("notification", settings).unwrap();
        let metrics = worker.metrics();
        let shutdown = CancellationToken::new();
        Running { handle: tokio::spawn(worker.run(shutdown.clone())), shutdown, metrics }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("the worker stops within 30 s")
            .unwrap()
            .expect("the worker ends without error");
    }
}

fn email_to(user_id: &str, title: &str) -> NotificationPayload {
    NotificationPayload {
        notification_id: Uuid::new_v4().to_string(),
        recipient_user_id: user_id.to_owned(),
        notification_type: "general".into(),
        title: title.to_owned(),
        message: format!("Body of {title}"),
        channels: vec![Channel::Email],
        priority: Priority::Normal,
        ..NotificationPayload::default()
    }
}

async fn mails(sink: &SmtpSink, n: usize) -> Vec<Mail> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = sink.messages();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {n} e-mails (got {})", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_low_attendance_command_becomes_one_email_and_one_inbox_entry_even_when_redelivered() {
    let env = Env::new().await;
    let sink = SmtpSink::start();
    let worker = Running::start(env.settings(&sink));
    let student = env.user("low-att@campus.test", "student").await;
    let payload = NotificationPayload {
        notification_id: Uuid::new_v4().to_string(),
        recipient_user_id: student.clone(),
        notification_type: "attendance".into(),
        title: "Warning: low attendance in Data Structures".into(),
        message: "Your attendance in Data Structures is 60.0% (6 of 10 classes), below the required 75%.".into(),
        channels: vec![Channel::Email, Channel::InApp],
        priority: Priority::Normal,
        template_id: Some("template-low-attendance".into()),
        template_data: Some(
            json!({
                "course_name": "Data Structures", "attendance_percentage": 60.0, "threshold_percentage": 75.0,
                "classes_attended": 6, "total_classes": 10,
            })
            .as_object()
            .unwrap()
            .clone(),
        ),
        ..NotificationPayload::default()
    };
    let command = Envelope::new("attendance-service", NotificationCommand::SendNotification(payload.clone()));
    env.send_envelope(&command).await;
    // Kafka redelivers the same message, and the attendance job re-sends the same notification
    // under another event id.
    env.send_envelope(&command).await;
    let resent = env.send(NotificationCommand::SendNotification(payload.clone())).await;

    let got = mails(&sink, 1).await;
    env.wait_scalar(
        "the re-sent command applied",
        &format!("SELECT count(*) FROM processed_events WHERE event_id = '{resent}'"),
        1,
    )
    .await;
    env.wait_scalar("in-app delivered", "SELECT count(*) FROM notification_queue WHERE status = 'delivered'", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = sink.messages();
    assert_eq!(got_after.len(), 1, "exactly one e-mail: {got_after:?}");
    let mail = &got[0];
    assert_eq!(mail.to, "low-att@campus.test");
    assert_eq!(mail.subject, "Warning: low attendance in Data Structures");
    assert!(mail.body.contains("Attended: 6 of 10 classes (60.0%)"), "rendered from the template: {}", mail.body);
    let queue_id: Uuid = env
        .db
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT id FROM notification_queue WHERE channel = 'email'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mail.message_id, format!("<{queue_id}@campus.test>"));
    assert_eq!(env.scalar("SELECT count(*) FROM notifications WHERE in_app").await, 1);
    assert_eq!(worker.metrics.snapshot().duplicates, 1, "the redelivered message was skipped");
    worker.stop().await;
    env.drop_all().await;
}

#[tokio::test]
async fn a_bulk_reaches_every_recipient_once_and_a_single_send_overtakes_it() {
    let env = Env::new().await;
    let sink = SmtpSink::start();
    let mut settings = env.settings(&sink);
    settings.notification.sender.concurrency = 4;
    let (dept, program) = env.department().await;
    let students = env.students(&program, "bulk", 300).await;
    env.faculty(&dept, "bulk-fac", 5).await;
    let dean = env.user("dean@campus.test", "admin").await;
    let worker = Running::start(settings);
    env.send(NotificationCommand::SendBulk(BulkNotificationPayload {
        batch_id: Uuid::new_v4().to_string(),
        recipient_filter: RecipientFilter {
            department_ids: Some(vec![dept.clone()]),
            role_names: Some(vec!["student".into()]),
            ..RecipientFilter::default()
        },
        notification_type: "announcement".into(),
        title: "Campus closed tomorrow".into(),
        message: "Snow.".into(),
        channels: vec![Channel::Email, Channel::InApp],
        priority: Priority::Normal,
        ..BulkNotificationPayload::default()
    }))
    .await;
    // Wait until the bulk is going out, then send one message to one person.
    mails(&sink, 20).await;
    env.send(NotificationCommand::SendEmail(email_to(&dean, "Budget meeting"))).await;
    let all = mails(&sink, 301).await;
    let single = all.iter().position(|m| m.subject == "Budget meeting").expect("the single send arrived");
    let bulk_done_by_then = all[..single].iter().filter(|m| m.subject == "Campus closed tomorrow").count();
    assert!(bulk_done_by_then < 300, "the single send waited for the whole bulk ({bulk_done_by_then} before it)");
    env.wait_scalar("bulk expanded", "SELECT count(*) FROM notification_batches WHERE status = 'done'", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = sink.messages();
    let per_recipient: BTreeMap<&str, usize> = all.iter().fold(BTreeMap::new(), |mut m, mail| {
        *m.entry(mail.to.as_str()).or_default() += 1;
        m
    });
    assert_eq!(all.len(), 301, "300 students and the dean, nobody twice");
    assert!(per_recipient.values().all(|n| *n == 1));
    assert!(!per_recipient.keys().any(|to| to.starts_with("bulk-fac")), "faculty are not students");
    assert_eq!(env.scalar("SELECT count(*) FROM notifications WHERE in_app").await, students.len() as i64);
    worker.stop().await;
    env.drop_all().await;
}

#[tokio::test]
async fn mail_waits_out_an_smtp_outage_and_keeps_each_recipients_order() {
    let env = Env::new().await;
    let mut sink = SmtpSink::start();
    let (a, b) = (env.user("order-a@campus.test", "student").await, env.user("order-b@campus.test", "student").await);
    sink.stop();
    let worker = Running::start(env.settings(&sink));
    for title in ["first", "second", "third"] {
        env.send(NotificationCommand::SendEmail(email_to(&a, title))).await;
    }
    env.send(NotificationCommand::SendEmail(email_to(&b, "other"))).await;
    env.wait_scalar("queued", "SELECT count(*) FROM notification_queue", 4).await;
    // Several rounds against a server that is not there, without spending attempts.
    env.wait_scalar(
        "tried while down",
        "SELECT least(count(*), 1) FROM notification_queue WHERE last_error LIKE 'provider unreachable%'",
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(sink.messages().is_empty());
    sink.restart();
    let got = mails(&sink, 4).await;
    let to_a: Vec<&str> = got.iter().filter(|m| m.to == "order-a@campus.test").map(|m| m.subject.as_str()).collect();
    assert_eq!(to_a, ["first", "second", "third"]);
    env.wait_scalar("all sent", "SELECT count(*) FROM notification_queue WHERE status = 'sent'", 4).await;
    assert_eq!(
        env.scalar("SELECT max(attempts)::bigint FROM notification_queue").await,
        1,
        "the outage cost no attempt"
    );
    worker.stop().await;
    env.drop_all().await;
}

#[tokio::test]
async fn temporary_refusals_are_retried_per_policy_then_fail_with_the_reason() {
    let env = Env::new().await;
    let user = env.user("retry@campus.test", "student").await;
    // Two refusals, then accepted: the third attempt goes through.
    let sink = SmtpSink::start_with(&["--fail-first", "2"]);
    let worker = Running::start(env.settings(&sink));
    env.send(NotificationCommand::SendEmail(email_to(&user, "third time lucky"))).await;
    assert_eq!(mails(&sink, 1).await[0].subject, "third time lucky");
    env.wait_scalar(
        "sent on attempt 3",
        "SELECT count(*) FROM notification_queue WHERE status = 'sent' AND attempts = 3",
        1,
    )
    .await;
    worker.stop().await;
    drop(sink);

    // Always refused: 1 + 3 retries, then failed with the server's answer.
    let sink = SmtpSink::start_with(&["--fail-first", "1000"]);
    let worker = Running::start(env.settings(&sink));
    env.send(NotificationCommand::SendEmail(email_to(&user, "never"))).await;
    env.wait_scalar(
        "failed after 4 attempts",
        "SELECT count(*) FROM notification_queue WHERE status = 'failed' AND attempts = 4",
        1,
    )
    .await;
    let error: String = env
        .db
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT last_error FROM notification_queue WHERE status = 'failed'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(error.contains("451"), "the reason is the server's: {error}");
    assert_eq!(env.failed_today().await, 1, "the failure is counted in the day's statistics");
    worker.stop().await;
    env.drop_all().await;
}

#[tokio::test]
async fn undeliverable_commands_are_dead_lettered_not_dropped() {
    let env = Env::new().await;
    let sink = SmtpSink::start();
    let worker = Running::start(env.settings(&sink));
    let user = env.user("dlq@campus.test", "student").await;
    // An unknown recipient; no channel; a template its data does not fill; a schedule without a time.
    env.send(NotificationCommand::SendEmail(email_to(&Uuid::new_v4().to_string(), "ghost"))).await;
    env.send(NotificationCommand::SendNotification(NotificationPayload { channels: vec![], ..email_to(&user, "x") }))
        .await;
    env.send(NotificationCommand::SendEmail(NotificationPayload {
        template_id: Some("template-low-attendance".into()),
        ..email_to(&user, "y")
    }))
    .await;
    env.send(NotificationCommand::ScheduleNotification(email_to(&user, "z"))).await;
    // Not even an event: poison, dead-lettered without a retry.
    env.producer
        .send(
            FutureRecord::to(Topic::NotificationCommands.name()).key("garbage").payload("{not json"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    // And one good one after them, which still goes out.
    env.send(NotificationCommand::SendEmail(email_to(&user, "fine"))).await;
    let got = mails(&sink, 1).await;
    assert_eq!(got[0].subject, "fine");
    let deadline = Instant::now() + WAIT;
    while worker.metrics.snapshot().dead_lettered < 5 {
        assert!(Instant::now() < deadline, "dead letters: {:?}", worker.metrics.snapshot());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(env.scalar("SELECT count(*) FROM notifications").await, 1);
    worker.stop().await;
    env.drop_all().await;
}

#[tokio::test]
async fn a_message_that_expires_while_the_server_is_down_is_failed_as_expired_not_sent_late() {
    let env = Env::new().await;
    let mut sink = SmtpSink::start();
    let user = env.user("expiry@campus.test", "student").await;
    sink.stop();
    let worker = Running::start(env.settings(&sink));
    let soon = Utc::now() + chrono::Duration::seconds(2);
    env.send(NotificationCommand::SendEmail(NotificationPayload {
        expires_at: Some(soon),
        ..email_to(&user, "stale")
    }))
    .await;
    env.send(NotificationCommand::SendEmail(email_to(&user, "fresh"))).await;
    env.wait_scalar("expired", "SELECT count(*) FROM notification_queue WHERE status = 'expired'", 1).await;
    sink.restart();
    let got = mails(&sink, 1).await;
    assert_eq!(got[0].subject, "fresh");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 1, "the expired one never went out");
    assert_eq!(env.failed_today().await, 1, "counted as failed in the day's statistics");
    worker.stop().await;
    env.drop_all().await;
}

#[tokio::test]
async fn a_scheduled_notification_goes_out_at_its_time_and_a_cancelled_one_never() {
    let env = Env::new().await;
    let sink = SmtpSink::start();
    let worker = Running::start(env.settings(&sink));
    let user = env.user("sched@campus.test", "student").await;
    let at = Utc::now() + chrono::Duration::seconds(3);
    let kept = NotificationPayload { scheduled_at: Some(at), ..email_to(&user, "later") };
    let cancelled = NotificationPayload { scheduled_at: Some(at), ..email_to(&user, "never") };
    env.send(NotificationCommand::ScheduleNotification(kept)).await;
    env.send(NotificationCommand::ScheduleNotification(cancelled.clone())).await;
    env.wait_scalar("both scheduled", "SELECT count(*) FROM notification_queue", 2).await;
    env.send(NotificationCommand::CancelNotification(CancelNotificationPayload {
        notification_id: cancelled.notification_id.clone(),
        cancelled_by: "admin".into(),
        cancelled_at: Utc::now(),
        reason: None,
    }))
    .await;
    env.wait_scalar("cancelled", "SELECT count(*) FROM notification_queue WHERE status = 'cancelled'", 1).await;
    assert!(sink.messages().is_empty(), "nothing before its time");
    let got = mails(&sink, 1).await;
    assert!(Utc::now() >= at, "sent at its time");
    assert_eq!(got[0].subject, "later");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.messages().len(), 1);
    worker.stop().await;
    env.drop_all().await;
}

/// A worker process killed in the middle of a 500-recipient bulk and started again: every
/// recipient ends with exactly one message by Message-ID. The one window where a crash can send a
/// message twice (accepted by the server, not yet committed) is bounded by the messages in flight,
/// NOTIFICATION_CONCURRENCY: the raw count may exceed 500 by at most that.
#[tokio::test]
async fn a_worker_killed_mid_bulk_sends_each_recipient_one_message_by_message_id() {
    const RECIPIENTS: usize = 500;
    const CONCURRENCY: usize = 8;
    let env = Env::new().await;
    let sink = SmtpSink::start();
    let (dept, program) = env.department().await;
    env.students(&program, "kill", RECIPIENTS).await;
    let vars = vec![
        ("DATABASE_URL", common::database_server()),
        ("NIMBUS_SERVICE_DB", env.db.name.clone()),
        ("NIMBUS_WORKER_GROUP", env.group.clone()),
        ("KAFKA_BROKERS", env.brokers.clone()),
        ("USER_DATABASE_URL", env.users.url.clone()),
        ("COURSE_DATABASE_URL", env.courses.url.clone()),
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", sink.port.to_string()),
        ("SMTP_FROM", "NimbusU <noreply@campus.test>".to_owned()),
        ("NOTIFICATION_CONCURRENCY", CONCURRENCY.to_string()),
    ];
    let mut worker = Proc(cloud(&["worker", "--service", "notification"], &vars).spawn().unwrap());
    env.send(NotificationCommand::SendBulk(BulkNotificationPayload {
        batch_id: Uuid::new_v4().to_string(),
        recipient_filter: RecipientFilter { department_ids: Some(vec![dept]), ..RecipientFilter::default() },
        notification_type: "announcement".into(),
        title: "Exam timetable".into(),
        message: "Published.".into(),
        channels: vec![Channel::Email],
        priority: Priority::Normal,
        ..BulkNotificationPayload::default()
    }))
    .await;
    mails(&sink, 150).await;
    sigkill(&mut worker);
    let at_kill = sink.messages().len();
    assert!(at_kill < RECIPIENTS, "killed in the middle ({at_kill} sent)");
    let _worker = Proc(cloud(&["worker", "--service", "notification"], &vars).spawn().unwrap());
    env.wait_scalar(
        "every row sent after the restart (rows the killed worker held wait out its 30 s lease)",
        "SELECT count(*) FROM notification_queue WHERE status = 'sent'",
        RECIPIENTS as i64,
    )
    .await;
    let all = sink.messages();
    let mut ids_per_recipient: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &all {
        ids_per_recipient.entry(m.to.clone()).or_default().insert(m.message_id.clone());
    }
    assert_eq!(ids_per_recipient.len(), RECIPIENTS, "every recipient got mail");
    assert!(ids_per_recipient.values().all(|ids| ids.len() == 1), "one Message-ID per recipient");
    let duplicates = all.len() - RECIPIENTS;
    assert!(duplicates <= CONCURRENCY, "{duplicates} duplicates exceed the in-flight bound {CONCURRENCY}");
    println!(
        "killed after {at_kill} of {RECIPIENTS}; {duplicates} re-sent with the same Message-ID (bound {CONCURRENCY})"
    );
    env.drop_all().await;
}

#[tokio::test]
async fn quiet_hours_delay_non_urgent_mail_and_a_digest_gathers_held_mail_into_one() {
    let env = Env::new().await;
    let sink = SmtpSink::start();
    let worker = Running::start(env.settings(&sink));
    let (quiet, digest) =
        (env.user("quiet@campus.test", "student").await, env.user("digest@campus.test", "student").await);
    let now = Utc::now();
    let (start, end) = ((now - chrono::Duration::hours(1)).time(), (now + chrono::Duration::hours(1)).time());
    let c = env.db.pool.get().await.unwrap();
    c.execute(
        "INSERT INTO notification_settings (user_id, time_zone, quiet_start, quiet_end) VALUES ($1, 'UTC', $2, $3)",
        &[&quiet, &start, &end],
    )
    .await
    .unwrap();
    c.execute("INSERT INTO notification_settings (user_id, digest) VALUES ($1, 'hourly')", &[&digest]).await.unwrap();

    // Quiet hours: the normal e-mail waits for their end, the urgent one and in-app do not.
    env.send(NotificationCommand::SendEmail(email_to(&quiet, "can wait"))).await;
    env.send(NotificationCommand::SendEmail(NotificationPayload {
        priority: Priority::Urgent,
        ..email_to(&quiet, "fire drill")
    }))
    .await;
    env.send(NotificationCommand::SendInApp(email_to(&quiet, "silent"))).await;
    assert_eq!(mails(&sink, 1).await[0].subject, "fire drill");
    env.wait_scalar(
        "in-app delivered at once",
        "SELECT count(*) FROM notification_queue WHERE status = 'delivered'",
        1,
    )
    .await;
    let waits: chrono::DateTime<Utc> = c
        .query_one("SELECT next_attempt_at FROM notification_queue WHERE subject = 'can wait'", &[])
        .await
        .unwrap()
        .get(0);
    let expected = now + chrono::Duration::hours(1);
    assert!((waits - expected).num_seconds().abs() <= 60, "held until the quiet hours end: {waits} vs {expected}");

    // Hourly digest: three e-mails held, then one message with all three.
    for title in ["one", "two", "three"] {
        env.send(NotificationCommand::SendEmail(email_to(&digest, title))).await;
    }
    env.wait_scalar("held for the digest", "SELECT count(*) FROM notification_queue WHERE status = 'held'", 3).await;
    let pool = env.db.pool.clone();
    assert_eq!(nimbus_cloud::notification::schedule::send_digests(&pool, Utc::now()).await.unwrap(), 0, "not yet");
    let next_hour = Utc::now() + chrono::Duration::hours(1);
    assert_eq!(nimbus_cloud::notification::schedule::send_digests(&pool, next_hour).await.unwrap(), 1);
    assert_eq!(nimbus_cloud::notification::schedule::send_digests(&pool, next_hour).await.unwrap(), 0, "once per hour");
    let got = mails(&sink, 2).await;
    let d = got.iter().find(|m| m.to == "digest@campus.test").expect("the digest");
    assert_eq!(d.subject, "Your NimbusU digest: 3 notifications");
    for title in ["one", "two", "three"] {
        assert!(d.body.contains(title), "{title} in {}", d.body);
    }
    env.wait_scalar("held rows digested", "SELECT count(*) FROM notification_queue WHERE status = 'digested'", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 2, "nothing else went out: {:?}", sink.messages());
    worker.stop().await;
    env.drop_all().await;
}

#[tokio::test]
async fn new_material_reaches_the_courses_students_in_app_and_an_announcements_bulk_exactly_its_named_people() {
    use nimbus_core::event::announcement::{AnnouncementPayload, Target};
    use nimbus_core::event::content::ContentPublicationPayload;
    use nimbus_core::event::{AnnouncementEvent, ContentEvent};
    let env = Env::new().await;
    let sink = SmtpSink::start();
    let worker = Running::start(env.settings(&sink));
    let (dept, program) = env.department().await;
    let enrolled = env.students(&program, "enrolled", 3).await;
    let other = env.students(&program, "other", 2).await;
    let c = env.courses.pool.get().await.unwrap();
    let code = Uuid::new_v4().simple().to_string();
    let subject: Uuid = c
        .query_one(
            "INSERT INTO subjects (department_id, code, name) VALUES ($1::text::uuid, $2, 'S') RETURNING id",
            &[&dept, &code],
        )
        .await
        .unwrap()
        .get(0);
    let course: Uuid = c
        .query_one(
            "INSERT INTO courses (course_code, course_name, subject_id, department_id, program_id, semester, academic_year,
                                  max_students, created_by)
             VALUES ($1, 'Databases', $2, $3::text::uuid, $4::text::uuid, 1, 2026, 50, 'admin') RETURNING id",
            &[&code, &subject, &dept, &program],
        )
        .await
        .unwrap()
        .get(0);
    for s in &enrolled {
        c.execute(
            "INSERT INTO course_enrollments (course_id, student_id, status, enrolled_by) VALUES ($1, $2, 'enrolled', 'admin')",
            &[&course, s],
        )
        .await
        .unwrap();
    }
    let publish = |topic: Topic, key: String, json: String| {
        let producer = env.producer.clone();
        async move {
            producer
                .send(FutureRecord::to(topic.name()).key(&key).payload(&json), Duration::from_secs(5))
                .await
                .unwrap();
        }
    };
    let content = Envelope::new(
        "content-service",
        ContentEvent::ContentPublished(ContentPublicationPayload {
            content_id: Uuid::new_v4().to_string(),
            title: "Lecture 3 slides".into(),
            course_ids: vec![course.to_string()],
            changed_by: "faculty".into(),
            changed_at: Utc::now(),
        }),
    );
    publish(Topic::ContentEvents, content.partition_key(), content.to_json()).await;
    env.wait_scalar("the enrolled students' inboxes", "SELECT count(*) FROM notifications WHERE in_app", 3).await;
    let inboxes: Vec<String> = env
        .db
        .pool
        .get()
        .await
        .unwrap()
        .query("SELECT user_id FROM notifications WHERE in_app AND title = 'New material: Lecture 3 slides'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(inboxes.iter().all(|u| enrolled.contains(u)) && !inboxes.iter().any(|u| other.contains(u)), "{inboxes:?}");

    // Announcements reach people through the announcement service's SEND_BULK naming them;
    // the event itself is not acted on (that would notify twice).
    let published = Envelope::new(
        "announcement-service",
        AnnouncementEvent::AnnouncementPublished(AnnouncementPayload {
            announcement_id: Uuid::new_v4().to_string(),
            title: "building closed".into(),
            content: "Water leak.".into(),
            announcement_type: "general".into(),
            priority: "urgent".into(),
            target_audience: "departments".into(),
            target_details: Target { department_ids: Some(vec![dept.clone()]), ..Target::default() },
            created_by: "admin".into(),
            published_at: Utc::now(),
            expires_at: None,
        }),
    );
    publish(Topic::AnnouncementEvents, published.partition_key(), published.to_json()).await;
    let fan_out = |batch: &str, user_ids: Vec<String>| {
        Envelope::new(
            "announcement-service",
            NotificationCommand::SendBulk(BulkNotificationPayload {
                batch_id: batch.into(),
                notification_type: "announcement".into(),
                title: "building closed".into(),
                message: "Water leak.".into(),
                channels: vec![Channel::Push, Channel::Email],
                priority: Priority::Urgent,
                template_id: Some("template-urgent-announcement".into()),
                user_ids: Some(user_ids),
                action_url: Some("/announcements/x".into()),
                ..BulkNotificationPayload::default()
            }),
        )
    };
    let nobody = fan_out(&format!("announcement:{}:1:0", Uuid::new_v4()), vec![]);
    let named = fan_out(&format!("announcement:{}:1:0", Uuid::new_v4()), enrolled.clone());
    for command in [&nobody, &named, &named] {
        publish(Topic::NotificationCommands, command.partition_key(), command.to_json()).await;
    }
    let got = mails(&sink, 3).await;
    assert!(got.iter().all(|m| m.subject == "Urgent: building closed"), "{got:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.messages().len(), 3, "the three named students, once each; nobody for an empty list");
    worker.stop().await;
    env.drop_all().await;
}
