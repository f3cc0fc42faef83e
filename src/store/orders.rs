//! Store commands for checkout: placing an order routes its lines to suppliers,
//! allocates their units, and records the idempotency key, all in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::ReadableTable;
use serde::Serialize;
use serde_json::json;

use super::catalog::{self, decode_opt};
use super::{Tx, codec, tables};
use crate::domain::routing::{self, Candidate};
use crate::domain::{
    Address, Customer, Fulfillment, FulfillmentLine, FulfillmentStatus, IdempotencyRecord, Order,
    OrderLine, OrderStatus, Position, Want,
};
use crate::ids;
use crate::live::{Live, Taken};
use crate::problem::Problem;

/// An order as the checkout hands it to the store: SKUs resolved, units taken.
pub struct NewOrder {
    pub channel: String,
    pub actor: String,
    pub idempotency_key: String,
    pub body_sha256: [u8; 32],
    pub customer: Customer,
    pub ship_to: Address,
    /// (sku, qty) in the order the storefront sent them.
    pub lines: Vec<(String, u32)>,
    /// The units taken in the reservation table for these lines; given back unless
    /// the order commits.
    pub taken: Taken,
}

#[derive(Debug, Clone)]
pub enum Placed {
    /// A new order, committed.
    Created(Order),
    /// The same key and body were seen before: that order, unchanged.
    Replayed(Order),
}

/// Looks up an earlier order under the same channel and key. `Err` when the key was
/// used for a different request.
pub fn find_replay(
    txn: &impl IdempotencyReader,
    channel: &str,
    key: &str,
    body_sha256: &[u8; 32],
) -> Result<Option<Order>, Problem> {
    let Some(record) = txn.idempotency(channel, key)? else {
        return Ok(None);
    };
    if &record.body_sha256 != body_sha256 {
        return Err(Problem::invalid(format!(
            "Idempotency-Key {key:?} was already used for a different request"
        ))
        .with("order", json!(record.order)));
    }
    txn.order(&record.order)?
        .map(Some)
        .ok_or_else(|| Problem::internal(format!("order {} is missing", record.order)))
}

/// Read access needed to answer a replayed request, from a read or write transaction.
pub trait IdempotencyReader {
    fn idempotency(&self, channel: &str, key: &str) -> Result<Option<IdempotencyRecord>, Problem>;
    fn order(&self, id: &str) -> Result<Option<Order>, Problem>;
}

impl IdempotencyReader for redb::ReadTransaction {
    fn idempotency(&self, channel: &str, key: &str) -> Result<Option<IdempotencyRecord>, Problem> {
        decode_opt(self.open_table(tables::IDEMPOTENCY)?.get((channel, key))?)
    }
    fn order(&self, id: &str) -> Result<Option<Order>, Problem> {
        decode_opt(self.open_table(tables::ORDERS)?.get(id)?)
    }
}

impl IdempotencyReader for Tx<'_> {
    fn idempotency(&self, channel: &str, key: &str) -> Result<Option<IdempotencyRecord>, Problem> {
        decode_opt(self.t.idempotency.get((channel, key))?)
    }
    fn order(&self, id: &str) -> Result<Option<Order>, Problem> {
        decode_opt(self.t.orders.get(id)?)
    }
}

/// `order.created` in the audit trail.
#[derive(Serialize)]
struct Created<'a> {
    channel: &'a str,
    lines: &'a [OrderLine],
    total: u64,
}

