//! An HTTP load generator for a running `marketd`, on this machine only.
//!
//! It refuses any `--url` that is not a loopback address (127.0.0.0/8, `localhost`,
//! `[::1]`), opens `--connections` keep-alive HTTP/1.1 connections (hyper's client
//! connection, one per task), and sends requests back to back on each until
//! `--duration-s` has passed or `--requests-max` requests have been sent. It always
//! stops by itself at the deadline; a refused or broken connection is counted as an
//! error and retried after a short pause, never a panic.
//!
//! Scenarios:
//! - `setup` (operator token): creates and approves the supplier `load-supplier`,
//!   SKUs `load-sku-0..K-1` with an offer each (supplier SKU `LOAD-i`) and `on_hand`
//!   at the maximum, and the channel; prints `supplier_secret=<secret>` on stdout when
//!   the supplier was created and `api_key=<key>` when the channel was.
//! - `reserve` (channel key): `POST /v1/reservations`, one unit, `ttl_s: 1`, cycling
//!   over the K SKUs; holds expire and the sweeper gives their units back.
//! - `order` (channel key): `POST /v1/orders` with lines and a unique
//!   `Idempotency-Key`; each answer is a durable order.
//! - `webhook` (supplier secret, `--secret`; no bearer token): `POST
//!   /webhooks/suppliers/load-supplier`, a `stock.updated` event for one of the K
//!   SKUs, signed per Standard Webhooks with a unique `webhook-id`; each answer is a
//!   verified, committed event. Answers `{"status": "duplicate"}` are counted apart.
//!
//! At the end it prints the requests answered, requests/s, p50/p99/max latency and
//! the count of every non-2xx status, as `key=value` lines on stdout.
//!
//! ```text
//! cargo build --release --example loadgen
//! L=target/release/examples/loadgen
//! OUT=$($L --url http://127.0.0.1:7272 --token "$(cat DATA/operator.token)" \
//!        --scenario setup)
//! KEY=$(echo "$OUT" | sed -n 's/^api_key=//p')
//! SECRET=$(echo "$OUT" | sed -n 's/^supplier_secret=//p')
//! $L --url http://127.0.0.1:7272 --token "$KEY" --scenario reserve --duration-s 10
//! $L --url http://127.0.0.1:7272 --token "$KEY" --scenario order --duration-s 10
//! $L --url http://127.0.0.1:7272 --secret "$SECRET" --scenario webhook --duration-s 10
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use marketd::domain::UNITS_MAX;
use marketd::secret::sign_webhook;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout_at};

/// Most connections one run may open.
const CONNECTIONS_MAX: u32 = 4_096;
/// Longest run, in seconds.
const DURATION_S_MAX: u64 = 300;
/// Most hot SKUs `setup` creates (and the others cycle over); one stock upload.
const SKUS_MAX: u32 = 10_000;
/// Pause before reconnecting after a refused or broken connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Highest latency the histogram tracks, in microseconds: a whole run.
const LATENCY_US_MAX: u64 = DURATION_S_MAX * 1_000_000;
/// The supplier `setup` creates and stocks.
const SUPPLIER: &str = "load-supplier";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Create the supplier, SKUs, offers, stock and channel (operator token).
    Setup,
    /// POST /v1/reservations, one unit, ttl_s 1 (channel api key).
    Reserve,
    /// POST /v1/orders with lines and a unique Idempotency-Key (channel api key).
    Order,
    /// POST /webhooks/suppliers/load-supplier, signed stock.updated (--secret).
    Webhook,
}

impl Scenario {
    /// The name as given on the command line.
    fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Reserve => "reserve",
            Self::Order => "order",
            Self::Webhook => "webhook",
        }
    }
}

