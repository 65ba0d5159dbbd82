//! `olbridge`: the local runner and admin CLI. `main` only wires: it parses the command line,
//! loads `.env` and the configuration once, sets up logging and runs the chosen command.

use std::process::ExitCode;

use clap::Parser;
use olbridge::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => match olbridge::cli::error_report(&e) {
            Some(line) => {
                eprintln!("error: {line}");
                ExitCode::FAILURE
            }
            // The reader of our output went away (`olbridge stats | head`): nothing to say.
            None => ExitCode::SUCCESS,
        },
    }
}
