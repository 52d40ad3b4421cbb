//! `foil run PIPELINE.toml`: the scheduled-job form of `generate`
//! (settings resolved in [`crate::settings`]).

use super::Exit;
use crate::cli::RunArgs;

pub fn run(args: RunArgs, quiet: bool) -> anyhow::Result<Exit> {
    let settings = crate::settings::for_run(&args)?;
    if args.control.show_settings {
        print!("{}", settings.show()?);
        return Ok(Exit::Success);
    }
    super::execute(settings.config, settings.out, args.json, quiet)
}
