//! Clerk stand-ins for tests: real RSA keys (made once per test binary), session tokens signed
//! with them, a fake Clerk Backend API on 127.0.0.1 (its JWKS, which counts its fetches, and the
//! users' metadata endpoint, which records what it is sent), and Svix-signed deliveries.

use axum::extract::Path;
use axum::routing::patch;
use axum::{Json, Router, extract::State, http::HeaderMap, http::StatusCode, response::IntoResponse, routing::get};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use std::collections::HashMap;
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

/// A fake Clerk on 127.0.0.1: the Backend API's `GET /v1/jwks` (Bearer secret key required),
/// `GET /.well-known/jwks.json` (public), and `PATCH /v1/users/{id}/metadata` over users added with
/// [`JwksServer::add_user`] (Bearer secret key required; deep-merges `public_metadata`, moves
/// `updated_at`, answers the user object as Clerk does). Counts the key sets it served and records
/// every metadata request; can be told to fail them.
#[derive(Clone)]
pub struct JwksServer {
    pub url: String,
    jwks: Arc<RwLock<Value>>,
    fetches: Arc<AtomicU64>,
    api: Arc<RwLock<BackendState>>,
}

/// Users and recorded metadata requests of the fake Backend API.
#[derive(Default)]
struct BackendState {
    users: HashMap<String, Value>,
    requests: Vec<MetadataRequest>,
    /// Answer every metadata request with this status (a Clerk outage or error).
    fail_with: Option<u16>,
}

/// A `PATCH /v1/users/{id}/metadata` as the fake received it.
#[derive(Debug, Clone)]
pub struct MetadataRequest {
    pub user_id: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Clone)]
struct JwksState {
    jwks: Arc<RwLock<Value>>,
    fetches: Arc<AtomicU64>,
    api: Arc<RwLock<BackendState>>,
}

fn bearer_ok(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {SECRET_KEY}"))
}

fn clerk_error(status: StatusCode, code: &str) -> axum::response::Response {
    (status, Json(json!({"errors": [{"message": code, "long_message": code, "code": code}]}))).into_response()
}

/// Deep merge as Clerk does: objects merge key by key, `null` removes a key, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn update_metadata(
    State(s): State<JwksState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut api = s.api.write().unwrap();
    api.requests.push(MetadataRequest {
        user_id: id.clone(),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        body: body.clone(),
    });
    if let Some(status) = api.fail_with {
        return clerk_error(StatusCode::from_u16(status).unwrap(), "fake_failure");
    }
    if !bearer_ok(&headers) {
        return clerk_error(StatusCode::UNAUTHORIZED, "authentication_invalid");
    }
    let Some(user) = api.users.get_mut(&id) else {
        return clerk_error(StatusCode::NOT_FOUND, "resource_not_found");
    };
    for field in ["public_metadata", "private_metadata", "unsafe_metadata"] {
        if let Some(p) = body.get(field) {
            merge(&mut user[field], p);
        }
    }
    let updated = now_ms().max(user["updated_at"].as_i64().unwrap_or(0) + 1);
    user["updated_at"] = json!(updated);
    Json(user.clone()).into_response()
}

async fn backend_jwks(State(s): State<JwksState>, headers: HeaderMap) -> axum::response::Response {
    if !bearer_ok(&headers) {
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
        let api = Arc::new(RwLock::new(BackendState::default()));
        let app = Router::new()
            .route("/v1/jwks", get(backend_jwks))
            .route("/.well-known/jwks.json", get(public_jwks))
            .route("/v1/users/{id}/metadata", patch(update_metadata))
            .with_state(JwksState { jwks: jwks.clone(), fetches: fetches.clone(), api: api.clone() });
        let addr = crate::serve(app).await;
        let server = Self { url: format!("http://{addr}"), jwks, fetches, api };
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

    /// A user Clerk knows, shaped like Clerk's user object (as [`user_event`]'s `data`).
    pub fn add_user(&self, clerk_id: &str, role: &str, tier: &str, updated_at: i64) -> Value {
        let user = user_event("user.created", clerk_id, updated_at, "Test", role, tier)["data"].clone();
        self.api.write().unwrap().users.insert(clerk_id.to_string(), user.clone());
        user
    }

    /// The user as Clerk holds them now.
    pub fn user(&self, clerk_id: &str) -> Option<Value> {
        self.api.read().unwrap().users.get(clerk_id).cloned()
    }

    /// The `user.updated` event Clerk would send for the user as it holds them now.
    pub fn updated_event(&self, clerk_id: &str) -> Value {
        let data = self.user(clerk_id).expect("a user the fake Clerk knows");
        json!({"type": "user.updated", "object": "event", "instance_id": "ins_test", "data": data})
    }

    /// Metadata requests received so far.
    pub fn metadata_requests(&self) -> Vec<MetadataRequest> {
        self.api.read().unwrap().requests.clone()
    }

    /// Answer every metadata request with `status` (None: behave).
    pub fn fail_metadata_with(&self, status: Option<u16>) {
        self.api.write().unwrap().fail_with = status;
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

    /// Posts this delivery, signed with `secret`, to the webhook behind `base` (a gateway's stage
    /// URL), as Svix does.
    pub async fn post(&self, base: &str, secret: &str) -> reqwest::Response {
        self.post_signed(base, &self.signature(secret)).await
    }

    /// Posts this delivery with the given `svix-signature` (one made elsewhere, e.g. by the vendor's
    /// signer).
    pub async fn post_signed(&self, base: &str, signature: &str) -> reqwest::Response {
        crate::http()
            .post(format!("{base}{}", webhook::PATH))
            .header("content-type", "application/json")
            .header("svix-id", &self.id)
            .header("svix-timestamp", self.timestamp.to_string())
            .header("svix-signature", signature)
            .body(self.body.clone())
            .send()
            .await
            .expect("the gateway answers")
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

/// Runs `script` of tests/clerk (the vendors' code, pinned in its package-lock.json: Clerk's
/// verifiers, Svix's Standard Webhooks library) under Node.js with `input` on stdin, and returns
/// the JSON it writes.
pub fn run_vendor_script(script: &str, input: &Value) -> Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clerk");
    assert!(
        dir.join("node_modules/@clerk/backend/package.json").is_file()
            && dir.join("node_modules/standardwebhooks/package.json").is_file(),
        "the vendors' libraries are not installed in {}: run `npm ci --prefix tests/clerk` (scripts/test.sh does)",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (Node.js is a prerequisite of make test)");
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write the input");
    let out = child.wait_with_output().expect("node finishes");
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} answers JSON: {e}"))
}
