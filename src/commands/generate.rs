//! `foil generate INPUT --task TASK --out DIR`: flags become the same
//! [`crate::config::PipelineConfig`] a pipeline file describes
//! ([`crate::settings`]).

use std::process::ExitCode;

use crate::cli::GenerateArgs;

pub fn run(args: GenerateArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let show = args.control.show_settings;
    let settings = crate::settings::for_generate(args)?;
    if show {
        print!("{}", settings.show()?);
        return Ok(ExitCode::SUCCESS);
    }
    super::execute(settings.config, settings.out, json, quiet)
}
