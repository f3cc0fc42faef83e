//! Who is calling: the operator (its bearer token), a channel's storefront (its api
//! key), or nobody. Tokens are compared in constant time and never logged.

use std::sync::Arc;

use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;

use super::endpoint::Access;
use crate::problem::Problem;
use crate::secret;
use crate::server::App;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Operator,
    Channel(Arc<str>),
}

impl Caller {
    /// How the audit trail names this caller.
    pub fn actor(&self) -> String {
        match self {
            Caller::Anonymous => "anonymous".into(),
            Caller::Operator => "operator".into(),
            Caller::Channel(c) => format!("channel:{c}"),
        }
    }

    /// Refuses a channel acting for another channel.
    pub fn check_channel(&self, channel: &str) -> Result<(), Problem> {
        match self {
            Caller::Channel(own) if own.as_ref() != channel => Err(Problem::forbidden(format!(
                "this api key belongs to another channel than {channel:?}"
            ))),
            _ => Ok(()),
        }
    }
}

/// 401 without a valid credential; 403 with one that is not allowed here.
pub fn authorize(app: &App, headers: &HeaderMap, access: Access) -> Result<Caller, Problem> {
    if matches!(access, Access::Anyone | Access::Supplier) {
        return Ok(Caller::Anonymous);
    }
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| Problem::unauthorized("send Authorization: Bearer <token>"))?;
    let caller = if secret::constant_time_eq(token.as_bytes(), app.operator_token.as_bytes()) {
        Caller::Operator
    } else if let Some(channel) = app.live.channel_by_key_hash(&secret::token_hash(token)) {
        Caller::Channel(channel)
    } else {
        return Err(Problem::unauthorized("the token is not valid"));
    };
    match (access, &caller) {
        (Access::Operator, Caller::Channel(_)) => Err(Problem::forbidden(
            "a channel api key may not use this endpoint; it needs the operator token",
        )),
        _ => Ok(caller),
    }
}
