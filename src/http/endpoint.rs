//! Request → endpoint: one table of routes (method, path pattern, what it is), so
//! the dispatcher, the access rules and the metrics labels all come from one list.

use hyper::Method;
use percent_encoding::percent_decode_str;

use crate::problem::Problem;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    Operator,
    /// The operator, or a channel's storefront for that channel's own data.
    Storefront,
    /// A supplier, authenticated by its webhook signature (not a bearer token).
    Supplier,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Metrics,
    ListSuppliers,
    GetSupplier,
    PutSupplier,
    ApproveSupplier,
    SuspendSupplier,
    RotateSupplierSecret,
    UploadStock,
    ListSkus,
    GetSku,
    PutSku,
    ListOffers,
    PutOffer,
    DeleteOffer,
    ListChannels,
    GetChannel,
    PutChannel,
    PutListing,
    GetStock,
    ListEvents,
    CreateReservation,
    DeleteReservation,
    CreateOrder,
    ListOrders,
    GetOrder,
    OrderEvents,
    CancelOrder,
    RerouteFulfillment,
    ListDeliveries,
    GetDelivery,
    RetryDelivery,
    SupplierWebhook,
    SupplierScorecard,
    ListBreaches,
    Backup,
}

/// Every route: `{}` in a pattern captures one percent-decoded path segment.
#[rustfmt::skip]
pub const ROUTES: &[(Method, &str, Route, Access)] = &[
    (Method::GET, "/healthz", Route::Healthz, Access::Anyone),
    (Method::GET, "/metrics", Route::Metrics, Access::Anyone),
    (Method::GET, "/v1/suppliers", Route::ListSuppliers, Access::Operator),
    (Method::GET, "/v1/suppliers/{}", Route::GetSupplier, Access::Operator),
    (Method::PUT, "/v1/suppliers/{}", Route::PutSupplier, Access::Operator),
    (Method::POST, "/v1/suppliers/{}/approve", Route::ApproveSupplier, Access::Operator),
    (Method::POST, "/v1/suppliers/{}/suspend", Route::SuspendSupplier, Access::Operator),
    (Method::POST, "/v1/suppliers/{}/rotate-secret", Route::RotateSupplierSecret, Access::Operator),
    (Method::POST, "/v1/suppliers/{}/stock", Route::UploadStock, Access::Operator),
    (Method::GET, "/v1/skus", Route::ListSkus, Access::Operator),
    (Method::GET, "/v1/skus/{}", Route::GetSku, Access::Operator),
    (Method::PUT, "/v1/skus/{}", Route::PutSku, Access::Operator),
    (Method::GET, "/v1/skus/{}/offers", Route::ListOffers, Access::Operator),
    (Method::PUT, "/v1/skus/{}/offers/{}", Route::PutOffer, Access::Operator),
    (Method::DELETE, "/v1/skus/{}/offers/{}", Route::DeleteOffer, Access::Operator),
    (Method::GET, "/v1/channels", Route::ListChannels, Access::Operator),
    (Method::GET, "/v1/channels/{}", Route::GetChannel, Access::Operator),
    (Method::PUT, "/v1/channels/{}", Route::PutChannel, Access::Operator),
    (Method::PUT, "/v1/channels/{}/listings/{}", Route::PutListing, Access::Operator),
    (Method::GET, "/v1/stock/{}", Route::GetStock, Access::Storefront),
    (Method::GET, "/v1/events", Route::ListEvents, Access::Operator),
    (Method::POST, "/v1/reservations", Route::CreateReservation, Access::Storefront),
    (Method::DELETE, "/v1/reservations/{}", Route::DeleteReservation, Access::Storefront),
    (Method::POST, "/v1/orders", Route::CreateOrder, Access::Storefront),
    (Method::GET, "/v1/orders", Route::ListOrders, Access::Storefront),
    (Method::GET, "/v1/orders/{}", Route::GetOrder, Access::Storefront),
    (Method::GET, "/v1/orders/{}/events", Route::OrderEvents, Access::Storefront),
    (Method::POST, "/v1/orders/{}/cancel", Route::CancelOrder, Access::Operator),
    (Method::POST, "/v1/fulfillments/{}/reroute", Route::RerouteFulfillment, Access::Operator),
    (Method::GET, "/v1/deliveries", Route::ListDeliveries, Access::Operator),
    (Method::GET, "/v1/deliveries/{}", Route::GetDelivery, Access::Operator),
    (Method::POST, "/v1/deliveries/{}/retry", Route::RetryDelivery, Access::Operator),
    (Method::POST, "/webhooks/suppliers/{}", Route::SupplierWebhook, Access::Supplier),
    (Method::GET, "/v1/suppliers/{}/scorecard", Route::SupplierScorecard, Access::Operator),
    (Method::GET, "/v1/sla/breaches", Route::ListBreaches, Access::Operator),
    (Method::POST, "/v1/backup", Route::Backup, Access::Operator),
];

