//! Orders and fulfillments: what a checkout leaves behind, and how an order's
//! status follows from its fulfillments'.

use serde::{Deserialize, Serialize};

use super::catalog::{TEXT_LEN_MAX, check_text};
use crate::clock::{Millis, format_rfc3339};
use crate::problem::Problem;

/// Most units of one SKU on one line.
pub const LINE_QTY_MAX: u32 = 10_000;

/// A line as a storefront asks for it: a SKU (or the channel's listing id) and units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub listing: Option<String>,
    pub qty: u32,
}

/// A line after its SKU is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want<'a> {
    pub sku: &'a str,
    pub qty: u32,
}

pub fn check_qty(qty: u32) -> Result<(), Problem> {
    if qty == 0 || qty > LINE_QTY_MAX {
        return Err(Problem::invalid(format!(
            "qty must be 1 to {LINE_QTY_MAX}, got {qty}"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    #[serde(default)]
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    #[serde(default)]
    pub phone: Option<String>,
}

impl Customer {
    pub fn validate(&self) -> Result<(), Problem> {
        check_text("customer.ref", &self.reference)?;
        if let Some(email) = &self.email {
            let plausible = email.len() <= 254
                && email
                    .split_once('@')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
            if !plausible {
                return Err(Problem::invalid(format!(
                    "customer.email {email:?} is not an email address"
                )));
            }
        }
        Ok(())
    }
}

impl Address {
    pub fn validate(&self) -> Result<(), Problem> {
        check_text("ship_to.name", &self.name)?;
        check_text("ship_to.line1", &self.line1)?;
        check_text("ship_to.city", &self.city)?;
        check_text("ship_to.postal_code", &self.postal_code)?;
        for (name, v) in [
            ("ship_to.line2", &self.line2),
            ("ship_to.region", &self.region),
            ("ship_to.phone", &self.phone),
        ] {
            if v.as_ref().is_some_and(|v| v.len() > TEXT_LEN_MAX) {
                return Err(Problem::invalid(format!("{name} is too long")));
            }
        }
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Problem::invalid(format!(
                "ship_to.country must be an ISO 3166-1 alpha-2 code such as US, got {:?}",
                self.country
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    Routed,
    PartiallyShipped,
    Shipped,
    Delivered,
    Cancelled,
    Unfulfillable,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        Self::Routed,
        Self::PartiallyShipped,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::Unfulfillable,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Routed => "routed",
            Self::PartiallyShipped => "partially_shipped",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Unfulfillable => "unfulfillable",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FulfillmentStatus {
    Routed,
    Acknowledged,
    Shipped,
    Delivered,
    Rejected,
    TimedOut,
    Cancelled,
}

impl FulfillmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Routed => "routed",
            Self::Acknowledged => "acknowledged",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Rejected => "rejected",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
        }
    }
    /// Still holds its supplier's units allocated.
    pub fn holds_allocation(self) -> bool {
        matches!(self, Self::Routed | Self::Acknowledged)
    }
    /// Ended without the goods leaving the supplier.
    pub fn is_dropped(self) -> bool {
        matches!(self, Self::Rejected | Self::TimedOut | Self::Cancelled)
    }
}

/// Stored (postcard) and also serialized as is into API answers, events and
/// webhook bodies: a field added here shows up there too, and serde attributes
/// must suit both formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub qty: u32,
    /// Unit price in minor units when the order was placed.
    pub price: u64,
}

/// Stored and also the wire format, like [`OrderLine`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentLine {
    pub sku: String,
    pub supplier_sku: String,
    pub qty: u32,
}

/// Stored and also the wire format, like [`OrderLine`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    pub carrier: String,
    pub tracking_number: String,
    pub tracking_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfillment {
    pub id: String,
    pub supplier: String,
    pub status: FulfillmentStatus,
    pub lines: Vec<FulfillmentLine>,
    pub ack_by_ms: Millis,
    pub ship_by_ms: Millis,
    pub deliver_by_ms: Millis,
    pub tracking: Option<Tracking>,
    pub created_at_ms: Millis,
    pub acknowledged_at_ms: Option<Millis>,
    pub shipped_at_ms: Option<Millis>,
    pub delivered_at_ms: Option<Millis>,
    /// Why it ended without shipping (rejection reason, timeout, cancellation).
    pub ended_reason: Option<String>,
}

/// A fulfillment's SLA deadlines as timestamps: what its answers and its
/// `fulfillment.created` webhook show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deadlines {
    pub ack_by: String,
    pub ship_by: String,
    pub deliver_by: String,
}

impl Fulfillment {
    pub fn deadlines(&self) -> Deadlines {
        Deadlines {
            ack_by: format_rfc3339(self.ack_by_ms),
            ship_by: format_rfc3339(self.ship_by_ms),
            deliver_by: format_rfc3339(self.deliver_by_ms),
        }
    }

    /// When `stage` is due.
    pub fn deadline_ms(&self, stage: super::Stage) -> Millis {
        match stage {
            super::Stage::Ack => self.ack_by_ms,
            super::Stage::Ship => self.ship_by_ms,
            super::Stage::Deliver => self.deliver_by_ms,
        }
    }
}

/// A step a supplier (or the operator) asks a fulfillment to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Acknowledge,
    Reject,
    Ship,
    Deliver,
    Cancel,
    TimeOut,
}

/// What taking a step does to a fulfillment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The fulfillment moves to this status.
    Moves(FulfillmentStatus),
    /// It is already there: a repeat, nothing to do.
    AlreadyThere,
}