/// Load generator for a marketd on this machine (loopback only).
#[derive(Debug, Parser)]
struct Args {
    /// The daemon's base URL; must be http:// on a loopback address.
    #[arg(long, env = "MARKETD_URL", default_value = "http://127.0.0.1:7070")]
    url: String,
    /// Bearer token: the operator token for `setup`, the channel's api_key for
    /// `reserve` and `order`; `webhook` ignores it.
    #[arg(long, env = "MARKETD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The supplier's webhook secret (`whsec_...`, printed by `setup`); `webhook` only.
    #[arg(long, env = "LOADGEN_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Keep-alive connections, each driven by its own task.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=CONNECTIONS_MAX as i64))]
    connections: u32,
    /// How long to run, in seconds; everything stops by then.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=DURATION_S_MAX))]
    duration_s: u64,
    /// Stop after this many requests in total (the duration still bounds the run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    requests_max: Option<u64>,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Number of hot SKUs, `load-sku-0` to `load-sku-<K-1>`.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=SKUS_MAX as i64))]
    skus: u32,
    /// The channel to create (`setup`) or to reserve and order for.
    #[arg(long, default_value = "load")]
    channel: String,
}

/// Where requests go and how they are signed; shared by every task.
struct Client {
    /// The resolved loopback address, so no task resolves a name again.
    addr: SocketAddr,
    /// `host[:port]` for the Host header.
    authority: HeaderValue,
    /// `Bearer <token>`, marked sensitive so it is never printed; None for
    /// `webhook`, which signs instead.
    auth: Option<HeaderValue>,
}

impl Client {
    /// Checks that `url` names a loopback address and resolves it.
    async fn new(url: &str, token: Option<&str>) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("--url {url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("--url {url:?} must start with http://"));
        }
        if !matches!(uri.path_and_query().map(|p| p.as_str()), None | Some("/")) {
            return Err(format!("--url {url:?} must have no path or query"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("--url {url:?} has no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) if host.eq_ignore_ascii_case("localhost") => {
                tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
                    .collect()
            }
            Err(_) => Vec::new(), // Any other name is refused below, unresolved.
        };
        // Every address must be loopback: this tool never sends traffic elsewhere.
        let addr = match addrs.first() {
            Some(first) if addrs.iter().all(|a| a.ip().is_loopback()) => *first,
            _ => {
                return Err(format!(
                    "--url {url:?} is not on this machine: only 127.0.0.0/8, localhost \
                     and [::1] are allowed"
                ));
            }
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let auth = match token {
            Some(token) => {
                let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| "--token must be visible ASCII".to_owned())?;
                auth.set_sensitive(true);
                Some(auth)
            }
            None => None,
        };
        Ok(Self {
            addr,
            authority: HeaderValue::from_str(authority)
                .map_err(|e| format!("--url {url:?} has a bad host: {e}"))?,
            auth,
        })
    }

    /// A request builder for `path` with Host and, when there is a token, the
    /// bearer token.
    fn builder(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.authority.clone());
        match &self.auth {
            Some(auth) => builder.header(AUTHORIZATION, auth.clone()),
            None => builder,
        }
    }

    /// A request to `path`, with a JSON body when there is one.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, BoxError> {
        let mut builder = self.builder(method, path);
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(json)?)
            }
            None => Bytes::new(),
        };
        Ok(builder.body(Full::new(body))?)
    }

    /// Opens one keep-alive HTTP/1.1 connection; a task drives it in the background
    /// until the returned sender is dropped.
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; either is fine.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// Sends one request on `sender` and reads the whole answer, so the connection is
/// ready for the next.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), BoxError> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn sku_name(i: u64) -> String {
    format!("load-sku-{i}")
}

/// The supplier's own code for SKU `i`.
fn supplier_sku(i: u64) -> String {
    format!("LOAD-{i}")
}

/// A path segment for an operator id: `/` is its only allowed byte that a path
/// segment cannot hold as is.
fn path_segment(id: &str) -> String {
    id.replace('/', "%2F")
}

/// What one load request is: built fresh for every request number.
struct Workload {
    scenario: Scenario,
    channel: String,
    /// The supplier's webhook secret; checked to sign when the scenario is `webhook`.
    secret: Option<String>,
    skus: u64,
    /// Makes this run's idempotency keys differ from earlier runs'.
    run_id: u128,
    /// Requests handed out so far, across all tasks; also the request number.
    issued: AtomicU64,
    requests_max: Option<u64>,
}

