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

/// A hold's handle: its slot and the slot's generation when it was made, so a
/// handle to a hold that is gone never matches the slot's next hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldId {
    pub index: u32,
    pub generation: u32,
}

impl HoldId {
    /// `res_` + a ULID made at `now_ms` whose random part is
    /// `slot:32 | generation:32 | random:16`.
    pub fn encode(self, now_ms: Millis, random: u16) -> String {
        let bits = (self.index as u128) << 48 | (self.generation as u128) << 16 | random as u128;
        ids::make(ids::Kind::Reservation, now_ms, bits)
    }

    pub fn parse(id: &str) -> Option<Self> {
        let bits = ids::parse(ids::Kind::Reservation, id)?.random();
        Some(Self {
            index: (bits >> 48) as u32,
            generation: (bits >> 16) as u32,
        })
    }
}

/// Lines a hold keeps in its slot; a hold with more keeps them on the heap.
pub const INLINE_LINES: usize = 4;

const FREE: u64 = 0;
const LIVE: u64 = 1;
const CLAIMED: u64 = 2;

/// One reservation slot (64 bytes). `state` is `generation << 2 | status`; whoever
/// moves it from FREE (by popping the slot off the free queue) or from LIVE to
/// CLAIMED owns the other fields until it publishes or frees the slot.
#[derive(Default)]
struct HoldSlot {
    state: AtomicU64,
    expires_at_ms: AtomicU64,
    channel: AtomicU32,
    line_count: AtomicU32,
    /// `sku_slot << 32 | qty` per line, when `line_count <= INLINE_LINES`.
    inline: [AtomicU64; INLINE_LINES],
    /// Every line, when there are more than fit inline.
    spill: AtomicPtr<Vec<HeldLine>>,
}

impl HoldSlot {
    /// Calls `f` on each line. Only for the slot's owner.
    fn for_each_line(&self, mut f: impl FnMut(HeldLine)) {
        let count = self.line_count.load(Ordering::Relaxed) as usize;
        if count <= INLINE_LINES {
            for word in &self.inline[..count] {
                let w = word.load(Ordering::Relaxed);
                f(HeldLine {
                    sku_slot: (w >> 32) as u32,
                    qty: w as u32,
                });
            }
        } else {
            // SAFETY: set by the owner before publishing; only owners read it.
            let lines = unsafe { &*self.spill.load(Ordering::Relaxed) };
            lines.iter().copied().for_each(f);
        }
    }

    /// Writes the lines. Only for the slot's owner, before publishing.
    fn store_lines(&self, lines: &[HeldLine]) {
        self.line_count.store(lines.len() as u32, Ordering::Relaxed);
        if lines.len() <= INLINE_LINES {
            for (word, l) in self.inline.iter().zip(lines) {
                word.store((l.sku_slot as u64) << 32 | l.qty as u64, Ordering::Relaxed);
            }
        } else {
            let spilled = Box::into_raw(Box::new(lines.to_vec()));
            self.spill.store(spilled, Ordering::Relaxed);
        }
    }

    /// Drops spilled lines. Only for the slot's owner.
    fn clear_spill(&self) {
        let p = self.spill.swap(ptr::null_mut(), Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: made by Box::into_raw in store_lines; swapped out exactly once.
            drop(unsafe { Box::from_raw(p) });
        }
    }
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
            // Each slot starts at a random generation, so an id handed out before a
            // restart does not name the new run's hold in the same slot.
            holds: (0..reservations_max)
                .map(|_| {
                    let slot = HoldSlot::default();
                    let generation = ids::random_u128() as u32;
                    slot.state
                        .store((generation as u64) << 2 | FREE, Ordering::Relaxed);
                    slot
                })
                .collect(),
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

    /// Takes every line for channel `channel` (a number the caller chooses) until
    /// `expires_at_ms`, or nothing.
    pub fn reserve(
        &self,
        channel: u32,
        lines: &[HeldLine],
        buffer: Buffer,
        expires_at_ms: Millis,
    ) -> Result<HoldId, ReserveError> {
        self.take_all(lines, buffer)?;
        let Some(index) = self.free_holds.pop() else {
            self.give_back_all(lines);
            return Err(ReserveError::Full);
        };
        let slot = &self.holds[index as usize];
        let generation = (slot.state.load(Ordering::Acquire) >> 2) as u32;
        slot.expires_at_ms.store(expires_at_ms, Ordering::Relaxed);
        slot.channel.store(channel, Ordering::Relaxed);
        slot.store_lines(lines);
        // Publishing LIVE (Release) makes the fields above visible to a claimer.
        slot.state
            .store((generation as u64) << 2 | LIVE, Ordering::Release);
        self.live_holds.fetch_add(1, Ordering::Relaxed);
        Ok(HoldId { index, generation })
    }

