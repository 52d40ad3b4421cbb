//! The response cache: an SQLite file (one in the run folder by default, or
//! a shared path) mapping a hash of everything that changes an answer —
//! the server (its base URL, or a namespace the config names), endpoint
//! path, model, messages, sampling parameters, response format, i.e. the
//! whole request body — to the response body.
//!
//! The key never includes the API key (it is not in the body) and the value
//! is the server's reply, which never holds it.
//!
//! Writes go through a writer thread with its own connection, which
//! commits whatever replies have arrived since its last commit in one
//! transaction (WAL journal): at thousands of replies a second one commit
//! per reply was the LLM stage's bottleneck (measured in
//! docs/BENCHMARKS.md). A caller's [`ResponseCache::put`] returns only once
//! the transaction holding its reply has committed, so a reply is used
//! only after it is in the cache: a killed run (SIGKILL) loses only
//! requests whose replies it had not used, at most one per request in
//! flight. (`synchronous = NORMAL`: a commit survives the process, not a
//! power cut.) Reads and writes run off the async worker threads.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::text::sha256_hex;

pub use crate::config::CacheMode;

#[derive(Debug, thiserror::Error)]
#[error("response cache `{path}`: {message}")]
pub struct CacheError {
    pub path: String,
    pub message: String,
}

pub struct ResponseCache {
    conn: Mutex<Connection>,
    path: String,
    mode: CacheMode,
    writer: Mutex<Option<Writer>>,
}

struct Writer {
    tx: mpsc::Sender<Write>,
    thread: std::thread::JoinHandle<()>,
}

/// The commit's outcome, shared by every reply in its transaction.
type Ack = tokio::sync::oneshot::Sender<Result<(), std::sync::Arc<rusqlite::Error>>>;

enum Write {
    Put {
        key: String,
        body: String,
        at: i64,
        ack: Ack,
    },
}

/// Most replies committed in one transaction.
const MAX_BATCH: usize = 1024;

fn write_loop(conn: Connection, rx: mpsc::Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let result = (|| -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR REPLACE INTO responses (key, body, created_unix) VALUES (?1, ?2, ?3)",
                )?;
                for Write::Put { key, body, at, .. } in &batch {
                    st.execute(params![key, body, at])?;
                }
            }
            tx.commit()
        })()
        .map_err(std::sync::Arc::new);
        for Write::Put { ack, .. } in batch {
            let _ = ack.send(result.clone());
        }
    }
}

pub use crate::text::canonical_json;

/// The cache key of a request: sha256 over the namespace (the endpoint's
/// base URL unless the config names one), the endpoint path and the
/// canonical body.
pub fn cache_key(namespace: &str, path: &str, body: &Value) -> String {
    sha256_hex(format!("{namespace}\u{1f}{path}\u{1f}{}", canonical_json(body)).as_bytes())
}

