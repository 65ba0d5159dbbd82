//! Testing a webhook against the portal before anyone depends on it: `profile` (the webhook works
//! and names its user) and `scope` (it has what the bridge needs). Used by testSecret and by
//! `olbridge-aws stage-webhook` before it stages anything.

use std::time::Duration;

use olbridge_core::b24::{B24Client, ClientOptions, WebhookBase};
use olbridge_core::retry::RetryPolicy;

use crate::error::RotationError;

/// The scopes the bridge needs (the same list `olbridge doctor` checks).
pub const REQUIRED_SCOPES: [&str; 3] = ["im", "imopenlines", "imbot"];

/// What the portal said about a working webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReport {
    /// The webhook's user.
    pub user_id: u64,
    /// The scopes it has.
    pub scopes: Vec<String>,
}

/// Client options for a check: a few quick attempts, so a rotation step stays well inside the
/// function's timeout.
pub fn check_options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy::exponential(3, Duration::from_millis(300), Duration::from_secs(2)).with_budget(Duration::from_secs(15)),
        timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

/// Calls `profile` and `scope` with `webhook`; fails when either fails or a scope is missing.
pub async fn check_webhook(webhook: &WebhookBase, options: ClientOptions) -> Result<WebhookReport, RotationError> {
    let fail = |e: olbridge_core::b24::B24Error| RotationError::WebhookTest { detail: format!("{webhook}: {e}"), retryable: e.is_retryable() };
    let client = B24Client::new(webhook.clone(), options).map_err(fail)?;
    let profile = client.profile().await.map_err(fail)?;
    let scopes = client.scope().await.map_err(fail)?;
    let missing: Vec<&str> = REQUIRED_SCOPES.into_iter().filter(|s| !scopes.iter().any(|g| g == s)).collect();
    if !missing.is_empty() {
        return Err(RotationError::WebhookTest {
            detail: format!("{webhook}: missing scope(s) {}: edit the webhook in Bitrix24 and tick them", missing.join(", ")),
            retryable: false,
        });
    }
    Ok(WebhookReport { user_id: profile.id, scopes })
}
