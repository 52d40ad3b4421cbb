//! CSV rows, read record by record. Fields are read as bytes so that
//! invalid UTF-8 is reported for the one field it is in.

use std::fs::File;
use std::path::Path;

use super::{RawValue, RowMapper, SourceError, SourceItem};

pub(crate) struct CsvRows {
    reader: ::csv::Reader<File>,
    header: Vec<String>,
    mapper: RowMapper,
    record: ::csv::ByteRecord,
    seq: u64,
}

impl CsvRows {
    pub(crate) fn open(path: &Path, mapper: RowMapper) -> Result<Self, SourceError> {
        let read_err = |e: &dyn std::fmt::Display| SourceError::Read {
            file: path.display().to_string(),
            message: e.to_string(),
        };
        let file = File::open(path).map_err(|e| read_err(&e))?;
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(file);
        let header = reader
            .byte_headers()
            .map_err(|e| read_err(&e))?
            .iter()
            .map(|h| {
                String::from_utf8_lossy(h)
                    .trim_start_matches('\u{feff}')
                    .to_string()
            })
            .collect::<Vec<_>>();
        mapper.check_header(&header)?;
        Ok(CsvRows {
            reader,
            header,
            mapper,
            record: ::csv::ByteRecord::new(),
            seq: 0,
        })
    }
}

impl Iterator for CsvRows {
    type Item = Result<SourceItem, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let seq = self.seq;
        self.seq += 1;
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(0, |p| p.line());
                let mut row: Vec<(String, RawValue)> = Vec::with_capacity(self.header.len());
                for (name, bytes) in self.header.iter().zip(self.record.iter()) {
                    match std::str::from_utf8(bytes) {
                        Ok(s) => row.push((name.clone(), Some(s.to_string()))),
                        Err(e) => {
                            return Some(Ok(SourceItem::Bad(super::BadRow {
                                seq,
                                file: self.mapper.file().to_string(),
                                line,
                                field: Some(name.clone()),
                                reason: format!("field `{name}` is not valid UTF-8 ({e})"),
                                code: "invalid_utf8",
                            })));
                        }
                    }
                }
                Some(Ok(self.mapper.map(seq, line, row)))
            }
            Err(err) => {
                let line = err.position().map_or(0, |p| p.line());
                match err.kind() {
                    ::csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => Some(Ok(self.mapper.bad_row(
                        seq,
                        line,
                        "malformed_row",
                        format!(
                            "malformed CSV row: {len} fields where the header has {expected_len}"
                        ),
                    ))),
                    ::csv::ErrorKind::Io(_) => Some(Err(SourceError::Read {
                        file: self.mapper.file().to_string(),
                        message: err.to_string(),
                    })),
                    _ => Some(Ok(self.mapper.bad_row(
                        seq,
                        line,
                        "malformed_row",
                        format!("malformed CSV row: {err}"),
                    ))),
                }
            }
        }
    }
}
