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
//! docs/BENCHMARKS.md). Until committed, a reply is answered from memory.
//! A killed run loses at most the requests in flight and the replies of
//! the commit under way; a run flushes the writer before it ends.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::text::sha256_hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// Read and write (the default).
    #[default]
    Use,
    /// Neither read nor write (`--no-cache`).
    Off,
    /// Write only: every request is sent again and its answer replaces the
    /// cached one (`--refresh-cache`).
    Refresh,
}

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
    /// Replies handed to the writer and not yet committed.
    pending: Arc<Mutex<HashMap<String, Value>>>,
    writer: Mutex<Option<Writer>>,
    /// The writer's first error, reported by the next put or flush.
    failed: Arc<Mutex<Option<String>>>,
}

struct Writer {
    tx: mpsc::Sender<Write>,
    thread: std::thread::JoinHandle<()>,
}

enum Write {
    Put { key: String, body: Value, at: i64 },
    Flush(mpsc::SyncSender<()>),
}

/// Most replies committed in one transaction.
const MAX_BATCH: usize = 1024;

fn write_loop(
    conn: Connection,
    rx: mpsc::Receiver<Write>,
    pending: Arc<Mutex<HashMap<String, Value>>>,
    failed: Arc<Mutex<Option<String>>>,
) {
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
                for w in &batch {
                    if let Write::Put { key, body, at } = w {
                        st.execute(params![key, body.to_string(), at])?;
                    }
                }
            }
            tx.commit()
        })();
        if let Err(e) = result {
            let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
            f.get_or_insert_with(|| e.to_string());
        }
        let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
        for w in batch {
            match w {
                Write::Put { key, .. } => {
                    p.remove(&key);
                }
                Write::Flush(ack) => {
                    let _ = ack.send(());
                }
            }
        }
    }
}

/// Serialise a JSON value with object keys sorted at every level, so that
/// equal requests hash equally whatever order their fields were built in.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

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
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let failed = Arc::new(Mutex::new(None));
        let writer = if mode == CacheMode::Off {
            None
        } else {
            let (tx, rx) = mpsc::channel();
            let (wconn, p, f) = (open().map_err(err)?, pending.clone(), failed.clone());
            let thread = std::thread::Builder::new()
                .name("foil-cache-writer".into())
                .spawn(move || write_loop(wconn, rx, p, f))
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
            pending,
            writer: Mutex::new(writer),
            failed,
        })
    }

    /// The writer's first error, if any.
    fn check(&self) -> Result<(), CacheError> {
        let f = self.failed.lock().map_err(|e| self.err(e))?;
        match &*f {
            Some(m) => Err(self.err(format!("writing: {m}"))),
            None => Ok(()),
        }
    }

    /// Wait until every reply handed over so far is committed.
    pub fn flush(&self) -> Result<(), CacheError> {
        let (ack, done) = mpsc::sync_channel(1);
        {
            let w = self.writer.lock().map_err(|e| self.err(e))?;
            let Some(w) = &*w else { return Ok(()) };
            if w.tx.send(Write::Flush(ack)).is_err() {
                return Err(self.err("the writer thread stopped"));
            }
        }
        done.recv()
            .map_err(|_| self.err("the writer thread stopped"))?;
        self.check()
    }

    fn err(&self, e: impl std::fmt::Display) -> CacheError {
        CacheError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    pub fn get(&self, key: &str) -> Result<Option<Value>, CacheError> {
        if self.mode != CacheMode::Use {
            return Ok(None);
        }
        if let Some(v) = self.pending.lock().map_err(|e| self.err(e))?.get(key) {
            return Ok(Some(v.clone()));
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

    /// Hand a reply to the writer; it is answered from memory until
    /// committed.
    pub fn put(&self, key: &str, body: &Value) -> Result<(), CacheError> {
        if self.mode == CacheMode::Off {
            return Ok(());
        }
        self.check()?;
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.pending
            .lock()
            .map_err(|e| self.err(e))?
            .insert(key.to_string(), body.clone());
        let w = self.writer.lock().map_err(|e| self.err(e))?;
        let Some(w) = &*w else { return Ok(()) };
        w.tx.send(Write::Put {
            key: key.to_string(),
            body: body.clone(),
            at,
        })
        .map_err(|_| self.err("the writer thread stopped"))
    }

    /// Every key in the cache (for tests and `foil inspect`).
    pub fn keys(&self) -> Result<Vec<String>, CacheError> {
        self.flush()?;
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
    /// Commit what is pending and stop the writer.
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

    #[test]
    fn modes_decide_reads_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let v = json!({"choices": []});
        ResponseCache::open(&path, CacheMode::Use)
            .unwrap()
            .put("k", &v)
            .unwrap();
        assert_eq!(
            ResponseCache::open(&path, CacheMode::Use)
                .unwrap()
                .get("k")
                .unwrap(),
            Some(v.clone())
        );
        assert_eq!(
            ResponseCache::open(&path, CacheMode::Refresh)
                .unwrap()
                .get("k")
                .unwrap(),
            None
        );
        let off = ResponseCache::open(&path, CacheMode::Off).unwrap();
        off.put("k2", &v).unwrap();
        assert_eq!(off.keys().unwrap(), vec!["k".to_string()]);
    }
}
