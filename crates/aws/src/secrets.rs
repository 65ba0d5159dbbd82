//! The one JSON secret (`OLBRIDGE_SECRET_ID`): its layout, the calls on it, and [`SecretSource`],
//! the cached reader the Lambda functions build their configuration from.
//!
//! # Layout
//! The secret's value is a JSON object whose keys are the environment variables it replaces
//! ([`SECRET_KEYS`], the same list as `infra/resources.json`): `B24_WEBHOOK_BASE`,
//! `B24_APPLICATION_TOKEN`, `BOT_HTTP_AUTH`, `BOT_HMAC_SECRET`. Other keys are kept by the rotator
//! but ignored (with a warning naming them) by [`SecretSnapshot::merged_env`], so a typo is visible
//! and the secret cannot quietly override non-secret settings.
//!
//! Stages ([`stage`]): AWSCURRENT is what everyone uses; AWSPREVIOUS is the version before the last
//! rotation; AWSPENDING exists while a rotation runs; [`stage::STAGED`] marks the new webhook an
//! admin staged for the next rotation (see `docs/rotation.md`: it cannot be AWSPENDING itself,
//! because RotateSecret refuses to start while AWSPENDING sits on a version other than
//! AWSCURRENT).
//!
//! # Reading: [`SecretSource`]
//! A function loads its plain configuration first (`Config::from_env`, which names the secret),
//! then asks the source for a [`SecretSnapshot`] and builds the real configuration from
//! [`SecretSnapshot::merged_env`]: secret values override the environment, blank ones are ignored.
//! The snapshot reads AWSCURRENT, AWSPREVIOUS and AWSPENDING, each by explicit `VersionStage` (moto
//! serves a stale version otherwise), and is kept for `OLBRIDGE_SECRET_TTL_SEC`. When a re-read
//! fails transiently, the expired snapshot is served (with a warning) rather than failing every
//! invocation: a webhook does not stop working the second a rotation ends.
//!
//! # Tokens accepted during a rotation
//! [`SecretSnapshot::previous_tokens`] gives the application tokens of AWSPREVIOUS and of AWSPENDING
//! (when it is on another version than AWSCURRENT), besides the current one:
//! - AWSPREVIOUS, because Lambda instances and the portal do not switch at the same instant: an
//!   instance may hold a snapshot for up to the TTL, and the portal may send the old token a while.
//! - AWSPENDING, because when an admin stages a new token (re-registering the bot changes it), the
//!   portal sends the new one from that moment, before finishSecret promotes it. A pending value is
//!   written only by those allowed to write the secret, the same trust as AWSCURRENT, and it
//!   disappears when the rotation finishes (or is cleaned up after a failure, see the runbook).
//!
//! # Why not `aws_secretsmanager_caching`
//! AWS's caching crate was considered. It caches one stage per entry with its own clock (tests
//! could not control time), returns `Box<dyn Error>` (no retryable/permanent split), derives `Debug`
//! on structures holding the secret string, and re-validates with a `DescribeSecret` per refresh. We
//! need three stages read together as one snapshot, values that never reach a `Debug`, errors
//! classified once, and a clock we control: [`SecretSource`] does that in a few dozen lines.
//!
//! # Map
//! - `values`: [`SecretValues`] (a version's JSON object, values hidden) and [`Version`].
//! - `versions`: [`SecretVersions`], the Secrets Manager calls, with [`SecretError`] classified
//!   once.

mod values;
mod versions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use olbridge_core::config::{Config, ConfigError, vars};
use olbridge_core::domain::secret::Secret;
use olbridge_core::ports::Clock;

pub use values::{SecretValues, Version};
pub use versions::{Description, SecretError, SecretVersions};

/// The keys of the secret: the environment variables it replaces (as in `infra/resources.json`).
pub const SECRET_KEYS: [&str; 4] = [vars::B24_WEBHOOK_BASE, vars::B24_APPLICATION_TOKEN, vars::BOT_HTTP_AUTH, vars::BOT_HMAC_SECRET];

/// Staging labels.
pub mod stage {
    /// The version in use.
    pub const CURRENT: &str = "AWSCURRENT";
    /// The version before the last rotation.
    pub const PREVIOUS: &str = "AWSPREVIOUS";
    /// The version a running rotation is preparing.
    pub const PENDING: &str = "AWSPENDING";
    /// Values an admin staged for the next rotation (a new webhook, which cannot be created through
    /// the API). Only the rotator reads it.
    pub const STAGED: &str = "OLBRIDGE_STAGED";
}

