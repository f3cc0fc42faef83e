//! Operator actions on orders: cancel what has not shipped, reroute a fulfillment.

use hyper::{Response, StatusCode};
use serde::Deserialize;

use super::{Call, views};
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::store::fulfillments;

pub async fn cancel_order(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.params[0].clone();
    let live = call.app.live.clone();
    let order = call
        .app
        .writer
        .write(move |tx| fulfillments::cancel_order(tx, &live, &id))
        .await?;
    Ok(io::json(StatusCode::OK, &views::order(&order)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RerouteInput {
    #[serde(default)]
    supplier: Option<String>,
}

pub async fn reroute(call: Call) -> Result<Response<Body>, Problem> {
    let Call {
        app,
        params,
        caller,
        parts,
        body,
    } = call;
    let input: RerouteInput = if body.is_empty() {
        RerouteInput::default()
    } else {
        io::parse_json(&parts, &body)?
    };
    if let Some(s) = &input.supplier {
        crate::ids::check_operator_id(s).map_err(|e| Problem::invalid(format!("supplier: {e}")))?;
    }
    let (live, id, actor) = (app.live.clone(), params[0].clone(), caller.actor());
    let order = app
        .writer
        .write(move |tx| fulfillments::reroute(tx, &live, &id, input.supplier.as_deref(), &actor))
        .await?;
    Ok(io::json(StatusCode::OK, &views::order(&order)))
}
