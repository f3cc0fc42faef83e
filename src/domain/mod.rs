//! The domain: records and the rules over them. Plain Rust with no I/O and no clock
//! of its own; time comes in as an argument.

pub mod catalog;
pub mod delivery;
pub mod order;
pub mod routing;
pub mod sla;

pub use catalog::*;
pub use delivery::*;
pub use order::*;
pub use sla::*;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;

/// One entry of the append-only audit trail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at_ms: Millis,
    /// What happened, e.g. `supplier.created`.
    pub kind: String,
    /// Who did it: `operator`, `channel:web`, `supplier:acme`, `marketd`.
    pub actor: String,
    /// The id of what it happened to.
    pub subject: String,
    /// Event-specific details as JSON text (postcard cannot carry free-form JSON).
    pub data_json: String,
}

/// An [`Event`] borrowed for writing: the same fields in the same order, so the
/// same bytes on disk, without copying each string first.
#[derive(Serialize)]
pub struct EventRef<'a> {
    pub seq: u64,
    pub at_ms: Millis,
    pub kind: &'a str,
    pub actor: &'a str,
    pub subject: &'a str,
    pub data_json: &'a str,
}

/// Most units one count (stock, quantity, buffer) may hold: 10^9.
pub const UNITS_MAX: u64 = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec;

    #[test]
    fn a_borrowed_event_is_written_as_the_event_it_reads_back_as() {
        let event = Event {
            seq: 7,
            at_ms: 1_000,
            kind: "order.created".into(),
            actor: "channel:web".into(),
            subject: "ord_1".into(),
            data_json: r#"{"total":5}"#.into(),
        };
        let borrowed = EventRef {
            seq: event.seq,
            at_ms: event.at_ms,
            kind: &event.kind,
            actor: &event.actor,
            subject: &event.subject,
            data_json: &event.data_json,
        };
        let bytes = codec::encode(&borrowed);
        assert_eq!(bytes, codec::encode(&event));
        let back: Event = codec::decode(&bytes).unwrap();
        assert_eq!((back.seq, back.subject), (7, "ord_1".to_owned()));
    }
}
