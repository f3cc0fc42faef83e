//! `marketd check --data DIR`: opens the store read-only and verifies its
//! invariants; exit 1 on any violation. Run it with the daemon stopped.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable};
use serde::de::DeserializeOwned;

use crate::domain::{
    Breach, Channel, Delivery, DeliveryStatus, Event, IdempotencyRecord, Offer, Order, Position,
    Sku, Stage, Supplier,
};
use crate::store::{SCHEMA_VERSION, codec, store_path, tables};

pub fn run(data: &Path) -> ExitCode {
    match check(data) {
        Ok(report) if report.violations.is_empty() => {
            println!("store ok: {}", report.summary);
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for v in &report.violations {
                println!("violation: {v}");
            }
            println!(
                "{} violation(s); {}",
                report.violations.len(),
                report.summary
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("marketd check: {e}");
            ExitCode::FAILURE
        }
    }
}

pub struct Report {
    pub violations: Vec<String>,
    pub summary: String,
}

/// Reads the whole store once and lists every broken invariant.
pub fn check(data: &Path) -> Result<Report, String> {
    let path = store_path(data);
    if !path.exists() {
        return Err(format!("no store at {}", path.display()));
    }
    let opened = open(&path)?;
    let txn = match &opened {
        Opened::ReadOnly(db) => db.begin_read(),
        Opened::Repaired(db) => db.begin_read(),
    }
    .map_err(|e| e.to_string())?;
    if matches!(opened, Opened::Repaired(_)) {
        println!("note: the store was not closed cleanly; redb repaired it before the check");
    }
    let mut c = Checker {
        txn: &txn,
        violations: Vec::new(),
    };
    let counts = c.run().map_err(|e| e.to_string())?;
    Ok(Report {
        violations: c.violations,
        summary: counts,
    })
}

enum Opened {
    ReadOnly(redb::ReadOnlyDatabase),
    /// After a crash redb must repair its file before it can be read; that needs a
    /// writable open (the same repair `serve` would do on its next start).
    Repaired(redb::Database),
}

fn open(path: &Path) -> Result<Opened, String> {
    let busy = |e: redb::DatabaseError| {
        format!(
            "cannot open {} (is the daemon running?): {e}",
            path.display()
        )
    };
    match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => Ok(Opened::ReadOnly(db)),
        Err(redb::DatabaseError::RepairAborted) => redb::Database::open(path)
            .map(Opened::Repaired)
            .map_err(busy),
        Err(e) => Err(busy(e)),
    }
}

struct Checker<'a> {
    txn: &'a ReadTransaction,
    violations: Vec<String>,
}

type Res<T> = Result<T, redb::Error>;

