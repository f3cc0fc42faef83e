//! The store writer: one thread, fed by a bounded crossbeam channel. It takes every
//! command that is waiting (up to `write_batch_max`), applies them all in one redb
//! write transaction, commits once (one fsync for the whole batch), then applies the
//! in-memory effects of what was committed, in commit order, and answers each sender.
//!
//! Invariant: a sender hears "done" only after its change is on disk, and memory
//! (the reservation table, caches) moves only after the commit that justifies it.
//! Invariant: a command that refuses (returns a non-store [`Problem`]) has written
//! nothing: commands check everything first, then write.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use redb::Database;
use serde::Serialize;

use super::catalog::BatchCache;
use super::{StoreError, codec, tables};
use crate::clock::{Clock, Millis};
use crate::domain::EventRef;
use crate::metrics::WriterMetrics;
use crate::problem::Problem;

/// Runs after the batch's commit with its outcome; answers the sender.
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
/// A command: applies itself inside the batch transaction and says how to answer.
type Job = Box<dyn FnOnce(&mut Tx<'_>) -> Reply + Send>;
/// An in-memory change made true by the commit.
type Effect = Box<dyn FnOnce() + Send>;

enum Msg {
    Job(Job),
    Stop,
}

/// What a command sees while it is applied: the transaction, the batch's time, and
/// the audit trail.
pub struct Tx<'a> {
    /// Every table, open for the whole batch.
    pub t: tables::Open<'a>,
    /// One instant for the whole batch, so every event in it agrees.
    pub now_ms: Millis,
    /// Catalog records this batch has decoded.
    pub cache: BatchCache,
    next_seq: u64,
    effects: Vec<Effect>,
    /// Set when a command met a store failure part-way: the batch is abandoned.
    poisoned: Option<String>,
}

impl Tx<'_> {
    /// Appends an event to the audit trail in this transaction; returns its seq.
    /// `data` is any serializable value: hot paths pass typed structs, which encode
    /// several times faster than a `serde_json::Value` tree.
    pub fn event(
        &mut self,
        kind: &str,
        actor: &str,
        subject: &str,
        data: impl Serialize,
    ) -> Result<u64, Problem> {
        let seq = self.next_seq;
        let event = EventRef {
            seq,
            at_ms: self.now_ms,
            kind,
            actor,
            subject,
            data_json: &to_json(&data)?,
        };
        let events = &mut self.t.events;
        events.insert(seq, codec::encode(&event).as_slice())?;
        let timeline = &mut self.t.subject_events;
        timeline.insert((subject, seq), ())?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Schedules an in-memory change to happen once this batch is committed.
    pub fn after_commit(&mut self, effect: impl FnOnce() + Send + 'static) {
        self.effects.push(Box::new(effect));
    }
}

/// `value` as JSON text. Fails only for maps with non-string keys, which no caller
/// builds; should it happen, the error is a store-side failure (500) and abandons
/// the batch like any other, since a command may have written before it.
pub fn to_json(value: &impl Serialize) -> Result<String, Problem> {
    serde_json::to_string(value)
        .map_err(|e| Problem::internal(format!("cannot encode a record as JSON: {e}")))
}

