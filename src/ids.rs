//! Identifiers: those the operator chooses (checked here) and those marketd makes
//! (a prefix, then a ULID: 48 bits of milliseconds and 80 random bits, so they sort
//! by creation time and never collide in practice).

use std::cell::RefCell;

use crate::clock::Millis;

/// Longest operator-chosen identifier.
pub const OPERATOR_ID_LEN_MAX: usize = 128;

/// Checks an operator-chosen id: 1–128 chars of `[A-Za-z0-9._:/-]`.
pub fn check_operator_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > OPERATOR_ID_LEN_MAX {
        return Err(format!(
            "identifier must be 1 to {OPERATOR_ID_LEN_MAX} characters, got {}",
            id.len()
        ));
    }
    match id
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || b"._:/-".contains(b)))
    {
        Some(b) => Err(format!(
            "identifier {id:?} has {:?}; only A-Z a-z 0-9 . _ : / - are allowed",
            b as char
        )),
        None => Ok(()),
    }
}

/// The kinds of identifiers marketd makes, each with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Order,
    Fulfillment,
    Reservation,
    Return,
    Statement,
    Delivery,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Order => "ord_",
            Kind::Fulfillment => "ful_",
            Kind::Reservation => "res_",
            Kind::Return => "ret_",
            Kind::Statement => "stl_",
            Kind::Delivery => "dlv_",
        }
    }
}

/// A new id of `kind` made at `now_ms` with `random` low bits (80 are used).
pub fn make(kind: Kind, now_ms: Millis, random: u128) -> String {
    let ulid = ulid::Ulid::from_parts(now_ms, random);
    format!("{}{}", kind.prefix(), ulid)
}

/// A new id with fresh random bits.
pub fn new(kind: Kind, now_ms: Millis) -> String {
    make(kind, now_ms, random_u128())
}

/// Splits a marketd id of `kind` back into its ULID, if it is one.
pub fn parse(kind: Kind, id: &str) -> Option<ulid::Ulid> {
    ulid::Ulid::from_string(id.strip_prefix(kind.prefix())?).ok()
}

/// Random bits for made ids, retry jitter and the like. They are not secrets
/// (tokens and webhook secrets come from [`crate::secret::random_bytes`]), so each
/// thread draws them from a fast generator seeded once from the operating system
/// rather than making a system call per id.
pub fn random_u128() -> u128 {
    thread_local! {
        static RNG: RefCell<fastrand::Rng> = RefCell::new(fastrand::Rng::with_seed(
            u64::from_le_bytes(crate::secret::random_bytes()),
        ));
    }
    RNG.with(|rng| rng.borrow_mut().u128(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_ids_follow_the_contract() {
        assert!(check_operator_id("tent-2p-green").is_ok());
        assert!(check_operator_id("a.b_c:d/e-F9").is_ok());
        assert!(check_operator_id("").is_err());
        assert!(check_operator_id(&"x".repeat(129)).is_err());
        assert!(check_operator_id(&"x".repeat(128)).is_ok());
        assert!(check_operator_id("has space").is_err());
        assert!(check_operator_id("ünï").is_err());
    }

    #[test]
    fn made_ids_sort_by_time_and_parse_back() {
        let a = make(Kind::Order, 1_000, u128::MAX);
        let b = make(Kind::Order, 1_001, 0);
        assert!(a < b);
        assert!(a.starts_with("ord_"));
        let u = parse(Kind::Order, &b).unwrap();
        assert_eq!(u.timestamp_ms(), 1_001);
        assert!(parse(Kind::Fulfillment, &b).is_none());
    }
}
