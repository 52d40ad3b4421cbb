//! The `foil` binary: parse arguments, set up logging, run one command and
//! turn its outcome into an exit code (0 ok, 1 run failed, 2 bad usage or
//! config). Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = foil::cli::Cli::parse();
    foil::commands::init_tracing(cli.verbose, cli.quiet);
    match foil::commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`foil inspect DIR | head`) is not a failure.
            if err.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::from(foil::exit_code_for(&err))
        }
    }
}
