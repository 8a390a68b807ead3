//! Lambda entry point: built once at cold start; responses stream (SSE) through the runtime.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    baatcheet_shared::telemetry::init();
    let app = baatcheet_shared::AppContext::from_env_with(chat::router).await??;
    baatcheet_shared::lambda::serve(app, chat::http::routes::RESPONSE_MODE).await
}
