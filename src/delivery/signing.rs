//! The one place that signs delivery bodies and checks such signatures.
//!
//! `X-Hook-Signature: sha256=<lowercase hex HMAC-SHA256(secret, raw body)>`, keyed with
//! the secret string's UTF-8 bytes, exactly as the guide's verification code computes it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "sha256=";

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

#[cfg(test)]
mod tests {
    use super::*;

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
