//! Suppliers, SKUs, offers, channels and stock positions, and the checks on what an
//! operator may set them to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::UNITS_MAX;
use crate::clock::Millis;
use crate::problem::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SupplierStatus {
    Pending,
    Approved,
    Suspended,
}

impl SupplierStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Suspended => "suspended",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckTimeout {
    Alert,
    Reroute,
}

/// How long a supplier has for each step of a fulfillment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    pub ack_within_s: u64,
    pub ship_within_s: u64,
    pub deliver_within_s: u64,
}

/// Longest SLA step accepted: one year.
pub const SLA_STEP_S_MAX: u64 = 366 * 24 * 3600;

/// What an operator sends to create or update a supplier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierInput {
    pub name: String,
    #[serde(default)]
    pub webhook_url: Option<String>,
    pub sla: Sla,
    #[serde(default = "default_ack_timeout")]
    pub on_ack_timeout: AckTimeout,
    #[serde(default)]
    pub commission_bps: u32,
    #[serde(default)]
    pub breach_penalty: u64,
}

fn default_ack_timeout() -> AckTimeout {
    AckTimeout::Alert
}

/// Most basis points a commission may take: all of the price.
pub const COMMISSION_BPS_MAX: u32 = 10_000;
/// Longest free-text field (names, titles, reasons).
pub const TEXT_LEN_MAX: usize = 1_000;

impl SupplierInput {
    pub fn validate(&self) -> Result<(), Problem> {
        check_text("name", &self.name)?;
        if let Some(url) = &self.webhook_url {
            check_url("webhook_url", url)?;
        }
        for (name, v) in [
            ("sla.ack_within_s", self.sla.ack_within_s),
            ("sla.ship_within_s", self.sla.ship_within_s),
            ("sla.deliver_within_s", self.sla.deliver_within_s),
        ] {
            if v == 0 || v > SLA_STEP_S_MAX {
                return Err(Problem::invalid(format!(
                    "{name} must be 1 to {SLA_STEP_S_MAX} seconds, got {v}"
                )));
            }
        }
        let sla = &self.sla;
        if !(sla.ack_within_s <= sla.ship_within_s && sla.ship_within_s <= sla.deliver_within_s) {
            return Err(Problem::invalid(
                "sla steps must not shrink: ack_within_s <= ship_within_s <= deliver_within_s",
            ));
        }
        if self.commission_bps > COMMISSION_BPS_MAX {
            return Err(Problem::invalid(format!(
                "commission_bps must be 0 to {COMMISSION_BPS_MAX}, got {}",
                self.commission_bps
            )));
        }
        if self.breach_penalty > MONEY_MAX {
            return Err(Problem::invalid(format!(
                "breach_penalty must be at most {MONEY_MAX}"
            )));
        }
        Ok(())
    }
}

/// Largest amount of money accepted in one field, in minor units (10^13: a hundred
/// billion in a two-decimal currency). Keeps every sum far from u64 overflow.
pub const MONEY_MAX: u64 = 10_000_000_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Supplier {
    pub id: String,
    pub name: String,
    pub webhook_url: Option<String>,
    pub sla: Sla,
    pub on_ack_timeout: AckTimeout,
    pub commission_bps: u32,
    pub breach_penalty: u64,
    pub status: SupplierStatus,
    pub webhook_secret: String,
    /// The secret before the last rotation and until when it is still accepted on
    /// inbound webhooks, so a supplier can switch without losing any.
    pub previous_webhook_secret: Option<(String, Millis)>,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
}

/// How long a rotated-out webhook secret is still accepted: one day.
pub const PREVIOUS_SECRET_GRACE_MS: Millis = 24 * 3600 * 1000;

impl Supplier {
    /// The previous webhook secret, if it is still accepted at `now_ms`.
    pub fn previous_secret_at(&self, now_ms: Millis) -> Option<&str> {
        self.previous_webhook_secret
            .as_ref()
            .filter(|(_, until_ms)| now_ms < *until_ms)
            .map(|(secret, _)| secret.as_str())
    }

    pub fn apply(&mut self, input: SupplierInput, now_ms: Millis) {
        self.name = input.name;
        self.webhook_url = input.webhook_url;
        self.sla = input.sla;
        self.on_ack_timeout = input.on_ack_timeout;
        self.commission_bps = input.commission_bps;
        self.breach_penalty = input.breach_penalty;
        self.updated_at_ms = now_ms;
    }
}

/// What an operator sends to create or update a SKU.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuInput {
    pub product: String,
    pub title: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub price: u64,
    #[serde(default)]
    pub safety_stock: u32,
}

/// Most attributes one SKU may carry.
pub const ATTRIBUTES_MAX: usize = 64;

