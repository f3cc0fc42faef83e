//! Outbound webhook deliveries: who gets what, and when a failed one is tried again.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// Who a delivery is for; its URL and secret are looked up when it is sent, so a
/// rotated secret or a corrected URL applies to deliveries still pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Receiver {
    Supplier(String),
    Channel(String),
    Operator,
}

impl Receiver {
    pub fn describe(&self) -> String {
        match self {
            Receiver::Supplier(s) => format!("supplier:{s}"),
            Receiver::Channel(c) => format!("channel:{c}"),
            Receiver::Operator => "operator".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One try at sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: Millis,
    /// The receiver's status code, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// Attempts kept per delivery (the oldest are dropped; `attempt_count` keeps counting).
pub const ATTEMPTS_KEPT_MAX: usize = 16;

/// What a delivery sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryBody {
    /// The JSON text itself, rendered when the delivery was queued.
    Json(String),
    /// `fulfillment.created`, rendered from the order whenever it is sent or shown.
    /// Everything it carries (the fulfillment's lines and deadlines, the order's
    /// `ship_to`) is fixed when the fulfillment is made, so every attempt carries the
    /// same content; keeping only the reference keeps the body out of the row that
    /// every attempt rewrites, and the order is already on disk.
    FulfillmentCreated { order: String, fulfillment: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub receiver: Receiver,
    /// `fulfillment.created`, `sla.breached`, …
    pub kind: String,
    /// The JSON body sent: `{"type", "data", "timestamp"}`.
    pub body: DeliveryBody,
    pub status: DeliveryStatus,
    pub attempt_count: u32,
    pub attempts: Vec<Attempt>,
    /// When it is next due (pending only).
    pub next_attempt_at_ms: Millis,
    pub created_at_ms: Millis,
}

/// Delays after the 1st, 2nd, … failed attempt: at least 24 h in all (27 h 35 m 5 s),
/// then the delivery is `failed`.
pub const RETRY_DELAYS_S: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    At(Millis),
    GiveUp,
}

/// The next try after the `attempt_count`th failure at `now_ms`: the schedule's
/// delay plus up to 10% jitter (`jitter` is a random number; any u64 will do), or
/// the receiver's `Retry-After` if it asked for longer. A 410 gives up at once.
pub fn next_retry(
    attempt_count: u32,
    now_ms: Millis,
    status: Option<u16>,
    retry_after_s: Option<u64>,
    jitter: u64,
) -> Retry {
    if status == Some(410) {
        return Retry::GiveUp;
    }
    let Some(delay_s) = RETRY_DELAYS_S.get(attempt_count.saturating_sub(1) as usize) else {
        return Retry::GiveUp;
    };
    let base_ms = delay_s * 1000;
    let jitter_ms = jitter % (base_ms / 10 + 1);
    let asked_ms = retry_after_s.map_or(0, |s| s.min(RETRY_AFTER_S_MAX) * 1000);
    Retry::At(now_ms + (base_ms + jitter_ms).max(asked_ms))
}

/// Longest `Retry-After` honoured: a receiver cannot park a delivery for longer.
pub const RETRY_AFTER_S_MAX: u64 = 36_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_grows_then_gives_up_after_a_day() {
        let mut now = 0;
        for (n, delay_s) in RETRY_DELAYS_S.iter().enumerate() {
            match next_retry(n as u32 + 1, now, Some(500), None, 0) {
                Retry::At(at) => {
                    assert_eq!(at - now, delay_s * 1000);
                    now = at;
                }
                Retry::GiveUp => panic!("gave up after {} attempts", n + 1),
            }
        }
        assert!(now >= 24 * 3600 * 1000, "retried for at least 24 h");
        assert_eq!(next_retry(8, now, Some(500), None, 0), Retry::GiveUp);
    }

    #[test]
    fn jitter_retry_after_and_gone() {
        assert_eq!(
            next_retry(1, 0, Some(500), None, 499),
            Retry::At(5_000 + 499)
        );
        assert_eq!(next_retry(1, 0, Some(500), None, 501), Retry::At(5_000));
        assert_eq!(next_retry(1, 0, Some(503), Some(60), 0), Retry::At(60_000));
        assert_eq!(
            next_retry(1, 0, Some(503), Some(10_000_000), 0),
            Retry::At(36_000_000)
        );
        assert_eq!(next_retry(1, 0, Some(410), None, 0), Retry::GiveUp);
    }
}
