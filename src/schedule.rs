//! The in-memory deadline schedule: the earliest deadlines of the store's due
//! index, at most `capacity` of them, so a million pending deadlines need not be a
//! million entries in memory. The store stays the truth: an entry here that the
//! store no longer has (its step was taken) is skipped when it fires.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::clock::Millis;

/// (deadline, fulfillment id, stage).
pub type DeadlineKey = (Millis, String, u8);

pub struct DeadlineSchedule {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Rung when a deadline earlier than every other is added.
    pub wake: Notify,
}

struct Inner {
    set: BTreeSet<DeadlineKey>,
    /// Whether `set` holds every deadline the store has (none was left out).
    complete: bool,
}

impl DeadlineSchedule {
    /// An empty schedule that does not yet know the store (needs a refill).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                set: BTreeSet::new(),
                complete: false,
            }),
            capacity: capacity.max(1),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the set inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A committed deadline. Kept if it is among the earliest `capacity`.
    pub fn add(&self, key: DeadlineKey) {
        let mut inner = self.lock();
        let first = inner.set.first().is_none_or(|f| key < *f);
        let below_last = inner.set.last().is_none_or(|l| key < *l);
        if inner.set.len() < self.capacity && (inner.complete || below_last) {
            inner.set.insert(key);
        } else if below_last {
            inner.set.insert(key);
            inner.set.pop_last();
            inner.complete = false;
        } else {
            inner.complete = false;
        }
        drop(inner);
        if first {
            self.wake.notify_one();
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

    /// Whether the store may hold deadlines this schedule does not.
    pub fn needs_refill(&self) -> bool {
        let inner = self.lock();
        inner.set.is_empty() && !inner.complete
    }

    /// Merges the store's earliest deadlines in; `complete` says the store had no
    /// more than those.
    pub fn refill(&self, earliest: Vec<DeadlineKey>, complete: bool) {
        let mut inner = self.lock();
        inner.set.extend(earliest);
        inner.complete = complete;
        while inner.set.len() > self.capacity {
            inner.set.pop_last();
            inner.complete = false;
        }
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
    fn keeps_only_the_earliest_and_knows_when_it_left_some_out() {
        let s = DeadlineSchedule::new(2);
        assert!(s.needs_refill());
        s.refill(vec![], true);
        assert!(!s.needs_refill());
        s.add(k(30));
        s.add(k(10));
        s.add(k(20)); // evicts 30: the store has more than the schedule now
        assert_eq!(s.len(), 2);
        assert_eq!(s.take_due(15, 10), vec![k(10)]);
        assert_eq!(s.take_due(25, 10), vec![k(20)]);
        assert!(s.needs_refill(), "30 is only in the store");
        s.refill(vec![k(30), k(40), k(50)], false);
        assert_eq!(s.len(), 2);
        assert_eq!(s.next_ms(), Some(30));
    }

    #[test]
    fn a_later_deadline_past_a_full_schedule_waits_in_the_store() {
        let s = DeadlineSchedule::new(1);
        s.refill(vec![], true);
        s.add(k(10));
        s.add(k(99));
        assert_eq!(s.take_due(100, 10), vec![k(10)]);
        assert!(s.needs_refill());
        s.remove(&k(10));
        assert!(s.take_due(100, 10).is_empty());
    }
}
