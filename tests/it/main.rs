//! hookd's integration tests, as one test binary: every module starts real `hookd`
//! processes (the binary cargo built, found through `CARGO_BIN_EXE_hookd`) on free
//! 127.0.0.1 ports with temporary data dirs, and talks to them over plain HTTP/1.1.
//! Webhook receivers are real sockets on 127.0.0.1 too (`common::receiver`).
//!
//! Run one area with `cargo test --release --test it <module>::`, e.g. `delivery::`.
//! Tools some tests drive (Python's `standardwebhooks`, Node, `systemd-analyze`,
//! Chromium) are optional on a developer machine, where a missing one skips that check
//! with a note; under `CI=true` (which .ci/run sets) a missing tool fails the test
//! (`common::optional_tool`).
//!
//! `HOOKD_TEST_STORE=postgres cargo test --release --test it` runs the suite on the
//! PostgreSQL store: one throwaway server for the test process, a fresh database for
//! every hookd (`common::postgres`, which says what it needs). Tests of redb itself skip
//! there (`common::redb_only`); the `cluster` tests run only there.

mod common;

mod api;
mod bounded_work;
mod cli;
mod cluster;
mod dashboard;
mod dashboard_api;
mod delivery;
mod durability;
mod egress;
mod events;
mod faults;
mod features;
mod harness;
mod listen;
mod notifications;
mod observe;
mod openapi;
mod operations;
mod postgres_lost;
mod postgres_tls;
mod promises;
mod security;
mod store_copy;
mod upgrade;
