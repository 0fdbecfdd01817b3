//! hookd's integration tests, as one test binary: every module starts real `hookd`
//! processes (the binary cargo built, found through `CARGO_BIN_EXE_hookd`) on free
//! 127.0.0.1 ports with temporary data dirs, and talks to them over plain HTTP/1.1.
//! Webhook receivers are real sockets on 127.0.0.1 too (`common::receiver`).
//!
//! Run one area with `cargo test --release --test it <module>::`, e.g. `delivery::`.

mod common;

mod api;
mod bounded_work;
mod cli;
mod dashboard;
mod dashboard_api;
mod delivery;
mod durability;
mod events;
mod faults;
mod observe;
mod openapi;
mod operations;
mod promises;
mod security;
