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
    /// Kafka failed: what was being done, and the client's error when there is one.
    #[error("kafka: {context}{}", cause(.source))]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: Option<BoxError>,
    },
    /// MQTT failed.
    #[error("mqtt: {context}{}", cause(.source))]
    Mqtt {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Redis (revocation list, rate limits) failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A document could not be (de)serialised.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A command's input is invalid, field by field (HTTP 400 `VALIDATION_ERROR`).
    #[error("invalid input: {}", FieldError::summary(.0))]
    Validation(Vec<FieldError>),
    /// Each field is valid on its own but together they break a rule the API document cannot
    /// state (an end before its start, no field to change, a referenced row that does not
    /// exist): HTTP 422 `VALIDATION_ERROR`, so a client that followed the document can tell.
    #[error("unprocessable input: {}", FieldError::summary(.0))]
    Unprocessable(Vec<FieldError>),
    /// What a command refers to does not exist (HTTP 404).
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of thing (`course`, `room`, …).
        what: &'static str,
        /// Its id as given.
        id: String,
    },
    /// The command contradicts the current state (HTTP 409), e.g. a room already booked; the
    /// details say with what.
    #[error("{message}")]
    Conflict {
        /// One sentence for a person.
        message: String,
        /// Machine-readable specifics (the conflicting entries, …).
        details: serde_json::Value,
    },
    /// No valid credentials (HTTP 401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Valid credentials without the right (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The content store (MongoDB GridFS) failed.
    #[error("content store: {context}{}", cause(.source))]
    Store {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },
    /// An upload was larger than the limit (HTTP 413); nothing of it was kept.
    #[error("upload larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// An upload's type is not allowed, or its bytes are not what it declared (HTTP 415).
    #[error("unsupported media type: {declared} (the bytes look like {detected})")]
    UnsupportedMedia {
        /// The declared MIME type.
        declared: String,
        /// What the first bytes look like.
        detected: String,
    },
}

/// An infrastructure client's error, kept as the source of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `": <source>"`, so a log line that prints only our error still says why.
fn cause(source: &Option<BoxError>) -> String {
    source.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
}

impl Error {
    /// Kafka failed while doing `context`, because of `source`.
    pub fn kafka(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Kafka { context: context.into(), source: Some(source.into()) }
    }

    /// Kafka did not do what was expected (`context` says what), without a client error.
    pub fn kafka_msg(context: impl Into<String>) -> Self {
        Error::Kafka { context: context.into(), source: None }
    }

    /// MQTT failed while doing `context`, because of `source`.
    pub fn mqtt(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Mqtt { context: context.into(), source: Some(source.into()) }
    }

    /// The MQTT link did not do what was expected, without a client error.
    pub fn mqtt_msg(context: impl Into<String>) -> Self {
        Error::Mqtt { context: context.into(), source: None }
    }

    /// The content store failed while doing `context`, because of `source`.
    pub fn store(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Store { context: context.into(), source: Some(source.into()) }
    }

    /// The content store's data is not what it should be.
    pub fn store_msg(context: impl Into<String>) -> Self {
        Error::Store { context: context.into(), source: None }
    }
}

/// One invalid field of a command's input.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field's path (`email`, `entries[2].start_time`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }

    fn summary(errors: &[FieldError]) -> String {
        errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
    }
}

/// Result with the cloud's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
