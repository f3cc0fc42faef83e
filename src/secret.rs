//! Secrets: making them, hashing the ones stored, comparing in constant time, and
//! Standard Webhooks signatures. No secret is ever written to a log.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is not something marketd can run without.
    getrandom::fill(&mut bytes).expect("operating system random source failed");
    bytes
}

/// A bearer token: `prefix` then 32 random bytes, base64url.
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// A webhook signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_webhook_secret() -> String {
    format!("whsec_{}", STANDARD.encode(random_bytes::<32>()))
}

/// SHA-256 of a token; what the store keeps instead of the token itself.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The Standard Webhooks signature `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`.
/// `None` when the secret is not `whsec_` + base64.
pub fn sign_webhook(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mac = webhook_mac(secret, id, timestamp, body)?;
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Whether any `v1,<base64>` signature in the space-separated `header` is the
/// HMAC of `{id}.{timestamp}.{body}` under any of `secrets`. Compared in constant
/// time; a bare `v1,`, another version or broken base64 never matches.
pub fn verify_webhook(
    secrets: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let expected: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|s| webhook_mac(s, id, timestamp, body))
        .map(|mac| mac.finalize().into_bytes().to_vec())
        .collect();
    header
        .split(' ')
        .filter_map(|sig| sig.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|given| expected.iter().any(|want| constant_time_eq(&given, want)))
}

/// Whether `secret` is `whsec_` followed by base64, the form signing needs.
pub fn is_webhook_secret(secret: &str) -> bool {
    webhook_key(secret).is_some()
}

fn webhook_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix("whsec_")?).ok()
}

fn webhook_mac(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let key = webhook_key(secret)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_known_answer() {
        let sig = sign_webhook(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(sign_webhook("nope", "a", 1, b""), None);
    }

    #[test]
    fn verification_accepts_any_listed_signature_under_any_secret() {
        let (old, new) = (new_webhook_secret(), new_webhook_secret());
        let sig = sign_webhook(&old, "msg_1", 10, b"{}").unwrap();
        let header = format!("v1,AAAA {sig}");
        assert!(verify_webhook(&[&new, &old], "msg_1", 10, b"{}", &header));
        assert!(!verify_webhook(&[&new], "msg_1", 10, b"{}", &header));
        assert!(!verify_webhook(&[&old], "msg_1", 11, b"{}", &sig));
        assert!(!verify_webhook(&[&old], "msg_2", 10, b"{}", &sig));
        assert!(!verify_webhook(&[&old], "msg_1", 10, b"{} ", &sig));
        assert!(!verify_webhook(&[&old], "msg_1", 10, b"{}", "v1,"));
        assert!(!verify_webhook(&[&old], "msg_1", 10, b"{}", ""));
        assert!(!verify_webhook(
            &[&old],
            "msg_1",
            10,
            b"{}",
            &sig.replace("v1,", "v2,")
        ));
    }

    #[test]
    fn made_secrets_have_their_shapes() {
        let s = new_webhook_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&s[6..]).unwrap().len(), 32);
        assert_ne!(new_token("t_"), new_token("t_"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
