//! The `bulkhead` command line: parses the arguments and hands them to
//! [`bulkhead::cli::run`], where the commands live.

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;

use bulkhead::cli::{self, args::Cli};

fn main() -> ExitCode {
    // The init of a compartment is this binary re-executed (docs/ARCHITECTURE.md
    // decision 5); it never goes through the command line parser.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__init") {
        bulkhead::sandbox::init::main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli::args::usage_error(&e),
    };
    cli::run(cli)
}
