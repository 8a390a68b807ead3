//! The platform's root certificates, read once per process, for every TLS client: the AWS SDK's
//! and each outbound reqwest client (JWKS, Clerk's Backend API, model providers, attachment
//! fetches).
//!
//! Left to themselves, the SDK and reqwest each read the platform's roots for every client they
//! build: on Debian that is ~440 files and 4–6 ms each time, paid three times in the chat
//! function's cold start and once more per attachment fetch.

use std::sync::{Arc, OnceLock};

use aws_smithy_http_client::tls::TrustStore;
use base64::Engine as _;
use rustls::pki_types::CertificateDer;

struct Roots {
    /// Every platform root that parses as a trust anchor.
    certs: Vec<CertificateDer<'static>>,
    /// reqwest's configuration, verifying against `certs`; `None` if it could not be built.
    reqwest: Option<rustls::ClientConfig>,
}

static ROOTS: OnceLock<Roots> = OnceLock::new();

fn roots() -> &'static Roots {
    ROOTS.get_or_init(|| {
        let loaded = platform_roots();
        for e in &loaded.errors {
            tracing::warn!(error = %e, "a platform root certificate could not be read");
        }
        let mut store = rustls::RootCertStore::empty();
        let mut certs = Vec::with_capacity(loaded.certs.len());
        for cert in loaded.certs {
            // Kept only if it parses: the SDK panics on a root it cannot parse.
            if store.add(cert.clone()).is_ok() {
                certs.push(cert);
            }
        }
        if certs.is_empty() {
            tracing::error!("no platform root certificates: every TLS connection will be refused");
        }
        Roots { certs, reqwest: reqwest_config(store) }
    })
}

/// The platform's roots: its bundle file alone when it has one and no `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` says otherwise, else everything rustls-native-certs finds (file and
/// directory). Debian keeps every root twice, in the hashed directory and in the bundle
/// `update-ca-certificates` builds from it; reading both doubled the parsing in every cold start.
fn platform_roots() -> rustls_native_certs::CertificateResult {
    if !openssl_probe::has_ssl_cert_env_vars()
        && let Some(file) = openssl_probe::probe().cert_file
    {
        let bundle = rustls_native_certs::load_certs_from_paths(Some(&file), None);
        if !bundle.certs.is_empty() {
            return bundle;
        }
    }
    rustls_native_certs::load_native_certs()
}

fn reqwest_config(store: rustls::RootCertStore) -> Option<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "shared TLS configuration unavailable; each client reads the roots itself");
            return None;
        }
    };
    let mut config = builder.with_root_certificates(store).with_no_client_auth();
    // A preconfigured TLS config is used as is: offer what reqwest would (HTTP/2, then HTTP/1.1).
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(config)
}

/// A reqwest client builder that verifies servers against the shared roots. Should the shared
/// configuration be impossible to build, this is reqwest's own default builder: verification is
/// never turned off.
pub fn client_builder() -> reqwest::ClientBuilder {
    match &roots().reqwest {
        Some(config) => reqwest::Client::builder().tls_backend_preconfigured(config.clone()),
        None => reqwest::Client::builder(),
    }
}

/// The SDK's trust store: the shared roots (as PEM, the only form it takes) instead of its own
/// second read of the platform's.
pub fn sdk_trust_store() -> TrustStore {
    TrustStore::empty().with_native_roots(false).with_pem_certificate(to_pem(&roots().certs).into_bytes())
}

fn to_pem(certs: &[CertificateDer<'_>]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut pem = String::new();
    for cert in certs {
        let b64 = engine.encode(cert.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            // base64 output is ASCII, so every chunk is valid UTF-8.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn roots_are_read_once_and_shared() {
        let first = roots();
        assert!(!first.certs.is_empty(), "this machine has platform roots");
        assert!(std::ptr::eq(first, roots()));
        let config = first.reqwest.as_ref().expect("config builds here");
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(client_builder().build().is_ok());
    }

    #[test]
    fn the_bundle_holds_the_platforms_roots() {
        // Read as rustls-native-certs would (file and directory) and as we do (the bundle).
        let ours: Vec<Vec<u8>> = platform_roots().certs.iter().map(|c| c.to_vec()).collect();
        let all: Vec<Vec<u8>> = rustls_native_certs::load_native_certs().certs.iter().map(|c| c.to_vec()).collect();
        assert!(ours.iter().all(|c| all.contains(c)), "nothing outside the platform's store");
        let missing = all.iter().filter(|c| !ours.contains(c)).count();
        // The directory may hold a local certificate that is no CA (Debian's snakeoil); no more.
        assert!(missing <= 1 && ours.len() > 100, "bundle {} of {} roots", ours.len(), all.len());
    }

    #[test]
    fn sdk_pem_parses_back_to_the_same_roots() {
        let certs = &roots().certs;
        let pem = to_pem(certs);
        // As the SDK reads it (aws-smithy-http-client's rustls provider).
        let parsed: Vec<_> =
            CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().expect("valid PEM");
        assert_eq!(&parsed, certs);
        let _ = sdk_trust_store();
    }
}
