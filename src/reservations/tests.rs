use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;

use super::*;

const WEB: u32 = 7;

fn lines(lines: &[(u32, u32)]) -> Vec<HeldLine> {
    lines
        .iter()
        .map(|&(sku_slot, qty)| HeldLine { sku_slot, qty })
        .collect()
}

/// Reserves `l` for channel WEB until `expires_at_ms`.
fn hold(
    t: &ReservationTable,
    l: &[(u32, u32)],
    expires_at_ms: Millis,
) -> Result<HoldId, ReserveError> {
    t.reserve(WEB, &lines(l), NO_BUFFER, expires_at_ms)
}

const NO_BUFFER: Buffer = Buffer { units: 0, pct: 0 };

#[test]
fn reserve_respects_safety_stock_and_channel_buffer() {
    let t = ReservationTable::new(4, 8);
    t.set_safety_stock(0, 1);
    t.set_totals(0, 12, 3);
    let web = Buffer { units: 2, pct: 0 };
    // 12 - 3 - 1 - 2 = 6 sellable for this channel.
    assert_eq!(t.levels(0).available(web), 6);
    assert!(t.try_take(0, 7, web).is_err());
    assert!(t.try_take(0, 6, web).is_ok());
    assert_eq!(t.levels(0).reserved, 6);
    assert_eq!(t.levels(0).available(web), 0);
    // A channel without a buffer still sees the buffer's two units.
    assert_eq!(t.try_take(0, 3, NO_BUFFER), Err(2));
}

#[test]
fn multi_line_reserve_is_all_or_nothing() {
    let t = ReservationTable::new(4, 8);
    t.set_totals(0, 5, 0);
    t.set_totals(1, 1, 0);
    let err = hold(&t, &[(0, 3), (1, 2)], 100);
    assert_eq!(
        err,
        Err(ReserveError::Insufficient(vec![(0, 3, 5), (1, 2, 1)]))
    );
    assert_eq!(t.levels(0).reserved, 0, "the first line was given back");
    assert_eq!(t.live_reservations(), 0);
}

#[test]
fn claim_release_and_expiry_give_units_back_once() {
    let t = ReservationTable::new(2, 2);
    t.set_totals(0, 10, 0);
    let a = hold(&t, &[(0, 4)], 100).unwrap();
    let b = hold(&t, &[(0, 4)], 100).unwrap();
    assert_eq!(hold(&t, &[(0, 1)], 100), Err(ReserveError::Full));
    assert_eq!(
        t.levels(0).reserved,
        8,
        "a refused reserve gives its units back"
    );
    assert!(t.release(a, None));
    assert!(!t.release(a, None), "a released id is gone");
    assert_eq!(t.levels(0).reserved, 4);
    // Another channel cannot touch it.
    assert_eq!(t.claim(b, Some(WEB + 1), 50), Err(ClaimError::Unknown));
    assert_eq!(t.sweep(99, 10), 0);
    assert_eq!(t.sweep(100, 10), 1);
    assert_eq!(t.levels(0).reserved, 0);
    assert_eq!(t.claim(b, None, 100), Err(ClaimError::Unknown));
    // The slot is reused under a new generation; the old id does not match it.
    let c = hold(&t, &[(0, 1)], 500).unwrap();
    assert_ne!(b, c);
    assert_eq!(t.claim(b, None, 100), Err(ClaimError::Unknown));
    assert_eq!(t.claim(c, Some(WEB), 100).unwrap()[0].qty, 1);
    // Claimed: nobody else can release or sweep it; unclaimed: live as before.
    assert!(!t.release(c, None));
    assert_eq!(t.sweep(u64::MAX, 10), 0);
    t.unclaim(c);
    assert_eq!(t.levels(0).reserved, 1);
    assert!(t.release(c, Some(WEB)));
    assert_eq!(t.levels(0).reserved, 0);
}

#[test]
fn claiming_an_expired_hold_gives_it_back() {
    let t = ReservationTable::new(1, 1);
    t.set_totals(0, 3, 0);
    let a = hold(&t, &[(0, 3)], 10).unwrap();
    assert_eq!(t.claim(a, None, 10), Err(ClaimError::Expired));
    assert_eq!(t.levels(0).reserved, 0);
    assert_eq!(t.live_reservations(), 0);
}

