//! The bodies of the `hookd` subcommands; `src/main.rs` only parses arguments and
//! dispatches here.
//!
//! Each command returns `anyhow::Result<ExitCode>`: `Ok` carries the status of a command
//! that ran (`verify` answers 1 for a bad signature), `Err` is printed by main as
//! `hookd: {error:#}` and exits 1, or 2 when the error is marked [`BadInput`].

pub mod backup;
pub mod check_config;
pub mod listen;
pub mod migrate;
pub mod serve;
pub mod store_copy;
pub mod token;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValue;

use crate::auth::Role;
use crate::config::{Config, ConfigError};

/// Where the config is read from when neither `--config` nor `$HOOKD_CONFIG` is given.
pub const DEFAULT_CONFIG: &str = "config/hookd.toml";

/// Marks an error as the user's input being unusable: exit status 2 instead of 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The config file is invalid; shows every problem, one per line.
///
/// The problems are the message rather than a `#[source]`: `{:#}` would print them
/// twice otherwise, and the list already names the file and each key.
#[derive(Debug, thiserror::Error)]
#[error("invalid config {}:\n{problems}", path.display())]
pub struct InvalidConfig {
    pub path: PathBuf,
    pub problems: ConfigError,
}

/// The exit status for an error a command returned.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    if error.downcast_ref::<BadInput>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// `--config`, else `$HOOKD_CONFIG`, else [`DEFAULT_CONFIG`].
pub fn config_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("HOOKD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

/// Finds and loads the config file.
pub fn load_config(explicit: Option<PathBuf>) -> Result<(PathBuf, Config), InvalidConfig> {
    let path = config_path(explicit);
    match Config::load(&path) {
        Ok(config) => Ok((path, config)),
        Err(problems) => Err(InvalidConfig { path, problems }),
    }
}

/// `--role user|publisher|admin`: the names come from [`Role`] itself.
impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &Role::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}
