//! The outbound webhook dispatcher: sends what the outbox says is due, a bounded
//! number at a time, each signed with its receiver's secret, and records every
//! attempt back through the store writer (which schedules the retry).
//!
//! At least once: a delivery stays pending until a 2xx is recorded. On a graceful
//! stop the requests in flight are let finish and recorded (within the drain
//! deadline); one in flight when the daemon dies, or still unanswered at the
//! deadline, was never recorded, so it is sent again after start. At start-up every
//! pending delivery is tried at once, since receivers may be back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use redb::ReadableTable;
use tokio::sync::{mpsc, watch};

use crate::domain::{Attempt, Channel, Delivery, Receiver};
use crate::problem::Problem;
use crate::secret;
use crate::server::App;
use crate::store::outbox::{self, SendResult};
use crate::store::{codec, read, tables};

/// Requests in flight at once.
pub const IN_FLIGHT_MAX: usize = 64;
/// How long one request may take, connect to last byte.
pub const REQUEST_TIMEOUT_S: u64 = 10;
/// Longest the dispatcher sleeps before looking again (so a manual clock in tests
/// and deliveries queued by other means are noticed).
pub const IDLE_WAKE_MS: u64 = 250;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn client() -> HttpsClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// Runs until `stop` turns true, then sends nothing new and returns once every
/// request in flight has ended and been recorded.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let client = client();
    let mut in_flight: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::channel::<(String, SendResult)>(IN_FLIGHT_MAX);
    let mut starting = true;
    loop {
        let stopping = *stop.borrow();
        if stopping && in_flight.is_empty() {
            return;
        }
        let room = match stopping {
            true => 0,
            false => IN_FLIGHT_MAX - in_flight.len(),
        };
        let due = match due_deliveries(&app, &in_flight, room, starting) {
            Ok(due) => due,
            Err(p) => {
                tracing::error!(detail = %p.detail, "cannot read the outbox");
                Vec::new()
            }
        };
        starting = false;
        for (d, body) in due {
            in_flight.insert(d.id.clone());
            let (app, client, done) = (app.clone(), client.clone(), done_tx.clone());
            tokio::spawn(async move {
                let sent = send(&app, &client, &d, body).await;
                let _ = done.send((d.id, sent)).await;
            });
        }
        let mut finished = Vec::new();
        tokio::select! {
            changed = stop.changed(), if !stopping => {
                if changed.is_err() {
                    return; // The daemon is gone without a word; nothing to drain for.
                }
            }
            () = app.live.deliveries.wake.notified() => {}
            Some(one) = done_rx.recv() => finished.push(one),
            () = tokio::time::sleep(Duration::from_millis(IDLE_WAKE_MS)) => {}
        }
        while let Ok(one) = done_rx.try_recv() {
            finished.push(one);
        }
        if !finished.is_empty() {
            // Recorded before they leave `in_flight`, so the next look at the outbox
            // cannot send them again. One command for all of them: one commit.
            let ids: Vec<String> = finished.iter().map(|(id, _)| id.clone()).collect();
            let live = app.live.clone();
            let recorded = app
                .writer
                .write(move |tx| outbox::record_attempts(tx, &live, finished))
                .await;
            if let Err(p) = recorded {
                tracing::warn!(deliveries = ids.len(), detail = %p.detail, "could not record delivery attempts");
                // They are still pending and due: pause before they may go out again,
                // so a writer that is full or failing does not turn into a resend loop.
                tokio::time::sleep(Duration::from_millis(IDLE_WAKE_MS)).await;
            }
            for id in &ids {
                in_flight.remove(id);
            }
        }
    }
}

/// A delivery to send and its body, or why the body cannot be rendered.
type Outgoing = (Delivery, Result<String, Problem>);

/// Pending deliveries due now (at start-up: all of them), not already in flight,
/// at most `room`.
fn due_deliveries(
    app: &App,
    in_flight: &HashSet<String>,
    room: usize,
    starting: bool,
) -> Result<Vec<Outgoing>, Problem> {
    if room == 0 {
        return Ok(Vec::new());
    }
    let now_ms = app.clock.now_ms();
    let txn = app.store.read()?;
    let due = txn.open_table(tables::OUTBOX_DUE)?;
    let outbox = txn.open_table(tables::OUTBOX)?;
    let mut out = Vec::new();
    for entry in due.iter()? {
        let (k, _) = entry?;
        let (at_ms, id) = k.value();
        if (at_ms > now_ms && !starting) || out.len() == room {
            break;
        }
        if in_flight.contains(id) {
            continue;
        }
        if let Some(v) = outbox.get(id)? {
            let d = codec::decode::<Delivery>(v.value())?;
            let body = outbox::render_body(&txn, &d);
            out.push((d, body));
        }
    }
    Ok(out)
}

/// Where a delivery goes and the secret it is signed with, as they are now.
fn target(app: &App, receiver: &Receiver) -> Result<Option<(String, String)>, Problem> {
    Ok(match receiver {
        Receiver::Supplier(id) => app
            .live
            .supplier(id)
            .and_then(|s| Some((s.webhook_url.clone()?, s.webhook_secret.clone()))),
        Receiver::Channel(id) => read::get::<Channel>(&app.store.read()?, tables::CHANNELS, id)?
            .and_then(|c| Some((c.webhook_url?, c.webhook_secret))),
        Receiver::Operator => app
            .config
            .alerts_url
            .clone()
            .zip(app.config.alerts_secret.clone()),
    })
}

async fn send(
    app: &App,
    client: &HttpsClient,
    d: &Delivery,
    body: Result<String, Problem>,
) -> SendResult {
    let at_ms = app.clock.now_ms();
    let jitter = crate::ids::random_u128() as u64;
    let failed = |error: String| SendResult {
        attempt: Attempt {
            at_ms,
            status: None,
            error: Some(error),
        },
        retry_after_s: None,
        jitter,
    };
    let body = match body {
        Ok(body) => body,
        Err(p) => return failed(format!("cannot render the body: {}", p.detail)),
    };
    let (url, key) = match target(app, &d.receiver) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return failed(format!(
                "{} has no webhook URL configured",
                d.receiver.describe()
            ));
        }
        Err(p) => return failed(p.detail),
    };
    let timestamp = (at_ms / 1000) as i64;
    let Some(signature) = secret::sign_webhook(&key, &d.id, timestamp, body.as_bytes()) else {
        return failed("the receiver's secret is not a whsec_ secret".into());
    };
    let request = Request::post(&url)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, concat!("marketd/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(body)));
    let request = match request {
        Ok(r) => r,
        Err(e) => return failed(format!("bad webhook URL {url:?}: {e}")),
    };
    // Redirects are not followed: a 3xx is a failed attempt like any non-2xx.
    let timeout = Duration::from_secs(REQUEST_TIMEOUT_S);
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => failed(format!("no answer within {REQUEST_TIMEOUT_S} s")),
        Ok(Err(e)) => failed(format!("request failed: {e}")),
        Ok(Ok(res)) => SendResult {
            attempt: Attempt {
                at_ms,
                status: Some(res.status().as_u16()),
                error: None,
            },
            retry_after_s: res
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok()),
            jitter,
        },
    }
}
