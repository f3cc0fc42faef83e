//! SLA deadlines at scale: a store holding 1,000,000 pending deadlines, the
//! daemon's memory and start-up time over it, and how late deadlines fire while
//! orders keep the store writer busy.
//!
//! Run: `cargo run --release --example deadlines` (about a minute; prints figures).
//! Options: `--pending N` (default 1,000,000), `--load-s S` (default 10),
//! `--clients C` (default 8). Everything runs in this process on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use marketd::clock::{Clock, SystemClock};
use marketd::config::Config;
use marketd::domain::Breach;
use marketd::server::App;
use marketd::store::{Store, codec, tables};
use redb::ReadableDatabase;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Pending deadlines to put in the store before start-up.
    #[arg(long, default_value_t = 1_000_000)]
    pending: u64,
    /// How long orders are placed (each order adds deadlines that fall due 1 s later).
    #[arg(long, default_value_t = 10)]
    load_s: u64,
    /// Concurrent HTTP clients placing orders.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Measure over this already filled data directory (the run re-executes itself
    /// with it, so start-up is measured in a fresh process).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
}

/// Deadlines written per transaction while filling the store.
const FILL_BATCH: u64 = 100_000;
/// Longest run of the load phase, whatever is asked.
const LOAD_S_MAX: u64 = 120;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Puts `n` deadlines 30+ days out in the store, as if that many fulfillments were
/// waiting on their suppliers.
fn fill(data: &std::path::Path, n: u64) {
    let store = Store::open(data).expect("store");
    let far_ms = SystemClock.now_ms() + 30 * 24 * 3600 * 1000;
    let mut done = 0;
    while done < n {
        let txn = store.database().begin_write().expect("txn");
        {
            let mut t = txn.open_table(tables::DEADLINES).expect("table");
            for i in done..(done + FILL_BATCH).min(n) {
                let id = format!("ful_pending{i:010}");
                t.insert((far_ms + i, id.as_str(), (i % 3) as u8), ())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
        done = (done + FILL_BATCH).min(n);
    }
}

fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn call(agent: &ureq::Agent, method: &str, url: &str, token: &str, body: Value) -> (u16, Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header(
            "idempotency-key",
            format!("dl-{}", marketd::ids::random_u128()),
        )
        .body(body.to_string())
        .expect("request");
    let mut res = agent.run(req).expect("daemon answers");
    let status = res.status().as_u16();
    let text = res.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn main() {
    let args = Args::parse();
    let Some(data) = &args.data else {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        fill(dir.path(), args.pending);
        println!(
            "filled {} pending deadlines in {:.1} s",
            args.pending,
            started.elapsed().as_secs_f64()
        );
        let status = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(std::env::args().skip(1))
            .arg("--data")
            .arg(dir.path())
            .status()
            .expect("re-run");
        std::process::exit(status.code().unwrap_or(1));
    };
    measure(&args, data);
}

fn measure(args: &Args, data: &std::path::Path) {
    let rss_before = rss_mb();
    let opening = Instant::now();
    let config = Config {
        data_dir: data.to_owned(),
        ..Config::default()
    };
    let app = App::open(config, Arc::new(SystemClock)).expect("open");
    let open_ms = opening.elapsed().as_millis();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = app.clone();
    let server = runtime.spawn(async move {
        marketd::server::serve_app(served, listener, async {
            let _ = stop_rx.await;
        })
        .await;
    });
    // Start-up is done when the SLA timer has loaded its schedule from the store.
    while app.live.deadlines.len() < app.live.deadlines.capacity().min(args.pending as usize) {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "start-up: open {open_ms} ms, schedule loaded after {} ms ({} of {} deadlines in memory); RSS {:.0} MB (before open {:.0} MB)",
        opening.elapsed().as_millis(),
        app.live.deadlines.len(),
        args.pending,
        rss_mb(),
        rss_before
    );

    let op = app.operator_token.clone();
    let agent = client();
    let supplier = json!({"name": "Slow", "sla": {"ack_within_s": 1, "ship_within_s": 86400,
        "deliver_within_s": 172800}, "commission_bps": 0});
    call(
        &agent,
        "PUT",
        &format!("{base}/v1/suppliers/slow"),
        &op,
        supplier,
    );
    call(
        &agent,
        "POST",
        &format!("{base}/v1/suppliers/slow/approve"),
        &op,
        json!({}),
    );
    call(
        &agent,
        "PUT",
        &format!("{base}/v1/skus/dl"),
        &op,
        json!({"product": "dl", "title": "dl", "price": 100}),
    );
    call(
        &agent,
        "PUT",
        &format!("{base}/v1/skus/dl/offers/slow"),
        &op,
        json!({"supplier_sku": "S-DL"}),
    );
    call(
        &agent,
        "POST",
        &format!("{base}/v1/suppliers/slow/stock"),
        &op,
        json!({"items": [{"sku": "dl", "on_hand": 1_000_000_000}]}),
    );
    let (_, web) = call(
        &agent,
        "PUT",
        &format!("{base}/v1/channels/dl"),
        &op,
        json!({"name": "dl"}),
    );
    let key = web["api_key"].as_str().expect("api key").to_owned();

    let load_s = args.load_s.min(LOAD_S_MAX);
    let stop = Arc::new(AtomicBool::new(false));
    let placed = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let (stop, placed, base, key) =
                (stop.clone(), placed.clone(), base.clone(), key.clone());
            std::thread::spawn(move || {
                let agent = client();
                let order = json!({"channel": "dl", "lines": [{"sku": "dl", "qty": 1}],
                    "customer": {"ref": "dl"}, "ship_to": {"name": "D", "line1": "1", "city": "X",
                    "postal_code": "1", "country": "US"}});
                while !stop.load(Ordering::Relaxed) {
                    if call(
                        &agent,
                        "POST",
                        &format!("{base}/v1/orders"),
                        &key,
                        order.clone(),
                    )
                    .0 == 201
                    {
                        placed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(load_s));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let placed = placed.load(Ordering::Relaxed);
    // Every ack deadline is 1 s after its order; wait until all have fired.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lateness = loop {
        let txn = app.store.database().begin_read().expect("read");
        let t = txn.open_table(tables::BREACHES).expect("breaches");
        let mut late: Vec<u64> = Vec::new();
        for entry in t.range::<(&str, u8)>(..).expect("range") {
            let (_, v) = entry.expect("entry");
            let b: Breach = codec::decode(v.value()).expect("breach");
            late.push(b.detected_at_ms.saturating_sub(b.deadline_ms));
        }
        if late.len() as u64 >= placed || Instant::now() > deadline {
            break late;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut sorted = lateness.clone();
    sorted.sort_unstable();
    let pick = |p: usize| {
        sorted
            .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "load: {placed} orders in {load_s} s ({:.0}/s) from {} clients; {} ack deadlines fired; lateness ms p50={} p99={} max={}",
        placed as f64 / load_s as f64,
        args.clients,
        sorted.len(),
        pick(50),
        pick(99),
        sorted.last().copied().unwrap_or(0)
    );
    println!("RSS at the end: {:.0} MB", rss_mb());
    let _ = stop_tx.send(());
    let _ = runtime.block_on(server);
}