impl Checker<'_> {
    fn run(&mut self) -> Res<String> {
        self.schema()?;
        let suppliers: BTreeMap<String, Supplier> = self.all_str(tables::SUPPLIERS)?;
        let skus: BTreeMap<String, Sku> = self.all_str(tables::SKUS)?;
        let channels: BTreeMap<String, Channel> = self.all_str(tables::CHANNELS)?;
        let orders: BTreeMap<String, Order> = self.all_str(tables::ORDERS)?;
        self.offers(&suppliers, &skus)?;
        self.positions(&orders)?;
        self.orders(&orders, &channels)?;
        let events = self.events()?;
        self.idempotency(&orders)?;
        self.outbox()?;
        self.sla(&orders)?;
        Ok(format!(
            "{} suppliers, {} SKUs, {} channels, {} orders, {} events",
            suppliers.len(),
            skus.len(),
            channels.len(),
            orders.len(),
            events
        ))
    }

    fn fail(&mut self, what: String) {
        self.violations.push(what);
    }

    fn decode<T: DeserializeOwned>(&mut self, what: &str, bytes: &[u8]) -> Option<T> {
        match codec::decode(bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(format!("{what}: {e}"));
                None
            }
        }
    }

    fn schema(&mut self) -> Res<()> {
        let meta = self.txn.open_table(tables::META)?;
        let version = meta
            .get("schema_version")?
            .map(|v| codec::decode::<u32>(v.value()));
        match version {
            Some(Ok(v)) if v <= SCHEMA_VERSION => {}
            Some(Ok(v)) => self.fail(format!("schema version {v} is newer than {SCHEMA_VERSION}")),
            Some(Err(e)) => self.fail(format!("schema version: {e}")),
            None => self.fail("no schema version".into()),
        }
        Ok(())
    }

    fn all_str<T: DeserializeOwned>(
        &mut self,
        table: redb::TableDefinition<&str, &[u8]>,
    ) -> Res<BTreeMap<String, T>> {
        let t = self.txn.open_table(table)?;
        let mut out = BTreeMap::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            let what = format!("{} {:?}", redb::TableHandle::name(&table), k.value());
            if let Some(record) = self.decode(&what, v.value()) {
                out.insert(k.value().to_owned(), record);
            }
        }
        Ok(out)
    }

    /// Offers name existing SKUs and suppliers, and their codes resolve back.
    fn offers(
        &mut self,
        suppliers: &BTreeMap<String, Supplier>,
        skus: &BTreeMap<String, Sku>,
    ) -> Res<()> {
        let offers = self.txn.open_table(tables::OFFERS)?;
        let codes = self.txn.open_table(tables::SUPPLIER_SKUS)?;
        for entry in offers.iter()? {
            let (k, v) = entry?;
            let (sku, supplier) = k.value();
            let Some(offer) = self.decode::<Offer>(&format!("offer {sku}/{supplier}"), v.value())
            else {
                continue;
            };
            if !skus.contains_key(sku) || !suppliers.contains_key(supplier) {
                self.fail(format!(
                    "offer {sku}/{supplier} names a missing SKU or supplier"
                ));
            }
            let back = codes
                .get((supplier, offer.supplier_sku.as_str()))?
                .map(|v| v.value().to_owned());
            if back.as_deref() != Some(sku) {
                self.fail(format!(
                    "supplier code {supplier}/{} does not resolve to {sku}",
                    offer.supplier_sku
                ));
            }
        }
        Ok(())
    }

    /// Each position's `allocated` equals the units of fulfillments still holding
    /// an allocation at that supplier, and each position has its offer.
    fn positions(&mut self, orders: &BTreeMap<String, Order>) -> Res<()> {
        let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
        for o in orders.values() {
            for f in o
                .fulfillments
                .iter()
                .filter(|f| f.status.holds_allocation())
            {
                for l in &f.lines {
                    *expected
                        .entry((f.supplier.clone(), l.sku.clone()))
                        .or_default() += l.qty as u64;
                }
            }
        }
        let positions = self.txn.open_table(tables::POSITIONS)?;
        let offers = self.txn.open_table(tables::OFFERS)?;
        for entry in positions.iter()? {
            let (k, v) = entry?;
            let (supplier, sku) = k.value();
            let Some(p) = self.decode::<Position>(&format!("position {supplier}/{sku}"), v.value())
            else {
                continue;
            };
            if offers.get((sku, supplier))?.is_none() {
                self.fail(format!("position {supplier}/{sku} has no offer"));
            }
            let want = expected
                .remove(&(supplier.to_owned(), sku.to_owned()))
                .unwrap_or(0);
            if p.allocated as u64 != want {
                self.fail(format!(
                    "position {supplier}/{sku} has allocated {} but open fulfillments hold {want}",
                    p.allocated
                ));
            }
        }
        for ((supplier, sku), units) in expected {
            self.fail(format!(
                "{units} units of {sku} allocated to {supplier} have no position"
            ));
        }
        Ok(())
    }

    fn orders(
        &mut self,
        orders: &BTreeMap<String, Order>,
        channels: &BTreeMap<String, Channel>,
    ) -> Res<()> {
        let index = self.txn.open_table(tables::FULFILLMENTS)?;
        for (id, o) in orders {
            let total: Option<u64> = o.lines.iter().try_fold(0u64, |acc, l| {
                l.price
                    .checked_mul(l.qty as u64)
                    .and_then(|v| acc.checked_add(v))
            });
            if total != Some(o.total) {
                self.fail(format!(
                    "order {id} total {} is not the sum of its lines",
                    o.total
                ));
            }
            if o.status != o.derived_status() {
                self.fail(format!(
                    "order {id} status {:?} does not follow its fulfillments",
                    o.status
                ));
            }
            if !channels.contains_key(&o.channel) {
                self.fail(format!("order {id} names missing channel {}", o.channel));
            }
            for f in &o.fulfillments {
                let owner = index.get(f.id.as_str())?.map(|v| v.value().to_owned());
                if owner.as_deref() != Some(id.as_str()) {
                    self.fail(format!("fulfillment {} is not indexed to order {id}", f.id));
                }
            }
        }
        Ok(())
    }

    /// Events are numbered 1, 2, 3, … with no gap, and every timeline entry points
    /// at an event of that subject.
    fn events(&mut self) -> Res<u64> {
        let events = self.txn.open_table(tables::EVENTS)?;
        let mut expected = 1u64;
        for entry in events.iter()? {
            let (k, v) = entry?;
            let seq = k.value();
            if seq != expected {
                self.fail(format!("event seq {seq} follows {}", expected - 1));
            }
            expected = seq + 1;
            if let Some(e) = self.decode::<Event>(&format!("event {seq}"), v.value())
                && e.seq != seq
            {
                self.fail(format!("event stored at {seq} says seq {}", e.seq));
            }
        }
        let timeline = self.txn.open_table(tables::SUBJECT_EVENTS)?;
        for entry in timeline.iter()? {
            let (k, _) = entry?;
            let (subject, seq) = k.value();
            let event = events.get(seq)?.map(|v| codec::decode::<Event>(v.value()));
            if !matches!(event, Some(Ok(ref e)) if e.subject == subject) {
                self.fail(format!(
                    "timeline of {subject} points at event {seq} of another subject"
                ));
            }
        }
        Ok(expected - 1)
    }

    /// Every pending delivery is in the due index at its next attempt, and nothing
    /// else is; every body can be rendered (a referenced order and fulfillment exist).
    fn outbox(&mut self) -> Res<()> {
        let outbox = self.txn.open_table(tables::OUTBOX)?;
        let due = self.txn.open_table(tables::OUTBOX_DUE)?;
        let failed_index = self.txn.open_table(tables::FAILED_DELIVERIES)?;
        let mut indexed = std::collections::BTreeSet::new();
        for entry in due.iter()? {
            let (k, _) = entry?;
            let (at_ms, id) = k.value();
            indexed.insert((at_ms, id.to_owned()));
        }
        for entry in outbox.iter()? {
            let (k, v) = entry?;
            let what = format!("delivery {}", k.value());
            let Some(d) = self.decode::<Delivery>(&what, v.value()) else {
                continue;
            };
            if let Err(p) = crate::store::outbox::render_body(self.txn, &d) {
                self.fail(p.detail); // It names the delivery.
            }
            if d.status == DeliveryStatus::Failed && failed_index.get(d.id.as_str())?.is_none() {
                self.fail(format!("{what} failed but is not in the failed index"));
            }
            let was_due = indexed.remove(&(d.next_attempt_at_ms, d.id.clone()));
            if (d.status == DeliveryStatus::Pending) != was_due {
                self.fail(format!(
                    "{what} is {} but due-indexed: {was_due}",
                    d.status.as_str()
                ));
            }
        }
        for (_, id) in indexed {
            self.fail(format!("due index names delivery {id} that is not pending"));
        }
        for entry in failed_index.iter()? {
            let (k, _) = entry?;
            let d = outbox
                .get(k.value())?
                .map(|v| codec::decode::<Delivery>(v.value()));
            if !matches!(d, Some(Ok(ref d)) if d.status == DeliveryStatus::Failed) {
                self.fail(format!(
                    "failed index names delivery {} that has not failed",
                    k.value()
                ));
            }
        }
        Ok(())
    }

    /// Every pending deadline belongs to a fulfillment still waiting for that step,
    /// at the time the fulfillment says; open-breach counts match the breaches.
    fn sla(&mut self, orders: &BTreeMap<String, Order>) -> Res<()> {
        let fulfillments: BTreeMap<&str, &crate::domain::Fulfillment> = orders
            .values()
            .flat_map(|o| o.fulfillments.iter().map(|f| (f.id.as_str(), f)))
            .collect();
        let deadlines = self.txn.open_table(tables::DEADLINES)?;
        let mut armed = std::collections::BTreeSet::new();
        for entry in deadlines.iter()? {
            let (k, _) = entry?;
            let (at_ms, id, stage) = k.value();
            if !armed.insert(id.to_owned()) {
                self.fail(format!("{id} has more than one pending deadline"));
            }
            let (Some(f), Some(stage)) = (fulfillments.get(id), Stage::from_u8(stage)) else {
                self.fail(format!("deadline of {id} names no fulfillment or stage"));
                continue;
            };
            use crate::domain::FulfillmentStatus as F;
            let waiting = match stage {
                Stage::Ack => f.status == F::Routed,
                Stage::Ship => f.status.holds_allocation(),
                Stage::Deliver => matches!(f.status, F::Routed | F::Acknowledged | F::Shipped),
            };
            if f.deadline_ms(stage) != at_ms || !waiting {
                self.fail(format!(
                    "{id} has a {} deadline but is {}",
                    stage.as_str(),
                    f.status.as_str()
                ));
            }
        }
        let mut open: BTreeMap<String, u64> = BTreeMap::new();
        let breaches = self.txn.open_table(tables::BREACHES)?;
        for entry in breaches.iter()? {
            let (k, v) = entry?;
            let what = format!("breach {}/{}", k.value().0, k.value().1);
            if let Some(b) = self.decode::<Breach>(&what, v.value())
                && b.closed_at_ms.is_none()
            {
                *open.entry(b.supplier).or_default() += 1;
            }
        }
        let counts = self.txn.open_table(tables::OPEN_BREACHES)?;
        for entry in counts.iter()? {
            let (k, v) = entry?;
            let want = open.remove(k.value()).unwrap_or(0);
            if v.value() != want {
                self.fail(format!(
                    "supplier {} counts {} open breaches but has {want}",
                    k.value(),
                    v.value()
                ));
            }
        }
        for (supplier, n) in open {
            self.fail(format!(
                "supplier {supplier} has {n} open breaches but no count"
            ));
        }
        Ok(())
    }

    fn idempotency(&mut self, orders: &BTreeMap<String, Order>) -> Res<()> {
        let t = self.txn.open_table(tables::IDEMPOTENCY)?;
        for entry in t.iter()? {
            let (k, v) = entry?;
            let (channel, key) = k.value();
            let what = format!("idempotency key {channel}/{key}");
            if let Some(r) = self.decode::<IdempotencyRecord>(&what, v.value())
                && !orders.contains_key(&r.order)
            {
                self.fail(format!("{what} points at missing order {}", r.order));
            }
        }
        Ok(())
    }
}
