//! `olbridge-aws`: admin commands for the AWS deployment. Kept out of `olbridge` (the local runner
//! never links the AWS SDK). Only wiring and printing; the work is in `olbridge_rotator::stage`.
//!
//! ```text
//! olbridge-aws stage-webhook --secret-id olbridge/secret --webhook-base - [--application-token -] [--no-check] [--rotate-now]
//! olbridge-aws dead-letters [--redrive KEY | --redrive --all]       (OLBRIDGE_TABLE, OLBRIDGE_QUEUE_URL, OLBRIDGE_DLQ_URL)
//! olbridge-aws pump [--function olbridge-worker] [--invoke http://127.0.0.1:9000]   (local runs only)
//! olbridge-aws privacy export|erase --phone +5511912345678            (OLBRIDGE_TABLE; docs/privacy.md)
//! ```
//! A value of `-` is read from standard input (one line), so the webhook's code stays out of the
//! shell history and the process list.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use olbridge_aws::secrets::SecretVersions;
use olbridge_core::domain::secret::Secret;
use olbridge_rotator::check::check_options;
use olbridge_rotator::stage::{StageRequest, stage_webhook};

#[derive(Debug, Parser)]
#[command(name = "olbridge-aws", about = "olbridge admin commands for the AWS deployment")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stage a new Bitrix24 incoming webhook for the next rotation (docs/rotation.md).
    StageWebhook {
        /// The secret (name or ARN): OLBRIDGE_SECRET_ID of the deployment.
        #[arg(long)]
        secret_id: String,
        /// The new webhook URL (`https://<portal>/rest/<user id>/<code>/`), or `-` to read it from stdin.
        #[arg(long)]
        webhook_base: String,
        /// A new application token (only when the bot was registered again), or `-` for stdin.
        #[arg(long)]
        application_token: Option<String>,
        /// Do not test the webhook against the portal before staging.
        #[arg(long)]
        no_check: bool,
        /// Start the rotation right after staging (RotateSecret).
        #[arg(long)]
        rotate_now: bool,
    },
    /// List the turns the workers could not even give up (the SQS dead-letter queue), or put them
    /// back with `--redrive KEY` / `--redrive --all` once the cause is fixed.
    DeadLetters {
        /// Put the dead letter with this key back, or every one with `--all`.
        #[arg(long, value_name = "KEY", num_args = 0..=1)]
        redrive: Option<Option<String>>,
        /// With --redrive: every dead letter.
        #[arg(long, requires = "redrive")]
        all: bool,
    },
    /// Export (JSON on stdout) or erase everything the table stores about a phone number
    /// (docs/privacy.md; the SQS queues are not searched).
    Privacy {
        /// What to do.
        #[command(subcommand)]
        action: PrivacyAction,
    },
    /// Local runs only: play Lambda's SQS event source for `cargo lambda watch` — receive what is
    /// visible on OLBRIDGE_QUEUE_URL, invoke the worker through watch's Invoke API, delete what it
    /// did not report as failed; until interrupted.
    Pump {
        /// The function to invoke.
        #[arg(long, default_value = "olbridge-worker")]
        function: String,
        /// `cargo lambda watch`'s address.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        invoke: String,
    },
}

#[derive(Debug, Subcommand)]
enum PrivacyAction {
    /// Print the phone's profile, chats with their history, turn log records and idempotency
    /// records that carry it, as JSON.
    Export {
        /// The phone number (`+<digits>`).
        #[arg(long)]
        phone: String,
    },
    /// Delete all of that from the table.
    Erase {
        /// The phone number.
        #[arg(long)]
        phone: String,
    },
}

fn value(arg: String, stdin_used: &mut bool) -> anyhow::Result<Secret> {
    if arg != "-" {
        return Ok(Secret::new(arg));
    }
    if std::mem::replace(stdin_used, true) {
        bail!("only one value can be read from stdin");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading stdin")?;
    Ok(Secret::new(line.trim()))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::StageWebhook { secret_id, webhook_base, application_token, no_check, rotate_now } => {
            let mut stdin_used = false;
            let webhook_base = value(webhook_base, &mut stdin_used)?;
            let application_token = application_token.map(|t| value(t, &mut stdin_used)).transpose()?;
            let sdk = olbridge_aws::sdk_config().await;
            let secret = SecretVersions::new(aws_sdk_secretsmanager::Client::new(&sdk), secret_id);
            let check = (!no_check).then(check_options);
            let staged = stage_webhook(&secret, StageRequest { webhook_base, application_token, check }).await?;
            if let Some(r) = &staged.report {
                println!("webhook answers: user {}, scopes {}", r.user_id, r.scopes.join(", "));
            }
            println!("staged as version {} of {}", staged.version_id, secret.secret_id());
            if rotate_now {
                let token = secret.rotate().await?;
                println!("rotation started (new version {token}); follow it in the rotator's logs, then check with docs/rotation.md");
            } else {
                println!("the next rotation will use it; to rotate now: aws secretsmanager rotate-secret --secret-id {}", secret.secret_id());
            }
        }
        Command::DeadLetters { redrive, all } => dead_letters(redrive, all).await?,
        Command::Pump { function, invoke } => pump(&function, &invoke).await?,
        Command::Privacy { action } => privacy(action).await?,
    }
    Ok(())
}

