//! `GET /v1/stock/{sku}` and `POST /v1/suppliers/{id}/stock` (JSON or CSV).

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::Call;
use crate::clock::{format_rfc3339, parse_rfc3339};
use crate::domain::{Supplier, UNITS_MAX, channel_buffer};
use crate::http::auth::Caller;
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::reservations::Buffer;
use crate::store::catalog::{ReportItem, rows_problem};
use crate::store::{catalog, read, tables};

/// Most rows one stock upload may carry.
pub const STOCK_ROWS_MAX: usize = 50_000;

pub fn get(call: Call) -> Result<Response<Body>, Problem> {
    let sku = call.id(0)?;
    let q = call.query(&["channel"])?;
    let channel = match (&call.caller, q.get("channel")) {
        (Caller::Channel(own), None) => Some(own.to_string()),
        (_, Some(c)) => {
            call.caller.check_channel(c)?;
            Some(c.to_owned())
        }
        (_, None) => None,
    };
    let buffer = match &channel {
        Some(c) => {
            call.app
                .live
                .channel(c)
                .ok_or_else(|| Problem::not_found(format!("no channel {c:?}")))?
                .buffer
        }
        None => Buffer::default(),
    };
    let slot = call
        .app
        .live
        .sku_slot(sku)
        .ok_or_else(|| Problem::not_found(format!("no SKU {sku:?}")))?;
    let levels = call.app.live.table.levels(slot);
    let txn = call.app.store.read()?;
    let mut suppliers = Vec::new();
    for (supplier, p) in read::positions_of_sku(&txn, sku)? {
        let status =
            read::get::<Supplier>(&txn, tables::SUPPLIERS, &supplier)?.map(|s| s.status.as_str());
        suppliers.push(
            json!({"supplier": supplier, "status": status, "on_hand": p.on_hand,
            "allocated": p.allocated,
            "as_of": (p.as_of_ms > 0).then(|| format_rfc3339(p.as_of_ms))}),
        );
    }
    let body = json!({
        "sku": sku, "channel": channel, "on_hand": levels.on_hand, "allocated": levels.allocated,
        "reserved": levels.reserved, "safety_stock": levels.safety_stock,
        "channel_buffer": channel_buffer(buffer.units, buffer.pct, levels.on_hand as u64),
        "available": levels.available(buffer), "suppliers": suppliers,
    });
    Ok(io::json(StatusCode::OK, &body))
}

pub async fn upload(call: Call) -> Result<Response<Body>, Problem> {
    let supplier = call.id(0)?.to_owned();
    let q = call.query(&["as_of"])?;
    let query_as_of = q.get("as_of").map(parse_as_of).transpose()?;
    let now_ms = call.app.clock.now_ms();
    let (parts, body) = (&call.parts, &call.body[..]);
    let (as_of_ms, items) = if io::content_type_is(parts, "text/csv") {
        (query_as_of, parse_csv(body)?)
    } else {
        let doc: Value = io::parse_json(parts, body)?;
        parse_json_report(&doc, query_as_of)?
    };
    let as_of_ms = as_of_ms.unwrap_or(now_ms);
    let live = call.app.live.clone();
    let actor = call.caller.actor();
    let outcome = call
        .app
        .writer
        .write(move |tx| catalog::report_stock(tx, &live, &supplier, &actor, as_of_ms, items))
        .await?;
    Ok(io::json(
        StatusCode::OK,
        &json!({"applied": outcome.applied, "stale": outcome.stale, "as_of": format_rfc3339(as_of_ms)}),
    ))
}

fn parse_as_of(text: &str) -> Result<u64, Problem> {
    parse_rfc3339(text).ok_or_else(|| {
        Problem::invalid(format!(
            "as_of must be an RFC 3339 time such as 2026-11-22T10:00:00Z, got {text:?}"
        ))
    })
}

fn parse_on_hand(v: &Value) -> Result<u32, String> {
    match v.as_i64() {
        Some(n) if n < 0 => Err(format!("on_hand must not be negative, got {n}")),
        Some(n) if n as u64 > UNITS_MAX => Err(format!("on_hand must be at most {UNITS_MAX}")),
        Some(n) => Ok(n as u32),
        None => Err(format!("on_hand must be a whole number, got {v}")),
    }
}

/// `{"as_of", "items": [{"supplier_sku" | "sku", "on_hand"}]}`; every bad item is
/// reported with its 1-based position as `line`.
pub(super) fn parse_json_report(
    doc: &Value,
    query_as_of: Option<u64>,
) -> Result<(Option<u64>, Vec<ReportItem>), Problem> {
    let obj = doc
        .as_object()
        .ok_or_else(|| Problem::invalid("body must be a JSON object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "as_of" | "items"))
    {
        return Err(Problem::invalid(format!(
            "unknown field {k:?}; expected as_of and items"
        )));
    }
    let as_of = match obj.get("as_of") {
        Some(Value::String(s)) => Some(parse_as_of(s)?),
        Some(other) => {
            return Err(Problem::invalid(format!(
                "as_of must be a string, got {other}"
            )));
        }
        None => query_as_of,
    };
    let rows = obj
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| Problem::invalid("items must be an array"))?;
    check_row_count(rows.len())?;
    let mut items = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        match json_item(row) {
            Ok((supplier_sku, sku, on_hand)) => items.push(ReportItem {
                line,
                supplier_sku,
                sku,
                on_hand,
            }),
            Err(error) => errors.push(json!({"line": line, "error": error})),
        }
    }
    if !errors.is_empty() {
        return Err(rows_problem(errors));
    }
    Ok((as_of, items))
}

