//! The four rotation steps, each idempotent, behind one guard.
//!
//! Secrets Manager calls the function four times with the same secret and token (the new
//! version's id), and retries a failed rotation from the start: every step must be safe to repeat.
//!
//! - **guard** (every step): rotation is enabled; the token is a version of the secret; a token
//!   already AWSCURRENT means the rotation is done (succeed, do nothing); a token that is not
//!   AWSPENDING is not ours to touch (fail).
//! - **createSecret**: if the token already has an AWSPENDING value, done. Otherwise the new value
//!   is AWSCURRENT's, with what the admin staged ([`stage::STAGED`]: the new `B24_WEBHOOK_BASE`,
//!   optionally `B24_APPLICATION_TOKEN` / `BOT_HTTP_AUTH`) laid over it, and a fresh
//!   `BOT_HMAC_SECRET` when signing is on (32 bytes from the OS-seeded CSPRNG, hex; no
//!   `GetRandomPassword`, so no extra permission on `*`). A Bitrix24 webhook cannot be created
//!   through the API, so nothing staged means the rotation **fails** loudly, with a metric an alarm
//!   watches (`RotationNothingStaged` in core's metric catalogue; every failed step also counts
//!   `RotationFailed`).
//! - **setSecret**: nothing can be pushed (the webhook exists in Bitrix24 already, the bot has no
//!   API to receive a key): it checks the pending value exists, so a step out of order fails.
//! - **testSecret**: the pending webhook must be for the same portal and answer `profile` and
//!   `scope` with the scopes the bridge needs. A bad webhook stops here, before anyone uses it.
//! - **finishSecret**: releases the staged version that was consumed, moves AWSCURRENT to the token
//!   (Secrets Manager puts AWSPREVIOUS on the old one) and removes AWSPENDING. The order makes a
//!   retry safe: until AWSCURRENT moves, the guard lets the step run again; after, it says "done".

use std::sync::Arc;

use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use olbridge_aws::secrets::{Description, SecretValues, SecretVersions, Version, stage};
use olbridge_core::b24::{ClientOptions, WebhookBase};
use olbridge_core::config::vars;
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::Clock;
use rand::RngCore;
use tracing::Instrument;

use crate::check::check_webhook;
use crate::error::RotationError;
use olbridge_aws::emf::Emf;

/// Keys an admin may stage; `BOT_HMAC_SECRET` is generated unless staged.
pub const STAGEABLE_KEYS: [&str; 4] = [vars::B24_WEBHOOK_BASE, vars::B24_APPLICATION_TOKEN, vars::BOT_HTTP_AUTH, vars::BOT_HMAC_SECRET];

/// What the handler needs, built once in `main`.
#[derive(Debug, Clone)]
pub struct Rotator {
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// How testSecret calls the portal.
    pub portal: ClientOptions,
    /// Where the metric line goes.
    pub metrics: Emf,
    /// Time, for metric timestamps.
    pub clock: Arc<dyn Clock>,
}

/// A rotation step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `createSecret`.
    Create,
    /// `setSecret`.
    Set,
    /// `testSecret`.
    Test,
    /// `finishSecret`.
    Finish,
}

