//! Inbound supplier webhooks: applied once per `webhook-id`. The id is recorded in
//! the same transaction as the effect, so a retry after a crash or a lost answer is
//! acknowledged without a second effect. Ids are kept at least
//! [`WEBHOOK_ID_RETENTION_MS`].

use std::sync::Arc;

use redb::ReadableTable;

use super::Tx;
use super::catalog::{ReportItem, report_stock};
use super::fulfillments::{StepInput, supplier_step};
use crate::clock::Millis;
use crate::live::Live;
use crate::problem::Problem;

/// How long a webhook-id is remembered: seven days.
pub const WEBHOOK_ID_RETENTION_MS: Millis = 7 * 24 * 3600 * 1000;

/// What a verified webhook asks for.
#[derive(Debug, Clone)]
pub enum Inbound {
    Stock {
        as_of_ms: Millis,
        items: Vec<ReportItem>,
    },
    Step {
        fulfillment: String,
        input: StepInput,
    },
}

/// What came of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// This webhook-id was applied before; nothing happened now.
    Duplicate,
}

pub fn apply(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    supplier: &str,
    webhook_id: &str,
    inbound: Inbound,
) -> Result<Applied, Problem> {
    if tx.t.webhook_ids.get((supplier, webhook_id))?.is_some() {
        return Ok(Applied::Duplicate);
    }
    let actor = format!("supplier:{supplier}");
    match inbound {
        Inbound::Stock { as_of_ms, items } => {
            report_stock(tx, live, supplier, &actor, as_of_ms, items)?;
        }
        Inbound::Step { fulfillment, input } => {
            supplier_step(tx, live, supplier, &fulfillment, input)?;
        }
    }
    let now_ms = tx.now_ms;
    tx.t.webhook_ids.insert((supplier, webhook_id), now_ms)?;
    tx.t.webhook_ids_by_age
        .insert((now_ms, supplier, webhook_id), ())?;
    Ok(Applied::Done)
}

/// Forgets up to `max` webhook-ids received before `now_ms - retention`. Returns
/// how many it forgot.
pub fn prune(tx: &mut Tx<'_>, max: usize) -> Result<usize, Problem> {
    let cutoff = tx.now_ms.saturating_sub(WEBHOOK_ID_RETENTION_MS);
    let mut old = Vec::new();
    {
        let by_age = &tx.t.webhook_ids_by_age;
        for entry in by_age.range((0u64, "", "")..(cutoff, "", ""))?.take(max) {
            let (k, _) = entry?;
            let (at, supplier, id) = k.value();
            old.push((at, supplier.to_owned(), id.to_owned()));
        }
    }
    let by_age = &mut tx.t.webhook_ids_by_age;
    let ids = &mut tx.t.webhook_ids;
    for (at, supplier, id) in &old {
        by_age.remove((*at, supplier.as_str(), id.as_str()))?;
        ids.remove((supplier.as_str(), id.as_str()))?;
    }
    Ok(old.len())
}