    /// Moves a live hold to CLAIMED for `channel` (None: any channel); returns its
    /// slot, now owned by the caller.
    fn claim_slot(&self, id: HoldId, channel: Option<u32>) -> Option<&HoldSlot> {
        let slot = self.holds.get(id.index as usize)?;
        let live = (id.generation as u64) << 2 | LIVE;
        let claimed = (id.generation as u64) << 2 | CLAIMED;
        // Check the channel before claiming, so another channel's attempt never
        // disturbs the owner's. Seeing LIVE (Acquire) makes `channel` readable; the
        // CAS below fails if the slot moved on to another generation meanwhile.
        if slot.state.load(Ordering::Acquire) != live
            || channel.is_some_and(|c| slot.channel.load(Ordering::Relaxed) != c)
        {
            return None;
        }
        slot.state
            .compare_exchange(live, claimed, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(slot)
    }

    /// Claims a live hold for an order: its lines, with their units still taken.
    /// The hold stays claimed (nobody else can use or release it) until the caller
    /// ends it with [`Self::finish_claim`] (the order was placed) or
    /// [`Self::unclaim`] (it was not). Expired holds are given back and refused.
    pub fn claim(
        &self,
        id: HoldId,
        channel: Option<u32>,
        now_ms: Millis,
    ) -> Result<Vec<HeldLine>, ClaimError> {
        let slot = self.claim_slot(id, channel).ok_or(ClaimError::Unknown)?;
        let mut lines = Vec::with_capacity(slot.line_count.load(Ordering::Relaxed) as usize);
        slot.for_each_line(|l| lines.push(l));
        if slot.expires_at_ms.load(Ordering::Relaxed) <= now_ms {
            self.free_slot(id);
            self.give_back_all(&lines);
            return Err(ClaimError::Expired);
        }
        Ok(lines)
    }

    /// Ends a claim whose units now belong to an order: the slot is freed.
    pub fn finish_claim(&self, id: HoldId) {
        self.free_slot(id);
    }

    /// Ends a claim that came to nothing: the hold is live again, as it was.
    pub fn unclaim(&self, id: HoldId) {
        let slot = &self.holds[id.index as usize];
        slot.state
            .store((id.generation as u64) << 2 | LIVE, Ordering::Release);
    }

    /// Releases a hold at once, giving its units back. Returns whether it was there.
    pub fn release(&self, id: HoldId, channel: Option<u32>) -> bool {
        let Some(slot) = self.claim_slot(id, channel) else {
            return false;
        };
        slot.for_each_line(|l| self.give_back(l.sku_slot, l.qty));
        self.free_slot(id);
        true
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
            let index = ((start + k) % n) as u32;
            let slot = &self.holds[index as usize];
            let state = slot.state.load(Ordering::Acquire);
            if state & 3 != LIVE || slot.expires_at_ms.load(Ordering::Relaxed) > now_ms {
                continue;
            }
            let id = HoldId {
                index,
                generation: (state >> 2) as u32,
            };
            if self.release(id, None) {
                released += 1;
            }
        }
        released
    }

    /// Frees a CLAIMED slot, bumping its generation so old ids stop matching.
    fn free_slot(&self, id: HoldId) {
        let slot = &self.holds[id.index as usize];
        slot.clear_spill();
        let next = (id.generation.wrapping_add(1) as u64) << 2 | FREE;
        slot.state.store(next, Ordering::Release);
        self.live_holds.fetch_sub(1, Ordering::Relaxed);
        // The queue has room for every slot, so a freed slot always fits.
        let _ = self.free_holds.push(id.index);
    }
}

impl Drop for ReservationTable {
    fn drop(&mut self) {
        self.holds.iter().for_each(HoldSlot::clear_spill);
    }
}

#[cfg(test)]
mod tests;
