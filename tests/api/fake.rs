//! A fake webhook receiver (a supplier's or the operator's endpoint): a small local
//! HTTP server that records what it receives and answers from a script.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
    /// The status it answered with.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
    /// Whether marketd signed it with `secret` (Standard Webhooks).
    pub fn signed_by(&self, secret: &str) -> bool {
        marketd::secret::verify_webhook(
            &[secret],
            &self.id,
            self.timestamp,
            &self.body,
            &self.signature,
        )
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    script: VecDeque<u16>,
}

pub struct FakeReceiver {
    pub url: String,
    state: Arc<(Mutex<State>, Condvar)>,
    /// While true, requests are recorded but not answered.
    holding: tokio::sync::watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeReceiver {
    /// Answers the first requests with `script`'s statuses, then 200.
    pub fn start(script: &[u16]) -> Self {
        Self::start_on("127.0.0.1:0", script)
    }

    pub fn start_on(addr: &str, script: &[u16]) -> Self {
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        state.0.lock().unwrap().script = script.iter().copied().collect();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let addr = addr.to_owned();
        let shared = state.clone();
        let (holding, held) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let stream = tokio::select! {
                        accepted = listener.accept() => accepted.unwrap().0,
                        _ = &mut stop_rx => return,
                    };
                    let (shared, held) = (shared.clone(), held.clone());
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |req| record(shared.clone(), held.clone(), req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        Self {
            url: format!("http://{addr}/hooks"),
            state,
            holding,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Waits until `n` distinct webhook-ids have arrived and returns the first of
    /// each: delivery is at least once (one sent just before a stop goes out again
    /// after the restart), and a receiver keeps one per webhook-id.
    pub fn wait_for_distinct(&self, n: usize) -> Vec<Received> {
        let mut want = n;
        loop {
            let mut seen = std::collections::HashSet::new();
            let got = self.wait_for(want);
            let distinct: Vec<Received> = got
                .iter()
                .filter(|r| seen.insert(r.id.clone()))
                .cloned()
                .collect();
            if distinct.len() >= n {
                return distinct;
            }
            want = got.len() + 1;
        }
    }

    /// Waits until at least `n` requests arrived (at most 30 s) and returns them all.
    #[track_caller]
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let (lock, cvar) = &*self.state;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut state = lock.lock().unwrap();
        while state.received.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "got {} webhooks, wanted {n}: {:?}",
                state.received.len(),
                state
                    .received
                    .iter()
                    .map(Received::kind)
                    .collect::<Vec<_>>()
            );
            state = cvar.wait_timeout(state, left).unwrap().0;
        }
        state.received.clone()
    }

    /// Records what arrives from now on but answers nothing until released.
    pub fn hold_answers(&self) {
        self.holding.send_replace(true);
    }

    /// Answers what was held, and everything after.
    pub fn release_answers(&self) {
        self.holding.send_replace(false);
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.0.lock().unwrap().received.clone()
    }
}

async fn record(
    state: Arc<(Mutex<State>, Condvar)>,
    mut held: tokio::sync::watch::Receiver<bool>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let answered = {
        let (lock, cvar) = &*state;
        let mut s = lock.lock().unwrap();
        let answered = s.script.pop_front().unwrap_or(200);
        s.received.push(Received {
            id,
            timestamp: timestamp.parse().unwrap_or(0),
            signature,
            body,
            answered,
        });
        cvar.notify_all();
        answered
    };
    let _ = held.wait_for(|holding| !holding).await;
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = hyper::StatusCode::from_u16(answered).unwrap();
    Ok(res)
}

impl Drop for FakeReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
