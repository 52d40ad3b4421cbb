//! `foil generate INPUT --task TASK --out DIR`: flags become the same
//! [`crate::config::PipelineConfig`] a pipeline file describes
//! ([`crate::settings`]).

use super::Exit;
use crate::cli::GenerateArgs;

pub fn run(args: GenerateArgs, quiet: bool) -> anyhow::Result<Exit> {
    let json = args.json;
    let show = args.control.show_settings;
    let settings = crate::settings::for_generate(args)?;
    if show {
        print!("{}", settings.show()?);
        return Ok(Exit::Success);
    }
    super::execute(settings.config, settings.out, json, quiet)
}
