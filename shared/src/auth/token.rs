//! Clerk session-token verification: the pure part (no I/O), so every rule is unit-tested.
//!
//! The contract: accept only what Clerk's own verifier (`@clerk/backend` `verifyToken`, as its
//! `authenticateRequest` calls it for a session token) accepts with the same issuer and
//! authorized parties; `tests/clerk_differential.rs` runs both on a generated corpus. Order:
//! size bound -> shape -> header (`alg` exactly RS256, `typ` absent or `JWT`, no machine-token
//! `cat`, no `crit`; read here before any library touches the token) -> key chosen by the caller
//! from `kid` -> signature -> claims (`exp`, `nbf`, `iat` with skew; `iss` equal to the issuer;
//! `azp` exactly one of the authorized parties when configured; `sub` a user, not a machine;
//! `sts` not `pending`). Nothing from the payload is trusted before the signature is checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::error::AuthError;

/// Clerk session tokens are ~1 KB; cookies cap at 4 KB. Anything past this is not parsed at all.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Bound on the `kid` header and the `sub` claim (used as cache and table keys).
const MAX_ID_LEN: usize = 128;
/// The only `typ` a session token may carry (Clerk's `assertHeaderType`; `at+jwt` is an OAuth
/// access token signed by the same instance keys). Clerk's session tokens may also omit it.
const SESSION_TYP: &str = "JWT";
/// Clerk's JWT categories (`cat` header) that a session token may carry: session and "ignore";
/// any other (e.g. the M2M category) is refused, as `authenticateRequest` does.
const SESSION_CATEGORIES: [&str; 2] = ["cl_B7d4PD111AAA", "cl_I7d4PD111III"];
/// Subject prefix of Clerk machine (M2M) tokens; Clerk refuses them as session tokens.
const MACHINE_SUBJECT_PREFIX: &str = "mch_";

/// The token split and its header read, signature not yet checked.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    signing_input: &'a str,
    payload: &'a str,
    signature: Vec<u8>,
    signature_b64: &'a str,
    /// The `kid` header, when present.
    pub kid: Option<String>,
}

/// The rules a token is checked against.
#[derive(Debug, Clone)]
pub struct Rules {
    pub issuer: String,
    pub authorized_parties: Vec<String>,
    pub clock_skew_secs: i64,
}

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// Clerk user id (`sub`).
    pub sub: String,
    pub session_id: Option<String>,
    pub azp: Option<String>,
    /// From a custom session-token claim, if the instance adds one; used only to create a user
    /// the webhook has not delivered yet.
    pub email: Option<String>,
    pub exp: i64,
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Splits the token and reads its header. Rejects, before any cryptography: oversized input,
/// anything but three non-empty base64url parts, a header that is not a JSON object, any `alg`
/// but RS256 (so `none` and HS* never reach a verifier), a `typ` other than `JWT` or a `cat`
/// other than a session's (OAuth access and M2M tokens), and `crit` extensions.
pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge { max: MAX_TOKEN_BYTES });
    }
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    if !token.bytes().all(|b| is_b64url(b) || b == b'.') {
        return Err(AuthError::Malformed("characters outside base64url"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("a JWT has exactly three parts"));
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(AuthError::Malformed("a JWT part is empty"));
    }
    let header_json = URL_SAFE_NO_PAD.decode(header).map_err(|_| AuthError::Malformed("header is not base64url"))?;
    let fields: Map<String, Value> =
        serde_json::from_slice(&header_json).map_err(|_| AuthError::Malformed("header is not a JSON object"))?;
    match fields.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(_) => return Err(AuthError::UnsupportedAlgorithm),
        None => return Err(AuthError::Malformed("header has no alg")),
    }
    match fields.get("typ") {
        None => {}
        Some(Value::String(t)) if t == SESSION_TYP => {}
        Some(_) => return Err(AuthError::NotASessionToken),
    }
    match fields.get("cat") {
        None => {}
        Some(Value::String(c)) if SESSION_CATEGORIES.contains(&c.as_str()) => {}
        Some(_) => return Err(AuthError::NotASessionToken),
    }
    if fields.contains_key("crit") {
        return Err(AuthError::Malformed("critical header extensions are not supported"));
    }
    let kid = match fields.get("kid") {
        None => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_ID_LEN => Some(k.clone()),
        Some(_) => return Err(AuthError::Malformed("kid is not a short string")),
    };
    let signature_bytes =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| AuthError::Malformed("signature is not base64url"))?;
    Ok(UnverifiedToken {
        signing_input: &token[..header.len() + 1 + payload.len()],
        payload,
        signature: signature_bytes,
        signature_b64: signature,
        kid,
    })
}