/// The handle commands are sent through. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    sender: Sender<Msg>,
    pub metrics: Arc<WriterMetrics>,
    thread: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Writer {
    /// Starts the writer thread over `db`.
    pub fn start(
        db: Arc<Database>,
        clock: Arc<dyn Clock>,
        queue_max: usize,
        batch_max: usize,
    ) -> Result<Self, StoreError> {
        let next_seq = {
            use redb::ReadableDatabase;
            super::last_event_seq(&db.begin_read()?)? + 1
        };
        let (sender, receiver) = crossbeam_channel::bounded(queue_max);
        let metrics = Arc::new(WriterMetrics::default());
        let mut state = WriterThread {
            db,
            clock,
            receiver,
            batch_max,
            next_seq,
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || state.run())
            .map_err(|e| StoreError::Db(format!("cannot start the store writer: {e}")))?;
        Ok(Self {
            sender,
            metrics,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Applies `command` in the next batch and answers once that batch is committed.
    pub async fn write<R, F>(&self, command: F) -> Result<R, Problem>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R, Problem> + Send + 'static,
    {
        let answer = self.submit(command)?;
        answer
            .await
            .map_err(|_| Problem::from(StoreError::Closed))?
    }

    /// [`Writer::write`] for threads outside tokio (benchmarks, `check`).
    pub fn write_blocking<R, F>(&self, command: F) -> Result<R, Problem>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R, Problem> + Send + 'static,
    {
        let answer = self.submit(command)?;
        answer
            .blocking_recv()
            .map_err(|_| Problem::from(StoreError::Closed))?
    }

    fn submit<R, F>(
        &self,
        command: F,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<R, Problem>>, Problem>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R, Problem> + Send + 'static,
    {
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |tx: &mut Tx<'_>| {
            let effects_before = tx.effects.len();
            let seq_before = tx.next_seq;
            // A command that panics must not take the writer down with it: it is
            // answered 500 like any store-side failure, which abandons the batch,
            // since the command may have written part of its change.
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| command(tx)))
                .unwrap_or_else(|_| Err(Problem::internal("a store command failed unexpectedly")));
            if let Err(problem) = &outcome {
                // A refused command leaves nothing behind, not even its effects.
                tx.effects.truncate(effects_before);
                if problem.is_store_failure() {
                    tx.poisoned = Some(problem.detail.clone());
                } else if tx.next_seq != seq_before {
                    // A refusal must come before any write; this one did not.
                    tracing::error!(detail = %problem.detail, "a refused command wrote events");
                    tx.poisoned = Some("a refused command wrote events".into());
                }
            }
            Box::new(move |committed: Result<(), &StoreError>| {
                let answer = match (committed, outcome) {
                    (Ok(()), outcome) => outcome,
                    // A command that failed (or refused) hears its own answer.
                    (Err(_), Err(own)) => Err(own),
                    // The others lost nothing but this batch: they may try again.
                    (Err(e), _) => Err(Problem::busy(format!("{e}; nothing was written"))),
                };
                let _ = answer_tx.send(answer); // The asker may have gone; that is fine.
            })
        });
        match self.sender.try_send(Msg::Job(job)) {
            Ok(()) => Ok(answer_rx),
            Err(TrySendError::Full(_)) => Err(StoreError::Busy.into()),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Closed.into()),
        }
    }

    /// Commands waiting for the writer (at most `write_queue_max`).
    pub fn queued(&self) -> usize {
        self.sender.len()
    }

    /// Commits what is queued, then stops the thread and waits for it.
    pub fn shutdown(&self) {
        let _ = self.sender.send(Msg::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

struct WriterThread {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    receiver: Receiver<Msg>,
    batch_max: usize,
    next_seq: u64,
    metrics: Arc<WriterMetrics>,
}

impl WriterThread {
    fn run(&mut self) {
        let mut batch = Vec::with_capacity(self.batch_max);
        let mut stopping = false;
        while !stopping {
            match self.receiver.recv() {
                Ok(Msg::Job(job)) => batch.push(job),
                Ok(Msg::Stop) | Err(_) => stopping = true,
            }
            // Take what else is waiting, up to the batch bound; after Stop, all of it.
            while stopping || batch.len() < self.batch_max {
                match self.receiver.try_recv() {
                    Ok(Msg::Job(job)) => batch.push(job),
                    Ok(Msg::Stop) => stopping = true,
                    Err(_) => break,
                }
                if batch.len() == self.batch_max {
                    self.commit_batch(&mut batch);
                }
            }
            if !batch.is_empty() {
                self.commit_batch(&mut batch);
            }
        }
    }

    fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        let started = Instant::now();
        let size = batch.len();
        let txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => return fail_all(batch, &StoreError::from(e)),
        };
        let mut replies: Vec<Reply> = Vec::with_capacity(size);
        let (next_seq, effects, poisoned) = {
            let open = match tables::Open::all(&txn) {
                Ok(open) => open,
                Err(e) => return fail_all(batch, &StoreError::from(e)),
            };
            let mut tx = Tx {
                t: open,
                now_ms: self.clock.now_ms(),
                cache: BatchCache::default(),
                next_seq: self.next_seq,
                effects: Vec::new(),
                poisoned: None,
            };
            for job in batch.drain(..) {
                replies.push(job(&mut tx));
            }
            (tx.next_seq, tx.effects, tx.poisoned)
            // The tables close here, writing their roots into the transaction.
        };
        let committed = match poisoned {
            // Dropping the transaction aborts it: no command of the batch lands.
            Some(why) => Err(StoreError::Db(format!("batch abandoned: {why}"))),
            None => txn.commit().map_err(StoreError::from),
        };
        match committed {
            Ok(()) => {
                self.next_seq = next_seq;
                effects.into_iter().for_each(|effect| effect());
                replies.into_iter().for_each(|reply| reply(Ok(())));
            }
            Err(e) => {
                tracing::error!(error = %e, batch = size, "store commit failed");
                replies.into_iter().for_each(|reply| reply(Err(&e)));
            }
        }
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.batch_commands.observe(size as f64);
    }
}