impl SkuInput {
    pub fn validate(&self) -> Result<(), Problem> {
        crate::ids::check_operator_id(&self.product)
            .map_err(|e| Problem::invalid(format!("product: {e}")))?;
        check_text("title", &self.title)?;
        if self.attributes.len() > ATTRIBUTES_MAX {
            return Err(Problem::invalid(format!(
                "at most {ATTRIBUTES_MAX} attributes, got {}",
                self.attributes.len()
            )));
        }
        for (k, v) in &self.attributes {
            check_text("attribute name", k)?;
            if v.len() > TEXT_LEN_MAX {
                return Err(Problem::invalid(format!("attribute {k:?} is too long")));
            }
        }
        if self.price > MONEY_MAX {
            return Err(Problem::invalid(format!(
                "price must be at most {MONEY_MAX}"
            )));
        }
        check_units("safety_stock", self.safety_stock as u64)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sku {
    pub sku: String,
    pub product: String,
    pub title: String,
    pub attributes: BTreeMap<String, String>,
    pub price: u64,
    pub safety_stock: u32,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferInput {
    pub supplier_sku: String,
    #[serde(default)]
    pub priority: u32,
}

impl OfferInput {
    pub fn validate(&self) -> Result<(), Problem> {
        crate::ids::check_operator_id(&self.supplier_sku)
            .map_err(|e| Problem::invalid(format!("supplier_sku: {e}")))
    }
}

/// A supplier can fulfil a SKU under its own code; lower priority is tried first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Offer {
    pub sku: String,
    pub supplier: String,
    pub supplier_sku: String,
    pub priority: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub name: String,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub buffer_units: u32,
    #[serde(default)]
    pub buffer_pct: u32,
}

impl ChannelInput {
    pub fn validate(&self) -> Result<(), Problem> {
        check_text("name", &self.name)?;
        if let Some(url) = &self.webhook_url {
            check_url("webhook_url", url)?;
        }
        check_units("buffer_units", self.buffer_units as u64)?;
        if self.buffer_pct > 100 {
            return Err(Problem::invalid(format!(
                "buffer_pct must be 0 to 100, got {}",
                self.buffer_pct
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub webhook_url: Option<String>,
    pub buffer_units: u32,
    pub buffer_pct: u32,
    pub api_key_hash: [u8; 32],
    pub webhook_secret: String,
    pub created_at_ms: Millis,
    pub updated_at_ms: Millis,
}

/// The units a channel never sees of a SKU with `on_hand` units:
/// `max(buffer_units, ceil(on_hand * buffer_pct / 100))`.
pub fn channel_buffer(buffer_units: u32, buffer_pct: u32, on_hand: u64) -> u64 {
    let by_pct = (on_hand * buffer_pct as u64).div_ceil(100);
    by_pct.max(buffer_units as u64)
}

/// One supplier's stock of one SKU, as it last reported it, and what marketd has
/// allocated to it since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub on_hand: u32,
    pub allocated: u32,
    /// When the supplier's count was true (its `as_of`), ms since the epoch.
    pub as_of_ms: Millis,
}

impl Position {
    /// Units of this position routing may still take.
    pub fn unallocated(&self) -> u32 {
        self.on_hand.saturating_sub(self.allocated)
    }
}

pub fn check_units(name: &str, v: u64) -> Result<(), Problem> {
    if v > UNITS_MAX {
        return Err(Problem::invalid(format!(
            "{name} must be at most {UNITS_MAX}, got {v}"
        )));
    }
    Ok(())
}

pub fn check_text(name: &str, v: &str) -> Result<(), Problem> {
    if v.trim().is_empty() || v.len() > TEXT_LEN_MAX {
        return Err(Problem::invalid(format!(
            "{name} must be 1 to {TEXT_LEN_MAX} bytes and not blank"
        )));
    }
    Ok(())
}

/// Webhook targets are plain http(s) URLs with a host.
pub fn check_url(name: &str, v: &str) -> Result<(), Problem> {
    let ok = v.len() <= 2048
        && v.parse::<hyper::Uri>().ok().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
        });
    if !ok {
        return Err(Problem::invalid(format!(
            "{name} must be an http:// or https:// URL with a host, got {v:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_buffer_is_the_larger_of_units_and_rounded_up_percent() {
        assert_eq!(channel_buffer(2, 0, 12), 2);
        assert_eq!(channel_buffer(0, 10, 12), 2); // ceil(1.2)
        assert_eq!(channel_buffer(0, 10, 10), 1);
        assert_eq!(channel_buffer(5, 10, 12), 5);
        assert_eq!(channel_buffer(0, 0, 0), 0);
    }

    #[test]
    fn supplier_input_checks_ranges() {
        let good = SupplierInput {
            name: "Acme".into(),
            webhook_url: Some("http://127.0.0.1:9001/hooks".into()),
            sla: Sla {
                ack_within_s: 1,
                ship_within_s: 2,
                deliver_within_s: 3,
            },
            on_ack_timeout: AckTimeout::Alert,
            commission_bps: 1500,
            breach_penalty: 500,
        };
        assert!(good.validate().is_ok());
        let mut bad = good.clone();
        bad.commission_bps = 10_001;
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.sla.ack_within_s = 0;
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.sla.ship_within_s = 10; // after deliver_within_s
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.webhook_url = Some("ftp://x".into());
        assert!(bad.validate().is_err());
        let mut bad = good;
        bad.name = "  ".into();
        assert!(bad.validate().is_err());
    }
}
