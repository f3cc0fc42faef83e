//! The transactional outbox: a delivery is written in the same transaction as the
//! change that causes it, so a committed change always gets its webhook, and a
//! rolled-back one never does. The dispatcher sends what is due and records each
//! attempt back here.

use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable};
use serde::Serialize;
use serde_json::json;

use super::catalog::decode_opt;
use super::writer::to_json;
use super::{Tx, codec, fulfillments, tables};
use crate::clock::{Millis, format_rfc3339};
use crate::domain::{
    ATTEMPTS_KEPT_MAX, Attempt, Delivery, DeliveryBody, DeliveryStatus, Order, Receiver, Retry,
    next_retry,
};
use crate::ids;
use crate::live::Live;
use crate::problem::Problem;

/// The JSON body every outbound webhook carries.
#[derive(Serialize)]
struct Envelope<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: T,
    timestamp: String,
}

/// Queues `kind` with `data` for `receiver`, due at once.
pub fn enqueue(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    receiver: Receiver,
    kind: &str,
    data: impl Serialize,
) -> Result<String, Problem> {
    let body = envelope(kind, data, tx.now_ms)?;
    enqueue_body(tx, live, receiver, kind, DeliveryBody::Json(body))
}

/// `{"type", "data", "timestamp"}` as JSON text.
fn envelope(kind: &str, data: impl Serialize, at_ms: Millis) -> Result<String, Problem> {
    to_json(&Envelope {
        kind,
        data,
        timestamp: format_rfc3339(at_ms),
    })
}

/// Queues `kind` for `receiver`, due at once, with a body already decided.
pub fn enqueue_body(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    receiver: Receiver,
    kind: &str,
    body: DeliveryBody,
) -> Result<String, Problem> {
    let id = ids::new(ids::Kind::Delivery, tx.now_ms);
    let delivery = Delivery {
        id: id.clone(),
        receiver,
        kind: kind.to_owned(),
        body,
        status: DeliveryStatus::Pending,
        attempt_count: 0,
        attempts: Vec::new(),
        next_attempt_at_ms: tx.now_ms,
        created_at_ms: tx.now_ms,
    };
    save(tx, &delivery)?;
    // No event of its own: the change that queues it writes one in this transaction.
    tx.t.outbox_due.insert((tx.now_ms, id.as_str()), ())?;
    let live = live.clone();
    tx.after_commit(move || {
        live.deliveries.moved(None, Some(DeliveryStatus::Pending));
        live.deliveries.wake.notify_one();
    });
    Ok(id)
}

fn save(tx: &mut Tx<'_>, d: &Delivery) -> Result<(), Problem> {
    tx.t.outbox
        .insert(d.id.as_str(), codec::encode(d).as_slice())?;
    Ok(())
}

fn load(tx: &Tx<'_>, id: &str) -> Result<Delivery, Problem> {
    decode_opt(tx.t.outbox.get(id)?)?
        .ok_or_else(|| Problem::not_found(format!("no delivery {id:?}")))
}

/// The JSON text a delivery sends. A `fulfillment.created` is rendered from its
/// order as committed; the order missing is a broken store, said as an error.
pub fn render_body(txn: &ReadTransaction, d: &Delivery) -> Result<String, Problem> {
    let (order_id, fulfillment_id) = match &d.body {
        DeliveryBody::Json(text) => return Ok(text.clone()),
        DeliveryBody::FulfillmentCreated { order, fulfillment } => (order, fulfillment),
    };
    let order: Order = decode_opt(txn.open_table(tables::ORDERS)?.get(order_id.as_str())?)?
        .ok_or_else(|| Problem::internal(format!("delivery {}: no order {order_id}", d.id)))?;
    let f = (order.fulfillments.iter())
        .find(|f| &f.id == fulfillment_id)
        .ok_or_else(|| {
            Problem::internal(format!(
                "delivery {}: order {order_id} has no {fulfillment_id}",
                d.id
            ))
        })?;
    envelope(&d.kind, fulfillments::created(&order, f), d.created_at_ms)
}

/// What one send came to.
#[derive(Debug, Clone)]
pub struct SendResult {
    pub attempt: Attempt,
    pub retry_after_s: Option<u64>,
    /// Random bits for the retry jitter.
    pub jitter: u64,
}

