//! The strict parser: bytes to [`Value`] under the rules in the [module docs](super).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use super::{
    ErrorKind, LINEAR_DUPLICATE_SCAN, MAX_DEPTH, MAX_QUOTED_CHARS, MAX_SAFE_MAGNITUDE, ParseError,
    Value,
};

/// Parses one JSON value from `input` under the strict rules in the module
/// documentation.
pub fn parse(input: &[u8]) -> Result<Value, ParseError> {
    let text = std::str::from_utf8(input)
        .map_err(|e| ParseError::new(ErrorKind::InvalidUtf8, e.valid_up_to()))?;
    let mut parser = Parser {
        text,
        bytes: input,
        pos: 0,
    };
    parser.skip_whitespace();
    let value = parser.parse_value(0)?;
    parser.skip_whitespace();
    if parser.pos < input.len() {
        return Err(ParseError::new(ErrorKind::TrailingCharacters, parser.pos));
    }
    Ok(value)
}

/// Recursive-descent parser over already UTF-8-validated input.
///
/// `pos` only ever stops on ASCII bytes or at the end of input, so every
/// `text[a..b]` slice taken between two stops lies on character boundaries.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn error(&self, kind: ErrorKind) -> ParseError {
        ParseError::new(kind, self.pos)
    }

    /// "Unexpected end" if `at` is past the input, else "unexpected
    /// character" naming the character that starts there.
    fn unexpected_at(&self, at: usize) -> ParseError {
        match self.text.get(at..).and_then(|rest| rest.chars().next()) {
            Some(c) => ParseError::new(ErrorKind::UnexpectedChar(c), at),
            None if at >= self.bytes.len() => {
                ParseError::new(ErrorKind::UnexpectedEnd, self.bytes.len())
            }
            // Not a character boundary; cannot happen, but never panic.
            None => ParseError::new(ErrorKind::UnexpectedChar(char::REPLACEMENT_CHARACTER), at),
        }
    }

    /// After a member of an array or object: consumes `,` (refusing a trailing comma
    /// before `close`) and answers `false`, or consumes `close` and answers `true`.
    fn end_of_container(&mut self, close: u8) -> Result<bool, ParseError> {
        match self.peek() {
            Some(b',') => {
                let comma = self.pos;
                self.pos += 1;
                self.skip_whitespace();
                if self.peek() == Some(close) {
                    return Err(ParseError::new(ErrorKind::TrailingComma, comma));
                }
                Ok(false)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn unexpected(&self) -> ParseError {
        self.unexpected_at(self.pos)
    }

    /// `depth` is the number of containers enclosing this value.
    fn parse_value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'{') => self.parse_object(depth + 1),
            Some(b'[') => self.parse_array(depth + 1),
            Some(b'"') => self.parse_string().map(Value::String),
            Some(b't') => self.parse_literal(b"true", Value::Bool(true)),
            Some(b'f') => self.parse_literal(b"false", Value::Bool(false)),
            Some(b'n') => self.parse_literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.parse_number(),
            _ => Err(self.unexpected()),
        }
    }

    fn parse_literal(&mut self, word: &[u8], value: Value) -> Result<Value, ParseError> {
        for (i, expected) in word.iter().enumerate() {
            if self.bytes.get(self.pos + i) != Some(expected) {
                return Err(self.unexpected_at(self.pos + i));
            }
        }
        self.pos += word.len();
        Ok(value)
    }

    /// Called with `pos` on `[`; `depth` counts this array.
    fn parse_array(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(ErrorKind::TooDeep));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.parse_value(depth)?);
            self.skip_whitespace();
            if self.end_of_container(b']')? {
                return Ok(Value::Array(items));
            }
        }
    }

    /// Called with `pos` on `{`; `depth` counts this object.
    fn parse_object(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(ErrorKind::TooDeep));
        }
        self.pos += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        let mut key_hashes = None;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            let key_start = self.pos;
            let key = self.parse_string()?;
            if is_duplicate_key(&members, &mut key_hashes, &key) {
                let shown = abbreviate(&key);
                return Err(ParseError::new(ErrorKind::DuplicateKey(shown), key_start));
            }
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.parse_value(depth)?;
            members.push((key, value));
            self.skip_whitespace();
            if self.end_of_container(b'}')? {
                return Ok(Value::Object(members));
            }
        }
    }

    /// Called with `pos` on the opening `"`; leaves `pos` after the closing one.
    fn parse_string(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // `start` and `pos` are both just after/at ASCII bytes (or the end).
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                None => return Err(self.error(ErrorKind::UnexpectedEnd)),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => out.push(self.parse_escape()?),
                Some(b) => return Err(self.error(ErrorKind::ControlCharInString(char::from(b)))),
            }
        }
    }

    /// Called with `pos` on a backslash inside a string.
    fn parse_escape(&mut self) -> Result<char, ParseError> {
        let escape_start = self.pos;
        let c = match self.bytes.get(self.pos + 1) {
            None => return Err(ParseError::new(ErrorKind::UnexpectedEnd, self.bytes.len())),
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.parse_unicode_escape(),
            Some(_) => {
                let c = self
                    .text
                    .get(self.pos + 1..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(ParseError::new(ErrorKind::InvalidEscape(c), escape_start));
            }
        };
        self.pos += 2;
        Ok(c)
    }

    /// Called with `pos` on the backslash of `\uXXXX`; consumes a second
    /// `\uXXXX` as well when the first is a high surrogate.
    fn parse_unicode_escape(&mut self) -> Result<char, ParseError> {
        let escape_start = self.pos;
        let first = self.hex4(escape_start)?;
        self.pos += 6;
        let code = match first {
            0xD800..=0xDBFF => {
                let paired = self.bytes.get(self.pos) == Some(&b'\\')
                    && self.bytes.get(self.pos + 1) == Some(&b'u');
                if !paired {
                    return Err(ParseError::new(
                        ErrorKind::LoneSurrogate(first),
                        escape_start,
                    ));
                }
                let second = self.hex4(self.pos)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(ParseError::new(
                        ErrorKind::LoneSurrogate(first),
                        escape_start,
                    ));
                }
                self.pos += 6;
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(ParseError::new(
                    ErrorKind::LoneSurrogate(first),
                    escape_start,
                ));
            }
            _ => first,
        };
        char::from_u32(code)
            .ok_or_else(|| ParseError::new(ErrorKind::LoneSurrogate(first), escape_start))
    }

    /// Reads the four hex digits of the `\uXXXX` escape whose backslash is at
    /// `escape_start`.
    fn hex4(&self, escape_start: usize) -> Result<u32, ParseError> {
        let mut code = 0;
        for i in 0..4 {
            let digit = match self.bytes.get(escape_start + 2 + i) {
                None => return Err(ParseError::new(ErrorKind::UnexpectedEnd, self.bytes.len())),
                Some(&b) => char::from(b).to_digit(16),
            };
            match digit {
                Some(d) => code = code * 16 + d,
                None => {
                    return Err(ParseError::new(
                        ErrorKind::InvalidUnicodeEscape,
                        escape_start,
                    ));
                }
            }
        }
        Ok(code)
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes at least one digit, or fails with `context` ("after '-'", ...).
    fn require_digits(&mut self, context: &'static str) -> Result<(), ParseError> {
        match self.peek() {
            Some(b'0'..=b'9') => {
                self.skip_digits();
                Ok(())
            }
            None => Err(self.error(ErrorKind::UnexpectedEnd)),
            Some(_) => Err(self.error(ErrorKind::ExpectedDigit(context))),
        }
    }

    /// Called with `pos` on `-` or a digit.
    fn parse_number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(ParseError::new(ErrorKind::LeadingZero, start));
                }
            }
            _ => self.require_digits("after '-'")?,
        }
        let mut is_integer = true;
        if self.peek() == Some(b'.') {
            is_integer = false;
            self.pos += 1;
            self.require_digits("after the decimal point")?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            is_integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.require_digits("in the exponent")?;
        }
        // The token is pure ASCII, delimited by ASCII positions.
        let token = &self.text[start..self.pos];
        if is_integer {
            let magnitude = token.trim_start_matches('-');
            let too_large = magnitude.len() > MAX_SAFE_MAGNITUDE.len()
                || (magnitude.len() == MAX_SAFE_MAGNITUDE.len() && magnitude > MAX_SAFE_MAGNITUDE);
            if too_large {
                return Err(ParseError::new(
                    ErrorKind::IntegerTooLarge(abbreviate(token)),
                    start,
                ));
            }
        }
        // `str::parse::<f64>` is correctly rounded and accepts every token
        // the grammar above lets through.
        match token.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Value::Number(n)),
            Ok(_) => Err(ParseError::new(
                ErrorKind::NumberOutOfRange(abbreviate(token)),
                start,
            )),
            Err(_) => Err(ParseError::new(
                ErrorKind::InvalidNumber(abbreviate(token)),
                start,
            )),
        }
    }
}

/// Whether `key` already names a member of `members`. Small objects are
/// scanned linearly; from [`LINEAR_DUPLICATE_SCAN`] members on, a set of
/// randomly keyed hashes (built lazily, covering every member) makes the check
/// O(1), with a linear scan only on a hash match, so a large object cannot
/// make parsing quadratic.
fn is_duplicate_key(
    members: &[(String, Value)],
    key_hashes: &mut Option<(RandomState, HashSet<u64>)>,
    key: &str,
) -> bool {
    let scan = || members.iter().any(|(existing, _)| existing == key);
    if members.len() < LINEAR_DUPLICATE_SCAN {
        return scan();
    }
    let (state, hashes) = key_hashes.get_or_insert_with(|| {
        let state = RandomState::new();
        let hashes = members
            .iter()
            .map(|(existing, _)| state.hash_one(existing.as_str()))
            .collect();
        (state, hashes)
    });
    !hashes.insert(state.hash_one(key)) && scan()
}

/// Shortens publisher text quoted in an error message.
fn abbreviate(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
