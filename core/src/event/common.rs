use alloc::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Event times: RFC 3339 in UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// One changed field of an update event (seed: `ChangeValue`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChangeValue {
    /// Value before the change (any JSON).
    pub old_value: serde_json::Value,
    /// Value after the change (any JSON).
    pub new_value: serde_json::Value,
}

/// Changed fields by name (seed: `map[string]ChangeValue`).
pub type Changes = BTreeMap<alloc::string::String, ChangeValue>;
