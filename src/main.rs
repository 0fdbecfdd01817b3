//! The `hookd` command line: thin dispatch to the library.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use hookd::auth::{self, Role, token_sha256_hex};
use hookd::config::{Config, LogFormat};
use hookd::delivery::signing::verify_hook_signature;

const DEFAULT_CONFIG: &str = "config/hookd.toml";

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
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    User,
    Publisher,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::User => Role::User,
            RoleArg::Publisher => Role::Publisher,
            RoleArg::Admin => Role::Admin,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config } => check_config(config),
        Command::Token {
            action: TokenAction::New { user, role },
        } => token_new(&user, role.into()),
        Command::Verify {
            secret,
            signature,
            file,
        } => verify(&secret, &signature, file.as_deref()),
        Command::Backup { config, url, token } => backup(config, url, &token),
    }
}

/// `--config`, else `$HOOKD_CONFIG`, else the default path.
fn config_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("HOOKD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

fn load_config(explicit: Option<PathBuf>) -> Result<(PathBuf, Config), ExitCode> {
    let path = config_path(explicit);
    match Config::load(&path) {
        Ok(config) => Ok((path, config)),
        Err(e) => {
            eprintln!("hookd: invalid config {}:\n{e}", path.display());
            Err(ExitCode::FAILURE)
        }
    }
}

fn serve(config: Option<PathBuf>) -> ExitCode {
    let (path, config) = match load_config(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
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
    match hookd::daemon::run(path, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(config: Option<PathBuf>) -> ExitCode {
    match load_config(config) {
        Ok((path, config)) => {
            println!(
                "{}: ok ({} token{}, listen {}, data in {})",
                path.display(),
                config.tokens.len(),
                if config.tokens.len() == 1 { "" } else { "s" },
                config.listen,
                config.data_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn token_new(user: &str, role: Role) -> ExitCode {
    if auth::check_user(user).is_err() {
        eprintln!("hookd: --user must be {}", auth::user_rule());
        return ExitCode::from(2);
    }
    let token = match auth::generate_token() {
        Ok(token) => token,
        Err(e) => {
            eprintln!("hookd: no randomness available: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{token}");
    println!();
    println!(
        "# Paste into the config, then reload hookd (SIGHUP). The token itself is not stored."
    );
    println!("[[tokens]]");
    println!("user   = \"{user}\"");
    println!("role   = \"{}\"", role.as_str());
    println!("sha256 = \"{}\"", token_sha256_hex(&token));
    ExitCode::SUCCESS
}

fn verify(secret: &str, signature: &str, file: Option<&Path>) -> ExitCode {
    let mut body = Vec::new();
    let read = match file {
        Some(path) => std::fs::read(path).map(|b| body = b),
        None => std::io::stdin().read_to_end(&mut body).map(|_| ()),
    };
    if let Err(e) = read {
        let from = file.map_or("stdin".to_owned(), |p| p.display().to_string());
        eprintln!("hookd: cannot read the body from {from}: {e}");
        return ExitCode::from(2);
    }
    if verify_hook_signature(secret, &body, signature) {
        println!("valid");
        ExitCode::SUCCESS
    } else {
        println!(
            "invalid: the signature does not match this body and secret (hash the raw body bytes exactly as received)"
        );
        ExitCode::from(1)
    }
}

/// `hookd backup`: asks the running daemon (at the config's listen address) to write a
/// consistent copy of its store, and prints where it is.
fn backup(config: Option<PathBuf>, url: Option<String>, token: &str) -> ExitCode {
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => match load_config(config) {
            Ok((_, config)) => {
                let mut addr = config.listen;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
            Err(code) => return code,
        },
    };
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(3600)))
        .build()
        .new_agent();
    let answer = agent
        .post(format!("{base}/api/admin/backup"))
        .header("Authorization", format!("Bearer {token}"))
        .send_empty();
    let mut response = match answer {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookd: cannot reach hookd at {base}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    if status == 200 {
        println!("{body}");
        ExitCode::SUCCESS
    } else {
        eprintln!("hookd: backup refused ({status}): {body}");
        ExitCode::FAILURE
    }
}
