//! The reservation table: the hot checkout path, answered from memory.
//!
//! Per SKU one `AtomicU64` packs `on_hand` (high 32 bits) and `used` (low 32 bits,
//! allocated + reserved units). A reserve is a CAS loop that raises `used` only if
//! `used + qty <= on_hand - safety_stock - channel_buffer`; nothing else takes units,
//! so no interleaving can sell a unit that is not there. Reservations live in a
//! fixed array of slots (`reservations_max`) claimed through a lock-free queue of
//! free slot numbers; a reservation id names its slot and the slot's generation, so
//! finding one is an index, not a lookup. No mutex is on the path of a reserve,
//! release or claim.
//!
//! Invariant (asserted by the stress and model tests): for every SKU,
//! `reserved + allocated <= on_hand - safety_stock` holds after every reserve; later
//! stock reports may lower `on_hand` below it, which only stops new reserves.
//! This module knows atomics; it does not know the store, HTTP or JSON.

use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::clock::Millis;
use crate::domain::channel_buffer;
use crate::ids;

/// A channel's buffer rule, applied at reserve time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffer {
    pub units: u32,
    pub pct: u32,
}

/// Units of one SKU, as the table sees them at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Levels {
    pub on_hand: u32,
    pub allocated: u32,
    pub reserved: u32,
    pub safety_stock: u32,
}

impl Levels {
    /// What a channel with `buffer` may still sell: never below 0.
    pub fn available(&self, buffer: Buffer) -> u32 {
        let buffer = channel_buffer(buffer.units, buffer.pct, self.on_hand as u64);
        (self.on_hand as u64)
            .saturating_sub(self.allocated as u64 + self.reserved as u64)
            .saturating_sub(self.safety_stock as u64)
            .saturating_sub(buffer) as u32
    }
}

#[derive(Default)]
struct SkuSlot {
    /// on_hand << 32 | used, where used = allocated + reserved.
    stock: AtomicU64,
    allocated: AtomicU32,
    safety_stock: AtomicU32,
}

const fn pack(on_hand: u32, used: u32) -> u64 {
    ((on_hand as u64) << 32) | used as u64
}
const fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// One line of a reservation: a SKU's slot in the table and its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLine {
    pub sku_slot: u32,
    pub qty: u32,
}

/// A cart hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub channel: Arc<str>,
    pub lines: Vec<HeldLine>,
    pub expires_at_ms: Millis,
}

const FREE: u64 = 0;
const LIVE: u64 = 1;
const CLAIMED: u64 = 2;

/// One reservation slot. `state` is `generation << 2 | status`; whoever moves it
/// from LIVE to CLAIMED owns the hold behind `hold` until it frees the slot.
#[derive(Default)]
struct HoldSlot {
    state: AtomicU64,
    expires_at_ms: AtomicU64,
    hold: AtomicPtr<Hold>,
}

/// Why a reserve was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveError {
    /// Not enough units: each line's request and what was available when tried.
    Insufficient(Vec<(u32, u32, u32)>),
    /// Every reservation slot is taken (`reservations_max`).
    Full,
}

/// Why a reservation could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimError {
    /// No such reservation (never made, already used or released, or another
    /// channel's).
    Unknown,
    /// It expired; its units have been given back.
    Expired,
}

pub struct ReservationTable {
    skus: Box<[SkuSlot]>,
    holds: Box<[HoldSlot]>,
    free_holds: ArrayQueue<u32>,
    sweep_cursor: AtomicUsize,
    live_holds: AtomicUsize,
}

impl ReservationTable {
    /// A table with room for `skus_max` SKUs and `reservations_max` live holds.
    pub fn new(skus_max: usize, reservations_max: usize) -> Self {
        let free_holds = ArrayQueue::new(reservations_max);
        for i in 0..reservations_max {
            // The queue is exactly as large as the slots, so this never fails.
            let _ = free_holds.push(i as u32);
        }
        Self {
            skus: (0..skus_max).map(|_| SkuSlot::default()).collect(),
            holds: (0..reservations_max).map(|_| HoldSlot::default()).collect(),
            free_holds,
            sweep_cursor: AtomicUsize::new(0),
            live_holds: AtomicUsize::new(0),
        }
    }

    pub fn skus_max(&self) -> usize {
        self.skus.len()
    }

    pub fn live_reservations(&self) -> usize {
        self.live_holds.load(Ordering::Relaxed)
    }

