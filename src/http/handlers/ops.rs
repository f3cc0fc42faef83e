//! Health, metrics and the audit trail.

use hyper::{Response, StatusCode};
use serde_json::json;

use super::{Call, views};
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::server::App;
use crate::store::read;

pub fn healthz() -> Response<Body> {
    io::json(StatusCode::OK, &json!({"status": "ok"}))
}

pub fn metrics(app: &App) -> Response<Body> {
    let mut out = String::new();
    app.http_metrics.render(&mut out);
    app.writer.metrics.render(&mut out);
    out.push_str("# TYPE marketd_store_write_queue gauge\n");
    out.push_str(&format!(
        "marketd_store_write_queue {}\n",
        app.writer.queued()
    ));
    out.push_str("# TYPE marketd_reservations_live gauge\n");
    out.push_str(&format!(
        "marketd_reservations_live {}\n",
        app.live.table.live_reservations()
    ));
    let d = &app.live.deliveries;
    out.push_str("# TYPE marketd_deliveries gauge\n");
    for (status, n) in [("pending", &d.pending), ("failed", &d.failed)] {
        let n = n.load(std::sync::atomic::Ordering::Relaxed);
        out.push_str(&format!("marketd_deliveries{{status=\"{status}\"}} {n}\n"));
    }
    let open: u64 = app
        .store
        .read()
        .ok()
        .and_then(|txn| read::all_open_breaches(&txn).ok())
        .unwrap_or(0);
    out.push_str("# TYPE marketd_open_breaches gauge\n");
    out.push_str(&format!("marketd_open_breaches {open}\n"));
    io::text("text/plain; version=0.0.4", out)
}

/// `GET /v1/events?after=SEQ&limit=N` (`cursor` is the same as `after`).
pub fn events(call: Call) -> Result<Response<Body>, Problem> {
    let q = call.query(&["after", "cursor", "limit"])?;
    let after = match (q.number::<u64>("after")?, q.number::<u64>("cursor")?) {
        (Some(_), Some(_)) => return Err(Problem::bad_request("give after or cursor, not both")),
        (a, c) => a.or(c).unwrap_or(0),
    };
    let txn = call.app.store.read()?;
    let (items, next) = read::events_after(&txn, after, q.limit()?)?;
    let items = items.iter().map(views::event).collect();
    Ok(io::json(
        StatusCode::OK,
        &io::page(items, next.map(|s| s.to_string())),
    ))
}
