//! `hookd check-config`: validate the config and summarise it; every problem otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (path, config) = super::load_config(config)?;
    let tokens = config.tokens.len();
    println!(
        "{}: ok ({tokens} token{}, listen {}, {})",
        path.display(),
        if tokens == 1 { "" } else { "s" },
        config.listen,
        match config.store.backend {
            crate::config::Backend::Redb => format!("data in {}", config.data_dir.display()),
            crate::config::Backend::Postgres => crate::store::backend::describe(&config),
        }
    );
    for warning in config.warnings() {
        eprintln!("{}: warning: {warning}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
