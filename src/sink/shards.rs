//! Parquet shards of pairs: `part-00000.parquet`, … — each written to a
//! temp name and renamed once complete.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::columns::{rows_of_frame, to_frame};
use crate::record::Candidate;
use crate::record::SourceExample;

/// A committed shard, as listed in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Path relative to the output folder.
    pub path: String,
    pub rows: usize,
}

/// A pair ready to be written: the candidate and the source row's
/// passthrough columns.
pub struct Row {
    pub candidate: Candidate,
    pub task: &'static str,
    pub context: Option<String>,
    pub passthrough: Vec<(String, Option<String>)>,
    /// Input position of the source, and the candidate's position among
    /// the source's candidates: together, the order a single process
    /// decides dedup in (what `foil merge` restores across workers).
    pub source_seq: u64,
    pub index: u32,
}

pub struct ShardWriter {
    dir: PathBuf,
    /// Relative folder prefix for manifest paths ("" or "rejected/").
    prefix: String,
    with_rejection: bool,
    buffer: Vec<Row>,
    pub shards: Vec<ShardEntry>,
}

impl ShardWriter {
    /// A writer continuing after `existing` shards (a resumed run).
    pub fn new(
        root: &Path,
        subdir: Option<&str>,
        existing: Vec<ShardEntry>,
        with_rejection: bool,
    ) -> Self {
        let (dir, prefix) = match subdir {
            Some(s) => (root.join(s), format!("{s}/")),
            None => (root.to_path_buf(), String::new()),
        };
        ShardWriter {
            dir,
            prefix,
            with_rejection,
            buffer: Vec::new(),
            shards: existing,
        }
    }

    /// Rows waiting for the next shard.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Queue a pair; the sink decides when buffered rows become a shard
    /// (always at a source boundary, so a checkpoint never splits a source).
    /// `index` is the candidate's position among its source's candidates.
    pub fn push(
        &mut self,
        candidate: Candidate,
        index: u32,
        task: &'static str,
        example: &SourceExample,
        edit_field: &str,
    ) {
        // Unedited fields other than the label (the NLI premise, a QA
        // context) travel with the pair.
        self.buffer.push(Row {
            candidate,
            task,
            context: example.context(edit_field),
            passthrough: example.passthrough.clone(),
            source_seq: example.seq,
            index,
        });
    }

    /// Queue a pair read back from another output folder (`foil merge`).
    pub fn push_row(&mut self, row: Row) {
        self.buffer.push(row);
    }

    /// Write whatever is buffered as one more shard.
    pub fn flush(&mut self) -> PolarsResult<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.buffer);
        let mut df = to_frame(&rows, self.with_rejection)?;
        fs::create_dir_all(&self.dir)?;
        let name = format!("part-{:05}.parquet", self.shards.len());
        let path = self.dir.join(&name);
        let tmp = crate::files::tmp_path(&path);
        {
            let mut file = File::create(&tmp)?;
            ParquetWriter::new(&mut file)
                .with_compression(ParquetCompression::Zstd(None))
                // Row groups small enough that a reader streaming a window
                // of a shard (`foil merge`) decodes little beyond it.
                .with_row_group_size(Some(ROW_GROUP_ROWS))
                .finish(&mut df)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        self.shards.push(ShardEntry {
            path: format!("{}{name}", self.prefix),
            rows: rows.len(),
        });
        Ok(())
    }
}

/// Read the shards of an output folder back (for `foil inspect` and tests).
/// Rows per Parquet row group in a shard.
pub const ROW_GROUP_ROWS: usize = 8192;

pub fn read_shards(dir: &Path, entries: &[ShardEntry]) -> PolarsResult<Vec<DataFrame>> {
    entries
        .iter()
        .map(|e| ParquetReader::new(File::open(dir.join(&e.path))?).finish())
        .collect()
}

/// A string column's cells (all missing when there is no such column).
pub fn col_strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    match df.column(name).ok().and_then(|c| c.str().ok().cloned()) {
        Some(s) => s.iter().map(|v| v.map(str::to_string)).collect(),
        None => vec![None; df.height()],
    }
}

/// A numeric column's cells as f64 (all missing when there is no such
/// column).
pub fn col_f64s(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    match df
        .column(name)
        .ok()
        .and_then(|c| c.cast(&DataType::Float64).ok())
        .and_then(|c| c.f64().ok().cloned())
    {
        Some(s) => s.iter().collect(),
        None => vec![None; df.height()],
    }
}

/// Rows of written shards back as [`Row`]s (candidate, context,
/// passthrough, position), for `foil merge`. Columns this version does not
/// know are carried as passthrough.
pub fn read_back(dir: &Path, entries: &[ShardEntry], task: &'static str) -> PolarsResult<Vec<Row>> {
    let mut out = Vec::new();
    for df in read_shards(dir, entries)? {
        rows_of_frame(&df, task, &mut out);
    }
    Ok(out)
}

/// Rows `offset .. offset + len` of one shard (fewer at its end): a
/// window, for readers that stream shards.
pub fn read_back_window(
    dir: &Path,
    entry: &ShardEntry,
    task: &'static str,
    offset: usize,
    len: usize,
) -> PolarsResult<Vec<Row>> {
    let df = ParquetReader::new(File::open(dir.join(&entry.path))?)
        .with_slice(Some((offset, len)))
        .finish()?;
    let mut out = Vec::new();
    rows_of_frame(&df, task, &mut out);
    Ok(out)
}

/// An integer column's cells, read as integers (all missing when there is
/// no such column): seeds above 2^53 do not survive a trip through f64.
pub fn col_u64s(df: &DataFrame, name: &str) -> Vec<Option<u64>> {
    match df
        .column(name)
        .ok()
        .and_then(|c| c.cast(&DataType::UInt64).ok())
        .and_then(|c| c.u64().ok().cloned())
    {
        Some(s) => s.iter().collect(),
        None => vec![None; df.height()],
    }
}
