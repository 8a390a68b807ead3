//! `make token`: prints a session token signed by the local dev key, which `make dev` trusts.
//!
//! `--user ID --email ADDR --role user|moderator|admin --tier free|pro|enterprise --ttl SECS`.
//! Role and tier live in the users table (as Clerk's webhook syncs them), not in the token, so
//! the tool also delivers a signed `user.updated` event to the running local API
//! (`--port`, default 5001); `--no-sync` skips that.

use baatcheet_local::dev_key::{self, DEV_AZP, DEV_ISSUER, DEV_WEBHOOK_SECRET};
use baatcheet_shared::auth::{Role, Tier};
use serde_json::json;
use std::collections::HashMap;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn args() -> Result<(HashMap<String, String>, bool), BoxError> {
    let mut out = HashMap::new();
    let mut sync = true;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--no-sync" => sync = false,
            "--user" | "--email" | "--role" | "--tier" | "--ttl" | "--port" => {
                let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                out.insert(flag.trim_start_matches('-').to_string(), v);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    out.retain(|_, v| !v.trim().is_empty());
    Ok((out, sync))
}

fn strict_role(s: &str) -> Result<Role, BoxError> {
    let r = Role::parse_lenient(Some(s));
    if r.as_str() == s { Ok(r) } else { Err(format!("ROLE must be user, moderator or admin, not {s:?}").into()) }
}

fn strict_tier(s: &str) -> Result<Tier, BoxError> {
    let t = Tier::parse_lenient(Some(s));
    if t.as_str() == s { Ok(t) } else { Err(format!("TIER must be free, pro or enterprise, not {s:?}").into()) }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (a, sync) = args()?;
    let user = a.get("user").cloned().unwrap_or_else(|| "user_dev".into());
    if user.is_empty() || user.len() > 128 || !user.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("USER must be a short id without spaces, e.g. user_alice".into());
    }
    let email = a.get("email").cloned().unwrap_or_else(|| format!("{user}@baatcheet.localhost"));
    let role = strict_role(a.get("role").map(String::as_str).unwrap_or("user"))?;
    let tier = strict_tier(a.get("tier").map(String::as_str).unwrap_or("free"))?;
    let ttl: i64 = a.get("ttl").map(|t| t.parse()).transpose()?.unwrap_or(3600);
    let port: u16 = a.get("port").map(|p| p.parse()).transpose()?.unwrap_or(5001);

    let issuer = std::env::var("CLERK_ISSUER").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| DEV_ISSUER.into());
    let azp = std::env::var("CLERK_AUTHORIZED_PARTIES")
        .ok()
        .and_then(|v| v.split(',').map(str::trim).find(|p| !p.is_empty()).map(str::to_string))
        .unwrap_or_else(|| DEV_AZP.into());
    let key = dev_key::load_or_create(&dev_key::default_path())?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = key.mint(&dev_key::session_claims(&user, &email, &issuer, &azp, ttl, now))?;

    if sync {
        // The local API serves under its stage, as API Gateway does.
        let stage =
            baatcheet_local::deployed::Deployed::load_default().map(|d| d.stage).unwrap_or_else(|_| "staging".into());
        let api = format!("http://127.0.0.1:{port}/{stage}");
        match sync_user(&api, &user, &email, role, tier).await {
            Ok(()) => {
                eprintln!("dev-token: {user} synced to the local API as role={} tier={}", role.as_str(), tier.as_str())
            }
            Err(e) => eprintln!(
                "dev-token: could not sync role/tier to {api} ({e}); is `make dev` running? \
                 Until synced the user is role=user tier=free."
            ),
        }
    }
    println!("{token}");
    Ok(())
}

/// Delivers a Svix-signed `user.updated` to the local webhook, as Clerk would after a metadata
/// change, so the users table holds the requested role and tier.
async fn sync_user(api: &str, user: &str, email: &str, role: Role, tier: Tier) -> Result<(), BoxError> {
    let secret = std::env::var("CLERK_WEBHOOK_SECRET").ok().filter(|v| !v.is_empty());
    let secret = webhook::svix::Secret::parse(secret.as_deref().unwrap_or(DEV_WEBHOOK_SECRET))?;
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let body = json!({
        "type": "user.updated", "object": "event",
        "data": {
            "id": user, "object": "user",
            "email_addresses": [{"id": "idn_dev", "email_address": email}],
            "primary_email_address_id": "idn_dev",
            "first_name": "Dev", "last_name": user,
            "public_metadata": {"role": role.as_str(), "tier": tier.as_str()},
            "created_at": now_ms, "updated_at": now_ms,
        }
    })
    .to_string();
    let id = format!("msg_dev_{}", uuid::Uuid::new_v4().simple());
    let ts = now.unix_timestamp().to_string();
    let res = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?
        .post(format!("{api}{}", webhook::PATH))
        .header("content-type", "application/json")
        .header("svix-id", &id)
        .header("svix-timestamp", &ts)
        .header("svix-signature", secret.sign(&id, &ts, body.as_bytes()))
        .body(body)
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(format!("the webhook answered {}", res.status()).into());
    }
    Ok(())
}
