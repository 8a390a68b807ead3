//! Lambda entry point. The docs function's only AWS client is the rate limiter's (the global
//! per-IP limit): no secret, no other table.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    baatcheet_shared::telemetry::init();
    let config = baatcheet_shared::Config::from_env()?;
    let sdk = baatcheet_shared::aws::sdk_config().await;
    let limiter = baatcheet_shared::rate_limit::Limiter::new(
        baatcheet_shared::aws::dynamodb(&sdk),
        config.tables.rate_limits.clone(),
        config.rate_limits.clone(),
    );
    let app = docs::router(&config, docs::Settings::from_env()?, Arc::new(limiter));
    baatcheet_shared::lambda::serve(app, docs::routes::RESPONSE_MODE).await
}
