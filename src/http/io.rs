//! Reading requests and writing responses: the size cap, JSON in and out,
//! problem+json, query strings and pagination.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::Problem;

/// Largest request body read; more is 413 before it is read in full.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// How long a request body may take to arrive.
pub const BODY_READ_TIMEOUT_S: u64 = 30;
/// Default and largest page of a list.
pub const PAGE_LIMIT_DEFAULT: usize = 50;
pub const PAGE_LIMIT_MAX: usize = 1000;

pub type Body = Full<Bytes>;

fn too_large() -> Problem {
    Problem::new(
        413,
        "payload-too-large",
        "Payload too large",
        format!("request bodies are limited to {BODY_BYTES_MAX} bytes"),
    )
}

/// Reads the whole body, refusing one over [`BODY_BYTES_MAX`] (by its declared
/// length before reading, or as soon as the bytes read pass the cap).
pub async fn read_body(
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), Problem> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_BYTES_MAX as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let reading = Limited::new(body, BODY_BYTES_MAX).collect();
    match tokio::time::timeout(Duration::from_secs(BODY_READ_TIMEOUT_S), reading).await {
        Ok(Ok(collected)) => Ok((parts, collected.to_bytes())),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Problem::bad_request(format!(
            "could not read the body: {e}"
        ))),
        Err(_) => Err(Problem::new(
            408,
            "request-timeout",
            "Request timeout",
            format!("the body did not arrive within {BODY_READ_TIMEOUT_S} s"),
        )),
    }
}

/// Reads past a refused request's body without keeping it (up to the size cap and
/// the read deadline), so the client gets its answer on a clean connection.
pub async fn discard_body(req: Request<Incoming>) {
    let mut body = Limited::new(req.into_body(), BODY_BYTES_MAX);
    let draining = async { while let Some(Ok(_frame)) = body.frame().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(BODY_READ_TIMEOUT_S), draining).await;
}

/// Whether the request says its body is of `mime` (parameters like charset ignored).
pub fn content_type_is(parts: &hyper::http::request::Parts, mime: &str) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

/// Parses a JSON body: 415 for another content type, 400 for broken JSON, 422 for
/// JSON of the wrong shape (unknown fields, wrong types, missing fields).
pub fn parse_json<T: DeserializeOwned>(
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<T, Problem> {
    let declared = parts.headers.get(CONTENT_TYPE).is_some();
    if declared && !content_type_is(parts, "application/json") {
        return Err(Problem::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Problem::invalid(format!("body: {e}")),
        _ => Problem::bad_request(format!("body is not valid JSON: {e}")),
    })
}

pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(value).unwrap_or_default(),
    )));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

pub fn no_content() -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}

pub fn text(content_type: &'static str, body: String) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

pub fn problem(p: &Problem) -> Response<Body> {
    let mut res = json(
        StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &p.to_json(),
    );
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(allow) = p.extensions.get("allow").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(allow)
    {
        res.headers_mut().insert(hyper::header::ALLOW, v);
    }
    res
}

/// A request's query parameters; a name given twice is refused.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, Problem> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter {k:?}; this endpoint takes {}",
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
            if pairs.iter().any(|(n, _)| n == k.as_ref()) {
                return Err(Problem::bad_request(format!(
                    "query parameter {k:?} is given twice"
                )));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Problem> {
        self.get(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    Problem::bad_request(format!(
                        "query parameter {name} must be a whole number, got {v:?}"
                    ))
                })
            })
            .transpose()
    }

    /// `?limit=` within 1..=1000, default 50.
    pub fn limit(&self) -> Result<usize, Problem> {
        match self.number::<usize>("limit")? {
            None => Ok(PAGE_LIMIT_DEFAULT),
            Some(n) if (1..=PAGE_LIMIT_MAX).contains(&n) => Ok(n),
            Some(n) => Err(Problem::bad_request(format!(
                "limit must be 1 to {PAGE_LIMIT_MAX}, got {n}"
            ))),
        }
    }
}

/// `{"items": [...], "next_cursor": ...}`.
#[derive(serde::Serialize)]
pub struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

pub fn page<T: serde::Serialize>(items: Vec<T>, next_cursor: Option<String>) -> Page<T> {
    Page { items, next_cursor }
}
