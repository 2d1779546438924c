//! Notification benchmark: a 5,000-student bulk (e-mail and in-app) through a release-built
//! `nimbus-cloud worker --service notification` to a local SMTP server (aiosmtpd), on the real
//! broker and PostgreSQL. Prints how long the fan-out took, e-mails per second into the server,
//! and the latency of single sends made while the bulk is going out.
//!
//!     scripts/services.sh up && eval "$(scripts/services.sh env)"
//!     cargo bench -p nimbus-cloud --bench notification

#[path = "../tests/integration/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::e2e::{Proc, cloud, migrated};
use common::smtp::SmtpSink;
use nimbus_core::event::notification::{
    BulkNotificationPayload, Channel, NotificationPayload, Priority, RecipientFilter,
};
use nimbus_core::event::{Envelope, NotificationCommand};
use nimbus_core::topics::{Environment, Topic};
use rdkafka::producer::{FutureProducer, FutureRecord};

const STUDENTS: usize = 5000;
const SINGLES: usize = 10;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

async fn send(producer: &FutureProducer, command: NotificationCommand) {
    let env = Envelope::new("bench", command);
    producer
        .send(
            FutureRecord::to(Topic::NotificationCommands.name()).key(&env.partition_key()).payload(&env.to_json()),
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
}

async fn scalar(db: &common::TestDb, sql: &str) -> i64 {
    db.pool.get().await.unwrap().query_one(sql, &[]).await.unwrap().get(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run() {
    let brokers = common::kafka_brokers();
    nimbus_cloud::kafka::ensure_topics(&brokers, Environment::Development)
        .await
        .expect("Kafka (NIMBUS_TEST_KAFKA_BROKERS)");
    let (db, users, courses) = (
        migrated("notification_service_db").await,
        migrated("user_service_db").await,
        migrated("course_service_db").await,
    );
    let c = users.pool.get().await.unwrap();
    let emails: Vec<String> = (0..STUDENTS).map(|i| format!("student-{i:05}@campus.test")).collect();
    c.execute(
        "INSERT INTO users (email, password_hash, role_id)
         SELECT e, 'x', (SELECT id FROM roles WHERE name = 'student') FROM unnest($1::text[]) e",
        &[&emails],
    )
    .await
    .unwrap();
    let dean: uuid::Uuid = c
        .query_one(
            "INSERT INTO users (email, password_hash, role_id) SELECT 'dean@campus.test', 'x', id FROM roles
             WHERE name = 'admin' RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(c);

    let sink = SmtpSink::start();
    let group = format!("notification-bench-{}", uuid::Uuid::new_v4().simple());
    let topics = nimbus_cloud::worker::subscriptions(nimbus_core::groups::group_for_service("notification").unwrap());
    common::prime_group(&brokers, &group, &topics).await;
    let vars = vec![
        ("DATABASE_URL", common::database_server()),
        ("NIMBUS_SERVICE_DB", db.name.clone()),
        ("NIMBUS_WORKER_GROUP", group),
        ("KAFKA_BROKERS", brokers.clone()),
        ("USER_DATABASE_URL", users.url.clone()),
        ("COURSE_DATABASE_URL", courses.url.clone()),
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", sink.port.to_string()),
        ("SMTP_FROM", "NimbusU <noreply@campus.test>".to_owned()),
    ];
    let _worker = Proc(cloud(&["worker", "--service", "notification"], &vars).spawn().unwrap());
    let producer = nimbus_cloud::kafka::at_least_once_producer(&brokers).unwrap();

    let start = Instant::now();
    send(
        &producer,
        NotificationCommand::SendBulk(BulkNotificationPayload {
            batch_id: uuid::Uuid::new_v4().to_string(),
            recipient_filter: RecipientFilter {
                role_names: Some(vec!["student".into()]),
                ..RecipientFilter::default()
            },
            notification_type: "announcement".into(),
            title: "Exam timetable published".into(),
            message: "See the portal.".into(),
            channels: vec![Channel::Email, Channel::InApp],
            priority: Priority::Normal,
            ..BulkNotificationPayload::default()
        }),
    )
    .await;
    // Single sends while the bulk is going out.
    while sink.messages().len() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::new();
    for i in 0..SINGLES {
        let title = format!("single-{i}");
        let sent = Instant::now();
        send(
            &producer,
            NotificationCommand::SendEmail(NotificationPayload {
                notification_id: uuid::Uuid::new_v4().to_string(),
                recipient_user_id: dean.to_string(),
                notification_type: "general".into(),
                title: title.clone(),
                message: "now".into(),
                channels: vec![Channel::Email],
                ..NotificationPayload::default()
            }),
        )
        .await;
        loop {
            if sink.messages().iter().rev().any(|m| m.subject == title) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        latencies.push(sent.elapsed());
    }
    let mut fanned_out = None;
    loop {
        if fanned_out.is_none()
            && scalar(&db, "SELECT count(*) FROM notification_batches WHERE status = 'done'").await == 1
        {
            fanned_out = Some(start.elapsed());
        }
        let done = scalar(&db, "SELECT count(*) FROM notification_queue WHERE status IN ('sent', 'delivered')").await;
        if done as usize >= 2 * STUDENTS + SINGLES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = start.elapsed();
    let mails = sink.messages().len();
    latencies.sort();
    println!(
        "bulk of {STUDENTS} students × (e-mail + in-app): queued in {:.1} s, all {} deliveries done in {:.1} s",
        fanned_out.unwrap_or(total).as_secs_f64(),
        2 * STUDENTS,
        total.as_secs_f64()
    );
    println!(
        "e-mails into the SMTP server: {mails} in {:.1} s = {:.0}/s",
        total.as_secs_f64(),
        mails as f64 / total.as_secs_f64()
    );
    println!(
        "single send latency during the bulk ({SINGLES} sends, produce → in the mailbox): p50 {} ms, max {} ms",
        percentile(&latencies, 0.5).as_millis(),
        latencies.last().unwrap().as_millis()
    );
    drop(_worker);
    for d in [db, users, courses] {
        d.drop_now().await;
    }
}
