//! The `foil` binary: parse arguments, set up logging, run one command and
//! turn its outcome into an exit code (`foil::commands::exit` decides
//! every code). Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use foil::commands::exit::Exit;

fn main() -> ExitCode {
    let cli = foil::cli::Cli::parse();
    foil::commands::init_tracing(cli.verbose, cli.quiet);
    match foil::commands::dispatch(cli) {
        Ok(exit) => exit.into(),
        Err(err) => {
            let exit = Exit::for_error(&err);
            if exit != Exit::Success {
                eprintln!("error: {err:#}");
            }
            exit.into()
        }
    }
}
