//! Svix webhook signatures (the scheme Clerk's webhooks use), over the raw body bytes:
//! `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the base64 after
//! `whsec_`. The signature header may list several space-separated signatures (secret rotation);
//! any `v1` match is enough, compared in constant time. Timestamps must be within 5 minutes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const TOLERANCE_SECS: i64 = 5 * 60;
/// Message ids become table keys; Svix's are ~30 characters.
const MAX_ID_LEN: usize = 256;
/// Signatures examined per header: rotation needs a few, never hundreds.
const MAX_SIGNATURES: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing header {0} (or its webhook-* equivalent)")]
    MissingHeader(&'static str),
    #[error("header {0} is malformed")]
    InvalidHeader(&'static str),
    #[error("the signature timestamp is more than 5 minutes old")]
    TooOld,
    #[error("the signature timestamp is more than 5 minutes in the future")]
    TooNew,
    #[error("no signature matches")]
    NoMatch,
}

#[derive(Debug, thiserror::Error)]
#[error("the webhook secret is not a base64 whsec_ key")]
pub struct SecretError;

/// The signing key.
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let b64 = secret.trim();
        let b64 = b64.strip_prefix("whsec_").unwrap_or(b64);
        let key = STANDARD.decode(b64).map_err(|_| SecretError)?;
        if key.is_empty() {
            return Err(SecretError);
        }
        Ok(Self(key))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `v1,<base64>` signature of a delivery (what Svix puts in `svix-signature`).
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp, body)))
    }
}

/// The three Svix headers of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    pub id: String,
    /// As received: the signed content uses these exact characters.
    pub timestamp_raw: String,
    pub timestamp: i64,
    pub signatures: String,
}

fn header<'a>(h: &'a HeaderMap, svix: &'static str, unbranded: &'static str) -> Result<&'a str, SignatureError> {
    let v = h.get(svix).or_else(|| h.get(unbranded)).ok_or(SignatureError::MissingHeader(svix))?;
    v.to_str().map_err(|_| SignatureError::InvalidHeader(svix))
}

