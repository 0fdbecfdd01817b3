//! `hookd listen`: a receiver for trying hookd. It listens on 127.0.0.1, prints each
//! request it gets (method, path, every header but the transport's — hookd's, the Standard Webhooks ones and a webhook's custom headers — the event
//! id, the body pretty-printed) with a verdict line per signature, and answers with the
//! status it was started with.
//!
//! The verdicts use hookd's own signing code ([`crate::delivery::signing`]), with the
//! secret taken exactly as webhooks take theirs: `X-Hook-Signature` is keyed with the
//! secret's UTF-8 bytes, `webhook-signature` with the decoded bytes of a `whsec_` secret
//! (any other secret with its bytes), and a `webhook-timestamp` more than
//! [`TIMESTAMP_TOLERANCE_SECS`] from now is `stale`, as the guide tells receivers.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::BadInput;
use crate::canonical_json;
use crate::config::MAX_PAYLOAD_BYTES;
use crate::delivery::signing::{
    StandardVerdict, TIMESTAMP_TOLERANCE_SECS, verify_hook_signature, verify_standard_signature,
};

/// A body must arrive within this long after its headers.
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// What `hookd listen` was asked to do.
#[derive(Debug, Clone)]
struct Options {
    /// The port on 127.0.0.1 (0: any free one, printed at start).
    port: u16,
    /// The webhook's secret, to check signatures with; `None` checks nothing.
    secret: Option<String>,
    /// The status every request is answered with.
    status: StatusCode,
}

/// Runs the receiver on 127.0.0.1:`port` until Ctrl-C.
pub fn run(port: u16, secret: Option<String>, status: u16) -> anyhow::Result<ExitCode> {
    let status = StatusCode::from_u16(status)
        .map_err(|_| BadInput(format!("--status {status} is not an HTTP status code")))?;
    let options = Options {
        port,
        secret,
        status,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(options))
}

