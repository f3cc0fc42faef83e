//! `/v1/suppliers`: create, update, approve, suspend, rotate the webhook secret.

use hyper::{Response, StatusCode};

use super::{Call, created_or_ok, views};
use crate::domain::{Supplier, SupplierInput, SupplierStatus};
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::store::{catalog, read, tables};

pub fn list(call: Call) -> Result<Response<Body>, Problem> {
    let q = call.query(&["limit", "cursor", "status"])?;
    let status = q.get("status").map(|s| match s {
        "pending" => Ok(SupplierStatus::Pending),
        "approved" => Ok(SupplierStatus::Approved),
        "suspended" => Ok(SupplierStatus::Suspended),
        other => Err(Problem::bad_request(format!(
            "status must be pending, approved or suspended, got {other:?}"
        ))),
    });
    let status = status.transpose()?;
    let txn = call.app.store.read()?;
    let (items, next) =
        read::page::<Supplier>(&txn, tables::SUPPLIERS, q.get("cursor"), q.limit()?, |s| {
            status.is_none_or(|st| s.status == st)
        })?;
    let items = items.iter().map(|s| views::supplier(s, false)).collect();
    Ok(io::json(StatusCode::OK, &io::page(items, next)))
}

pub fn get(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.id(0)?;
    let txn = call.app.store.read()?;
    let s: Supplier = read::get(&txn, tables::SUPPLIERS, id)?
        .ok_or_else(|| Problem::not_found(format!("no supplier {id:?}")))?;
    Ok(io::json(StatusCode::OK, &views::supplier(&s, false)))
}

pub async fn put(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.id(0)?.to_owned();
    let (parts, body) = (&call.parts, &call.body[..]);
    let input: SupplierInput = io::parse_json(parts, body)?;
    input.validate()?;
    let (live, suppliers_max) = (call.app.live.clone(), call.app.config.limits.suppliers_max);
    let (supplier, created) = call
        .app
        .writer
        .write(move |tx| catalog::put_supplier(tx, &live, &id, input, suppliers_max))
        .await?;
    // The secret is shown once: in the answer that created it.
    Ok(created_or_ok(created, &views::supplier(&supplier, created)))
}

async fn set_status(call: Call, status: SupplierStatus) -> Result<Response<Body>, Problem> {
    let id = call.id(0)?.to_owned();
    let live = call.app.live.clone();
    let supplier = call
        .app
        .writer
        .write(move |tx| catalog::set_supplier_status(tx, &live, &id, status))
        .await?;
    Ok(io::json(StatusCode::OK, &views::supplier(&supplier, false)))
}

pub async fn approve(call: Call) -> Result<Response<Body>, Problem> {
    set_status(call, SupplierStatus::Approved).await
}

pub async fn suspend(call: Call) -> Result<Response<Body>, Problem> {
    set_status(call, SupplierStatus::Suspended).await
}

pub async fn rotate_secret(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.id(0)?.to_owned();
    let live = call.app.live.clone();
    let supplier = call
        .app
        .writer
        .write(move |tx| catalog::rotate_supplier_secret(tx, &live, &id))
        .await?;
    Ok(io::json(StatusCode::OK, &views::supplier(&supplier, true)))
}
