//! `SecretSource` against moto. Needs `AWS_ENDPOINT_URL` (see `olbridge_aws::testing`): without it
//! these tests fail, they do not skip.
//!
//! moto quirk kept in mind (reference notes §7): `GetSecretValue` without a `VersionStage` returns
//! a stale version after AWSCURRENT moved; the source always names the stage, and
//! `a_rotation_shows_pending_then_previous_tokens` would fail if it did not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use olbridge_aws::secrets::{SECRET_KEYS, SecretError, SecretSource, stage};
use olbridge_aws::testing;
use olbridge_core::contract::t;
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::ManualClock;
use serde_json::json;

const TTL: Duration = Duration::from_secs(300);

async fn client() -> Client {
    Client::new(&testing::config().await)
}

fn source(client: &Client, id: &str, clock: &ManualClock) -> SecretSource {
    SecretSource::new(client.clone(), id, TTL, Arc::new(clock.clone()))
}

fn exposed(tokens: &[Secret]) -> Vec<&str> {
    tokens.iter().map(Secret::expose).collect()
}

async fn put(client: &Client, id: &str, value: serde_json::Value, stages: &[&str]) -> String {
    let token = uuid::Uuid::new_v4().to_string();
    let mut req = client.put_secret_value().secret_id(id).client_request_token(&token).secret_string(value.to_string());
    for s in stages {
        req = req.version_stages(*s);
    }
    req.send().await.unwrap();
    token
}

