//! Shared helpers for the cloud's integration tests: real services from the environment
//! (loopback defaults), and a fresh PostgreSQL database per test.
#![allow(dead_code)]

use deadpool_postgres::Pool;

/// `KAFKA_BROKERS` or the local broker.
pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
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

pub mod ingest;
