//! What memory keeps in front of the store for the hot path: the reservation table
//! and the lookups a checkout needs (SKU → table slot, channel buffers, api keys,
//! listings). All of it is derived from the store: rebuilt at start-up, then moved
//! only by the store writer after a commit.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use crate::domain::{Channel, DeliveryStatus, Position, Sku, Supplier, SupplierStatus};
use crate::problem::Problem;
use crate::reservations::{Buffer, HeldLine, HoldId, ReservationTable};
use crate::schedule::DeadlineSchedule;
use crate::store::{StoreError, codec, tables};

/// How many outbound deliveries are pending and failed, and the dispatcher's bell.
#[derive(Default)]
pub struct DeliveryGauges {
    pub pending: AtomicI64,
    pub failed: AtomicI64,
    /// Rung after a commit queues or re-queues a delivery.
    pub wake: tokio::sync::Notify,
}

impl DeliveryGauges {
    /// A delivery left `from` (None: it is new) for `to`.
    pub fn moved(&self, from: Option<DeliveryStatus>, to: Option<DeliveryStatus>) {
        for (status, by) in [(from, -1), (to, 1)] {
            match status {
                Some(DeliveryStatus::Pending) => self.pending.fetch_add(by, Ordering::Relaxed),
                Some(DeliveryStatus::Failed) => self.failed.fetch_add(by, Ordering::Relaxed),
                _ => 0,
            };
        }
    }
}

/// Units taken for an order that is not committed yet (straight from its lines,
/// or a claimed reservation). Dropped unused — the order was refused, its batch
/// abandoned, the writer's queue full, the asker gone — it gives them back (a
/// claimed reservation becomes live again), so an order that did not happen changes
/// nothing. [`Taken::allocate`] runs after the order's commit.
pub struct Taken {
    live: Arc<Live>,
    lines: Vec<HeldLine>,
    hold: Option<HoldId>,
}

impl Taken {
    pub fn new(live: Arc<Live>, lines: Vec<HeldLine>, hold: Option<HoldId>) -> Self {
        Self { live, lines, hold }
    }

    pub fn lines(&self) -> &[HeldLine] {
        &self.lines
    }

    /// The order committed: its units are allocated, a claimed hold is freed. Both
    /// are taken out, so the drop that follows has nothing to give back.
    pub fn allocate(mut self) {
        for line in std::mem::take(&mut self.lines) {
            self.live.table.allocate_taken(line.sku_slot, line.qty);
        }
        if let Some(hold) = self.hold.take() {
            self.live.table.finish_claim(hold);
        }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        match self.hold {
            Some(hold) => self.live.table.unclaim(hold),
            None => self.live.table.give_back_all(&self.lines),
        }
    }
}

/// A channel as the hot path needs it.
#[derive(Debug, Clone)]
pub struct ChannelView {
    pub id: Arc<str>,
    /// The channel's number in the reservation table (holds name it, not the id).
    pub slot: u32,
    pub buffer: Buffer,
}

pub struct Live {
    pub table: ReservationTable,
    pub deliveries: DeliveryGauges,
    /// The earliest SLA deadlines; the SLA timer fills it from the store.
    pub deadlines: DeadlineSchedule,
    sku_slots: papaya::HashMap<String, u32>,
    /// slot → SKU id, set once when the slot is handed out.
    sku_names: Box<[OnceLock<Arc<str>>]>,
    next_sku_slot: AtomicU32,
    channels: papaya::HashMap<String, ChannelView>,
    next_channel_slot: AtomicU32,
    channel_keys: papaya::HashMap<[u8; 32], Arc<str>>,
    listings: papaya::HashMap<(String, String), String>,
    /// Every supplier in the store, as last committed: where the dispatcher sends
    /// and what inbound webhooks are checked against. New ones stop at
    /// `limits.suppliers_max`; a store that already holds more keeps them all.
    suppliers: papaya::HashMap<String, Arc<Supplier>>,
}

impl Live {
    pub fn new(skus_max: usize, reservations_max: usize, deadlines_in_memory_max: usize) -> Self {
        Self {
            table: ReservationTable::new(skus_max, reservations_max),
            deliveries: DeliveryGauges::default(),
            deadlines: DeadlineSchedule::new(deadlines_in_memory_max),
            sku_slots: papaya::HashMap::new(),
            sku_names: (0..skus_max).map(|_| OnceLock::new()).collect(),
            next_sku_slot: AtomicU32::new(0),
            channels: papaya::HashMap::new(),
            next_channel_slot: AtomicU32::new(0),
            channel_keys: papaya::HashMap::new(),
            listings: papaya::HashMap::new(),
            suppliers: papaya::HashMap::new(),
        }
    }

    pub fn sku_slot(&self, sku: &str) -> Option<u32> {
        self.sku_slots.pin().get(sku).copied()
    }

    /// The slot of a SKU, giving it one if new. Called only by the store writer
    /// (and at start-up), so slots are handed out by one thread.
    pub fn ensure_sku_slot(&self, sku: &str) -> Result<u32, Problem> {
        if let Some(slot) = self.sku_slot(sku) {
            return Ok(slot);
        }
        let slot = self.next_sku_slot.load(Ordering::Relaxed);
        if slot as usize >= self.table.skus_max() {
            return Err(Problem::busy(format!(
                "the reservation table is full ({} SKUs); raise limits.skus_max",
                self.table.skus_max()
            )));
        }
        self.next_sku_slot.store(slot + 1, Ordering::Relaxed);
        let _ = self.sku_names[slot as usize].set(Arc::from(sku));
        self.sku_slots.pin().insert(sku.to_owned(), slot);
        Ok(slot)
    }

