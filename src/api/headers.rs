//! A webhook's custom request headers (`headers`): what a set must look like, and how
//! answers show it. They usually carry credentials for the receiver (an `Authorization`
//! for n8n or Zapier), so, like the secret, their values never leave hookd except on the
//! wire to the receiver: every answer shows each value as [`REDACTED`].
//!
//! The names hookd sets itself are refused, so a custom header can neither break the
//! request's framing nor forge what hookd vouches for (the signatures, the event type,
//! the delivery id, the trace context).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::error::ApiError;

pub const MAX_HEADERS: usize = 10;
pub const MAX_VALUE_BYTES: usize = 1024;
/// Header names longer than this are refused (no receiver expects one).
pub const MAX_NAME_BYTES: usize = 256;
/// What answers show instead of a value.
pub const REDACTED: &str = "<redacted>";

/// Names hookd sets on every attempt (or that frame the request), compared ignoring case.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "traceparent",
    "tracestate",
];
/// Prefixes of the names hookd sets (`X-Hook-Signature`, `webhook-id`, …).
const RESERVED_PREFIXES: &[&str] = &["x-hook-", "webhook-"];

/// A `headers` object as the client sent it: every entry in order (duplicates included),
/// values of any JSON type, so that [`validate`] can name the entry it refuses.
pub struct HeadersInput(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for HeadersInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = HeadersInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`headers` to be an object of header names and string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeadersInput, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(HeadersInput(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// An HTTP token (RFC 9110 §5.6.2): the characters a header name may have.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    RESERVED.contains(&lower.as_str()) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Visible ASCII and spaces: no control characters (CR and LF above all), nothing
/// outside ASCII.
fn is_plain_value(value: &str) -> bool {
    value.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// Checks a `headers` object and answers the set to store, in the order given.
pub fn validate(input: HeadersInput) -> Result<Vec<(String, String)>, ApiError> {
    let entries = input.0;
    if entries.len() > MAX_HEADERS {
        return Err(ApiError::bad_request(format!(
            "`headers` has {} entries; a webhook may have at most {MAX_HEADERS}",
            entries.len()
        )));
    }
    let mut set: Vec<(String, String)> = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        let shown = name.escape_debug();
        if !is_token(&name) || name.len() > MAX_NAME_BYTES {
            return Err(ApiError::bad_request(format!(
                "`headers`: \"{shown}\" is not a valid header name (1 to {MAX_NAME_BYTES} letters, \
                 digits and !#$%&'*+-.^_`|~)"
            )));
        }
        if is_reserved(&name) {
            return Err(ApiError::bad_request(format!(
                "`headers`: \"{shown}\" is set by hookd and cannot be set per webhook \
                 (refused: Host, Content-Length, Content-Type, Transfer-Encoding, Connection, \
                 User-Agent, traceparent, tracestate, X-Hook-*, webhook-*)"
            )));
        }
        if set.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            return Err(ApiError::bad_request(format!(
                "`headers`: \"{shown}\" is given twice (header names ignore case)"
            )));
        }
        let Value::String(value) = value else {
            return Err(ApiError::bad_request(format!(
                "`headers`: the value of \"{shown}\" must be a string"
            )));
        };
        if value.len() > MAX_VALUE_BYTES || !is_plain_value(&value) {
            return Err(ApiError::bad_request(format!(
                "`headers`: the value of \"{shown}\" must be at most {MAX_VALUE_BYTES} bytes of \
                 visible ASCII and spaces"
            )));
        }
        set.push((name, value));
    }
    Ok(set)
}

/// A header set as answers show it: `{"<name>": "<redacted>", …}`, in the stored order.
pub struct Redacted<'a>(pub &'a [(String, String)]);

impl Serialize for Redacted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, _) in self.0 {
            map.serialize_entry(name, REDACTED)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<Vec<(String, String)>, String> {
        let input: HeadersInput = serde_json::from_str(json).map_err(|e| e.to_string())?;
        validate(input).map_err(|e| e.message)
    }

    #[test]
    fn a_valid_set_keeps_its_order() {
        let set = check(r#"{"X-Token":"a b","Authorization":"Bearer x","X-Empty":""}"#).unwrap();
        let names: Vec<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Token", "Authorization", "X-Empty"]);
        assert_eq!(check("{}").unwrap(), []);
        let shown = serde_json::to_string(&Redacted(&set)).unwrap();
        assert_eq!(
            shown,
            r#"{"X-Token":"<redacted>","Authorization":"<redacted>","X-Empty":"<redacted>"}"#
        );
    }

    #[test]
    fn reserved_names_are_refused_by_name_in_any_case() {
        for name in [
            "Host",
            "content-length",
            "Content-Type",
            "TRANSFER-ENCODING",
            "Connection",
            "User-Agent",
            "traceparent",
            "TraceState",
            "X-Hook-Signature",
            "x-hook-anything",
            "webhook-id",
            "Webhook-Whatever",
        ] {
            let err = check(&format!(r#"{{"{name}":"v"}}"#)).unwrap_err();
            assert!(err.contains(&format!("\"{name}\"")), "{name}: {err}");
            assert!(err.contains("set by hookd"), "{err}");
        }
        // Only the prefix is reserved, not any name that starts alike.
        assert!(check(r#"{"X-Hooks":"v","webhooks":"v"}"#).is_ok());
    }

    #[test]
    fn bad_names_values_and_sizes_are_refused() {
        let eleven: Vec<String> = (0..11).map(|i| format!("\"X-{i}\":\"v\"")).collect();
        let err = check(&format!("{{{}}}", eleven.join(","))).unwrap_err();
        assert!(err.contains("at most 10"), "{err}");
        let ten: Vec<String> = (0..10).map(|i| format!("\"X-{i}\":\"v\"")).collect();
        assert_eq!(check(&format!("{{{}}}", ten.join(","))).unwrap().len(), 10);
        for (json, named) in [
            (r#"{"":"v"}"#, "\"\""),
            (r#"{"X Token":"v"}"#, "\"X Token\""),
            (r#"{"X:Token":"v"}"#, "\"X:Token\""),
            (r#"{"Ünï":"v"}"#, "\"Ünï\""),
            (r#"{"X-A":"v","x-a":"w"}"#, "\"x-a\" is given twice"),
            (r#"{"X-A":"v","X-A":"w"}"#, "\"X-A\" is given twice"),
            (r#"{"X-A":1}"#, "\"X-A\" must be a string"),
            (r#"{"X-A":null}"#, "\"X-A\" must be a string"),
            (r#"{"X-A":"a\r\nX-Evil: 1"}"#, "\"X-A\" must be at most"),
            (r#"{"X-A":"tab\there"}"#, "\"X-A\" must be at most"),
            (r#"{"X-A":"é"}"#, "\"X-A\" must be at most"),
        ] {
            let err = check(json).unwrap_err();
            assert!(err.contains(named), "{json}: {err}");
        }
        let long = "v".repeat(MAX_VALUE_BYTES);
        assert!(check(&format!(r#"{{"X-A":"{long}"}}"#)).is_ok());
        assert!(check(&format!(r#"{{"X-A":"{long}v"}}"#)).is_err());
        let name = "N".repeat(MAX_NAME_BYTES + 1);
        assert!(check(&format!(r#"{{"{name}":"v"}}"#)).is_err());
        assert!(check(r#"["X-A"]"#).is_err());
    }
}