fn fail_all(batch: &mut Vec<Job>, e: &StoreError) {
    tracing::error!(error = %e, "store write transaction could not start");
    // Dropping a job drops its answer sender: the asker hears an error, nothing lands.
    batch.clear();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::Store;

    fn writer() -> (tempfile::TempDir, Store, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let writer =
            Writer::start(store.database().clone(), ManualClock::new(1_000), 64, 16).unwrap();
        (dir, store, writer)
    }

    fn event_count(store: &Store) -> u64 {
        crate::store::last_event_seq(&store.read().unwrap()).unwrap()
    }

    #[test]
    fn a_refused_command_leaves_nothing_and_others_land() {
        let (_dir, store, writer) = writer();
        let effect_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = effect_ran.clone();
        let refused = writer.write_blocking(move |tx| -> Result<(), Problem> {
            tx.after_commit(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
            Err(Problem::invalid("no"))
        });
        assert_eq!(refused.unwrap_err().status, 422);
        writer
            .write_blocking(|tx| tx.event("test.kept", "test", "s", json!({})).map(|_| ()))
            .unwrap();
        assert_eq!(event_count(&store), 1);
        assert!(
            !effect_ran.load(std::sync::atomic::Ordering::SeqCst),
            "a refused command's effect ran"
        );
    }

    #[test]
    fn a_panicking_command_abandons_its_batch_but_not_the_writer() {
        let (_dir, store, writer) = writer();
        let panicked = writer.write_blocking(|tx| -> Result<(), Problem> {
            tx.event("test.half", "test", "s", json!({}))?;
            panic!("a bug in a command");
        });
        assert_eq!(
            panicked.unwrap_err().status,
            500,
            "not a 503: retrying will not help"
        );
        assert_eq!(
            event_count(&store),
            0,
            "the half-written event did not land"
        );
        writer
            .write_blocking(|tx| tx.event("test.after", "test", "s", json!({})).map(|_| ()))
            .unwrap();
        assert_eq!(event_count(&store), 1);
    }

    #[test]
    fn the_others_in_an_abandoned_batch_hear_they_may_retry() {
        let (_dir, store, writer) = writer();
        // The first command holds the writer so the next two share one batch.
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let first = writer
            .submit(move |_tx| {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok::<_, Problem>(())
            })
            .unwrap();
        started.recv().unwrap();
        let kept = writer
            .submit(|tx| tx.event("test.kept", "test", "s", json!({})).map(|_| ()))
            .unwrap();
        let failing = writer
            .submit(|_tx| -> Result<(), Problem> { Err(Problem::internal("inconsistent")) })
            .unwrap();
        go.send(()).unwrap();
        first.blocking_recv().unwrap().unwrap();
        assert_eq!(
            failing.blocking_recv().unwrap().unwrap_err().detail,
            "inconsistent"
        );
        assert_eq!(kept.blocking_recv().unwrap().unwrap_err().status, 503);
        assert_eq!(event_count(&store), 0);
    }

    #[test]
    fn effects_run_after_commit_in_order() {
        let (_dir, store, writer) = writer();
        // (effect, events committed when it ran)
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let effects_seen = seen.clone();
        writer
            .write_blocking(move |tx| {
                for n in 0..3 {
                    let (seen, store) = (effects_seen.clone(), store.clone());
                    tx.after_commit(move || seen.lock().unwrap().push((n, event_count(&store))));
                }
                tx.event("test.effects", "test", "s", json!({})).map(|_| ())
            })
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(0, 1), (1, 1), (2, 1)]);
    }
}