async fn dead_letters(redrive: Option<Option<String>>, all: bool) -> anyhow::Result<()> {
    use olbridge_core::ports::DeadLetters as _;
    let config = olbridge_core::config::Config::from_env()?;
    let (Some(queue), Some(dlq)) = (config.aws.queue_url.clone(), config.aws.dlq_url.clone()) else {
        bail!("set OLBRIDGE_QUEUE_URL and OLBRIDGE_DLQ_URL (and OLBRIDGE_TABLE to redrive)");
    };
    let sdk = olbridge_aws::sdk_config().await;
    let dead = olbridge_aws::sqs::SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), queue, dlq);
    let keys = match (redrive, all) {
        (None, _) => {
            let list = dead.dead_letters(1000).await?;
            if list.is_empty() {
                println!("no dead letters");
            }
            for d in list {
                println!("{}  {}  ({} receive(s)): {}", d.dead_at.format("%Y-%m-%d %H:%M:%S"), d.job.key, d.failures, d.reason);
            }
            return Ok(());
        }
        (Some(Some(_)), true) => bail!("--redrive takes a KEY or --all, not both"),
        (Some(Some(key)), false) => Some(vec![olbridge_core::domain::ids::DedupKey::from_stored(key)]),
        (Some(None), true) => None,
        (Some(None), false) => bail!("--redrive needs a KEY (see `olbridge-aws dead-letters`) or --all"),
    };
    let table = config.aws.table.clone().context("OLBRIDGE_TABLE is not set")?;
    let store = olbridge_aws::dynamo::DynamoStore::from_config(&sdk, table, olbridge_aws::dynamo::Retention::default());
    let back = olbridge_core::usecase::job::redrive(&dead, &store, &store, keys.as_deref(), chrono::Utc::now()).await?;
    println!("put {} job(s) back on the queue", back.len());
    for k in back {
        println!("  {k}");
    }
    Ok(())
}

async fn privacy(action: PrivacyAction) -> anyhow::Result<()> {
    use olbridge_core::ports::Privacy as _;
    let config = olbridge_core::config::Config::from_env()?;
    let table = config.aws.table.clone().context("OLBRIDGE_TABLE is not set")?;
    let store = olbridge_aws::dynamo::DynamoStore::from_config(&olbridge_aws::sdk_config().await, table, olbridge_aws::dynamo::Retention::default());
    let parse = |p: &str| olbridge_core::domain::ids::Phone::parse(p).map_err(|e| anyhow::anyhow!("{e}"));
    match action {
        PrivacyAction::Export { phone } => println!("{}", serde_json::to_string_pretty(&store.export(&parse(&phone)?).await?)?),
        PrivacyAction::Erase { phone } => {
            let phone = parse(&phone)?;
            let e = store.erase(&phone).await?;
            println!(
                "erased for {}: {} profile(s), {} chat(s) with {} history turn(s), {} turn log record(s), {} idempotency record(s)",
                phone.redacted(),
                e.profiles,
                e.chats,
                e.history,
                e.turns,
                e.claims
            );
            println!("not searched: messages still in the SQS queues (kept at most their retention period; see docs/privacy.md)");
        }
    }
    Ok(())
}

async fn pump(function: &str, invoke: &str) -> anyhow::Result<()> {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let config = olbridge_core::config::Config::from_env()?;
    let queue = config.aws.queue_url.clone().context("OLBRIDGE_QUEUE_URL is not set")?;
    let sqs = aws_sdk_sqs::Client::new(&olbridge_aws::sdk_config().await);
    let http = reqwest::Client::new();
    let url = format!("{}/2015-03-31/functions/{function}/invocations", invoke.trim_end_matches('/'));
    println!("pumping {queue} into {url} (Ctrl-C stops)");
    loop {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, serde_json::Value> =
                    m.attributes.clone().unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(v))).collect();
                serde_json::json!({
                    "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body, "attributes": attributes,
                    "messageAttributes": {}, "md5OfBody": m.md5_of_body, "eventSource": "aws:sqs", "eventSourceARN": "local", "awsRegion": "local",
                })
            })
            .collect();
        let answer: serde_json::Value = http.post(&url).json(&serde_json::json!({"Records": records})).send().await?.error_for_status()?.json().await?;
        let failed: Vec<&str> =
            answer["batchItemFailures"].as_array().map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str()).collect()).unwrap_or_default();
        for m in &messages {
            if !failed.contains(&m.message_id.as_deref().unwrap_or_default()) {
                sqs.delete_message().queue_url(&queue).set_receipt_handle(m.receipt_handle.clone()).send().await?;
            }
        }
        println!("{} record(s): {} done, {} back to the queue", messages.len(), messages.len() - failed.len(), failed.len());
    }
}
