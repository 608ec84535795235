//! The exporter's integration tests: one binary, one module per behaviour.
//!
//! Everything runs in-process against `fixtures/` and a wiremock instance; the emulator is
//! deliberately not used here (the two programs meet only in the conformance suite).

mod cli;
mod differential;
mod differential_props;
mod golden_payloads;
mod golden_requests;
mod helpers;
mod hostile_instance;
mod operator;
mod preflight;
mod retry;
mod xml_props;
