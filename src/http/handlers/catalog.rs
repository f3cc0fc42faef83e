//! `/v1/skus`, offers, `/v1/channels` and listings.

use hyper::{Response, StatusCode};
use serde::Deserialize;

use super::{Call, created_or_ok, views};
use crate::domain::{Channel, ChannelInput, Offer, OfferInput, Sku, SkuInput};
use crate::http::io::{self, Body};
use crate::problem::Problem;
use crate::store::{catalog, read, tables};

pub fn list_skus(call: Call) -> Result<Response<Body>, Problem> {
    let q = call.query(&["limit", "cursor", "product"])?;
    let txn = call.app.store.read()?;
    let limit = q.limit()?;
    let (skus, next) = match q.get("product") {
        Some(product) => {
            let (ids, next) = read::product_skus(&txn, product, q.get("cursor"), limit)?;
            let mut skus = Vec::with_capacity(ids.len());
            for id in ids {
                skus.extend(read::get::<Sku>(&txn, tables::SKUS, &id)?);
            }
            (skus, next)
        }
        None => read::page::<Sku>(&txn, tables::SKUS, q.get("cursor"), limit, |_| true)?,
    };
    let items = skus.iter().map(views::sku).collect();
    Ok(io::json(StatusCode::OK, &io::page(items, next)))
}

pub fn get_sku(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.id(0)?;
    let txn = call.app.store.read()?;
    let sku: Sku = read::get(&txn, tables::SKUS, id)?
        .ok_or_else(|| Problem::not_found(format!("no SKU {id:?}")))?;
    Ok(io::json(StatusCode::OK, &views::sku(&sku)))
}

pub async fn put_sku(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.id(0)?.to_owned();
    let (parts, body) = (&call.parts, &call.body[..]);
    let input: SkuInput = io::parse_json(parts, body)?;
    input.validate()?;
    let live = call.app.live.clone();
    let (sku, created) = call
        .app
        .writer
        .write(move |tx| catalog::put_sku(tx, &live, &id, input))
        .await?;
    Ok(created_or_ok(created, &views::sku(&sku)))
}

pub fn list_offers(call: Call) -> Result<Response<Body>, Problem> {
    let sku = call.id(0)?;
    let txn = call.app.store.read()?;
    if read::get::<Sku>(&txn, tables::SKUS, sku)?.is_none() {
        return Err(Problem::not_found(format!("no SKU {sku:?}")));
    }
    let offers = txn.open_table(tables::OFFERS)?;
    let mut items = Vec::new();
    for entry in offers.range((sku, "")..)? {
        let (k, v) = entry?;
        if k.value().0 != sku {
            break;
        }
        let offer: Offer = crate::store::codec::decode(v.value())?;
        items.push(views::offer(&offer));
    }
    Ok(io::json(StatusCode::OK, &io::page(items, None)))
}

pub async fn put_offer(call: Call) -> Result<Response<Body>, Problem> {
    let (sku, supplier) = (call.id(0)?.to_owned(), call.id(1)?.to_owned());
    let (parts, body) = (&call.parts, &call.body[..]);
    let input: OfferInput = io::parse_json(parts, body)?;
    input.validate()?;
    let live = call.app.live.clone();
    let (offer, created) = call
        .app
        .writer
        .write(move |tx| catalog::put_offer(tx, &live, &sku, &supplier, input))
        .await?;
    Ok(created_or_ok(created, &views::offer(&offer)))
}

pub async fn delete_offer(call: Call) -> Result<Response<Body>, Problem> {
    let (sku, supplier) = (call.id(0)?.to_owned(), call.id(1)?.to_owned());
    let live = call.app.live.clone();
    call.app
        .writer
        .write(move |tx| catalog::delete_offer(tx, &live, &sku, &supplier))
        .await?;
    Ok(io::no_content())
}

pub fn list_channels(call: Call) -> Result<Response<Body>, Problem> {
    let q = call.query(&["limit", "cursor"])?;
    let txn = call.app.store.read()?;
    let (items, next) =
        read::page::<Channel>(&txn, tables::CHANNELS, q.get("cursor"), q.limit()?, |_| {
            true
        })?;
    let items = items.iter().map(|c| views::channel(c, None)).collect();
    Ok(io::json(StatusCode::OK, &io::page(items, next)))
}

pub fn get_channel(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.id(0)?;
    let txn = call.app.store.read()?;
    let c: Channel = read::get(&txn, tables::CHANNELS, id)?
        .ok_or_else(|| Problem::not_found(format!("no channel {id:?}")))?;
    Ok(io::json(StatusCode::OK, &views::channel(&c, None)))
}

pub async fn put_channel(call: Call) -> Result<Response<Body>, Problem> {
    let id = call.id(0)?.to_owned();
    let (parts, body) = (&call.parts, &call.body[..]);
    let input: ChannelInput = io::parse_json(parts, body)?;
    input.validate()?;
    let live = call.app.live.clone();
    let (channel, api_key) = call
        .app
        .writer
        .write(move |tx| catalog::put_channel(tx, &live, &id, input))
        .await?;
    Ok(created_or_ok(
        api_key.is_some(),
        &views::channel(&channel, api_key.as_deref()),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListingInput {
    sku: String,
}

pub async fn put_listing(call: Call) -> Result<Response<Body>, Problem> {
    let (channel, listing) = (call.id(0)?.to_owned(), call.id(1)?.to_owned());
    let (parts, body) = (&call.parts, &call.body[..]);
    let input: ListingInput = io::parse_json(parts, body)?;
    crate::ids::check_operator_id(&input.sku).map_err(|e| Problem::invalid(format!("sku: {e}")))?;
    let live = call.app.live.clone();
    let sku = input.sku.clone();
    let created = call
        .app
        .writer
        .write(move |tx| catalog::put_listing(tx, &live, &channel, &listing, &sku))
        .await?;
    let body =
        serde_json::json!({"channel": call.params[0], "listing": call.params[1], "sku": input.sku});
    Ok(created_or_ok(created, &body))
}