    pub fn levels(&self, sku_slot: u32) -> Levels {
        let s = &self.skus[sku_slot as usize];
        let (on_hand, used) = unpack(s.stock.load(Ordering::Acquire));
        let allocated = s.allocated.load(Ordering::Acquire);
        Levels {
            on_hand,
            allocated,
            // Loaded apart from `used`, so a reader may briefly see an order's
            // allocation before its release; the display clamps, the check does not
            // use it.
            reserved: used.saturating_sub(allocated),
            safety_stock: s.safety_stock.load(Ordering::Acquire),
        }
    }

    /// Takes `qty` units of a SKU if a channel with `buffer` may sell them; returns
    /// the units available when refused.
    pub fn try_take(&self, sku_slot: u32, qty: u32, buffer: Buffer) -> Result<(), u32> {
        let s = &self.skus[sku_slot as usize];
        let safety = s.safety_stock.load(Ordering::Acquire) as u64;
        let mut word = s.stock.load(Ordering::Acquire);
        loop {
            let (on_hand, used) = unpack(word);
            let buffer = channel_buffer(buffer.units, buffer.pct, on_hand as u64);
            let limit = (on_hand as u64).saturating_sub(safety + buffer);
            if used as u64 + qty as u64 > limit {
                return Err(limit.saturating_sub(used as u64) as u32);
            }
            match s.stock.compare_exchange_weak(
                word,
                pack(on_hand, used + qty),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => word = now,
            }
        }
    }

    /// Gives back units taken by [`Self::try_take`] that were never allocated.
    pub fn give_back(&self, sku_slot: u32, qty: u32) {
        let prev = self.skus[sku_slot as usize]
            .stock
            .fetch_sub(qty as u64, Ordering::AcqRel);
        debug_assert!(unpack(prev).1 >= qty, "gave back more than was taken");
    }

    /// Records taken units as allocated to an order (they stay `used`).
    pub fn allocate_taken(&self, sku_slot: u32, qty: u32) {
        self.skus[sku_slot as usize]
            .allocated
            .fetch_add(qty, Ordering::AcqRel);
    }

