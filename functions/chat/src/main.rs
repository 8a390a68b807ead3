//! Lambda entry point: built once at cold start; responses stream (SSE) through the runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    baatcheet_shared::telemetry::init();
    let ctx = baatcheet_shared::AppContext::from_env().await?;
    lambda_http::run_with_streaming_response(chat::router(ctx)?).await
}
