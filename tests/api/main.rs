//! Black-box tests: the real `marketd` binary (or, where time must be injected, the
//! daemon in-process with a manual clock) driven over HTTP.

mod catalog;
mod checkout;
mod fake;
mod ops;
mod routing;
mod sla;
mod support;