#[tokio::test]
async fn the_secret_overrides_the_environment_and_blank_values_are_ignored() {
    let client = client().await;
    let id = testing::fresh_secret(
        &testing::config().await,
        &json!({"B24_WEBHOOK_BASE": "https://portal.bitrix24.test/rest/38005/newcode/", "B24_APPLICATION_TOKEN": "tok-1",
                "BOT_HTTP_AUTH": " ", "BOT_HMAC_SECRET": "hmac-1", "BOT_HTTP_URL": "http://not-a-secret.test/"}),
    )
    .await;
    let snapshot = source(&client, &id, &ManualClock::new(t(0))).snapshot().await.unwrap();
    let env: HashMap<String, String> = [
        ("B24_WEBHOOK_BASE", "https://portal.bitrix24.test/rest/38005/oldcode/"),
        ("BOT_HTTP_AUTH", "Bearer from-env"),
        ("BOT_HTTP_URL", "http://bot.test/answer"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let merged = snapshot.merged_env(&env);
    assert_eq!(merged["B24_WEBHOOK_BASE"], "https://portal.bitrix24.test/rest/38005/newcode/", "the secret wins");
    assert_eq!(merged["BOT_HTTP_AUTH"], "Bearer from-env", "a blank secret value does not erase the environment's");
    assert_eq!(merged["BOT_HTTP_URL"], "http://bot.test/answer", "keys that are not secret settings are ignored");
    assert_eq!(merged["BOT_HMAC_SECRET"], "hmac-1");
    let config = snapshot.config(&env).unwrap();
    assert!(config.portal.application_token.as_ref().is_some_and(|s| s.matches("tok-1")));
    assert!(snapshot.previous_tokens().is_empty(), "no rotation, no other token");
}

#[tokio::test]
async fn a_rotation_shows_pending_then_previous_tokens() {
    let client = client().await;
    let id = testing::fresh_secret(&testing::config().await, &json!({"B24_APPLICATION_TOKEN": "tok-1"})).await;
    let clock = ManualClock::new(t(0));

    let v2 = put(&client, &id, json!({"B24_APPLICATION_TOKEN": "tok-2"}), &[stage::PENDING]).await;
    let during = source(&client, &id, &clock).snapshot().await.unwrap();
    assert_eq!(during.current.values.get("B24_APPLICATION_TOKEN").map(Secret::expose), Some("tok-1"));
    assert_eq!(exposed(&during.previous_tokens()), ["tok-2"], "the pending token is accepted while the rotation runs");

    let v1 = during.current.id.clone();
    client.update_secret_version_stage().secret_id(&id).version_stage(stage::CURRENT).move_to_version_id(&v2).remove_from_version_id(&v1).send().await.unwrap();
    let promoted = source(&client, &id, &clock).snapshot().await.unwrap();
    assert_eq!(promoted.current.id, v2);
    assert!(promoted.pending.is_none(), "AWSPENDING on the current version is not another version");
    assert_eq!(exposed(&promoted.previous_tokens()), ["tok-1"], "the previous token stays accepted after the rotation");

    client.update_secret_version_stage().secret_id(&id).version_stage(stage::PENDING).remove_from_version_id(&v2).send().await.unwrap();
    let after = source(&client, &id, &clock).snapshot().await.unwrap();
    assert_eq!(after.previous.as_ref().map(|p| p.id.as_str()), Some(v1.as_str()));
    assert_eq!(exposed(&after.previous_tokens()), ["tok-1"]);
}

#[tokio::test]
async fn the_snapshot_is_kept_for_the_ttl() {
    let client = client().await;
    let id = testing::fresh_secret(&testing::config().await, &json!({"B24_APPLICATION_TOKEN": "tok-1"})).await;
    let clock = ManualClock::new(t(0));
    let source = source(&client, &id, &clock);
    let token = |s: &olbridge_aws::secrets::SecretSnapshot| s.current.values.get("B24_APPLICATION_TOKEN").unwrap().expose().to_owned();
    assert_eq!(token(&source.snapshot().await.unwrap()), "tok-1");

    put(&client, &id, json!({"B24_APPLICATION_TOKEN": "tok-2"}), &[stage::CURRENT]).await;
    clock.advance(TTL - Duration::from_secs(1));
    assert_eq!(token(&source.snapshot().await.unwrap()), "tok-1", "within the TTL the cached snapshot is served");
    assert_eq!(token(&source.fresher_than(Duration::from_secs(60)).await.unwrap()), "tok-2", "a caller may ask for a fresher one");

    put(&client, &id, json!({"B24_APPLICATION_TOKEN": "tok-3"}), &[stage::CURRENT]).await;
    clock.advance(TTL);
    let s = source.snapshot().await.unwrap();
    assert_eq!(token(&s), "tok-3", "after the TTL it is read again");
    assert_eq!(s.read_at, clock_now(&clock));
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<chrono::Utc> {
    olbridge_core::ports::Clock::now(clock)
}

#[tokio::test]
async fn values_never_appear_in_debug_or_errors() {
    let client = client().await;
    let cfg = testing::config().await;
    let id = testing::fresh_secret(&cfg, &json!({"B24_APPLICATION_TOKEN": "tok-visible?", "BOT_HMAC_SECRET": "hmac-visible?"})).await;
    let source = source(&client, &id, &ManualClock::new(t(0)));
    let snapshot = source.snapshot().await.unwrap();
    let shown = format!("{source:?} {snapshot:?}");
    assert!(!shown.contains("visible?") && shown.contains("B24_APPLICATION_TOKEN"), "{shown}");

    let bad = testing::fresh_secret(&cfg, &json!({"B24_APPLICATION_TOKEN": "tok-9", "BOT_HMAC_SECRET": 12_345_678})).await;
    let err = SecretSource::new(client.clone(), &bad, TTL, Arc::new(ManualClock::new(t(0)))).snapshot().await.unwrap_err();
    assert!(matches!(err, SecretError::Malformed { .. }) && !err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("BOT_HMAC_SECRET is not a string") && !text.contains("12345678") && !text.contains("tok-9"), "{text}");

    let missing = SecretSource::new(client, "olbridge-test/no-such-secret", TTL, Arc::new(ManualClock::new(t(0)))).snapshot().await.unwrap_err();
    assert!(matches!(missing, SecretError::NotFound { .. }) && !missing.is_retryable(), "{missing:?}");
    assert!(missing.to_string().contains("check OLBRIDGE_SECRET_ID"), "{missing}");
}

#[test]
fn the_secret_keys_are_the_deployments() {
    let spec = testing::spec();
    let keys: Vec<&str> = spec["secret"]["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(keys, SECRET_KEYS);
}
