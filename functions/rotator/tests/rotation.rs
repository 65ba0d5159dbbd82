//! The rotation handler, called directly for each step against moto (moto cannot run RotateSecret
//! with a Lambda: it needs Docker), with the Bitrix24 emulator as the portal. A rotation is started
//! the way Secrets Manager does it: `RotateSecret` with a function ARN moto does not know fails,
//! but leaves what the real service leaves before calling the function: rotation enabled and an
//! empty AWSPENDING version whose id is the token (moto enables rotation only when the call carries
//! rotation rules, as the deployment's schedule does).
//!
//! Needs `AWS_ENDPOINT_URL` (see `olbridge_aws::testing`): without it these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::RotationRulesType;
use b24_emulator::{Emulator, EmulatorConfig};
use olbridge_aws::secrets::{SecretSource, SecretVersions, stage};
use olbridge_aws::testing;
use olbridge_core::b24::ClientOptions;
use olbridge_core::contract::t;
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::ManualClock;
use olbridge_core::retry::RetryPolicy;
use olbridge_rotator::rotation::Step;
use olbridge_rotator::stage::{StageRequest, stage_webhook};
use olbridge_rotator::{Outcome, RotationError, Rotator, handle};
use serde_json::json;

const SCOPES: [&str; 3] = ["im", "imopenlines", "imbot"];

fn fixture(step: &str) -> SecretsManagerSecretRotationEvent {
    let text = match step {
        "create" => include_str!("../../../events/rotation-create.json"),
        "set" => include_str!("../../../events/rotation-set.json"),
        "test" => include_str!("../../../events/rotation-test.json"),
        _ => include_str!("../../../events/rotation-finish.json"),
    };
    serde_json::from_str(text).unwrap()
}

fn event(step: &str, secret: &str, token: &str) -> SecretsManagerSecretRotationEvent {
    let mut e = fixture(step);
    e.secret_id = secret.to_owned();
    e.client_request_token = token.to_owned();
    e
}

fn fast_portal() -> ClientOptions {
    ClientOptions { retry: RetryPolicy::none(), timeout: std::time::Duration::from_secs(5), ..ClientOptions::default() }
}

struct World {
    client: Client,
    rotator: Rotator,
    secret: String,
    metrics: olbridge_aws::emf::Captured,
}

impl World {
    async fn new(value: serde_json::Value) -> Self {
        let cfg = testing::config().await;
        let secret = testing::fresh_secret(&cfg, &value).await;
        let client = Client::new(&cfg);
        let (emf, metrics) = olbridge_aws::emf::Emf::capture();
        let rotator = Rotator { secrets: client.clone(), portal: fast_portal(), metrics: emf, clock: Arc::new(ManualClock::new(t(0))) };
        Self { client, rotator, secret, metrics }
    }

    fn versions(&self) -> SecretVersions {
        SecretVersions::new(self.client.clone(), &self.secret)
    }

    /// What Secrets Manager does before calling the function: returns the rotation's token.
    async fn start_rotation(&self) -> String {
        let token = uuid::Uuid::new_v4().to_string();
        let arn = "arn:aws:lambda:eu-central-1:123456789012:function:olbridge-rotator";
        let started = self
            .client
            .rotate_secret()
            .secret_id(&self.secret)
            .client_request_token(&token)
            .rotation_lambda_arn(arn)
            .rotation_rules(RotationRulesType::builder().automatically_after_days(90).build())
            .send()
            .await;
        assert!(started.is_err(), "moto has no such function, so RotateSecret reports it (and still prepares the version)");
        let d = self.versions().describe().await.unwrap();
        assert!(d.rotation_enabled);
        assert_eq!(d.stages_of(&token), Some(&[stage::PENDING.to_owned()][..]), "{d:?}");
        token
    }

    async fn step(&self, step: &str, token: &str) -> Result<Outcome, RotationError> {
        handle(&self.rotator, event(step, &self.secret, token)).await
    }

    async fn stage(&self, webhook: &str, token: Option<&str>) {
        let request = StageRequest { webhook_base: Secret::new(webhook), application_token: token.map(Secret::new), check: None };
        stage_webhook(&self.versions(), request).await.unwrap();
    }
}

async fn emulator() -> (Emulator, String) {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let demo = emu.seed_demo();
    (emu, demo.webhook_url)
}

fn current_secret(webhook: &str) -> serde_json::Value {
    json!({"B24_WEBHOOK_BASE": webhook, "B24_APPLICATION_TOKEN": "app-1", "BOT_HTTP_AUTH": "Bearer bot", "BOT_HMAC_SECRET": "hmac-1"})
}

