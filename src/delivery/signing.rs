//! The one place that signs delivery bodies, checks such signatures, and makes secrets.
//!
//! Two signatures go with every delivery of a webhook that has a secret:
//! - `X-Hook-Signature: sha256=<lowercase hex HMAC-SHA256(secret, raw body)>`, keyed with
//!   the secret string's UTF-8 bytes, exactly as the guide's verification code computes it;
//! - Standard Webhooks (standardwebhooks.com): `webhook-signature: v1,<base64
//!   HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`, whose signed timestamp
//!   lets receivers reject replays. The key of a `whsec_<base64>` secret (the form hookd
//!   generates) is its decoded bytes, so the secret goes straight into the official
//!   libraries; any other secret is used as its UTF-8 bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";

/// The longest secret accepted, for webhooks and for notifications alike.
pub const MAX_SECRET_BYTES: usize = 256;

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    mac.update(body);
    mac
}

/// The `X-Hook-Signature` value for `body`.
pub fn hook_signature(secret: &str, body: &[u8]) -> String {
    let digest = mac(secret.as_bytes(), body).finalize().into_bytes();
    format!("{PREFIX}{}", hex::encode(digest))
}

/// Whether `signature` (`sha256=<hex>`) is the signature of `body` under `secret`, in
/// constant time. A malformed signature is simply not valid.
pub fn verify_hook_signature(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.trim().strip_prefix(PREFIX) else {
        return false;
    };
    let Ok(digest) = hex::decode(hex_digest) else {
        return false;
    };
    mac(secret.as_bytes(), body).verify_slice(&digest).is_ok()
}

const WHSEC: &str = "whsec_";

/// The HMAC key Standard Webhooks uses for `secret`.
pub fn standard_key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(WHSEC)
        .and_then(|b64| BASE64.decode(b64).ok())
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// One `v1,<base64>` entry of `webhook-signature`.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(
        &standard_key(secret),
        format!("{msg_id}.{timestamp}.").as_bytes(),
    );
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// How far `webhook-timestamp` may be from the receiver's clock, either way, for a
/// delivery to count as fresh: the window of the Standard Webhooks libraries, which the
/// guide tells receivers to use.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// What a receiver makes of a delivery's `webhook-signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardVerdict {
    /// An entry matches, and `webhook-timestamp` is within the window.
    Valid,
    /// No entry matches (or the timestamp is not a number).
    Invalid,
    /// An entry matches, but `webhook-timestamp` is more than
    /// [`TIMESTAMP_TOLERANCE_SECS`] from `now`: a replay, or a wrong clock.
    Stale,
}

/// Checks a delivery's Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`) over its raw `body` as a receiver would at `now` (Unix seconds).
/// Any `v1,` entry may match (two are sent during a rotation's grace period); each is
/// compared in constant time.
pub fn verify_standard_signature(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: i64,
) -> StandardVerdict {
    let Ok(seconds) = timestamp.trim().parse::<i64>() else {
        return StandardVerdict::Invalid;
    };
    let mut signed = mac(
        &standard_key(secret),
        format!("{msg_id}.{seconds}.").as_bytes(),
    );
    signed.update(body);
    let matches = signature
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .any(|digest| signed.clone().verify_slice(&digest).is_ok());
    if !matches {
        StandardVerdict::Invalid
    } else if now.abs_diff(seconds) > TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
        StandardVerdict::Stale
    } else {
        StandardVerdict::Valid
    }
}

/// A fresh secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{WHSEC}{}", BASE64.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification's test suite.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn standard_signatures_verify_within_the_window() {
        let body = br#"{"test": 2432232314}"#;
        let at = 1_614_265_330;
        for secret in ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "plain secret"] {
            let good = standard_signature(secret, "msg_1", at, body);
            let verdict = |ts: &str, body: &[u8], sig: &str, now: i64| {
                verify_standard_signature(secret, "msg_1", ts, body, sig, now)
            };
            let ts = at.to_string();
            assert_eq!(verdict(&ts, body, &good, at), StandardVerdict::Valid);
            assert_eq!(verdict(&ts, body, &good, at + 300), StandardVerdict::Valid);
            assert_eq!(verdict(&ts, body, &good, at - 300), StandardVerdict::Valid);
            assert_eq!(verdict(&ts, body, &good, at + 301), StandardVerdict::Stale);
            assert_eq!(verdict(&ts, body, &good, at - 301), StandardVerdict::Stale);
            // Either entry of a rotation may match.
            let other = standard_signature("old", "msg_1", at, body);
            let both = format!("{other} {good}");
            assert_eq!(verdict(&ts, body, &both, at), StandardVerdict::Valid);
            // Tampered body, another id or timestamp, malformed entries: invalid.
            assert_eq!(verdict(&ts, b"{}", &good, at), StandardVerdict::Invalid);
            assert_eq!(
                verify_standard_signature(secret, "msg_2", &ts, body, &good, at),
                StandardVerdict::Invalid
            );
            let later = (at + 1).to_string();
            assert_eq!(verdict(&later, body, &good, at), StandardVerdict::Invalid);
            assert_eq!(verdict("soon", body, &good, at), StandardVerdict::Invalid);
            for bad in [
                "",
                "v1,",
                "v1,!!!",
                &other,
                &good[3..],
                &good.replace("v1,", "v2,"),
            ] {
                assert_eq!(
                    verdict(&ts, body, bad, at),
                    StandardVerdict::Invalid,
                    "{bad}"
                );
            }
            // A stale signature that does not match is invalid, not stale.
            assert_eq!(
                verdict(&ts, b"{}", &good, at + 3600),
                StandardVerdict::Invalid
            );
        }
    }

    #[test]
    fn plain_secrets_are_their_own_bytes() {
        assert_eq!(standard_key("plain"), b"plain".to_vec());
        assert_eq!(
            standard_key("whsec_!!notbase64"),
            b"whsec_!!notbase64".to_vec()
        );
        assert_eq!(standard_key("whsec_AAEC"), vec![0, 1, 2]);
        let generated = generate_secret().unwrap();
        assert!(generated.starts_with("whsec_"));
        assert_eq!(standard_key(&generated).len(), 32);
        assert_ne!(generated, generate_secret().unwrap());
    }

    #[test]
    fn matches_a_known_hmac_vector() {
        // RFC 4231 test case 2.
        let sig = hook_signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_hook_signature(
            "Jefe",
            b"what do ya want for nothing?",
            &sig
        ));
    }

    #[test]
    fn rejects_wrong_and_malformed_signatures() {
        let sig = hook_signature("s", b"body");
        assert!(!verify_hook_signature("s", b"body!", &sig));
        assert!(!verify_hook_signature("t", b"body", &sig));
        assert!(!verify_hook_signature("s", b"body", &sig[7..]));
        assert!(!verify_hook_signature("s", b"body", "sha256=zz"));
        assert!(!verify_hook_signature("s", b"body", "sha256="));
        assert!(!verify_hook_signature("s", b"body", &sig.to_uppercase()));
    }
}
