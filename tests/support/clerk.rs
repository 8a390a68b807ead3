//! Clerk stand-ins for tests: real RSA keys (made once per test binary), session tokens signed
//! with them, a JWKS server on 127.0.0.1 that counts its fetches, and Svix-signed deliveries.

use axum::{Json, Router, extract::State, http::HeaderMap, http::StatusCode, response::IntoResponse, routing::get};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

pub const ISSUER: &str = "https://clerk.baatcheet.test";
pub const AZP: &str = "https://app.baatcheet.test";
pub const SECRET_KEY: &str = "sk_test_baatcheet_integration";
pub const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub public_pem: String,
    pub jwk: Value,
}

fn make_key(kid: &str) -> TestKey {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
    let public = private.to_public_key();
    let pem = private.to_pkcs8_pem(LineEnding::LF).expect("pem");
    TestKey {
        kid: kid.into(),
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key"),
        public_pem: public.to_public_key_pem(LineEnding::LF).expect("public pem"),
        jwk: json!({
            "kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }),
    }
}

/// Three key pairs, generated once per test binary.
pub fn keys() -> &'static [TestKey; 3] {
    static K: OnceLock<[TestKey; 3]> = OnceLock::new();
    K.get_or_init(|| [make_key("ins_key_a"), make_key("ins_key_b"), make_key("ins_key_c")])
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Claims of a valid Clerk session token for `sub`.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({"sub": sub, "iss": ISSUER, "azp": AZP, "sid": "sess_test", "iat": now, "nbf": now - 10, "exp": now + 60,
           "email": format!("{sub}@example.test")})
}

/// Signs `claims` with `key`, naming `kid` in the header.
pub fn sign_as(key: &TestKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

pub fn token(key: &TestKey, sub: &str) -> String {
    sign_as(key, &key.kid, &claims(sub))
}

pub fn unique_user() -> String {
    format!("user_{}", &uuid::Uuid::new_v4().simple().to_string()[..20])
}

/// A JWKS server on 127.0.0.1: `GET /v1/jwks` (Clerk's Backend API, Bearer secret key
/// required) and `GET /.well-known/jwks.json` (public). Counts the key sets it served.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    jwks: Arc<RwLock<Value>>,
    fetches: Arc<AtomicU64>,
}

#[derive(Clone)]
struct JwksState {
    jwks: Arc<RwLock<Value>>,
    fetches: Arc<AtomicU64>,
}

async fn backend_jwks(State(s): State<JwksState>, headers: HeaderMap) -> axum::response::Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {SECRET_KEY}")) {
        return (StatusCode::UNAUTHORIZED, "bad secret key").into_response();
    }
    s.fetches.fetch_add(1, Ordering::SeqCst);
    Json(s.jwks.read().unwrap().clone()).into_response()
}

async fn public_jwks(State(s): State<JwksState>) -> Json<Value> {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    Json(s.jwks.read().unwrap().clone())
}

impl JwksServer {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let jwks = Arc::new(RwLock::new(Value::Null));
        let fetches = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/v1/jwks", get(backend_jwks))
            .route("/.well-known/jwks.json", get(public_jwks))
            .with_state(JwksState { jwks: jwks.clone(), fetches: fetches.clone() });
        let addr = crate::serve(app).await;
        let server = Self { url: format!("http://{addr}"), jwks, fetches };
        server.set_keys(keys);
        server
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.jwks.write().unwrap() = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
    }

    /// Key sets served so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A Svix-signed delivery.
pub struct Delivery {
    pub id: String,
    pub timestamp: i64,
    pub body: String,
}

impl Delivery {
    pub fn new(body: &Value) -> Self {
        Self { id: format!("msg_{}", uuid::Uuid::new_v4().simple()), timestamp: now(), body: body.to_string() }
    }

    pub fn signature(&self, secret: &str) -> String {
        webhook::svix::Secret::parse(secret).expect("secret").sign(
            &self.id,
            &self.timestamp.to_string(),
            self.body.as_bytes(),
        )
    }

    /// The request Svix would send, signed with `secret`.
    pub fn request(&self, secret: &str) -> http::Request<axum::body::Body> {
        http::Request::post(webhook::PATH)
            .header("content-type", "application/json")
            .header("svix-id", &self.id)
            .header("svix-timestamp", self.timestamp.to_string())
            .header("svix-signature", self.signature(secret))
            .body(axum::body::Body::from(self.body.clone()))
            .expect("request")
    }
}

/// A Clerk `user.created` / `user.updated` event.
pub fn user_event(kind: &str, clerk_id: &str, updated_at: i64, first_name: &str, role: &str, tier: &str) -> Value {
    json!({
        "type": kind, "object": "event", "instance_id": "ins_test",
        "data": {
            "id": clerk_id, "object": "user",
            "email_addresses": [
                {"id": "idn_other", "email_address": format!("other.{clerk_id}@example.test")},
                {"id": "idn_primary", "email_address": format!("{clerk_id}@example.test")}
            ],
            "primary_email_address_id": "idn_primary",
            "first_name": first_name, "last_name": "Test", "image_url": "https://img.clerk.com/test",
            "public_metadata": {"role": role, "tier": tier},
            "created_at": updated_at - 1000, "updated_at": updated_at,
        }
    })
}

pub fn deleted_event(clerk_id: &str) -> Value {
    json!({"type": "user.deleted", "object": "event", "data": {"id": clerk_id, "deleted": true, "object": "user"}})
}
