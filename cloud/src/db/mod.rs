//! PostgreSQL access: one pool per service database and the migrations under
//! `migrations/<database>/`, applied in order and recorded in `schema_migrations`.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::error::{Error, Result};

/// The migrations of one database, embedded in the binary so `nimbus-cloud migrate` needs no
/// files on disk.
pub struct Migrations {
    /// The database they belong to.
    pub database: &'static str,
    /// `(version, sql)` in order.
    pub steps: &'static [(i32, &'static str)],
}

/// Every database the cloud owns, with its migrations.
pub const ALL: &[Migrations] = &[
    Migrations {
        database: "edge_registry_db",
        steps: &[
            (1, include_str!("../../../migrations/edge_registry_db/0001_init.sql")),
            (2, include_str!("../../../migrations/edge_registry_db/0002_downlink.sql")),
            (3, include_str!("../../../migrations/edge_registry_db/0003_dlq_replays.sql")),
            (4, include_str!("../../../migrations/edge_registry_db/0004_announcements_snapshot.sql")),
            (5, include_str!("../../../migrations/edge_registry_db/0005_broker_accounts.sql")),
        ],
    },
    Migrations {
        database: "attendance_service_db",
        steps: &[(1, include_str!("../../../migrations/attendance_service_db/0001_init.sql"))],
    },
    Migrations {
        database: "timetable_service_db",
        steps: &[(1, include_str!("../../../migrations/timetable_service_db/0001_init.sql"))],
    },
    Migrations {
        database: "course_service_db",
        steps: &[(1, include_str!("../../../migrations/course_service_db/0001_init.sql"))],
    },
    Migrations {
        database: "user_service_db",
        steps: &[
            (1, include_str!("../../../migrations/user_service_db/0001_init.sql")),
            (2, include_str!("../../../migrations/user_service_db/0002_classroom_pins.sql")),
            (3, include_str!("../../../migrations/user_service_db/0003_notification_permissions.sql")),
            (4, include_str!("../../../migrations/user_service_db/0004_announcement_permissions.sql")),
            (5, include_str!("../../../migrations/user_service_db/0005_communication_permissions.sql")),
        ],
    },
    Migrations {
        database: "notification_service_db",
        steps: &[
            (1, include_str!("../../../migrations/notification_service_db/0001_init.sql")),
            (2, include_str!("../../../migrations/notification_service_db/0002_quiet_hours_and_digests.sql")),
        ],
    },
    Migrations {
        database: "announcement_service_db",
        steps: &[(1, include_str!("../../../migrations/announcement_service_db/0001_init.sql"))],
    },
    Migrations {
        database: "communication_service_db",
        steps: &[
            (1, include_str!("../../../migrations/communication_service_db/0001_init.sql")),
            (2, include_str!("../../../migrations/communication_service_db/0002_office_hours.sql")),
            (3, include_str!("../../../migrations/communication_service_db/0003_forums.sql")),
            (4, include_str!("../../../migrations/communication_service_db/0004_message_alerts.sql")),
            (5, include_str!("../../../migrations/communication_service_db/0005_course_conversations.sql")),
        ],
    },
    Migrations {
        database: "content_service_db",
        steps: &[(1, include_str!("../../../migrations/content_service_db/0001_init.sql"))],
    },
];

/// Looks up a database's migrations.
pub fn migrations_for(database: &str) -> Option<&'static Migrations> {
    ALL.iter().find(|m| m.database == database)
}

/// A connection pool to `url` (a `postgres://` URL naming the database).
pub fn pool(url: &str, max_size: usize) -> Result<Pool> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| Error::Config(format!("database url: {e}")))?;
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager).max_size(max_size).build().map_err(|e| Error::Config(format!("database pool: {e}")))
}

/// The URL of `database` on the server of `base` (a URL with or without a database name).
pub fn database_url(base: &str, database: &str) -> String {
    let (head, tail) = match base.split_once('?') {
        Some((h, t)) => (h, Some(t)),
        None => (base, None),
    };
    // postgres://user@host:port[/db]
    let server = match head.find("://").map(|i| i + 3) {
        Some(start) => match head[start..].find('/') {
            Some(slash) => &head[..start + slash],
            None => head,
        },
        None => head,
    };
    match tail {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    }
}

/// Applies the pending migrations of `m` on `pool`'s database. Safe to run from several
/// processes at once: an advisory lock serialises them.
pub async fn migrate(pool: &Pool, m: &Migrations) -> Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock(7395104)", &[]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: Vec<i32> =
        tx.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut n = 0;
    for (version, sql) in m.steps {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version]).await?;
        tracing::info!(database = m.database, version, "applied migration");
        n += 1;
    }
    tx.commit().await?;
    Ok(n)
}

/// Where one of the cloud's databases lives: the server it is created on, its actual name, and
/// the URL its pool connects to (which may point elsewhere, see `database.urls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server's base URL (`postgres://user@host:port`), where a missing database is created.
    pub server_url: String,
    /// The database's actual name.
    pub name: String,
    /// The URL the service connects to.
    pub url: String,
}

/// Creates the database if the server lacks it (a fresh campus), then applies its pending
/// migrations. Returns how many migrations ran.
pub async fn create_and_migrate(target: &Target, m: &Migrations) -> Result<usize> {
    let admin = pool(&database_url(&target.server_url, "postgres"), 1)?;
    let c = admin.get().await?;
    let exists = c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&target.name]).await?.is_some();
    if !exists {
        // The name was validated (`[a-z0-9_]`) or comes from the built-in list: safe to quote.
        c.batch_execute(&format!("CREATE DATABASE \"{}\"", target.name)).await?;
        tracing::info!(database = %target.name, "created database");
    }
    drop(c);
    admin.close();
    let p = pool(&target.url, 2)?;
    let n = migrate(&p, m).await?;
    p.close();
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_swaps_or_adds_the_database_name() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432", "x_db"),
            "postgres://postgres@127.0.0.1:5432/x_db"
        );
        assert_eq!(database_url("postgres://u:p@h/other", "x_db"), "postgres://u:p@h/x_db");
        assert_eq!(
            database_url("postgres://u@h:1/other?sslmode=disable", "x_db"),
            "postgres://u@h:1/x_db?sslmode=disable"
        );
    }
}
