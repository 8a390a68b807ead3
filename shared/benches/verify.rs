//! Time to verify one Clerk session token with the key already cached: header checks, the
//! RS256 signature (2048-bit key) and every claim rule. `cargo bench -p baatcheet-shared --bench verify`

use baatcheet_shared::auth::token::{self, Rules};
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

fn bench(c: &mut Criterion) {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
    let encoding = EncodingKey::from_rsa_pem(private.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
    let key = DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let issuer = "https://clerk.baatcheet.app";
    let claims = serde_json::json!({
        "sub": "user_2pLXbF0bench000000000000", "iss": issuer, "azp": "https://app.baatcheet.app",
        "sid": "sess_2pLXbFbench", "iat": now, "nbf": now - 10, "exp": now + 3600,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("ins_bench".into());
    let jwt = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
    let rules = Rules {
        issuer: issuer.into(),
        authorized_parties: vec!["https://app.baatcheet.app".into()],
        clock_skew_secs: 5,
    };
    c.bench_function("verify_session_token_cached_key", |b| {
        b.iter(|| {
            let parsed = token::parse(black_box(&jwt)).unwrap();
            parsed.verify(&key, &rules, now).unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