async fn serve(options: Options) -> anyhow::Result<ExitCode> {
    let at = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let listener = TcpListener::bind(at)
        .await
        .with_context(|| format!("cannot listen on {at}"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let checking = match &options.secret {
        Some(_) => "checking signatures with the given secret",
        None => "not checking signatures (no --secret)",
    };
    print_block(&format!(
        "hookd listen: receiving on http://{bound}/, answering {}; {checking}; Ctrl-C stops\n",
        options.status.as_u16()
    ));
    let options = Arc::new(options);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: say so and keep listening.
                eprintln!("hookd listen: cannot accept a connection: {e}");
                continue;
            }
        };
        let options = Arc::clone(&options);
        let service = service_fn(move |request| answer(request, Arc::clone(&options)));
        tokio::spawn(async move {
            // A client that breaks off mid-request only ends its own connection.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    options: Arc<Options>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (head, body) = request.into_parts();
    let limit = Limited::new(body, MAX_PAYLOAD_BYTES * 2);
    let body = match tokio::time::timeout(BODY_DEADLINE, limit.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) => {
            print_block(&format!(
                "{} {}\n-> body not read: {e}\n\n",
                head.method, head.uri
            ));
            let status = if e.is::<http_body_util::LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return Ok(json(status, "{\"error\":\"body not read\"}"));
        }
        Err(_) => {
            print_block(&format!(
                "{} {}\n-> body not complete within {} s\n\n",
                head.method,
                head.uri,
                BODY_DEADLINE.as_secs()
            ));
            return Ok(json(
                StatusCode::REQUEST_TIMEOUT,
                "{\"error\":\"body too slow\"}",
            ));
        }
    };
    let now = crate::clock::system_unix_secs();
    let mut text = describe(
        head.method.as_str(),
        &head.uri.to_string(),
        &head.headers,
        &body,
        options.secret.as_deref(),
        now,
    );
    let status = options.status;
    text.push_str(&format!("-> answered {}\n\n", status.as_u16()));
    print_block(&text);
    let answer = if status.is_success() {
        "{\"received\":true}".to_owned()
    } else {
        format!(
            "{{\"error\":\"hookd listen answers {} (--status)\"}}",
            status.as_u16()
        )
    };
    Ok(json(status, &answer))
}

fn json(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Prints one request's block at once, so that parallel deliveries do not interleave.
fn print_block(text: &str) {
    let mut out = std::io::stdout().lock();
    // Nowhere to report a closed stdout to; the answer goes out regardless.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Headers of the HTTP exchange itself, which say nothing about the delivery.
const TRANSPORT_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "accept",
    "accept-encoding",
];

/// Whether a header is printed: hookd's (`X-Hook-*`, trace context), Standard Webhooks',
/// and a webhook's custom headers (to see that they arrive) — all but the transport's.
fn shown(name: &str) -> bool {
    !TRANSPORT_HEADERS.contains(&name)
}

/// The printout of one request, without the answer line.
fn describe(
    method: &str,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
    now: i64,
) -> String {
    let mut text = format!("{method} {target}\n");
    for (name, value) in headers.iter().filter(|(name, _)| shown(name.as_str())) {
        let value = String::from_utf8_lossy(value.as_bytes());
        text.push_str(&format!("{name}: {value}\n"));
    }
    let parsed = canonical_json::parse(body).ok();
    let event_id = parsed
        .as_ref()
        .and_then(|v| v.get("event"))
        .and_then(|e| e.get("id"))
        .and_then(canonical_json::Value::as_str);
    if let Some(id) = event_id {
        text.push_str(&format!("event id: {id}\n"));
    }
    text.push('\n');
    match &parsed {
        Some(value) => text.push_str(&value.to_pretty_string()),
        None if body.is_empty() => text.push_str("(empty body)"),
        None => text.push_str(&String::from_utf8_lossy(body)),
    }
    text.push_str("\n\n");
    text.push_str(&verdicts(headers, body, secret, now));
    text
}

/// One verdict line per signature, each followed by an indented reason when it is not
/// `valid`.
fn verdicts(headers: &HeaderMap, body: &[u8], secret: Option<&str>, now: i64) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let hook = header("x-hook-signature");
    let id = header("webhook-id");
    let timestamp = header("webhook-timestamp");
    let standard = header("webhook-signature");
    let Some(secret) = secret else {
        return if hook.is_some() || standard.is_some() {
            "signatures: not checked (start hookd listen with --secret to check them)\n".to_owned()
        } else {
            "signatures: none (the webhook has no secret)\n".to_owned()
        };
    };
    let mut text = String::new();
    match hook {
        Some(signature) if verify_hook_signature(secret, body, &signature) => {
            text.push_str("X-Hook-Signature: valid\n");
        }
        Some(_) => text.push_str(
            "X-Hook-Signature: invalid\n  not the HMAC-SHA256 of this body with this secret\n",
        ),
        None => text.push_str("X-Hook-Signature: invalid\n  the request has no X-Hook-Signature\n"),
    }
    let (Some(id), Some(timestamp), Some(standard)) = (id, timestamp, standard) else {
        text.push_str(
            "webhook-signature: invalid\n  the request lacks webhook-id, webhook-timestamp \
             or webhook-signature\n",
        );
        return text;
    };
    match verify_standard_signature(secret, &id, &timestamp, body, &standard, now) {
        StandardVerdict::Valid => text.push_str("webhook-signature: valid\n"),
        StandardVerdict::Invalid => text.push_str(
            "webhook-signature: invalid\n  no v1 signature of webhook-id.webhook-timestamp.body \
             with this secret\n",
        ),
        StandardVerdict::Stale => {
            let age = timestamp
                .trim()
                .parse::<i64>()
                .map_or(0, |t| now.saturating_sub(t));
            let how = if age >= 0 {
                format!("{age} s old")
            } else {
                format!("{} s in the future", age.unsigned_abs())
            };
            text.push_str(&format!(
                "webhook-signature: stale\n  signed, but webhook-timestamp is {how}; receivers \
                 reject more than {} minutes either way\n",
                TIMESTAMP_TOLERANCE_SECS / 60
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::signing::{hook_signature, standard_signature};

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn prints_the_delivery_and_its_verdicts() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"event":{"id":"evt-1","type":"app:connected"},"webhook":{"id":"wh-1"}}"#;
        let at = 1_700_000_000;
        let signed = headers(&[
            ("content-type", "application/json".into()),
            ("x-hook-event", "app:connected".into()),
            ("x-hook-signature", hook_signature(secret, body)),
            ("webhook-id", "evt-1".into()),
            ("webhook-timestamp", at.to_string()),
            (
                "webhook-signature",
                standard_signature(secret, "evt-1", at, body),
            ),
        ]);
        let text = describe("POST", "/webhook", &signed, body, Some(secret), at + 10);
        assert!(
            text.starts_with("POST /webhook\nx-hook-event: app:connected\n"),
            "{text}"
        );
        assert!(!text.contains("content-type"), "{text}");
        assert!(text.contains("event id: evt-1\n"), "{text}");
        assert!(
            text.contains("{\n  \"event\": {\n    \"id\": \"evt-1\","),
            "{text}"
        );
        assert!(
            text.ends_with("X-Hook-Signature: valid\nwebhook-signature: valid\n"),
            "{text}"
        );

        let tampered = describe("POST", "/", &signed, b"{}", Some(secret), at);
        assert!(
            tampered.contains("X-Hook-Signature: invalid\n"),
            "{tampered}"
        );
        assert!(
            tampered.contains("webhook-signature: invalid\n"),
            "{tampered}"
        );

        let late = describe("POST", "/", &signed, body, Some(secret), at + 3600);
        assert!(late.contains("X-Hook-Signature: valid\n"), "{late}");
        assert!(
            late.contains(
                "webhook-signature: stale\n  signed, but webhook-timestamp is 3600 s old"
            ),
            "{late}"
        );

        let unchecked = describe("POST", "/", &signed, body, None, at);
        assert!(
            unchecked.ends_with(
                "signatures: not checked (start hookd listen with --secret to check them)\n"
            ),
            "{unchecked}"
        );
        let unsigned = describe(
            "POST",
            "/",
            &HeaderMap::new(),
            b"not json",
            Some(secret),
            at,
        );
        assert!(unsigned.contains("\n\nnot json\n\n"), "{unsigned}");
        assert!(
            unsigned.contains("X-Hook-Signature: invalid\n  the request has no X-Hook-Signature\n"),
            "{unsigned}"
        );
    }
}