#[test]
fn totals_move_on_hand_and_allocated_together_and_keep_holds() {
    let t = ReservationTable::new(1, 1);
    t.set_totals(0, 10, 0);
    t.try_take(0, 5, NO_BUFFER).unwrap();
    t.allocate_taken(0, 5);
    t.try_take(0, 1, NO_BUFFER).unwrap();
    // Two units ship: they leave on_hand and allocated together; the hold stays.
    t.set_totals(0, 8, 3);
    assert_eq!(
        t.levels(0),
        Levels {
            on_hand: 8,
            allocated: 3,
            reserved: 1,
            safety_stock: 0
        }
    );
    // The rest is cancelled: sellable again.
    t.set_totals(0, 8, 0);
    assert_eq!(t.levels(0).available(NO_BUFFER), 7);
}

#[test]
fn garbage_ids_are_unknown() {
    let t = ReservationTable::new(1, 1);
    for id in [
        "",
        "res_",
        "res_zzzz",
        "ord_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "res_7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
    ] {
        let unknown =
            HoldId::parse(id).is_none_or(|h| t.claim(h, None, 0) == Err(ClaimError::Unknown));
        assert!(unknown, "{id}");
    }
    // A well-formed id naming no live hold, or a slot out of range.
    let made = hold(&t, &[], 10).unwrap();
    let stale = HoldId {
        generation: made.generation + 1,
        ..made
    };
    assert_eq!(t.claim(stale, None, 0), Err(ClaimError::Unknown));
    assert_eq!(
        t.claim(
            HoldId {
                index: 9,
                generation: 0
            },
            None,
            0
        ),
        Err(ClaimError::Unknown)
    );
    let text = made.encode(1, 0xabcd);
    assert_eq!(HoldId::parse(&text), Some(made));
}

#[test]
fn holds_with_more_lines_than_fit_inline_keep_them_all() {
    let t = ReservationTable::new(8, 2);
    for sku in 0..8 {
        t.set_totals(sku, 10, 0);
    }
    let many: Vec<(u32, u32)> = (0..8).map(|sku| (sku, sku + 1)).collect();
    let id = hold(&t, &many, 100).unwrap();
    assert_eq!(t.levels(7).reserved, 8);
    let claimed = t.claim(id, Some(WEB), 0).unwrap();
    assert_eq!(claimed, lines(&many));
    t.finish_claim(id);
    t.give_back_all(&claimed);
    let id = hold(&t, &many, 100).unwrap();
    assert!(t.release(id, None));
    assert!((0..8).all(|sku| t.levels(sku).reserved == 0));
}

