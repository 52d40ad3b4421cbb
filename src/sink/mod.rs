//! The sink: accepted pairs (and rejected ones, with stage and reason) as
//! Parquet shards written through polars, the run's `manifest.json`, and
//! the JSONL side files (`quarantine.jsonl`, `dead-letter.jsonl`).
//!
//! Every file is written under a temporary name and renamed into place, so
//! a reader never sees half a shard.

pub mod columns;
pub mod earlier;
pub mod manifest;
pub mod shards;
pub mod stage;
pub mod state;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use manifest::Manifest;
pub use shards::ShardWriter;

/// Names of the files and folders foil owns inside an output folder.
pub const MANIFEST: &str = "manifest.json";
pub const QUARANTINE: &str = "quarantine.jsonl";
pub const DEAD_LETTER: &str = "dead-letter.jsonl";
pub const REJECTED_DIR: &str = "rejected";

/// Cut `path` back to `len` bytes (removing it when `len` is 0): lines a
/// killed run wrote after its last checkpoint.
pub fn truncate_to(path: &Path, len: u64) -> std::io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    if len == 0 {
        return fs::remove_file(path);
    }
    let f = fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(len)?;
    f.sync_all()
}

/// Delete shard files in `dir` (and `dir/rejected`) that no checkpoint
/// lists, and temp files: what a killed run wrote after its last commit.
pub fn remove_uncommitted(dir: &Path, listed: &[String]) -> std::io::Result<()> {
    for sub in [dir.to_path_buf(), dir.join(REJECTED_DIR)] {
        if !sub.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&sub)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if sub == dir {
                name.clone()
            } else {
                format!("{REJECTED_DIR}/{name}")
            };
            let shard = name.starts_with("part-") && name.ends_with(".parquet");
            if (shard && !listed.contains(&rel)) || name.ends_with(".tmp") {
                fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// Remove what an earlier run left in `dir` (shards, side files, temp
/// files), leaving anything foil does not own alone — and the response
/// cache, which a fresh run is glad to reuse.
pub fn clear_previous_output(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with("part-")
            && (name.ends_with(".parquet") || name.ends_with(".tmp")))
            || name == MANIFEST
            || name == QUARANTINE
            || name == DEAD_LETTER
            || name.ends_with(".json.tmp")
            || name.ends_with(".jsonl.tmp");
        if ours {
            fs::remove_file(entry.path())?;
        } else if name == REJECTED_DIR && entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// An append-only JSON Lines file, opened on first write. `bytes` is its
/// length, which checkpoints record so a resumed run can cut off lines
/// written after the last commit.
pub struct JsonlFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    pub bytes: u64,
}

impl JsonlFile {
    /// A file that already holds `bytes` bytes (0 for new).
    pub fn new(path: PathBuf, bytes: u64) -> Self {
        JsonlFile {
            path,
            out: None,
            bytes,
        }
    }

    pub fn append<T: serde::Serialize>(&mut self, value: &T) -> std::io::Result<()> {
        if self.out.is_none() {
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.out = Some(BufWriter::new(f));
        }
        let mut line = serde_json::to_vec(value)?;
        line.push(b'\n');
        if let Some(out) = &mut self.out {
            out.write_all(&line)?;
        }
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Flush and fsync what was appended.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if let Some(out) = &mut self.out {
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
