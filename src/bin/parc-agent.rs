//! The `parc-agent` binary: runs inside the boot environment on a workstation.

use std::process::ExitCode;

fn main() -> ExitCode {
    parc::agent::args::main()
}