    /// The SKU a slot was handed out to.
    pub fn sku_name(&self, slot: u32) -> Option<Arc<str>> {
        self.sku_names.get(slot as usize)?.get().cloned()
    }

    /// Whether a new SKU would still find a slot.
    pub fn has_room_for_sku(&self) -> bool {
        (self.next_sku_slot.load(Ordering::Relaxed) as usize) < self.table.skus_max()
    }

    pub fn channel(&self, id: &str) -> Option<ChannelView> {
        self.channels.pin().get(id).cloned()
    }

    pub fn channel_by_key_hash(&self, hash: &[u8; 32]) -> Option<Arc<str>> {
        self.channel_keys.pin().get(hash).cloned()
    }

    pub fn listing_sku(&self, channel: &str, listing: &str) -> Option<String> {
        self.listings
            .pin()
            .get(&(channel.to_owned(), listing.to_owned()))
            .cloned()
    }

    /// Called by the store writer (and at start-up) only.
    pub fn put_channel(&self, channel: &Channel) {
        let slot = match self.channel(&channel.id) {
            Some(existing) => existing.slot,
            None => self.next_channel_slot.fetch_add(1, Ordering::Relaxed),
        };
        let view = ChannelView {
            id: Arc::from(channel.id.as_str()),
            slot,
            buffer: Buffer {
                units: channel.buffer_units,
                pct: channel.buffer_pct,
            },
        };
        self.channel_keys
            .pin()
            .insert(channel.api_key_hash, view.id.clone());
        self.channels.pin().insert(channel.id.clone(), view);
    }

    pub fn put_listing(&self, channel: &str, listing: &str, sku: &str) {
        self.listings
            .pin()
            .insert((channel.to_owned(), listing.to_owned()), sku.to_owned());
    }

    /// Suppliers held (all of the store's).
    pub fn supplier_count(&self) -> usize {
        self.suppliers.len()
    }

    pub fn supplier(&self, id: &str) -> Option<Arc<Supplier>> {
        self.suppliers.pin().get(id).cloned()
    }

    /// Called by the store writer (and at start-up) only.
    pub fn put_supplier(&self, supplier: Arc<Supplier>) {
        self.suppliers.pin().insert(supplier.id.clone(), supplier);
    }

    /// Builds everything from the committed store.
    pub fn rebuild(&self, txn: &ReadTransaction) -> Result<(), StoreError> {
        let skus = txn.open_table(tables::SKUS)?;
        for entry in skus.iter()? {
            let (_, v) = entry?;
            let sku: Sku = codec::decode(v.value())?;
            let slot = self
                .ensure_sku_slot(&sku.sku)
                .map_err(|p| StoreError::Db(p.detail))?;
            self.table.set_safety_stock(slot, sku.safety_stock);
        }
        for entry in txn.open_table(tables::SUPPLIERS)?.iter()? {
            let (_, v) = entry?;
            self.put_supplier(Arc::new(codec::decode::<Supplier>(v.value())?));
        }
        let positions = txn.open_table(tables::POSITIONS)?;
        let mut totals = vec![(0u64, 0u64); self.table.skus_max()];
        for entry in positions.iter()? {
            let (k, v) = entry?;
            let (supplier, sku) = k.value();
            let approved = self
                .supplier(supplier)
                .is_some_and(|s| s.status == SupplierStatus::Approved);
            let (Some(slot), true) = (self.sku_slot(sku), approved) else {
                continue;
            };
            let p: Position = codec::decode(v.value())?;
            let t = &mut totals[slot as usize];
            t.0 += p.on_hand as u64;
            t.1 += p.allocated as u64;
        }
        for (slot, (on_hand, allocated)) in totals.into_iter().enumerate() {
            if on_hand + allocated > 0 {
                self.table
                    .set_totals(slot as u32, clamp_u32(on_hand), clamp_u32(allocated));
            }
        }
        let channels = txn.open_table(tables::CHANNELS)?;
        for entry in channels.iter()? {
            let (_, v) = entry?;
            self.put_channel(&codec::decode::<Channel>(v.value())?);
        }
        // Counted from their indexes, not by reading every delivery ever made.
        let pending = txn.open_table(tables::OUTBOX_DUE)?.len()?;
        let failed = txn.open_table(tables::FAILED_DELIVERIES)?.len()?;
        self.deliveries
            .pending
            .store(pending as i64, Ordering::Relaxed);
        self.deliveries
            .failed
            .store(failed as i64, Ordering::Relaxed);
        let listings = txn.open_table(tables::LISTINGS)?;
        for entry in listings.iter()? {
            let (k, v) = entry?;
            let (channel, listing) = k.value();
            self.put_listing(channel, listing, v.value());
        }
        Ok(())
    }
}

fn clamp_u32(v: u64) -> u32 {
    v.min(u32::MAX as u64) as u32
}
