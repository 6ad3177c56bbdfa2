//! Time windows `actw` in oneM2M extended crontab (placeholder; see issue 2).

use chrono::{DateTime, Utc};

/// A parse error naming the crontab field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TimeWindowError {
    /// Human-readable reason, naming the field.
    pub message: String,
}

/// A request time broken into crontab fields once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeParts {
    pub sec: u8, pub min: u8, pub hour: u8, pub dom: u8, pub mon: u8, pub dow: u8, pub year: u16,
}

impl TimeParts {
    /// Breaks a UTC instant into fields.
    pub fn of(_t: DateTime<Utc>) -> Self { todo!() }
}

/// A compiled extended-crontab entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow;

impl TimeWindow {
    /// Parses one `m2m:scheduleEntry`.
    pub fn parse(_s: &str) -> Result<Self, TimeWindowError> { todo!() }
    /// Is `t` inside the window?
    pub fn matches(&self, _t: &TimeParts) -> bool { todo!() }
    /// The first second at or after `after` inside the window.
    pub fn next_match(&self, _after: DateTime<Utc>) -> Option<DateTime<Utc>> { todo!() }
}
