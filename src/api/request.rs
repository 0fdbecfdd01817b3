//! Reading what a client sent: the body (size-limited while it streams, time-limited,
//! JSON only), typed JSON bodies, and query strings.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, TRANSFER_ENCODING};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// How long a client may take to send its body once the headers are in.
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// Whether the request carries a body at all, by its framing headers.
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || headers.contains_key(TRANSFER_ENCODING)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|media| media.eq_ignore_ascii_case("application/json"))
}

/// 415 for any request that carries a body that is not JSON, whatever the endpoint.
pub fn refuse_non_json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    if has_body(headers) && !is_json(headers) {
        return Err(ApiError::unsupported_media_type());
    }
    Ok(())
}

/// Checks the content type (415) and reads at most `limit` bytes (413) within the body
/// deadline. `required`: an absent body is a 415 too, since it is not JSON. Returns an
/// empty buffer for an absent optional body.
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    required: bool,
) -> Result<Bytes, ApiError> {
    if !has_body(headers) && !required {
        return Ok(Bytes::new());
    }
    if !is_json(headers) {
        return Err(ApiError::unsupported_media_type());
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let collected = tokio::time::timeout(BODY_DEADLINE, Limited::new(body, limit).collect())
        .await
        .map_err(|_| ApiError::request_timeout())?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(_) => Err(ApiError::bad_request("the request body could not be read")),
    }
}

/// Parses a JSON body into `T` (unknown fields, wrong types and duplicates are 400).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// `Some(Some(v))` for a value, `Some(None)` for an explicit `null`, `None` when absent:
/// PATCH needs to tell "remove" from "leave as is".
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

use serde::Deserialize;

/// The decoded `key=value` pairs of a query string, in order.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(query) = query else {
        return Ok(Vec::new());
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("the query string has an invalid %-escape or is not UTF-8");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// The common paging parameters of list endpoints: `limit` (default 50, clamped to 100)
/// and the `after` cursor.
pub struct Paging {
    pub limit: usize,
    pub after: Option<u64>,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

impl Paging {
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Paging, ApiError> {
        let mut paging = Paging {
            limit: DEFAULT_LIMIT,
            after: None,
        };
        for (key, value) in pairs {
            match key.as_str() {
                // Any positive integer is clamped to MAX_LIMIT, however many digits.
                "limit"
                    if !value.is_empty()
                        && value.bytes().all(|b| b.is_ascii_digit())
                        && value.parse::<i64>().is_err() =>
                {
                    paging.limit = MAX_LIMIT;
                }
                "limit" => {
                    let n: i64 = value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "`limit` must be a positive integer, not \"{value}\""
                        ))
                    })?;
                    if n <= 0 {
                        return Err(ApiError::bad_request("`limit` must be a positive integer"));
                    }
                    paging.limit = usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
                }
                "after" => paging.after = Some(decode_cursor(value)?),
                _ => {}
            }
        }
        Ok(paging)
    }
}

/// Cursors are opaque to clients; inside they are the sequence number to continue below.
pub fn encode_cursor(seq: u64) -> String {
    format!("c{seq}")
}

fn decode_cursor(value: &str) -> Result<u64, ApiError> {
    value
        .strip_prefix('c')
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| ApiError::bad_request("`after` is not a cursor returned by this API"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_escapes() {
        let pairs = query_pairs(Some("type=app%3A%2A&limit=5&&x")).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("type".into(), "app:*".into()),
                ("limit".into(), "5".into()),
                ("x".into(), String::new())
            ]
        );
        assert!(query_pairs(Some("a=%zz")).is_err());
        assert!(query_pairs(Some("a=%ff")).is_err());
        assert!(query_pairs(Some("a=%4")).is_err());
    }

    #[test]
    fn paging_defaults_clamps_and_rejects() {
        let p = Paging::from_pairs(&[]).unwrap();
        assert_eq!((p.limit, p.after), (50, None));
        let p = Paging::from_pairs(&[("limit".into(), "1000".into())]).unwrap();
        assert_eq!(p.limit, 100);
        let p = Paging::from_pairs(&[("limit".into(), "99999999999999999999".into())]).unwrap();
        assert_eq!(p.limit, 100);
        for bad in ["0", "-1", "1.5", "x", ""] {
            assert!(
                Paging::from_pairs(&[("limit".into(), bad.into())]).is_err(),
                "{bad}"
            );
        }
        let p = Paging::from_pairs(&[("after".into(), encode_cursor(42))]).unwrap();
        assert_eq!(p.after, Some(42));
        for bad in ["42", "c", "cx", "c-1", "c99999999999999999999999"] {
            assert!(
                Paging::from_pairs(&[("after".into(), bad.into())]).is_err(),
                "{bad}"
            );
        }
    }
}
