use nimbus_core::event::attendance::AttendanceStatus;

/// Everything that can go wrong inside the edge node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local database failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file or socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// JSON in the store or from a client is broken.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The configuration is invalid.
    #[error("config: {0}")]
    Config(String),
    /// The database was written by a newer version of the node.
    #[error("database schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew {
        /// Version in the file.
        found: u32,
        /// Newest version this build has.
        known: u32,
    },
    /// No timetable entry is running (or about to start) in this room.
    #[error("no class is scheduled in this room now")]
    NoClassNow,
    /// Someone other than the slot's faculty tried to open it.
    #[error("{0} does not teach the class scheduled now")]
    NotTheFaculty(String),
    /// A session is already open.
    #[error("session {0} is already open")]
    SessionAlreadyOpen(String),
    /// This class already had its session today.
    #[error("the class {entry_id} on {class_date} already had a session")]
    SessionAlreadyHeld {
        /// The timetable entry.
        entry_id: String,
        /// The date.
        class_date: String,
    },
    /// No such session.
    #[error("no session {0}")]
    SessionNotFound(String),
    /// The session is closed; use a correction.
    #[error("session {0} is closed")]
    SessionClosed(String),
    /// The session is still open; mark instead of correcting.
    #[error("session {0} is still open")]
    SessionOpen(String),
    /// The student is not on the course roster.
    #[error("student {0} is not on this course's roster")]
    NotOnRoster(String),
    /// Corrections are only accepted for a while after the session closed.
    #[error("the correction window for session {0} has closed")]
    CorrectionWindowClosed(String),
    /// The correction would not change anything.
    #[error("student {student_id} is already {status:?}")]
    NoChange {
        /// The student.
        student_id: String,
        /// The unchanged status.
        status: AttendanceStatus,
    },
    /// A snapshot is malformed.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A bearer token is missing, malformed, expired, or not signed by a cached cloud key.
    #[error("token rejected: {0}")]
    Unauthenticated(String),
    /// A content download from the cloud failed (status, transport, size or sha256 mismatch).
    #[error("content download: {0}")]
    Download(String),
}

/// Result with the node's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
