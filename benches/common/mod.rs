//! What both benches share.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `work` on `threads` fresh threads started together, and returns the wall
/// time from the common start until the last one finished (spawning is not timed).
pub fn wall_time_on_threads(threads: usize, work: impl Fn() + Sync) -> Duration {
    let start_line = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                start_line.wait();
                work();
            });
        }
        start_line.wait();
        Instant::now()
    })
    // `scope` returns only once every thread has finished: that ends the timed span.
    .elapsed()
}
