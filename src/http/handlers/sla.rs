//! Supplier scorecards and the breach list.

use hyper::{Response, StatusCode};
use serde_json::json;

use super::Call;
use crate::clock::format_rfc3339;
use crate::domain::{Breach, Supplier, scorecard};
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::store::{read, tables};

/// The scorecard window when none is asked for (30 days), and the longest (366 days).
pub const WINDOW_S_DEFAULT: u64 = 2_592_000;
pub const WINDOW_S_MAX: u64 = 31_622_400;
/// Most fulfillments one scorecard reads: the newest of its window.
pub const SCORECARD_FULFILLMENTS_MAX: usize = 1_000_000;

pub fn scorecard_of(call: Call) -> Result<Response<Body>, Problem> {
    let supplier = call.id(0)?;
    let q = call.query(&["window_s"])?;
    let window_s = q.number::<u64>("window_s")?.unwrap_or(WINDOW_S_DEFAULT);
    if !(1..=WINDOW_S_MAX).contains(&window_s) {
        return Err(Problem::bad_request(format!(
            "window_s must be 1 to {WINDOW_S_MAX}, got {window_s}"
        )));
    }
    let txn = call.app.store.read()?;
    if read::get::<Supplier>(&txn, tables::SUPPLIERS, supplier)?.is_none() {
        return Err(Problem::not_found(format!("no supplier {supplier:?}")));
    }
    let now_ms = call.app.clock.now_ms();
    let from_ms = now_ms.saturating_sub(window_s * 1000);
    let (history, partial) =
        read::supplier_history(&txn, supplier, from_ms, now_ms, SCORECARD_FULFILLMENTS_MAX)?;
    let card = scorecard(history.iter(), now_ms);
    let mut body = serde_json::to_value(&card).map_err(|e| Problem::internal(e.to_string()))?;
    body["supplier"] = json!(supplier);
    body["window_s"] = json!(window_s);
    body["open_breaches"] = json!(read::open_breaches(&txn, supplier)?);
    if partial {
        // Only the newest fulfillments of a very busy window were counted.
        body["partial_window"] = json!(true);
    }
    Ok(io::json(StatusCode::OK, &body))
}

fn breach_json(b: &Breach) -> serde_json::Value {
    json!({"fulfillment": b.fulfillment, "order": b.order, "supplier": b.supplier,
        "stage": b.stage.as_str(), "deadline": format_rfc3339(b.deadline_ms),
        "detected_at": format_rfc3339(b.detected_at_ms),
        "closed_at": b.closed_at_ms.map(format_rfc3339), "open": b.closed_at_ms.is_none()})
}

pub fn breaches(call: Call) -> Result<Response<Body>, Problem> {
    let q = call.query(&["open", "supplier", "limit", "cursor"])?;
    let open = match q.get("open") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "open must be true or false, got {other:?}"
            )));
        }
    };
    let cursor = match q.get("cursor") {
        None => None,
        Some(c) => {
            let parsed = c
                .rsplit_once(':')
                .and_then(|(f, s)| Some((f, s.parse::<u8>().ok()?)));
            Some(parsed.ok_or_else(|| Problem::bad_request(format!("bad cursor {c:?}")))?)
        }
    };
    let supplier = q.get("supplier");
    let txn = call.app.store.read()?;
    let (items, next) = read::breaches(&txn, cursor, q.limit()?, |b| {
        open.is_none_or(|o| o == b.closed_at_ms.is_none())
            && supplier.is_none_or(|s| s == b.supplier)
    })?;
    let items = items.iter().map(breach_json).collect();
    let next = next.map(|(f, s)| format!("{f}:{s}"));
    Ok(io::json(StatusCode::OK, &io::page(items, next)))
}