impl ResponseCache {
    pub fn open(path: &Path, mode: CacheMode) -> Result<Self, CacheError> {
        let err = |e: rusqlite::Error| CacheError {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CacheError {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(conn)
        };
        let conn = open().map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS responses (
                key TEXT PRIMARY KEY,
                body TEXT NOT NULL,
                created_unix INTEGER NOT NULL
            )",
        )
        .map_err(err)?;
        let writer = if mode == CacheMode::Off {
            None
        } else {
            let (tx, rx) = mpsc::channel();
            let wconn = open().map_err(err)?;
            let thread = std::thread::Builder::new()
                .name("foil-cache-writer".into())
                .spawn(move || write_loop(wconn, rx))
                .map_err(|e| CacheError {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            Some(Writer { tx, thread })
        };
        Ok(ResponseCache {
            conn: Mutex::new(conn),
            path: path.display().to_string(),
            mode,
            writer: Mutex::new(writer),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> CacheError {
        CacheError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The cached reply for `key`, read on a blocking thread.
    pub async fn get(self: &Arc<Self>, key: &str) -> Result<Option<Value>, CacheError> {
        if self.mode != CacheMode::Use {
            return Ok(None);
        }
        let (this, key) = (self.clone(), key.to_string());
        tokio::task::spawn_blocking(move || this.get_blocking(&key))
            .await
            .map_err(|e| self.err(e))?
    }

    /// [`ResponseCache::get`] for callers outside the async runtime.
    pub fn get_blocking(&self, key: &str) -> Result<Option<Value>, CacheError> {
        if self.mode != CacheMode::Use {
            return Ok(None);
        }
        let conn = self.conn.lock().map_err(|e| self.err(e))?;
        // Cached statements: parsing the SQL again for every request was a
        // measurable share of the cache's cost at thousands of requests/s.
        let body: Option<String> = conn
            .prepare_cached("SELECT body FROM responses WHERE key = ?1")
            .and_then(|mut st| st.query_row(params![key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        Ok(body.and_then(|b| serde_json::from_str::<Value>(&b).ok()))
    }

    /// Store a reply; returns once the transaction holding it has
    /// committed (replies arriving together share one commit).
    pub async fn put(&self, key: &str, body: &Value) -> Result<(), CacheError> {
        if self.mode == CacheMode::Off {
            return Ok(());
        }
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let (ack, done) = tokio::sync::oneshot::channel();
        {
            let w = self.writer.lock().map_err(|e| self.err(e))?;
            let Some(w) = &*w else { return Ok(()) };
            w.tx.send(Write::Put {
                key: key.to_string(),
                body: body.to_string(),
                at,
                ack,
            })
            .map_err(|_| self.err("the writer thread stopped"))?;
        }
        done.await
            .map_err(|_| self.err("the writer thread stopped"))?
            .map_err(|e| self.err(format!("writing: {e}")))
    }

    /// Every key in the cache (for tests and `foil inspect`).
    pub fn keys(&self) -> Result<Vec<String>, CacheError> {
        let conn = self.conn.lock().map_err(|e| self.err(e))?;
        let mut stmt = conn
            .prepare("SELECT key FROM responses")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}

impl Drop for ResponseCache {
    /// Stop the writer (every put has committed before it returned).
    fn drop(&mut self) {
        let w = self.writer.get_mut().ok().and_then(Option::take);
        if let Some(Writer { tx, thread }) = w {
            drop(tx);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_field_order_but_not_values() {
        let a = json!({"model": "m", "temperature": 0.7, "messages": [{"role": "user", "content": "x"}]});
        let b = json!({"messages": [{"content": "x", "role": "user"}], "temperature": 0.7, "model": "m"});
        let c = json!({"model": "m", "temperature": 0.8, "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(
            cache_key("http://a/v1", "chat/completions", &a),
            cache_key("http://a/v1", "chat/completions", &b)
        );
        assert_ne!(
            cache_key("http://a/v1", "chat/completions", &a),
            cache_key("http://a/v1", "chat/completions", &c)
        );
        assert_ne!(
            cache_key("http://a/v1", "chat/completions", &a),
            cache_key("http://a/v1", "embeddings", &a)
        );
    }

    #[tokio::test]
    async fn modes_decide_reads_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let v = json!({"choices": []});
        let cache = Arc::new(ResponseCache::open(&path, CacheMode::Use).unwrap());
        cache.put("k", &v).await.unwrap();
        // Committed when put returns: another connection sees it.
        assert_eq!(
            ResponseCache::open(&path, CacheMode::Use)
                .unwrap()
                .get_blocking("k")
                .unwrap(),
            Some(v.clone())
        );
        assert_eq!(cache.get("k").await.unwrap(), Some(v.clone()));
        let refresh = Arc::new(ResponseCache::open(&path, CacheMode::Refresh).unwrap());
        assert_eq!(refresh.get("k").await.unwrap(), None);
        let off = ResponseCache::open(&path, CacheMode::Off).unwrap();
        off.put("k2", &v).await.unwrap();
        assert_eq!(off.keys().unwrap(), vec!["k".to_string()]);
    }
}
