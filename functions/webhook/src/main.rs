//! Lambda entry point: everything is built once at cold start, then each event goes through the
//! router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    baatcheet_shared::telemetry::init();
    let ctx = baatcheet_shared::AppContext::from_env().await?;
    lambda_http::run(webhook::router(ctx)).await
}
