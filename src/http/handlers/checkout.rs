//! The hot path: `/v1/reservations` and `/v1/orders`. Reservations are answered
//! from the in-memory table alone; orders go through the store writer and are
//! answered only once committed.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Call, views};
use crate::clock::format_rfc3339;
use crate::domain::{Address, Customer, LineInput, Order, OrderStatus, check_qty};
use crate::http::auth::Caller;
use crate::http::io::{self, Body};
use crate::live::{ChannelView, Live, Taken};
use crate::problem::Problem;
use crate::reservations::{ClaimError, HeldLine, HoldId, ReserveError};
use crate::store::orders::{self, NewOrder, Placed};
use crate::store::{read, tables};

/// Hold lengths a reservation may ask for, and the default.
pub const TTL_S_MIN: u64 = 1;
pub const TTL_S_MAX: u64 = 86_400;
pub const TTL_S_DEFAULT: u64 = 900;
/// Longest `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReservationInput {
    channel: String,
    lines: Vec<LineInput>,
    #[serde(default)]
    ttl_s: Option<u64>,
}

fn channel_for(caller: &Caller, live: &Live, channel: &str) -> Result<ChannelView, Problem> {
    caller.check_channel(channel)?;
    live.channel(channel)
        .ok_or_else(|| Problem::invalid(format!("unknown channel {channel:?}")))
}

/// Resolves each line to a table slot (by SKU or the channel's listing id).
fn resolve_lines(
    live: &Live,
    channel: &str,
    lines: &[LineInput],
    lines_max: usize,
) -> Result<Vec<HeldLine>, Problem> {
    if lines.is_empty() || lines.len() > lines_max {
        return Err(Problem::invalid(format!(
            "lines must hold 1 to {lines_max} lines, got {}",
            lines.len()
        )));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            check_qty(line.qty)
                .map_err(|p| Problem::invalid(format!("lines[{i}]: {}", p.detail)))?;
            let sku = match (&line.sku, &line.listing) {
                (Some(sku), None) => sku.clone(),
                (None, Some(listing)) => live.listing_sku(channel, listing).ok_or_else(|| {
                    Problem::invalid(format!(
                        "lines[{i}]: channel {channel:?} has no listing {listing:?}"
                    ))
                })?,
                _ => {
                    return Err(Problem::invalid(format!(
                        "lines[{i}]: name exactly one of sku or listing"
                    )));
                }
            };
            let sku_slot = live
                .sku_slot(&sku)
                .ok_or_else(|| Problem::invalid(format!("lines[{i}]: unknown SKU {sku:?}")))?;
            Ok(HeldLine {
                sku_slot,
                qty: line.qty,
            })
        })
        .collect()
}

/// A reservation as the API shows it: the answer to every reserve, so serialized
/// straight from borrowed fields.
#[derive(Serialize)]
struct Held<'a> {
    id: String,
    channel: &'a str,
    expires_at: String,
    lines: Vec<HeldLineView>,
}

#[derive(Serialize)]
struct HeldLineView {
    #[serde(serialize_with = "shared_str")]
    sku: Option<Arc<str>>,
    qty: u32,
}

fn shared_str<S: serde::Serializer>(value: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    value.as_deref().serialize(s)
}

fn held_lines(live: &Live, lines: &[HeldLine]) -> Vec<HeldLineView> {
    lines
        .iter()
        .map(|l| HeldLineView {
            sku: live.sku_name(l.sku_slot),
            qty: l.qty,
        })
        .collect()
}

fn reserve_error(live: &Live, e: ReserveError) -> Problem {
    match e {
        ReserveError::Insufficient(report) => {
            let lines: Vec<Value> = report
                .iter()
                .map(|(slot, requested, available)| {
                    json!({"sku": live.sku_name(*slot).as_deref(), "requested": requested,
                        "available": available})
                })
                .collect();
            Problem::conflict(
                "insufficient-stock",
                "Insufficient stock",
                "not every line can be had; nothing was held",
            )
            .with("lines", Value::Array(lines))
        }
        ReserveError::Full => {
            Problem::busy("too many live reservations (limits.reservations_max); retry shortly")
        }
    }
}

