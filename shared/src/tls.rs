//! The platform's root certificates, read once per process, for every TLS client: the AWS SDK's
//! and each outbound reqwest client (JWKS, Clerk's Backend API, model providers, attachment
//! fetches).
//!
//! Left to themselves, the SDK and reqwest each read the platform's roots for every client they
//! build: on Debian that is ~440 files and 4–6 ms each time, paid three times in the chat
//! function's cold start and once more per attachment fetch.

use std::path::{Path, PathBuf};
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

/// Starts reading the platform's roots on a thread of their own, so that the rest of a cold
/// start (configuration, SDK clients, the router) goes on meanwhile; whoever needs them first
/// waits for that read instead of starting another (`OnceLock`).
pub fn preload() {
    let started = std::thread::Builder::new().name("tls-roots".into()).spawn(|| {
        roots();
    });
    if let Err(e) = started {
        // Nothing lost: the first client to need the roots reads them itself.
        tracing::debug!(error = %e, "could not start reading the root certificates ahead");
    }
}

/// The platform's roots, read as rustls-native-certs reads them (`SSL_CERT_FILE` and every
/// directory of `SSL_CERT_DIR`, else the platform's file and directory) with one shortcut: a
/// platform directory is read as the bundle `update-ca-certificates` (or `update-ca-trust`)
/// builds beside it from the same roots. Debian keeps every root twice, in the hashed directory
/// and in that bundle; reading both doubled the parsing in every cold start (~440 files, 5–6 ms
/// here), and many hosts set `SSL_CERT_DIR` to the platform's directory.
fn platform_roots() -> rustls_native_certs::CertificateResult {
    let (file, dirs) = cert_paths();
    roots_from(file, &dirs)
}

fn roots_from(file: Option<PathBuf>, dirs: &[PathBuf]) -> rustls_native_certs::CertificateResult {
    // Compared by canonical path, so a bundle named through a symlink is read once.
    let mut files: Vec<PathBuf> = file.iter().map(|f| f.canonicalize().unwrap_or_else(|_| f.clone())).collect();
    let mut other_dirs = Vec::new();
    for dir in dirs {
        match platform_bundle(dir) {
            Some(bundle) if !files.contains(&bundle) => files.push(bundle),
            Some(_) => {}
            // Not the platform's own directory: only reading it says what it holds.
            None => other_dirs.push(dir),
        }
    }
    let mut out = rustls_native_certs::CertificateResult::default();
    let parts =
        files.iter().map(|f| (Some(f.as_path()), None)).chain(other_dirs.iter().map(|d| (None, Some(d.as_path()))));
    for (f, d) in parts {
        let mut part = rustls_native_certs::load_certs_from_paths(f, d);
        out.certs.append(&mut part.certs);
        out.errors.append(&mut part.errors);
    }
    out.certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    out.certs.dedup();
    out
}

/// `SSL_CERT_FILE` and `SSL_CERT_DIR` as rustls-native-certs reads them; without either, the
/// platform's file and directory.
fn cert_paths() -> (Option<PathBuf>, Vec<PathBuf>) {
    let file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let dirs: Vec<PathBuf> = std::env::var_os("SSL_CERT_DIR")
        .map(|d| std::env::split_paths(&d).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    if file.is_some() || !dirs.is_empty() {
        return (file, dirs);
    }
    let probed = openssl_probe::probe();
    (probed.cert_file, probed.cert_dir)
}

/// The bundle built from a platform certificate directory's roots, if `dir` is one.
fn platform_bundle(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    openssl_probe::candidate_cert_dirs().find(|d| d.canonicalize().ok().as_deref() == Some(dir.as_path()))?;
    // Debian, Ubuntu, Alpine, Arch; Fedora, RHEL, Amazon Linux.
    ["ca-certificates.crt", "ca-bundle.crt"]
        .iter()
        .find_map(|name| dir.join(name).canonicalize().ok().filter(|p| p.is_file()))
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
    fn a_platform_directory_is_read_as_its_bundle() {
        let dir = PathBuf::from("/etc/ssl/certs");
        let Some(bundle) = platform_bundle(&dir) else { return }; // not a Debian-like host
        let as_dir = roots_from(None, std::slice::from_ref(&dir));
        let as_file = roots_from(Some(bundle.clone()), &[]);
        assert!(as_dir.certs.len() > 100 && as_dir.errors.is_empty());
        assert_eq!(as_dir.certs, as_file.certs);
        // The same bundle named twice (file and directory) is read once: nothing doubles.
        assert_eq!(roots_from(Some(bundle), std::slice::from_ref(&dir)).certs, as_file.certs);
    }

    #[test]
    fn other_directories_and_files_are_read_in_full() {
        let tmp = std::env::temp_dir().join(format!("baatcheet-tls-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        assert_eq!(platform_bundle(&tmp), None);
        let one = &roots().certs[0];
        let pem = to_pem(std::slice::from_ref(one));
        std::fs::write(tmp.join("local-ca.pem"), &pem).unwrap();
        let from_dir = roots_from(None, std::slice::from_ref(&tmp));
        assert_eq!(from_dir.certs, std::slice::from_ref(one));
        let extra = tmp.join("extra.pem");
        std::fs::write(&extra, &pem).unwrap();
        let both = roots_from(Some(extra), std::slice::from_ref(&tmp));
        assert_eq!(both.certs, std::slice::from_ref(one), "deduplicated");
        // A missing file is an error, as rustls-native-certs reports it.
        assert!(!roots_from(Some(tmp.join("missing.pem")), &[]).errors.is_empty());
        std::fs::remove_dir_all(&tmp).unwrap();
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
