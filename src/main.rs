//! The `dmarcdb` binary: parse the command line, run, map errors to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = cli::main();
    ExitCode::from(code)
}
