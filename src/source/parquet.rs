//! Parquet rows through polars, read in slices of a few thousand rows so a
//! large file never sits in memory whole.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::{RawValue, RowMapper, SourceError, SourceItem};

const SLICE_ROWS: usize = 4096;

pub(crate) struct ParquetRows {
    path: PathBuf,
    mapper: RowMapper,
    metadata: FileMetadataRef,
    total: usize,
    offset: usize,
    batch: Option<DataFrame>,
    row_in_batch: usize,
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> SourceError {
    SourceError::Read {
        file: path.display().to_string(),
        message: e.to_string(),
    }
}

impl ParquetRows {
    pub(crate) fn open(path: &Path, mapper: RowMapper) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|e| read_err(path, e))?;
        let mut reader = ParquetReader::new(file);
        let schema = reader.schema().map_err(|e| read_err(path, e))?;
        let header: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
        mapper.check_header(&header)?;
        let total = reader.num_rows().map_err(|e| read_err(path, e))?;
        let metadata = reader
            .get_metadata()
            .map_err(|e| read_err(path, e))?
            .clone();
        Ok(ParquetRows {
            path: path.to_path_buf(),
            mapper,
            metadata,
            total,
            offset: 0,
            batch: None,
            row_in_batch: 0,
        })
    }

    fn load_slice(&mut self) -> Result<(), SourceError> {
        let file = File::open(&self.path).map_err(|e| read_err(&self.path, e))?;
        let mut reader = ParquetReader::new(file);
        reader.set_metadata(self.metadata.clone());
        let df = reader
            .with_slice(Some((self.offset, SLICE_ROWS)))
            .finish()
            .map_err(|e| read_err(&self.path, e))?;
        self.batch = Some(df);
        self.row_in_batch = 0;
        Ok(())
    }
}

fn any_to_raw(v: AnyValue<'_>) -> RawValue {
    match v {
        AnyValue::Null => None,
        AnyValue::String(s) => Some(s.to_string()),
        AnyValue::StringOwned(s) => Some(s.to_string()),
        other => Some(other.to_string()),
    }
}

impl Iterator for ParquetRows {
    type Item = Result<SourceItem, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset >= self.total {
            return None;
        }
        let need_slice = match &self.batch {
            None => true,
            Some(df) => self.row_in_batch >= df.height(),
        };
        if need_slice && let Err(e) = self.load_slice() {
            self.offset = self.total;
            return Some(Err(e));
        }
        let df = self.batch.as_ref()?;
        if df.height() == 0 {
            self.offset = self.total;
            return None;
        }
        let i = self.row_in_batch;
        let row: Vec<(String, RawValue)> = df
            .columns()
            .iter()
            .map(|c| {
                let value = c.get(i).map(any_to_raw).unwrap_or(None);
                (c.name().to_string(), value)
            })
            .collect();
        let seq = self.offset as u64;
        self.row_in_batch += 1;
        self.offset += 1;
        Some(Ok(self.mapper.map(seq, seq + 1, row)))
    }
}
