//! `make dev`'s server: provisions the local AWS endpoint from template.yaml, then serves the API
//! as AWS runs it: the REST API the SAM translator renders from template.yaml
//! (`$SAM_TEMPLATE_JSON`), each function's built binary in processes of its own behind a Lambda
//! Runtime API, on one port under the stage's path (`http://127.0.0.1:5001/staging/health`).
//!
//! Function environment: the template's values, then this process's environment (minus the
//! host's own variables, see `lambda_stack::from_host_env`), then `LAMBDA_ENV_FILE` (the JSON
//! format of `sam local --env-vars`: `{"Parameters": {...}, "ChatFunction": {...}}`).

use baatcheet_local::deployed::Deployed;
use baatcheet_local::lambda::LogSink;
use baatcheet_local::lambda_stack::{self, LambdaStack, LambdaStackOptions};
use baatcheet_local::{dev_key, dev_secret, stack, template::Template};
use baatcheet_shared::aws;
use std::sync::Arc;

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

    let template = Template::load_default()?;
    let deployed = Arc::new(Deployed::load_default()?);
    let sdk = aws::sdk_config().await;
    stack::create_tables(&aws::dynamodb(&sdk), &template, &prefix).await?;
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
    // One secret per function that needs one, each with its own fields only.
    let mut opts = LambdaStackOptions::new(&prefix, &deployed);
    for (secret, value) in dev_secret::split(&dev_secret::from_env_json(&defaults))? {
        let name = opts.secrets.get(secret).ok_or_else(|| format!("template.yaml declares no secret {secret}"))?;
        stack::put_secret(&aws::secrets_manager(&sdk), name, &value).await?;
    }

    if let Some(dir) = std::env::var_os("LAMBDA_BINARIES") {
        opts.binaries = dir.into();
    }
    if let Some(n) = std::env::var("LAMBDA_MAX_INSTANCES").ok().and_then(|n| n.parse().ok()) {
        opts.max_instances = n;
    }
    opts.access_log = LogSink::Stderr;
    // The dev Clerk and the local web app, as `sam deploy --parameter-overrides` would give them.
    opts.parameters.insert("ClerkIssuer".into(), dev_key::DEV_ISSUER.into());
    opts.parameters.insert("CorsAllowedOrigins".into(), "http://localhost:5173".into());
    opts.env.extend(lambda_stack::from_host_env(std::env::vars()));
    if let Some(path) = std::env::var_os("LAMBDA_ENV_FILE") {
        let (all, per_function) = lambda_stack::read_env_file(std::path::Path::new(&path))?;
        opts.env.extend(all);
        for (f, vars) in per_function {
            opts.function_env.entry(f).or_default().extend(vars);
        }
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let stack = LambdaStack::start(deployed.clone(), &opts, listener).await?;
    let base = stack.base_url();
    println!(
        "BaatCheet API (local, as AWS runs it) on {base}  (ready in {} ms; functions from {})",
        started.elapsed().as_millis(),
        opts.binaries.display()
    );
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
    for r in &deployed.routes {
        let mode = if r.streamed { "streamed" } else { "buffered" };
        println!("  {:<7} {base}{}  -> {} ({mode})", r.method, r.path, r.function);
    }
    let _ = tokio::signal::ctrl_c().await;
    drop(stack);
    Ok(())
}
