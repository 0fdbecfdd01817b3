//! Issue 14 end to end, with real receivers on 127.0.0.1: custom headers per webhook
//! (`headers`), W3C trace context from ingest to every attempt (`trace`), and strict
//! ordering (`fifo`), each through the API a user sees, and what survives a backup.

mod headers;
mod trace;

use std::time::Duration;

use crate::common::Settings;

pub const WAIT: Duration = Duration::from_secs(20);

pub fn settings(delivery: &str) -> Settings {
    Settings {
        delivery: delivery.into(),
        ..Settings::default()
    }
}