impl Workload {
    /// The next request number, or None once `--requests-max` are out.
    fn next(&self) -> Option<u64> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        self.requests_max.is_none_or(|max| n < max).then_some(n)
    }

    /// Request number `n`, sent by connection `conn`.
    fn request(
        &self,
        client: &Client,
        conn: u32,
        n: u64,
    ) -> Result<Request<Full<Bytes>>, BoxError> {
        let lines = json!([{"sku": sku_name(n % self.skus), "qty": 1}]);
        match self.scenario {
            Scenario::Reserve => {
                let body = json!({"channel": self.channel, "lines": lines, "ttl_s": 1});
                client.request(Method::POST, "/v1/reservations", Some(&body), None)
            }
            Scenario::Order => {
                let body = json!({
                    "channel": self.channel, "lines": lines, "customer": {"ref": "load"},
                    "ship_to": {"name": "L", "line1": "1 Main", "city": "X",
                                "postal_code": "1", "country": "US"},
                });
                let key = format!("load-{}-{n}", self.run_id);
                client.request(Method::POST, "/v1/orders", Some(&body), Some(&key))
            }
            Scenario::Webhook => self.webhook(client, conn, n),
            Scenario::Setup => Err("setup is not a load scenario".into()),
        }
    }

    /// A signed `stock.updated` event for one SKU, with a `webhook-id` unique to
    /// this run, connection and request, stamped now.
    fn webhook(
        &self,
        client: &Client,
        conn: u32,
        n: u64,
    ) -> Result<Request<Full<Bytes>>, BoxError> {
        let secret = self.secret.as_deref().ok_or("webhook needs --secret")?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        // Millisecond as_of, so reports within one second still move forward.
        let as_of = humantime::format_rfc3339_millis(UNIX_EPOCH + now).to_string();
        let body = serde_json::to_vec(&json!({
            "type": "stock.updated",
            "data": {"as_of": as_of, "items": [{
                "supplier_sku": supplier_sku(n % self.skus),
                "on_hand": 1_000_000 + n % 1_000,
            }]},
        }))?;
        let id = format!("lg-{}-{conn}-{n}", self.run_id);
        let timestamp = i64::try_from(now.as_secs())?;
        let signature =
            sign_webhook(secret, &id, timestamp, &body).ok_or("--secret is not whsec_ + base64")?;
        let path = format!("/webhooks/suppliers/{SUPPLIER}");
        Ok(client
            .builder(Method::POST, &path)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)))?)
    }
}

/// What one task saw; merged into one at the end.
struct Tally {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    /// Refused or broken connections and failed exchanges.
    errors: u64,
    /// Requests still in flight when the deadline came.
    cut_off: u64,
    /// `webhook` answers `{"status": "duplicate"}`: 2xx but no second effect.
    duplicates: u64,
}