/// Many threads race for one hot SKU with reserve, release and order; the units
/// handed out never exceed what is there, and every unit is accounted for.
#[test]
fn many_threads_never_oversell_a_hot_sku() {
    const UNITS: u32 = 1_000;
    let t = Arc::new(ReservationTable::new(1, 4_096));
    t.set_totals(0, UNITS, 0);
    let ordered = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let t = t.clone();
            let ordered = ordered.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let qty = 1 + (i + n) % 3;
                    let Ok(id) = hold(&t, &[(0, qty)], u64::MAX) else {
                        continue;
                    };
                    let l = t.levels(0);
                    assert!(l.allocated + l.reserved <= l.on_hand, "oversold: {l:?}");
                    if i % 2 == 0 {
                        assert!(t.release(id, None));
                    } else {
                        let held = t.claim(id, None, 0).unwrap();
                        t.allocate_taken(0, held[0].qty);
                        t.finish_claim(id);
                        ordered.fetch_add(held[0].qty, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let l = t.levels(0);
    assert_eq!(l.reserved, 0);
    assert_eq!(l.allocated, ordered.load(Ordering::Relaxed));
    assert!(l.allocated <= UNITS);
    assert!(
        l.allocated >= UNITS - 2,
        "stock ran out with units left: {l:?}"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Reserve {
        sku: u32,
        qty: u32,
        ttl: u64,
        buffer: u32,
    },
    Release(usize),
    Order(usize),
    Advance(u64),
    Restock {
        sku: u32,
        on_hand: u32,
    },
    Ship {
        sku: u32,
        qty: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u32, 1..6u32, 1..20u64, 0..3u32)
            .prop_map(|(sku, qty, ttl, buffer)| Op::Reserve { sku, qty, ttl, buffer }),
        2 => (0..8usize).prop_map(Op::Release),
        2 => (0..8usize).prop_map(Op::Order),
        1 => (1..10u64).prop_map(Op::Advance),
        1 => (0..3u32, 0..30u32).prop_map(|(sku, on_hand)| Op::Restock { sku, on_hand }),
        1 => (0..3u32, 1..4u32).prop_map(|(sku, qty)| Op::Ship { sku, qty }),
    ]
}

/// The sequential model: plain numbers and a list of live holds.
#[derive(Default)]
struct Model {
    on_hand: [u32; 3],
    allocated: [u32; 3],
    holds: Vec<(HoldId, u32, u32, u64)>, // id, sku, qty, expires_at
}

impl Model {
    fn reserved(&self, sku: u32, now: u64) -> u32 {
        self.holds
            .iter()
            .filter(|h| h.1 == sku && h.3 > now)
            .map(|h| h.2)
            .sum()
    }
}

proptest! {
    #[test]
    fn table_matches_a_sequential_model(ops in proptest::collection::vec(op(), 1..120)) {
        let t = ReservationTable::new(3, 8);
        let mut m = Model { on_hand: [10, 5, 0], ..Model::default() };
        for sku in 0..3 {
            t.set_safety_stock(sku, 1);
            t.set_totals(sku, m.on_hand[sku as usize], 0);
        }
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Reserve { sku, qty, ttl, buffer } => {
                    t.sweep(now, 8);
                    m.holds.retain(|h| h.3 > now);
                    let buffer = Buffer { units: buffer, pct: 0 };
                    let s = sku as usize;
                    let free = (m.on_hand[s] as i64 - m.allocated[s] as i64
                        - m.reserved(sku, now) as i64 - 1 - buffer.units as i64).max(0);
                    let fits = qty as i64 <= free && m.holds.len() < 8;
                    let got = t.reserve(WEB, &lines(&[(sku, qty)]), buffer, now + ttl);
                    prop_assert_eq!(got.is_ok(), fits);
                    if let Ok(id) = got { m.holds.push((id, sku, qty, now + ttl)); }
                }
                Op::Release(k) if !m.holds.is_empty() => {
                    let h = m.holds.remove(k % m.holds.len());
                    prop_assert!(t.release(h.0, None));
                }
                Op::Order(k) if !m.holds.is_empty() => {
                    let h = m.holds.remove(k % m.holds.len());
                    match t.claim(h.0, None, now) {
                        Ok(held) => {
                            prop_assert!(h.3 > now);
                            t.allocate_taken(h.1, held[0].qty);
                            t.finish_claim(h.0);
                            m.allocated[h.1 as usize] += h.2;
                        }
                        Err(e) => {
                            prop_assert_eq!(e, ClaimError::Expired);
                            prop_assert!(h.3 <= now);
                        }
                    }
                }
                Op::Advance(ms) => now += ms,
                Op::Restock { sku, on_hand } => {
                    t.set_totals(sku, on_hand, m.allocated[sku as usize]);
                    m.on_hand[sku as usize] = on_hand;
                }
                Op::Ship { sku, qty } => {
                    let s = sku as usize;
                    let qty = qty.min(m.allocated[s]);
                    m.allocated[s] -= qty;
                    m.on_hand[s] = m.on_hand[s].saturating_sub(qty);
                    t.set_totals(sku, m.on_hand[s], m.allocated[s]);
                }
                _ => {}
            }
            // Expired holds the sweeper has not reached still count as reserved in
            // the table; compare after a full sweep.
            t.sweep(now, 8);
            m.holds.retain(|h| h.3 > now);
            for sku in 0..3u32 {
                let l = t.levels(sku);
                prop_assert_eq!(l.on_hand, m.on_hand[sku as usize]);
                prop_assert_eq!(l.allocated, m.allocated[sku as usize]);
                prop_assert_eq!(l.reserved, m.reserved(sku, now));
            }
        }
    }
}
