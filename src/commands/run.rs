//! `foil run PIPELINE.toml`: the scheduled-job form of `generate`
//! (settings resolved in [`crate::settings`]).

use std::process::ExitCode;

use crate::cli::RunArgs;

pub fn run(args: RunArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let settings = crate::settings::for_run(&args)?;
    if args.control.show_settings {
        print!("{}", settings.show()?);
        return Ok(ExitCode::SUCCESS);
    }
    super::execute(settings.config, settings.out, args.json, quiet)
}