impl Headers {
    pub fn from_map(h: &HeaderMap) -> Result<Self, SignatureError> {
        let id = header(h, "svix-id", "webhook-id")?.trim();
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SignatureError::InvalidHeader("svix-id"));
        }
        let ts_raw = header(h, "svix-timestamp", "webhook-timestamp")?;
        // Canonical decimal only: the signature covers the header as sent while Svix's libraries
        // sign the number they read, so "0123" must not pass for "123" (it would be a signature
        // the vendor's verifier refuses).
        let timestamp = ts_raw
            .parse::<i64>()
            .ok()
            .filter(|t| ts_raw.bytes().all(|b| b.is_ascii_digit()) && *ts_raw == t.to_string())
            .ok_or(SignatureError::InvalidHeader("svix-timestamp"))?;
        let signatures = header(h, "svix-signature", "webhook-signature")?;
        Ok(Self {
            id: id.to_string(),
            timestamp_raw: ts_raw.to_string(),
            timestamp,
            signatures: signatures.to_string(),
        })
    }

    /// Rejects timestamps more than 5 minutes from `now` (replays of old deliveries).
    pub fn check_timestamp(&self, now: i64) -> Result<(), SignatureError> {
        if self.timestamp < now.saturating_sub(TOLERANCE_SECS) {
            Err(SignatureError::TooOld)
        } else if self.timestamp > now.saturating_add(TOLERANCE_SECS) {
            Err(SignatureError::TooNew)
        } else {
            Ok(())
        }
    }

    /// Accepts if any `v1` signature in the header matches the body under `secret`.
    pub fn verify(&self, secret: &Secret, body: &[u8]) -> Result<(), SignatureError> {
        let expected = secret.mac(&self.id, &self.timestamp_raw, body);
        let mut matched = subtle::Choice::from(0u8);
        for entry in self.signatures.split(' ').filter(|e| !e.is_empty()).take(MAX_SIGNATURES) {
            let Some(("v1", sig)) = entry.split_once(',') else { continue };
            let Ok(sig) = STANDARD.decode(sig) else { continue };
            if sig.len() == expected.len() {
                matched |= sig.as_slice().ct_eq(&expected);
            }
        }
        if bool::from(matched) { Ok(()) } else { Err(SignatureError::NoMatch) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Svix's published vectors: svix-webhooks' Rust library tests and the verification docs.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const PAYLOAD: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    fn headers(id: &str, ts: i64, sig: &str, unbranded: bool) -> HeaderMap {
        let p = if unbranded { "webhook" } else { "svix" };
        let mut h = HeaderMap::new();
        h.insert(http::HeaderName::from_bytes(format!("{p}-id").as_bytes()).unwrap(), id.parse().unwrap());
        h.insert(http::HeaderName::from_bytes(format!("{p}-timestamp").as_bytes()).unwrap(), ts.into());
        h.insert(http::HeaderName::from_bytes(format!("{p}-signature").as_bytes()).unwrap(), sig.parse().unwrap());
        h
    }

    fn verify(h: &HeaderMap, body: &[u8], now: i64) -> Result<(), SignatureError> {
        let parsed = Headers::from_map(h)?;
        parsed.check_timestamp(now)?;
        parsed.verify(&Secret::parse(SECRET).unwrap(), body)
    }

    #[test]
    fn published_vectors() {
        let s = Secret::parse(SECRET).unwrap();
        assert_eq!(s.sign(MSG_ID, "1649367553", PAYLOAD), "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        let docs = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            docs.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // The docs' delivery verifies at its own time, under both header spellings.
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            false,
        );
        let parsed = Headers::from_map(&h).unwrap();
        parsed.check_timestamp(1614265330 + 10).unwrap();
        parsed.verify(&docs, br#"{"test": 2432232314}"#).unwrap();
    }

    #[test]
    fn verifies_under_both_header_names() {
        let now = 1_800_000_000;
        let sig = Secret::parse(SECRET).unwrap().sign(MSG_ID, &now.to_string(), PAYLOAD);
        for unbranded in [false, true] {
            verify(&headers(MSG_ID, now, &sig, unbranded), PAYLOAD, now).unwrap();
        }
    }

    #[test]
    fn rejects_a_wrong_signature() {
        let now = 1_800_000_000;
        let h = headers(MSG_ID, now, "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=", false);
        assert_eq!(verify(&h, PAYLOAD, now), Err(SignatureError::NoMatch));
    }

    #[test]
    fn rejects_partial_signatures() {
        let now = 1_800_000_000;
        let sig = Secret::parse(SECRET).unwrap().sign(MSG_ID, &now.to_string(), PAYLOAD);
        for partial in ["v1,", &sig[..8], "v1", "v2,abc", &sig[..sig.len() - 4]] {
            assert_eq!(
                verify(&headers(MSG_ID, now, partial, false), PAYLOAD, now),
                Err(SignatureError::NoMatch),
                "{partial}"
            );
        }
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let now = 1_800_000_000;
        let sig = Secret::parse(SECRET).unwrap().sign(MSG_ID, &now.to_string(), PAYLOAD);
        let multi = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= {sig} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
        );
        verify(&headers(MSG_ID, now, &multi, false), PAYLOAD, now).unwrap();
        let without = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=";
        assert_eq!(verify(&headers(MSG_ID, now, without, false), PAYLOAD, now), Err(SignatureError::NoMatch));
    }

    #[test]
    fn timestamp_tolerance_and_binding() {
        let now = 1_800_000_000;
        let s = Secret::parse(SECRET).unwrap();
        for (ts, err) in
            [(now - TOLERANCE_SECS - 1, SignatureError::TooOld), (now + TOLERANCE_SECS + 1, SignatureError::TooNew)]
        {
            let sig = s.sign(MSG_ID, &ts.to_string(), PAYLOAD);
            assert_eq!(verify(&headers(MSG_ID, ts, &sig, false), PAYLOAD, now), Err(err));
        }
        // The timestamp is signed: changing it breaks the signature.
        let sig = s.sign(MSG_ID, &now.to_string(), PAYLOAD);
        assert_eq!(verify(&headers(MSG_ID, now + 1, &sig, false), PAYLOAD, now), Err(SignatureError::NoMatch));
        // So is the id, and every body byte.
        assert_eq!(verify(&headers("msg_other", now, &sig, false), PAYLOAD, now), Err(SignatureError::NoMatch));
        assert_eq!(verify(&headers(MSG_ID, now, &sig, false), b"{\"email\":\"x\"}", now), Err(SignatureError::NoMatch));
    }

    #[test]
    fn missing_and_malformed_headers() {
        let now = 1_800_000_000;
        let sig = Secret::parse(SECRET).unwrap().sign(MSG_ID, &now.to_string(), PAYLOAD);
        for unbranded in [false, true] {
            let p = if unbranded { "webhook" } else { "svix" };
            for (name, missing) in [("id", "svix-id"), ("timestamp", "svix-timestamp"), ("signature", "svix-signature")]
            {
                let mut h = headers(MSG_ID, now, &sig, unbranded);
                h.remove(format!("{p}-{name}").as_str());
                assert_eq!(verify(&h, PAYLOAD, now), Err(SignatureError::MissingHeader(missing)));
            }
        }
        let mut h = headers(MSG_ID, now, &sig, false);
        for bad in ["-1", "1.5", "+1800000000", "soon", "", "01800000000", "00"] {
            h.insert("svix-timestamp", bad.parse().unwrap());
            assert_eq!(verify(&h, PAYLOAD, now), Err(SignatureError::InvalidHeader("svix-timestamp")), "{bad}");
        }
        let mut h = headers(MSG_ID, now, &sig, false);
        h.insert("svix-id", "a b".parse().unwrap());
        assert_eq!(verify(&h, PAYLOAD, now), Err(SignatureError::InvalidHeader("svix-id")));
    }

    #[test]
    fn secrets_parse() {
        assert!(Secret::parse("whsec_not base64!").is_err());
        assert!(Secret::parse("whsec_").is_err());
        assert!(Secret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_ok(), "prefix is optional, as in Svix");
    }
}
