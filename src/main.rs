//! The `parc` binary: parse arguments, run the command, print the error chain once.

use std::process::ExitCode;

fn main() -> ExitCode {
    parc::cli::main()
}
