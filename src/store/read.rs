//! Reads: pages of records in key order, from one read transaction.

use std::ops::Bound;

use redb::{Key, ReadTransaction, TableDefinition};
use serde::de::DeserializeOwned;

use super::{codec, tables};
use crate::domain::{Breach, Event, FulfillmentRecord, Position};
use crate::problem::Problem;

/// Most records a filtered page looks at before it answers with what it found and a
/// cursor to go on from, so a rare filter never scans the whole table in one request.
pub const PAGE_SCAN_MAX: usize = 10_000;

/// A page of records after `cursor` (exclusive) whose `keep` is true.
pub fn page<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
    cursor: Option<&str>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<String>), Problem> {
    page_by(txn, table, cursor, limit, keep, str::to_owned)
}

/// [`page`] for any key: `owned` turns the last key looked at into the cursor
/// handed back.
fn page_by<K: Key + 'static, C, T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<K, &[u8]>,
    cursor: Option<K::SelfType<'_>>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
    owned: impl Fn(K::SelfType<'_>) -> C,
) -> Result<(Vec<T>, Option<C>), Problem> {
    let t = txn.open_table(table)?;
    let start = cursor.map_or(Bound::Unbounded, Bound::Excluded);
    let mut items = Vec::new();
    let mut last_key = None;
    for (scanned, entry) in t.range((start, Bound::Unbounded))?.enumerate() {
        if items.len() == limit || scanned == PAGE_SCAN_MAX {
            return Ok((items, last_key));
        }
        let (k, v) = entry?;
        last_key = Some(owned(k.value()));
        let record: T = codec::decode(v.value())?;
        if keep(&record) {
            items.push(record);
        }
    }
    Ok((items, None))
}

pub fn get<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, Problem> {
    let t = txn.open_table(table)?;
    let value = t.get(key)?;
    super::catalog::decode_opt(value)
}

/// Events with `seq > after`, oldest first.
pub fn events_after(
    txn: &ReadTransaction,
    after: u64,
    limit: usize,
) -> Result<(Vec<Event>, Option<u64>), Problem> {
    let t = txn.open_table(tables::EVENTS)?;
    let mut items = Vec::new();
    for entry in t.range(after.saturating_add(1)..)? {
        if items.len() == limit {
            let next = items.last().map(|e: &Event| e.seq);
            return Ok((items, next));
        }
        let (_, v) = entry?;
        items.push(codec::decode(v.value())?);
    }
    Ok((items, None))
}

/// The timeline of one subject, oldest first, after `after`.
pub fn subject_events(
    txn: &ReadTransaction,
    subject: &str,
    after: u64,
    limit: usize,
) -> Result<(Vec<Event>, Option<u64>), Problem> {
    let index = txn.open_table(tables::SUBJECT_EVENTS)?;
    let events = txn.open_table(tables::EVENTS)?;
    let mut items = Vec::new();
    for entry in index.range((subject, after.saturating_add(1))..)? {
        let (k, _) = entry?;
        let (s, seq) = k.value();
        if s != subject {
            break;
        }
        if items.len() == limit {
            let next = items.last().map(|e: &Event| e.seq);
            return Ok((items, next));
        }
        if let Some(v) = events.get(seq)? {
            items.push(codec::decode(v.value())?);
        }
    }
    Ok((items, None))
}

/// Every supplier position in a SKU: (supplier, position).
pub fn positions_of_sku(
    txn: &ReadTransaction,
    sku: &str,
) -> Result<Vec<(String, Position)>, Problem> {
    let offers = txn.open_table(tables::OFFERS)?;
    let positions = txn.open_table(tables::POSITIONS)?;
    let mut out = Vec::new();
    for entry in offers.range((sku, "")..)? {
        let (k, _) = entry?;
        let (offer_sku, supplier) = k.value();
        if offer_sku != sku {
            break;
        }
        let p: Position =
            super::catalog::decode_opt(positions.get((supplier, sku))?)?.unwrap_or_default();
        out.push((supplier.to_owned(), p));
    }
    Ok(out)
}

/// The SKU ids of a product, after `cursor`.
pub fn product_skus(
    txn: &ReadTransaction,
    product: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<String>, Option<String>), Problem> {
    let t = txn.open_table(tables::PRODUCT_SKUS)?;
    let start = (product, cursor.unwrap_or(""));
    let mut items = Vec::new();
    for entry in t.range(start..)? {
        let (k, _) = entry?;
        let (p, sku) = k.value();
        if p != product {
            break;
        }
        if cursor == Some(sku) {
            continue;
        }
        if items.len() == limit {
            return Ok((items.clone(), items.last().cloned()));
        }
        items.push(sku.to_owned());
    }
    Ok((items, None))
}

/// The scorecard history of `supplier` for fulfillments routed in `[from_ms, to_ms]`.
/// Newest first, at most `max`; the flag says the window held more.
pub fn supplier_history(
    txn: &ReadTransaction,
    supplier: &str,
    from_ms: u64,
    to_ms: u64,
    max: usize,
) -> Result<(Vec<FulfillmentRecord>, bool), Problem> {
    let t = txn.open_table(tables::SUPPLIER_HISTORY)?;
    let mut out = Vec::new();
    let window = t.range((supplier, from_ms, "")..(supplier, to_ms.saturating_add(1), ""))?;
    for entry in window.rev() {
        if out.len() == max {
            return Ok((out, true));
        }
        let (_, v) = entry?;
        out.push(codec::decode(v.value())?);
    }
    Ok((out, false))
}

/// A supplier's open breaches right now.
pub fn open_breaches(txn: &ReadTransaction, supplier: &str) -> Result<u64, Problem> {
    let t = txn.open_table(tables::OPEN_BREACHES)?;
    Ok(t.get(supplier)?.map_or(0, |v| v.value()))
}

/// Open breaches over every supplier (one entry per supplier).
pub fn all_open_breaches(txn: &ReadTransaction) -> Result<u64, Problem> {
    let t = txn.open_table(tables::OPEN_BREACHES)?;
    let mut total = 0;
    for entry in t.range::<&str>(..)? {
        total += entry?.1.value();
    }
    Ok(total)
}

/// A page of breaches and the key to go on after.
pub type BreachPage = (Vec<Breach>, Option<(String, u8)>);

/// Breaches after `cursor` (`fulfillment:stage`) that `keep` accepts.
pub fn breaches(
    txn: &ReadTransaction,
    cursor: Option<(&str, u8)>,
    limit: usize,
    keep: impl Fn(&Breach) -> bool,
) -> Result<BreachPage, Problem> {
    let owned = |(fulfillment, stage): (&str, u8)| (fulfillment.to_owned(), stage);
    page_by(txn, tables::BREACHES, cursor, limit, keep, owned)
}
