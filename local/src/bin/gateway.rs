//! `make dev`'s server: provisions the local AWS endpoint from template.yaml, then serves every
//! function on one port exactly as template.yaml routes it.

use baatcheet_local::{dev_key, dev_secret, gateway, stack, template::Template};
use baatcheet_shared::{AppContext, Config, aws};
use std::collections::BTreeMap;
use std::net::SocketAddr;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    baatcheet_shared::telemetry::init();
    let started = std::time::Instant::now();
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        return Err("AWS_ENDPOINT_URL must point at the local AWS endpoint (make dev sets it)".into());
    }
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(5001);
    let prefix = std::env::var("TABLE_PREFIX").unwrap_or_else(|_| "local-".into());
    let secret_name = std::env::var("SECRET_ID").unwrap_or_else(|_| "baatcheet/local".into());

    let template = Template::load_default()?;
    let sdk = aws::sdk_config().await;
    let mut env: BTreeMap<String, String> = stack::create_tables(&aws::dynamodb(&sdk), &template, &prefix).await?;
    // Clerk stand-in: the dev key pair and webhook secret, unless the environment points at a
    // real Clerk instance (any key source set) or overrides a value.
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let mut defaults = vec![("CLERK_WEBHOOK_SECRET", dev_key::DEV_WEBHOOK_SECRET.into())];
    let dev_keys = !["CLERK_JWT_KEY", "CLERK_SECRET_KEY", "CLERK_JWKS_URL"].iter().any(|k| set(k));
    if dev_keys {
        defaults.push(("CLERK_JWT_KEY", dev_key::load_or_create(&dev_key::default_path())?.public_pem.into()));
    }
    // Chat providers (`make dev` points them at the fake upstream unless told otherwise).
    let providers = dev_secret::providers(|k| std::env::var(k).ok())?;
    let provider_names: Vec<String> = providers
        .as_ref()
        .and_then(|p| p.as_array())
        .map(|list| list.iter().filter_map(|p| p["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if let Some(p) = providers {
        defaults.push(("providers", p));
    }
    stack::put_secret(&aws::secrets_manager(&sdk), &secret_name, &dev_secret::from_env_json(&defaults)).await?;
    env.insert("SECRET_ID".into(), secret_name);
    if !set("CLERK_ISSUER") {
        env.insert("CLERK_ISSUER".into(), dev_key::DEV_ISSUER.into());
    }
    env.entry("CORS_ALLOWED_ORIGINS".into())
        .or_insert_with(|| std::env::var("CORS_ALLOWED_ORIGINS").unwrap_or_else(|_| "http://localhost:5173".into()));

    let config = Config::from_lookup(|k| env.get(k).cloned().or_else(|| std::env::var(k).ok()))?;
    let ctx = AppContext::new(config, &sdk);
    ctx.secrets.fetch().await?;
    let app = gateway::build(&template, &ctx)?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("BaatCheet API (local) listening on http://{addr}  (ready in {} ms)", started.elapsed().as_millis());
    if dev_keys {
        println!(
            "Dev session tokens: make token USER=user_alice ROLE=admin TIER=pro  (then: curl -H \"Authorization: Bearer $TOKEN\" ...)"
        );
    }
    if provider_names.is_empty() {
        println!("Chat providers: none (set PROVIDERS_JSON or PROVIDERS_FILE; `make dev` starts a fake one)");
    } else {
        println!("Chat providers: {}", provider_names.join(", "));
    }
    for r in &template.routes {
        println!("  {:<7} http://{addr}{}", r.method, r.path);
    }
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
