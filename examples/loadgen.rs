//! An HTTP load generator for a running `marketd`, on this machine only.
//!
//! It refuses any `--url` that is not a loopback address (127.0.0.0/8, `localhost`,
//! `[::1]`), opens `--connections` keep-alive HTTP/1.1 connections, one task each,
//! and sends requests back to back on each until `--duration-s` has passed or
//! `--requests-max` requests have been sent. It always stops by itself at the
//! deadline; a refused or broken connection is counted as an error and retried after
//! a short pause, never a panic.
//!
//! The HTTP/1.1 client is a small one written here rather than hyper's: the generator
//! shares the machine's cores with the daemon, so every microsecond it spends per
//! request is one the daemon does not get, and the measured rate drops. Each task owns
//! its `TcpStream` and two reused buffers: a request goes out whole in one write
//! (bodies rendered once per SKU where only the SKU varies), and the answer's head is
//! parsed with `httparse`, then exactly `Content-Length` body bytes are read. One
//! request is in flight per connection. An answer it cannot frame that way (chunked,
//! no `Content-Length`, not HTTP/1.1, a head over 16 KiB or a body over 1 MiB) or a
//! `Connection: close` is counted as an error and the task reconnects.
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
//! the count of every non-2xx status, as `key=value` lines on stdout; with
//! `--daemon-pid`, also the daemon's CPU time (all of it, and its store writer's)
//! and disk writes per answered request, read from `/proc`.
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
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use hyper::StatusCode;
use marketd::domain::UNITS_MAX;
use marketd::secret::{is_webhook_secret, sign_webhook};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
/// Largest answer head read; a longer one is an error.
const HEAD_BYTES_MAX: usize = 16 * 1024;
/// Largest answer body read; a longer one is an error.
const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Most header lines an answer head may have.
const HEADERS_MAX: usize = 64;
/// Answer buffer a connection starts with; it grows up to the caps above as needed.
const INPUT_BYTES_INITIAL: usize = 4 * 1024;

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
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
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
    /// The daemon's process id (Linux): also print the CPU time the daemon and its
    /// store writer spent, and the bytes it wrote to disk, per answered request.
    #[arg(long)]
    daemon_pid: Option<u32>,
}

/// What the daemon has used so far, read from `/proc`.
#[derive(Clone, Copy)]
struct Usage {
    cpu_ticks: u64,
    writer_cpu_ticks: u64,
    disk_write_bytes: u64,
}

impl Usage {
    fn read(pid: u32) -> Result<Self, String> {
        let proc_dir = format!("/proc/{pid}");
        let writer = std::fs::read_dir(format!("{proc_dir}/task"))
            .map_err(|e| format!("--daemon-pid {pid}: {e}"))?
            .filter_map(Result::ok)
            .find(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim() == "store-writer")
            })
            .ok_or_else(|| format!("--daemon-pid {pid}: no store-writer thread"))?;
        let io = std::fs::read_to_string(format!("{proc_dir}/io"))
            .map_err(|e| format!("--daemon-pid {pid}: {e}"))?;
        let disk_write_bytes = io
            .lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("--daemon-pid {pid}: no write_bytes in {proc_dir}/io"))?;
        Ok(Self {
            cpu_ticks: cpu_ticks(&format!("{proc_dir}/stat"))?,
            writer_cpu_ticks: cpu_ticks(&writer.path().join("stat").to_string_lossy())?,
            disk_write_bytes,
        })
    }
}

/// User plus system time from a `/proc/.../stat` file, in clock ticks.
fn cpu_ticks(path: &str) -> Result<u64, String> {
    let stat = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (field(11), field(12)) {
        (Some(user), Some(system)) => Ok(user + system),
        _ => Err(format!("{path}: no CPU times")),
    }
}

/// Where requests go and how they are signed; shared by every task.
struct Client {
    /// The resolved loopback address, so no task resolves a name again.
    addr: SocketAddr,
    /// The header lines every request carries: `Host`, and `Authorization: Bearer`
    /// when there is a token (none for `webhook`, which signs instead). Never
    /// printed, and `Client` has no `Debug`, so the token cannot leak into output.
    common_headers: Vec<u8>,
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
        // The URI parser admits no control bytes in an authority, so it is a safe
        // header value as is.
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        let mut common_headers = format!("Host: {authority}\r\n").into_bytes();
        if let Some(token) = token {
            // Only what a header value may hold: no CR or LF can end the line early.
            if !token
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
            {
                return Err("--token must be visible ASCII".to_owned());
            }
            common_headers
                .extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        Ok(Self {
            addr,
            common_headers,
        })
    }

