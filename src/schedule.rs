//! The in-memory deadline schedule: the earliest deadlines of the store's due
//! index, at most `capacity` of them, so a million pending deadlines need not be a
//! million entries in memory. The store stays the truth: an entry here that the
//! store no longer has (its step was taken) is skipped when it fires.
//!
//! Invariant: every deadline in the store below `limit` is in the set (or being
//! fired), but for one whose firing failed on an inconsistent record, which the
//! SLA timer logs and leaves to the next refill or start. Deadlines at or above `limit` may be only in the store; they are loaded
//! by a refill once the set runs dry. No limit means the set holds them all.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::clock::Millis;

/// (deadline, fulfillment id, stage).
pub type DeadlineKey = (Millis, String, u8);

/// A limit below every deadline: the schedule knows nothing of the store.
const KNOWS_NOTHING: DeadlineKey = (0, String::new(), 0);

pub struct DeadlineSchedule {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Rung when a deadline earlier than every other is added.
    pub wake: Notify,
}

struct Inner {
    set: BTreeSet<DeadlineKey>,
    /// The smallest deadline the store may hold that the set does not.
    limit: Option<DeadlineKey>,
    /// A refill is reading the store: whatever is added meanwhile is kept, since
    /// the refill's snapshot may predate it.
    refilling: bool,
    /// The smallest key evicted while refilling.
    evicted_while_refilling: Option<DeadlineKey>,
}

impl DeadlineSchedule {
    /// An empty schedule that does not yet know the store (needs a refill).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                set: BTreeSet::new(),
                limit: Some(KNOWS_NOTHING),
                refilling: false,
                evicted_while_refilling: None,
            }),
            capacity: capacity.max(1),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the set inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A committed deadline (also: one taken to fire but not fired after all).
    pub fn add(&self, key: DeadlineKey) {
        let mut inner = self.lock();
        if !inner.refilling && inner.limit.as_ref().is_some_and(|l| key >= *l) {
            return; // The store has it; a refill will bring it.
        }
        let first = inner.set.first().is_none_or(|f| key < *f);
        inner.set.insert(key);
        self.trim(&mut inner);
        drop(inner);
        if first {
            self.wake.notify_one();
        }
    }

    /// Drops the latest entries past the capacity, lowering the limit to them.
    fn trim(&self, inner: &mut Inner) {
        while inner.set.len() > self.capacity {
            let Some(evicted) = inner.set.pop_last() else {
                break;
            };
            let slot = if inner.refilling {
                &mut inner.evicted_while_refilling
            } else {
                &mut inner.limit
            };
            if slot.as_ref().is_none_or(|l| evicted < *l) {
                *slot = Some(evicted);
            }
        }
    }

    /// A deadline met (its step was taken) or gone.
    pub fn remove(&self, key: &DeadlineKey) {
        self.lock().set.remove(key);
    }

    /// Takes up to `max` entries due at `now_ms`.
    pub fn take_due(&self, now_ms: Millis, max: usize) -> Vec<DeadlineKey> {
        let mut inner = self.lock();
        let mut due = Vec::new();
        while due.len() < max && inner.set.first().is_some_and(|f| f.0 <= now_ms) {
            due.extend(inner.set.pop_first());
        }
        due
    }

    /// The earliest deadline held.
    pub fn next_ms(&self) -> Option<Millis> {
        self.lock().set.first().map(|k| k.0)
    }

    /// Whether the store may hold deadlines this schedule does not, and none are
    /// left here to fire first.
    pub fn needs_refill(&self) -> bool {
        let inner = self.lock();
        inner.set.is_empty() && inner.limit.is_some() && !inner.refilling
    }

    /// Call before reading the store for [`Self::refill`].
    pub fn begin_refill(&self) {
        let mut inner = self.lock();
        inner.refilling = true;
        inner.evicted_while_refilling = None;
    }

    /// Merges the store's earliest deadlines in. `next` is the first deadline the
    /// read left out (None: it read them all).
    pub fn refill(&self, earliest: Vec<DeadlineKey>, next: Option<DeadlineKey>) {
        let mut inner = self.lock();
        inner.set.extend(earliest);
        let evicted = inner.evicted_while_refilling.take();
        inner.limit = match (next, evicted) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        inner.refilling = false;
        self.trim(&mut inner);
        // What was added during the read at or past the new limit is in the store
        // too; kept here, it would stand in for the earlier ones only the store has.
        if let Some(limit) = inner.limit.clone() {
            inner.set.split_off(&limit);
        }
    }

    /// Ends a refill whose read failed: nothing was learnt, so everything is left
    /// to the next one.
    pub fn abort_refill(&self) {
        self.refill(Vec::new(), Some(KNOWS_NOTHING));
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.lock().set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(at: Millis) -> DeadlineKey {
        (at, format!("ful_{at}"), 0)
    }

    #[test]
    fn keeps_only_the_earliest_and_knows_what_it_left_out() {
        let s = DeadlineSchedule::new(2);
        assert!(s.needs_refill());
        s.begin_refill();
        s.refill(vec![], None);
        assert!(!s.needs_refill());
        s.add(k(30));
        s.add(k(10));
        s.add(k(20)); // evicts 30: the store has more than the schedule now
        assert_eq!(s.len(), 2);
        s.add(k(40)); // past the limit: stays in the store only
        assert_eq!(s.take_due(15, 10), vec![k(10)]);
        assert_eq!(s.take_due(25, 10), vec![k(20)]);
        assert!(s.needs_refill(), "30 and 40 are only in the store");
        s.begin_refill();
        s.refill(vec![k(30), k(40)], Some(k(50)));
        assert_eq!(s.len(), 2);
        assert_eq!(s.next_ms(), Some(30));
    }

    #[test]
    fn a_later_deadline_added_to_a_drained_schedule_does_not_hide_earlier_ones() {
        let s = DeadlineSchedule::new(1);
        s.begin_refill();
        s.refill(vec![k(10)], Some(k(20))); // the store also holds 20
        assert_eq!(s.take_due(10, 10), vec![k(10)]);
        // A new deadline far out while the set is empty and 20 is in the store only.
        s.add(k(99));
        assert!(s.is_empty(), "99 is past the limit; 20 must come first");
        assert!(s.needs_refill());
    }

    #[test]
    fn deadlines_added_during_a_refill_past_its_limit_wait_for_the_next() {
        let s = DeadlineSchedule::new(4);
        s.begin_refill();
        s.add(k(99)); // committed during the read, later than what the read left out
        s.refill(vec![k(10)], Some(k(20)));
        assert_eq!(s.take_due(u64::MAX, 10), vec![k(10)]);
        assert!(
            s.needs_refill(),
            "20, only in the store, must come before 99"
        );
    }

    #[test]
    fn a_failed_refill_leaves_everything_to_the_next() {
        let s = DeadlineSchedule::new(4);
        s.begin_refill();
        s.add(k(99));
        s.abort_refill();
        assert!(s.is_empty());
        assert!(s.needs_refill());
    }

    #[test]
    fn deadlines_added_during_a_refill_are_kept() {
        let s = DeadlineSchedule::new(4);
        s.begin_refill();
        s.add(k(5)); // committed after the refill's snapshot was taken
        s.refill(vec![k(10)], None);
        assert_eq!(s.take_due(100, 10), vec![k(5), k(10)]);
        assert!(!s.needs_refill());
        s.add(k(7));
        s.remove(&k(7)); // met before it fell due
        assert!(s.take_due(u64::MAX, 10).is_empty());
    }
}
