//! Everything that crosses the wire to the ServiceNow instance (docs/wire-protocol.md):
//! the OAuth refresh-token trade, transactions on the integration endpoint, Table API
//! readiness queries, and the retry policy around all of them.
//!
//! Blocking by design: one request at a time, in the documented order, so a plain
//! `reqwest::blocking` client is the simplest thing that works. The exporter shares no code
//! with the emulator; this module is written from the protocol document and the golden files.

mod instance;
mod messages;
mod retry;

pub(crate) use instance::{Failure, Instance, InstanceConfig, TableAnswer};
pub(crate) use messages::Transaction;
pub(crate) use retry::RetryPolicy;