    /// Sets a SKU's committed totals: `on_hand` and `allocated` summed over its
    /// approved suppliers. `used` moves by the change in `allocated`, so live
    /// reservations stay held. Called by the store writer only (after a commit), so
    /// `allocated` has one writer and reading its old value here is race-free.
    pub fn set_totals(&self, sku_slot: u32, on_hand: u32, allocated: u32) {
        let s = &self.skus[sku_slot as usize];
        let old_allocated = s.allocated.load(Ordering::Acquire);
        let mut word = s.stock.load(Ordering::Acquire);
        loop {
            let (_, used) = unpack(word);
            let used = (used as i64 - old_allocated as i64 + allocated as i64).max(0) as u32;
            match s.stock.compare_exchange_weak(
                word,
                pack(on_hand, used),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        s.allocated.store(allocated, Ordering::Release);
    }

    pub fn set_safety_stock(&self, sku_slot: u32, safety_stock: u32) {
        self.skus[sku_slot as usize]
            .safety_stock
            .store(safety_stock, Ordering::Release);
    }

    /// Takes every line or none: on the first line that does not fit, the lines
    /// already taken are given back.
    pub fn take_all(&self, lines: &[HeldLine], buffer: Buffer) -> Result<(), ReserveError> {
        for (i, line) in lines.iter().enumerate() {
            if self.try_take(line.sku_slot, line.qty, buffer).is_err() {
                for done in &lines[..i] {
                    self.give_back(done.sku_slot, done.qty);
                }
                // Report every line's standing, so the storefront can fix the cart.
                let report = lines
                    .iter()
                    .map(|l| {
                        let available = self.levels(l.sku_slot).available(buffer);
                        (l.sku_slot, l.qty, available)
                    })
                    .collect();
                return Err(ReserveError::Insufficient(report));
            }
        }
        Ok(())
    }

    /// Reserves all lines for `channel` until `expires_at_ms`; returns the new id.
    pub fn reserve(
        &self,
        hold: Hold,
        buffer: Buffer,
        now_ms: Millis,
        random: u16,
    ) -> Result<String, ReserveError> {
        self.take_all(&hold.lines, buffer)?;
        let Some(index) = self.free_holds.pop() else {
            for line in &hold.lines {
                self.give_back(line.sku_slot, line.qty);
            }
            return Err(ReserveError::Full);
        };
        let slot = &self.holds[index as usize];
        let generation = slot.state.load(Ordering::Acquire) >> 2;
        slot.expires_at_ms
            .store(hold.expires_at_ms, Ordering::Relaxed);
        slot.hold
            .store(Box::into_raw(Box::new(hold)), Ordering::Relaxed);
        // Publishing LIVE (Release) makes the hold and expiry visible to a claimer.
        slot.state.store(generation << 2 | LIVE, Ordering::Release);
        self.live_holds.fetch_add(1, Ordering::Relaxed);
        Ok(hold_id(now_ms, index, generation as u32, random))
    }

    /// Takes a live reservation out of the table for `channel` (None: any channel),
    /// with its units still taken. Expired ones are given back and refused.
    pub fn claim(
        &self,
        id: &str,
        channel: Option<&str>,
        now_ms: Millis,
    ) -> Result<Hold, ClaimError> {
        let (index, generation) = parse_hold_id(id).ok_or(ClaimError::Unknown)?;
        let slot = self.holds.get(index as usize).ok_or(ClaimError::Unknown)?;
        let live = (generation as u64) << 2 | LIVE;
        slot.state
            .compare_exchange(
                live,
                (generation as u64) << 2 | CLAIMED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map_err(|_| ClaimError::Unknown)?;
        // SAFETY: the successful CAS to CLAIMED makes this thread the hold's only
        // owner; the pointer was stored before LIVE was published.
        let hold_ptr = slot.hold.load(Ordering::Acquire);
        if channel.is_some_and(|c| unsafe { &*hold_ptr }.channel.as_ref() != c) {
            // Not the asker's: put it back untouched.
            slot.state.store(live, Ordering::Release);
            return Err(ClaimError::Unknown);
        }
        let hold = self.free_slot(index, generation);
        if hold.expires_at_ms <= now_ms {
            self.give_back_all(&hold.lines);
            return Err(ClaimError::Expired);
        }
        Ok(hold)
    }

    /// Releases a reservation at once (DELETE). Returns whether it was live.
    pub fn release(&self, id: &str, channel: Option<&str>, now_ms: Millis) -> bool {
        match self.claim(id, channel, now_ms) {
            Ok(hold) => {
                self.give_back_all(&hold.lines);
                true
            }
            Err(ClaimError::Expired) => true,
            Err(ClaimError::Unknown) => false,
        }
    }

    pub fn give_back_all(&self, lines: &[HeldLine]) {
        for line in lines {
            self.give_back(line.sku_slot, line.qty);
        }
    }

    /// Looks at up to `slots_max` slots from where the last sweep stopped and
    /// releases the expired holds among them. Returns how many it released.
    pub fn sweep(&self, now_ms: Millis, slots_max: usize) -> usize {
        let n = self.holds.len();
        let start = self.sweep_cursor.fetch_add(slots_max, Ordering::Relaxed) % n;
        let mut released = 0;
        for k in 0..slots_max.min(n) {
            let index = (start + k) % n;
            let slot = &self.holds[index];
            let state = slot.state.load(Ordering::Acquire);
            if state & 3 != LIVE || slot.expires_at_ms.load(Ordering::Relaxed) > now_ms {
                continue;
            }
            let generation = (state >> 2) as u32;
            if slot
                .state
                .compare_exchange(
                    state,
                    (state & !3) | CLAIMED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                let hold = self.free_slot(index as u32, generation);
                self.give_back_all(&hold.lines);
                released += 1;
            }
        }
        released
    }

    /// Frees a CLAIMED slot (bumping its generation, so old ids stop matching) and
    /// returns its hold.
    fn free_slot(&self, index: u32, generation: u32) -> Hold {
        let slot = &self.holds[index as usize];
        let hold_ptr = slot.hold.swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: only the CLAIMED owner gets here, and the pointer came from
        // Box::into_raw in `reserve`; swapping in null means nobody frees it twice.
        let hold = *unsafe { Box::from_raw(hold_ptr) };
        let next = (generation.wrapping_add(1) as u64) << 2 | FREE;
        slot.state.store(next, Ordering::Release);
        self.live_holds.fetch_sub(1, Ordering::Relaxed);
        // The queue has room for every slot, so a freed slot always fits.
        let _ = self.free_holds.push(index);
        hold
    }
}

impl Drop for ReservationTable {
    fn drop(&mut self) {
        for slot in self.holds.iter() {
            let p = slot.hold.swap(ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: the table is being dropped, so nobody else holds the slot.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

/// `res_` + a ULID whose random part is `slot:32 | generation:32 | random:16`.
fn hold_id(now_ms: Millis, index: u32, generation: u32, random: u16) -> String {
    let bits = (index as u128) << 48 | (generation as u128) << 16 | random as u128;
    ids::make(ids::Kind::Reservation, now_ms, bits)
}

fn parse_hold_id(id: &str) -> Option<(u32, u32)> {
    let bits = ids::parse(ids::Kind::Reservation, id)?.random();
    Some(((bits >> 48) as u32, (bits >> 16) as u32))
}

#[cfg(test)]
mod tests;