/// Records an attempt: delivered on a 2xx, else scheduled again or failed.
fn record_attempt(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    id: &str,
    sent: SendResult,
) -> Result<Delivery, Problem> {
    let mut d = load(tx, id)?;
    if d.status != DeliveryStatus::Pending {
        return Ok(d); // Retried or settled meanwhile; this attempt changes nothing.
    }
    let ok = sent.attempt.status.is_some_and(|s| (200..300).contains(&s));
    tx.t.outbox_due.remove((d.next_attempt_at_ms, id))?;
    d.attempt_count += 1;
    if d.attempts.len() == ATTEMPTS_KEPT_MAX {
        d.attempts.remove(0);
    }
    d.attempts.push(sent.attempt.clone());
    let settled = if ok {
        Some(("delivery.delivered", DeliveryStatus::Delivered))
    } else {
        let retry = next_retry(
            d.attempt_count,
            tx.now_ms,
            sent.attempt.status,
            sent.retry_after_s,
            sent.jitter,
        );
        match retry {
            Retry::At(at_ms) => {
                d.next_attempt_at_ms = at_ms;
                tx.t.outbox_due.insert((at_ms, id), ())?;
                None
            }
            Retry::GiveUp => Some(("delivery.failed", DeliveryStatus::Failed)),
        }
    };
    // Attempts are kept on the delivery; the audit trail records how it ends.
    if let Some((kind, status)) = settled {
        d.status = status;
        if status == DeliveryStatus::Failed {
            tx.t.failed_deliveries.insert(id, ())?;
        }
        tx.event(
            kind,
            "marketd",
            id,
            json!({"attempts": d.attempt_count,
            "status": sent.attempt.status, "error": sent.attempt.error}),
        )?;
        let live = live.clone();
        tx.after_commit(move || {
            live.deliveries
                .moved(Some(DeliveryStatus::Pending), Some(status))
        });
    }
    save(tx, &d)?;
    Ok(d)
}

/// Records the attempts the dispatcher finished, in one command. A delivery that is
/// gone (pruned or unknown) is skipped: its attempt has nothing left to change.
pub fn record_attempts(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    attempts: Vec<(String, SendResult)>,
) -> Result<(), Problem> {
    for (id, sent) in attempts {
        match record_attempt(tx, live, &id, sent) {
            Err(p) if p.is_store_failure() => return Err(p),
            Err(p) => tracing::warn!(delivery = %id, detail = %p.detail, "attempt not recorded"),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Makes a pending or failed delivery due now (an operator's retry).
pub fn retry_now(tx: &mut Tx<'_>, live: &Arc<Live>, id: &str) -> Result<Delivery, Problem> {
    let mut d = load(tx, id)?;
    if d.status == DeliveryStatus::Delivered {
        return Err(Problem::conflict(
            "already-delivered",
            "Already delivered",
            format!("delivery {id} was delivered; nothing to retry"),
        ));
    }
    match d.status {
        DeliveryStatus::Pending => {
            tx.t.outbox_due.remove((d.next_attempt_at_ms, id))?;
        }
        _ => {
            tx.t.failed_deliveries.remove(id)?;
        }
    }
    tx.t.outbox_due.insert((tx.now_ms, id), ())?;
    let from = d.status;
    d.status = DeliveryStatus::Pending;
    d.next_attempt_at_ms = tx.now_ms;
    save(tx, &d)?;
    tx.event(
        "delivery.retry_requested",
        "operator",
        id,
        json!({"from": from.as_str()}),
    )?;
    let live = live.clone();
    tx.after_commit(move || {
        live.deliveries
            .moved(Some(from), Some(DeliveryStatus::Pending));
        live.deliveries.wake.notify_one();
    });
    Ok(d)
}

/// How long a delivered webhook's record is kept: seven days.
pub const DELIVERED_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// Forgets delivered deliveries made before the retention, looking at up to `max`
/// records after id `after` (ids sort by creation). Pending and failed ones stay,
/// so the next look starts past them: returns the id to go on after, or `None`
/// once it reached records inside the retention or the end.
pub fn prune_delivered(
    tx: &mut Tx<'_>,
    after: String,
    max: usize,
) -> Result<Option<String>, Problem> {
    let cutoff_ms = tx.now_ms.saturating_sub(DELIVERED_RETENTION_MS);
    let mut gone = Vec::new();
    let mut resume_after = None;
    let range = (Bound::Excluded(after.as_str()), Bound::Unbounded);
    for (i, entry) in tx.t.outbox.range::<&str>(range)?.take(max).enumerate() {
        let (k, v) = entry?;
        let d: Delivery = codec::decode(v.value())?;
        if d.created_at_ms > cutoff_ms {
            break;
        }
        if d.status == DeliveryStatus::Delivered {
            gone.push(k.value().to_owned());
        }
        if i + 1 == max {
            resume_after = Some(k.value().to_owned());
        }
    }
    for id in &gone {
        tx.t.outbox.remove(id.as_str())?;
    }
    Ok(resume_after)
}