impl Step {
    /// Parses the event's `Step`.
    pub fn parse(s: &str) -> Result<Self, RotationError> {
        match s {
            "createSecret" => Ok(Self::Create),
            "setSecret" => Ok(Self::Set),
            "testSecret" => Ok(Self::Test),
            "finishSecret" => Ok(Self::Finish),
            other => Err(RotationError::UnknownStep(other.to_owned())),
        }
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The step did its work.
    Done,
    /// Nothing to do: an earlier attempt did it (a retry), or the rotation is over.
    AlreadyDone,
}

/// Handles one rotation event.
pub async fn handle(rotator: &Rotator, event: SecretsManagerSecretRotationEvent) -> Result<Outcome, RotationError> {
    let step = Step::parse(&event.step)?;
    let secret = SecretVersions::new(rotator.secrets.clone(), event.secret_id.clone());
    let token = event.client_request_token.as_str();
    let span = tracing::info_span!("rotation", step = event.step.as_str(), secret = event.secret_id.as_str(), token);
    let result = run(rotator, &secret, step, token).instrument(span.clone()).await;
    span.in_scope(|| match &result {
        Ok(outcome) => tracing::info!(?outcome, "rotation step finished"),
        Err(e) => tracing::error!(code = e.code(), retryable = e.is_retryable(), error = %e, "rotation step failed"),
    });
    if let Err(e) = &result {
        let nothing_staged = matches!(e, RotationError::NothingStaged(_));
        rotator.metrics.emit(&olbridge_core::metrics::rotation_failed(nothing_staged), rotator.clock.now(), &[]);
    }
    result
}

async fn run(rotator: &Rotator, secret: &SecretVersions, step: Step, token: &str) -> Result<Outcome, RotationError> {
    let Some(description) = guard(secret, token).await? else {
        return Ok(Outcome::AlreadyDone);
    };
    match step {
        Step::Create => create(secret, token).await,
        Step::Set => pending(secret, token).await.map(|_| Outcome::Done),
        Step::Test => test(rotator, secret, token).await,
        Step::Finish => finish(secret, token, &description).await,
    }
}

/// The guard of every step: `None` when the token is already AWSCURRENT (done).
async fn guard(secret: &SecretVersions, token: &str) -> Result<Option<Description>, RotationError> {
    let d = secret.describe().await?;
    let name = || secret.secret_id().to_owned();
    if !d.rotation_enabled {
        return Err(RotationError::RotationDisabled(name()));
    }
    let stages = d.stages_of(token).ok_or_else(|| RotationError::UnknownVersion { secret: name(), token: token.to_owned() })?;
    if stages.iter().any(|s| s == stage::CURRENT) {
        return Ok(None);
    }
    if !stages.iter().any(|s| s == stage::PENDING) {
        return Err(RotationError::NotPending { secret: name(), token: token.to_owned() });
    }
    Ok(Some(d))
}

async fn pending(secret: &SecretVersions, token: &str) -> Result<Version, RotationError> {
    secret.read_version(token, stage::PENDING).await?.ok_or_else(|| RotationError::PendingMissing(token.to_owned()))
}

fn webhook_of(values: &SecretValues, what: &str) -> Result<Option<WebhookBase>, RotationError> {
    values
        .get(vars::B24_WEBHOOK_BASE)
        .map(|w| WebhookBase::parse(w.expose()).map_err(|e| RotationError::Invalid(format!("{what} {}: {e}", vars::B24_WEBHOOK_BASE))))
        .transpose()
}

/// A new `BOT_HMAC_SECRET`: 32 bytes from the thread's CSPRNG (ChaCha, seeded by the OS), as hex.
fn new_hmac_secret() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn create(secret: &SecretVersions, token: &str) -> Result<Outcome, RotationError> {
    let current = secret.read_current().await?;
    if secret.read_version(token, stage::PENDING).await?.is_some() {
        return Ok(Outcome::AlreadyDone);
    }
    let staged = secret.read_stage(stage::STAGED).await?;
    let Some(staged) = staged.filter(|s| s.values.get(vars::B24_WEBHOOK_BASE).is_some()) else {
        return Err(RotationError::NothingStaged(format!("secret {} has no {} version with a {}", secret.secret_id(), stage::STAGED, vars::B24_WEBHOOK_BASE)));
    };
    let new_webhook = webhook_of(&staged.values, "staged")?;
    if new_webhook.is_some() && new_webhook == webhook_of(&current.values, "current").ok().flatten() {
        return Err(RotationError::StagedIsCurrent);
    }
    let mut values = current.values.clone();
    for key in STAGEABLE_KEYS {
        if let Some(v) = staged.values.get(key) {
            values.set(key, v.clone());
        }
    }
    // Signing stays off when it was off; a staged key wins over a generated one.
    if current.values.get(vars::BOT_HMAC_SECRET).is_some() && staged.values.get(vars::BOT_HMAC_SECRET).is_none() {
        values.set(vars::BOT_HMAC_SECRET, new_hmac_secret());
    }
    secret.put(token, &values, &[stage::PENDING]).await?;
    Ok(Outcome::Done)
}

async fn test(rotator: &Rotator, secret: &SecretVersions, token: &str) -> Result<Outcome, RotationError> {
    let pending = pending(secret, token).await?;
    let webhook =
        webhook_of(&pending.values, "pending")?.ok_or_else(|| RotationError::Invalid(format!("the pending version has no {}", vars::B24_WEBHOOK_BASE)))?;
    let current = secret.read_current().await?;
    if let Some(old) = webhook_of(&current.values, "current").ok().flatten()
        && old.domain() != webhook.domain()
    {
        return Err(RotationError::WebhookTest {
            detail: format!("the new webhook is for portal {}, the current one for {}: events would be refused", webhook.domain(), old.domain()),
            retryable: false,
        });
    }
    let report = check_webhook(&webhook, rotator.portal.clone()).await?;
    tracing::info!(user_id = report.user_id, scopes = ?report.scopes, "the new webhook answers");
    Ok(Outcome::Done)
}

async fn finish(secret: &SecretVersions, token: &str, d: &Description) -> Result<Outcome, RotationError> {
    let pending = pending(secret, token).await?;
    if let Some(staged_id) = d.version_with(stage::STAGED) {
        let staged = secret.read_version(staged_id, stage::STAGED).await?;
        let consumed = staged.is_some_and(|s| s.values.get(vars::B24_WEBHOOK_BASE) == pending.values.get(vars::B24_WEBHOOK_BASE));
        if consumed {
            secret.move_stage(stage::STAGED, None, Some(staged_id)).await?;
        }
    }
    let old = d.version_with(stage::CURRENT).map(str::to_owned);
    secret.move_stage(stage::CURRENT, Some(token), old.as_deref()).await?;
    secret.move_stage(stage::PENDING, None, Some(token)).await?;
    Ok(Outcome::Done)
}
