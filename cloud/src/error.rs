//! The cloud's error type: one enum for every role, so a role's `run` can fail with whatever
//! went wrong (configuration, PostgreSQL, Kafka, MQTT, I/O) and the binary reports it.

/// Everything that can go wrong in the cloud roles.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration is invalid.
    #[error("config: {0}")]
    Config(String),
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// The connection pool failed.
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Kafka failed.
    #[error("kafka: {0}")]
    Kafka(String),
    /// MQTT failed.
    #[error("mqtt: {0}")]
    Mqtt(String),
    /// I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with the cloud's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
