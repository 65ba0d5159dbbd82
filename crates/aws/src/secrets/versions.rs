//! The Secrets Manager calls olbridge makes, on one secret, with every SDK error classified once
//! (`classify`).
//!
//! Reads always name a `VersionStage` (or a `VersionId` together with its stage): moto answers a
//! `GetSecretValue` without one with a stale version after AWSCURRENT moved, and on AWS naming
//! the stage is harmless. A missing stage is `Ok(None)`, not an error: AWSPREVIOUS and AWSPENDING
//! are absent most of the time.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use super::values::{SecretValues, Version};

/// Why a Secrets Manager call failed. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A transient failure (network, throttling, a service error): retry later.
    #[error("Secrets Manager {operation} on {secret_id} failed: {detail}")]
    Backend {
        /// The API operation.
        operation: &'static str,
        /// The secret.
        secret_id: String,
        /// What failed (the service's code and message, or the kind of failure).
        detail: String,
    },
    /// The secret (or its AWSCURRENT value) does not exist: a configuration problem.
    #[error("secret {secret_id} not found ({what}): check OLBRIDGE_SECRET_ID and that the secret has a value")]
    NotFound {
        /// The secret.
        secret_id: String,
        /// What was looked for.
        what: String,
    },
    /// The call was refused for what it is (access denied, invalid request or parameters).
    #[error("Secrets Manager refused {operation} on {secret_id}: {detail}")]
    Refused {
        /// The API operation.
        operation: &'static str,
        /// The secret.
        secret_id: String,
        /// What failed (the service's code and message, or the kind of failure).
        detail: String,
    },
    /// A version's value is not a JSON object of strings.
    #[error("secret {secret_id} version {version} is malformed: {problem}")]
    Malformed {
        /// The secret.
        secret_id: String,
        /// The version id.
        version: String,
        /// What is wrong (names a key or a position, never a value).
        problem: String,
    },
}

impl SecretError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend { .. })
    }
}

/// The one classification of SDK errors. `ResourceNotFoundException` is handled by the callers
/// (absent stage); here it is permanent like the other request errors.
fn classify<E: ProvideErrorMetadata, R>(operation: &'static str, secret_id: &str, e: SdkError<E, R>) -> SecretError {
    let permanent = matches!(
        e.code(),
        Some(
            "ResourceNotFoundException"
                | "InvalidRequestException"
                | "InvalidParameterException"
                | "AccessDeniedException"
                | "DecryptionFailure"
                | "ResourceExistsException"
                | "EncryptionFailure"
        )
    );
    let detail = crate::sdk_error::describe(&e);
    let secret_id = secret_id.to_owned();
    if permanent { SecretError::Refused { operation, secret_id, detail } } else { SecretError::Backend { operation, secret_id, detail } }
}

fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ResourceNotFoundException")
}

/// The secret's rotation state: whether rotation is on, and which stages each version carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// `RotationEnabled`.
    pub rotation_enabled: bool,
    /// `VersionIdsToStages`.
    pub versions: BTreeMap<String, Vec<String>>,
}

impl Description {
    /// The version carrying `stage`.
    pub fn version_with(&self, stage: &str) -> Option<&str> {
        self.versions.iter().find(|(_, stages)| stages.iter().any(|s| s == stage)).map(|(id, _)| id.as_str())
    }

    /// The stages of `version`, `None` when the version is unknown.
    pub fn stages_of(&self, version: &str) -> Option<&[String]> {
        self.versions.get(version).map(Vec::as_slice)
    }
}

/// The calls on one secret.
#[derive(Debug, Clone)]
pub struct SecretVersions {
    client: Client,
    secret_id: String,
}

impl SecretVersions {
    /// Calls on `secret_id` (a name or an ARN).
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self { client, secret_id: secret_id.into() }
    }

    /// The secret.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    fn parse(&self, id: Option<String>, text: Option<String>) -> Result<Version, SecretError> {
        let id = id.unwrap_or_default();
        let values = SecretValues::parse(text.as_deref().unwrap_or("")).map_err(|problem| SecretError::Malformed {
            secret_id: self.secret_id.clone(),
            version: id.clone(),
            problem: if text.is_none() { "no SecretString (binary secrets are not supported)".into() } else { problem },
        })?;
        Ok(Version { id, values })
    }

    /// `DescribeSecret`.
    pub async fn describe(&self) -> Result<Description, SecretError> {
        let out = self.client.describe_secret().secret_id(&self.secret_id).send().await.map_err(|e| classify("DescribeSecret", &self.secret_id, e))?;
        Ok(Description {
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: out.version_ids_to_stages().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        })
    }

    /// The version carrying `stage`, read by that stage; `None` when no version carries it (or the
    /// one that does has no value yet, like the empty AWSPENDING version a rotation starts with).
    pub async fn read_stage(&self, stage: &str) -> Result<Option<Version>, SecretError> {
        self.read(None, stage).await
    }

    /// Version `id`, if it carries `stage` and has a value.
    pub async fn read_version(&self, id: &str, stage: &str) -> Result<Option<Version>, SecretError> {
        self.read(Some(id), stage).await
    }

    async fn read(&self, id: Option<&str>, stage: &str) -> Result<Option<Version>, SecretError> {
        let result = self.client.get_secret_value().secret_id(&self.secret_id).set_version_id(id.map(str::to_owned)).version_stage(stage).send().await;
        match result {
            Ok(out) => self.parse(out.version_id, out.secret_string).map(Some),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(classify("GetSecretValue", &self.secret_id, e)),
        }
    }

    /// The AWSCURRENT version; its absence is an error.
    pub async fn read_current(&self) -> Result<Version, SecretError> {
        self.read_stage(super::stage::CURRENT)
            .await?
            .ok_or_else(|| SecretError::NotFound { secret_id: self.secret_id.clone(), what: super::stage::CURRENT.into() })
    }

    /// `PutSecretValue` of `values` as version `token` with `stages`; returns the version id.
    pub async fn put(&self, token: &str, values: &SecretValues, stages: &[&str]) -> Result<String, SecretError> {
        let out = self
            .client
            .put_secret_value()
            .secret_id(&self.secret_id)
            .client_request_token(token)
            .secret_string(values.to_json())
            .set_version_stages(Some(stages.iter().map(|s| (*s).to_owned()).collect()))
            .send()
            .await
            .map_err(|e| classify("PutSecretValue", &self.secret_id, e))?;
        Ok(out.version_id.unwrap_or_else(|| token.to_owned()))
    }

    /// `UpdateSecretVersionStage`: moves `stage` to version `to` (from version `from`), or removes
    /// it from `from` when `to` is `None`.
    pub async fn move_stage(&self, stage: &str, to: Option<&str>, from: Option<&str>) -> Result<(), SecretError> {
        self.client
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .set_move_to_version_id(to.map(str::to_owned))
            .set_remove_from_version_id(from.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify("UpdateSecretVersionStage", &self.secret_id, e))?;
        Ok(())
    }

    /// `RotateSecret` with the rotation already configured on the secret; returns the new
    /// version's id (the rotation's token).
    pub async fn rotate(&self) -> Result<String, SecretError> {
        let out = self.client.rotate_secret().secret_id(&self.secret_id).send().await.map_err(|e| classify("RotateSecret", &self.secret_id, e))?;
        Ok(out.version_id.unwrap_or_default())
    }
}
