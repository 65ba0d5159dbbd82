//! `olbridge-aws`: admin commands for the AWS deployment. Kept out of `olbridge` (the local runner
//! never links the AWS SDK). Only wiring and printing; the work is in `olbridge_rotator::stage`.
//!
//! ```text
//! olbridge-aws stage-webhook --secret-id olbridge/secret --webhook-base - [--application-token -] [--no-check] [--rotate-now]
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
    }
    Ok(())
}
