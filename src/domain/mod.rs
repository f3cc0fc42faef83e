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

/// Most units one count (stock, quantity, buffer) may hold: 10^9.
pub const UNITS_MAX: u64 = 1_000_000_000;