/// A parsed request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Index into [`ROUTES`]; also the metrics slot.
    pub index: usize,
    pub route: Route,
    pub access: Access,
    /// The captured path segments, decoded.
    pub params: Vec<String>,
}

impl Endpoint {
    pub fn label(&self) -> &'static str {
        ROUTES[self.index].1
    }

    /// Finds the route for a method and raw path: 404 when no pattern fits the
    /// path, 405 (with the methods that would) when only the method is wrong.
    pub fn parse(method: &Method, path: &str) -> Result<Self, Problem> {
        let mut allowed = Vec::new();
        for (index, (m, pattern, route, access)) in ROUTES.iter().enumerate() {
            if !fits(pattern, path) {
                continue;
            }
            if m != method {
                allowed.push(m.as_str());
                continue;
            }
            return Ok(Self {
                index,
                route: *route,
                access: *access,
                params: captures(pattern, path)?,
            });
        }
        if allowed.is_empty() {
            return Err(Problem::not_found(format!("no such endpoint: {path}")));
        }
        Err(Problem::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            format!("{path} accepts {}", allowed.join(", ")),
        )
        .with("allow", allowed.join(", ").into()))
    }
}

/// Whether `path` has the pattern's shape; allocates nothing, since every request
/// tries several patterns.
fn fits(pattern: &str, path: &str) -> bool {
    // Most patterns already differ in their literal start: check that first.
    // (A char pattern: searching for "{}" as a string would set up a substring
    // searcher per pattern per request.)
    let literal = pattern
        .split_once('{')
        .map_or(pattern, |(literal, _)| literal);
    if !path.starts_with(literal) {
        return false;
    }
    let mut parts = pattern.split('/');
    let mut segments = path.split('/');
    loop {
        match (parts.next(), segments.next()) {
            (None, None) => return true,
            (Some("{}"), Some(segment)) if !segment.is_empty() => {}
            (Some(part), Some(segment)) if part == segment => {}
            _ => return false,
        }
    }
}

/// The percent-decoded segments where the pattern has `{}`.
fn captures(pattern: &str, path: &str) -> Result<Vec<String>, Problem> {
    pattern
        .split('/')
        .zip(path.split('/'))
        .filter(|(part, _)| *part == "{}")
        .map(|(_, segment)| {
            percent_decode_str(segment)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| Problem::bad_request("path segment is not UTF-8"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_capture_decoded_segments() {
        let e = Endpoint::parse(&Method::PUT, "/v1/skus/tent%2F2p/offers/acme").unwrap();
        assert_eq!(e.route, Route::PutOffer);
        assert_eq!(e.params, vec!["tent/2p".to_owned(), "acme".to_owned()]);
        assert_eq!(e.label(), "/v1/skus/{}/offers/{}");
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert_eq!(
            Endpoint::parse(&Method::GET, "/v1/nope")
                .unwrap_err()
                .status,
            404
        );
        let p = Endpoint::parse(&Method::PATCH, "/v1/skus/x").unwrap_err();
        assert_eq!(p.status, 405);
        assert!(p.detail.contains("GET, PUT"));
        assert_eq!(
            Endpoint::parse(&Method::GET, "/v1/skus/%FF")
                .unwrap_err()
                .status,
            400
        );
    }
}
