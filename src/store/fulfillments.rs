//! Store commands that move fulfillments: supplier steps (acknowledge, reject, ship,
//! deliver), operator cancels and reroutes, and routing lines again when a supplier
//! drops them. Each writes the order, the positions, the events and the outbound
//! deliveries in one transaction.

use std::collections::BTreeSet;
use std::sync::Arc;

use redb::ReadableTable;
use serde::Serialize;
use serde_json::{Value, json};

use super::catalog::{decode_opt, refresh_totals};
use super::orders::{allocate, build_fulfillments, load_candidates, save_order};
use super::{Tx, codec, outbox};
use crate::domain::routing::{self, Routing};
use crate::domain::{
    Address, Deadlines, DeliveryBody, Fulfillment, FulfillmentLine, Order, Position, Receiver,
    Step, StepOutcome, Tracking, Want,
};
use crate::live::Live;
use crate::problem::Problem;

/// A step and what comes with it.
#[derive(Debug, Clone)]
pub struct StepInput {
    pub step: Step,
    pub reason: Option<String>,
    pub tracking: Option<Tracking>,
    /// Who asks: `supplier:acme`, `operator`, `marketd`.
    pub actor: String,
}

/// The order holding a fulfillment, and the fulfillment's index in it.
pub fn find(tx: &Tx<'_>, fulfillment: &str) -> Result<(Order, usize), Problem> {
    let order_id =
        tx.t.fulfillments
            .get(fulfillment)?
            .map(|v| v.value().to_owned())
            .ok_or_else(|| Problem::not_found(format!("no fulfillment {fulfillment:?}")))?;
    let order: Order = decode_opt(tx.t.orders.get(order_id.as_str())?)?
        .ok_or_else(|| Problem::internal(format!("order {order_id} is missing")))?;
    let index = order
        .fulfillments
        .iter()
        .position(|f| f.id == fulfillment)
        .ok_or_else(|| Problem::internal(format!("order {order_id} lost {fulfillment}")))?;
    Ok((order, index))
}

/// A supplier moves one of its fulfillments. Another supplier's is 403; an
/// impossible step is 409; a repeat changes nothing.
pub fn supplier_step(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    supplier: &str,
    fulfillment: &str,
    input: StepInput,
) -> Result<Order, Problem> {
    let (mut order, i) = find(tx, fulfillment)?;
    if order.fulfillments[i].supplier != supplier {
        return Err(Problem::forbidden(format!(
            "fulfillment {fulfillment} belongs to another supplier"
        )));
    }
    let step = input.step;
    if apply_step(tx, live, &mut order, i, input)? && step == Step::Reject {
        let lines = order.fulfillments[i].lines.clone();
        let routing = route_again(tx, &order, &lines, None)?;
        place_routing(tx, live, &mut order, routing, Some(i))?;
    }
    finish(tx, &mut order)?;
    Ok(order)
}

/// Takes a step on `order.fulfillments[i]`: status, timestamps, positions, event,
/// and `fulfillment.cancelled` to a supplier whose work is taken away. Returns
/// whether anything changed. Does not save the order.
pub fn apply_step(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    order: &mut Order,
    i: usize,
    input: StepInput,
) -> Result<bool, Problem> {
    let now_ms = tx.now_ms;
    let f = &mut order.fulfillments[i];
    let target = match f.status.step(input.step) {
        Ok(StepOutcome::AlreadyThere) => return Ok(false),
        Ok(StepOutcome::Moves(target)) => target,
        Err(why) => {
            return Err(Problem::conflict(
                "invalid-transition",
                "Impossible step",
                format!("fulfillment {}: {why}", f.id),
            ));
        }
    };
    let releases = f.status.holds_allocation() && !target.holds_allocation();
    f.status = target;
    match input.step {
        Step::Acknowledge => f.acknowledged_at_ms = Some(now_ms),
        Step::Ship => {
            f.shipped_at_ms = Some(now_ms);
            f.acknowledged_at_ms.get_or_insert(now_ms);
            f.tracking = input.tracking.clone();
        }
        Step::Deliver => f.delivered_at_ms = Some(now_ms),
        Step::Reject | Step::Cancel | Step::TimeOut => f.ended_reason = input.reason.clone(),
    }
    let f = f.clone();
    super::sla::settle(tx, live, &f, input.step)?;
    if releases {
        release_positions(tx, &f, input.step == Step::Ship)?;
        refresh_totals(tx, live, f.lines.iter().map(|l| l.sku.as_str()))?;
    }
    let mut data = json!({"fulfillment": f.id, "supplier": f.supplier});
    if let Some(reason) = &input.reason {
        data["reason"] = json!(reason);
    }
    if let Some(t) = &input.tracking {
        data["tracking"] = json!({"carrier": t.carrier, "tracking_number": t.tracking_number,
            "tracking_url": t.tracking_url});
    }
    tx.event(
        &format!("fulfillment.{}", target.as_str()),
        &input.actor,
        &order.id,
        data,
    )?;
    if matches!(input.step, Step::Cancel | Step::TimeOut) {
        outbox::enqueue(
            tx,
            live,
            Receiver::Supplier(f.supplier.clone()),
            "fulfillment.cancelled",
            json!({"fulfillment": f.id, "order": order.id, "reason": input.reason}),
        )?;
    }
    Ok(true)
}

