//! What every Lambda does once per cold start: read the environment, lay the secret over it, build
//! the configuration, and the adapters on the deployment's resources. The functions' `main`s stay
//! wiring only.

use std::collections::HashMap;
use std::sync::Arc;

use olbridge_core::b24::{ClientOptions, RateLimiter, WebhookBase};
use olbridge_core::config::{Config, ConfigError};
use olbridge_core::ports::{Clock, MetaStore};

use crate::dynamo::{DynamoStore, Retention};
use crate::secrets::{SecretError, SecretSnapshot, SecretSource};
use crate::sqs::SqsSink;

/// Why a function cannot start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The environment (with the secret) does not make a valid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The secret could not be read.
    #[error("cannot read the secret: {0}")]
    Secret(#[from] SecretError),
    /// A resource's name is missing from the environment.
    #[error("{0} is not set: the stack gives every function its resources' names")]
    Missing(&'static str),
}

/// A function's configuration and AWS clients, loaded once.
#[derive(Debug)]
pub struct Setup {
    /// The configuration: the environment with the secret's values laid over it.
    pub config: Config,
    /// The SDK configuration (region, credentials, `AWS_ENDPOINT_URL`).
    pub sdk: aws_config::SdkConfig,
    /// The secret, for a function that re-reads it (a token that matched nothing).
    pub secrets: Option<Arc<SecretSource>>,
    /// The secret as read at start.
    pub snapshot: Option<Arc<SecretSnapshot>>,
}

impl Setup {
    /// Reads the process environment and the secret it names (`OLBRIDGE_SECRET_ID`).
    pub async fn load(clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        Self::from_env(&std::env::vars().collect(), clock).await
    }

    /// As [`Setup::load`], from a given environment (tests).
    pub async fn from_env(env: &HashMap<String, String>, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let sdk = crate::sdk_config().await;
        let plain = Config::from_map(env)?;
        let Some(source) = SecretSource::from_config(&sdk, &plain, clock) else {
            return Ok(Self { config: plain, sdk, secrets: None, snapshot: None });
        };
        let snapshot = source.snapshot().await?;
        let config = snapshot.config(env)?;
        Ok(Self { config, sdk, secrets: Some(Arc::new(source)), snapshot: Some(snapshot) })
    }

    /// The stores on the one table (`OLBRIDGE_TABLE`), with the configured retention.
    pub fn store(&self) -> Result<Arc<DynamoStore>, SetupError> {
        let table = self.config.aws.table.clone().ok_or(SetupError::Missing(olbridge_core::config::vars::OLBRIDGE_TABLE))?;
        let retention = Retention {
            profiles: self.config.conversation.profile_retention,
            history: self.config.conversation.history_retention,
            turns: self.config.conversation.turn_log_retention,
            ..Retention::default()
        };
        Ok(Arc::new(DynamoStore::from_config(&self.sdk, table, retention)))
    }

    /// The queue's producer (`OLBRIDGE_QUEUE_URL`).
    pub fn sink(&self) -> Result<Arc<SqsSink>, SetupError> {
        let url = self.config.aws.queue_url.clone().ok_or(SetupError::Missing(olbridge_core::config::vars::OLBRIDGE_QUEUE_URL))?;
        Ok(Arc::new(SqsSink::new(aws_sdk_sqs::Client::new(&self.sdk), url)))
    }

    /// The portal's rate budget, kept in the table (item `rate/<portal domain>`): every concurrent
    /// instance of every function draws from one bucket sized by `B24_RATE_PER_SEC` and
    /// `B24_RATE_BURST`, and what one learns from a `QUERY_LIMIT_EXCEEDED` the others pace by. Each
    /// REST call costs a read and a conditional write of that item.
    pub fn shared_rate_limiter(&self, webhook: &WebhookBase) -> Result<Arc<RateLimiter>, SetupError> {
        let meta: Arc<dyn MetaStore> = self.store()?;
        let plan = ClientOptions::from_config(&self.config).rate;
        Ok(Arc::new(RateLimiter::shared(plan, meta, RateLimiter::budget_name(webhook.domain()))))
    }
}
