//! Test helpers against moto (feature `test-util`): fresh resources, built from the same
//! definition the deployment uses (`infra/resources.json`), with unique names so tests run in
//! parallel on one moto server.
//!
//! The tests need a moto server: `./scripts/test` starts one and exports `AWS_ENDPOINT_URL`; by
//! hand, run `scripts/aws-local moto` and export `AWS_ENDPOINT_URL=http://127.0.0.1:5055`.

// Test code: a resource that cannot be created is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

/// The deployment's resource definitions.
pub fn spec() -> Value {
    serde_json::from_str(include_str!("../../../infra/resources.json")).expect("infra/resources.json is valid JSON")
}

/// The moto endpoint of this test run. Panics with what to do when there is none.
pub fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "these tests run against moto: use ./scripts/test (it starts one), or run `scripts/aws-local moto` and export AWS_ENDPOINT_URL=http://127.0.0.1:5055"
        ),
    }
}

/// An SDK configuration for moto (test credentials and region unless the environment sets them).
pub async fn config() -> SdkConfig {
    let endpoint = endpoint();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-central-1".into());
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "olbridge-tests"))
        .load()
        .await
}

/// [`config`] sending one request at a time.
///
/// moto checks a write's condition and applies the write in two steps with no lock between them,
/// so two concurrent conditional writes of one item can both succeed there (seen: two `New` among
/// 32 concurrent claims; a worker test's two invocations both asking the bot), where DynamoDB makes
/// every single-item write atomic. Holding each request alone at the HTTP connector restores that
/// per-request atomicity and nothing more: the calls of concurrent tasks still interleave freely
/// between requests, so an adapter that read in one request and wrote in another would still fail
/// the tests' concurrency behaviours.
pub async fn serialized_config() -> SdkConfig {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let cfg = config().await;
    let inner = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc)).build_https();
    cfg.to_builder().http_client(OneAtATime { inner, gate: std::sync::Arc::default() }).build()
}

#[derive(Debug, Clone)]
struct OneAtATime {
    inner: aws_smithy_runtime_api::client::http::SharedHttpClient,
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl aws_smithy_runtime_api::client::http::HttpClient for OneAtATime {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        aws_smithy_runtime_api::client::http::SharedHttpConnector::new(Gated {
            inner: self.inner.http_connector(settings, components),
            gate: self.gate.clone(),
        })
    }
}

#[derive(Debug)]
struct Gated {
    inner: aws_smithy_runtime_api::client::http::SharedHttpConnector,
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl aws_smithy_runtime_api::client::http::HttpConnector for Gated {
    fn call(&self, request: aws_smithy_runtime_api::client::orchestrator::HttpRequest) -> aws_smithy_runtime_api::client::http::HttpConnectorFuture {
        let (inner, gate) = (self.inner.clone(), self.gate.clone());
        aws_smithy_runtime_api::client::http::HttpConnectorFuture::new(async move {
            let _alone = gate.lock().await;
            inner.call(request).await
        })
    }
}

/// A unique resource name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh table as the deployment defines it; returns its name.
pub async fn fresh_table(cfg: &SdkConfig) -> String {
    let t = &spec()["table"];
    let (pk, sk) = (t["partitionKey"]["name"].as_str().unwrap(), t["sortKey"]["name"].as_str().unwrap());
    let name = unique("olbridge-test");
    let client = aws_sdk_dynamodb::Client::new(cfg);
    client
        .create_table()
        .table_name(&name)
        .key_schema(KeySchemaElement::builder().attribute_name(pk).key_type(KeyType::Hash).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name(sk).key_type(KeyType::Range).build().unwrap())
        .attribute_definitions(AttributeDefinition::builder().attribute_name(pk).attribute_type(ScalarAttributeType::S).build().unwrap())
        .attribute_definitions(AttributeDefinition::builder().attribute_name(sk).attribute_type(ScalarAttributeType::S).build().unwrap())
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the table on moto");
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(TimeToLiveSpecification::builder().enabled(true).attribute_name(t["ttlAttribute"].as_str().unwrap()).build().unwrap())
        .send()
        .await
        .expect("enable TTL");
    name
}

/// A fresh FIFO queue with its FIFO dead-letter queue, as the deployment defines them; returns
/// `(queue url, dead-letter queue url)`. `visibility` overrides the deployment's visibility
/// timeout (tests that wait for a redelivery use a short one).
pub async fn fresh_queues(cfg: &SdkConfig, visibility: Option<u32>) -> (String, String) {
    let s = spec();
    let (q, d) = (&s["queue"], &s["deadLetterQueue"]);
    let client = aws_sdk_sqs::Client::new(cfg);
    let name = unique("olbridge-test");
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::MessageRetentionPeriod, d["messageRetentionSeconds"].to_string())
        .send()
        .await
        .expect("create the dead-letter queue on moto")
        .queue_url
        .expect("queue url");
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("dead-letter queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("dead-letter queue arn");
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": q["maxReceiveCount"].to_string()});
    let queue = client
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, q["contentBasedDeduplication"].to_string())
        .attributes(QueueAttributeName::DeduplicationScope, q["deduplicationScope"].as_str().unwrap())
        .attributes(QueueAttributeName::FifoThroughputLimit, q["fifoThroughputLimit"].as_str().unwrap())
        .attributes(QueueAttributeName::VisibilityTimeout, visibility.map_or_else(|| q["visibilityTimeoutSeconds"].to_string(), |v| v.to_string()))
        .attributes(QueueAttributeName::MessageRetentionPeriod, q["messageRetentionSeconds"].to_string())
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .expect("create the queue on moto")
        .queue_url
        .expect("queue url");
    (queue, dlq)
}

/// A fresh secret holding `value` (JSON) as its AWSCURRENT version; returns its id.
pub async fn fresh_secret(cfg: &SdkConfig, value: &Value) -> String {
    let name = unique("olbridge-test/secret");
    aws_sdk_secretsmanager::Client::new(cfg).create_secret().name(&name).secret_string(value.to_string()).send().await.expect("create the secret on moto");
    name
}
