//! Staging a new webhook for the next rotation (`olbridge-aws stage-webhook`).
//!
//! A Bitrix24 incoming webhook is created by an admin in the portal's UI; no API creates one. So
//! the admin creates it, and this puts it on the secret as a version labelled
//! [`stage::STAGED`] holding only the staged keys. The label moves to the newest staged version,
//! so staging again replaces what was staged. The next rotation (scheduled, or `--rotate-now`)
//! copies it into the new version, tests it and promotes it; finishSecret then removes the label.
//!
//! It is not AWSPENDING, although that is what the new value becomes: RotateSecret refuses to
//! start while AWSPENDING sits on a version other than AWSCURRENT ("a previous rotation isn't
//! complete"), so a staged AWSPENDING would block the very rotation meant to use it.
//!
//! Before staging, the webhook must be for the same portal as the current one, differ from it,
//! and (unless told not to) answer `profile` and `scope` with the scopes the bridge needs: a
//! mistake shows here, weeks before the rotation would trip on it.

use olbridge_aws::secrets::{SecretValues, SecretVersions, stage};
use olbridge_core::b24::{ClientOptions, WebhookBase};
use olbridge_core::config::vars;
use olbridge_core::domain::secret::Secret;

use crate::check::{WebhookReport, check_webhook};
use crate::error::RotationError;

/// What to stage.
#[derive(Debug, Clone)]
pub struct StageRequest {
    /// The new webhook URL (a secret: it holds the code).
    pub webhook_base: Secret,
    /// A new application token, when the bot was registered again.
    pub application_token: Option<Secret>,
    /// Test the webhook against the portal first (`None`: don't).
    pub check: Option<ClientOptions>,
}

/// What was staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The staged version's id.
    pub version_id: String,
    /// The check's result, when one ran.
    pub report: Option<WebhookReport>,
}

/// Validates and stages `request` on `secret`.
pub async fn stage_webhook(secret: &SecretVersions, request: StageRequest) -> Result<Staged, RotationError> {
    let webhook = WebhookBase::parse(request.webhook_base.expose()).map_err(|e| RotationError::Invalid(e.to_string()))?;
    let current = secret.read_current().await?;
    if let Some(old) = current.values.get(vars::B24_WEBHOOK_BASE).and_then(|w| WebhookBase::parse(w.expose()).ok()) {
        if old == webhook {
            return Err(RotationError::StagedIsCurrent);
        }
        if old.domain() != webhook.domain() {
            return Err(RotationError::Invalid(format!("the new webhook is for portal {}, the current one for {}", webhook.domain(), old.domain())));
        }
    }
    let report = match request.check {
        Some(options) => Some(check_webhook(&webhook, options).await?),
        None => None,
    };
    let mut values = SecretValues::default();
    values.set(vars::B24_WEBHOOK_BASE, request.webhook_base);
    if let Some(token) = request.application_token {
        values.set(vars::B24_APPLICATION_TOKEN, token);
    }
    let token = uuid::Uuid::new_v4().to_string();
    let version_id = secret.put(&token, &values, &[stage::STAGED]).await?;
    Ok(Staged { version_id, report })
}
