//! The `X-Sheetsync-Signature` HMAC of a webhook delivery.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::payload::SIGNATURE_PREFIX;

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Sheetsync-Signature` value for a body:
/// `v1=<lowercase hex HMAC-SHA256(secret, "<timestamp_secs>.<body>")>`.
pub fn sign(secret: &[u8], timestamp_secs: u64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp_secs.to_string(), body)
        .finalize()
        .into_bytes();
    format!("{SIGNATURE_PREFIX}{}", hex::encode(tag))
}

/// Whether `signature` (the `X-Sheetsync-Signature` header value) signs `body` sent with the
/// `X-Sheetsync-Timestamp` header text `timestamp`. The MAC is compared in constant time.
pub fn verify(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.trim().strip_prefix(SIGNATURE_PREFIX) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let sig = sign(b"k", 1_700_000_000, b"{}");
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64);
        assert!(verify(b"k", "1700000000", b"{}", &sig));
        assert!(!verify(b"k", "1700000001", b"{}", &sig));
        assert!(!verify(b"j", "1700000000", b"{}", &sig));
        assert!(!verify(b"k", "1700000000", b"{} ", &sig));
        assert!(!verify(b"k", "1700000000", b"{}", &sig[3..]));
        assert!(!verify(b"k", "1700000000", b"{}", &sig[..sig.len() - 2]));
    }
}
