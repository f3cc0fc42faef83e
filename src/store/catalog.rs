//! Store commands for the catalog: suppliers, SKUs, offers, channels, listings and
//! stock reports. Each runs on the store writer inside a batch transaction, checks
//! everything before it writes, records its event, and schedules the in-memory
//! changes its commit makes true.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};
use serde_json::json;

use super::{Tx, codec};
use crate::clock::Millis;
use crate::domain::{
    Channel, ChannelInput, Offer, OfferInput, Position, Sku, SkuInput, Supplier, SupplierInput,
    SupplierStatus,
};
use crate::live::Live;
use crate::problem::Problem;
use crate::secret;

/// Decodes an optional stored record.
pub fn decode_opt<T: serde::de::DeserializeOwned>(
    value: Option<redb::AccessGuard<'_, &[u8]>>,
) -> Result<Option<T>, Problem> {
    value
        .map(|v| codec::decode(v.value()).map_err(Problem::from))
        .transpose()
}

/// Catalog records decoded once per write batch: a batch of orders reads the same
/// few suppliers, offers and SKUs over and over. It lives as long as the batch's
/// transaction (so it is bounded by `write_batch_max` commands) and every write to
/// these tables goes through [`BatchCache::forget`] first, so it never disagrees
/// with the transaction.
#[derive(Default)]
pub struct BatchCache {
    suppliers: RefCell<HashMap<String, Option<Arc<Supplier>>>>,
    offers: RefCell<HashMap<String, Arc<[Offer]>>>,
    skus: RefCell<HashMap<String, Option<Arc<Sku>>>>,
}

