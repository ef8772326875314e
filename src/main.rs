//! `authd`: parse the command line, run it. Everything else is in the library.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match authd::cli::parse_from(std::env::args_os()) {
        Ok(cli) => authd::cli::run(cli),
        Err(e) => authd::cli::report_usage_error(&e),
    }
}
