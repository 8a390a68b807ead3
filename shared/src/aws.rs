//! AWS SDK clients, built once per cold start. They honour `AWS_ENDPOINT_URL` (and the
//! per-service variants), which is how the local stack points them at the local endpoint.

use aws_config::{BehaviorVersion, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig};
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

/// The SDK's default https client (rustls with aws-lc, Nagle off) on the process's shared root
/// certificates, so they are read once for the SDK and every other client (shared/src/tls.rs).
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
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

pub fn dynamodb(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

pub fn secrets_manager(sdk: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}
