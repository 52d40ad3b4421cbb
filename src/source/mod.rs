//! Sources: CSV, JSONL and Parquet readers that stream rows (never the whole
//! file) and map them onto the task's fields.
//!
//! A reader yields [`SourceItem`]s: an example, or a bad row with file, line
//! and field, which the runtime quarantines. Only problems that make the
//! whole input unusable (a missing file, a missing column in the header) are
//! errors.

mod csv;
mod jsonl;
mod parquet;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::UsageError;
use crate::config::{SourceConfig, SourceFormat};
use crate::record::{GivenEdit, RowOrigin, SourceExample};
use crate::tasks::TaskPreset;

/// A row that could not become an example, with where and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRow {
    /// Position in the input, like an example's `seq`.
    #[serde(skip)]
    pub seq: u64,
    pub file: String,
    /// 1-based line (CSV, JSONL) or row (Parquet).
    pub line: u64,
    pub field: Option<String>,
    pub reason: String,
    /// A short reason code for the funnel (`malformed_row`, `missing_field`, …).
    pub code: &'static str,
}

impl std::fmt::Display for BadRow {
    /// `file:line field `name`: reason`, the form every message uses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(field) = &self.field {
            write!(f, " field `{field}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

#[derive(Debug)]
pub enum SourceItem {
    Example(SourceExample),
    Bad(BadRow),
}

impl SourceItem {
    pub fn seq(&self) -> u64 {
        match self {
            SourceItem::Example(e) => e.seq,
            SourceItem::Bad(b) => b.seq,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error("reading `{file}`: {message}")]
    Read { file: String, message: String },
}

/// A streaming reader over one input file.
pub type SourceIter = Box<dyn Iterator<Item = Result<SourceItem, SourceError>> + Send>;

/// Open the configured source as a stream of items.
pub fn open(config: &SourceConfig, task: &'static TaskPreset) -> Result<SourceIter, SourceError> {
    let path = &config.path;
    if !path.exists() {
        return Err(UsageError::new(format!("input `{}` does not exist", path.display())).into());
    }
    let mapper = RowMapper::new(config, task, path);
    Ok(match config.resolved_format()? {
        SourceFormat::Csv => Box::new(csv::CsvRows::open(path, mapper)?),
        SourceFormat::Jsonl => Box::new(jsonl::JsonlRows::open(path, mapper)?),
        SourceFormat::Parquet => Box::new(parquet::ParquetRows::open(path, mapper)?),
    })
}

/// One input value: `None` for null/absent; non-string JSON values arrive
/// as their JSON text.
pub(crate) type RawValue = Option<String>;

/// A column the mapping needs, what it is for, and the flag that maps it.
pub(crate) struct RequiredColumn {
    column: String,
    what: String,
    flag: String,
}

/// Turns a row of named values into a [`SourceExample`] or a [`BadRow`];
/// shared by the three readers so mapping rules are the same everywhere.
pub(crate) struct RowMapper {
    file: Arc<str>,
    task: &'static TaskPreset,
    /// (task field, input column, required)
    fields: Vec<(String, String, bool)>,
    id_column: Option<String>,
    edited: Option<String>,
    /// Task field → column of its edited version (pairs mode).
    edited_fields: Vec<(String, String)>,
    edited_label: Option<String>,
    edit_type: Option<String>,
    max_field_bytes: usize,
}

impl RowMapper {
    fn new(config: &SourceConfig, task: &'static TaskPreset, path: &Path) -> Self {
        let fields = task
            .fields
            .iter()
            .filter_map(|f| {
                config
                    .column_for(task, f.name)
                    .map(|col| (f.name.to_string(), col, f.required))
            })
            .collect();
        RowMapper {
            file: Arc::from(path.display().to_string()),
            task,
            fields,
            id_column: config.id.clone(),
            edited: config.edited.clone(),
            edited_fields: config
                .edited_fields
                .iter()
                .map(|(f, c)| (f.clone(), c.clone()))
                .collect(),
            edited_label: config.edited_label.clone(),
            edit_type: config.edit_type.clone(),
            max_field_bytes: config.max_field_bytes,
        }
    }

    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    /// Columns the input must have (checked against a header up front for
    /// CSV and Parquet): (column, what it is for).
    pub(crate) fn required_columns(&self) -> Vec<RequiredColumn> {
        let need = |column: &String, what: String, flag: String| RequiredColumn {
            column: column.clone(),
            what,
            flag,
        };
        let mut cols: Vec<RequiredColumn> = self
            .fields
            .iter()
            .filter(|(_, _, req)| *req)
            .map(|(f, c, _)| {
                let flag = if f == self.task.edit_field {
                    "--text-field COLUMN".to_string()
                } else if f == "label" {
                    "--label-field COLUMN".to_string()
                } else {
                    format!("--field {f}=COLUMN")
                };
                need(c, format!("task field `{f}`"), flag)
            })
            .collect();
        let optional = [
            (&self.id_column, "the id", "--id-field"),
            (
                &self.edited,
                "the edited text (pairs mode)",
                "--edited-field",
            ),
            (
                &self.edited_label,
                "the edited label",
                "--edited-label-field",
            ),
            (&self.edit_type, "the edit type", "--edit-type-field"),
        ];
        for (column, what, flag) in optional {
            if let Some(c) = column {
                cols.push(need(c, what.to_string(), format!("{flag} COLUMN")));
            }
        }
        for (field, c) in &self.edited_fields {
            cols.push(need(
                c,
                format!("the edited `{field}` (pairs mode)"),
                format!("--edited-field {field}=COLUMN"),
            ));
        }
        cols
    }

    /// Fail early, naming file and column, when a header lacks a column the
    /// mapping needs.
    pub(crate) fn check_header(&self, header: &[String]) -> Result<(), UsageError> {
        for need in self.required_columns() {
            if !header.contains(&need.column) {
                return Err(UsageError::new(format!(
                    "`{}`: no column `{}` (needed for {}); the columns are: {}. \
                     Map it with {} or the [source] table",
                    self.file,
                    need.column,
                    need.what,
                    header.join(", "),
                    need.flag
                )));
            }
        }
        Ok(())
    }

    fn bad(
        &self,
        seq: u64,
        line: u64,
        field: Option<&str>,
        code: &'static str,
        reason: String,
    ) -> BadRow {
        BadRow {
            seq,
            file: self.file.to_string(),
            line,
            field: field.map(str::to_string),
            reason,
            code,
        }
    }

    pub(crate) fn bad_row(
        &self,
        seq: u64,
        line: u64,
        code: &'static str,
        reason: String,
    ) -> SourceItem {
        SourceItem::Bad(self.bad(seq, line, None, code, reason))
    }

    /// Map one row (column name → value) to an example.
    pub(crate) fn map(&self, seq: u64, line: u64, row: Vec<(String, RawValue)>) -> SourceItem {
        let lookup = |col: &str| -> Option<&RawValue> {
            row.iter().find(|(name, _)| name == col).map(|(_, v)| v)
        };
        let mut used: Vec<&str> = Vec::new();
        let mapped = self.task_fields(&lookup, &mut used).and_then(|fields| {
            let source_id = self.source_id(&lookup, &fields, &mut used)?;
            let given = self.given_edit(&lookup, &fields, &mut used)?;
            Ok((fields, source_id, given))
        });
        let (fields, source_id, given) = match mapped {
            Ok(m) => m,
            Err(p) => {
                return SourceItem::Bad(self.bad(seq, line, Some(p.column), p.code, p.reason));
            }
        };
        let passthrough = row
            .iter()
            .filter(|(name, _)| !used.contains(&name.as_str()))
            .cloned()
            .collect();
        SourceItem::Example(SourceExample {
            seq,
            source_id,
            fields,
            passthrough,
            given,
            origin: RowOrigin {
                file: self.file.clone(),
                line,
            },
        })
    }

    /// The task's fields of a row; the columns read go to `used`.
    fn task_fields<'a, 'r>(
        &'a self,
        lookup: &dyn Fn(&str) -> Option<&'r RawValue>,
        used: &mut Vec<&'a str>,
    ) -> Result<BTreeMap<String, String>, RowProblem<'a>> {
        let mut fields = BTreeMap::new();
        for (field, column, required) in &self.fields {
            used.push(column);
            match lookup(column) {
                Some(Some(value)) => {
                    if value.len() > self.max_field_bytes {
                        return Err(RowProblem {
                            column,
                            code: "field_too_large",
                            reason: format!(
                                "field `{column}` is {} bytes, over the limit of {}",
                                value.len(),
                                self.max_field_bytes
                            ),
                        });
                    }
                    if value.trim().is_empty() {
                        if *required {
                            return Err(RowProblem {
                                column,
                                code: "empty_field",
                                reason: format!("field `{column}` is empty"),
                            });
                        }
                        continue;
                    }
                    fields.insert(field.clone(), value.clone());
                }
                _ if *required => {
                    return Err(RowProblem {
                        column,
                        code: "missing_field",
                        reason: format!(
                            "required field `{column}` (task field `{field}`) is missing"
                        ),
                    });
                }
                _ => {}
            }
        }
        Ok(fields)
    }

    /// The row's id: its id column, or a hash of its content.
    fn source_id<'a, 'r>(
        &'a self,
        lookup: &dyn Fn(&str) -> Option<&'r RawValue>,
        fields: &BTreeMap<String, String>,
        used: &mut Vec<&'a str>,
    ) -> Result<String, RowProblem<'a>> {
        let Some(col) = &self.id_column else {
            return Ok(SourceExample::content_id(self.task.name, fields));
        };
        used.push(col);
        match lookup(col) {
            Some(Some(v)) if !v.trim().is_empty() => Ok(v.clone()),
            _ => Err(RowProblem {
                column: col,
                code: "missing_field",
                reason: format!("id column `{col}` is missing or empty"),
            }),
        }
    }

    /// The edit a pairs-mode row carries (none outside pairs mode).
    fn given_edit<'a, 'r>(
        &'a self,
        lookup: &dyn Fn(&str) -> Option<&'r RawValue>,
        fields: &BTreeMap<String, String>,
        used: &mut Vec<&'a str>,
    ) -> Result<Option<GivenEdit>, RowProblem<'a>> {
        if self.edited.is_none() && self.edited_fields.is_empty() {
            return Ok(None);
        }
        let opt = |c: &str| -> Option<String> {
            lookup(c)
                .cloned()
                .flatten()
                .filter(|v| !v.trim().is_empty())
        };
        let edited = match &self.edited {
            Some(col) => {
                used.push(col);
                opt(col).ok_or_else(|| RowProblem {
                    column: col,
                    code: "missing_field",
                    reason: format!("edited column `{col}` is missing or empty"),
                })?
            }
            // Only other fields were edited: the text stays as it is.
            None => fields
                .get(self.task.edit_field)
                .cloned()
                .unwrap_or_default(),
        };
        let mut edited_fields = BTreeMap::new();
        for (field, col) in &self.edited_fields {
            used.push(col);
            // An empty edited cell means that field was not edited.
            if let Some(v) = opt(col) {
                edited_fields.insert(field.clone(), v);
            }
        }
        used.extend(self.edited_label.iter().map(String::as_str));
        used.extend(self.edit_type.iter().map(String::as_str));
        let edited_label = self.edited_label.as_deref().and_then(opt);
        let edit_type = self.edit_type.as_deref().and_then(opt);
        Ok(Some(GivenEdit {
            edited,
            fields: edited_fields,
            edited_label,
            edit_type,
        }))
    }
}

/// Why a row cannot be used: the column, a reason code and a message.
struct RowProblem<'a> {
    column: &'a str,
    code: &'static str,
    reason: String,
}

/// Render a JSON value as a raw input value: strings as they are, null as
/// absent, everything else as compact JSON.
pub(crate) fn json_to_raw(v: &serde_json::Value) -> RawValue {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}
