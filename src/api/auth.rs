//! Bearer-token authentication. The config holds only sha256 hashes of tokens; a request's
//! token is hashed and looked up. The token set is swapped whole on SIGHUP.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hyper::header::{AUTHORIZATION, HeaderMap};

use super::error::ApiError;
use crate::auth::{Role, TokenConfig, token_sha256};

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

pub struct Auth {
    tokens: RwLock<Arc<HashMap<[u8; 32], Principal>>>,
}

impl Auth {
    pub fn new(tokens: &[TokenConfig]) -> Auth {
        Auth {
            tokens: RwLock::new(Arc::new(index(tokens))),
        }
    }

    /// Replaces the whole token set (SIGHUP).
    pub fn replace(&self, tokens: &[TokenConfig]) {
        let fresh = Arc::new(index(tokens));
        match self.tokens.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let header = headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing Authorization: Bearer <token> header")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let hash = token_sha256(token);
        let tokens = match self.tokens.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        tokens
            .get(&hash)
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("unknown token"))
    }
}

fn index(tokens: &[TokenConfig]) -> HashMap<[u8; 32], Principal> {
    tokens
        .iter()
        .map(|t| {
            (
                t.sha256,
                Principal {
                    user: t.user.clone(),
                    role: t.role,
                },
            )
        })
        .collect()
}