    /// Starts a request in `out` (cleared first): the request line, the common
    /// headers, Content-Length (0 too, as POST and PUT without a body should say)
    /// and, when there is a body, which is always JSON here, its Content-Type. The
    /// caller adds any other header, then [`end_request`].
    fn start_request(
        &self,
        out: &mut Vec<u8>,
        method: &str,
        path: &str,
        body_len: usize,
    ) -> std::io::Result<()> {
        out.clear();
        write!(out, "{method} {path} HTTP/1.1\r\n")?;
        out.extend_from_slice(&self.common_headers);
        if body_len > 0 {
            out.extend_from_slice(b"Content-Type: application/json\r\n");
        }
        write!(out, "Content-Length: {body_len}\r\n")
    }
}

/// Ends the request head in `out` and appends its body.
fn end_request(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The head of an answer, as far as this client needs it.
struct Head {
    status: u16,
    /// Bytes of the head, blank line included; the body follows.
    len: usize,
    body_len: usize,
    /// The daemon said `Connection: close`: this connection takes no more requests.
    close: bool,
}

/// Parses an answer head from the start of `bytes`: None while it is incomplete.
/// Refuses what this client cannot frame: not HTTP/1.1, an interim (1xx) answer,
/// `Transfer-Encoding` (chunked), a missing, repeated or malformed
/// `Content-Length`, or a body over [`BODY_BYTES_MAX`].
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, BoxError> {
    let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut answer = httparse::Response::new(&mut headers);
    let len = match answer.parse(bytes)? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(len) => len,
    };
    if answer.version != Some(1) {
        return Err("the answer is not HTTP/1.1".into());
    }
    let status = answer.code.ok_or("the answer has no status")?;
    let (mut content_length, mut close) = (None, false);
    for header in answer.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let digits = header.value;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err("the answer's Content-Length is not a number".into());
            }
            let n: usize = std::str::from_utf8(digits)?.parse()?;
            if content_length.replace(n).is_some() {
                return Err("the answer has more than one Content-Length".into());
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("the answer has a Transfer-Encoding (chunked is not read)".into());
        } else if header.name.eq_ignore_ascii_case("connection") {
            close |= header
                .value
                .split(|&b| b == b',')
                .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let body_len = match status {
        // Nothing here asks for an interim answer (no Expect, no Upgrade).
        100..=199 => return Err(format!("unexpected interim answer {status}").into()),
        // No body, whatever the head says (RFC 9112, 6.3).
        204 | 304 => 0,
        _ => content_length.ok_or("the answer has no Content-Length")?,
    };
    if body_len > BODY_BYTES_MAX {
        return Err(format!("the answer's body is over {BODY_BYTES_MAX} bytes").into());
    }
    Ok(Some(Head {
        status,
        len,
        body_len,
        close,
    }))
}

/// One keep-alive HTTP/1.1 connection with one request in flight at a time. Both
/// buffers are reused from request to request, so the load loop does not allocate.
struct Connection {
    stream: TcpStream,
    /// The next request, head and body, rendered whole so it goes out in one write.
    out: Vec<u8>,
    /// The answer last read: its head, then exactly its body.
    input: Vec<u8>,
}

