//! Durable commands per second through the group-committing store writer.
//!
//! Every command is one closure sent with [`Writer::write_blocking`] that appends one
//! small event; a sender hears back only after the batch holding its command has been
//! committed (fsynced) by redb. With one sender every command pays a whole commit;
//! with many, the writer folds the waiting commands into one transaction, so the
//! commands per second should grow with the number of senders while the commits per
//! second stay roughly flat.
//!
//! One criterion iteration is [`COMMANDS_PER_ITER`] commands spread evenly over the
//! senders, timed as wall time from "all senders go" to "the last one is answered";
//! the throughput is reported in commands (elements) per second. After each group the
//! writer's mean batch size (commands per commit) is printed to stderr.
//!
//! Run: `cargo bench --bench store_writer` (about a minute and a half on 2 cores).

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use marketd::clock::SystemClock;
use marketd::config::Limits;
use marketd::store::{Store, Writer};

/// Concurrent sender threads, one criterion group each.
const SENDERS: [usize; 3] = [1, 16, 256];
/// Commands in one criterion iteration; a multiple of every entry of [`SENDERS`], so
/// each sender does the same share.
const COMMANDS_PER_ITER: u64 = 256;

/// One durable command: append one event and wait until its batch is on disk.
fn write_one_event(writer: &Writer) {
    writer
        .write_blocking(|tx| {
            tx.event("bench.write", "bench", "subject", serde_json::json!({}))
                .map(drop)
        })
        .expect("a durable bench write failed");
}

fn bench_store_writer(c: &mut Criterion) {
    // The daemon's own bounds, so the bench measures the writer as deployed.
    let limits = Limits::default();
    for senders in SENDERS {
        // A fresh store per group: every group starts from an empty file and its
        // metrics count only its own commands.
        let dir = tempfile::tempdir().expect("cannot make a temporary directory");
        let store = Store::open(dir.path()).expect("cannot open the bench store");
        let writer = Writer::start(
            store.database().clone(),
            Arc::new(SystemClock),
            limits.write_queue_max,
            limits.write_batch_max,
        )
        .expect("cannot start the store writer");

        let mut group = c.benchmark_group(format!("store_writer/senders_{senders}"));
        group
            .sample_size(10)
            // Iterations take milliseconds (one commit each with one sender): flat
            // sampling keeps the run inside the measurement time.
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .throughput(Throughput::Elements(COMMANDS_PER_ITER));
        group.bench_function("durable_event_write", |b| {
            b.iter_custom(|iters| {
                let per_sender = iters * COMMANDS_PER_ITER / senders as u64;
                common::wall_time_on_threads(senders, || {
                    for _ in 0..per_sender {
                        write_one_event(&writer);
                    }
                })
            });
        });
        group.finish();

        let batches = writer.metrics.batch_commands.count();
        let commands = writer.metrics.batch_commands.sum();
        eprintln!(
            "store_writer/senders_{senders}: {commands:.0} commands in {batches} commits, \
             mean batch size {:.1}",
            commands / batches.max(1) as f64
        );
        writer.shutdown();
    }
}

criterion_group!(benches, bench_store_writer);
criterion_main!(benches);