/// The secret as read at one moment: AWSCURRENT, and AWSPREVIOUS / AWSPENDING when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSnapshot {
    /// AWSCURRENT.
    pub current: Version,
    /// AWSPREVIOUS.
    pub previous: Option<Version>,
    /// AWSPENDING, when on another version than AWSCURRENT and holding a value.
    pub pending: Option<Version>,
    /// When it was read.
    pub read_at: DateTime<Utc>,
}

impl SecretSnapshot {
    /// `env` with the secret's values laid over it ([`SECRET_KEYS`] only; blank values ignored):
    /// what `Config::from_map` takes.
    pub fn merged_env(&self, env: &HashMap<String, String>) -> HashMap<String, String> {
        let mut merged = env.clone();
        for key in SECRET_KEYS {
            if let Some(v) = self.current.values.get(key) {
                merged.insert(key.to_owned(), v.expose().to_owned());
            }
        }
        merged
    }

    /// The configuration from `env` and the secret.
    pub fn config(&self, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_map(&self.merged_env(env))
    }

    /// Application tokens accepted besides the current one while a rotation is under way (see the
    /// module docs): `ReceiveSettings::previous_tokens`.
    pub fn previous_tokens(&self) -> Vec<Secret> {
        self.other_values(vars::B24_APPLICATION_TOKEN)
    }

    /// The values of `key` in AWSPENDING and AWSPREVIOUS that differ from the current one, without
    /// repeats (e.g. a bot client that signs with the previous `BOT_HMAC_SECRET` too during the
    /// overlap).
    pub fn other_values(&self, key: &str) -> Vec<Secret> {
        let current = self.current.values.get(key);
        let mut out: Vec<Secret> = Vec::new();
        for v in [&self.pending, &self.previous].into_iter().flatten().filter_map(|v| v.values.get(key)) {
            if Some(v) != current && !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }
}

/// Reads the secret, keeping a [`SecretSnapshot`] for a TTL. One per process, shared.
#[derive(Debug)]
pub struct SecretSource {
    versions: SecretVersions,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    cache: tokio::sync::Mutex<Option<Arc<SecretSnapshot>>>,
}

impl SecretSource {
    /// A source for `secret_id`, keeping snapshots for `ttl`.
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self { versions: SecretVersions::new(client, secret_id), ttl, clock, cache: tokio::sync::Mutex::new(None) }
    }

    /// The source `config` names (`OLBRIDGE_SECRET_ID`, `OLBRIDGE_SECRET_TTL_SEC`), `None` when it
    /// names no secret.
    pub fn from_config(sdk: &aws_config::SdkConfig, config: &Config, clock: Arc<dyn Clock>) -> Option<Self> {
        let id = config.aws.secret_id.as_ref()?;
        Some(Self::new(aws_sdk_secretsmanager::Client::new(sdk), id, config.aws.secret_ttl, clock))
    }

    /// The secret's id.
    pub fn secret_id(&self) -> &str {
        self.versions.secret_id()
    }

    /// The snapshot, read again when older than the TTL.
    pub async fn snapshot(&self) -> Result<Arc<SecretSnapshot>, SecretError> {
        self.fresher_than(self.ttl).await
    }

    /// The snapshot, read again when older than `max_age`: e.g. after an event's token matched
    /// nothing, with a short `max_age` so a burst of forged events cannot make every call a read.
    pub async fn fresher_than(&self, max_age: Duration) -> Result<Arc<SecretSnapshot>, SecretError> {
        let mut cache = self.cache.lock().await;
        let now = self.clock.now();
        if let Some(s) = cache.as_ref().filter(|s| now.signed_duration_since(s.read_at).to_std().is_ok_and(|age| age < max_age)) {
            return Ok(Arc::clone(s));
        }
        match self.read(now).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *cache = Some(Arc::clone(&fresh));
                Ok(fresh)
            }
            Err(e) if e.is_retryable() && cache.is_some() => {
                tracing::warn!(secret = self.secret_id(), error = %e, "could not re-read the secret; using the last snapshot");
                cache.as_ref().map(Arc::clone).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn read(&self, now: DateTime<Utc>) -> Result<SecretSnapshot, SecretError> {
        let v = &self.versions;
        let (current, previous, pending) = tokio::join!(v.read_current(), v.read_stage(stage::PREVIOUS), v.read_stage(stage::PENDING));
        let current = current?;
        let unknown: Vec<&str> = current.values.keys().filter(|k| !SECRET_KEYS.contains(k)).collect();
        if !unknown.is_empty() {
            tracing::warn!(secret = self.secret_id(), keys = ?unknown, "the secret has keys that are not secret settings; they are ignored");
        }
        let pending = pending?.filter(|p| p.id != current.id);
        Ok(SecretSnapshot { previous: previous?, pending, current, read_at: now })
    }
}
