//! The one error type every boundary answers with: an RFC 9457 problem. The HTTP
//! layer renders it as `application/problem+json`; `ctl` prints its title.

use serde_json::{Map, Value};

use crate::store::StoreError;

/// The problem type of a failure in redb itself.
const STORE_FAILURE: &str = "store";

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: u16,
    /// The last segment of the relative `type` URI, `/problems/{slug}`.
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extra members, such as `lines` or `errors`.
    pub extensions: Map<String, Value>,
}

impl Problem {
    pub fn new(status: u16, slug: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            status,
            slug,
            title,
            detail,
            extensions: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, "bad-request", "Bad request", detail.into())
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(422, "invalid", "Invalid request", detail.into())
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "not-found", "Not found", detail.into())
    }
    pub fn conflict(slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(409, slug, title, detail.into())
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", "Unauthorized", detail.into())
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "forbidden", "Forbidden", detail.into())
    }
    pub fn busy(detail: impl Into<String>) -> Self {
        Self::new(503, "busy", "Service busy", detail.into())
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, "internal", "Internal error", detail.into())
    }

    /// Something went wrong that the request did not cause (the store failed, or a
    /// record is not as it must be); a write batch that meets one is abandoned whole.
    pub fn is_store_failure(&self) -> bool {
        self.status == 500
    }

    pub fn type_uri(&self) -> String {
        format!("/problems/{}", self.slug)
    }

    /// The JSON body of the problem.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), self.type_uri().into());
        body.insert("title".into(), self.title.into());
        body.insert("status".into(), self.status.into());
        body.insert("detail".into(), self.detail.clone().into());
        for (k, v) in &self.extensions {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy => Problem::busy("too many writes are waiting; retry shortly"),
            StoreError::Closed => Problem::busy("marketd is shutting down"),
            other => Problem::new(500, STORE_FAILURE, "Store failure", other.to_string()),
        }
    }
}

macro_rules! problem_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Problem {
            fn from(e: $t) -> Self { Problem::from(StoreError::from(e)) }
        }
    )*};
}
problem_from_redb!(redb::TransactionError, redb::TableError, redb::StorageError);
