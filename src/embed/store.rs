//! Vectors kept across runs: a SQLite file (by default
//! `$FOIL_CACHE/embeddings.sqlite`, shared by every run on the machine) of
//! (embedder, SHA-256 of the text) → vector. A text the model or an
//! endpoint embedded once — in this run, in an earlier run over the same
//! data, in a run that was interrupted and resumed — is read back instead
//! of embedded again. The distilled embedder does not use it: it computes
//! a vector faster than the store reads one.
//!
//! The store is a cache: a failure to read or write it is logged once and
//! the run goes on embedding.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::EmbedError;
use crate::config::CacheMode;

/// The key of a text: the first 16 bytes of its SHA-256.
pub type TextKey = [u8; 16];

pub fn text_key(text: &str) -> TextKey {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

pub struct VectorStore {
    conn: Mutex<Connection>,
    read: bool,
    warned: AtomicBool,
}

impl VectorStore {
    /// Open (creating) the store at `path`; `None` when `mode` is `off`.
    /// `refresh` writes without reading.
    pub fn open(path: &Path, mode: CacheMode) -> Result<Option<Self>, EmbedError> {
        if mode == CacheMode::Off {
            return Ok(None);
        }
        let err = |e: rusqlite::Error| {
            EmbedError::Model(format!("embedding store `{}`: {e}", path.display()))
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                EmbedError::Model(format!("embedding store `{}`: {e}", path.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS vectors (
                 embedder TEXT NOT NULL,
                 text_key BLOB NOT NULL,
                 vector BLOB NOT NULL,
                 PRIMARY KEY (embedder, text_key)
             ) WITHOUT ROWID;",
        )
        .map_err(err)?;
        Ok(Some(VectorStore {
            conn: Mutex::new(conn),
            read: mode == CacheMode::Use,
            warned: AtomicBool::new(false),
        }))
    }

    fn warn(&self, e: impl std::fmt::Display) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("embedding store: {e}; embedding without it");
        }
    }

    /// The stored vector of each key, if any.
    pub fn get(&self, embedder: &str, keys: &[TextKey]) -> Vec<Option<Vec<f32>>> {
        if !self.read || keys.is_empty() {
            return vec![None; keys.len()];
        }
        let found = (|| -> rusqlite::Result<Vec<Option<Vec<f32>>>> {
            let conn = self.conn.lock().expect("store lock");
            let mut stmt = conn.prepare_cached(
                "SELECT vector FROM vectors WHERE embedder = ?1 AND text_key = ?2",
            )?;
            keys.iter()
                .map(|k| {
                    let blob: Option<Vec<u8>> = stmt
                        .query_row(params![embedder, &k[..]], |r| r.get(0))
                        .optional()?;
                    Ok(blob.map(|b| {
                        b.chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect()
                    }))
                })
                .collect()
        })();
        found.unwrap_or_else(|e| {
            self.warn(e);
            vec![None; keys.len()]
        })
    }

    /// Keep vectors, in one transaction; a key already stored keeps its
    /// first vector.
    pub fn put(&self, embedder: &str, items: &[(TextKey, &[f32])]) {
        if items.is_empty() {
            return;
        }
        let done = (|| -> rusqlite::Result<()> {
            let mut conn = self.conn.lock().expect("store lock");
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO vectors (embedder, text_key, vector) VALUES (?1, ?2, ?3)",
                )?;
                for (k, v) in items {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    stmt.execute(params![embedder, &k[..], bytes])?;
                }
            }
            tx.commit()
        })();
        if let Err(e) = done {
            self.warn(e);
        }
    }
}
