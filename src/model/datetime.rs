//! Rendering and parsing of instants. STUB: replaced by the model work.
use super::Timestamp;
use std::fmt;

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.as_millis())
    }
}
