//! Records as the API shows them. Secrets appear only where the contract says:
//! a supplier's webhook secret on creation and rotation, a channel's api key and
//! secret on creation.

use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::format_rfc3339;
use crate::domain::{
    Address, Channel, Customer, Deadlines, Delivery, Event, Fulfillment, FulfillmentLine, Offer,
    Order, OrderLine, Sku, Supplier, Tracking,
};

pub fn supplier(s: &Supplier, show_secret: bool) -> Value {
    let mut v = json!({
        "id": s.id, "name": s.name, "webhook_url": s.webhook_url,
        "sla": {"ack_within_s": s.sla.ack_within_s, "ship_within_s": s.sla.ship_within_s,
                "deliver_within_s": s.sla.deliver_within_s},
        "on_ack_timeout": s.on_ack_timeout, "commission_bps": s.commission_bps,
        "breach_penalty": s.breach_penalty, "status": s.status.as_str(),
        "created_at": format_rfc3339(s.created_at_ms), "updated_at": format_rfc3339(s.updated_at_ms),
    });
    if show_secret {
        v["webhook_secret"] = json!(s.webhook_secret);
    }
    v
}

pub fn sku(s: &Sku) -> Value {
    json!({
        "sku": s.sku, "product": s.product, "title": s.title, "attributes": s.attributes,
        "price": s.price, "safety_stock": s.safety_stock,
        "created_at": format_rfc3339(s.created_at_ms), "updated_at": format_rfc3339(s.updated_at_ms),
    })
}

pub fn offer(o: &Offer) -> Value {
    json!({"sku": o.sku, "supplier": o.supplier, "supplier_sku": o.supplier_sku, "priority": o.priority})
}

pub fn channel(c: &Channel, api_key: Option<&str>) -> Value {
    let mut v = json!({
        "id": c.id, "name": c.name, "webhook_url": c.webhook_url,
        "buffer_units": c.buffer_units, "buffer_pct": c.buffer_pct,
        "created_at": format_rfc3339(c.created_at_ms), "updated_at": format_rfc3339(c.updated_at_ms),
    });
    if let Some(key) = api_key {
        v["api_key"] = json!(key);
        v["webhook_secret"] = json!(c.webhook_secret);
    }
    v
}

pub fn event(e: &Event) -> Value {
    let data: Value = serde_json::from_str(&e.data_json).unwrap_or(Value::Null);
    json!({"seq": e.seq, "at": format_rfc3339(e.at_ms), "type": e.kind, "actor": e.actor,
           "subject": e.subject, "data": data})
}

/// An order as the API shows it. Serialized straight from the record, without an
/// intermediate `Value` tree: it is the answer to every placed order.
#[derive(Serialize)]
pub struct OrderView<'a> {
    id: &'a str,
    channel: &'a str,
    status: &'static str,
    created_at: String,
    updated_at: String,
    customer: &'a Customer,
    ship_to: &'a Address,
    lines: &'a [OrderLine],
    total: u64,
    fulfillments: Vec<FulfillmentView<'a>>,
    unfulfillable: Vec<SkuQty<'a>>,
}

#[derive(Serialize)]
struct SkuQty<'a> {
    sku: &'a str,
    qty: u32,
}

#[derive(Serialize)]
struct FulfillmentView<'a> {
    id: &'a str,
    supplier: &'a str,
    status: &'static str,
    lines: &'a [FulfillmentLine],
    deadlines: Deadlines,
    reason: Option<&'a str>,
    tracking: Option<&'a Tracking>,
}

fn fulfillment(f: &Fulfillment) -> FulfillmentView<'_> {
    FulfillmentView {
        id: &f.id,
        supplier: &f.supplier,
        status: f.status.as_str(),
        lines: &f.lines,
        deadlines: f.deadlines(),
        reason: f.ended_reason.as_deref(),
        tracking: f.tracking.as_ref(),
    }
}

pub fn order(o: &Order) -> OrderView<'_> {
    OrderView {
        id: &o.id,
        channel: &o.channel,
        status: o.status.as_str(),
        created_at: format_rfc3339(o.created_at_ms),
        updated_at: format_rfc3339(o.updated_at_ms),
        customer: &o.customer,
        ship_to: &o.ship_to,
        lines: &o.lines,
        total: o.total,
        fulfillments: o.fulfillments.iter().map(fulfillment).collect(),
        unfulfillable: o
            .unfulfillable
            .iter()
            .map(|(sku, qty)| SkuQty { sku, qty: *qty })
            .collect(),
    }
}

/// A delivery with the body it sends (see [`crate::store::outbox::render_body`]).
pub fn delivery(d: &Delivery, body: &str) -> Value {
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    json!({
        "id": d.id, "type": d.kind, "receiver": d.receiver.describe(), "status": d.status.as_str(),
        "attempt_count": d.attempt_count,
        "attempts": d.attempts.iter().map(|a| json!({"at": format_rfc3339(a.at_ms),
            "status": a.status, "error": a.error})).collect::<Vec<_>>(),
        "next_attempt_at": (d.status == crate::domain::DeliveryStatus::Pending)
            .then(|| format_rfc3339(d.next_attempt_at_ms)),
        "created_at": format_rfc3339(d.created_at_ms), "body": body,
    })
}
