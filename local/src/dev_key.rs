//! The local stack's stand-in for Clerk: an RSA key pair made once per checkout
//! (`.local/dev-key.pem`), whose public key the local gateway trusts as `CLERK_JWT_KEY`, and
//! the dev tokens it signs (`make token`).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The dev instance's "Frontend API URL" (the `iss` of dev tokens); `CLERK_ISSUER` overrides.
pub const DEV_ISSUER: &str = "https://clerk.baatcheet.localhost";
/// `azp` of dev tokens unless `CLERK_AUTHORIZED_PARTIES` says otherwise: the local web app.
pub const DEV_AZP: &str = "http://localhost:5173";
pub const DEV_KID: &str = "baatcheet-dev";
/// Webhook secret of the local stack (`CLERK_WEBHOOK_SECRET` overrides). Not a secret: local only.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_YmFhdGNoZWV0LWxvY2FsLWRldi13ZWJob29rLWtleSE=";

#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    #[error("dev key file {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dev key file {path} is not a PKCS#8 RSA private key (delete it to make a new one)")]
    Parse { path: String },
    #[error("RSA key generation or encoding failed: {0}")]
    Rsa(String),
    #[error("signing the dev token failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

pub struct DevKey {
    pub private_pem: String,
    pub public_pem: String,
}

/// `.local/dev-key.pem` in the repository (`BAATCHEET_DEV_KEY` overrides).
pub fn default_path() -> PathBuf {
    std::env::var_os("BAATCHEET_DEV_KEY")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".local").join("dev-key.pem"))
}

fn public_of(private: &rsa::RsaPrivateKey) -> Result<String, DevKeyError> {
    private.to_public_key().to_public_key_pem(LineEnding::LF).map_err(|e| DevKeyError::Rsa(e.to_string()))
}

/// Loads the key pair, creating it on first use. Creation is race-free: the key is written to a
/// private temporary file and linked into place only if no other process got there first.
pub fn load_or_create(path: &Path) -> Result<DevKey, DevKeyError> {
    let io = |source| DevKeyError::Io { path: path.display().to_string(), source };
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let private =
            rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| DevKeyError::Rsa(e.to_string()))?;
        let pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|e| DevKeyError::Rsa(e.to_string()))?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io)?;
            f.write_all(pem.as_bytes()).map_err(io)?;
        }
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
    }
    let private_pem = std::fs::read_to_string(path).map_err(io)?;
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(&private_pem)
        .map_err(|_| DevKeyError::Parse { path: path.display().to_string() })?;
    Ok(DevKey { public_pem: public_of(&private)?, private_pem })
}

/// Claims of a dev session token, shaped like Clerk's (sub, sid, iss, azp, iat, nbf, exp, jti)
/// plus the `email` claim a custom session-token template would add.
pub fn session_claims(user: &str, email: &str, issuer: &str, azp: &str, ttl_secs: i64, now: i64) -> serde_json::Value {
    serde_json::json!({
        "sub": user, "sid": format!("sess_dev_{}", uuid::Uuid::new_v4().simple()),
        "iss": issuer.trim_end_matches('/'), "azp": azp, "email": email,
        "iat": now, "nbf": now, "exp": now + ttl_secs,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
    })
}

impl DevKey {
    /// Signs `claims` as the dev instance would (RS256, kid `baatcheet-dev`).
    pub fn mint(&self, claims: &serde_json::Value) -> Result<String, DevKeyError> {
        let key = EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).map_err(DevKeyError::Sign)?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(DEV_KID.into());
        jsonwebtoken::encode(&header, claims, &key).map_err(DevKeyError::Sign)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_reloads() {
        let dir = std::env::temp_dir().join(format!("baatcheet-devkey-{}", uuid::Uuid::new_v4().simple()));
        let path = dir.join("dev-key.pem");
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.public_pem, b.public_pem);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let token = a.mint(&serde_json::json!({"sub": "user_x", "exp": 4_000_000_000_i64})).unwrap();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_rsa_pem(a.public_pem.as_bytes()).unwrap(),
            &jsonwebtoken::Validation::new(Algorithm::RS256),
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "user_x");
        assert_eq!(decoded.header.kid.as_deref(), Some(DEV_KID));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
