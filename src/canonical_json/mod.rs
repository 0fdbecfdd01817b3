//! Strict JSON parsing and `JSON.stringify`-compatible re-serialization of
//! event payloads.
//!
//! # What this module owns
//!
//! Publishers send events whose `payload` is arbitrary JSON. A receiver may
//! verify our HMAC signature over `JSON.stringify(req.body)` (what an
//! Express-style JSON body parser hands it) rather than over the raw bytes on
//! the wire. That only succeeds if the body we deliver is
//! *`JSON.stringify`-stable*:
//!
//! ```text
//! JSON.stringify(JSON.parse(body)) === body
//! ```
//!
//! This module turns publisher bytes into a [`Value`] ([`parse`]) and turns a
//! [`Value`] back into exactly the text a JavaScript engine's
//! `JSON.stringify(value)` (no indent) would print
//! ([`Value::write_canonical`] / [`Value::to_canonical_string`]). It has no
//! dependencies beyond `std`, so its behaviour is pinned here, not by a
//! third-party crate's formatting choices.
//!
//! # Parsing rules (strict RFC 8259, plus policy)
//!
//! * The input must be valid UTF-8; JSON whitespace (space, `\t`, `\n`, `\r`)
//!   may surround the value, nothing else may follow it. A byte-order mark is
//!   rejected (as `JSON.parse` does).
//! * No comments, trailing commas, `NaN`/`Infinity`, leading zeros (`01`),
//!   `+1`, `.5` or `1.`; control characters U+0000–U+001F must be escaped
//!   inside strings.
//! * Escapes: `\" \\ \/ \b \f \n \r \t \uXXXX` (hex in either case); a
//!   `\uD83D\uDE00` surrogate pair combines into one character, an unpaired
//!   surrogate escape is rejected (a Rust `String` cannot hold it, and
//!   `JSON.stringify` would re-escape it, breaking stability).
//! * Duplicate keys in one object are rejected (`JSON.parse` silently keeps
//!   the last value, so the publisher's body and the delivered one would
//!   disagree). Keys are compared after unescaping: `"a"` and `"\u0061"` are
//!   the same key.
//! * Numbers become `f64` with correct rounding. A number that overflows to
//!   ±infinity (`1e400`) is rejected (`JSON.stringify` would print `null`);
//!   underflow to zero is accepted. An *integer token* (no `.`, no exponent)
//!   whose magnitude exceeds 2^53 is rejected because it cannot survive the
//!   round trip through a JavaScript number; the publisher should send it as
//!   a string. The check is done on the digit string, not on the rounded
//!   double. Tokens with a fraction or exponent are not checked:
//!   `9007199254740993.0` is accepted and becomes `9007199254740992`.
//! * Arrays and objects may nest at most [`MAX_DEPTH`] levels. The parser
//!   recurses once per level, so this bound also bounds stack use; no input
//!   can overflow the stack.
//! * The parser never panics; every failure is a [`ParseError`] carrying a
//!   byte offset and a sentence meant for the API client.
//!
//! # Serialization rules (`JSON.stringify`, compact)
//!
//! * Object members are written in the order a JavaScript engine enumerates
//!   own properties: keys that are *array indices* (canonical decimal
//!   integers `0` ..= `4294967294`) first, in ascending numeric order, then
//!   every other key in the publisher's order.
//! * Strings escape only `"`, `\` and U+0000–U+001F (`\b \f \n \r \t` by
//!   name, the rest as `\u00xx` in lowercase hex). Everything else, including
//!   `/`, U+007F, U+2028, U+2029 and non-ASCII text, is written literally.
//! * Numbers use ECMAScript `Number::toString`: shortest round-trip digits,
//!   an exact tie between two shortest candidates going to the even one (as
//!   V8 does; Rust's own formatting would round it up); `-0` prints as `0`;
//!   plain decimal for `1e-6 <= |x| < 1e21`, exponential (`1e+21`, `1e-7`)
//!   otherwise. A non-finite number, which [`parse`] never produces, is
//!   written as `null` like `JSON.stringify` does.
//! * Serialization recurses once per nesting level; values from [`parse`]
//!   are at most [`MAX_DEPTH`] deep.
//!
//! Caveat: serialization can emit an integer token larger than 2^53 (input
//! `1e20` is accepted and serializes as `100000000000000000000`), which
//! [`parse`] would then reject. Canonical output is meant for delivery, not
//! for feeding back into [`parse`].