type ItemFields = (Option<String>, Option<String>, u32);

fn json_item(row: &Value) -> Result<ItemFields, String> {
    let obj = row.as_object().ok_or("item must be an object")?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "supplier_sku" | "sku" | "on_hand"))
    {
        return Err(format!("unknown field {k:?}"));
    }
    let text = |name: &str| -> Result<Option<String>, String> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                crate::ids::check_operator_id(s).map_err(|e| format!("{name}: {e}"))?;
                Ok(Some(s.clone()))
            }
            Some(other) => Err(format!("{name} must be a string, got {other}")),
        }
    };
    let (supplier_sku, sku) = (text("supplier_sku")?, text("sku")?);
    let on_hand = parse_on_hand(obj.get("on_hand").ok_or("on_hand is missing")?)?;
    if supplier_sku.is_some() == sku.is_some() {
        return Err("name exactly one of supplier_sku or sku".into());
    }
    Ok((supplier_sku, sku, on_hand))
}

fn check_row_count(n: usize) -> Result<(), Problem> {
    if n > STOCK_ROWS_MAX {
        return Err(Problem::invalid(format!(
            "at most {STOCK_ROWS_MAX} rows per upload, got {n}"
        )));
    }
    Ok(())
}

/// CSV with the header `supplier_sku,on_hand` or `sku,on_hand`; `line` is the
/// file's line number (the header is line 1).
fn parse_csv(body: &[u8]) -> Result<Vec<ReportItem>, Problem> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| Problem::invalid(format!("CSV header: {e}")))?;
    let by_code = match header.iter().collect::<Vec<_>>().as_slice() {
        ["supplier_sku", "on_hand"] => true,
        ["sku", "on_hand"] => false,
        _ => {
            return Err(Problem::invalid(
                "the CSV header must be supplier_sku,on_hand or sku,on_hand",
            ));
        }
    };
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        if items.len() + errors.len() >= STOCK_ROWS_MAX {
            return Err(Problem::invalid(format!(
                "at most {STOCK_ROWS_MAX} rows per upload"
            )));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                errors.push(json!({"line": line, "error": format!("malformed CSV: {e}")}));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        match csv_item(&record) {
            Ok((code, on_hand)) => items.push(ReportItem {
                line,
                supplier_sku: by_code.then(|| code.clone()),
                sku: (!by_code).then_some(code),
                on_hand,
            }),
            Err(error) => errors.push(json!({"line": line, "error": error})),
        }
    }
    if !errors.is_empty() {
        return Err(rows_problem(errors));
    }
    Ok(items)
}

fn csv_item(record: &csv::StringRecord) -> Result<(String, u32), String> {
    if record.len() != 2 {
        return Err(format!("expected 2 fields, got {}", record.len()));
    }
    let code = record[0].to_owned();
    crate::ids::check_operator_id(&code)?;
    let on_hand = match record[1].parse::<i64>() {
        Ok(n) => parse_on_hand(&json!(n))?,
        Err(_) => {
            return Err(format!(
                "on_hand must be a whole number, got {:?}",
                &record[1]
            ));
        }
    };
    Ok((code, on_hand))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_checked_one_by_one() {
        let ok = parse_csv(b"supplier_sku,on_hand\nAC-1,12\nAC-2, 0\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].line, 3);
        assert_eq!(ok[1].supplier_sku.as_deref(), Some("AC-2"));
        let err = parse_csv(b"sku,on_hand\na,1\nb,-3\nc,x\nd\n").unwrap_err();
        let errors = err.extensions["errors"].as_array().unwrap();
        let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
        assert_eq!(lines, vec![3, 4, 5]);
        assert!(parse_csv(b"code,qty\na,1\n").is_err());
    }

    #[test]
    fn json_items_report_each_bad_line() {
        let doc = json!({"items": [{"sku": "a", "on_hand": 1}, {"sku": "b", "on_hand": -1},
            {"supplier_sku": "c", "sku": "c", "on_hand": 1}, {"sku": "d", "on_hand": 2, "x": 1}]});
        let err = parse_json_report(&doc, None).unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(err.extensions["errors"].as_array().unwrap().len(), 3);
        let doc = json!({"as_of": "2026-11-22T10:00:00Z", "items": [{"sku": "a", "on_hand": 1}]});
        let (as_of, items) = parse_json_report(&doc, None).unwrap();
        assert_eq!(as_of, parse_rfc3339("2026-11-22T10:00:00Z"));
        assert_eq!(items[0].on_hand, 1);
    }
}