#[tokio::test]
async fn a_full_rotation_promotes_the_staged_webhook_and_keeps_the_previous_version_readable() {
    let (emu, old_webhook) = emulator().await;
    let w = World::new(current_secret(&old_webhook)).await;
    let new_webhook = emu.add_webhook(38005, &SCOPES);
    let request = StageRequest { webhook_base: Secret::new(&new_webhook), application_token: Some(Secret::new("app-2")), check: Some(fast_portal()) };
    let staged = stage_webhook(&w.versions(), request).await.unwrap();
    assert_eq!(staged.report.map(|r| r.user_id), Some(38005), "staging tests the webhook first");

    let token = w.start_rotation().await;
    assert_eq!(w.step("create", &token).await.unwrap(), Outcome::Done);
    assert_eq!(w.step("create", &token).await.unwrap(), Outcome::AlreadyDone, "a retried createSecret keeps the first value");
    let pending = w.versions().read_version(&token, stage::PENDING).await.unwrap().unwrap().values;
    assert_eq!(pending.get("B24_WEBHOOK_BASE").map(Secret::expose), Some(new_webhook.as_str()));
    assert_eq!(pending.get("B24_APPLICATION_TOKEN").map(Secret::expose), Some("app-2"));
    assert_eq!(pending.get("BOT_HTTP_AUTH").map(Secret::expose), Some("Bearer bot"), "what cannot be generated is kept");
    let hmac = pending.get("BOT_HMAC_SECRET").unwrap().expose();
    assert!(hmac != "hmac-1" && hmac.len() == 64 && hmac.bytes().all(|b| b.is_ascii_hexdigit()), "a new signing key");

    for step in ["set", "test", "test", "finish"] {
        assert_eq!(w.step(step, &token).await.unwrap(), Outcome::Done, "{step}");
    }
    for step in ["create", "set", "test", "finish"] {
        assert_eq!(w.step(step, &token).await.unwrap(), Outcome::AlreadyDone, "{step} after the rotation");
    }

    let d = w.versions().describe().await.unwrap();
    assert_eq!(d.stages_of(&token), Some(&[stage::CURRENT.to_owned()][..]), "AWSPENDING is removed: {d:?}");
    assert!(d.version_with(stage::PREVIOUS).is_some_and(|v| v != token));
    assert!(d.version_with(stage::STAGED).is_none(), "the staged webhook was consumed: {d:?}");
    let source = SecretSource::new(w.client.clone(), &w.secret, std::time::Duration::from_secs(300), Arc::new(ManualClock::new(t(0))));
    let snapshot = source.snapshot().await.unwrap();
    assert_eq!(snapshot.current.values.get("B24_WEBHOOK_BASE").map(Secret::expose), Some(new_webhook.as_str()));
    let previous = snapshot.previous.as_ref().unwrap();
    assert_eq!(previous.values.get("BOT_HMAC_SECRET").map(Secret::expose), Some("hmac-1"), "AWSPREVIOUS is still readable");
    assert_eq!(snapshot.previous_tokens().iter().map(Secret::expose).collect::<Vec<_>>(), ["app-1"]);
    assert_eq!(snapshot.other_values("BOT_HMAC_SECRET").iter().map(Secret::expose).collect::<Vec<_>>(), ["hmac-1"]);
    assert!(w.metrics.readings().is_empty());
}

#[tokio::test]
async fn nothing_staged_fails_loudly_with_a_metric_and_the_retry_after_staging_succeeds() {
    let (emu, old_webhook) = emulator().await;
    let w = World::new(current_secret(&old_webhook)).await;
    let token = w.start_rotation().await;

    let err = w.step("create", &token).await.unwrap_err();
    assert!(matches!(err, RotationError::NothingStaged(_)) && !err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("nothing staged: the quarterly webhook rotation is due; stage a new webhook with `olbridge-aws stage-webhook"), "{text}");
    assert_eq!(lambda_runtime::Diagnostic::from(err).error_type, "NothingStaged");
    let mut names: Vec<String> = w.metrics.readings().into_iter().map(|r| r.name).collect();
    names.sort();
    assert_eq!(names, ["RotationFailed", "RotationNothingStaged"], "counted as the catalogue defines them (no dimensions)");
    assert!(w.metrics.readings().iter().all(|r| r.dimensions.is_empty() && r.namespace == olbridge_core::metrics::NAMESPACE));
    assert!(w.versions().read_version(&token, stage::PENDING).await.unwrap().is_none(), "nothing was written");
    assert!(w.step("test", &token).await.is_err(), "later steps cannot run on an empty version");

    w.stage(&emu.add_webhook(38005, &SCOPES), None).await;
    for step in ["create", "set", "test", "finish"] {
        assert_eq!(w.step(step, &token).await.unwrap(), Outcome::Done, "{step} after staging");
    }
    assert_eq!(w.metrics.readings().iter().filter(|r| r.name == "RotationNothingStaged").count(), 1, "counted once");
}

