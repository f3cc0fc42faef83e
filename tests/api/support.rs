//! Test support: the real daemon as a child process on 127.0.0.1:0 with a temp data
//! dir, an in-process daemon with a manual clock for time-dependent behaviour, and a
//! small JSON-over-HTTP client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use marketd::clock::{Clock, ManualClock};
use marketd::config::Config;
use marketd::server::App;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_marketd");

/// An answer: status, headers we look at, and the body as JSON (Null when empty,
/// a string when not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Resp {
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {:#}", self.body);
        self.body
    }

    /// Asserts a problem+json answer with this status and type; returns the body.
    #[track_caller]
    pub fn problem(self, status: u16, slug: &str) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {:#}", self.body);
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(
            self.body["type"],
            format!("/problems/{slug}"),
            "{:#}",
            self.body
        );
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        self.body
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .max_idle_connections_per_host(4)
            .build()
            .into();
        Self {
            base: base.to_owned(),
            token: token.map(str::to_owned),
            agent,
        }
    }

    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Sends a request with a raw body and extra headers.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.try_raw(method, path, body, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Client::raw`], with a failed connection as an error instead of a panic.
    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, ureq::Error> {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let result = match body {
            Some((ct, bytes)) => {
                let req = builder
                    .header("content-type", ct)
                    .body(bytes)
                    .expect("request");
                self.agent.run(req)
            }
            None => self.agent.run(builder.body(()).expect("request")),
        };
        let mut res = result?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Resp {
            status,
            content_type,
            body,
        })
    }

    pub fn send(&self, method: &str, path: &str, body: &Value) -> Resp {
        self.raw(
            method,
            path,
            Some(("application/json", body.to_string().into_bytes())),
            &[],
        )
    }
    pub fn get(&self, path: &str) -> Resp {
        self.raw("GET", path, None, &[])
    }
    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.send("PUT", path, body)
    }
    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, body)
    }
    pub fn post_empty(&self, path: &str) -> Resp {
        self.raw("POST", path, None, &[])
    }
    pub fn delete(&self, path: &str) -> Resp {
        self.raw("DELETE", path, None, &[])
    }

    /// Holds `qty` units of `sku` for `channel` (`ttl_s` None: the default).
    pub fn reserve(&self, channel: &str, sku: &str, qty: u32, ttl_s: Option<u64>) -> Resp {
        let mut body = json!({"channel": channel, "lines": [{"sku": sku, "qty": qty}]});
        if let Some(ttl_s) = ttl_s {
            body["ttl_s"] = json!(ttl_s);
        }
        self.post("/v1/reservations", &body)
    }

    /// Places an order with an Idempotency-Key.
    pub fn order(&self, key: &str, body: &Value) -> Resp {
        self.try_order(key, body)
            .unwrap_or_else(|e| panic!("POST /v1/orders: {e}"))
    }

    pub fn try_order(&self, key: &str, body: &Value) -> Result<Resp, ureq::Error> {
        self.try_raw(
            "POST",
            "/v1/orders",
            Some(("application/json", body.to_string().into_bytes())),
            &[("Idempotency-Key", key)],
        )
    }
}

/// The real `marketd serve` binary, on a free loopback port.
pub struct Daemon {
    child: Option<Child>,
    pub base: String,
    pub data: PathBuf,
    pub token: String,
    _dir: Option<tempfile::TempDir>,
}

impl Daemon {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Self::start_in(dir.path());
        d._dir = Some(dir);
        d
    }

    /// Starts on an existing data directory (for restarts).
    pub fn start_in(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    pub fn start_with(data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("MARKETD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn marketd");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("marketd listening on ") {
                        break addr.trim().to_owned();
                    }
                }
                _ => panic!("marketd exited before listening: {:?}", child.wait()),
            }
        };
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(data.join("operator.token"))
            .expect("operator token")
            .trim()
            .to_owned();
        Self {
            child: Some(child),
            base,
            data: data.to_owned(),
            token,
            _dir: None,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, Some(&self.token))
    }

    pub fn anonymous(&self) -> Client {
        Client::new(&self.base, None)
    }

    fn signal(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().expect("wait")
    }

    /// SIGTERM and wait: the graceful stop.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM)
    }

    /// SIGKILL: the crash.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }

    /// Stops, then starts again on the same data directory.
    pub fn restart(mut self) -> Self {
        assert!(self.stop().success(), "marketd did not exit cleanly");
        let mut next = Self::start_in(&self.data);
        next._dir = self._dir.take();
        next
    }

    /// Stops cleanly, then runs `marketd check` over the store: it must find no
    /// violated invariant.
    #[track_caller]
    pub fn stop_and_check(mut self) {
        assert!(self.stop().success(), "marketd did not exit cleanly");
        let out = check_store(&self.data);
        assert!(
            out.status.success(),
            "check: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Keeps the data directory alive past this daemon.
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The daemon in this process with a manual clock: for behaviour that depends on
/// time (expiry), driven without waiting.
pub struct InProc {
    pub base: String,
    pub token: String,
    pub clock: Arc<ManualClock>,
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// 2026-11-22T10:00:00Z.
pub const T0_MS: u64 = 1_795_341_600_000;

impl InProc {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(T0_MS);
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        tweak(&mut config);
        let app = App::open(config, clock.clone()).expect("open");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let served = app.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                marketd::server::serve_app(served, listener, async {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        let addr = addr_rx.recv().expect("address");
        Self {
            base: format!("http://{addr}"),
            token: app.operator_token.clone(),
            clock,
            app,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base, Some(&self.token))
    }

    /// A signed inbound webhook from `supplier`, stamped with this daemon's clock.
    pub fn supplier_webhook(
        &self,
        c: &Client,
        (supplier, secret): (&str, &str),
        id: &str,
        kind: &str,
        data: Value,
    ) -> Resp {
        let now_s = (self.clock.now_ms() / 1000) as i64;
        let body = json!({"type": kind, "data": data});
        supplier_webhook(c, supplier, secret, id, now_s, &body)
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits for `cond` to hold, checking every 10 ms, for at most `timeout`: for
/// effects of a background task (the sweeper) with no other signal to wait on.
#[track_caller]
pub fn eventually(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An order body for channel `web` with these lines.
pub fn order_body(lines: Value) -> Value {
    json!({"channel": "web", "lines": lines,
        "customer": {"ref": "cust-42", "email": "a@example.com"}, "ship_to": ship_to()})
}

pub fn supplier_body(name: &str) -> Value {
    json!({"name": name, "webhook_url": "http://127.0.0.1:9/hooks",
        "sla": {"ack_within_s": 14400, "ship_within_s": 172800, "deliver_within_s": 604800},
        "on_ack_timeout": "alert", "commission_bps": 1500, "breach_penalty": 500})
}

pub fn ship_to() -> Value {
    json!({"name": "A. Buyer", "line1": "1 Main St", "city": "X", "postal_code": "1", "country": "US"})
}

/// A catalog to sell from: supplier `acme` (approved) offering `sku` with
/// `on_hand` units, and channel `web` with `buffer_units`. Returns web's api key.
pub fn seed(c: &Client, sku: &str, on_hand: u32, buffer_units: u32) -> String {
    if c.get("/v1/suppliers/acme").status == 404 {
        c.put("/v1/suppliers/acme", &supplier_body("Acme Outdoor"))
            .expect(201);
        c.post_empty("/v1/suppliers/acme/approve").expect(200);
    }
    c.put(
        &format!("/v1/skus/{sku}"),
        &json!({"product": "tent-2p", "title": "2P tent",
        "attributes": {"color": "green"}, "price": 19900}),
    )
    .expect(201);
    c.put(
        &format!("/v1/skus/{sku}/offers/acme"),
        &json!({"supplier_sku": format!("AC-{sku}"), "priority": 10}),
    )
    .expect(201);
    c.post(
        "/v1/suppliers/acme/stock",
        &json!({"items": [{"sku": sku, "on_hand": on_hand}]}),
    )
    .expect(200);
    let web = c.put(
        "/v1/channels/web",
        &json!({"name": "Web store", "buffer_units": buffer_units}),
    );
    match web.status {
        201 => web.body["api_key"].as_str().unwrap().to_owned(),
        _ => panic!("channel web already exists; seed once per daemon"),
    }
}

pub fn stock(c: &Client, sku: &str, channel: Option<&str>) -> Value {
    let q = channel
        .map(|ch| format!("?channel={ch}"))
        .unwrap_or_default();
    c.get(&format!("/v1/stock/{sku}{q}")).expect(200)
}

/// Creates the channel `web` (no buffer); returns its api key.
pub fn web_key(c: &Client) -> String {
    c.put("/v1/channels/web", &json!({"name": "Web"}))
        .expect(201)["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// How many items the first page of a list endpoint holds.
pub fn listed(c: &Client, path: &str) -> usize {
    c.get(path).expect(200)["items"].as_array().unwrap().len()
}

/// The `type` of each event in an order's timeline, oldest first.
pub fn order_event_types(c: &Client, order_id: &str) -> Vec<String> {
    let timeline = c.get(&format!("/v1/orders/{order_id}/events")).expect(200);
    timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// A SKU's (reserved, allocated, available), as `GET /v1/stock` shows them.
pub fn units(c: &Client, sku: &str, channel: Option<&str>) -> (u64, u64, u64) {
    let s = stock(c, sku, channel);
    let n = |field: &str| {
        s[field]
            .as_u64()
            .unwrap_or_else(|| panic!("stock has no {field}: {s}"))
    };
    (n("reserved"), n("allocated"), n("available"))
}

pub fn event_count(c: &Client) -> usize {
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = c
            .get(&format!("/v1/events?after={after}&limit=1000"))
            .expect(200);
        n += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => after = next.parse().unwrap(),
            None => return n,
        }
    }
}

/// Creates and approves supplier `id` whose webhooks go to `url`; returns its secret.
pub fn add_supplier(c: &Client, id: &str, url: &str, on_ack_timeout: &str) -> String {
    add_supplier_with(c, id, url, on_ack_timeout, |_| {})
}

/// [`add_supplier`] with the body changed by `tweak` before it is sent.
pub fn add_supplier_with(
    c: &Client,
    id: &str,
    url: &str,
    on_ack_timeout: &str,
    tweak: impl FnOnce(&mut Value),
) -> String {
    let mut body = supplier_body(id);
    body["webhook_url"] = json!(url);
    body["on_ack_timeout"] = json!(on_ack_timeout);
    tweak(&mut body);
    let created = c.put(&format!("/v1/suppliers/{id}"), &body).expect(201);
    c.post_empty(&format!("/v1/suppliers/{id}/approve"))
        .expect(200);
    created["webhook_secret"].as_str().unwrap().to_owned()
}

/// A SKU offered by `offers` (supplier, priority, on_hand).
pub fn add_sku(c: &Client, sku: &str, offers: &[(&str, u32, u32)]) {
    c.put(
        &format!("/v1/skus/{sku}"),
        &json!({"product": sku, "title": sku, "price": 1000}),
    )
    .expect(201);
    for (supplier, priority, on_hand) in offers {
        c.put(
            &format!("/v1/skus/{sku}/offers/{supplier}"),
            &json!({"supplier_sku": format!("{supplier}-{sku}"), "priority": priority}),
        )
        .expect(201);
        c.post(
            &format!("/v1/suppliers/{supplier}/stock"),
            &json!({"items": [{"sku": sku, "on_hand": on_hand}]}),
        )
        .expect(200);
    }
}

/// A signed inbound webhook from `supplier`.
pub fn supplier_webhook(
    c: &Client,
    supplier: &str,
    secret: &str,
    id: &str,
    timestamp_s: i64,
    body: &Value,
) -> Resp {
    let bytes = body.to_string().into_bytes();
    let sig = marketd::secret::sign_webhook(secret, id, timestamp_s, &bytes).unwrap();
    let ts = timestamp_s.to_string();
    c.with_token(None).raw(
        "POST",
        &format!("/webhooks/suppliers/{supplier}"),
        Some(("application/json", bytes)),
        &[
            ("webhook-id", id),
            ("webhook-timestamp", &ts),
            ("webhook-signature", &sig),
        ],
    )
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn deliveries(c: &Client, status: &str) -> Vec<Value> {
    c.get(&format!("/v1/deliveries?status={status}&limit=1000"))
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Sends raw bytes over one connection and returns the status code and body of the
/// answer; a server that answers before reading everything may cut the upload short,
/// which is not an error here.
pub fn raw_exchange(base: &str, head: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the headers and the declared body are in, or the server closes.
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((headers, rest)) = text.split_once("\r\n\r\n") {
            let len = headers.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            });
            if len.is_some_and(|len| rest.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An RFC 3339 time `offset_s` seconds from two minutes ahead of now: reports
/// stamped with it are newer than any made by the test so far, yet within the
/// five minutes ahead that marketd accepts.
pub fn at(offset_s: i64) -> String {
    marketd::clock::format_rfc3339(((now_s() + 120 + offset_s) * 1000) as u64)
}

/// Runs `marketd check` over a stopped store.
pub fn check_store(data: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["check", "--data"])
        .arg(data)
        .output()
        .expect("run check")
}

/// The operator alerts' signing secret in tests.
pub const ALERTS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A config file in `dir` sending operator alerts to `url`; returns its path.
pub fn alerts_config(dir: &Path, url: &str) -> PathBuf {
    let config = dir.join("marketd.toml");
    std::fs::write(
        &config,
        format!("alerts_url = \"{url}\"\nalerts_secret = \"{ALERTS_SECRET}\"\n"),
    )
    .expect("write config");
    config
}