impl Tally {
    fn new(latency_us: Histogram<u64>) -> Self {
        Self {
            latency_us,
            statuses: BTreeMap::new(),
            errors: 0,
            cut_off: 0,
            duplicates: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms share the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.errors += other.errors;
        self.cut_off += other.cut_off;
        self.duplicates += other.duplicates;
    }

    fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// Whether a webhook answer says the event was a duplicate (no second effect).
fn is_duplicate(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.get("status").and_then(Value::as_str) == Some("duplicate"))
}

/// One connection's worth of load: send back to back until the deadline or the
/// request budget ends; reconnect (after a pause) when the connection fails.
async fn load_task(
    conn: u32,
    client: Arc<Client>,
    workload: Arc<Workload>,
    mut tally: Tally,
    deadline: Instant,
) -> Tally {
    while Instant::now() < deadline {
        let mut sender = match timeout_at(deadline, client.connect()).await {
            Err(_) => break, // The deadline came first.
            Ok(Ok(sender)) => sender,
            Ok(Err(_)) => {
                tally.errors += 1;
                sleep_until(deadline.min(Instant::now() + RECONNECT_PAUSE)).await;
                continue;
            }
        };
        loop {
            let Some(n) = workload.next() else {
                return tally;
            };
            let Ok(request) = workload.request(&client, conn, n) else {
                // Cannot happen for a load scenario; stop rather than spin.
                tally.errors += 1;
                return tally;
            };
            let started = Instant::now();
            match timeout_at(deadline, exchange(&mut sender, request)).await {
                Err(_) => {
                    tally.cut_off += 1;
                    return tally;
                }
                Ok(Err(_)) => {
                    tally.errors += 1;
                    break; // Reconnect.
                }
                Ok(Ok((status, body))) => {
                    let us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
                    tally.latency_us.saturating_record(us.max(1));
                    *tally.statuses.entry(status.as_u16()).or_default() += 1;
                    if workload.scenario == Scenario::Webhook
                        && status.is_success()
                        && is_duplicate(&body)
                    {
                        tally.duplicates += 1;
                    }
                }
            }
        }
    }
    tally
}

/// Runs `reserve`, `order` or `webhook` on every connection and prints the summary.
async fn run_load(
    client: Arc<Client>,
    args: &Args,
    deadline: Instant,
    histogram: Histogram<u64>,
) -> ExitCode {
    let workload = Arc::new(Workload {
        scenario: args.scenario,
        channel: args.channel.clone(),
        secret: args.secret.clone(),
        skus: u64::from(args.skus),
        run_id: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        issued: AtomicU64::new(0),
        requests_max: args.requests_max,
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|conn| {
            let tally = Tally::new(histogram.clone());
            let (client, workload) = (client.clone(), workload.clone());
            tokio::spawn(load_task(conn, client, workload, tally, deadline))
        })
        .collect();
    let mut total = Tally::new(histogram);
    for task in tasks {
        match task.await {
            Ok(tally) => total.merge(tally),
            Err(_) => total.errors += 1, // A task that died; counted, not fatal.
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    print_summary(args, &total, elapsed);
    // A run in which nothing succeeded (daemon down, wrong token) fails, for scripts.
    let succeeded: u64 = total.statuses.range(200..300).map(|(_, n)| n).sum();
    if succeeded == 0 {
        eprintln!(
            "loadgen: no request succeeded ({} answered, {} errors)",
            total.answered(),
            total.errors
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn print_summary(args: &Args, total: &Tally, elapsed_s: f64) {
    let answered = total.answered();
    let ms = |us: u64| us as f64 / 1_000.0;
    let h = &total.latency_us;
    println!(
        "scenario={} connections={} elapsed_s={elapsed_s:.2}",
        args.scenario.name(),
        args.connections
    );
    println!(
        "requests={answered} rps={:.0}",
        answered as f64 / elapsed_s.max(1e-9)
    );
    println!(
        "latency_ms p50={:.2} p99={:.2} max={:.2}",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    );
    let non_2xx: Vec<(&u16, &u64)> = total
        .statuses
        .iter()
        .filter(|(status, _)| !(200..300).contains(*status))
        .collect();
    let non_2xx_total: u64 = non_2xx.iter().map(|(_, n)| **n).sum();
    let by_status: String = non_2xx
        .iter()
        .map(|(status, n)| format!(" {status}={n}"))
        .collect();
    println!("non_2xx={non_2xx_total}{by_status}");
    println!("errors={} cut_off={}", total.errors, total.cut_off);
    if args.scenario == Scenario::Webhook {
        println!("webhook_duplicates={}", total.duplicates);
    }
}

/// Sends one setup request and insists on a 2xx; returns the status and JSON answer.
async fn setup_step(
    client: &Client,
    sender: &mut SendRequest<Full<Bytes>>,
    deadline: Instant,
    (method, path, body): (Method, &str, Option<Value>),
) -> Result<(StatusCode, Value), String> {
    let what = format!("{method} {path}");
    let request = client
        .request(method, path, body.as_ref(), None)
        .map_err(|e| format!("{what}: {e}"))?;
    let (status, answer) = timeout_at(deadline, exchange(sender, request))
        .await
        .map_err(|_| format!("{what}: no answer before --duration-s ran out"))?
        .map_err(|e| format!("{what}: {e}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&answer);
        return Err(format!("{what}: {status}: {text}"));
    }
    Ok((
        status,
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    ))
}

/// Creates the supplier, SKUs, offers, stock and channel; prints the supplier's
/// secret and the channel's key when they are new.
async fn setup(client: &Client, args: &Args, deadline: Instant) -> Result<(), String> {
    let mut sender = timeout_at(deadline, client.connect())
        .await
        .map_err(|_| "could not connect before --duration-s ran out".to_owned())?
        .map_err(|e| format!("cannot connect to {}: {e}", client.addr))?;
    let skus = u64::from(args.skus);
    let supplier_path = format!("/v1/suppliers/{SUPPLIER}");
    let supplier = json!({
        "name": "Load supplier",
        "sla": {"ack_within_s": 14_400, "ship_within_s": 172_800,
                "deliver_within_s": 604_800},
    });
    let (status, answer) = setup_step(
        client,
        &mut sender,
        deadline,
        (Method::PUT, &supplier_path, Some(supplier)),
    )
    .await?;
    match answer.get("webhook_secret").and_then(Value::as_str) {
        Some(secret) if status == StatusCode::CREATED => println!("supplier_secret={secret}"),
        _ => eprintln!(
            "setup: supplier {SUPPLIER} already existed and was updated; its webhook_secret \
             is shown only when it is created or on POST {supplier_path}/rotate-secret"
        ),
    }
    let mut steps: Vec<(Method, String, Option<Value>)> =
        vec![(Method::POST, format!("{supplier_path}/approve"), None)];
    for i in 0..skus {
        let sku = sku_name(i);
        steps.push((
            Method::PUT,
            format!("/v1/skus/{sku}"),
            Some(
                json!({"product": "load-product", "title": format!("Load SKU {i}"),
                        "price": 1_000}),
            ),
        ));
        steps.push((
            Method::PUT,
            format!("/v1/skus/{sku}/offers/{SUPPLIER}"),
            Some(json!({"supplier_sku": supplier_sku(i), "priority": 0})),
        ));
    }
    let items: Vec<Value> = (0..skus)
        .map(|i| json!({"supplier_sku": supplier_sku(i), "on_hand": UNITS_MAX}))
        .collect();
    steps.push((
        Method::POST,
        format!("{supplier_path}/stock"),
        Some(json!({"items": items})),
    ));
    for (method, path, body) in steps {
        setup_step(client, &mut sender, deadline, (method, &path, body)).await?;
    }
    eprintln!("setup: supplier {SUPPLIER} approved with {skus} SKUs at on_hand {UNITS_MAX}");

    let channel_path = format!("/v1/channels/{}", path_segment(&args.channel));
    let body = json!({"name": format!("Load channel {}", args.channel)});
    let (status, answer) = setup_step(
        client,
        &mut sender,
        deadline,
        (Method::PUT, &channel_path, Some(body)),
    )
    .await?;
    match answer.get("api_key").and_then(Value::as_str) {
        Some(key) if status == StatusCode::CREATED => println!("api_key={key}"),
        _ => eprintln!(
            "setup: channel {:?} already existed and was updated; its api_key is shown \
             only when it is created (use the key from then, or another --channel)",
            args.channel
        ),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = marketd::ids::check_operator_id(&args.channel) {
        eprintln!("loadgen: --channel: {e}");
        return ExitCode::FAILURE;
    }
    // `webhook` signs with --secret and sends no bearer token; the others need one.
    let token = match args.scenario {
        Scenario::Webhook => match args.secret.as_deref() {
            None => {
                eprintln!(
                    "loadgen: --scenario webhook needs --secret (or LOADGEN_SECRET): the \
                     supplier's webhook_secret, printed by --scenario setup as \
                     supplier_secret= when it creates the supplier"
                );
                return ExitCode::FAILURE;
            }
            Some(secret) if sign_webhook(secret, "lg-check", 0, b"").is_none() => {
                eprintln!("loadgen: --secret must be whsec_ followed by base64");
                return ExitCode::FAILURE;
            }
            Some(_) => None,
        },
        Scenario::Setup | Scenario::Reserve | Scenario::Order => match args.token.as_deref() {
            Some(token) => Some(token),
            None => {
                eprintln!(
                    "loadgen: --scenario {} needs --token (or MARKETD_TOKEN)",
                    args.scenario.name()
                );
                return ExitCode::FAILURE;
            }
        },
    };
    let client = match Client::new(&args.url, token).await {
        Ok(client) => Arc::new(client),
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let histogram = match Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("loadgen: cannot make the latency histogram: {e}");
            return ExitCode::FAILURE;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(args.duration_s);
    match args.scenario {
        Scenario::Setup => match setup(&client, &args, deadline).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen: setup failed: {e}");
                ExitCode::FAILURE
            }
        },
        Scenario::Reserve | Scenario::Order | Scenario::Webhook => {
            run_load(client, &args, deadline, histogram).await
        }
    }
}
