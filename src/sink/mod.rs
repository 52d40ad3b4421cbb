//! The sink: accepted pairs (and rejected ones, with stage and reason) as
//! Parquet shards written through polars, the run's `manifest.json`, and
//! the JSONL side files (`quarantine.jsonl`, `dead-letter.jsonl`).
//!
//! Every file is written under a temporary name and renamed into place, so
//! a reader never sees half a shard.

pub mod manifest;
pub mod shards;

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

/// Write `bytes` to `path` atomically: temp file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Remove what an earlier run left in `dir` (shards, side files, temp
/// files), leaving anything foil does not own alone.
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

/// An append-only JSON Lines file, created on first write.
pub struct JsonlFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    pub lines: u64,
}

impl JsonlFile {
    pub fn new(path: PathBuf) -> Self {
        JsonlFile {
            path,
            out: None,
            lines: 0,
        }
    }

    pub fn append<T: serde::Serialize>(&mut self, value: &T) -> std::io::Result<()> {
        if self.out.is_none() {
            self.out = Some(BufWriter::new(File::create(&self.path)?));
        }
        if let Some(out) = &mut self.out {
            serde_json::to_writer(&mut *out, value)?;
            out.write_all(b"\n")?;
        }
        self.lines += 1;
        Ok(())
    }

    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
