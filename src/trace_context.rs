//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and
//! `tracestate` a publisher sends with an event, and the `traceparent` each attempt sends.
//!
//! hookd joins the publisher's trace: it keeps the trace-id, the trace-flags and the
//! `tracestate` with the event, and every attempt is a span of its own, so its
//! `traceparent` carries the same trace-id with a fresh parent-id. `tracestate` goes out
//! unchanged (hookd adds no entry of its own).
//!
//! Anything invalid is ignored, never refused: for a participant the specification says
//! a `traceparent` it cannot parse starts a new trace, and hookd then simply has none. An
//! invalid `tracestate` is dropped on its own; it is only read after a valid
//! `traceparent`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The trace an event belongs to, as kept in its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The publisher's trace-flags (bit 0: sampled), passed on as they came.
    pub flags: u8,
    /// The `tracestate` list as received (several headers joined with `,`).
    pub state: Option<String>,
}

/// A 16-byte trace-id, never all zeros; shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceId(pub [u8; 16]);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The most list-members a `tracestate` may have (the specification's limit).
const MAX_STATE_MEMBERS: usize = 32;

impl TraceContext {
    /// Reads the trace context from a request's `traceparent` and `tracestate` header
    /// values (every occurrence, in order). `None` when there is no valid `traceparent`.
    pub fn from_headers<'a>(
        traceparent: impl IntoIterator<Item = &'a [u8]>,
        tracestate: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<TraceContext> {
        let mut parents = traceparent.into_iter();
        // Two traceparent headers do not say which trace the request is in.
        let (Some(parent), None) = (parents.next(), parents.next()) else {
            return None;
        };
        let (trace_id, flags) = parse_traceparent(std::str::from_utf8(parent).ok()?)?;
        let values: Option<Vec<&str>> = tracestate
            .into_iter()
            .map(|v| std::str::from_utf8(v).ok().map(trim_ows))
            .collect();
        let state = values
            .map(|v| v.join(","))
            .filter(|joined| !joined.is_empty() && valid_tracestate(joined));
        Some(TraceContext {
            trace_id,
            flags,
            state,
        })
    }

