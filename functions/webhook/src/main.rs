//! Lambda entry point: everything is built once at cold start, then each event goes through the
//! router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    baatcheet_shared::telemetry::init();
    let erasure = webhook::erasure::ErasureSettings::from_env()?;
    let app = baatcheet_shared::AppContext::from_env_with(|ctx| webhook::router_with(ctx, erasure)).await??;
    baatcheet_shared::lambda::serve(app, webhook::routes::RESPONSE_MODE).await
}
