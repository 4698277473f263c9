//! Access-log entries.

use super::time::Timestamp;
use serde::{Deserialize, Serialize};

/// One access-log entry (BEHAVIOR 1.6). All fields are optional, as in 5.x.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessLogEntry {
    /// The atSign that made the request.
    pub from_at_sign: Option<String>,
    /// When (UTC, ms).
    pub request_date_time: Option<Timestamp>,
    /// The verb, e.g. `pol`, `lookup`, `pkam`.
    pub verb_name: Option<String>,
    /// The looked-up key, for lookups.
    pub lookup_key: Option<String>,
}
