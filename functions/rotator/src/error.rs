//! The rotator's one error type, classified in one place: what Lambda reports as `errorType`
//! ([`RotationError::code`]) and whether Secrets Manager's retry of the rotation can help
//! ([`RotationError::is_retryable`]). No message ever holds a secret value or a webhook code.

use lambda_runtime::Diagnostic;
use olbridge_aws::secrets::SecretError;

/// The admin command that stages a new webhook (quoted in errors and the runbook).
pub const STAGE_COMMAND: &str = "olbridge-aws stage-webhook --secret-id <secret> --webhook-base <new webhook URL>";

/// Why a rotation step failed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The event names a step this function does not know.
    #[error("unknown rotation step {0:?} (expected createSecret, setSecret, testSecret or finishSecret)")]
    UnknownStep(String),
    /// Rotation is not enabled on the secret.
    #[error("rotation is not enabled on secret {0}")]
    RotationDisabled(String),
    /// The token is not a version of the secret.
    #[error("secret {secret} has no version {token}")]
    UnknownVersion {
        /// The secret.
        secret: String,
        /// The rotation's token.
        token: String,
    },
    /// The token's version is neither AWSCURRENT nor AWSPENDING.
    #[error("version {token} of secret {secret} is not AWSPENDING: not part of a rotation")]
    NotPending {
        /// The secret.
        secret: String,
        /// The rotation's token.
        token: String,
    },
    /// No new webhook was staged.
    #[error(
        "nothing staged: the quarterly webhook rotation is due; stage a new webhook with `{STAGE_COMMAND}` (see docs/rotation.md), then rotate again ({0})"
    )]
    NothingStaged(String),
    /// The staged webhook is the one in use.
    #[error("the staged webhook is the current one: create a new incoming webhook in Bitrix24 and stage it with `{STAGE_COMMAND}`")]
    StagedIsCurrent,
    /// A staged or pending value is unusable.
    #[error("invalid secret value: {0}")]
    Invalid(String),
    /// The pending version has no value (createSecret did not run, or failed).
    #[error("version {0} has no AWSPENDING value: createSecret has not completed")]
    PendingMissing(String),
    /// The new webhook failed its test against the portal.
    #[error("the new webhook failed its test: {detail}")]
    WebhookTest {
        /// What failed (never the webhook's code).
        detail: String,
        /// Whether the portal failed transiently (a timeout, a 5xx), not the webhook.
        retryable: bool,
    },
    /// Secrets Manager failed.
    #[error(transparent)]
    Secrets(#[from] SecretError),
}

impl RotationError {
    /// A stable name for logs, alarms and Lambda's `errorType`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownStep(_) => "UnknownStep",
            Self::RotationDisabled(_) => "RotationDisabled",
            Self::UnknownVersion { .. } => "UnknownVersion",
            Self::NotPending { .. } => "NotPending",
            Self::NothingStaged(_) => "NothingStaged",
            Self::StagedIsCurrent => "StagedIsCurrent",
            Self::Invalid(_) => "InvalidSecretValue",
            Self::PendingMissing(_) => "PendingMissing",
            Self::WebhookTest { .. } => "WebhookTestFailed",
            Self::Secrets(_) => "SecretsManager",
        }
    }

    /// Whether running the step again later may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Secrets(e) => e.is_retryable(),
            Self::WebhookTest { retryable, .. } => *retryable,
            Self::PendingMissing(_) => true,
            _ => false,
        }
    }
}

impl From<RotationError> for Diagnostic {
    fn from(e: RotationError) -> Self {
        Diagnostic { error_type: e.code().to_owned(), error_message: e.to_string() }
    }
}