/// An answer read by [`Connection::exchange`]; its body stays in the connection.
struct Answer {
    status: u16,
    /// Where the body sits in [`Connection::input`].
    body: Range<usize>,
    close: bool,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            out: Vec::new(),
            input: vec![0; INPUT_BYTES_INITIAL],
        })
    }

    /// Sends the request in `out` and reads its whole answer, so the connection is
    /// ready for the next.
    async fn exchange(&mut self) -> Result<Answer, BoxError> {
        self.stream.write_all(&self.out).await?;
        // The head: read until it parses, growing the buffer as needed but never
        // reading past the cap (the buffer may be larger after a large body).
        let mut filled = 0;
        let head = loop {
            if let Some(head) = parse_head(&self.input[..filled])? {
                break head;
            }
            if filled >= HEAD_BYTES_MAX {
                return Err(format!("the answer's head is over {HEAD_BYTES_MAX} bytes").into());
            }
            if filled == self.input.len() {
                self.input.resize((filled * 2).min(HEAD_BYTES_MAX), 0);
            }
            let room = self.input.len().min(HEAD_BYTES_MAX);
            filled += self.read_into(filled..room).await?;
        };
        // The body: exactly Content-Length bytes. With one request in flight the
        // daemon has nothing else to send, so more is a broken exchange.
        let end = head.len + head.body_len;
        if filled > end {
            return Err("the daemon sent bytes after the answer".into());
        }
        if self.input.len() < end {
            self.input.resize(end, 0); // At most the two caps together.
        }
        while filled < end {
            filled += self.read_into(filled..end).await?;
        }
        Ok(Answer {
            status: head.status,
            body: head.len..end,
            close: head.close,
        })
    }

    /// Reads what has arrived into `input[range]`; the daemon closing the
    /// connection before the whole answer is in is an error.
    async fn read_into(&mut self, range: Range<usize>) -> Result<usize, BoxError> {
        match self.stream.read(&mut self.input[range]).await? {
            0 => Err("the daemon closed the connection".into()),
            n => Ok(n),
        }
    }

    fn body(&self, answer: &Answer) -> &[u8] {
        &self.input[answer.body.clone()]
    }
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

/// What one load request is, for every request number.
struct Workload {
    scenario: Scenario,
    /// The JSON body for each SKU, rendered once: `reserve` and `order` bodies
    /// differ only by SKU. Empty for `webhook`, whose bodies are stamped per request.
    bodies: Vec<Vec<u8>>,
    /// The supplier's webhook secret; checked to sign when the scenario is `webhook`.
    secret: Option<String>,
    skus: u64,
    /// Makes this run's idempotency keys and webhook ids differ from earlier runs'.
    run_id: u128,
    /// Requests handed out so far, across all tasks; also the request number.
    issued: AtomicU64,
    requests_max: Option<u64>,
}

impl Workload {
    /// The workload `args` asks for, with the bodies that never change rendered now.
    fn new(args: &Args) -> Result<Self, serde_json::Error> {
        let skus = u64::from(args.skus);
        let lines = |i| json!([{"sku": sku_name(i), "qty": 1}]);
        let bodies = match args.scenario {
            Scenario::Reserve => (0..skus)
                .map(|i| {
                    serde_json::to_vec(
                        &json!({"channel": args.channel, "lines": lines(i), "ttl_s": 1}),
                    )
                })
                .collect::<Result<_, _>>()?,
            Scenario::Order => (0..skus)
                .map(|i| {
                    serde_json::to_vec(&json!({
                        "channel": args.channel, "lines": lines(i), "customer": {"ref": "load"},
                        "ship_to": {"name": "L", "line1": "1 Main", "city": "X",
                                    "postal_code": "1", "country": "US"},
                    }))
                })
                .collect::<Result<_, _>>()?,
            Scenario::Webhook | Scenario::Setup => Vec::new(),
        };
        Ok(Self {
            scenario: args.scenario,
            bodies,
            secret: args.secret.clone(),
            skus,
            run_id: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            issued: AtomicU64::new(0),
            requests_max: args.requests_max,
        })
    }

