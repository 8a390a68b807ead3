//! AWS SDK clients, built once per cold start. They honour `AWS_ENDPOINT_URL` (and the
//! per-service variants), which is how the local stack points them at the local endpoint.

use aws_config::{BehaviorVersion, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::OnceLock;
use std::time::Duration;

/// Loads the shared SDK configuration with timeouts short enough for a request path: a Lambda
/// should fail fast and let the caller retry rather than hang to its own timeout.
///
/// `AWS_SDK_ATTEMPT_TIMEOUT_MS` and `AWS_SDK_OPERATION_TIMEOUT_MS` override the defaults (2.5 s,
/// 6 s); the test suite raises them, since its local endpoint serialises every call.
pub async fn sdk_config() -> SdkConfig {
    let ms = |name: &str, default: u64| {
        Duration::from_millis(std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
    };
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(1000))
                .operation_attempt_timeout(ms("AWS_SDK_ATTEMPT_TIMEOUT_MS", 2500))
                .operation_timeout(ms("AWS_SDK_OPERATION_TIMEOUT_MS", 6000))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// The SDK's https client, built when the first request needs it (see [`LazyConnector`]).
fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(LazyConnector::new(build_https_client))
}

/// The SDK's default https client (rustls with aws-lc, Nagle off) on the process's shared root
/// certificates, so they are read once for the SDK and every other client (shared/src/tls.rs).
fn build_https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls;
    let context = tls::TlsContext::builder().with_trust_store(crate::tls::sdk_trust_store()).build();
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
    match context {
        Ok(context) => builder.tls_context(context).build_https(),
        // Cannot happen in this version (build() only wraps the store); the default reads the
        // platform's roots itself.
        Err(_) => builder.build_https(),
    }
}

/// The SDK's https client, made on the first request, without its eager connector.
/// aws-smithy-http-client builds a whole connector (decoding every root certificate of the trust
/// store and building a rustls config) whenever a client using it is constructed, to fail early
/// on unreadable native roots, and throws it away: aws-config's own credential clients, the
/// DynamoDB client and the Secrets Manager client each paid ~1 ms of every cold start for it.
/// Our roots are read and checked by shared/src/tls.rs (ahead, on a thread of their own, when
/// [`crate::tls::preload`] ran), so the one connector the process uses is built, as the SDK
/// caches it, on the first request.
struct LazyConnector {
    client: OnceLock<SharedHttpClient>,
    build: Box<dyn Fn() -> SharedHttpClient + Send + Sync>,
}

impl LazyConnector {
    fn new(build: impl Fn() -> SharedHttpClient + Send + Sync + 'static) -> Self {
        Self { client: OnceLock::new(), build: Box::new(build) }
    }

    fn client(&self) -> &SharedHttpClient {
        self.client.get_or_init(|| (self.build)())
    }
}

impl std::fmt::Debug for LazyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyConnector").field("client", &self.client.get()).finish_non_exhaustive()
    }
}

impl HttpClient for LazyConnector {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.client().http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.client().connector_metadata()
    }
}

/// Every call of these clients is an X-Ray subsegment of the invocation's trace when it is
/// sampled (shared/src/xray.rs); the interceptor is the one place that covers them all.
pub fn dynamodb(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(crate::xray::SdkInterceptor).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

pub fn secrets_manager(sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::config::Builder::from(sdk).interceptor(crate::xray::SdkInterceptor).build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::{ConfigBag, RuntimeComponentsBuilder};
    use aws_smithy_runtime_api::box_error::BoxError;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The SDK's https client, counting the eager connector builds asked of it.
    #[derive(Debug)]
    struct Counting {
        inner: SharedHttpClient,
        validations: Arc<AtomicUsize>,
    }

    impl HttpClient for Counting {
        fn http_connector(
            &self,
            settings: &HttpConnectorSettings,
            components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            self.inner.http_connector(settings, components)
        }

        fn validate_base_client_config(&self, c: &RuntimeComponentsBuilder, cfg: &ConfigBag) -> Result<(), BoxError> {
            self.validations.fetch_add(1, Ordering::Relaxed);
            self.inner.validate_base_client_config(c, cfg)
        }
    }

    async fn validations_for_two_clients(lazy: bool) -> usize {
        let validations = Arc::new(AtomicUsize::new(0));
        let counted = validations.clone();
        let counting =
            move || SharedHttpClient::new(Counting { inner: build_https_client(), validations: counted.clone() });
        let http = if lazy { SharedHttpClient::new(LazyConnector::new(counting)) } else { counting() };
        let sdk = aws_config::SdkConfig::builder()
            .http_client(http)
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(BehaviorVersion::latest())
            .build();
        let _ = (dynamodb(&sdk), secrets_manager(&sdk));
        validations.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn clients_do_not_build_a_connector_each() {
        assert!(validations_for_two_clients(false).await >= 2, "the SDK builds one per client");
        assert_eq!(validations_for_two_clients(true).await, 0);
    }

    #[test]
    fn the_client_is_made_once_on_first_use() {
        let made = Arc::new(AtomicUsize::new(0));
        let counted = made.clone();
        let lazy = LazyConnector::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            build_https_client()
        });
        assert_eq!(made.load(Ordering::Relaxed), 0, "nothing built before a request");
        let _ = (lazy.connector_metadata(), lazy.connector_metadata());
        assert_eq!(made.load(Ordering::Relaxed), 1);
    }
}
