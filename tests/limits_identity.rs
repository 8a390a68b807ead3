//! Limits keyed by the identity the API knows (issue 20), through the API as AWS runs it (the
//! built functions behind the emulated REST API): signed-in users behind one address are charged
//! to themselves, forged and garbled tokens to the address (and counted as failed
//! authentications, without touching valid or merely expired tokens), and IPv6 clients per /64
//! and per /48.
//!
//! Not in the rate-limit binaries: the 300 users' requests load the local endpoint, and those
//! binaries hold the tests that check exactness against the deployed store timeout.

use baatcheet_tests::chat::{ChatHarness, fast_config};
use baatcheet_tests::{TestStack, clerk, deployed, http};
use serde_json::Value;

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A session token for `sub`, signed by the fake Clerk's key, expiring `exp_in` seconds from now.
fn session(sub: &str, exp_in: i64) -> String {
    let mut claims = clerk::claims(sub);
    claims["exp"] = (clerk::now() + exp_in).into();
    claims["iat"] = (clerk::now() + exp_in.min(0) - 60).into();
    claims["nbf"] = (clerk::now() + exp_in.min(0) - 70).into();
    clerk::sign_as(&clerk::keys()[0], &clerk::keys()[0].kid, &claims)
}

/// GET `path` from the one shared address with `token`: status, `RateLimit-Policy` name, problem
/// `policy` or 401 `reason`.
async fn list_as(base: &str, token: Option<&str>) -> (u16, String, Value) {
    let mut req = http().get(format!("{base}/api/v1/conversations"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("an answer");
    let policy = header(&res, "ratelimit-policy").unwrap_or_default().split(';').next().unwrap_or_default().to_string();
    let status = res.status().as_u16();
    (status, policy.trim_matches('"').to_string(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn users_behind_one_address_are_charged_to_themselves_and_forgers_to_the_address() {
    use futures::StreamExt;
    // 100 requests an hour per user, and per address for requests without a valid token: the 300
    // users' 300 requests from one address would be refused if the address paid for them.
    let env = [("RATE_LIMIT_GLOBAL", "100/1h"), ("RATE_LIMIT_AUTH", "5/15m")];
    let h = ChatHarness::with(serde_json::json!([]), fast_config(), &env, None).await;
    let gw = deployed::start(&h.stack).await;
    let base = gw.base_url();
    let users: Vec<String> = (0..300).map(|_| clerk::unique_user()).collect();
    let all = |subs: Vec<String>, exp_in: i64| {
        let base = base.clone();
        futures::stream::iter(subs)
            .map(move |sub| {
                let base = base.clone();
                async move { list_as(&base, Some(&session(&sub, exp_in))).await }
            })
            .buffer_unordered(12)
            .collect::<Vec<_>>()
    };
    let first = all(users.clone(), 60).await;
    assert!(first.iter().all(|(s, p, _)| *s == 200 && p == "global"), "{:?}", first.iter().find(|a| a.0 != 200));

    // An attacker on the same address: forged and garbage tokens are counted against it.
    let forged = clerk::sign_as(&clerk::keys()[2], &clerk::keys()[0].kid, &clerk::claims(&users[0]));
    let mut attacker = Vec::new();
    for token in [forged.as_str(); 6].into_iter().chain(["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."]) {
        attacker.push(list_as(&base, Some(token)).await);
    }
    let statuses: Vec<u16> = attacker.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429], "{attacker:?}");
    assert!(attacker[5..].iter().all(|(_, _, body)| body["policy"] == "auth"), "{attacker:?}");

    // The users are unaffected: their tokens verify, whatever the address did.
    let again = all(users[..40].to_vec(), 60).await;
    assert!(again.iter().all(|(s, ..)| *s == 200), "{:?}", again.iter().find(|a| a.0 != 200));

    // 50 users whose token expired refresh as Clerk's clients do: the expired token gets its 401
    // (never the attacker's 429), the fresh one a 200.
    let expired = all(users[100..150].to_vec(), -30).await;
    assert!(
        expired.iter().all(|(s, _, body)| *s == 401 && body["reason"] == "expired"),
        "{:?}",
        expired.iter().find(|a| a.0 != 401)
    );
    let refreshed = all(users[100..150].to_vec(), 60).await;
    assert!(refreshed.iter().all(|(s, ..)| *s == 200), "{:?}", refreshed.iter().find(|a| a.0 != 200));
}

/// GET the metrics (a public route) as `ip`: the status and the policy that refused, if any.
async fn metrics_from(base: &str, ip: &str) -> (u16, Value) {
    let res = http()
        .get(format!("{base}/api/v1/health/metrics"))
        .header(deployed::SOURCE_IP_HEADER, ip)
        .send()
        .await
        .expect("an answer");
    (res.status().as_u16(), res.json::<Value>().await.map(|b| b["policy"].clone()).unwrap_or(Value::Null))
}

#[tokio::test]
async fn rotating_through_the_addresses_of_a_48_does_not_pass_its_limit() {
    let mut stack = TestStack::new().await;
    for (k, v) in [("RATE_LIMIT_GLOBAL", "2/1h"), ("RATE_LIMIT_NETWORK", "5/1h")] {
        stack.env.insert(k.into(), v.into());
    }
    let gw = deployed::start(&stack).await;
    let base = gw.base_url();
    // One /64 gets the global limit, whichever of its addresses asks.
    let one = ["2001:db8:aa:1::1", "2001:db8:aa:1::2", "2001:db8:aa:1:ffff::3"];
    let mut answers = Vec::new();
    for ip in one {
        answers.push(metrics_from(&base, ip).await);
    }
    assert_eq!(answers, [(200, Value::Null), (200, Value::Null), (429, "global".into())]);
    // Each new /64 of the same /48 has its own global bucket, but the /48 has 5 in all: the
    // two above, and three more.
    let mut answers = Vec::new();
    for n in 2..=8 {
        answers.push(metrics_from(&base, &format!("2001:db8:aa:{n:x}::1")).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429], "{answers:?}");
    assert!(answers[3..].iter().all(|(_, p)| p == "network"), "{answers:?}");
    // Another /48, and IPv4, are other networks.
    assert_eq!(metrics_from(&base, "2001:db8:ab:1::1").await.0, 200);
    assert_eq!(metrics_from(&base, "203.0.113.50").await.0, 200);
}
