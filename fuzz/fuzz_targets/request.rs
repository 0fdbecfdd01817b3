//! Everything hookd does with bytes from an untrusted HTTP client before a handler runs
//! must never panic (and must keep a few cheap invariants).
//!
//! Input layout: `<path>[?<query>]\n<body>`. Everything up to the first `\n` is the
//! request target (split at the first `?` into path and query, like `hyper::Uri` does),
//! the rest is the request body. The string parsers (ids, timestamps, URLs,
//! `Retry-After`) get the whole input, the request target, every route parameter and
//! every decoded query value.

#![no_main]

use std::sync::LazyLock;
use std::time::SystemTime;

use hookd::api::error::ApiError;
use hookd::api::request::{self, MAX_LIMIT, Paging};
use hookd::api::router::{self, Route};
use hookd::canonical_json;
use hookd::delivery::destination::{self, Host, Policy, UrlProblem};
use hookd::delivery::retry::{self, MAX_RETRY_AFTER};
use hookd::model::{self, DeliveryId, EventId, WebhookId};
use libfuzzer_sys::fuzz_target;

/// The default policy: https only, private networks refused.
static STRICT: LazyLock<Policy> = LazyLock::new(Policy::default);
/// Everything allowed.
static PERMISSIVE: LazyLock<Policy> = LazyLock::new(|| Policy {
    allow_http: true,
    allow_private_networks: true,
    allowed_networks: Vec::new(),
});
/// Strict, with `allowed_networks` exceptions (exercises the `ipnet` network checks).
static EXCEPTIONS: LazyLock<Policy> = LazyLock::new(|| Policy {
    allow_http: false,
    allow_private_networks: false,
    allowed_networks: ["10.1.0.0/16", "fd00::/8", "127.0.0.0/8", "::/0"]
        .iter()
        .map(|s| s.parse().expect("valid CIDR"))
        .collect(),
});

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };

    if let Ok(target) = std::str::from_utf8(head) {
        check_request_target(target);
    }
    check_body(body);
    // Without a newline the whole input is the request target, already checked.
    if head.len() < data.len()
        && let Ok(s) = std::str::from_utf8(data)
    {
        check_string(s);
    }
});

fn check_request_target(target: &str) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };

    if let Some(route) = router::route(path) {
        assert!(path.starts_with('/'));
        let allow = route.allow();
        assert!(
            allow
                .split(", ")
                .all(|m| matches!(m, "GET" | "POST" | "PATCH" | "DELETE")),
            "{allow:?}"
        );
        // A 405 answer carries `allow` as a static header value.
        drop(ApiError::method_not_allowed(allow).into_response());
        // Routes added later fall into the wildcard arm until listed here.
        #[allow(unreachable_patterns)]
        let params: &[&str] = match &route {
            Route::Healthz | Route::Webhooks | Route::Events => &[],
            Route::Webhook(id)
            | Route::RotateSecret(id)
            | Route::Deliveries(id)
            | Route::Recover(id)
            | Route::SendTest(id)
            | Route::Stats(id)
            | Route::Event(id) => &[id],
            Route::Delivery(id, d) | Route::RetryDelivery(id, d) => &[id, d],
            _ => &[],
        };
        for param in params {
            assert!(!param.is_empty() && !param.contains('/'), "{param:?}");
            check_string(param);
        }
    } else {
        drop(ApiError::not_found("no such route").into_response());
    }

    match request::query_pairs(query) {
        Ok(pairs) => {
            if query.is_none() {
                assert!(pairs.is_empty());
            }
            match Paging::from_pairs(&pairs) {
                Ok(paging) => assert!((1..=MAX_LIMIT).contains(&paging.limit)),
                Err(e) => drop(e.into_response()),
            }
            for (key, value) in &pairs {
                check_string(key);
                check_string(value);
            }
        }
        Err(e) => drop(e.into_response()),
    }
    check_string(target);
}

fn check_body(body: &[u8]) {
    match canonical_json::parse(body) {
        Ok(value) => {
            let canon = value.to_canonical_string();
            // `String` guarantees UTF-8. The writer may print an integer token beyond
            // 2^53 (1e20 -> 100000000000000000000) that the strict parser refuses by
            // design; any other refusal of our own output is a bug.
            match canonical_json::parse(canon.as_bytes()) {
                Ok(again) => assert_eq!(
                    again.to_canonical_string(),
                    canon,
                    "canonical form is not idempotent"
                ),
                Err(e) => assert!(
                    e.to_string().contains("beyond ±2^53"),
                    "canonical output {canon:?} was rejected: {e}"
                ),
            }
        }
        Err(e) => {
            assert!(
                e.offset() <= body.len(),
                "offset {} > {}",
                e.offset(),
                body.len()
            );
            // The message goes back to the client.
            drop(ApiError::bad_request(format!("invalid JSON body: {e}")).into_response());
        }
    }
}

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in unix milliseconds.
const YEAR_0000_MILLIS: i64 = -62_167_219_200_000;
const YEAR_9999_END_MILLIS: i64 = 253_402_300_799_999;

/// The string parsers a request's fields end up in.
fn check_string(s: &str) {
    if let Ok(id) = EventId::parse(s) {
        assert_eq!(id.as_str(), s);
        assert!((1..=EventId::MAX_LEN).contains(&s.len()));
    }
    if let Ok(id) = s.parse::<WebhookId>() {
        assert_eq!(id.to_string(), s);
    }
    if let Ok(id) = s.parse::<DeliveryId>() {
        assert_eq!(id.to_string(), s);
    }

    let millis = model::parse_rfc3339_millis(s);
    if let Ok(m) = millis {
        let text = m.to_rfc3339();
        // An offset can put the instant outside years 0000..=9999 in UTC; `to_rfc3339`
        // cannot print those (it falls back to the epoch), so check only the rest.
        if (YEAR_0000_MILLIS..=YEAR_9999_END_MILLIS).contains(&m.0) {
            assert_eq!(
                model::parse_rfc3339_millis(&text),
                Ok(m),
                "{s:?} -> {m:?} -> {text:?}"
            );
        }
    }
    if let Ok(normalized) = model::normalize_rfc3339(s) {
        assert!(normalized.ends_with('Z'), "{normalized:?}");
        assert_eq!(
            model::normalize_rfc3339(&normalized).as_deref(),
            Ok(normalized.as_str()),
            "normalization is not idempotent for {s:?}"
        );
        assert_eq!(
            model::parse_rfc3339_millis(&normalized),
            millis,
            "{s:?} and its normalization {normalized:?} are different instants"
        );
    }

    let strict = destination::check_url(s, &STRICT);
    let permissive = destination::check_url(s, &PERMISSIVE);
    let exceptions = destination::check_url(s, &EXCEPTIONS);
    if let Ok(host) = &strict {
        // A looser policy never refuses what a stricter one accepts.
        assert_eq!(permissive.as_ref(), Ok(host));
        assert_eq!(exceptions.as_ref(), Ok(host));
    }
    for result in [&strict, &permissive, &exceptions] {
        match result {
            Ok(Host::Name(name)) => {
                assert!(!name.is_empty());
                assert_eq!(*name, name.to_ascii_lowercase());
            }
            Ok(Host::Ip(_)) => {}
            Err(UrlProblem::Invalid(why) | UrlProblem::NotAllowed(why)) => {
                assert!(!why.is_empty());
            }
        }
    }

    if let Some(wait) = retry::parse_retry_after(s, SystemTime::UNIX_EPOCH) {
        assert!(wait <= MAX_RETRY_AFTER, "{wait:?}");
    }
}
