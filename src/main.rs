//! `authd`: parse the command line, run it. Everything else is in the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match authd::cli::Cli::try_parse() {
        Ok(cli) => authd::cli::run(cli),
        Err(e) => authd::cli::report_usage_error(&e),
    }
}
