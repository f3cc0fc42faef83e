//! Store commands for SLAs: a new fulfillment's first deadline and its scorecard
//! history, settling deadlines when steps are taken, and firing the ones that pass.
//! Deadlines live in a due index written in the same transaction as the
//! fulfillment; firing removes the entry and records the breach in one
//! transaction, so each deadline fires once, across restarts too.

use std::sync::Arc;

use redb::ReadableTable;
use serde_json::json;

use super::catalog::decode_opt;
use super::fulfillments::{StepInput, apply_step, find, finish, place_routing, route_again};
use super::{Tx, codec, outbox};
use crate::clock::{Millis, format_rfc3339};
use crate::domain::{
    AckTimeout, Breach, Fulfillment, FulfillmentRecord, Order, Receiver, Stage, Step,
};
use crate::live::Live;
use crate::problem::Problem;
use crate::schedule::DeadlineKey;

fn key(f: &Fulfillment, stage: Stage) -> DeadlineKey {
    (f.deadline_ms(stage), f.id.clone(), stage as u8)
}

/// Starts the clock on a new fulfillment: its acknowledgement deadline and its history record.
pub fn track_new(tx: &mut Tx<'_>, live: &Arc<Live>, f: &Fulfillment) -> Result<(), Problem> {
    make_due(tx, live, f, Stage::Ack)?; // A new fulfillment has no breach yet.
    let record = FulfillmentRecord {
        status: f.status,
        created_at_ms: f.created_at_ms,
        ack_by_ms: f.ack_by_ms,
        ship_by_ms: f.ship_by_ms,
        acknowledged_at_ms: None,
        shipped_at_ms: None,
        breached: [false; 3],
    };
    save_record(tx, f, &record)
}

/// Makes a stage's deadline due unless it already passed and fired.
/// A fulfillment has one pending deadline at a time: the next stage's is armed when
/// the step before it is taken or its deadline fires (SLAs are ordered
/// ack ≤ ship ≤ deliver), so a million fulfillments are a million entries.
fn arm(tx: &mut Tx<'_>, live: &Arc<Live>, f: &Fulfillment, stage: Stage) -> Result<(), Problem> {
    if tx.t.breaches.get((f.id.as_str(), stage as u8))?.is_some() {
        return Ok(()); // It passed already, and fired.
    }
    make_due(tx, live, f, stage)
}

/// Puts a stage's deadline in the due index, and once committed in the schedule.
fn make_due(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    f: &Fulfillment,
    stage: Stage,
) -> Result<(), Problem> {
    let k = key(f, stage);
    tx.t.deadlines.insert((k.0, k.1.as_str(), k.2), ())?;
    let live = live.clone();
    tx.after_commit(move || live.deadlines.add(k));
    Ok(())
}

fn disarm(tx: &mut Tx<'_>, live: &Arc<Live>, f: &Fulfillment, stage: Stage) -> Result<(), Problem> {
    let k = key(f, stage);
    if tx.t.deadlines.remove((k.0, k.1.as_str(), k.2))?.is_some() {
        let live = live.clone();
        tx.after_commit(move || live.deadlines.remove(&k));
    }
    Ok(())
}

/// The stage whose deadline follows `stage`'s.
fn after(stage: Stage) -> Option<Stage> {
    match stage {
        Stage::Ack => Some(Stage::Ship),
        Stage::Ship => Some(Stage::Deliver),
        Stage::Deliver => None,
    }
}

fn save_record(tx: &mut Tx<'_>, f: &Fulfillment, r: &FulfillmentRecord) -> Result<(), Problem> {
    tx.t.supplier_history.insert(
        (f.supplier.as_str(), f.created_at_ms, f.id.as_str()),
        codec::encode(r).as_slice(),
    )?;
    Ok(())
}

fn load_record(tx: &Tx<'_>, f: &Fulfillment) -> Result<Option<FulfillmentRecord>, Problem> {
    decode_opt(
        tx.t.supplier_history
            .get((f.supplier.as_str(), f.created_at_ms, f.id.as_str()))?,
    )
}

/// After fulfillment `f` took `step`: the deadlines it met (or that no longer
/// apply) are removed, their open breaches closed, and its history updated.
pub fn settle(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    f: &Fulfillment,
    step: Step,
) -> Result<(), Problem> {
    let stages: &[Stage] = match step {
        Step::Acknowledge => &[Stage::Ack],
        Step::Ship => &[Stage::Ack, Stage::Ship],
        Step::Deliver => &[Stage::Deliver],
        Step::Reject | Step::Cancel | Step::TimeOut => &Stage::ALL,
    };
    for &stage in stages {
        disarm(tx, live, f, stage)?;
        close_breach(tx, f, stage)?;
    }
    let next = match step {
        Step::Acknowledge if f.shipped_at_ms.is_none() => Some(Stage::Ship),
        Step::Ship => Some(Stage::Deliver),
        _ => None,
    };
    if let Some(stage) = next {
        arm(tx, live, f, stage)?;
    }
    if let Some(mut r) = load_record(tx, f)? {
        r.status = f.status;
        r.acknowledged_at_ms = f.acknowledged_at_ms;
        r.shipped_at_ms = f.shipped_at_ms;
        save_record(tx, f, &r)?;
    }
    Ok(())
}

