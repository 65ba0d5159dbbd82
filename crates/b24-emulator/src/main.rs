//! `b24-emulator`: runs the seeded demo portal standalone and prints its webhook URL and control API base.
//! Only wiring lives here; everything else is the library.

use b24_emulator::{Emulator, EmulatorConfig, RateLimit};
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// A fake Bitrix24 portal (REST, Open Lines, chatbots, CRM, events) for testing olbridge.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765", env = "B24_EMULATOR_LISTEN")]
    listen: SocketAddr,
    /// Leaky-bucket drain per second (requests/s).
    #[arg(long)]
    rate: Option<f64>,
    /// Leaky-bucket size.
    #[arg(long)]
    burst: Option<f64>,
    /// Use the Enterprise limits (5/s, burst 250) unless --rate/--burst say otherwise.
    #[arg(long)]
    enterprise: bool,
    /// Portal member_id (random when omitted).
    #[arg(long)]
    member_id: Option<String>,
    /// Connector id of lines created without one.
    #[arg(long, default_value = "whatsappbyedna")]
    connector: String,
    /// Event delivery timeout in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    delivery_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")))
        .init();
    let args = Args::parse();
    let base = if args.enterprise { RateLimit::ENTERPRISE } else { RateLimit::STANDARD };
    let config = EmulatorConfig {
        bind: args.listen,
        member_id: args.member_id,
        rate: RateLimit { per_sec: args.rate.unwrap_or(base.per_sec), burst: args.burst.unwrap_or(base.burst) },
        connector_id: args.connector,
        delivery_timeout: Duration::from_millis(args.delivery_timeout_ms),
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await?;
    let demo = emulator.seed_demo();
    println!("b24-emulator listening on {}", emulator.base_url());
    println!("webhook (user {}): {}", demo.service_user_id, demo.webhook_url);
    println!("control API:       {}/_emulator/", emulator.base_url());
    println!("member_id:         {}", emulator.member_id());
    println!("WhatsApp line:     {} (operator {})", demo.whatsapp_line_id, demo.operator_id);
    tokio::signal::ctrl_c().await?;
    emulator.shutdown().await;
    Ok(())
}
