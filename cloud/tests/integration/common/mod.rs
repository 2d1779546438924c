//! Shared helpers for the cloud's integration tests: real services from the environment
//! (loopback defaults), and a fresh PostgreSQL database per test. Per concern: [`api`] (the admin
//! API in-process), [`compose`] (the campus deployment's files), [`content`] (the content
//! service), [`e2e`] (the real binaries as processes), [`ingest`] (the ingest, fake nodes, Kafka
//! reads), [`services_api`] (the services' admin routes), [`tls`] (certificates made in tests).

pub mod api;
pub mod compose;
pub mod content;
pub mod e2e;
pub mod ingest;
pub mod services_api;
pub mod smtp;
pub mod tls;

use deadpool_postgres::Pool;
use rdkafka::consumer::Consumer;

/// Sends the logs of the code under test to libtest's per-test output (shown when a test fails),
/// filtered by `RUST_LOG` (default `warn`). The subscriber is global to the process, so it is set
/// here for every test alike: the first call installs it, later calls do nothing.
pub fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// Runs `check`, which must panic with a message containing `expected` (a check shown to fail
/// on the defect it guards against); panics saying what happened instead.
pub fn assert_fails_with(check: impl FnOnce(), expected: &str) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
    let Err(payload) = result else { panic!("the check passed input with the defect ({expected:?} expected)") };
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(message.contains(expected), "the check failed, but not for the defect ({expected:?}): {message}");
}

/// Waits up to 10 s until something listens on loopback `port`; panics naming `what`.
pub fn wait_until_listening(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "{what} did not listen on {port} within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The tests' own Kafka broker: `NIMBUS_TEST_KAFKA_BROKERS`, or the one `scripts/services.sh`
/// starts for them on 127.0.0.1:9094. Never `KAFKA_BROKERS`: a developer's stack running
/// against the shared services (`nimbus-cloud all`, 9092) must not read the tests' traffic.
pub fn kafka_brokers() -> String {
    std::env::var("NIMBUS_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9094".into())
}

/// `REDIS_URL` or the local server.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A connection to Redis ([`redis_url`]), which must be up.
pub async fn redis_manager() -> redis::aio::ConnectionManager {
    let client = redis::Client::open(redis_url()).unwrap();
    redis::aio::ConnectionManager::new(client).await.expect("Redis must be reachable (REDIS_URL)")
}

/// `DATABASE_URL` (server, any database) or the local server.
pub fn database_server() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database created for one test and dropped by [`TestDb::drop_now`].
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: Pool,
}

impl TestDb {
    /// Creates `nimbus_test_<random>`; fails loudly if PostgreSQL is unreachable.
    pub async fn create() -> TestDb {
        let name = format!("nimbus_test_{}", uuid::Uuid::new_v4().simple());
        let admin = nimbus_cloud::db::pool(&nimbus_cloud::db::database_url(&database_server(), "postgres"), 1).unwrap();
        let c = admin.get().await.expect("PostgreSQL must be reachable (DATABASE_URL); run scripts/services.sh up");
        c.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let url = nimbus_cloud::db::database_url(&database_server(), &name);
        let pool = nimbus_cloud::db::pool(&url, 4).unwrap();
        TestDb { name, url, pool }
    }

    /// Drops the database (connections first).
    pub async fn drop_now(self) {
        self.pool.close();
        let admin = nimbus_cloud::db::pool(&nimbus_cloud::db::database_url(&database_server(), "postgres"), 1).unwrap();
        let c = admin.get().await.unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await.unwrap();
    }
}

/// Commits `group`'s offsets at the current end of every partition of `topics`, so a consumer
/// started in that group reads only what is produced from now on (topics are shared by tests).
pub async fn prime_group(brokers: &str, group: &str, topics: &[nimbus_core::topics::Topic]) {
    // On a fresh broker no role may have created the topics yet, and a group subscribed to a
    // missing topic never gets its partitions.
    nimbus_cloud::kafka::ensure_topics(brokers, nimbus_core::topics::Environment::Development)
        .await
        .expect("Kafka must be reachable (NIMBUS_TEST_KAFKA_BROKERS); run scripts/services.sh up");
    let (brokers, group) = (brokers.to_owned(), group.to_owned());
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .create()
            .unwrap();
        let names: Vec<&str> = topics.iter().map(|t| t.name()).collect();
        c.subscribe(&names).unwrap();
        let expected: usize = topics.iter().map(|t| t.spec().partitions as usize).sum();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let _ = c.poll(std::time::Duration::from_millis(100));
            if c.assignment().unwrap().count() == expected {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "group {group} never got its {expected} partitions");
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        for e in c.assignment().unwrap().elements() {
            let (_, high) = c.fetch_watermarks(e.topic(), e.partition(), std::time::Duration::from_secs(10)).unwrap();
            tpl.add_partition_offset(e.topic(), e.partition(), rdkafka::Offset::Offset(high)).unwrap();
        }
        c.commit(&tpl, rdkafka::consumer::CommitMode::Sync).unwrap();
        c.unsubscribe();
    })
    .await
    .unwrap();
}