/// Gives a fulfillment's units back from its supplier's position: shipped units
/// also leave `on_hand`; dropped ones become sellable again.
fn release_positions(tx: &mut Tx<'_>, f: &Fulfillment, shipped: bool) -> Result<(), Problem> {
    let positions = &mut tx.t.positions;
    for line in &f.lines {
        let key = (f.supplier.as_str(), line.sku.as_str());
        let mut p: Position = decode_opt(positions.get(key)?)?.unwrap_or_default();
        p.allocated = p.allocated.saturating_sub(line.qty);
        if shipped {
            p.on_hand = p.on_hand.saturating_sub(line.qty);
        }
        positions.insert(key, codec::encode(&p).as_slice())?;
    }
    Ok(())
}

/// Where `lines` could go now: approved suppliers with an offer and stock that have
/// had no fulfillment in this order yet (each supplier gets at most one per order),
/// or only `only`. Reads; writes nothing.
pub fn route_again(
    tx: &Tx<'_>,
    order: &Order,
    lines: &[FulfillmentLine],
    only: Option<&str>,
) -> Result<Routing, Problem> {
    let used: BTreeSet<&str> = order
        .fulfillments
        .iter()
        .map(|f| f.supplier.as_str())
        .collect();
    let wants: Vec<Want<'_>> = lines
        .iter()
        .map(|l| Want {
            sku: &l.sku,
            qty: l.qty,
        })
        .collect();
    let mut candidates = load_candidates(tx, &wants)?;
    for list in candidates.values_mut() {
        list.retain(|c| {
            !used.contains(c.supplier.as_str()) && only.is_none_or(|o| o == c.supplier)
        });
    }
    Ok(routing::route(&wants, |sku| {
        candidates.get(sku).cloned().unwrap_or_default()
    }))
}

/// Writes a routing into the order: new fulfillments (allocated, indexed, sent to
/// their suppliers), `fulfillment.rerouted` to the operator when lines moved away
/// from fulfillment `from`, and `order.unfulfillable` for what nobody could take.
pub fn place_routing(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    order: &mut Order,
    routing: Routing,
    from: Option<usize>,
) -> Result<(), Problem> {
    let fresh = build_fulfillments(tx, &routing.allocations)?;
    allocate(tx, &routing.allocations)?;
    for f in &fresh {
        tx.t.fulfillments.insert(f.id.as_str(), order.id.as_str())?;
        announce(tx, live, order, f)?;
    }
    if let (Some(i), false) = (from, fresh.is_empty()) {
        let old = &order.fulfillments[i];
        let data = json!({"order": order.id, "fulfillment": old.id, "from": old.supplier,
            "to": fresh.iter().map(|f| json!({"fulfillment": f.id, "supplier": f.supplier,
                "lines": f.lines})).collect::<Vec<_>>()});
        tx.event("fulfillment.rerouted", "marketd", &order.id, data.clone())?;
        outbox::enqueue(tx, live, Receiver::Operator, "fulfillment.rerouted", data)?;
    }
    if !routing.unplaced.is_empty() {
        let lines: Vec<Value> = routing
            .unplaced
            .iter()
            .map(|(sku, qty)| json!({"sku": sku, "qty": qty}))
            .collect();
        let data = json!({"order": order.id, "lines": lines});
        tx.event("order.unfulfillable", "marketd", &order.id, data.clone())?;
        outbox::enqueue(tx, live, Receiver::Operator, "order.unfulfillable", data)?;
        order.unfulfillable.extend(routing.unplaced);
    }
    let skus: BTreeSet<String> = routing.allocations.iter().map(|a| a.sku.clone()).collect();
    refresh_totals(tx, live, skus.iter().map(String::as_str))?;
    order.fulfillments.extend(fresh);
    Ok(())
}

