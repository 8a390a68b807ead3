//! The shared request path, network excluded: each piece alone, then the whole chain a typical
//! authenticated chat POST goes through (request id, security headers, CORS, token verification
//! with a cached key, bounded JSON parsing and validation, handler, response). The rate limiter's
//! DynamoDB call is the one network step and is measured by `make bench-limits`.
//! `cargo bench -p baatcheet-shared --bench request_path`

use axum::{Router, body::Body, middleware, routing::post};
use baatcheet_shared::auth::token::{self, Rules};
use baatcheet_shared::error::{ApiError, FieldError};
use baatcheet_shared::rate_limit::gcra::{self, Rate};
use baatcheet_shared::validation::{Report, ValidJson, Validate, text};
use baatcheet_shared::{config::Config, cors, request_id, security_headers};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use http::Request;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::Deserialize;
use std::sync::Arc;
use tower::ServiceExt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ChatRequest {
    message: String,
    conversation_id: Option<String>,
    model: Option<String>,
    mode: Option<String>,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    stream: Option<bool>,
}

impl Validate for ChatRequest {
    fn validate(&mut self, r: &mut Report) {
        text::content(r, "message", &self.message, 32_000);
        if let Some(t) = self.temperature {
            text::range(r, "temperature", t, 0.0, 2.0);
        }
        if let Some(m) = self.max_tokens {
            text::range(r, "max_tokens", m, 1, 8192);
        }
    }
}

const BODY: &str = r#"{"message":"Assalam o alaikum! Mujhe Rust mein async ke baare mein batayein, aur ek chhota sa example bhi dein.","model":"llama-3.3-70b","mode":"code","temperature":0.4,"max_tokens":1024,"stream":true}"#;

struct Token {
    jwt: String,
    key: DecodingKey,
    rules: Rules,
    now: i64,
}

fn token() -> Token {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
    let encoding = EncodingKey::from_rsa_pem(private.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let issuer = "https://clerk.baatcheet.app";
    let claims = serde_json::json!({
        "sub": "user_2pLXbF0bench000000000000", "iss": issuer, "azp": "https://app.baatcheet.app",
        "iat": now, "nbf": now - 10, "exp": now + 3600,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("ins_bench".into());
    Token {
        jwt: jsonwebtoken::encode(&header, &claims, &encoding).unwrap(),
        key: DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap(),
        rules: Rules {
            issuer: issuer.into(),
            authorized_parties: vec!["https://app.baatcheet.app".into()],
            clock_skew_secs: 5,
        },
        now,
    }
}

fn config() -> Config {
    let vars = [
        ("USERS_TABLE", "u"),
        ("CONVERSATIONS_TABLE", "c"),
        ("RATE_LIMITS_TABLE", "r"),
        ("WEBHOOK_DELIVERIES_TABLE", "w"),
        ("STREAM_LEASES_TABLE", "l"),
        ("SECRET_ID", "s"),
        ("CLERK_ISSUER", "https://clerk.baatcheet.app"),
        ("CORS_ALLOWED_ORIGINS", "https://app.baatcheet.app"),
    ];
    Config::from_lookup(move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())).expect("config")
}

fn bench(c: &mut Criterion) {
    c.bench_function("security_headers_apply", |b| {
        b.iter(|| {
            let mut h = http::HeaderMap::new();
            security_headers::apply(black_box(&mut h));
            h
        })
    });

    let rate = Rate::new(100, 3600).expect("rate");
    let now = 1_764_264_000_000_000u64;
    c.bench_function("gcra_decision", |b| {
        b.iter(|| gcra::decide(black_box(&rate), black_box(Some(now + 5_000_000)), black_box(now), 1))
    });

    c.bench_function("problem_json_render_422", |b| {
        b.iter(|| {
            let e = ApiError::Validation(vec![
                FieldError::new("/message", "must not be empty"),
                FieldError::new("/temperature", "must be between 0 and 2"),
            ]);
            axum::response::IntoResponse::into_response(black_box(e))
        })
    });

    c.bench_function("chat_request_parse_and_validate", |b| {
        b.iter(|| {
            let mut req: ChatRequest = serde_json::from_str(black_box(BODY)).unwrap();
            let mut report = Report::default();
            req.validate(&mut report);
            report
        })
    });

    // The whole chain around a handler, as one request through an axum router.
    let tok = Arc::new(token());
    let cfg = config();
    let auth = tok.clone();
    let app: Router = Router::new()
        .route(
            "/api/v1/chat/completions",
            post(move |headers: http::HeaderMap, ValidJson(req): ValidJson<ChatRequest>| {
                let auth = auth.clone();
                async move {
                    let bearer = headers
                        .get(http::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .ok_or(ApiError::Unauthorized { reason: "missing_token", detail: "No token.".into() })?;
                    let claims = token::parse(bearer)
                        .and_then(|p| p.verify(&auth.key, &auth.rules, auth.now))
                        .map_err(|_| ApiError::Unauthorized { reason: "invalid", detail: "Bad token.".into() })?;
                    Ok::<_, ApiError>(axum::Json(serde_json::json!({"user": claims.sub, "chars": req.message.len()})))
                }
            }),
        )
        .layer(cors::cors_layer(&cfg))
        .layer(middleware::from_fn(security_headers::security_headers_layer))
        .layer(middleware::from_fn(request_id::request_id_layer));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bearer = format!("Bearer {}", tok.jwt);
    c.bench_function("shared_chain_chat_post_network_excluded", |b| {
        b.iter(|| {
            let req = Request::post("/api/v1/chat/completions")
                .header("content-type", "application/json")
                .header("authorization", &bearer)
                .header("origin", "https://app.baatcheet.app")
                .body(Body::from(BODY))
                .unwrap();
            let res = rt.block_on(app.clone().oneshot(req)).unwrap();
            assert_eq!(res.status(), 200);
            res
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
