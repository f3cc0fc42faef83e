//! The in-memory reservation table, the checkout hot path without HTTP or the store.
//!
//! - `reserve_release/uncontended`: one thread reserves one line of one SKU and
//!   releases it again (the CAS on the SKU's counter, a slot off the free queue,
//!   the hold written into it, and all of it undone). The `res_…` text id is made
//!   by the HTTP layer, not here.
//! - `try_take_give_back/uncontended`: the bare counter path: one CAS that takes a
//!   unit and one atomic subtraction that gives it back.
//! - `reserve_release/hot_sku_2_threads`: the first case on ONE SKU from two threads
//!   at once; the time is wall time for all operations of both threads, so the
//!   reported time per operation is what the pair achieves together.
//!
//! Stock is set far above what a run can take, so no reserve is ever refused.
//!
//! Run: `cargo bench --bench reservations` (`-- --quick` for a fast look).

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use marketd::clock::Millis;
use marketd::reservations::{Buffer, HeldLine, ReservationTable};

/// The SKU every case works on.
const HOT_SKU: u32 = 0;
/// Units on hand: the most a SKU may have, so nothing is ever refused.
const ON_HAND: u32 = 1_000_000_000;
/// Room for the few holds that are live at once (one per thread).
const RESERVATIONS_MAX: usize = 1_024;
/// Threads in the contended case.
const HOT_THREADS: usize = 2;
/// A fixed "now": the table only compares times, it never reads a clock.
const NOW_MS: Millis = 1_800_000_000_000;

/// A table with one well-stocked SKU.
fn stocked_table() -> ReservationTable {
    let table = ReservationTable::new(1, RESERVATIONS_MAX);
    table.set_totals(HOT_SKU, ON_HAND, 0);
    table
}

/// The channel number holds are made for.
const CHANNEL: u32 = 0;
const ONE_UNIT: [HeldLine; 1] = [HeldLine {
    sku_slot: HOT_SKU,
    qty: 1,
}];

/// One reserve of one unit of the hot SKU, then its release: one operation.
fn reserve_release(table: &ReservationTable) {
    let id = table
        .reserve(
            CHANNEL,
            black_box(&ONE_UNIT),
            Buffer::default(),
            NOW_MS + 900_000,
        )
        .expect("the bench table ran out of stock or slots");
    let released = table.release(black_box(id), Some(CHANNEL));
    assert!(released, "a fresh reservation was not live");
}

fn bench_reservations(c: &mut Criterion) {
    let mut group = c.benchmark_group("reservations");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    let table = stocked_table();
    group.bench_function("reserve_release/uncontended", |b| {
        b.iter(|| reserve_release(&table));
    });

    let table = stocked_table();
    group.bench_function("try_take_give_back/uncontended", |b| {
        b.iter(|| {
            table
                .try_take(black_box(HOT_SKU), 1, Buffer::default())
                .expect("the bench table ran out of stock");
            table.give_back(black_box(HOT_SKU), 1);
        });
    });

    let table = stocked_table();
    group.bench_function("reserve_release/hot_sku_2_threads", |b| {
        b.iter_custom(|iters| {
            // Each thread does its half; criterion divides by `iters`, so the result
            // is wall time per operation of the pair.
            let per_thread = iters.div_ceil(HOT_THREADS as u64);
            common::wall_time_on_threads(HOT_THREADS, || {
                for _ in 0..per_thread {
                    reserve_release(&table);
                }
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench_reservations);
criterion_main!(benches);
