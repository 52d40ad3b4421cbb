//! The response cache: an SQLite file (one in the run folder by default, or
//! a shared path) mapping a hash of everything that changes an answer —
//! endpoint path, model, messages, sampling parameters, response format,
//! i.e. the whole request body — to the response body.
//!
//! The key never includes the API key (it is not in the body) and the value
//! is the server's reply, which never holds it. Each response is committed
//! as soon as it arrives (WAL journal), so a killed run loses at most the
//! requests that were in flight.

use std::path::Path;
use std::sync::Mutex;

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

/// The cache key of a request: sha256 over the endpoint path and the
/// canonical body.
pub fn cache_key(path: &str, body: &Value) -> String {
    sha256_hex(format!("{path}\u{1f}{}", canonical_json(body)).as_bytes())
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
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS responses (
                key TEXT PRIMARY KEY,
                body TEXT NOT NULL,
                created_unix INTEGER NOT NULL
            )",
        )
        .map_err(err)?;
        Ok(ResponseCache {
            conn: Mutex::new(conn),
            path: path.display().to_string(),
            mode,
        })
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
        let conn = self.conn.lock().map_err(|e| self.err(e))?;
        // Cached statements: parsing the SQL again for every request was a
        // measurable share of the cache's cost at thousands of requests/s.
        let body: Option<String> = conn
            .prepare_cached("SELECT body FROM responses WHERE key = ?1")
            .and_then(|mut st| st.query_row(params![key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        Ok(body.and_then(|b| serde_json::from_str::<Value>(&b).ok()))
    }

    pub fn put(&self, key: &str, body: &Value) -> Result<(), CacheError> {
        if self.mode == CacheMode::Off {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let conn = self.conn.lock().map_err(|e| self.err(e))?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO responses (key, body, created_unix) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut st| st.execute(params![key, body.to_string(), now]))
        .map_err(|e| self.err(e))?;
        Ok(())
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
            cache_key("chat/completions", &a),
            cache_key("chat/completions", &b)
        );
        assert_ne!(
            cache_key("chat/completions", &a),
            cache_key("chat/completions", &c)
        );
        assert_ne!(
            cache_key("chat/completions", &a),
            cache_key("embeddings", &a)
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
