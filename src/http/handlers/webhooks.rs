//! `POST /webhooks/suppliers/{id}`: a supplier's signed events (Standard Webhooks).
//! The raw body is read under the size cap and verified before anything in it is
//! believed; a bad or stale signature is 401 and changes nothing.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::stock::parse_json_report;
use crate::domain::{Step, Supplier, Tracking};
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::secret;
use crate::server::App;
use crate::store::fulfillments::StepInput;
use crate::store::webhooks::{self, Applied, Inbound};

/// How far a webhook's timestamp may be from now, either way.
pub const TIMESTAMP_TOLERANCE_S: u64 = 300;
/// Longest `webhook-id` accepted.
pub const WEBHOOK_ID_LEN_MAX: usize = 255;

fn header<'a>(headers: &'a hyper::HeaderMap, name: &str) -> Result<&'a str, Problem> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Problem::unauthorized(format!("the {name} header is missing")))
}

pub async fn receive(
    app: Arc<App>,
    supplier_id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    let supplier_id = supplier_id.to_owned();
    // Everything that needs no body is checked before the body is kept: a refused
    // sender's body is read past and dropped, never buffered.
    let (id, timestamp, signature, supplier) = match sender(&app, &supplier_id, req.headers()) {
        Ok(checked) => checked,
        Err(p) => {
            io::discard_body(req).await;
            return Err(p);
        }
    };
    let (_, body) = io::read_body(req).await?;
    let mut secrets = vec![supplier.webhook_secret.as_str()];
    secrets.extend(supplier.previous_secret_at(app.clock.now_ms()));
    if !secret::verify_webhook(&secrets, &id, timestamp, &body, &signature) {
        return Err(Problem::unauthorized(
            "the webhook signature does not verify",
        ));
    }
    let inbound = parse_event(&body, &supplier_id, app.clock.now_ms())?;
    let live = app.live.clone();
    let applied = app
        .writer
        .write(move |tx| webhooks::apply(tx, &live, &supplier_id, &id, inbound))
        .await?;
    let status = match applied {
        Applied::Done => "applied",
        Applied::Duplicate => "duplicate",
    };
    Ok(io::json(StatusCode::OK, &json!({"status": status})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    data: Value,
    /// Standard Webhooks payloads may carry it; the signed header is what counts.
    #[serde(default, rename = "timestamp")]
    _timestamp: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FulfillmentRef {
    fulfillment: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shipped {
    fulfillment: String,
    carrier: String,
    tracking_number: String,
    #[serde(default)]
    tracking_url: Option<String>,
}

fn malformed(e: impl std::fmt::Display) -> Problem {
    Problem::bad_request(format!("malformed webhook: {e}"))
}

/// The checks that need no body: the Standard Webhooks headers, the timestamp's
/// window and the supplier. Returns (webhook-id, timestamp, signature, supplier).
fn sender(
    app: &App,
    supplier_id: &str,
    headers: &hyper::HeaderMap,
) -> Result<(String, i64, String, Arc<Supplier>), Problem> {
    let id = header(headers, "webhook-id")?.to_owned();
    if id.is_empty() || id.len() > WEBHOOK_ID_LEN_MAX || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::unauthorized(
            "webhook-id must be 1 to 255 visible ASCII characters",
        ));
    }
    let timestamp: i64 = header(headers, "webhook-timestamp")?
        .parse()
        .map_err(|_| Problem::unauthorized("webhook-timestamp must be unix seconds"))?;
    let now_s = (app.clock.now_ms() / 1000) as i64;
    if now_s.abs_diff(timestamp) > TIMESTAMP_TOLERANCE_S {
        return Err(Problem::unauthorized(format!(
            "webhook-timestamp is more than {TIMESTAMP_TOLERANCE_S} s from now"
        )));
    }
    let signature = header(headers, "webhook-signature")?.to_owned();
    let supplier = (app.live.supplier(supplier_id))
        .ok_or_else(|| Problem::unauthorized("the webhook signature does not verify"))?;
    Ok((id, timestamp, signature, supplier))
}

/// The body as an [`Inbound`]: 400 for an unknown type or malformed data.
fn parse_event(body: &[u8], supplier: &str, now_ms: u64) -> Result<Inbound, Problem> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(malformed)?;
    let actor = format!("supplier:{supplier}");
    let step = |step: Step, data: Value| -> Result<Inbound, Problem> {
        let r: FulfillmentRef = serde_json::from_value(data).map_err(malformed)?;
        if step != Step::Reject && r.reason.is_some() {
            return Err(malformed("only fulfillment.rejected carries a reason"));
        }
        if r.reason
            .as_ref()
            .is_some_and(|r| r.len() > crate::domain::TEXT_LEN_MAX)
        {
            return Err(malformed("reason is too long"));
        }
        Ok(Inbound::Step {
            fulfillment: r.fulfillment,
            input: StepInput {
                step,
                reason: r.reason,
                tracking: None,
                actor: actor.clone(),
            },
        })
    };
    match envelope.kind.as_str() {
        "stock.updated" => {
            let (as_of_ms, items) = parse_json_report(&envelope.data, None).map_err(|p| {
                let mut p = Problem {
                    status: 400,
                    slug: "bad-request",
                    title: "Bad request",
                    ..p
                };
                p.detail = format!("malformed stock.updated: {}", p.detail);
                p
            })?;
            Ok(Inbound::Stock {
                as_of_ms: as_of_ms.unwrap_or(now_ms),
                items,
            })
        }
        "fulfillment.acknowledged" => step(Step::Acknowledge, envelope.data),
        "fulfillment.rejected" => step(Step::Reject, envelope.data),
        "fulfillment.delivered" => step(Step::Deliver, envelope.data),
        "fulfillment.shipped" => {
            let s: Shipped = serde_json::from_value(envelope.data).map_err(malformed)?;
            if let Some(url) = &s.tracking_url {
                crate::domain::check_url("tracking_url", url).map_err(|p| malformed(p.detail))?;
            }
            for (name, v) in [
                ("carrier", &s.carrier),
                ("tracking_number", &s.tracking_number),
            ] {
                crate::domain::check_text(name, v).map_err(|p| malformed(p.detail))?;
            }
            Ok(Inbound::Step {
                fulfillment: s.fulfillment,
                input: StepInput {
                    step: Step::Ship,
                    reason: None,
                    tracking: Some(Tracking {
                        carrier: s.carrier,
                        tracking_number: s.tracking_number,
                        tracking_url: s.tracking_url,
                    }),
                    actor,
                },
            })
        }
        other => Err(Problem::bad_request(format!(
            "unknown webhook type {other:?}"
        ))),
    }
}
