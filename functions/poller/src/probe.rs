//! Direct invocations of the poller: the deep health check and the synthetic canary.
//!
//! | payload | what runs | returns |
//! |---|---|---|
//! | an EventBridge scheduled event | a poll run ([`crate::run::handle`]) | the [`RunReport`](crate::RunReport) |
//! | `{"olbridge":"health"}` | `olbridge_core::usecase::health` over DynamoDB and SQS | the `HealthReport` JSON |
//! | `{"olbridge":"canary"}` | `olbridge_core::usecase::canary`, then `CanaryFailed` / `CanaryLatency` as one EMF line | the `CanaryResult` JSON |
//!
//! The health and canary invocations take no lease and never poll: they run beside a poll run (the
//! stack reserves two concurrent executions for the function: the run lease keeps the poll runs
//! one at a time, the second slot is for these). The canary's own EventBridge schedule sends
//! `{"olbridge":"canary"}` as the rule's constant input; `aws lambda invoke --payload
//! '{"olbridge":"health"}'` asks for the report by hand (docs/operations.md).
//!
//! A canary waits at most until the invocation's deadline less [`CANARY_MARGIN`], so its metric is
//! always written, even when `OLBRIDGE_CANARY_TIMEOUT_SEC` is longer than the function's timeout.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use olbridge_aws::emf::Emf;
use olbridge_core::b24::B24Client;
use olbridge_core::config::{Config, HealthSettings, Mode};
use olbridge_core::metrics;
use olbridge_core::ports::{Clock, MetaStore, QueueAge};
use olbridge_core::usecase::canary::{self, CanaryResult, CanarySettings};
use olbridge_core::usecase::health::{self, HealthDeps, HealthReport};
use serde_json::{Value, json};
use tracing::{error, info};
use url::Url;

use crate::run::Invocation;

/// Time kept back from the deadline so the canary's metric is written.
pub const CANARY_MARGIN: Duration = Duration::from_secs(5);

/// How long the health check's bot probe waits.
const BOT_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What an invocation asks for.
#[derive(Debug, Clone)]
pub enum Request {
    /// A scheduled poll run.
    Scheduled(Box<EventBridgeEvent>),
    /// `{"olbridge":"health"}`.
    Health,
    /// `{"olbridge":"canary"}`.
    Canary,
}

/// A payload that is neither a scheduled event nor a known direct request.
#[derive(Debug, thiserror::Error)]
#[error("unknown invocation payload: expected an EventBridge scheduled event, {{\"olbridge\":\"health\"}} or {{\"olbridge\":\"canary\"}} ({0})")]
pub struct UnknownRequest(String);

impl From<UnknownRequest> for lambda_runtime::Diagnostic {
    fn from(e: UnknownRequest) -> Self {
        Self { error_type: "UnknownRequest".to_owned(), error_message: e.to_string() }
    }
}

impl Request {
    /// Reads an invocation's payload.
    pub fn parse(payload: Value) -> Result<Self, UnknownRequest> {
        match payload.get("olbridge").and_then(Value::as_str) {
            Some("health") => Ok(Self::Health),
            Some("canary") => Ok(Self::Canary),
            Some(other) => Err(UnknownRequest(format!("olbridge={other:?}"))),
            None => serde_json::from_value(payload).map(|e| Self::Scheduled(Box::new(e))).map_err(|e| UnknownRequest(e.to_string())),
        }
    }
}

/// What the health and canary invocations need, built once per instance.
pub struct ProbeDeps {
    /// The webhook's REST client.
    pub client: B24Client,
    /// The mode.
    pub mode: Mode,
    /// `BOT_HTTP_URL`.
    pub bot_url: Option<Url>,
    /// Thresholds and the canary's settings.
    pub health: HealthSettings,
    /// Where and how the canary writes (`None`: no canary dialog, operator mode).
    pub canary: Option<CanarySettings>,
    /// The table.
    pub meta: Arc<dyn MetaStore>,
    /// The queue.
    pub queue: Arc<dyn QueueAge>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub emf: Emf,
}

impl std::fmt::Debug for ProbeDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeDeps").field("mode", &self.mode).field("health", &self.health).finish_non_exhaustive()
    }
}

impl ProbeDeps {
    /// From the configuration and the instance's clients.
    pub fn new(config: &Config, client: B24Client, meta: Arc<dyn MetaStore>, queue: Arc<dyn QueueAge>, clock: Arc<dyn Clock>, emf: Emf) -> Self {
        Self {
            client,
            mode: config.mode(),
            bot_url: config.bot.url.clone(),
            health: config.health.clone(),
            canary: CanarySettings::from_config(config),
            meta,
            queue,
            clock,
            emf,
        }
    }
}

/// `{"olbridge":"health"}`: the deep health report (logged, and returned).
pub async fn health(deps: &ProbeDeps) -> HealthReport {
    let d = HealthDeps {
        portal: Some(&deps.client),
        mode: deps.mode,
        bot_url: deps.bot_url.as_ref(),
        bot_timeout: BOT_PROBE_TIMEOUT,
        meta: deps.meta.as_ref(),
        queue: deps.queue.as_ref(),
        queue_warn: deps.health.queue_warn,
        queue_fail: deps.health.queue_fail,
    };
    let report = health::check(&d, deps.clock.now()).await;
    info!(status = report.status.as_str(), report = %json!(report), "health check");
    report
}

/// `{"olbridge":"canary"}`: one canary, its metrics as one EMF line, its result in one log line.
pub async fn canary(deps: &ProbeDeps, invocation: &Invocation) -> CanaryResult {
    let result = match &deps.canary {
        None => CanaryResult::Failed { reason: "no canary dialog: set B24_BOT_ID or OLBRIDGE_CANARY_DIALOG".into(), elapsed_ms: 0 },
        Some(settings) => {
            let mut settings = settings.clone();
            if let Some(deadline) = invocation.deadline {
                let left = (deadline - deps.clock.now()).to_std().unwrap_or_default().saturating_sub(CANARY_MARGIN);
                settings.timeout = settings.timeout.min(left);
            }
            canary::run(&deps.client, &settings, &canary::nonce()).await
        }
    };
    deps.emf.emit(&metrics::canary(&result), deps.clock.now(), &[("requestId", json!(invocation.request_id))]);
    if result.passed() {
        info!(canary = "passed", "{}", result.line());
    } else {
        error!(canary = "failed", "{}", result.line());
    }
    result
}
