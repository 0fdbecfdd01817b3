//! `hookd serve`: load the config, set up logging, run the daemon in the foreground.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::LogFormat;

/// The HTTP client's protocol layer dumps every request and answer it handles, headers
/// and body, at trace level (target `ureq_proto::util`). Webhook headers carry
/// credentials and bodies carry users' data, so that dump stays off whatever `RUST_LOG`
/// asks for (a directive added after the environment's replaces the same one there).
const NO_WIRE_DUMP: &str = "ureq_proto::util=debug";

pub fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (path, config) = super::load_config(config)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive(NO_WIRE_DUMP.parse()?);
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    crate::daemon::run(path, config)?;
    Ok(ExitCode::SUCCESS)
}
