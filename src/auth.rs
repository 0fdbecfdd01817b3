//! API tokens: who a token acts as, what it may do, and how it is stored.
//!
//! Everything hookd knows about tokens lives here, so the config checker, the CLI
//! (`hookd token new`) and the API's bearer check cannot drift apart: the [`Role`]s, a
//! `[[tokens]]` entry ([`TokenConfig`]), the user-name rule ([`check_user`]), how a token
//! is hashed for storage ([`token_sha256`]) and how a fresh one is made
//! ([`generate_token`]). Only hashes are ever stored; a plaintext token exists in
//! memory while a request is checked or while `token new` prints it.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Maximum length of a token's `user`.
pub const MAX_USER_LEN: usize = 128;
/// The characters a `user` may hold besides ASCII letters and digits.
const USER_PUNCTUATION: &str = "._:@-";
/// What every generated token starts with, so a leaked one is recognisable (e.g. by
/// secret scanners).
pub const TOKEN_PREFIX: &str = "hkd_";
/// Random bytes in a generated token (the contract asks for at least 32).
const TOKEN_BYTES: usize = 32;

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages their own webhooks.
    User,
    /// Publishes events.
    Publisher,
    /// Operations: online backups.
    Admin,
}

impl Role {
    /// Every role, in the order hints list them.
    pub const ALL: [Role; 3] = [Role::User, Role::Publisher, Role::Admin];

    /// The name used in the config file and on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        }
    }

    /// The accepted names for hints: `"user", "publisher" or "admin"`.
    pub fn choices() -> String {
        let names = quoted_names();
        match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

fn quoted_names() -> Vec<String> {
    Role::ALL
        .iter()
        .map(|r| format!("{:?}", r.as_str()))
        .collect()
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; accepted roles: {accepted}", accepted = quoted_names().join(", "))]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// One `[[tokens]]` entry. Its `Debug` output shows only a prefix of the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub user: String,
    pub role: Role,
    /// sha256 of the token string.
    pub sha256: [u8; 32],
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = hex::encode(&self.sha256[..4]);
        f.debug_struct("TokenConfig")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("sha256", &format_args!("{prefix}…"))
            .finish()
    }
}

/// Why a string is not a valid `user`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("must not be empty")]
    Empty,
    #[error("is too long: {0} characters (at most {MAX_USER_LEN})", MAX_USER_LEN = MAX_USER_LEN)]
    TooLong(usize),
    #[error(
        "invalid character {ch:?} at position {position} in {user:?}; allowed: letters A-Z a-z, \
         digits and {punctuation}",
        punctuation = spaced_punctuation()
    )]
    Character {
        user: String,
        ch: char,
        /// 1-based, in characters.
        position: usize,
    },
}

/// `. _ : @ -`, for messages.
fn spaced_punctuation() -> String {
    let chars: Vec<String> = USER_PUNCTUATION.chars().map(String::from).collect();
    chars.join(" ")
}

/// The user-name rule in one line, for the CLI: `1–128 characters of A-Z a-z 0-9 . _ : @ -`.
pub fn user_rule() -> String {
    format!(
        "1–{MAX_USER_LEN} characters of A-Z a-z 0-9 {}",
        spaced_punctuation()
    )
}

/// Checks a token's `user`: 1 to [`MAX_USER_LEN`] characters of `A-Z a-z 0-9 . _ : @ -`.
pub fn check_user(user: &str) -> Result<(), UserError> {
    if user.is_empty() {
        return Err(UserError::Empty);
    }
    let len = user.chars().count();
    if len > MAX_USER_LEN {
        return Err(UserError::TooLong(len));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || USER_PUNCTUATION.contains(c);
    match user.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        Some((i, ch)) => Err(UserError::Character {
            user: user.to_owned(),
            ch,
            position: i + 1,
        }),
        None => Ok(()),
    }
}

/// The sha256 of the token string: what `[[tokens]].sha256` stores and what a request's
/// bearer token is looked up by.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Lowercase hex sha256 of the token string, as written in `[[tokens]].sha256`.
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(token_sha256(token))
}

/// The operating system gave no random bytes. (getrandom's error is not a
/// `std::error::Error` without its `std` feature, so it is carried as the message.)
#[derive(Debug, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct NoRandomness(getrandom::Error);

/// A fresh random token: [`TOKEN_PREFIX`] and 32 random bytes in hex.
pub fn generate_token() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(NoRandomness)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_rule_and_messages() {
        assert_eq!(user_rule(), "1–128 characters of A-Z a-z 0-9 . _ : @ -");
        assert_eq!(check_user("svc@example.com:ci_bot.v2-1"), Ok(()));
        assert_eq!(check_user(&"a".repeat(MAX_USER_LEN)), Ok(()));
        assert_eq!(check_user(""), Err(UserError::Empty));
        assert_eq!(check_user(&"a".repeat(129)), Err(UserError::TooLong(129)));
        let err = check_user("a b").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid character ' ' at position 2 in \"a b\"; allowed: letters A-Z a-z, \
             digits and . _ : @ -"
        );
    }

    #[test]
    fn roles_hint_and_parse() {
        assert_eq!(Role::choices(), "\"user\", \"publisher\" or \"admin\"");
        assert_eq!(
            "root".parse::<Role>().unwrap_err().to_string(),
            "unknown role \"root\"; accepted roles: \"user\", \"publisher\", \"admin\""
        );
    }

    #[test]
    fn generated_tokens_are_prefixed_random_and_hashable() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 2 * TOKEN_BYTES);
        assert_eq!(token_sha256_hex(&a), hex::encode(token_sha256(&a)));
    }
}
