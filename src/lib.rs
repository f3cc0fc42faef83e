//! marketd: one daemon that runs a small marketplace's supplier network.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the code map.

pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod ctl;
pub mod dispatch;
pub mod domain;
pub mod http;
pub mod ids;
pub mod live;
pub mod metrics;
pub mod problem;
pub mod reservations;
pub mod schedule;
pub mod secret;
pub mod server;
pub mod sla;
pub mod store;