#[tokio::test]
async fn a_bad_staged_webhook_fails_test_secret_and_nothing_is_promoted() {
    let (emu, old_webhook) = emulator().await;
    let cases =
        [(format!("{}/rest/38005/wrongcode123/", emu.base_url()), "NO_AUTH_FOUND"), (emu.add_webhook(38005, &["im"]), "missing scope(s) imopenlines, imbot")];
    for (bad, expected) in cases {
        let w = World::new(current_secret(&old_webhook)).await;
        let before = w.versions().read_current().await.unwrap().id;
        w.stage(&bad, None).await;
        let token = w.start_rotation().await;
        assert_eq!(w.step("create", &token).await.unwrap(), Outcome::Done);
        assert_eq!(w.step("set", &token).await.unwrap(), Outcome::Done);
        let err = w.step("test", &token).await.unwrap_err();
        assert!(matches!(err, RotationError::WebhookTest { retryable: false, .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(expected) && !text.contains("wrongcode123"), "the webhook code never shows: {text}");
        assert_eq!(w.versions().read_current().await.unwrap().id, before, "AWSCURRENT did not move");
    }
}

#[tokio::test]
async fn the_guard_refuses_what_is_not_a_rotation() {
    let w = World::new(current_secret("https://portal.bitrix24.test/rest/38005/oldcode/")).await;
    let err = w.step("create", "no-rotation-yet").await.unwrap_err();
    assert!(matches!(err, RotationError::RotationDisabled(_)), "{err:?}");

    let token = w.start_rotation().await;
    let err = w.step("create", "0f0f0f0f-not-a-version").await.unwrap_err();
    assert!(matches!(err, RotationError::UnknownVersion { .. }), "{err:?}");
    let current = w.versions().read_current().await.unwrap().id;
    assert_eq!(w.step("finish", &current).await.unwrap(), Outcome::AlreadyDone, "AWSCURRENT: nothing to do");
    w.stage("https://portal.bitrix24.test/rest/38005/newcode/", None).await;
    let staged = w.versions().describe().await.unwrap().version_with(stage::STAGED).unwrap().to_owned();
    let err = w.step("finish", &staged).await.unwrap_err();
    assert!(matches!(err, RotationError::NotPending { .. }), "a staged version is not a rotation's: {err:?}");
    let mut e = event("create", &w.secret, &token);
    e.step = "rotateEverything".into();
    assert!(matches!(handle(&w.rotator, e).await, Err(RotationError::UnknownStep(_))));
}

#[tokio::test]
async fn staging_refuses_the_current_webhook_and_another_portal() {
    let w = World::new(current_secret("https://portal.bitrix24.test/rest/38005/oldcode/")).await;
    let stage = |webhook: &str| StageRequest { webhook_base: Secret::new(webhook), application_token: None, check: None };
    let same = stage_webhook(&w.versions(), stage("https://portal.bitrix24.test/rest/38005/oldcode/")).await.unwrap_err();
    assert!(matches!(same, RotationError::StagedIsCurrent), "{same:?}");
    let other = stage_webhook(&w.versions(), stage("https://other.bitrix24.test/rest/38005/newcode/")).await.unwrap_err();
    assert!(other.to_string().contains("other.bitrix24.test"), "{other}");
    assert!(w.versions().describe().await.unwrap().version_with(stage::STAGED).is_none(), "nothing staged");
}

#[test]
fn the_fixtures_are_rotation_events_one_per_step() {
    for (file, step) in [("create", Step::Create), ("set", Step::Set), ("test", Step::Test), ("finish", Step::Finish)] {
        let e = fixture(file);
        assert_eq!(Step::parse(&e.step).unwrap(), step);
        assert!(e.secret_id.starts_with("arn:aws:secretsmanager:") && !e.client_request_token.is_empty());
        let again: SecretsManagerSecretRotationEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(again, e);
    }
}