pub async fn reserve(call: Call) -> Result<Response<Body>, Problem> {
    let Call {
        app,
        caller,
        parts,
        body,
        ..
    } = call;
    let input: ReservationInput = io::parse_json(&parts, &body)?;
    let channel = channel_for(&caller, &app.live, &input.channel)?;
    let ttl_s = input.ttl_s.unwrap_or(TTL_S_DEFAULT);
    if !(TTL_S_MIN..=TTL_S_MAX).contains(&ttl_s) {
        return Err(Problem::invalid(format!(
            "ttl_s must be {TTL_S_MIN} to {TTL_S_MAX}, got {ttl_s}"
        )));
    }
    let lines = resolve_lines(
        &app.live,
        &input.channel,
        &input.lines,
        app.config.limits.lines_max,
    )?;
    let now_ms = app.clock.now_ms();
    let expires_at_ms = now_ms + ttl_s * 1000;
    let id = app
        .live
        .table
        .reserve(channel.slot, &lines, channel.buffer, expires_at_ms)
        .map_err(|e| reserve_error(&app.live, e))?
        .encode(now_ms, crate::ids::random_u128() as u16);
    let held = Held {
        id,
        channel: &input.channel,
        expires_at: format_rfc3339(expires_at_ms),
        lines: held_lines(&app.live, &lines),
    };
    Ok(io::json(StatusCode::CREATED, &held))
}

/// A storefront may only release its own channel's holds.
fn caller_channel(caller: &Caller) -> Option<&str> {
    match caller {
        Caller::Channel(c) => Some(c),
        _ => None,
    }
}

/// The caller's channel number in the reservation table; None for the operator.
fn caller_slot(live: &Live, caller: &Caller) -> Option<u32> {
    caller_channel(caller).map(|c| live.channel(c).map_or(u32::MAX, |v| v.slot))
}

