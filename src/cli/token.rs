//! `hookd token new`: mint a token and print the `[[tokens]]` stanza that stores its hash.

use std::process::ExitCode;

use super::BadInput;
use crate::auth::{self, Role, token_sha256_hex};

pub fn new(user: &str, role: Role) -> anyhow::Result<ExitCode> {
    if auth::check_user(user).is_err() {
        return Err(BadInput(format!("--user must be {}", auth::user_rule())).into());
    }
    let token = auth::generate_token()?;
    println!("{token}");
    println!();
    println!(
        "# Paste into the config, then reload hookd (SIGHUP). The token itself is not stored."
    );
    println!("[[tokens]]");
    println!("user   = \"{user}\"");
    println!("role   = \"{}\"", role.as_str());
    println!("sha256 = \"{}\"", token_sha256_hex(&token));
    Ok(ExitCode::SUCCESS)
}
