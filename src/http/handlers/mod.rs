//! One handler per endpoint. A handler parses and checks its input, then either
//! reads the store or sends one command to the store writer, and renders the answer.

mod backup;
mod catalog;
mod checkout;
mod deliveries;
mod fulfillments;
mod ops;
mod sla;
mod stock;
mod suppliers;
pub mod views;
mod webhooks;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::auth::Caller;
use super::endpoint::{Endpoint, Route};
use super::io::{self, Body};
use crate::problem::Problem;
use crate::server::App;

/// Everything a handler gets: the caller is known and the body is read (within
/// its size cap and deadline).
pub struct Call {
    pub app: Arc<App>,
    pub params: Vec<String>,
    pub caller: Caller,
    pub parts: hyper::http::request::Parts,
    pub body: bytes::Bytes,
}

impl Call {
    /// The `n`th path parameter, checked as an operator-chosen id.
    pub fn id(&self, n: usize) -> Result<&str, Problem> {
        let id = self.params[n].as_str();
        crate::ids::check_operator_id(id).map_err(Problem::bad_request)?;
        Ok(id)
    }

    pub fn query(&self, allowed: &[&str]) -> Result<io::Query, Problem> {
        io::Query::parse(self.parts.uri.query(), allowed)
    }
}

pub async fn dispatch(
    app: &Arc<App>,
    endpoint: Endpoint,
    caller: Caller,
    req: Request<Incoming>,
) -> Result<Response<Body>, Problem> {
    if endpoint.route == Route::SupplierWebhook {
        // Signed, not authenticated by token: it checks its headers before the body.
        return webhooks::receive(app.clone(), &endpoint.params[0], req).await;
    }
    let (parts, body) = io::read_body(req).await?;
    let call = Call {
        app: app.clone(),
        params: endpoint.params,
        caller,
        parts,
        body,
    };
    match endpoint.route {
        Route::Healthz => Ok(ops::healthz()),
        Route::Metrics => Ok(ops::metrics(&call.app)),
        Route::ListSuppliers => suppliers::list(call),
        Route::GetSupplier => suppliers::get(call),
        Route::PutSupplier => suppliers::put(call).await,
        Route::ApproveSupplier => suppliers::approve(call).await,
        Route::SuspendSupplier => suppliers::suspend(call).await,
        Route::RotateSupplierSecret => suppliers::rotate_secret(call).await,
        Route::UploadStock => stock::upload(call).await,
        Route::ListSkus => catalog::list_skus(call),
        Route::GetSku => catalog::get_sku(call),
        Route::PutSku => catalog::put_sku(call).await,
        Route::ListOffers => catalog::list_offers(call),
        Route::PutOffer => catalog::put_offer(call).await,
        Route::DeleteOffer => catalog::delete_offer(call).await,
        Route::ListChannels => catalog::list_channels(call),
        Route::GetChannel => catalog::get_channel(call),
        Route::PutChannel => catalog::put_channel(call).await,
        Route::PutListing => catalog::put_listing(call).await,
        Route::GetStock => stock::get(call),
        Route::ListEvents => ops::events(call),
        Route::CreateReservation => checkout::reserve(call).await,
        Route::DeleteReservation => checkout::release(call),
        Route::CreateOrder => checkout::place_order(call).await,
        Route::ListOrders => checkout::list_orders(call),
        Route::GetOrder => checkout::get_order(call),
        Route::OrderEvents => checkout::order_events(call),
        Route::CancelOrder => fulfillments::cancel_order(call).await,
        Route::RerouteFulfillment => fulfillments::reroute(call).await,
        Route::ListDeliveries => deliveries::list(call),
        Route::GetDelivery => deliveries::get(call),
        Route::RetryDelivery => deliveries::retry(call).await,
        Route::SupplierWebhook => unreachable!("answered above"),
        Route::SupplierScorecard => sla::scorecard_of(call),
        Route::ListBreaches => sla::breaches(call),
        Route::Backup => backup::run(call).await,
    }
}

/// 201 when `created`, else 200 — the contract's answer to a PUT.
pub fn created_or_ok(created: bool, body: &serde_json::Value) -> Response<Body> {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    io::json(status, body)
}
