//! `marketd serve`: open the store, rebuild memory from it, start the writer and the
//! timers, serve HTTP until a signal, then drain and commit.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::{Clock, OffsetClock, SystemClock};
use crate::config::Config;
use crate::http;
use crate::http::endpoint::ROUTES;
use crate::live::Live;
use crate::metrics::HttpMetrics;
use crate::problem::Problem;
use crate::secret;
use crate::store::Tx;
use crate::store::{Store, Writer};

/// The operator token's file inside the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";
/// How often the reservation sweeper runs.
pub const SWEEP_INTERVAL_MS: u64 = 250;

/// Everything a request handler can reach.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub writer: Writer,
    pub live: Arc<Live>,
    pub clock: Arc<dyn Clock>,
    pub operator_token: String,
    pub http_metrics: HttpMetrics,
    /// Set while a backup is being written (one at a time).
    pub backup_running: std::sync::atomic::AtomicBool,
}

impl App {
    /// Opens the store in the configured data directory and rebuilds memory from it.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Self>, String> {
        config.validate().map_err(|e| e.to_string())?;
        let store = Store::open(&config.data_dir).map_err(|e| e.to_string())?;
        let limits = &config.limits;
        let live = Arc::new(Live::new(
            limits.skus_max,
            limits.reservations_max,
            limits.deadlines_in_memory_max,
        ));
        live.rebuild(&store.read().map_err(|e| e.to_string())?)
            .map_err(|e| format!("cannot rebuild memory from the store: {e}"))?;
        if live.supplier_count() > limits.suppliers_max {
            // All of them are served; only new ones are refused until under the bound.
            tracing::warn!(
                suppliers = live.supplier_count(),
                suppliers_max = limits.suppliers_max,
                "the store holds more suppliers than limits.suppliers_max"
            );
        }
        let writer = Writer::start(
            store.database().clone(),
            clock.clone(),
            config.limits.write_queue_max,
            config.limits.write_batch_max,
        )
        .map_err(|e| e.to_string())?;
        let operator_token = load_or_create_token(&config.data_dir)?;
        Ok(Arc::new(Self {
            http_metrics: HttpMetrics::new(ROUTES.iter().map(|r| r.1)),
            config,
            store,
            writer,
            live,
            clock,
            operator_token,
            backup_running: Default::default(),
        }))
    }
}

/// Reads the operator token, or makes one (mode 0600) and prints it once.
fn load_or_create_token(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join(OPERATOR_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {
            return Err(format!(
                "{} is empty; delete it to make a new token",
                path.display()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let token = secret::new_token("mko_");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    // Printed once, on stdout, never through the log.
    println!("operator token (saved in {}): {token}", path.display());
    Ok(token)
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), String> {
    let clock: Arc<dyn Clock> = match config.clock_offset_s {
        0 => Arc::new(SystemClock),
        offset_s => Arc::new(OffsetClock { offset_s }),
    };
    let app = App::open(config, clock)?;
    let listener = TcpListener::bind(app.config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", app.config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, data = %app.config.data_dir.display(), "marketd serving");
    let shutdown = shutdown_signal()?;
    // Tests and scripts read this line to find the port when listening on :0.
    println!("marketd listening on http://{addr}");
    let _ = std::io::stdout().flush();
    serve_app(app, listener, shutdown).await;
    tracing::info!("marketd stopped");
    Ok(())
}

/// Serves `app` on `listener` with its background tasks until `shutdown`; then,
/// within one `drain_timeout_s` from the signal, drains HTTP and lets the webhooks
/// in flight finish and be recorded (so they are not sent again after a restart),
/// and commits what the writer still holds.
pub async fn serve_app(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_dispatch, dispatch_stop) = tokio::sync::watch::channel(false);
    let mut dispatcher = tokio::spawn(crate::dispatch::run(app.clone(), dispatch_stop));
    let background = [
        tokio::spawn(sweep_reservations(app.clone())),
        tokio::spawn(crate::sla::run(app.clone())),
        tokio::spawn(prune_old_records(app.clone())),
    ];
    let signalled_at = std::sync::OnceLock::new();
    let shutdown = async {
        shutdown.await;
        let _ = signalled_at.set(tokio::time::Instant::now());
        let _ = stop_dispatch.send(true); // No new webhooks from here on.
    };
    http::serve(listener, app.clone(), shutdown).await;
    let drain = Duration::from_secs(app.config.limits.drain_timeout_s);
    let drain_until = signalled_at
        .get()
        .copied()
        .unwrap_or_else(tokio::time::Instant::now)
        + drain;
    if tokio::time::timeout_at(drain_until, &mut dispatcher)
        .await
        .is_err()
    {
        // Whatever is still in flight is sent again after the restart.
        tracing::warn!("webhooks still in flight after the drain deadline");
        dispatcher.abort();
    }
    for task in background {
        task.abort();
    }
    app.writer.shutdown();
}

/// Gives back the units of expired reservations, a bounded number of slots a tick.
async fn sweep_reservations(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_millis(SWEEP_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now_ms = app.clock.now_ms();
        app.live
            .table
            .sweep(now_ms, app.config.limits.sweep_slots_per_tick);
    }
}

/// How often records past their retention (inbound webhook-ids, delivered
/// deliveries) are dropped, and how many one store command looks at.
pub const PRUNE_INTERVAL_S: u64 = 600;
pub const PRUNE_BATCH_MAX: usize = 10_000;

async fn prune_old_records(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(PRUNE_INTERVAL_S));
    loop {
        tick.tick().await;
        prune_until_done(&app, "webhook ids", (), prune_webhook_ids).await;
        let from_oldest = String::new();
        let prune_delivered = crate::store::outbox::prune_delivered;
        prune_until_done(&app, "delivered deliveries", from_oldest, prune_delivered).await;
    }
}

/// A pruning command: looks at up to a batch of records from `cursor` on and says
/// where the next batch starts, or `None` when nothing past the retention is left.
type Prune<C> = fn(&mut Tx<'_>, C, usize) -> Result<Option<C>, Problem>;

/// Runs a pruning command batch after batch until it is done, so pruning keeps up
/// with any rate of new records and each command stays bounded.
async fn prune_until_done<C: Send + 'static>(app: &App, what: &str, start: C, prune: Prune<C>) {
    let mut cursor = start;
    loop {
        match app
            .writer
            .write(move |tx| prune(tx, cursor, PRUNE_BATCH_MAX))
            .await
        {
            Ok(Some(next)) => cursor = next,
            Ok(None) => return,
            Err(p) => {
                tracing::warn!(detail = %p.detail, "could not prune old {what}");
                return;
            }
        }
    }
}

/// Webhook-ids are forgotten oldest first, every one looked at: a whole batch
/// means there may be more.
fn prune_webhook_ids(tx: &mut Tx<'_>, _: (), max: usize) -> Result<Option<()>, Problem> {
    Ok((crate::store::webhooks::prune(tx, max)? == max).then_some(()))
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called,
/// not when it is first polled, so a signal right after start-up is never missed.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
    let (mut term, mut int) = (
        listen(SignalKind::terminate())?,
        listen(SignalKind::interrupt())?,
    );
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested: draining");
    })
}
