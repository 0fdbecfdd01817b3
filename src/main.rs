//! The `hookd` command line: parses the arguments and dispatches to [`hookd::cli`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hookd::auth::Role;
use hookd::cli;

#[derive(Parser)]
#[command(
    name = "hookd",
    version,
    about = "Self-hosted webhook delivery daemon: signed, retried, logged; one binary, one redb file.",
    after_help = "Config: --config PATH, else $HOOKD_CONFIG, else config/hookd.toml.\nDocs: README.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (logs to stderr; SIGTERM stops, SIGHUP reloads tokens).
    Serve {
        /// Config file (default: $HOOKD_CONFIG, else config/hookd.toml).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Validate a config file; print each problem with its key; exit 1 on any.
    CheckConfig {
        /// Config file (default: $HOOKD_CONFIG, else config/hookd.toml).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Create or upgrade the PostgreSQL schema (backend = "postgres"), then exit.
    /// `hookd serve` does the same at start; this runs it alone, e.g. before a rolling upgrade.
    Migrate {
        /// Config file (default: $HOOKD_CONFIG, else config/hookd.toml).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Work on a store while hookd is stopped.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// Ask the running daemon for an online backup of its store (needs an admin token).
    Backup {
        /// Config file of the running hookd (for its listen address).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// hookd's base URL instead of the config's listen address, e.g. http://127.0.0.1:8080
        #[arg(long)]
        url: Option<String>,
        /// An admin token (default: $HOOKD_TOKEN).
        #[arg(long, env = "HOOKD_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Check a delivery's X-Hook-Signature over its raw body (exit 0 valid, 1 invalid, 2 error).
    Verify {
        /// The webhook's secret.
        #[arg(long)]
        secret: String,
        /// The X-Hook-Signature header value, `sha256=<hex>`.
        #[arg(long)]
        signature: String,
        /// File holding the raw request body (default: stdin).
        file: Option<PathBuf>,
    },
    /// A receiver for trying hookd: prints each delivery on 127.0.0.1:PORT and whether its
    /// signatures verify, and answers with --status.
    Listen {
        /// The port on 127.0.0.1 (0 picks a free one and prints it).
        #[arg(long)]
        port: u16,
        /// The webhook's secret (whsec_… or plain), to check X-Hook-Signature and
        /// webhook-signature; without it signatures are not checked.
        #[arg(long)]
        secret: Option<String>,
        /// The status every delivery is answered with (200 to 599).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..=599))]
        status: u16,
    },
}

#[derive(Subcommand)]
enum StoreAction {
    /// Copy everything (webhooks, events, deliveries with their attempts, the queue,
    /// statistics, notifications, sequences) from one config's store into another
    /// config's empty store, e.g. redb to PostgreSQL; verify and print the counts.
    /// Stop hookd on both first.
    Copy {
        /// Config whose store is copied.
        #[arg(long, value_name = "CONFIG")]
        from: PathBuf,
        /// Config whose store (empty, or not yet created) receives the copy.
        #[arg(long, value_name = "CONFIG")]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Print a fresh random token, then the [[tokens]] stanza (with its sha256) for the config.
    New {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// `user` manages its own webhooks; `publisher` ingests events for any user;
        /// `admin` takes online backups.
        #[arg(long, value_enum, default_value_t = Role::User)]
        role: Role,
    },
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Serve { config } => cli::serve::run(config),
        Command::CheckConfig { config } => cli::check_config::run(config),
        Command::Migrate { config } => cli::migrate::run(config),
        Command::Store {
            action: StoreAction::Copy { from, to },
        } => cli::store_copy::run(from, to),
        Command::Token {
            action: TokenAction::New { user, role },
        } => cli::token::new(&user, role),
        Command::Verify {
            secret,
            signature,
            file,
        } => cli::verify::run(&secret, &signature, file.as_deref()),
        Command::Backup { config, url, token } => cli::backup::run(config, url, &token),
        Command::Listen {
            port,
            secret,
            status,
        } => cli::listen::run(port, secret, status),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("hookd: {e:#}");
        cli::exit_code(&e)
    })
}