impl UnverifiedToken<'_> {
    /// Checks the RS256 signature with `key`, then the claims against `rules` at time `now`
    /// (seconds since the epoch).
    pub fn verify(&self, key: &DecodingKey, rules: &Rules, now: i64) -> Result<Claims, AuthError> {
        // An RS256 signature is as long as the modulus (>= 2048 bits); a truncated one fails here.
        if self.signature.len() < 256 {
            return Err(AuthError::InvalidSignature);
        }
        match jsonwebtoken::crypto::verify(self.signature_b64, self.signing_input.as_bytes(), key, Algorithm::RS256) {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::InvalidSignature),
            Err(e) => {
                // The key itself is unusable for RS256 (e.g. too short, or not RSA).
                tracing::warn!(error = %e, "verification key rejected by RS256");
                return Err(AuthError::InvalidSignature);
            }
        }
        let payload =
            URL_SAFE_NO_PAD.decode(self.payload).map_err(|_| AuthError::Malformed("payload is not base64url"))?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|_| AuthError::Malformed("payload is not a JSON object"))?;
        check_claims(&claims, rules, now)
    }
}

fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            // NumericDate may have a fraction; whole seconds are enough at a 5 s skew.
            Some(f) if f.is_finite() => Ok(Some(f.floor() as i64)),
            _ => Err(AuthError::Malformed(match name {
                "exp" => "exp is not a number",
                "nbf" => "nbf is not a number",
                _ => "iat is not a number",
            })),
        },
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn check_claims(claims: &Map<String, Value>, rules: &Rules, now: i64) -> Result<Claims, AuthError> {
    let skew = rules.clock_skew_secs;
    let exp = numeric_date(claims, "exp")?.ok_or(AuthError::Malformed("exp is required"))?;
    if now >= exp.saturating_add(skew) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(skew)
    {
        return Err(AuthError::NotYetValid);
    }
    if let Some(iat) = numeric_date(claims, "iat")?
        && iat > now.saturating_add(skew)
    {
        return Err(AuthError::NotYetValid);
    }
    if claims.get("iss").and_then(Value::as_str) != Some(rules.issuer.as_str()) {
        return Err(AuthError::InvalidIssuer);
    }
    let azp = string_claim(claims, "azp");
    if !rules.authorized_parties.is_empty() {
        // Exactly as listed (Clerk compares the strings as they are): no trailing-slash leniency.
        match &azp {
            Some(a) if rules.authorized_parties.iter().any(|p| p == a) => {}
            _ => return Err(AuthError::InvalidAuthorizedParty),
        }
    }
    let sub = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| b.is_ascii_graphic()) => {
            s.clone()
        }
        _ => return Err(AuthError::InvalidSubject),
    };
    if sub.starts_with(MACHINE_SUBJECT_PREFIX) {
        return Err(AuthError::NotASessionToken);
    }
    // A session with pending tasks (e.g. choosing an organization) is signed out for Clerk's
    // `auth()` by default; only an active session (or a token predating `sts`) is let in.
    match claims.get("sts") {
        None => {}
        Some(Value::String(s)) if s == "active" => {}
        Some(_) => return Err(AuthError::SessionNotActive),
    }
    Ok(Claims {
        sub,
        session_id: string_claim(claims, "sid"),
        azp,
        email: string_claim(claims, "email").filter(|e| e.len() <= 320 && e.contains('@')),
        exp,
    })
}