fn close_breach(tx: &mut Tx<'_>, f: &Fulfillment, stage: Stage) -> Result<(), Problem> {
    let existing: Option<Breach> = decode_opt(tx.t.breaches.get((f.id.as_str(), stage as u8))?)?;
    let Some(mut breach) = existing.filter(|b| b.closed_at_ms.is_none()) else {
        return Ok(());
    };
    breach.closed_at_ms = Some(tx.now_ms);
    save_breach(tx, &breach)
}

/// Stores a breach that just opened (a new one) or just closed (an open one), and
/// keeps its supplier's open count in step.
fn save_breach(tx: &mut Tx<'_>, b: &Breach) -> Result<(), Problem> {
    let key = (b.fulfillment.as_str(), b.stage as u8);
    tx.t.breaches.insert(key, codec::encode(b).as_slice())?;
    let count =
        tx.t.open_breaches
            .get(b.supplier.as_str())?
            .map_or(0, |v| v.value());
    let count = match b.closed_at_ms {
        None => count + 1,
        Some(_) => count.saturating_sub(1),
    };
    tx.t.open_breaches.insert(b.supplier.as_str(), count)?;
    Ok(())
}

/// Fires deadlines that passed. One that is no longer in the due index (its step
/// was taken, or it already fired) is skipped. Returns how many breached.
pub fn fire(tx: &mut Tx<'_>, live: &Arc<Live>, due: Vec<DeadlineKey>) -> Result<usize, Problem> {
    let mut breached = 0;
    // A failure abandons the whole batch (a deadline may have written part of its
    // breach); the SLA timer then fires them one by one (`crate::sla`).
    for (at, fulfillment, stage) in due {
        breached += fire_one(tx, live, at, &fulfillment, stage)? as usize;
    }
    Ok(breached)
}

fn fire_one(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    at: Millis,
    fulfillment: &str,
    stage: u8,
) -> Result<bool, Problem> {
    if tx.t.deadlines.remove((at, fulfillment, stage))?.is_none() {
        return Ok(false); // Met, or fired already.
    }
    let Some(stage) = Stage::from_u8(stage) else {
        return Ok(false);
    };
    let (mut order, i) = match find(tx, fulfillment) {
        Ok(found) => found,
        Err(p) if p.status == 404 => return Ok(false), // Nothing to breach.
        Err(p) => return Err(p),
    };
    if !record_breach(tx, live, &order, i, stage)? {
        return Ok(false);
    }
    let f = &order.fulfillments[i];
    let still_due = match stage {
        Stage::Ack => f.status.holds_allocation(),
        _ => !f.status.is_dropped() && f.delivered_at_ms.is_none(),
    };
    if let (Some(next), true) = (after(stage), still_due) {
        let f = f.clone();
        arm(tx, live, &f, next)?;
    }
    reroute_if_silent(tx, live, &mut order, i, stage)?;
    Ok(true)
}

/// Records the breach once per stage: event, scorecard, operator alert.
fn record_breach(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    order: &Order,
    i: usize,
    stage: Stage,
) -> Result<bool, Problem> {
    let f = &order.fulfillments[i];
    if tx.t.breaches.get((f.id.as_str(), stage as u8))?.is_some() {
        return Ok(false);
    }
    let breach = Breach {
        fulfillment: f.id.clone(),
        order: order.id.clone(),
        supplier: f.supplier.clone(),
        stage,
        deadline_ms: f.deadline_ms(stage),
        detected_at_ms: tx.now_ms,
        closed_at_ms: None,
    };
    save_breach(tx, &breach)?;
    if let Some(mut r) = load_record(tx, f)? {
        r.breached[stage as usize] = true;
        save_record(tx, f, &r)?;
    }
    let data = json!({"fulfillment": f.id, "supplier": f.supplier, "stage": stage.as_str(),
        "deadline": format_rfc3339(breach.deadline_ms)});
    tx.event("sla.breached", "marketd", &order.id, data.clone())?;
    outbox::enqueue(tx, live, Receiver::Operator, "sla.breached", data)?;
    Ok(true)
}

/// An unacknowledged fulfillment of a supplier set to `reroute` is timed out and
/// its lines go to the next supplier.
fn reroute_if_silent(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    order: &mut Order,
    i: usize,
    stage: Stage,
) -> Result<(), Problem> {
    let f = &order.fulfillments[i];
    if stage != Stage::Ack || f.acknowledged_at_ms.is_some() || !f.status.holds_allocation() {
        return Ok(());
    }
    let supplier = super::catalog::supplier(tx, &f.supplier)?;
    if supplier.is_none_or(|s| s.on_ack_timeout != AckTimeout::Reroute) {
        return Ok(());
    }
    let input = StepInput {
        step: Step::TimeOut,
        reason: Some("not acknowledged by ack_by".into()),
        tracking: None,
        actor: "marketd".into(),
    };
    apply_step(tx, live, order, i, input)?;
    let lines = order.fulfillments[i].lines.clone();
    let routing = route_again(tx, order, &lines, None)?;
    place_routing(tx, live, order, routing, Some(i))?;
    finish(tx, order)
}
