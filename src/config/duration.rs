//! The duration grammar of the config file: a whole number and one unit, nothing else.
//!
//! Kept strict on purpose (no spaces, signs, fractions or combined units) so that a value
//! means one thing to every reader of the file; [`format_duration`] is its inverse.

use std::time::Duration;

/// Largest duration [`parse_duration`] accepts: 36500 days (about 100 years).
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// How durations are written, for error messages.
const DURATION_FORMS: &str = "a whole number followed by one unit: ms, s, m, h or d \
     (e.g. \"500ms\", \"10s\", \"1m\", \"2h\", \"5d\")";

/// A string that is not a duration; its text quotes the input and lists the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {why}; expected {forms}", forms = DURATION_FORMS)]
pub struct DurationError {
    pub input: String,
    pub why: DurationProblem,
}

/// What is wrong with a duration string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationProblem {
    #[error("it is empty")]
    Empty,
    #[error("whitespace is not allowed")]
    Whitespace,
    #[error("negative durations are not allowed")]
    Negative,
    #[error("it must start with a whole number")]
    NoNumber,
    #[error(
        "fractional values are not allowed (use a smaller unit, e.g. \"1500ms\" instead of \"1.5s\")"
    )]
    Fraction,
    #[error("the unit is missing")]
    NoUnit,
    #[error("the number is too large")]
    NumberTooLarge,
    #[error("only one number and one unit are allowed (e.g. \"90m\", not \"1h30m\")")]
    SeveralUnits,
    #[error("unknown unit {0:?} (units are lowercase)")]
    UppercaseUnit(String),
    #[error("unknown unit {0:?}")]
    UnknownUnit(String),
    #[error("it is too large (the maximum is \"36500d\", about 100 years)")]
    TooLarge,
}

/// Parses a duration written as a whole number followed by one unit:
/// `ms`, `s`, `m`, `h` or `d` (e.g. `"500ms"`, `"10s"`, `"1m"`, `"2h"`, `"5d"`).
///
/// Rejects empty input, whitespace anywhere, signs, fractions, a missing or
/// unknown unit, combined units (`"1h30m"`) and values above
/// [`MAX_DURATION`]. The error message quotes the bad value and lists the
/// accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    use DurationProblem as P;
    let fail = |why: DurationProblem| {
        Err(DurationError {
            input: s.to_owned(),
            why,
        })
    };
    if s.is_empty() {
        return fail(P::Empty);
    }
    if s.chars().any(char::is_whitespace) {
        return fail(P::Whitespace);
    }
    if s.starts_with('-') {
        return fail(P::Negative);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return fail(P::NoNumber);
    }
    if unit.starts_with(['.', ',']) {
        return fail(P::Fraction);
    }
    if unit.is_empty() {
        return fail(P::NoUnit);
    }
    let Ok(n) = number.parse::<u64>() else {
        return fail(P::NumberTooLarge);
    };
    let duration = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(60 * 60).map(Duration::from_secs),
        "d" => n.checked_mul(24 * 60 * 60).map(Duration::from_secs),
        _ if unit.contains(|c: char| c.is_ascii_digit()) => return fail(P::SeveralUnits),
        _ if ["ms", "s", "m", "h", "d"].contains(&unit.to_ascii_lowercase().as_str()) => {
            return fail(P::UppercaseUnit(unit.to_owned()));
        }
        _ => return fail(P::UnknownUnit(unit.to_owned())),
    };
    match duration {
        Some(d) if d <= MAX_DURATION => Ok(d),
        _ => fail(P::TooLarge),
    }
}

/// Formats a duration in the largest unit that represents it exactly, the
/// inverse of [`parse_duration`]: `"0s"`, `"500ms"`, `"90s"`, `"1m"`, `"5d"`.
///
/// Durations with sub-millisecond precision (which [`parse_duration`] never
/// produces) are written in nanoseconds, e.g. `"1500ns"`; those do not parse
/// back.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}ns", d.as_nanos());
    }
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}
