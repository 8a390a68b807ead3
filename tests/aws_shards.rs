//! The shard proxy `make load` runs in front of two local DynamoDB servers (the rate-limit table on
//! its own): the API's functions, through the real SDK, get their answers as from one endpoint,
//! each table's calls reach only the server holding it, and a request across servers is refused
//! whole, with nothing written on either.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use baatcheet_local::stack;
use baatcheet_local::template::physical_table_name;
use baatcheet_shared::{AppContext, Config};
use baatcheet_tests::aws_proxy::{RecordingProxy, Service};
use baatcheet_tests::aws_shards::{Routes, router};
use baatcheet_tests::{dynamodb_at, endpoint, http, secrets_manager_at, serve, spawn_gateway, template, unique_prefix};

fn put(table: &str, pk: &str) -> TransactWriteItem {
    let item = Put::builder()
        .table_name(table)
        .item("pk", AttributeValue::S(pk.into()))
        .item("sk", AttributeValue::S(pk.into()))
        .build()
        .expect("table and item are set");
    TransactWriteItem::builder().put(item).build()
}

#[tokio::test]
async fn each_table_is_served_by_its_server_and_a_request_across_them_is_refused() {
    let main = RecordingProxy::to(&endpoint()).await;
    let limits_server = RecordingProxy::to(&endpoint()).await;
    let prefix = unique_prefix();
    let limits = physical_table_name(&prefix, "RateLimitsTable");
    let routes = Routes::new(&[vec![limits.clone()]]);
    let shards = format!("http://{}", serve(router(vec![main.url.clone(), limits_server.url.clone()], routes)).await);
    // Clients with the proxy as endpoint (on the service config: the environment's would win).
    let (dynamo, secrets) = (dynamodb_at(&shards).await, secrets_manager_at(&shards).await);

    // The stack and the functions, every call through the proxy.
    let mut env = stack::create_tables(&dynamo, template(), &prefix).await.expect("tables");
    let secret_id = format!("{prefix}secret");
    stack::put_secret(&secrets, &secret_id, "{}").await.expect("secret");
    env.insert("SECRET_ID".into(), secret_id);
    env.insert("HEALTH_PROBE_TTL_MS".into(), "0".into());
    env.insert("RATE_LIMIT_STORE_TIMEOUT_MS".into(), "20000".into());
    let config = Config::from_lookup({
        let env = env.clone();
        move |k| env.get(k).cloned()
    })
    .expect("config");
    let ctx = AppContext::with_clients(config, dynamo.clone(), secrets);
    ctx.secrets.fetch().await.expect("secret read through the proxy");
    let gateway = spawn_gateway(&ctx).await;
    for _ in 0..3 {
        let res = http().get(format!("{gateway}/health")).send().await.expect("health");
        let status = res.status();
        let body: serde_json::Value = res.json().await.expect("json");
        assert_eq!((status.as_u16(), body["status"].as_str()), (200, Some("healthy")), "{body}");
    }

    // The docs function's answers are charged to the global (per-IP) limit.
    for _ in 0..3 {
        let res = http().get(format!("{gateway}/api/docs.json")).send().await.expect("docs");
        assert_eq!(res.status(), 200);
        assert!(
            res.headers().contains_key("ratelimit-policy") || res.headers().contains_key("ratelimit"),
            "{:?}",
            res.headers()
        );
    }

    let on_limits = limits_server.calls();
    assert!(
        on_limits.iter().all(|c| c.service == Service::DynamoDb && c.names.iter().all(|n| n.name == limits)),
        "only the rate-limit table's calls reach its server: {on_limits:?}"
    );
    // Created there, probed there by /health, and charged there by the limiter.
    for op in ["CreateTable", "GetItem", "UpdateItem"] {
        assert!(on_limits.iter().any(|c| c.operation == op), "{op} on the limits server: {on_limits:?}");
    }
    assert!(on_limits.len() >= 2 + 3 + 3, "creation, three probes and three limiter decisions: {on_limits:?}");
    let on_main = main.calls();
    assert!(on_main.iter().all(|c| c.names.iter().all(|n| n.name != limits)), "{on_main:?}");
    assert!(on_main.iter().any(|c| c.service == Service::SecretsManager), "secrets on the default server");

    // Across servers: refused as DynamoDB refuses a bad request, and neither item exists after.
    let conversations = env["CONVERSATIONS_TABLE"].clone();
    let err = dynamo
        .transact_write_items()
        .transact_items(put(&conversations, "across"))
        .transact_items(put(&limits, "across"))
        .send()
        .await
        .expect_err("a transaction across servers is refused");
    let service_err = err.into_service_error();
    assert!(service_err.meta().code() == Some("ValidationException"), "{service_err:?}");
    assert!(service_err.meta().message().is_some_and(|m| m.contains("different servers")), "{service_err:?}");
    for (table, sorted) in [(&conversations, true), (&limits, false)] {
        let mut get = dynamo.get_item().table_name(table).key("pk", AttributeValue::S("across".into()));
        if sorted {
            get = get.key("sk", AttributeValue::S("across".into()));
        }
        assert!(get.send().await.expect("read back").item.is_none(), "nothing written to {table}");
    }
    let err = dynamo.list_tables().send().await.expect_err("ListTables spans every server");
    assert_eq!(err.into_service_error().meta().code(), Some("ValidationException"));
}
