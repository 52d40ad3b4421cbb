//! JSON Lines, read line by line as bytes: a line that is not UTF-8, not
//! JSON or not an object is a bad row, the rest of the file still counts.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{RowMapper, SourceError, SourceItem, json_to_raw};

pub(crate) struct JsonlRows {
    reader: BufReader<File>,
    mapper: RowMapper,
    buf: Vec<u8>,
    line: u64,
    seq: u64,
}

impl JsonlRows {
    pub(crate) fn open(path: &Path, mapper: RowMapper) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|e| SourceError::Read {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(JsonlRows {
            reader: BufReader::with_capacity(1 << 16, file),
            mapper,
            buf: Vec::new(),
            line: 0,
            seq: 0,
        })
    }
}

impl Iterator for JsonlRows {
    type Item = Result<SourceItem, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(SourceError::Read {
                        file: self.mapper.file().to_string(),
                        message: e.to_string(),
                    }));
                }
            }
            self.line += 1;
            let line = self.line;
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue; // blank lines separate nothing in JSONL
            }
            let seq = self.seq;
            self.seq += 1;
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t.trim(),
                Err(e) => {
                    return Some(Ok(self.mapper.bad_row(
                        seq,
                        line,
                        "invalid_utf8",
                        format!("line is not valid UTF-8 ({e})"),
                    )));
                }
            };
            let value: serde_json::Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    return Some(Ok(self.mapper.bad_row(
                        seq,
                        line,
                        "malformed_row",
                        format!("malformed JSON: {e}"),
                    )));
                }
            };
            let serde_json::Value::Object(obj) = value else {
                return Some(Ok(self.mapper.bad_row(
                    seq,
                    line,
                    "malformed_row",
                    "line is JSON but not an object".to_string(),
                )));
            };
            let row = obj
                .iter()
                .map(|(k, v)| (k.clone(), json_to_raw(v)))
                .collect();
            return Some(Ok(self.mapper.map(seq, line, row)));
        }
    }
}