    /// The next request number, or None once `--requests-max` are out.
    fn next(&self) -> Option<u64> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        self.requests_max.is_none_or(|max| n < max).then_some(n)
    }

    /// Renders request number `n`, sent by connection `conn`, into `out`.
    fn request(
        &self,
        client: &Client,
        conn: u32,
        n: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        // `n % skus` is below `skus`, which is at most SKUS_MAX: it fits a usize.
        let body = self.bodies.get((n % self.skus) as usize);
        match (self.scenario, body) {
            (Scenario::Reserve, Some(body)) => {
                client.start_request(out, "POST", "/v1/reservations", body.len())?;
                end_request(out, body);
            }
            (Scenario::Order, Some(body)) => {
                client.start_request(out, "POST", "/v1/orders", body.len())?;
                write!(out, "Idempotency-Key: load-{}-{n}\r\n", self.run_id)?;
                end_request(out, body);
            }
            (Scenario::Webhook, _) => self.webhook(client, conn, n, out)?,
            _ => return Err("not a load scenario".into()),
        }
        Ok(())
    }

    /// A signed `stock.updated` event for one SKU, with a `webhook-id` unique to
    /// this run, connection and request, stamped now.
    fn webhook(
        &self,
        client: &Client,
        conn: u32,
        n: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
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
        client.start_request(out, "POST", &path, body.len())?;
        write!(
            out,
            "webhook-id: {id}\r\nwebhook-timestamp: {timestamp}\r\nwebhook-signature: {signature}\r\n"
        )?;
        end_request(out, &body);
        Ok(())
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
        let mut connection = match timeout_at(deadline, Connection::open(client.addr)).await {
            Err(_) => break, // The deadline came first.
            Ok(Ok(connection)) => connection,
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
            if workload
                .request(&client, conn, n, &mut connection.out)
                .is_err()
            {
                // Cannot happen for a load scenario; stop rather than spin.
                tally.errors += 1;
                return tally;
            }
            let started = Instant::now();
            match timeout_at(deadline, connection.exchange()).await {
                Err(_) => {
                    tally.cut_off += 1;
                    return tally;
                }
                Ok(Err(_)) => {
                    tally.errors += 1;
                    break; // Reconnect.
                }
                Ok(Ok(answer)) => {
                    let us = started.elapsed().as_micros().min(u64::MAX as u128) as u64;
                    tally.latency_us.saturating_record(us.max(1));
                    *tally.statuses.entry(answer.status).or_default() += 1;
                    if workload.scenario == Scenario::Webhook
                        && (200..300).contains(&answer.status)
                        && is_duplicate(connection.body(&answer))
                    {
                        tally.duplicates += 1;
                    }
                    if answer.close {
                        // Answered, but the connection is done: a lost connection
                        // under load is worth seeing, so it counts as an error.
                        tally.errors += 1;
                        break; // Reconnect.
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
    let workload = match Workload::new(args) {
        Ok(workload) => Arc::new(workload),
        Err(e) => {
            eprintln!("loadgen: cannot render the request bodies: {e}");
            return ExitCode::FAILURE;
        }
    };
    let usage_before = match args.daemon_pid.map(Usage::read).transpose() {
        Ok(usage) => usage,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    if let (Some(before), Some(pid)) = (usage_before, args.daemon_pid) {
        match Usage::read(pid) {
            Ok(after) => print_usage(before, after, total.answered()),
            Err(e) => eprintln!("loadgen: {e}"),
        }
    }
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

/// The daemon's CPU time (all threads, and the store writer alone) and disk writes
/// per answered request.
fn print_usage(before: Usage, after: Usage, answered: u64) {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let per = |delta: u64, scale: f64| delta as f64 * scale / answered.max(1) as f64;
    let us_per_tick = 1e6 / ticks_per_s;
    println!(
        "daemon_cpu_us_per_request={:.1} writer_cpu_us_per_request={:.1} disk_bytes_per_request={:.0}",
        per(
            after.cpu_ticks.saturating_sub(before.cpu_ticks),
            us_per_tick
        ),
        per(
            after
                .writer_cpu_ticks
                .saturating_sub(before.writer_cpu_ticks),
            us_per_tick
        ),
        per(
            after
                .disk_write_bytes
                .saturating_sub(before.disk_write_bytes),
            1.0
        ),
    );
}

/// Sends one setup request and insists on a 2xx; returns the status and JSON answer.
async fn setup_step(
    client: &Client,
    connection: &mut Connection,
    deadline: Instant,
    (method, path, body): (&str, &str, Option<Value>),
) -> Result<(StatusCode, Value), String> {
    let what = format!("{method} {path}");
    let body = match body {
        Some(json) => serde_json::to_vec(&json).map_err(|e| format!("{what}: {e}"))?,
        None => Vec::new(),
    };
    client
        .start_request(&mut connection.out, method, path, body.len())
        .map_err(|e| format!("{what}: {e}"))?;
    end_request(&mut connection.out, &body);
    let answer = timeout_at(deadline, connection.exchange())
        .await
        .map_err(|_| format!("{what}: no answer before --duration-s ran out"))?
        .map_err(|e| format!("{what}: {e}"))?;
    let text = connection.body(&answer);
    let status = StatusCode::from_u16(answer.status).map_err(|e| format!("{what}: {e}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(text);
        return Err(format!("{what}: {status}: {text}"));
    }
    let json = serde_json::from_slice(text).unwrap_or(Value::Null);
    if answer.close {
        // The daemon ends this connection; the next step needs a new one.
        *connection = connect(client, deadline).await?;
    }
    Ok((status, json))
}

/// Opens the one connection `setup` uses.
async fn connect(client: &Client, deadline: Instant) -> Result<Connection, String> {
    timeout_at(deadline, Connection::open(client.addr))
        .await
        .map_err(|_| "could not connect before --duration-s ran out".to_owned())?
        .map_err(|e| format!("cannot connect to {}: {e}", client.addr))
}

/// A secret the daemon shows only when a PUT creates its resource: what to PUT,
/// the answer's field that holds it, the name it is printed under, and how else
/// to get it when the resource existed already.
struct ShownOnce<'a> {
    path: &'a str,
    body: Value,
    field: &'a str,
    printed_as: &'a str,
    otherwise: &'a str,
}

/// PUTs the resource and prints its secret as `printed_as=…` on stdout if the PUT
/// created it; otherwise says on stderr why there is none to print.
async fn put_shown_once(
    client: &Client,
    connection: &mut Connection,
    deadline: Instant,
    put: ShownOnce<'_>,
) -> Result<(), String> {
    let (status, answer) = setup_step(
        client,
        connection,
        deadline,
        ("PUT", put.path, Some(put.body)),
    )
    .await?;
    let shown = answer
        .get(put.field)
        .and_then(Value::as_str)
        .filter(|_| status == StatusCode::CREATED);
    match shown {
        Some(secret) => println!("{}={secret}", put.printed_as),
        None => eprintln!(
            "setup: {} already existed and was updated; its {} is shown only when it is \
             created ({})",
            put.path, put.field, put.otherwise
        ),
    }
    Ok(())
}

/// Creates the supplier, SKUs, offers, stock and channel; prints the supplier's
/// secret and the channel's key when they are new.
async fn setup(client: &Client, args: &Args, deadline: Instant) -> Result<(), String> {
    let mut connection = connect(client, deadline).await?;
    let skus = u64::from(args.skus);
    let supplier_path = format!("/v1/suppliers/{SUPPLIER}");
    let supplier = json!({
        "name": "Load supplier",
        "sla": {"ack_within_s": 14_400, "ship_within_s": 172_800,
                "deliver_within_s": 604_800},
    });
    let rotate = format!("or on POST {supplier_path}/rotate-secret");
    let put = ShownOnce {
        path: &supplier_path,
        body: supplier,
        field: "webhook_secret",
        printed_as: "supplier_secret",
        otherwise: &rotate,
    };
    put_shown_once(client, &mut connection, deadline, put).await?;
    let mut steps: Vec<(&str, String, Option<Value>)> =
        vec![("POST", format!("{supplier_path}/approve"), None)];
    for i in 0..skus {
        let sku = sku_name(i);
        steps.push((
            "PUT",
            format!("/v1/skus/{sku}"),
            Some(
                json!({"product": "load-product", "title": format!("Load SKU {i}"),
                        "price": 1_000}),
            ),
        ));
        steps.push((
            "PUT",
            format!("/v1/skus/{sku}/offers/{SUPPLIER}"),
            Some(json!({"supplier_sku": supplier_sku(i), "priority": 0})),
        ));
    }
    let items: Vec<Value> = (0..skus)
        .map(|i| json!({"supplier_sku": supplier_sku(i), "on_hand": UNITS_MAX}))
        .collect();
    steps.push((
        "POST",
        format!("{supplier_path}/stock"),
        Some(json!({"items": items})),
    ));
    for (method, path, body) in steps {
        setup_step(client, &mut connection, deadline, (method, &path, body)).await?;
    }
    eprintln!("setup: supplier {SUPPLIER} approved with {skus} SKUs at on_hand {UNITS_MAX}");

    let channel_path = format!("/v1/channels/{}", path_segment(&args.channel));
    let body = json!({"name": format!("Load channel {}", args.channel)});
    let put = ShownOnce {
        path: &channel_path,
        body,
        field: "api_key",
        printed_as: "api_key",
        otherwise: "use the key from then, or another --channel",
    };
    put_shown_once(client, &mut connection, deadline, put).await?;
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
            Some(secret) if !is_webhook_secret(secret) => {
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