/// `fulfillment.routed` in the audit trail.
#[derive(Serialize)]
struct Routed<'a> {
    fulfillment: &'a str,
    supplier: &'a str,
    lines: &'a [FulfillmentLine],
}

/// `fulfillment.created` as its supplier receives it.
#[derive(Serialize)]
pub(super) struct Created<'a> {
    fulfillment: &'a str,
    order: &'a str,
    lines: &'a [FulfillmentLine],
    ship_to: &'a Address,
    deadlines: Deadlines,
}

/// The data of `f`'s `fulfillment.created`: only what is fixed when it is made.
pub(super) fn created<'a>(order: &'a Order, f: &'a Fulfillment) -> Created<'a> {
    Created {
        fulfillment: &f.id,
        order: &order.id,
        lines: &f.lines,
        ship_to: &order.ship_to,
        deadlines: f.deadlines(),
    }
}

/// Records a new fulfillment's routing, sends it to its supplier and starts its
/// SLA clock.
pub fn announce(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    order: &Order,
    f: &Fulfillment,
) -> Result<(), Problem> {
    let routed = Routed {
        fulfillment: &f.id,
        supplier: &f.supplier,
        lines: &f.lines,
    };
    tx.event("fulfillment.routed", "marketd", &order.id, routed)?;
    // The body is rendered from the order when it is sent (the order is saved in
    // this transaction).
    let body = DeliveryBody::FulfillmentCreated {
        order: order.id.clone(),
        fulfillment: f.id.clone(),
    };
    let receiver = Receiver::Supplier(f.supplier.clone());
    outbox::enqueue_body(tx, live, receiver, "fulfillment.created", body)?;
    super::sla::track_new(tx, live, f)
}

/// Sets the order's status from its fulfillments and saves it.
pub fn finish(tx: &mut Tx<'_>, order: &mut Order) -> Result<(), Problem> {
    order.status = order.derived_status();
    order.updated_at_ms = tx.now_ms;
    save_order(tx, order)
}

/// The operator cancels what has not shipped; the suppliers are told.
pub fn cancel_order(tx: &mut Tx<'_>, live: &Arc<Live>, order_id: &str) -> Result<Order, Problem> {
    let mut order: Order = decode_opt(tx.t.orders.get(order_id)?)?
        .ok_or_else(|| Problem::not_found(format!("no order {order_id:?}")))?;
    let open: Vec<usize> = (0..order.fulfillments.len())
        .filter(|&i| order.fulfillments[i].status.holds_allocation())
        .collect();
    if open.is_empty() {
        return Err(Problem::conflict(
            "nothing-to-cancel",
            "Nothing to cancel",
            format!("order {order_id} has no fulfillment that has not shipped"),
        ));
    }
    for i in open {
        let input = StepInput {
            step: Step::Cancel,
            reason: Some("order cancelled".into()),
            tracking: None,
            actor: "operator".into(),
        };
        apply_step(tx, live, &mut order, i, input)?;
    }
    tx.event("order.cancelled", "operator", order_id, json!({}))?;
    finish(tx, &mut order)?;
    Ok(order)
}

/// The operator moves a fulfillment's lines to `to` (or the next supplier able to
/// take them). Refused, changing nothing, when no supplier can take every line.
pub fn reroute(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    fulfillment: &str,
    to: Option<&str>,
    actor: &str,
) -> Result<Order, Problem> {
    let (mut order, i) = find(tx, fulfillment)?;
    let f = order.fulfillments[i].clone();
    if !f.status.holds_allocation() {
        return Err(Problem::conflict(
            "invalid-transition",
            "Impossible step",
            format!(
                "fulfillment {fulfillment} is {}; only routed or acknowledged ones move",
                f.status.as_str()
            ),
        ));
    }
    let routing = route_again(tx, &order, &f.lines, to)?;
    if !routing.unplaced.is_empty() {
        return Err(Problem::conflict("no-supplier", "No supplier can take the lines",
            format!("no{} approved supplier without a fulfillment in this order has the stock for every line",
                to.map(|s| format!(" {s:?} as")).unwrap_or_default()))
            .with("lines", json!(routing.unplaced.iter().map(|(sku, qty)| json!({"sku": sku, "qty": qty})).collect::<Vec<_>>())));
    }
    let input = StepInput {
        step: Step::Cancel,
        reason: Some("rerouted by the operator".into()),
        tracking: None,
        actor: actor.to_owned(),
    };
    apply_step(tx, live, &mut order, i, input)?;
    place_routing(tx, live, &mut order, routing, Some(i))?;
    finish(tx, &mut order)?;
    Ok(order)
}