impl FulfillmentStatus {
    /// The state machine: `routed → acknowledged → shipped → delivered`, and
    /// `rejected`, `timed_out`, `cancelled` from routed or acknowledged. `Err` names
    /// an impossible step.
    pub fn step(self, step: Step) -> Result<StepOutcome, String> {
        use FulfillmentStatus as F;
        let target = match step {
            Step::Acknowledge => F::Acknowledged,
            Step::Reject => F::Rejected,
            Step::Ship => F::Shipped,
            Step::Deliver => F::Delivered,
            Step::Cancel => F::Cancelled,
            Step::TimeOut => F::TimedOut,
        };
        if self == target {
            return Ok(StepOutcome::AlreadyThere);
        }
        let allowed = match target {
            F::Acknowledged => self == F::Routed,
            F::Rejected | F::Cancelled | F::TimedOut | F::Shipped => self.holds_allocation(),
            F::Delivered => self == F::Shipped,
            F::Routed => false,
        };
        // A late acknowledgement of something already further along is harmless.
        if step == Step::Acknowledge && matches!(self, F::Shipped | F::Delivered) {
            return Ok(StepOutcome::AlreadyThere);
        }
        if allowed {
            Ok(StepOutcome::Moves(target))
        } else {
            Err(format!(
                "a {} fulfillment cannot become {}",
                self.as_str(),
                target.as_str()
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub channel: String,
    pub status: OrderStatus,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
    pub customer: Customer,
    pub ship_to: Address,
    pub lines: Vec<OrderLine>,
    pub total: u64,
    pub fulfillments: Vec<Fulfillment>,
    /// (sku, qty) that no supplier could take.
    pub unfulfillable: Vec<(String, u32)>,
}

impl Order {
    /// The order's status as its fulfillments and unplaceable lines make it.
    pub fn derived_status(&self) -> OrderStatus {
        let live: Vec<FulfillmentStatus> = self
            .fulfillments
            .iter()
            .map(|f| f.status)
            .filter(|s| !s.is_dropped())
            .collect();
        if live.is_empty() {
            return if self.unfulfillable.is_empty() {
                OrderStatus::Cancelled
            } else {
                OrderStatus::Unfulfillable
            };
        }
        let sent = |s: &FulfillmentStatus| {
            matches!(s, FulfillmentStatus::Shipped | FulfillmentStatus::Delivered)
        };
        if live.iter().all(|s| *s == FulfillmentStatus::Delivered) {
            OrderStatus::Delivered
        } else if live.iter().all(sent) {
            OrderStatus::Shipped
        } else if live.iter().any(sent) {
            OrderStatus::PartiallyShipped
        } else {
            OrderStatus::Routed
        }
    }
}

/// Stored beside an order under its channel and `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub order: String,
    /// SHA-256 of the request body, to tell a retry from a different request.
    pub body_sha256: [u8; 32],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ful(status: FulfillmentStatus) -> Fulfillment {
        Fulfillment {
            id: "ful_x".into(),
            supplier: "s".into(),
            status,
            lines: vec![],
            ack_by_ms: 0,
            ship_by_ms: 0,
            deliver_by_ms: 0,
            tracking: None,
            created_at_ms: 0,
            acknowledged_at_ms: None,
            shipped_at_ms: None,
            delivered_at_ms: None,
            ended_reason: None,
        }
    }

    #[test]
    fn fulfillment_steps_follow_the_state_machine() {
        use FulfillmentStatus as F;
        assert_eq!(
            F::Routed.step(Step::Acknowledge),
            Ok(StepOutcome::Moves(F::Acknowledged))
        );
        assert_eq!(
            F::Acknowledged.step(Step::Acknowledge),
            Ok(StepOutcome::AlreadyThere)
        );
        assert_eq!(
            F::Routed.step(Step::Ship),
            Ok(StepOutcome::Moves(F::Shipped))
        );
        assert_eq!(
            F::Shipped.step(Step::Deliver),
            Ok(StepOutcome::Moves(F::Delivered))
        );
        assert_eq!(
            F::Shipped.step(Step::Acknowledge),
            Ok(StepOutcome::AlreadyThere)
        );
        assert!(F::Routed.step(Step::Deliver).is_err());
        assert!(F::Cancelled.step(Step::Ship).is_err());
        assert!(F::Shipped.step(Step::Reject).is_err());
        assert!(F::Rejected.step(Step::Acknowledge).is_err());
        assert_eq!(
            F::Acknowledged.step(Step::TimeOut),
            Ok(StepOutcome::Moves(F::TimedOut))
        );
    }

    fn order(fs: &[FulfillmentStatus], unfulfillable: bool) -> Order {
        Order {
            id: "ord_x".into(),
            channel: "web".into(),
            status: OrderStatus::Routed,
            created_at_ms: 0,
            updated_at_ms: 0,
            customer: Customer {
                reference: "c".into(),
                email: None,
            },
            ship_to: Address {
                name: "n".into(),
                line1: "l".into(),
                line2: None,
                city: "c".into(),
                region: None,
                postal_code: "1".into(),
                country: "US".into(),
                phone: None,
            },
            lines: vec![],
            total: 0,
            fulfillments: fs.iter().map(|s| ful(*s)).collect(),
            unfulfillable: if unfulfillable {
                vec![("a".into(), 1)]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn order_status_follows_live_fulfillments() {
        use FulfillmentStatus as F;
        assert_eq!(
            order(&[F::Routed, F::Acknowledged], false).derived_status(),
            OrderStatus::Routed
        );
        assert_eq!(
            order(&[F::Shipped, F::Routed], false).derived_status(),
            OrderStatus::PartiallyShipped
        );
        assert_eq!(
            order(&[F::Shipped, F::Delivered], false).derived_status(),
            OrderStatus::Shipped
        );
        assert_eq!(
            order(&[F::Delivered, F::Rejected], false).derived_status(),
            OrderStatus::Delivered
        );
        assert_eq!(
            order(&[F::Cancelled], false).derived_status(),
            OrderStatus::Cancelled
        );
        assert_eq!(
            order(&[F::Rejected], true).derived_status(),
            OrderStatus::Unfulfillable
        );
    }

    #[test]
    fn qty_bounds() {
        assert!(check_qty(0).is_err());
        assert!(check_qty(1).is_ok());
        assert!(check_qty(10_000).is_ok());
        assert!(check_qty(10_001).is_err());
    }
}
