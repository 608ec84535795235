//! Integration tests: the emulator runs in-process on 127.0.0.1:0 and is driven over HTTP,
//! as the exporter and real ServiceNow clients drive it.

mod app_maps;
mod catalog;
mod check;
mod cli;
mod crash;
mod durability;
mod faults;
mod fnmstosn;
mod hostile;
mod lifecycle;
mod oauth;
mod perf;
mod platform;
mod table_api;
mod tls;
mod transform;
mod ui;