use std::fmt;

/// A parsed JSON value. Objects keep the publisher's member order; the
/// `JSON.stringify` key order is applied only when serializing.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

/// Maximum nesting depth of arrays and objects accepted by [`parse`]. A
/// top-level `[]` has depth 1. An ingest body is the event envelope plus the
/// payload, so this admits payloads nested 64 levels deep.
pub const MAX_DEPTH: usize = 65;

/// 2^53 as a decimal digit string. Integer tokens up to this magnitude are
/// accepted; above it not every integer is a double (2^53 + 1 is not).
const MAX_SAFE_MAGNITUDE: &str = "9007199254740992";

/// Longest piece of publisher text (key, number token) quoted in an error
/// message, in characters.
const MAX_QUOTED_CHARS: usize = 40;

/// Objects with fewer members than this are checked for duplicate keys by a
/// linear scan; larger ones switch to a hash set.
const LINEAR_DUPLICATE_SCAN: usize = 16;

/// Why [`parse`] rejected its input, and where (a byte offset into it).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    kind: ErrorKind,
    offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum ErrorKind {
    UnexpectedEnd,
    UnexpectedChar(char),
    TrailingCharacters,
    TrailingComma,
    InvalidUtf8,
    TooDeep,
    DuplicateKey(String),
    ControlCharInString(char),
    InvalidEscape(char),
    InvalidUnicodeEscape,
    LoneSurrogate(u32),
    LeadingZero,
    ExpectedDigit(&'static str),
    InvalidNumber(String),
    NumberOutOfRange(String),
    IntegerTooLarge(String),
}

impl ParseError {
    fn new(kind: ErrorKind, offset: usize) -> Self {
        ParseError { kind, offset }
    }

    /// Byte offset into the input at which the problem was detected. For
    /// "unexpected end of input" this is the input length.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match &self.kind {
            ErrorKind::UnexpectedEnd => write!(f, "unexpected end of input"),
            ErrorKind::UnexpectedChar(c) => write!(f, "unexpected character {c:?} at byte {at}"),
            ErrorKind::TrailingCharacters => {
                write!(f, "trailing characters after the JSON value at byte {at}")
            }
            ErrorKind::TrailingComma => write!(f, "trailing comma at byte {at}"),
            ErrorKind::InvalidUtf8 => write!(f, "invalid UTF-8 at byte {at}"),
            ErrorKind::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH} levels at byte {at}"),
            ErrorKind::DuplicateKey(key) => {
                let mut quoted = String::new();
                write_js_string(key, &mut quoted);
                write!(f, "duplicate key {quoted} at byte {at}")
            }
            ErrorKind::ControlCharInString(c) => write!(
                f,
                "unescaped control character U+{:04X} in string at byte {at}",
                u32::from(*c)
            ),
            ErrorKind::InvalidEscape(c) if c.is_ascii_graphic() || c.is_alphanumeric() => {
                write!(f, "invalid escape \\{c} in string at byte {at}")
            }
            ErrorKind::InvalidEscape(_) => write!(f, "invalid escape in string at byte {at}"),
            ErrorKind::InvalidUnicodeEscape => write!(
                f,
                "invalid \\u escape in string (expected 4 hex digits) at byte {at}"
            ),
            ErrorKind::LoneSurrogate(unit) => {
                write!(f, "lone surrogate \\u{unit:04x} in string at byte {at}")
            }
            ErrorKind::LeadingZero => {
                write!(f, "leading zeros are not allowed in numbers at byte {at}")
            }
            ErrorKind::ExpectedDigit(context) => {
                write!(f, "expected a digit {context} at byte {at}")
            }
            ErrorKind::InvalidNumber(token) => write!(f, "invalid number {token} at byte {at}"),
            ErrorKind::NumberOutOfRange(token) => {
                write!(
                    f,
                    "number {token} is out of range for a double at byte {at}"
                )
            }
            ErrorKind::IntegerTooLarge(token) => write!(
                f,
                "integer {token} is beyond ±2^53 and would lose precision; \
                 send it as a string (at byte {at})"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

mod parse;
mod write;

pub use parse::parse;
pub use write::{write_js_number, write_js_string};

#[cfg(test)]
mod tests;