/// Places an order: routes, allocates, records. Refuses (writing nothing) when the
/// suppliers' committed positions cannot cover a line any more.
pub fn place_order(tx: &mut Tx<'_>, live: &Arc<Live>, new: NewOrder) -> Result<Placed, Problem> {
    if let Some(order) = find_replay(&*tx, &new.channel, &new.idempotency_key, &new.body_sha256)? {
        return Ok(Placed::Replayed(order));
    }
    let mut lines = Vec::with_capacity(new.lines.len());
    let mut total: u64 = 0;
    {
        for (sku, qty) in &new.lines {
            let record = catalog::sku(tx, sku)?
                .ok_or_else(|| Problem::invalid(format!("unknown SKU {sku:?}")))?;
            total = (record.price)
                .checked_mul(*qty as u64)
                .and_then(|v| v.checked_add(total))
                .ok_or_else(|| Problem::invalid("order total is too large"))?;
            lines.push(OrderLine {
                sku: sku.clone(),
                qty: *qty,
                price: record.price,
            });
        }
    }
    let wants: Vec<Want<'_>> = new
        .lines
        .iter()
        .map(|(sku, qty)| Want { sku, qty: *qty })
        .collect();
    let candidates = load_candidates(tx, &wants)?;
    let routed = routing::route(&wants, |sku| {
        candidates.get(sku).cloned().unwrap_or_default()
    });
    if !routed.unplaced.is_empty() {
        // One entry per SKU, however many lines named it.
        let mut short_by_sku: Vec<(&str, u32)> = Vec::new();
        for (sku, short) in &routed.unplaced {
            match short_by_sku.iter_mut().find(|(s, _)| s == sku) {
                Some((_, total)) => *total += short,
                None => short_by_sku.push((sku, *short)),
            }
        }
        let report: Vec<_> = short_by_sku
            .iter()
            .map(|&(sku, short)| {
                let requested: u32 = wants.iter().filter(|w| w.sku == sku).map(|w| w.qty).sum();
                json!({"sku": sku, "requested": requested, "available": requested - short})
            })
            .collect();
        return Err(Problem::conflict(
            "insufficient-stock",
            "Insufficient stock",
            "suppliers' latest reports no longer cover these lines",
        )
        .with("lines", json!(report)));
    }
    let order_id = ids::new(ids::Kind::Order, tx.now_ms);
    let fulfillments = build_fulfillments(tx, &routed.allocations)?;
    let order = Order {
        id: order_id.clone(),
        channel: new.channel.clone(),
        status: OrderStatus::Routed,
        created_at_ms: tx.now_ms,
        updated_at_ms: tx.now_ms,
        customer: new.customer,
        ship_to: new.ship_to,
        lines,
        total,
        fulfillments,
        unfulfillable: Vec::new(),
    };
    allocate(tx, &routed.allocations)?;
    save_order(tx, &order)?;
    {
        let index = &mut tx.t.fulfillments;
        for f in &order.fulfillments {
            index.insert(f.id.as_str(), order_id.as_str())?;
        }
        let record = IdempotencyRecord {
            order: order_id.clone(),
            body_sha256: new.body_sha256,
        };
        tx.t.idempotency.insert(
            (new.channel.as_str(), new.idempotency_key.as_str()),
            codec::encode(&record).as_slice(),
        )?;
    }
    let created = Created {
        channel: &order.channel,
        lines: &order.lines,
        total: order.total,
    };
    tx.event("order.created", &new.actor, &order_id, created)?;
    for f in &order.fulfillments {
        super::fulfillments::announce(tx, live, &order, f)?;
    }
    let taken = new.taken;
    tx.after_commit(move || taken.allocate());
    Ok(Placed::Created(order))
}

pub fn save_order(tx: &mut Tx<'_>, order: &Order) -> Result<(), Problem> {
    tx.t.orders
        .insert(order.id.as_str(), codec::encode(order).as_slice())?;
    Ok(())
}

/// Every approved supplier with an offer for each SKU, with its unallocated units.
pub(super) fn load_candidates(
    tx: &Tx<'_>,
    wants: &[Want<'_>],
) -> Result<BTreeMap<String, Vec<Candidate>>, Problem> {
    let mut out: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for want in wants {
        if out.contains_key(want.sku) {
            continue;
        }
        let mut list = Vec::new();
        for offer in catalog::offers_of(tx, want.sku)?.iter() {
            if !catalog::is_approved(tx, &offer.supplier)? {
                continue;
            }
            let position = tx.t.positions.get((offer.supplier.as_str(), want.sku))?;
            let p: Position = decode_opt(position)?.unwrap_or_default();
            list.push(Candidate {
                supplier: offer.supplier.clone(),
                supplier_sku: offer.supplier_sku.clone(),
                priority: offer.priority,
                unallocated: p.unallocated(),
            });
        }
        out.insert(want.sku.to_owned(), list);
    }
    Ok(out)
}

/// One fulfillment per supplier, in the order suppliers were first chosen, with
/// deadlines from the supplier's SLA as it is now.
pub(super) fn build_fulfillments(
    tx: &Tx<'_>,
    allocations: &[routing::Allocation],
) -> Result<Vec<Fulfillment>, Problem> {
    let mut out: Vec<Fulfillment> = Vec::new();
    for a in allocations {
        let line = FulfillmentLine {
            sku: a.sku.clone(),
            supplier_sku: a.supplier_sku.clone(),
            qty: a.qty,
        };
        if let Some(f) = out.iter_mut().find(|f| f.supplier == a.supplier) {
            f.lines.push(line);
            continue;
        }
        let s = catalog::supplier(tx, &a.supplier)?
            .ok_or_else(|| Problem::internal(format!("supplier {} vanished", a.supplier)))?;
        let now = tx.now_ms;
        out.push(Fulfillment {
            id: ids::new(ids::Kind::Fulfillment, now),
            supplier: a.supplier.clone(),
            status: FulfillmentStatus::Routed,
            lines: vec![line],
            ack_by_ms: now + s.sla.ack_within_s * 1000,
            ship_by_ms: now + s.sla.ship_within_s * 1000,
            deliver_by_ms: now + s.sla.deliver_within_s * 1000,
            tracking: None,
            created_at_ms: now,
            acknowledged_at_ms: None,
            shipped_at_ms: None,
            delivered_at_ms: None,
            ended_reason: None,
        });
    }
    Ok(out)
}

pub(super) fn allocate(
    tx: &mut Tx<'_>,
    allocations: &[routing::Allocation],
) -> Result<(), Problem> {
    let positions = &mut tx.t.positions;
    for a in allocations {
        let key = (a.supplier.as_str(), a.sku.as_str());
        let mut p: Position = decode_opt(positions.get(key)?)?.unwrap_or_default();
        p.allocated += a.qty;
        positions.insert(key, codec::encode(&p).as_slice())?;
    }
    Ok(())
}