/// Where a request's token came from: the cookie is sent by the browser on its own, so only a
/// cookie-borne token needs the origin check (`super::origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    Cookie,
}

/// The token of a request: `Authorization: Bearer <jwt>`, otherwise the `__session` cookie.
/// Two different `__session` values (a sibling subdomain can set its own) are ambiguous and
/// refused rather than picking one; the same value sent twice is one token.
pub fn token_from_headers(headers: &http::HeaderMap) -> Result<(&str, TokenSource), AuthError> {
    let mut auth = headers.get_all(http::header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(AuthError::Malformed("more than one Authorization header"));
        }
        let value = value.to_str().map_err(|_| AuthError::Malformed("Authorization header is not ASCII"))?;
        if let Some((scheme, token)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            let token = token.trim();
            return if token.is_empty() { Err(AuthError::MissingToken) } else { Ok((token, TokenSource::Bearer)) };
        }
        // Another scheme (Basic, ...): fall through to the cookie, as a browser may send both.
    }
    let mut found: Option<&str> = None;
    for value in headers.get_all(http::header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, v)) = pair.trim().split_once('=')
                && name.trim() == "__session"
            {
                let v = v.trim().trim_matches('"');
                if v.is_empty() {
                    continue;
                }
                match found {
                    Some(first) if first != v => return Err(AuthError::AmbiguousSessionCookie),
                    _ => found = Some(v),
                }
            }
        }
    }
    found.map(|t| (t, TokenSource::Cookie)).ok_or(AuthError::MissingToken)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use serde_json::json;
    use std::sync::OnceLock;

    pub(crate) struct Keys {
        pub encoding: EncodingKey,
        pub decoding: DecodingKey,
        pub public_pem: String,
    }

    /// Two 2048-bit key pairs, generated once per test binary.
    pub(crate) fn keys() -> &'static [Keys; 2] {
        static K: OnceLock<[Keys; 2]> = OnceLock::new();
        K.get_or_init(|| {
            let make = || {
                let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
                let pem = private.to_pkcs8_pem(LineEnding::LF).expect("pem");
                let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF).expect("public pem");
                Keys {
                    encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key"),
                    decoding: DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("decoding key"),
                    public_pem,
                }
            };
            [make(), make()]
        })
    }

    pub(crate) const ISS: &str = "https://clerk.baatcheet.test";
    const NOW: i64 = 1_800_000_000;

    fn rules() -> Rules {
        Rules { issuer: ISS.into(), authorized_parties: vec!["https://app.baatcheet.test".into()], clock_skew_secs: 5 }
    }

    fn claims() -> Value {
        json!({
            "sub": "user_2abc", "iss": ISS, "azp": "https://app.baatcheet.test", "sid": "sess_1",
            "exp": NOW + 60, "iat": NOW - 1, "nbf": NOW - 11, "email": "a@b.example",
        })
    }

    fn sign(claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, claims, &keys()[0].encoding).unwrap()
    }

    fn check(token: &str) -> Result<Claims, AuthError> {
        parse(token)?.verify(&keys()[0].decoding, &rules(), NOW)
    }

    fn reason(token: &str) -> &'static str {
        check(token).expect_err("token must be rejected").reason().expect("a client-side reason")
    }

    fn b64(v: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn with(patch: Value) -> Value {
        let mut c = claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn accepts_a_valid_token() {
        let c = check(&sign(&claims())).unwrap();
        assert_eq!(c.sub, "user_2abc");
        assert_eq!(c.session_id.as_deref(), Some("sess_1"));
        assert_eq!(c.email.as_deref(), Some("a@b.example"));
        assert_eq!(parse(&sign(&claims())).unwrap().kid.as_deref(), Some("k1"));
    }

    #[test]
    fn alg_none_is_rejected_before_any_verifier() {
        let header = b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let payload = b64(claims().to_string().as_bytes());
        assert_eq!(reason(&format!("{header}.{payload}.")), "malformed"); // empty signature part
        assert_eq!(reason(&format!("{header}.{payload}.AAAA")), "unsupported_algorithm");
        let header = b64(br#"{"alg":"None"}"#);
        assert_eq!(reason(&format!("{header}.{payload}.AAAA")), "unsupported_algorithm");
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_rejected() {
        // The classic key-confusion attack: HMAC keyed with the RSA public key the server trusts.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let key = EncodingKey::from_secret(keys()[0].public_pem.as_bytes());
        let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
        assert_eq!(reason(&token), "unsupported_algorithm");
        // Same HMAC signature under a header that claims RS256: the RSA check fails.
        let forged_header = b64(br#"{"alg":"RS256","kid":"k1"}"#);
        let mut parts = token.split('.');
        let (_, payload, sig) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        assert_eq!(reason(&format!("{forged_header}.{payload}.{sig}")), "invalid_signature");
    }

    #[test]
    fn other_algorithms_are_rejected() {
        for alg in ["RS384", "RS512", "PS256", "ES256", "HS512", "EdDSA"] {
            let header = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
            let payload = b64(claims().to_string().as_bytes());
            assert_eq!(reason(&format!("{header}.{payload}.AAAA")), "unsupported_algorithm", "{alg}");
        }
        let header = b64(br#"{"alg":["RS256"]}"#);
        assert_eq!(reason(&format!("{header}.{}.AAAA", b64(b"{}"))), "unsupported_algorithm");
    }

    #[test]
    fn expired_and_skew() {
        assert_eq!(reason(&sign(&with(json!({"exp": NOW - 6})))), "expired");
        assert_eq!(reason(&sign(&with(json!({"exp": NOW - 5})))), "expired");
        assert!(check(&sign(&with(json!({"exp": NOW - 4})))).is_ok(), "within the 5 s skew");
        assert_eq!(reason(&sign(&with(json!({"exp": null})))), "malformed");
        assert_eq!(reason(&sign(&with(json!({"exp": "soon"})))), "malformed");
    }

    #[test]
    fn nbf_and_iat_in_the_future_beyond_skew() {
        assert_eq!(reason(&sign(&with(json!({"nbf": NOW + 6})))), "not_yet_valid");
        assert!(check(&sign(&with(json!({"nbf": NOW + 5})))).is_ok());
        assert_eq!(reason(&sign(&with(json!({"iat": NOW + 60})))), "not_yet_valid");
        assert!(check(&sign(&with(json!({"iat": NOW + 5})))).is_ok());
        assert!(check(&sign(&with(json!({"iat": null, "nbf": null})))).is_ok(), "optional as in Clerk");
    }

    #[test]
    fn wrong_or_missing_issuer() {
        assert_eq!(reason(&sign(&with(json!({"iss": "https://evil.clerk.accounts.dev"})))), "invalid_issuer");
        assert_eq!(reason(&sign(&with(json!({"iss": format!("{ISS}/")})))), "invalid_issuer");
        assert_eq!(reason(&sign(&with(json!({"iss": null})))), "invalid_issuer");
    }

    #[test]
    fn wrong_or_missing_azp() {
        assert_eq!(reason(&sign(&with(json!({"azp": "https://evil.example"})))), "invalid_authorized_party");
        assert_eq!(reason(&sign(&with(json!({"azp": null})))), "invalid_authorized_party");
        // Compared as Clerk compares: exactly, so a trailing slash or another case is another party.
        assert_eq!(reason(&sign(&with(json!({"azp": "https://app.baatcheet.test/"})))), "invalid_authorized_party");
        assert_eq!(reason(&sign(&with(json!({"azp": "https://APP.baatcheet.test"})))), "invalid_authorized_party");
        assert_eq!(reason(&sign(&with(json!({"azp": ["https://app.baatcheet.test"]})))), "invalid_authorized_party");
        let open = Rules { authorized_parties: vec![], ..rules() };
        let t = sign(&with(json!({"azp": "https://anything.example"})));
        assert!(parse(&t).unwrap().verify(&keys()[0].decoding, &open, NOW).is_ok());
    }

    /// Signs `claims` under a hand-written header (fields jsonwebtoken's Header cannot carry).
    fn sign_with_header(header: Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &keys()[0].encoding, Algorithm::RS256).unwrap();
        format!("{input}.{sig}")
    }

    #[test]
    fn only_session_tokens_by_typ_and_category() {
        let ok = |h: Value| check(&sign_with_header(h, &claims())).map(|_| ());
        assert!(ok(json!({"alg": "RS256", "kid": "k1", "typ": "JWT"})).is_ok());
        assert!(ok(json!({"alg": "RS256", "kid": "k1"})).is_ok(), "typ is optional, as in Clerk");
        assert!(ok(json!({"alg": "RS256", "typ": "JWT", "cat": "cl_B7d4PD111AAA"})).is_ok());
        for typ in [json!("at+jwt"), json!("application/at+jwt"), json!("jwt"), json!("JWS"), json!(""), json!(1)] {
            let t = sign_with_header(json!({"alg": "RS256", "kid": "k1", "typ": typ}), &claims());
            assert_eq!(reason(&t), "not_a_session_token", "typ {typ}");
        }
        for cat in [json!("cl_B7d4PD333AAA"), json!("cl_other"), json!(null), json!(["cl_B7d4PD111AAA"])] {
            let t = sign_with_header(json!({"alg": "RS256", "typ": "JWT", "cat": cat}), &claims());
            assert_eq!(reason(&t), "not_a_session_token", "cat {cat}");
        }
        // A machine (M2M) subject is not a user, whatever the header says.
        assert_eq!(reason(&sign(&with(json!({"sub": "mch_2xyz"})))), "not_a_session_token");
    }

    #[test]
    fn pending_sessions_are_refused() {
        assert!(check(&sign(&with(json!({"sts": "active"})))).is_ok());
        assert_eq!(reason(&sign(&with(json!({"sts": "pending"})))), "session_not_active");
        assert_eq!(reason(&sign(&with(json!({"sts": 1})))), "session_not_active");
    }

    #[test]
    fn subject_is_required() {
        assert_eq!(reason(&sign(&with(json!({"sub": null})))), "invalid_subject");
        assert_eq!(reason(&sign(&with(json!({"sub": ""})))), "invalid_subject");
        assert_eq!(reason(&sign(&with(json!({"sub": 42})))), "invalid_subject");
        assert_eq!(reason(&sign(&with(json!({"sub": "user 1"})))), "invalid_subject");
    }

    #[test]
    fn signature_from_another_key_is_rejected() {
        let t = sign(&claims());
        let other = parse(&t).unwrap().verify(&keys()[1].decoding, &rules(), NOW).unwrap_err();
        assert_eq!(other.reason(), Some("invalid_signature"));
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let t = sign(&claims());
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = b64(with(json!({"sub": "user_admin"})).to_string().as_bytes());
        parts[1] = &forged;
        assert_eq!(reason(&parts.join(".")), "invalid_signature");
        // A tampered header (another kid) also breaks the signature.
        let header = b64(br#"{"alg":"RS256","kid":"k2"}"#);
        let t2 = format!("{header}.{}.{}", t.split('.').nth(1).unwrap(), t.split('.').nth(2).unwrap());
        assert_eq!(reason(&t2), "invalid_signature");
    }

    #[test]
    fn truncated_tokens_are_rejected() {
        let t = sign(&claims());
        let last_dot = t.rfind('.').unwrap();
        assert_eq!(reason(&t[..last_dot]), "malformed"); // two parts
        assert_eq!(reason(&t[..last_dot + 1]), "malformed"); // empty signature
        assert_eq!(reason(&t[..t.find('.').unwrap()]), "malformed"); // header only
        assert_eq!(reason(&t[..t.len() - 6]), "invalid_signature"); // signature cut short (still base64url)
        assert_eq!(reason(&t[..t.len() - 1]), "malformed"); // no longer valid base64url
        assert_eq!(parse("").unwrap_err().reason(), Some("missing_token"));
    }

    #[test]
    fn oversized_tokens_are_rejected_before_parsing() {
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(reason(&huge), "token_too_large");
        let padded = sign(&with(json!({"pad": "x".repeat(MAX_TOKEN_BYTES)})));
        assert_eq!(reason(&padded), "token_too_large");
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in ["abc", "a.b.c.d", "..", "a..c", "not a jwt at all", "e30.e30.e30=", "eyJ.eyJ.sig\n"] {
            assert_eq!(reason(bad), "malformed", "{bad:?}");
        }
        let header = b64(b"[1,2]");
        assert_eq!(reason(&format!("{header}.e30.AAAA")), "malformed");
        let header = b64(br#"{"alg":"RS256","crit":["exp"]}"#);
        assert_eq!(reason(&format!("{header}.e30.AAAA")), "malformed");
        let header = b64(br#"{"alg":"RS256","kid":7}"#);
        assert_eq!(reason(&format!("{header}.e30.AAAA")), "malformed");
    }

    #[test]
    fn signed_non_json_payload_is_malformed() {
        let header = b64(br#"{"alg":"RS256"}"#);
        let payload = b64(b"not json");
        let input = format!("{header}.{payload}");
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &keys()[0].encoding, Algorithm::RS256).unwrap();
        assert_eq!(reason(&format!("{input}.{sig}")), "malformed");
    }

    #[test]
    fn token_comes_from_bearer_then_cookie() {
        use TokenSource::{Bearer, Cookie};
        let mut h = http::HeaderMap::new();
        assert!(matches!(token_from_headers(&h), Err(AuthError::MissingToken)));
        h.insert("cookie", "theme=dark; __session=cookie.tok.en; other=1".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap(), ("cookie.tok.en", Cookie));
        h.insert("authorization", "Bearer header.tok.en".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap(), ("header.tok.en", Bearer));
        h.insert("authorization", "bearer   spaced.tok.en ".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap(), ("spaced.tok.en", Bearer));
        h.insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap(), ("cookie.tok.en", Cookie));
        h.append("authorization", "Bearer x.y.z".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap_err().reason(), Some("malformed"));
        let mut h = http::HeaderMap::new();
        h.insert("cookie", "__session_abc=x.y.z; __sessionx=1".parse().unwrap());
        assert!(matches!(token_from_headers(&h), Err(AuthError::MissingToken)));
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert!(matches!(token_from_headers(&h), Err(AuthError::MissingToken)));
    }

    #[test]
    fn two_different_session_cookies_are_ambiguous() {
        let mut h = http::HeaderMap::new();
        h.insert("cookie", "__session=a.b.c; theme=dark; __session=d.e.f".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap_err().reason(), Some("ambiguous_session_cookie"));
        // Split over two Cookie headers (HTTP/2 sends one per cookie).
        let mut h = http::HeaderMap::new();
        h.append("cookie", "__session=a.b.c".parse().unwrap());
        h.append("cookie", "__session=d.e.f".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap_err().reason(), Some("ambiguous_session_cookie"));
        // The same value twice is one token; an empty one is no token.
        let mut h = http::HeaderMap::new();
        h.insert("cookie", "__session=a.b.c; __session=\"a.b.c\"; __session=".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap(), ("a.b.c", TokenSource::Cookie));
        // A Bearer token makes the cookies irrelevant.
        let mut h = http::HeaderMap::new();
        h.insert("cookie", "__session=a.b.c; __session=d.e.f".parse().unwrap());
        h.insert("authorization", "Bearer g.h.i".parse().unwrap());
        assert_eq!(token_from_headers(&h).unwrap(), ("g.h.i", TokenSource::Bearer));
    }
}
