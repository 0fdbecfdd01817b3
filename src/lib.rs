//! hookd: a self-hosted webhook delivery daemon.
//!
//! Data flows one way: the [`api`] validates requests and writes through the [`store`]
//! (one redb file, group-committed; or a PostgreSQL database that several nodes share,
//! behind the same seam, `store::backend`); the [`delivery`] engine drains the store's
//! durable queue and records every attempt back into it. [`config`] is the one TOML file, [`auth`] the API tokens,
//! [`model`] the shared vocabulary, [`canonical_json`] the payload form receivers verify.
//! [`notify`] tells operators when a webhook's status changes (queued by the store in the
//! transaction that changes it).

pub mod api;
pub mod auth;
pub mod canonical_json;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod store;
pub mod systemd;
pub mod trace_context;
