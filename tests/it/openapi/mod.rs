//! `docs/openapi.yaml` against the real hookd, one test per resource.
//!
//! The document is read with `yaml-rust2` (`checker::api`); every request a test sends
//! goes through `checker::Checker`, which checks the answer against the document (status,
//! media type, body schema, error code, `Allow` on 405, 404 "no such route" off the
//! documented paths). Each resource test claims the operations it drives through a
//! success (its `COVERS`), and `document::every_operation_is_covered` checks that the
//! claims add up to exactly the documented operations.

mod checker;

mod admin;
mod auth;
mod dashboard;
mod deliveries;
mod document;
mod events;
mod health;
mod routes;
mod webhooks;

/// The documented path templates, as the document spells them.
mod paths {
    pub const HEALTHZ: &str = "/healthz";
    pub const METRICS: &str = "/metrics";
    pub const HOOKS: &str = "/api/hooks/webhooks";
    pub const HOOK: &str = "/api/hooks/webhooks/{id}";
    pub const ROTATE: &str = "/api/hooks/webhooks/{id}/rotate-secret";
    pub const DELIVERIES: &str = "/api/hooks/webhooks/{id}/deliveries";
    pub const DELIVERY: &str = "/api/hooks/webhooks/{id}/deliveries/{deliveryId}";
    pub const RETRY: &str = "/api/hooks/webhooks/{id}/deliveries/{deliveryId}/retry";
    pub const RECOVER: &str = "/api/hooks/webhooks/{id}/recover";
    pub const TEST: &str = "/api/hooks/webhooks/{id}/test";
    pub const STATS: &str = "/api/hooks/webhooks/{id}/stats";
    pub const EVENTS: &str = "/api/hooks/events";
    pub const EVENT: &str = "/api/hooks/events/{id}";
    pub const BACKUP: &str = "/api/admin/backup";
    pub const OVERVIEW: &str = "/api/admin/overview";
}

/// Ids of the right form that name nothing.
const UNKNOWN_WH: &str = "wh-00000000-0000-4000-8000-00000000beef";
const UNKNOWN_DLV: &str = "dlv-00000000-0000-4000-8000-00000000beef";

/// A JSON body over the 8 KiB limit `checker::start` configures.
fn too_big() -> String {
    format!("{{\"name\":\"{}\"}}", "x".repeat(9000))
}

/// Every resource test's claims, for `document::every_operation_is_covered`.
const COVERAGE: &[&[checker::OpId]] = &[
    health::COVERS,
    webhooks::COVERS_COLLECTION,
    webhooks::COVERS_ITEM,
    webhooks::COVERS_ROTATE,
    events::COVERS,
    deliveries::COVERS,
    dashboard::COVERS,
    admin::COVERS_BACKUP,
    admin::COVERS_OVERVIEW,
];
