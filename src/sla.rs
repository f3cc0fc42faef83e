//! The SLA timer: one task that sleeps until the earliest deadline in the
//! schedule (woken early when an earlier one is added), fires what is due through
//! the store writer, and refills the schedule from the store's due index when it
//! runs dry. At start-up the schedule is empty, so the first pass loads the store's
//! earliest deadlines and fires every one that passed while the daemon was down.

use std::sync::Arc;
use std::time::Duration;

use redb::ReadableTable;

use crate::problem::Problem;
use crate::schedule::DeadlineKey;
use crate::server::App;
use crate::store::{sla, tables};

/// Deadlines fired in one store command.
pub const FIRE_BATCH_MAX: usize = 1_000;
/// Longest the timer sleeps before looking again (a manual clock in tests moves
/// without telling anyone).
pub const IDLE_WAKE_MS: u64 = 250;

pub async fn run(app: Arc<App>) {
    let schedule = &app.live.deadlines;
    loop {
        // The read takes up to 65,536 entries: off the runtime's worker threads.
        let refilled = if schedule.needs_refill() {
            let app = app.clone();
            tokio::task::spawn_blocking(move || refill(&app))
                .await
                .unwrap_or_else(|e| {
                    schedule.abort_refill();
                    Err(Problem::internal(format!("the refill failed: {e}")))
                })
        } else {
            Ok(())
        };
        if let Err(p) = refilled {
            tracing::error!(detail = %p.detail, "cannot read the deadline index");
            tokio::time::sleep(Duration::from_millis(IDLE_WAKE_MS)).await;
            continue;
        }
        let now_ms = app.clock.now_ms();
        let due = schedule.take_due(now_ms, FIRE_BATCH_MAX);
        if !due.is_empty() {
            if let Err(p) = fire(&app, due.clone()).await {
                tracing::warn!(detail = %p.detail, "could not fire deadlines together");
                fire_one_by_one(&app, due).await;
            }
            continue;
        }
        let wait_ms = schedule.next_ms().map_or(IDLE_WAKE_MS, |next| {
            next.saturating_sub(now_ms).min(IDLE_WAKE_MS)
        });
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            () = schedule.wake.notified() => {}
        }
    }
}

async fn fire(app: &App, due: Vec<DeadlineKey>) -> Result<usize, Problem> {
    let live = app.live.clone();
    app.writer.write(move |tx| sla::fire(tx, &live, due)).await
}

/// After a failed batch: each deadline in a command of its own, so one that cannot
/// fire (a record the store cannot make sense of) does not hold back the others.
/// One answered 503 (a busy writer, or a batch another command abandoned) is kept
/// to retry; one whose own firing fails is logged and left in the store's due
/// index only, where the next refill that reaches it, or the next start, finds it.
async fn fire_one_by_one(app: &App, due: Vec<DeadlineKey>) {
    let mut busy = false;
    for key in due {
        match fire(app, vec![key.clone()]).await {
            Ok(_) => {}
            Err(p) if p.status == 503 => {
                busy = true;
                app.live.deadlines.add(key);
            }
            Err(p) => {
                let (at_ms, fulfillment, stage) = &key;
                tracing::error!(%fulfillment, stage, at_ms, detail = %p.detail, "deadline could not fire");
            }
        }
    }
    if busy {
        tokio::time::sleep(Duration::from_millis(IDLE_WAKE_MS)).await;
    }
}

/// Loads the store's earliest deadlines into the schedule.
fn refill(app: &App) -> Result<(), Problem> {
    let schedule = &app.live.deadlines;
    schedule.begin_refill();
    match read_earliest(app, schedule.capacity()) {
        Ok((earliest, next)) => {
            schedule.refill(earliest, next);
            Ok(())
        }
        Err(p) => {
            schedule.abort_refill();
            Err(p)
        }
    }
}

/// The store's first `capacity` deadlines, and the one after them if any.
fn read_earliest(
    app: &App,
    capacity: usize,
) -> Result<(Vec<DeadlineKey>, Option<DeadlineKey>), Problem> {
    let txn = app.store.read()?;
    let index = txn.open_table(tables::DEADLINES)?;
    let mut earliest = Vec::with_capacity(capacity.min(4_096));
    for entry in index.iter()?.take(capacity + 1) {
        let (k, _) = entry?;
        let (at_ms, fulfillment, stage) = k.value();
        earliest.push((at_ms, fulfillment.to_owned(), stage));
    }
    let next = if earliest.len() > capacity {
        earliest.pop()
    } else {
        None
    };
    Ok((earliest, next))
}
