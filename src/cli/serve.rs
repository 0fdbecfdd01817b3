//! `hookd serve`: load the config, set up logging, run the daemon in the foreground.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::LogFormat;

pub fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (path, config) = super::load_config(config)?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
