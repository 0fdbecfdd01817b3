//! `hookd migrate`: applies the PostgreSQL schema migrations embedded in the binary and
//! exits (`hookd serve` applies them at start as well). A redb store needs none: it is
//! upgraded in place when opened.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::store::backend::{describe, pg_settings};

pub fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (path, config) = super::load_config(config)?;
    let Some(settings) = pg_settings(&config) else {
        return Err(super::BadInput(format!(
            "{}: store.backend is \"redb\"; hookd migrate is for \"postgres\" (a redb file is \
             upgraded in place when hookd opens it)",
            path.display()
        ))
        .into());
    };
    let location = describe(&config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime
        .block_on(crate::store::postgres::migrate(&settings))
        .with_context(|| format!("cannot migrate {location}"))?;
    if report.from == report.to {
        println!("{location}: schema at version {}, up to date", report.to);
    } else {
        println!(
            "{location}: schema migrated from version {} to {}",
            report.from, report.to
        );
    }
    Ok(ExitCode::SUCCESS)
}
