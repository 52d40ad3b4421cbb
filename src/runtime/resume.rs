//! Where an invocation starts: after the last checkpoint of the same
//! config (cleaning up what came after it), as an incremental rerun of a
//! complete folder, or afresh.

use std::path::Path;

use anyhow::Context;

use super::progress::ProgressMode;
use crate::sink;
use crate::sink::state::{Checkpoint, EarlierSources, RunState};

pub(super) struct Resume {
    /// The last checkpoint of the same config, if any.
    pub previous: Option<Checkpoint>,
    /// A rerun of a complete run: sources not seen before are processed.
    pub incremental: bool,
    pub generation: u64,
    /// Sources of earlier generations, skipped by id.
    pub skip_ids: Option<EarlierSources>,
    /// Within this generation a resume skips by input position.
    pub skip_below: u64,
    pub bad_below: u64,
}

pub(super) fn prepare(
    state: &mut RunState,
    identity: &str,
    out_dir: &Path,
    mode: ProgressMode,
) -> anyhow::Result<Resume> {
    let previous = match (state.identity()?, state.checkpoint()?) {
        (Some(id), Some(cp)) if id == identity => Some(cp),
        _ => None,
    };
    // A rerun of a complete run is incremental: sources it has not seen
    // (the input grew) are processed and appended; the rest skipped.
    let incremental = previous.as_ref().is_some_and(|cp| cp.complete);
    match &previous {
        Some(cp) => {
            let listed: Vec<String> = cp
                .shards
                .iter()
                .chain(&cp.rejected_shards)
                .map(|e| e.path.clone())
                .collect();
            sink::remove_uncommitted(out_dir, &listed)
                .and_then(|_| {
                    sink::truncate_to(&out_dir.join(sink::QUARANTINE), cp.quarantine_bytes)
                })
                .and_then(|_| {
                    sink::truncate_to(&out_dir.join(sink::DEAD_LETTER), cp.dead_letter_bytes)
                })
                .with_context(|| {
                    format!(
                        "cleaning up after the last checkpoint in `{}`",
                        out_dir.display()
                    )
                })?;
            tracing::info!(next_seq = cp.next_seq, "resuming after the last checkpoint");
            if mode != ProgressMode::Off {
                if incremental {
                    eprintln!(
                        "foil: `{}` is complete ({} sources); looking for new ones",
                        out_dir.display(),
                        cp.counts.sources
                    );
                } else {
                    eprintln!(
                        "foil: resuming `{}`: {} sources already committed",
                        out_dir.display(),
                        cp.next_seq
                    );
                }
            }
        }
        None => {
            sink::clear_previous_output(out_dir)
                .with_context(|| format!("clearing earlier output in `{}`", out_dir.display()))?;
            state.reset(identity)?;
        }
    }
    let mut generation = state.generation()?;
    if incremental {
        generation += 1;
        state.set_generation(generation)?;
        let waiting = state.dead_sources()?.len();
        if waiting > 0 && mode != ProgressMode::Off {
            eprintln!("foil: retrying {waiting} source(s) from the dead letters of earlier runs");
        }
    }
    // Sources of earlier generations are skipped by id; within this
    // generation a resume skips by input position (which keeps
    // duplicate rows exactly as an uninterrupted run treats them).
    let skip_ids = match &previous {
        Some(_) => state.earlier_sources(generation)?,
        None => None,
    };
    let skip_below = match &previous {
        Some(cp) if !incremental => cp.next_seq,
        _ => 0,
    };
    let bad_below = previous.as_ref().map_or(0, |cp| cp.next_seq);
    Ok(Resume {
        previous,
        incremental,
        generation,
        skip_ids,
        skip_below,
        bad_below,
    })
}
