//! Supplier SLAs: the three deadlines of a fulfillment, breaches, and the
//! scorecard computed from per-fulfillment history. No I/O; time comes in.

use serde::{Deserialize, Serialize};

use super::FulfillmentStatus;
use crate::clock::Millis;

/// A step with a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    Ack = 0,
    Ship = 1,
    Deliver = 2,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Ack, Stage::Ship, Stage::Deliver];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ack => "ack",
            Stage::Ship => "ship",
            Stage::Deliver => "deliver",
        }
    }
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(v as usize).copied()
    }
}

/// A deadline that passed before its step was taken. Recorded once per stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breach {
    pub fulfillment: String,
    pub order: String,
    pub supplier: String,
    pub stage: Stage,
    pub deadline_ms: Millis,
    pub detected_at_ms: Millis,
    /// Set when the step is finally taken or the fulfillment ends.
    pub closed_at_ms: Option<Millis>,
}

/// What the scorecard needs of one fulfillment, kept per supplier by creation time
/// so a scorecard reads its window and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentRecord {
    pub status: FulfillmentStatus,
    pub created_at_ms: Millis,
    pub ack_by_ms: Millis,
    pub ship_by_ms: Millis,
    pub acknowledged_at_ms: Option<Millis>,
    pub shipped_at_ms: Option<Millis>,
    /// Breaches recorded, by stage (ack, ship, deliver).
    pub breached: [bool; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breaches {
    pub ack: u64,
    pub ship: u64,
    pub deliver: u64,
}

/// A supplier's record over a window. Percentages have one decimal and are null
/// when nothing in the window was due for that step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub fulfillments: u64,
    pub acknowledged_on_time_pct: Option<f64>,
    pub shipped_on_time_pct: Option<f64>,
    pub rejected_pct: Option<f64>,
    pub ack_latency_s: Percentiles,
    pub breaches: Breaches,
}

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1) as usize;
    Some(sorted[rank - 1])
}

/// The scorecard over `records` (the fulfillments created in the window), at `now_ms`.
///
/// - An acknowledgement is due once it happened, the fulfillment was rejected or
///   timed out, or `ack_by` passed; it is on time if it happened by `ack_by`.
/// - Shipping is due once it happened or `ship_by` passed, for fulfillments that
///   were not dropped (rejected, timed out, cancelled) before shipping; on time if
///   it happened by `ship_by`.
/// - `rejected_pct` is over all fulfillments in the window.
/// - Latencies are acknowledgement time minus routing time, whole seconds,
///   nearest-rank percentiles.
pub fn scorecard<'a>(
    records: impl Iterator<Item = &'a FulfillmentRecord>,
    now_ms: Millis,
) -> Scorecard {
    let (mut total, mut rejected) = (0, 0);
    let (mut ack_due, mut ack_on_time, mut ship_due, mut ship_on_time) = (0, 0, 0, 0);
    let mut latencies = Vec::new();
    let mut breaches = Breaches {
        ack: 0,
        ship: 0,
        deliver: 0,
    };
    for r in records {
        total += 1;
        let dropped = r.status.is_dropped();
        if r.status == FulfillmentStatus::Rejected {
            rejected += 1;
        }
        let refused = matches!(
            r.status,
            FulfillmentStatus::Rejected | FulfillmentStatus::TimedOut
        );
        if r.acknowledged_at_ms.is_some() || refused || now_ms >= r.ack_by_ms {
            ack_due += 1;
            if r.acknowledged_at_ms.is_some_and(|at| at <= r.ack_by_ms) {
                ack_on_time += 1;
            }
        }
        if let Some(at) = r.acknowledged_at_ms {
            latencies.push(at.saturating_sub(r.created_at_ms) / 1000);
        }
        let shipped = r.shipped_at_ms.is_some();
        if shipped || (!dropped && now_ms >= r.ship_by_ms) {
            ship_due += 1;
            if r.shipped_at_ms.is_some_and(|at| at <= r.ship_by_ms) {
                ship_on_time += 1;
            }
        }
        breaches.ack += r.breached[0] as u64;
        breaches.ship += r.breached[1] as u64;
        breaches.deliver += r.breached[2] as u64;
    }
    latencies.sort_unstable();
    Scorecard {
        fulfillments: total,
        acknowledged_on_time_pct: pct(ack_on_time, ack_due),
        shipped_on_time_pct: pct(ship_on_time, ship_due),
        rejected_pct: pct(rejected, total),
        ack_latency_s: Percentiles {
            p50: percentile(&latencies, 50),
            p95: percentile(&latencies, 95),
            max: latencies.last().copied(),
        },
        breaches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FulfillmentStatus as F;

    fn rec(status: F, ack_after_s: Option<u64>, shipped_after_s: Option<u64>) -> FulfillmentRecord {
        FulfillmentRecord {
            status,
            created_at_ms: 0,
            ack_by_ms: 100_000,
            ship_by_ms: 1_000_000,
            acknowledged_at_ms: ack_after_s.map(|s| s * 1000),
            shipped_at_ms: shipped_after_s.map(|s| s * 1000),
            breached: [ack_after_s.is_none_or(|s| s > 100), false, false],
        }
    }

    #[test]
    fn percentages_and_percentiles_follow_the_definitions() {
        let records = [
            rec(F::Shipped, Some(10), Some(500)),
            rec(F::Acknowledged, Some(50), None),
            rec(F::Acknowledged, Some(200), None), // late
            rec(F::Rejected, None, None),
            rec(F::Shipped, Some(30), Some(2_000)), // shipped late
        ];
        let card = scorecard(records.iter(), 1_500_000);
        assert_eq!(card.fulfillments, 5);
        // Due: all 5 (4 acknowledged, 1 rejected); on time: 10, 50, 30.
        assert_eq!(card.acknowledged_on_time_pct, Some(60.0));
        // Due: 4 (the rejected one is dropped); on time: 1.
        assert_eq!(card.shipped_on_time_pct, Some(25.0));
        assert_eq!(card.rejected_pct, Some(20.0));
        // Latencies 10, 30, 50, 200.
        assert_eq!(
            card.ack_latency_s,
            Percentiles {
                p50: Some(30),
                p95: Some(200),
                max: Some(200)
            }
        );
        assert_eq!(
            card.breaches,
            Breaches {
                ack: 2,
                ship: 0,
                deliver: 0
            }
        );
    }

    #[test]
    fn nothing_due_yet_is_null_not_zero() {
        let records = [rec(F::Routed, None, None)];
        let card = scorecard(records.iter(), 50_000);
        assert_eq!(card.acknowledged_on_time_pct, None);
        assert_eq!(card.shipped_on_time_pct, None);
        assert_eq!(card.rejected_pct, Some(0.0));
        assert_eq!(scorecard([].iter(), 0).rejected_pct, None);
    }

    #[test]
    fn one_decimal_rounding() {
        assert_eq!(pct(2, 3), Some(66.7));
        assert_eq!(pct(1, 3), Some(33.3));
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95), Some(10));
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50), Some(5));
    }
}
