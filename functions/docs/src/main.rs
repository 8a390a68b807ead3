//! Lambda entry point. The docs function touches no AWS service: configuration only (CORS), no
//! SDK client, no secret.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    baatcheet_shared::telemetry::init();
    let config = baatcheet_shared::Config::from_env()?;
    lambda_http::run(docs::router(&config, docs::Settings::from_env()?)).await
}
