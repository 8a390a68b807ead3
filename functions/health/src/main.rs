//! Lambda entry point: everything is built once at cold start, then each event goes through the
//! router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    baatcheet_shared::telemetry::init();
    let app = baatcheet_shared::AppContext::from_env_with(health::router).await??;
    baatcheet_shared::lambda::serve(app, health::routes::RESPONSE_MODE).await
}
