//! Time as an input. Everything that depends on "now" takes a [`Clock`], so tests
//! of a 4-hour SLA or a 15-minute cart hold run in microseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Millis;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// The wall clock shifted by a fixed number of seconds: lets a drill (or a test of
/// the real binary) see what the daemon does when deadlines have passed.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    pub offset_s: i64,
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> Millis {
        let now = SystemClock.now_ms() as i64 + self.offset_s * 1000;
        now.max(0) as Millis
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    pub fn new(now_ms: Millis) -> Arc<Self> {
        Arc::new(Self {
            now_ms: AtomicU64::new(now_ms),
        })
    }
    pub fn advance_ms(&self, by_ms: Millis) {
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// Formats a time as an RFC 3339 UTC string with second precision.
pub fn format_rfc3339(at_ms: Millis) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(at_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses an RFC 3339 UTC time (`2026-11-22T10:00:00Z`, fractions allowed).
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let t = humantime::parse_rfc3339(text).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_at_second_precision() {
        let at_ms = parse_rfc3339("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(format_rfc3339(at_ms), "2026-11-22T10:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-22T10:00:00.250Z"), Some(at_ms + 250));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
