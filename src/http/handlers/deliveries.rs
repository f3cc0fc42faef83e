//! `/v1/deliveries`: the outbound webhooks, their attempts, and a manual retry.

use hyper::{Response, StatusCode};

use super::{Call, views};
use crate::domain::{Delivery, DeliveryStatus};
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::store::{outbox, read, tables};

pub fn list(call: Call) -> Result<Response<Body>, Problem> {
    let q = call.query(&["limit", "cursor", "status"])?;
    let status = q
        .get("status")
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                Problem::bad_request(format!(
                    "status must be pending, failed or delivered, got {s:?}"
                ))
            })
        })
        .transpose()?;
    let txn = call.app.store.read()?;
    let (items, next) =
        read::page::<Delivery>(&txn, tables::OUTBOX, q.get("cursor"), q.limit()?, |d| {
            status.is_none_or(|s| d.status == s)
        })?;
    let items = (items.iter())
        .map(|d| Ok(views::delivery(d, &outbox::render_body(&txn, d)?)))
        .collect::<Result<Vec<_>, Problem>>()?;
    Ok(io::json(StatusCode::OK, &io::page(items, next)))
}

pub fn get(call: Call) -> Result<Response<Body>, Problem> {
    let id = &call.params[0];
    let txn = call.app.store.read()?;
    let d: Delivery = read::get(&txn, tables::OUTBOX, id)?
        .ok_or_else(|| Problem::not_found(format!("no delivery {id:?}")))?;
    Ok(io::json(
        StatusCode::OK,
        &views::delivery(&d, &outbox::render_body(&txn, &d)?),
    ))
}

pub async fn retry(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.params[0].clone();
    let live = call.app.live.clone();
    let d = call
        .app
        .writer
        .write(move |tx| outbox::retry_now(tx, &live, &id))
        .await?;
    let body = outbox::render_body(&call.app.store.read()?, &d)?;
    Ok(io::json(StatusCode::OK, &views::delivery(&d, &body)))
}
