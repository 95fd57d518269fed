//! `athyper`: the queues, jobs and workers of athyper's Redis backend from
//! the command line, for people (tables, colour on a terminal) and scripts
//! (`--json`, exit codes).
//!
//! Exit codes: 0 success; 1 failure (Redis unreachable or failing, or a
//! named job could not be acted on); 2 usage error; 3 the queue or a named
//! job does not exist.

mod cli;
mod commands;
mod connect;
mod error;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::error::{CliError, exit};
use crate::output::{ERROR, Output, paint};

fn main() -> ExitCode {
    // Usage errors exit with 2, `--help` and `--version` with 0.
    let cli = cli::Cli::parse();
    let output = Output::new(
        cli.global.color,
        std::env::var("NO_COLOR").ok(),
        cli.global.json,
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&output, &CliError::Other(format!("cannot start: {e}"))),
    };
    match runtime.block_on(commands::run(cli, output)) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(error) => fail(&output, &error),
    }
}

fn fail(output: &Output, error: &CliError) -> ExitCode {
    if !matches!(error, CliError::StdoutClosed) {
        output::stderr_line(&format!(
            "{} {error}",
            paint(output.colour_err, "error:", ERROR)
        ));
    }
    ExitCode::from(error.exit_code())
}
