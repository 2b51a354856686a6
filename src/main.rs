//! warren's entry point: parse the command line, run the command, choose the exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    warren::commands::main()
}