pub fn release(call: Call) -> Result<Response<Body>, Problem> {
    let id = &call.params[0];
    let live = &call.app.live;
    let released = HoldId::parse(id)
        .is_some_and(|hold| live.table.release(hold, caller_slot(live, &call.caller)));
    if released {
        Ok(io::no_content())
    } else {
        Err(Problem::not_found(format!("no live reservation {id:?}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderInput {
    channel: String,
    #[serde(default)]
    reservation: Option<String>,
    #[serde(default)]
    lines: Option<Vec<LineInput>>,
    customer: Customer,
    ship_to: Address,
}

fn idempotency_key(parts: &hyper::http::request::Parts) -> Result<String, Problem> {
    let key = parts
        .headers
        .get("idempotency-key")
        .ok_or_else(|| Problem::bad_request("the Idempotency-Key header is required"))?
        .to_str()
        .map_err(|_| Problem::bad_request("Idempotency-Key must be visible ASCII"))?;
    let ok = (1..=IDEMPOTENCY_KEY_LEN_MAX).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(Problem::bad_request(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"
        )));
    }
    Ok(key.to_owned())
}

/// The request as a canonical JSON text (sorted keys, no spaces), hashed: a retry
/// that re-encodes the same body still matches. Taken from the body as sent, not
/// the parsed request, so a field marketd learns later does not change the
/// fingerprint of requests made before it.
fn body_fingerprint(body: &[u8]) -> [u8; 32] {
    let canonical = serde_json::from_slice::<Value>(body)
        .map(|v| v.to_string().into_bytes())
        .unwrap_or_else(|_| body.to_vec());
    Sha256::digest(&canonical).into()
}

pub async fn place_order(call: Call) -> Result<Response<Body>, Problem> {
    let Call {
        app,
        caller,
        parts,
        body,
        ..
    } = call;
    let key = idempotency_key(&parts)?;
    let input: OrderInput = io::parse_json(&parts, &body)?;
    let channel = channel_for(&caller, &app.live, &input.channel)?;
    input.customer.validate()?;
    input.ship_to.validate()?;
    let fingerprint = body_fingerprint(&body);
    // A retry of an answered order takes its units again and the writer, finding
    // the key, answers the first order and gives them back. Only when the units
    // are not there any more (the retry's own order used them) is the store asked
    // first, so a retry is never refused for want of stock.
    let replay_or = |refused: Problem| -> Result<Response<Body>, Problem> {
        match orders::find_replay(&app.store.read()?, &input.channel, &key, &fingerprint)? {
            Some(order) => Ok(io::json(StatusCode::OK, &views::order(&order))),
            None => Err(refused),
        }
    };
    let now_ms = app.clock.now_ms();
    let taken = match (&input.reservation, &input.lines) {
        (Some(id), None) => match HoldId::parse(id)
            .ok_or(ClaimError::Unknown)
            .and_then(|hold| {
                app.live
                    .table
                    .claim(hold, Some(channel.slot), now_ms)
                    .map(|l| (hold, l))
            }) {
            Ok((hold, lines)) => Taken::new(app.live.clone(), lines, Some(hold)),
            Err(e) => return replay_or(reservation_problem(id, e)),
        },
        (None, Some(lines)) => {
            let held = resolve_lines(
                &app.live,
                &input.channel,
                lines,
                app.config.limits.lines_max,
            )?;
            if let Err(e) = app.live.table.take_all(&held, channel.buffer) {
                return replay_or(reserve_error(&app.live, e));
            }
            Taken::new(app.live.clone(), held, None)
        }
        _ => return Err(Problem::invalid("give exactly one of reservation or lines")),
    };
    let lines = taken
        .lines()
        .iter()
        .map(|l| {
            Ok((
                app.live
                    .sku_name(l.sku_slot)
                    .ok_or_else(|| Problem::internal("SKU slot without a name"))?
                    .to_string(),
                l.qty,
            ))
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    let new = NewOrder {
        channel: input.channel.clone(), // Kept for a replay should the writer be full.
        actor: caller.actor(),
        idempotency_key: key.clone(),
        body_sha256: fingerprint,
        customer: input.customer,
        ship_to: input.ship_to,
        lines,
        taken,
    };
    let live = app.live.clone();
    let placed = match app
        .writer
        .write(move |tx| orders::place_order(tx, &live, new))
        .await
    {
        Ok(placed) => placed,
        // The writer's queue is full (the units went back with the dropped
        // command): a retry of an answered order still gets its order.
        Err(busy) if busy.status == 503 => return replay_or(busy),
        Err(other) => return Err(other),
    };
    match placed {
        Placed::Created(order) => {
            app.http_metrics
                .orders_placed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(io::json(StatusCode::CREATED, &views::order(&order)))
        }
        Placed::Replayed(order) => Ok(io::json(StatusCode::OK, &views::order(&order))),
    }
}

fn reservation_problem(id: &str, e: ClaimError) -> Problem {
    let why = match e {
        ClaimError::Expired => "has expired",
        ClaimError::Unknown => "is unknown or already used",
    };
    Problem::conflict(
        "reservation-expired",
        "Reservation expired",
        format!("reservation {id:?} {why}"),
    )
}

/// Which orders a caller may see: a storefront only its own channel's.
fn visible(caller: &Caller, order: &Order) -> bool {
    caller_channel(caller).is_none_or(|c| c == order.channel)
}

pub fn list_orders(call: Call) -> Result<Response<Body>, Problem> {
    let q = call.query(&["limit", "cursor", "status", "supplier", "channel"])?;
    let status = q
        .get("status")
        .map(|s| {
            OrderStatus::parse(s)
                .ok_or_else(|| Problem::bad_request(format!("unknown order status {s:?}")))
        })
        .transpose()?;
    if let Some(c) = q.get("channel") {
        call.caller.check_channel(c)?;
    }
    let (channel, supplier) = (q.get("channel"), q.get("supplier"));
    let txn = call.app.store.read()?;
    let (items, next) =
        read::page::<Order>(&txn, tables::ORDERS, q.get("cursor"), q.limit()?, |o| {
            visible(&call.caller, o)
                && status.is_none_or(|s| o.status == s)
                && channel.is_none_or(|c| o.channel == c)
                && supplier.is_none_or(|s| o.fulfillments.iter().any(|f| f.supplier == s))
        })?;
    let items = items.iter().map(views::order).collect();
    Ok(io::json(StatusCode::OK, &io::page(items, next)))
}

fn load_order(call: &Call) -> Result<Order, Problem> {
    let id = &call.params[0];
    let txn = call.app.store.read()?;
    read::get::<Order>(&txn, tables::ORDERS, id)?
        .filter(|o| visible(&call.caller, o))
        .ok_or_else(|| Problem::not_found(format!("no order {id:?}")))
}

pub fn get_order(call: Call) -> Result<Response<Body>, Problem> {
    let order = load_order(&call)?;
    Ok(io::json(StatusCode::OK, &views::order(&order)))
}

pub fn order_events(call: Call) -> Result<Response<Body>, Problem> {
    let q = call.query(&["limit", "cursor"])?;
    let order = load_order(&call)?;
    let after = q.number::<u64>("cursor")?.unwrap_or(0);
    let txn = call.app.store.read()?;
    let (items, next) = read::subject_events(&txn, &order.id, after, q.limit()?)?;
    let items = items.iter().map(views::event).collect();
    Ok(io::json(
        StatusCode::OK,
        &io::page(items, next.map(|s| s.to_string())),
    ))
}