    /// The `traceparent` of one attempt: this trace, a new span.
    pub fn child_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            hex::encode(fresh_parent_id()),
            self.flags
        )
    }
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `version-traceid-parentid-flags`, lowercase hex, as §3.2 of the specification reads
/// it: version `ff` is invalid; version `00` is exactly 55 characters; a later version
/// may append fields after a `-`, and its first four fields are read as version `00`'s.
fn parse_traceparent(value: &str) -> Option<(TraceId, u8)> {
    let value = trim_ows(value);
    let version = value.get(0..2)?;
    if !is_lower_hex(version) || version == "ff" {
        return None;
    }
    match value.len() {
        55 => {}
        n if n > 55 && version != "00" && value.as_bytes()[55] == b'-' => {}
        _ => return None,
    }
    let bytes = value.as_bytes();
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let (trace, parent, flags) = (value.get(3..35)?, value.get(36..52)?, value.get(53..55)?);
    if !is_lower_hex(trace) || !is_lower_hex(parent) || !is_lower_hex(flags) {
        return None;
    }
    let mut trace_id = [0u8; 16];
    hex::decode_to_slice(trace, &mut trace_id).ok()?;
    if trace_id == [0; 16] || parent.bytes().all(|b| b == b'0') {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((TraceId(trace_id), flags))
}

/// §3.3: comma-separated `key=value` list-members (empty ones allowed), at most 32,
/// each key once.
fn valid_tracestate(list: &str) -> bool {
    let mut keys = Vec::new();
    for member in list.split(',').map(trim_ows).filter(|m| !m.is_empty()) {
        let Some((key, value)) = member.split_once('=') else {
            return false;
        };
        if !valid_state_key(key) || !valid_state_value(value) || keys.contains(&key) {
            return false;
        }
        keys.push(key);
    }
    keys.len() <= MAX_STATE_MEMBERS
}

fn key_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` (lcalpha, then up to 255 key characters) or `tenant@system`
/// (tenant: lcalpha or digit, then up to 240; system: lcalpha, then up to 13).
fn valid_state_key(key: &str) -> bool {
    let well_formed = |part: &str, max: usize, first: fn(u8) -> bool| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= max
            && first(bytes[0])
            && bytes[1..].iter().all(|&b| key_char(b))
    };
    match key.split_once('@') {
        None => well_formed(key, 256, |b| b.is_ascii_lowercase()),
        Some((tenant, system)) => {
            well_formed(tenant, 241, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit()
            }) && well_formed(system, 14, |b| b.is_ascii_lowercase())
        }
    }
}

/// 1 to 256 printable ASCII characters other than `,` and `=`, not ending in a space.
fn valid_state_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 256
        && bytes
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && bytes.last() != Some(&b' ')
}

/// A random, non-zero span id for one attempt. (Should the OS give no random bytes, the
/// id is still valid, just not fresh: a trace's link is not worth failing an attempt.)
fn fresh_parent_id() -> [u8; 8] {
    let mut id = [0u8; 8];
    let _ = getrandom::fill(&mut id);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn read(parent: &[&str], state: &[&str]) -> Option<TraceContext> {
        TraceContext::from_headers(
            parent.iter().map(|s| s.as_bytes()),
            state.iter().map(|s| s.as_bytes()),
        )
    }

    #[test]
    fn a_valid_traceparent_is_kept_with_its_state() {
        let t = read(&[VALID], &["rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"]).unwrap();
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.flags, 1);
        assert_eq!(
            t.state.as_deref(),
            Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")
        );
        // Several tracestate headers are one list.
        let t = read(&[VALID], &["a=1", "b@sys=2"]).unwrap();
        assert_eq!(t.state.as_deref(), Some("a=1,b@sys=2"));
        assert_eq!(read(&[VALID], &[]).unwrap().state, None);
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", // upper case
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace-id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent-id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", // 00 is 55 long
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short trace-id
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // no dash after
            "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(read(&[bad], &["a=1"]), None, "{bad}");
        }
        assert_eq!(read(&[VALID, VALID], &[]), None, "two traceparents");
        assert_eq!(
            TraceContext::from_headers([&[0xffu8, 0xfe][..]], []),
            None,
            "not UTF-8"
        );
    }

    #[test]
    fn later_versions_are_read_as_version_00() {
        let t = read(
            &["cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"],
            &[],
        )
        .unwrap();
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let t = read(
            &["01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09"],
            &[],
        )
        .unwrap();
        assert_eq!(t.flags, 9);
    }

    #[test]
    fn an_invalid_tracestate_is_dropped_alone() {
        let long_value = format!("a={}", "v".repeat(257));
        let too_many = (0..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        let too_many = too_many.join(",");
        for bad in [
            "novalue",
            "A=upper",
            "1a=digit-first",
            "a=1,a=2",
            "a=has,comma",
            "a=x\u{7f}",
            "a=é",
            "a=",
            long_value.as_str(),
            too_many.as_str(),
            "t@Sys=1",
            "t@toolongsystemid=1",
        ] {
            let t = read(&[VALID], &[bad]).unwrap();
            assert_eq!(t.state, None, "{bad}");
        }
        let t = read(&[VALID], &["a=1,,  ,b=x y"]).unwrap();
        assert_eq!(t.state.as_deref(), Some("a=1,,  ,b=x y"));
    }

    #[test]
    fn each_attempt_gets_the_same_trace_and_a_new_span() {
        let t = read(&[VALID], &[]).unwrap();
        let (a, b) = (t.child_traceparent(), t.child_traceparent());
        assert_ne!(a, b);
        for child in [&a, &b] {
            let (trace_id, flags) = parse_traceparent(child).unwrap();
            assert_eq!((trace_id, flags), (t.trace_id, 1));
            assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
            assert!(!child.contains("00f067aa0ba902b7"));
        }
    }
}