/// Which cached records a write makes stale.
pub enum Stale<'a> {
    Supplier(&'a str),
    OffersOf(&'a str),
    Sku(&'a str),
}

impl BatchCache {
    pub fn forget(&self, stale: Stale<'_>) {
        match stale {
            Stale::Supplier(id) => drop(self.suppliers.borrow_mut().remove(id)),
            Stale::OffersOf(sku) => drop(self.offers.borrow_mut().remove(sku)),
            Stale::Sku(sku) => drop(self.skus.borrow_mut().remove(sku)),
        }
    }
}

/// `key`'s entry in `cache`, loaded on a miss.
fn cached<T: Clone>(
    cache: &RefCell<HashMap<String, T>>,
    key: &str,
    load: impl FnOnce() -> Result<T, Problem>,
) -> Result<T, Problem> {
    if let Some(hit) = cache.borrow().get(key) {
        return Ok(hit.clone());
    }
    let found = load()?;
    cache.borrow_mut().insert(key.to_owned(), found.clone());
    Ok(found)
}

/// A supplier as this transaction sees it, decoded once per batch.
pub fn supplier(tx: &Tx<'_>, id: &str) -> Result<Option<Arc<Supplier>>, Problem> {
    cached(&tx.cache.suppliers, id, || {
        Ok(decode_opt(tx.t.suppliers.get(id)?)?.map(Arc::new))
    })
}

/// Whether a supplier exists and is approved, as this transaction sees it.
pub fn is_approved(tx: &Tx<'_>, id: &str) -> Result<bool, Problem> {
    Ok(supplier(tx, id)?.is_some_and(|s| s.status == SupplierStatus::Approved))
}

/// Every offer of a SKU (by supplier id), decoded once per batch.
pub fn offers_of(tx: &Tx<'_>, sku: &str) -> Result<Arc<[Offer]>, Problem> {
    cached(&tx.cache.offers, sku, || {
        let mut list = Vec::new();
        for entry in tx.t.offers.range((sku, "")..)? {
            let (k, v) = entry?;
            if k.value().0 != sku {
                break;
            }
            list.push(codec::decode::<Offer>(v.value())?);
        }
        Ok(list.into())
    })
}

/// A SKU record, decoded once per batch.
pub fn sku(tx: &Tx<'_>, id: &str) -> Result<Option<Arc<Sku>>, Problem> {
    cached(&tx.cache.skus, id, || {
        Ok(decode_opt(tx.t.skus.get(id)?)?.map(Arc::new))
    })
}

/// A supplier to change: its own copy of what this transaction sees.
fn get_supplier(tx: &Tx<'_>, id: &str) -> Result<Option<Supplier>, Problem> {
    Ok(supplier(tx, id)?.map(Arc::unwrap_or_clone))
}

fn require_supplier(tx: &Tx<'_>, id: &str) -> Result<Supplier, Problem> {
    get_supplier(tx, id)?.ok_or_else(|| Problem::not_found(format!("no supplier {id:?}")))
}

/// Refuses (404) a SKU the catalog does not have.
fn require_sku(tx: &Tx<'_>, id: &str) -> Result<(), Problem> {
    match sku(tx, id)? {
        Some(_) => Ok(()),
        None => Err(Problem::not_found(format!("no SKU {id:?}"))),
    }
}

fn save_supplier(tx: &mut Tx<'_>, live: &Arc<Live>, s: &Supplier) -> Result<(), Problem> {
    tx.cache.forget(Stale::Supplier(&s.id));
    let t = &mut tx.t.suppliers;
    t.insert(s.id.as_str(), codec::encode(s).as_slice())?;
    let (live, committed) = (live.clone(), Arc::new(s.clone()));
    tx.after_commit(move || live.put_supplier(committed));
    Ok(())
}

/// Creates or updates a supplier. A new one is pending and gets a webhook secret.
pub fn put_supplier(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    id: &str,
    input: SupplierInput,
    suppliers_max: usize,
) -> Result<(Supplier, bool), Problem> {
    let now_ms = tx.now_ms;
    let (supplier, created) = match get_supplier(tx, id)? {
        Some(mut s) => {
            s.apply(input, now_ms);
            (s, false)
        }
        None if tx.t.suppliers.len()? >= suppliers_max as u64 => {
            return Err(Problem::conflict(
                "too-many-suppliers",
                "Too many suppliers",
                format!(
                    "marketd keeps at most {suppliers_max} suppliers; raise limits.suppliers_max"
                ),
            ));
        }
        None => {
            let mut s = Supplier {
                id: id.to_owned(),
                name: String::new(),
                webhook_url: None,
                sla: input.sla,
                on_ack_timeout: input.on_ack_timeout,
                commission_bps: 0,
                breach_penalty: 0,
                status: SupplierStatus::Pending,
                webhook_secret: secret::new_webhook_secret(),
                previous_webhook_secret: None,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            };
            s.apply(input, now_ms);
            (s, true)
        }
    };
    save_supplier(tx, live, &supplier)?;
    let kind = if created {
        "supplier.created"
    } else {
        "supplier.updated"
    };
    tx.event(kind, "operator", id, supplier_event_data(&supplier))?;
    Ok((supplier, created))
}

fn supplier_event_data(s: &Supplier) -> serde_json::Value {
    json!({"name": s.name, "status": s.status.as_str(), "sla": {
        "ack_within_s": s.sla.ack_within_s, "ship_within_s": s.sla.ship_within_s,
        "deliver_within_s": s.sla.deliver_within_s},
        "commission_bps": s.commission_bps, "breach_penalty": s.breach_penalty})
}

/// Approves or suspends a supplier. Its stock starts or stops counting at once.
pub fn set_supplier_status(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    id: &str,
    status: SupplierStatus,
) -> Result<Supplier, Problem> {
    let mut supplier = require_supplier(tx, id)?;
    if supplier.status == status {
        return Ok(supplier); // Approving an approved supplier changes nothing.
    }
    let from = supplier.status;
    supplier.status = status;
    supplier.updated_at_ms = tx.now_ms;
    save_supplier(tx, live, &supplier)?;
    let kind = match status {
        SupplierStatus::Approved => "supplier.approved",
        SupplierStatus::Suspended => "supplier.suspended",
        SupplierStatus::Pending => "supplier.pending",
    };
    tx.event(
        kind,
        "operator",
        id,
        json!({"from": from.as_str(), "to": status.as_str()}),
    )?;
    let skus = supplier_skus(tx, id)?;
    refresh_totals(tx, live, skus.iter().map(String::as_str))?;
    Ok(supplier)
}

/// Gives a supplier a new webhook secret; the old one is still accepted inbound for
/// a day, so the supplier can switch without losing webhooks (rotating again ends
/// it at once).
pub fn rotate_supplier_secret(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    id: &str,
) -> Result<Supplier, Problem> {
    let mut supplier = require_supplier(tx, id)?;
    let new = secret::new_webhook_secret();
    let old = std::mem::replace(&mut supplier.webhook_secret, new);
    supplier.previous_webhook_secret =
        Some((old, tx.now_ms + crate::domain::PREVIOUS_SECRET_GRACE_MS));
    supplier.updated_at_ms = tx.now_ms;
    save_supplier(tx, live, &supplier)?;
    tx.event("supplier.secret_rotated", "operator", id, json!({}))?;
    Ok(supplier)
}

/// The SKUs a supplier has positions in.
fn supplier_skus(tx: &Tx<'_>, supplier: &str) -> Result<Vec<String>, Problem> {
    let positions = &tx.t.positions;
    let mut skus = Vec::new();
    for entry in positions.range((supplier, "")..)? {
        let (k, _) = entry?;
        let (s, sku) = k.value();
        if s != supplier {
            break;
        }
        skus.push(sku.to_owned());
    }
    Ok(skus)
}

/// A SKU's on_hand and allocated summed over its approved suppliers, as this
/// transaction sees them.
pub fn sku_totals(tx: &Tx<'_>, sku: &str) -> Result<(u32, u32), Problem> {
    let (mut on_hand, mut allocated) = (0u64, 0u64);
    for offer in offers_of(tx, sku)?.iter() {
        let supplier = offer.supplier.as_str();
        if !is_approved(tx, supplier)? {
            continue;
        }
        let p: Position = decode_opt(tx.t.positions.get((supplier, sku))?)?.unwrap_or_default();
        on_hand += p.on_hand as u64;
        allocated += p.allocated as u64;
    }
    Ok((clamp(on_hand), clamp(allocated)))
}

fn clamp(v: u64) -> u32 {
    v.min(u32::MAX as u64) as u32
}

/// Schedules the reservation table to take each SKU's totals as committed.
pub fn refresh_totals<'s>(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    skus: impl Iterator<Item = &'s str>,
) -> Result<(), Problem> {
    for sku in skus {
        let Some(slot) = live.sku_slot(sku) else {
            continue;
        };
        let (on_hand, allocated) = sku_totals(tx, sku)?;
        let live = live.clone();
        tx.after_commit(move || live.table.set_totals(slot, on_hand, allocated));
    }
    Ok(())
}

/// Creates or updates a SKU.
pub fn put_sku(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    sku_id: &str,
    input: SkuInput,
) -> Result<(Sku, bool), Problem> {
    let now_ms = tx.now_ms;
    let existing: Option<Sku> = decode_opt(tx.t.skus.get(sku_id)?)?;
    if existing.is_none() && !live.has_room_for_sku() {
        return Err(Problem::busy(
            "the reservation table has no room for another SKU; raise limits.skus_max",
        ));
    }
    let created = existing.is_none();
    let sku = Sku {
        sku: sku_id.to_owned(),
        product: input.product,
        title: input.title,
        attributes: input.attributes,
        price: input.price,
        safety_stock: input.safety_stock,
        created_at_ms: existing.as_ref().map_or(now_ms, |s| s.created_at_ms),
        updated_at_ms: now_ms,
    };
    // Checked above; the writer is the only thread handing out slots.
    let slot = live.ensure_sku_slot(sku_id)?;
    {
        let products = &mut tx.t.product_skus;
        if let Some(old) = &existing {
            products.remove((old.product.as_str(), sku_id))?;
        }
        products.insert((sku.product.as_str(), sku_id), ())?;
        tx.cache.forget(Stale::Sku(sku_id));
        let skus = &mut tx.t.skus;
        skus.insert(sku_id, codec::encode(&sku).as_slice())?;
    }
    let kind = if created {
        "sku.created"
    } else {
        "sku.updated"
    };
    tx.event(
        kind,
        "operator",
        sku_id,
        json!({"product": sku.product, "price": sku.price,
        "safety_stock": sku.safety_stock}),
    )?;
    let (live, safety) = (live.clone(), sku.safety_stock);
    tx.after_commit(move || live.table.set_safety_stock(slot, safety));
    Ok((sku, created))
}

/// Says a supplier can fulfil a SKU under its own code.
pub fn put_offer(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    sku: &str,
    supplier: &str,
    input: OfferInput,
) -> Result<(Offer, bool), Problem> {
    require_sku(tx, sku)?;
    require_supplier(tx, supplier)?;
    let mapped: Option<String> =
        tx.t.supplier_skus
            .get((supplier, input.supplier_sku.as_str()))?
            .map(|v| v.value().to_owned());
    if let Some(other) = mapped.filter(|other| other != sku) {
        return Err(Problem::conflict(
            "supplier-sku-taken",
            "Supplier SKU already used",
            format!(
                "supplier {supplier:?} already uses {:?} for SKU {other:?}",
                input.supplier_sku
            ),
        ));
    }
    let existing: Option<Offer> = decode_opt(tx.t.offers.get((sku, supplier))?)?;
    let offer = Offer {
        sku: sku.to_owned(),
        supplier: supplier.to_owned(),
        supplier_sku: input.supplier_sku,
        priority: input.priority,
    };
    {
        let codes = &mut tx.t.supplier_skus;
        if let Some(old) = &existing {
            codes.remove((supplier, old.supplier_sku.as_str()))?;
        }
        codes.insert((supplier, offer.supplier_sku.as_str()), sku)?;
        tx.cache.forget(Stale::OffersOf(sku));
        let offers = &mut tx.t.offers;
        offers.insert((sku, supplier), codec::encode(&offer).as_slice())?;
        let positions = &mut tx.t.positions;
        if positions.get((supplier, sku))?.is_none() {
            positions.insert(
                (supplier, sku),
                codec::encode(&Position::default()).as_slice(),
            )?;
        }
    }
    let kind = if existing.is_none() {
        "offer.created"
    } else {
        "offer.updated"
    };
    tx.event(
        kind,
        "operator",
        sku,
        json!({"supplier": supplier,
        "supplier_sku": offer.supplier_sku, "priority": offer.priority}),
    )?;
    refresh_totals(tx, live, std::iter::once(sku))?;
    Ok((offer, existing.is_none()))
}

/// Removes an offer and the supplier's position in the SKU. Refused while units
/// are allocated to it, so open fulfillments keep their accounting.
pub fn delete_offer(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    sku: &str,
    supplier: &str,
) -> Result<(), Problem> {
    let offer: Offer = decode_opt(tx.t.offers.get((sku, supplier))?)?
        .ok_or_else(|| Problem::not_found(format!("no offer of {sku:?} by {supplier:?}")))?;
    let position: Position = decode_opt(tx.t.positions.get((supplier, sku))?)?.unwrap_or_default();
    if position.allocated > 0 {
        return Err(Problem::conflict(
            "offer-in-use",
            "Offer has allocated units",
            format!(
                "{} units of {sku:?} are allocated to {supplier:?} in open fulfillments",
                position.allocated
            ),
        ));
    }
    tx.cache.forget(Stale::OffersOf(sku));
    tx.t.offers.remove((sku, supplier))?;
    tx.t.supplier_skus
        .remove((supplier, offer.supplier_sku.as_str()))?;
    tx.t.positions.remove((supplier, sku))?;
    tx.event(
        "offer.deleted",
        "operator",
        sku,
        json!({"supplier": supplier}),
    )?;
    refresh_totals(tx, live, std::iter::once(sku))
}

/// Creates or updates a channel; a new one gets an api key (returned once, stored
/// only as its hash) and a webhook secret.
pub fn put_channel(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    id: &str,
    input: ChannelInput,
) -> Result<(Channel, Option<String>), Problem> {
    let now_ms = tx.now_ms;
    let existing: Option<Channel> = decode_opt(tx.t.channels.get(id)?)?;
    let (channel, api_key) = match existing {
        Some(c) => (
            Channel {
                name: input.name,
                webhook_url: input.webhook_url,
                buffer_units: input.buffer_units,
                buffer_pct: input.buffer_pct,
                updated_at_ms: now_ms,
                ..c
            },
            None,
        ),
        None => {
            let key = secret::new_token("mkc_");
            let channel = Channel {
                id: id.to_owned(),
                name: input.name,
                webhook_url: input.webhook_url,
                buffer_units: input.buffer_units,
                buffer_pct: input.buffer_pct,
                api_key_hash: secret::token_hash(&key),
                webhook_secret: secret::new_webhook_secret(),
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
            };
            (channel, Some(key))
        }
    };
    tx.t.channels
        .insert(id, codec::encode(&channel).as_slice())?;
    if api_key.is_some() {
        tx.t.channel_keys
            .insert(channel.api_key_hash.as_slice(), id)?;
    }
    let kind = if api_key.is_some() {
        "channel.created"
    } else {
        "channel.updated"
    };
    tx.event(
        kind,
        "operator",
        id,
        json!({"name": channel.name,
        "buffer_units": channel.buffer_units, "buffer_pct": channel.buffer_pct}),
    )?;
    let (live, view) = (live.clone(), channel.clone());
    tx.after_commit(move || live.put_channel(&view));
    Ok((channel, api_key))
}

/// Maps a channel's own listing id to a SKU.
pub fn put_listing(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    channel: &str,
    listing: &str,
    sku: &str,
) -> Result<bool, Problem> {
    if tx.t.channels.get(channel)?.is_none() {
        return Err(Problem::not_found(format!("no channel {channel:?}")));
    }
    require_sku(tx, sku)?;
    let created = tx.t.listings.insert((channel, listing), sku)?.is_none();
    tx.event(
        "listing.put",
        "operator",
        channel,
        json!({"listing": listing, "sku": sku}),
    )?;
    let (live, channel, listing, sku) = (
        live.clone(),
        channel.to_owned(),
        listing.to_owned(),
        sku.to_owned(),
    );
    tx.after_commit(move || live.put_listing(&channel, &listing, &sku));
    Ok(created)
}

/// One row of a stock report, as sent.
#[derive(Debug, Clone)]
pub struct ReportItem {
    /// 1-based line (CSV: the file's line, header is 1; JSON: the item's position).
    pub line: usize,
    pub supplier_sku: Option<String>,
    pub sku: Option<String>,
    pub on_hand: u32,
}

/// What a stock report changed.
#[derive(Debug, Clone, Default)]
pub struct ReportOutcome {
    pub applied: usize,
    /// Items older than what is stored, left alone.
    pub stale: usize,
}

/// How far ahead of marketd's clock a report's `as_of` may be (clock skew): 5 min.
pub const AS_OF_AHEAD_MS_MAX: Millis = 5 * 60 * 1000;

/// Replaces a supplier's on_hand for the items named, all or nothing. An item whose
/// `as_of` is older than the stored one is ignored (a late, out-of-order report).
pub fn report_stock(
    tx: &mut Tx<'_>,
    live: &Arc<Live>,
    supplier: &str,
    actor: &str,
    as_of_ms: Millis,
    items: Vec<ReportItem>,
) -> Result<ReportOutcome, Problem> {
    require_supplier(tx, supplier)?;
    if as_of_ms > tx.now_ms + AS_OF_AHEAD_MS_MAX {
        // A count from the future would make every later report look stale.
        return Err(Problem::invalid(format!(
            "as_of {} is ahead of now; counts can only be as of the past",
            crate::clock::format_rfc3339(as_of_ms)
        )));
    }
    let resolved = resolve_items(tx, supplier, &items)?;
    let mut outcome = ReportOutcome::default();
    let mut touched = BTreeSet::new();
    {
        let positions = &mut tx.t.positions;
        for (sku, on_hand) in &resolved {
            let mut p: Position =
                decode_opt(positions.get((supplier, sku.as_str()))?)?.unwrap_or_default();
            if p.as_of_ms > as_of_ms {
                outcome.stale += 1;
                continue;
            }
            p.on_hand = *on_hand;
            p.as_of_ms = as_of_ms;
            positions.insert((supplier, sku.as_str()), codec::encode(&p).as_slice())?;
            touched.insert(sku.clone());
            outcome.applied += 1;
        }
    }
    let counts: serde_json::Map<String, serde_json::Value> = resolved
        .iter()
        .filter(|(sku, _)| touched.contains(sku))
        .map(|(sku, n)| (sku.clone(), json!(n)))
        .collect();
    tx.event(
        "stock.reported",
        actor,
        supplier,
        json!({"as_of": crate::clock::format_rfc3339(as_of_ms),
        "on_hand": counts, "stale": outcome.stale}),
    )?;
    refresh_totals(tx, live, touched.iter().map(String::as_str))?;
    Ok(outcome)
}

/// Resolves every item to a SKU this supplier offers; any bad row refuses the lot
/// with the list of `{line, error}`.
fn resolve_items(
    tx: &Tx<'_>,
    supplier: &str,
    items: &[ReportItem],
) -> Result<Vec<(String, u32)>, Problem> {
    let codes = &tx.t.supplier_skus;
    let offers = &tx.t.offers;
    let mut errors = Vec::new();
    let mut resolved: Vec<(String, u32)> = Vec::with_capacity(items.len());
    let mut seen = BTreeSet::new();
    for item in items {
        let sku = match (&item.supplier_sku, &item.sku) {
            (Some(code), None) => codes
                .get((supplier, code.as_str()))?
                .map(|v| v.value().to_owned()),
            (None, Some(sku)) => offers.get((sku.as_str(), supplier))?.map(|_| sku.clone()),
            _ => {
                errors.push(
                    json!({"line": item.line, "error": "name exactly one of supplier_sku or sku"}),
                );
                continue;
            }
        };
        let Some(sku) = sku else {
            let named = item
                .supplier_sku
                .as_ref()
                .or(item.sku.as_ref())
                .cloned()
                .unwrap_or_default();
            errors.push(json!({"line": item.line,
                "error": format!("supplier {supplier:?} has no offer for {named:?}")}));
            continue;
        };
        if !seen.insert(sku.clone()) {
            errors.push(json!({"line": item.line, "error": format!("{sku:?} appears twice")}));
            continue;
        }
        resolved.push((sku, item.on_hand));
    }
    if !errors.is_empty() {
        return Err(rows_problem(errors));
    }
    Ok(resolved)
}

/// The 422 for an upload with bad rows.
pub fn rows_problem(errors: Vec<serde_json::Value>) -> Problem {
    Problem::invalid(format!(
        "{} row(s) are invalid; nothing was applied",
        errors.len()
    ))
    .with("errors", serde_json::Value::Array(errors))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{Store, Writer};

    fn writer() -> (tempfile::TempDir, Store, Writer, Arc<Live>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let writer =
            Writer::start(store.database().clone(), ManualClock::new(1_000), 64, 16).unwrap();
        (dir, store, writer, Arc::new(Live::new(16, 16, 16)))
    }

    fn supplier_input() -> SupplierInput {
        serde_json::from_value(json!({"name": "Acme", "sla": {"ack_within_s": 60,
            "ship_within_s": 120, "deliver_within_s": 180}}))
        .unwrap()
    }

    fn sku_input(price: u64) -> SkuInput {
        serde_json::from_value(json!({"product": "tent", "title": "Tent", "price": price})).unwrap()
    }

    #[test]
    fn the_batch_cache_follows_writes_made_earlier_in_the_same_batch() {
        let (_dir, _store, writer, live) = writer();
        writer
            .write_blocking(move |tx| {
                put_supplier(tx, &live, "acme", supplier_input(), 10)?;
                assert!(!is_approved(tx, "acme")?, "a new supplier is pending");
                set_supplier_status(tx, &live, "acme", SupplierStatus::Approved)?;
                assert!(
                    is_approved(tx, "acme")?,
                    "approval is seen in the same batch"
                );

                put_sku(tx, &live, "tent-g", sku_input(100))?;
                assert_eq!(sku(tx, "tent-g")?.unwrap().price, 100);
                put_sku(tx, &live, "tent-g", sku_input(250))?;
                assert_eq!(sku(tx, "tent-g")?.unwrap().price, 250);

                assert!(offers_of(tx, "tent-g")?.is_empty());
                let offer = serde_json::from_value(json!({"supplier_sku": "AC-1"})).unwrap();
                put_offer(tx, &live, "tent-g", "acme", offer)?;
                assert_eq!(offers_of(tx, "tent-g")?.len(), 1);
                delete_offer(tx, &live, "tent-g", "acme")?;
                assert!(offers_of(tx, "tent-g")?.is_empty());
                Ok::<_, Problem>(())
            })
            .unwrap();
    }

    #[test]
    fn a_supplier_beyond_suppliers_max_is_refused_and_updates_still_work() {
        let (_dir, store, writer, live) = writer();
        let put = |id: &'static str| {
            let live = live.clone();
            writer.write_blocking(move |tx| put_supplier(tx, &live, id, supplier_input(), 1))
        };
        assert!(put("acme").unwrap().1, "the first supplier is created");
        let refused = put("globex").unwrap_err();
        assert_eq!((refused.status, refused.slug), (409, "too-many-suppliers"));
        assert!(
            !put("acme").unwrap().1,
            "an existing supplier can still be updated"
        );
        let txn = store.read().unwrap();
        assert_eq!(
            txn.open_table(super::super::tables::SUPPLIERS)
                .unwrap()
                .len()
                .unwrap(),
            1
        );
        assert!(live.supplier("acme").is_some() && live.supplier("globex").is_none());
    }
}
