//! `hookd verify`: check a delivery signature over a raw body, for receivers debugging
//! "invalid signature". Exit 0 valid, 1 invalid, 2 when the body cannot be read.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::BadInput;
use crate::delivery::signing::verify_hook_signature;

pub fn run(secret: &str, signature: &str, file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut body = Vec::new();
    let read = match file {
        Some(path) => std::fs::read(path).map(|b| body = b),
        None => std::io::stdin().read_to_end(&mut body).map(|_| ()),
    };
    read.with_context(|| {
        let from = file.map_or("stdin".to_owned(), |p| p.display().to_string());
        BadInput(format!("cannot read the body from {from}"))
    })?;
    if verify_hook_signature(secret, &body, signature) {
        println!("valid");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "invalid: the signature does not match this body and secret (hash the raw body bytes exactly as received)"
        );
        Ok(ExitCode::from(1))
    }
}
