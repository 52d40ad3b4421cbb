//! Run state for crash-safe, exactly-once output: an SQLite file in
//! `<out>/.foil/state.sqlite` holding the config identity, the last
//! checkpoint and the dedup keys of every committed pair.
//!
//! A checkpoint says: every source with `seq < next_seq` is fully written —
//! its pairs in the listed shards, its bad rows and dead letters in the
//! first `quarantine_bytes` / `dead_letter_bytes` of those files. Shards
//! are renamed into place before the checkpoint that lists them commits,
//! so after a kill a shard is either listed (kept) or not (deleted on the
//! next start); either way no pair is lost or written twice.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::dedup::near::{Entry as NearEntry, Origin};
use crate::sink::manifest::{Counts, StageFunnel, Usage};
use crate::sink::shards::ShardEntry;

pub const STATE_DIR: &str = ".foil";

/// A change to the dead-letter table, committed with a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeadUpdate {
    /// Failed again (or for the first time): `tries` runs have tried it;
    /// the next run retries it.
    Tried { key: u64, tries: u32 },
    /// Finished, or given up (then also listed as a done source).
    Done { key: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub next_seq: u64,
    pub complete: bool,
    pub shards: Vec<ShardEntry>,
    pub rejected_shards: Vec<ShardEntry>,
    /// Every stage's funnel so far, in order (read first).
    pub funnel: Vec<StageFunnel>,
    pub counts: Counts,
    pub usage: Usage,
    pub quarantine_bytes: u64,
    pub dead_letter_bytes: u64,
    /// Seconds spent in earlier invocations.
    pub elapsed_s: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("run state `{path}`: {message}")]
pub struct StateError {
    pub path: String,
    pub message: String,
}

pub struct RunState {
    conn: Connection,
    path: PathBuf,
}

impl RunState {
    pub fn open(out_dir: &Path) -> Result<Self, StateError> {
        let dir = out_dir.join(STATE_DIR);
        let path = dir.join("state.sqlite");
        let err = |m: String| StateError {
            path: path.display().to_string(),
            message: m,
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let conn = Connection::open(&path).map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
            .and_then(|_| {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
                     CREATE TABLE IF NOT EXISTS dedup (key BLOB PRIMARY KEY, seq INTEGER NOT NULL);
                     CREATE TABLE IF NOT EXISTS sources (key INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
                     CREATE TABLE IF NOT EXISTS dead (key INTEGER PRIMARY KEY, tries INTEGER NOT NULL);
                     CREATE TABLE IF NOT EXISTS near (seq INTEGER NOT NULL, pair INTEGER NOT NULL,
                                                      bands BLOB NOT NULL, sig BLOB NOT NULL);",
                )
            })
            .map_err(|e| err(e.to_string()))?;
        Ok(RunState { conn, path })
    }

    fn err(&self, e: impl std::fmt::Display) -> StateError {
        StateError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn get(&self, k: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT v FROM meta WHERE k = ?1", params![k], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn identity(&self) -> Result<Option<String>, StateError> {
        self.get("identity")
    }

    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StateError> {
        match self.get("checkpoint")? {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    /// Forget everything: a fresh run under a new identity.
    pub fn reset(&mut self, identity: &str) -> Result<(), StateError> {
        let tx = self.conn.transaction().map_err(|e| StateError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        tx.execute("DELETE FROM meta", [])
            .and_then(|_| tx.execute("DELETE FROM dedup", []))
            .and_then(|_| tx.execute("DELETE FROM near", []))
            .and_then(|_| tx.execute("DELETE FROM sources", []))
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO meta (k, v) VALUES ('identity', ?1)",
                    params![identity],
                )
            })
            .and_then(|_| tx.commit())
            .map_err(|e| StateError {
                path: self.path.display().to_string(),
                message: e.to_string(),
            })
    }

    /// Dedup keys of committed pairs, with the source that first had them,
    /// one at a time (a long run has millions).
    pub fn each_dedup_key(
        &self,
        mut f: impl FnMut([u8; 16], u64) -> std::io::Result<()>,
    ) -> Result<(), StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, seq FROM dedup ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let k: Vec<u8> = r.get(0).map_err(|e| self.err(e))?;
            let seq: i64 = r.get(1).map_err(|e| self.err(e))?;
            if let Ok(key) = <[u8; 16]>::try_from(k.as_slice()) {
                f(key, seq as u64).map_err(|e| self.err(format!("dedup index: {e}")))?;
            }
        }
        Ok(())
    }

    /// The generation of the run: 0 for the first pass over the input, one
    /// more for each incremental run over a grown input.
    pub fn generation(&self) -> Result<u64, StateError> {
        Ok(self
            .get("generation")?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0))
    }

    pub fn set_generation(&mut self, g: u64) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (k, v) VALUES ('generation', ?1)",
                params![g.to_string()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The sources committed in generations before `generation`, looked
    /// up in the state file through a connection of their own (a grown
    /// input has millions; memory holds none of them). `None` when there
    /// are no earlier generations.
    /// Sources in the dead letters, waiting for a retry: key → how many
    /// runs have tried them.
    pub fn dead_sources(&self) -> Result<std::collections::HashMap<u64, u32>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, tries FROM dead")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u32))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn earlier_sources(&self, generation: u64) -> Result<Option<EarlierSources>, StateError> {
        if generation == 0 {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| self.err(e))?;
        Ok(Some(EarlierSources {
            conn,
            generation,
            path: self.path.clone(),
        }))
    }

    /// Near-dedup entries of committed pairs, in the order they were made,
    /// one at a time.
    pub fn each_near_entry(
        &self,
        mut f: impl FnMut(NearEntry) -> std::io::Result<()>,
    ) -> Result<(), StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, pair, bands, sig FROM near ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let seq: i64 = r.get(0).map_err(|e| self.err(e))?;
            let pair: i64 = r.get(1).map_err(|e| self.err(e))?;
            let bands: Vec<u8> = r.get(2).map_err(|e| self.err(e))?;
            let sig: Vec<u8> = r.get(3).map_err(|e| self.err(e))?;
            f(NearEntry {
                origin: Origin::Run(seq as u64),
                pair: pair as u64,
                bands: bands
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                sig: sig
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            })
            .map_err(|e| self.err(format!("near-dedup index: {e}")))?;
        }
        Ok(())
    }

    /// Commit a checkpoint and the dedup keys and near-dedup entries added
    /// since the last one, in one transaction.
    pub fn commit(
        &mut self,
        cp: &Checkpoint,
        new_keys: &[([u8; 16], u64)],
        new_near: &[NearEntry],
        new_sources: &[u64],
        dead: &[DeadUpdate],
        generation: u64,
    ) -> Result<(), StateError> {
        let text = serde_json::to_string(cp).map_err(|e| self.err(e))?;
        let path = self.path.display().to_string();
        let err = |e: rusqlite::Error| StateError {
            path: path.clone(),
            message: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut ins = tx
                .prepare_cached("INSERT OR IGNORE INTO dedup (key, seq) VALUES (?1, ?2)")
                .map_err(err)?;
            for (k, seq) in new_keys {
                ins.execute(params![&k[..], *seq as i64]).map_err(err)?;
            }
            let mut src = tx
                .prepare_cached("INSERT OR IGNORE INTO sources (key, generation) VALUES (?1, ?2)")
                .map_err(err)?;
            for k in new_sources {
                src.execute(params![*k as i64, generation as i64])
                    .map_err(err)?;
            }
            for d in dead {
                match d {
                    DeadUpdate::Tried { key, tries } => tx
                        .prepare_cached("INSERT OR REPLACE INTO dead (key, tries) VALUES (?1, ?2)")
                        .and_then(|mut st| st.execute(params![*key as i64, *tries as i64])),
                    DeadUpdate::Done { key } => tx
                        .prepare_cached("DELETE FROM dead WHERE key = ?1")
                        .and_then(|mut st| st.execute(params![*key as i64])),
                }
                .map_err(err)?;
            }
            let mut near = tx
                .prepare_cached("INSERT INTO near (seq, pair, bands, sig) VALUES (?1, ?2, ?3, ?4)")
                .map_err(err)?;
            for e in new_near {
                let Origin::Run(seq) = e.origin else { continue };
                let bands: Vec<u8> = e.bands.iter().flat_map(|b| b.to_le_bytes()).collect();
                let sig: Vec<u8> = e.sig.iter().flat_map(|b| b.to_le_bytes()).collect();
                near.execute(params![seq as i64, e.pair as i64, bands, sig])
                    .map_err(err)?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (k, v) VALUES ('checkpoint', ?1)",
            params![text],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }
}

/// See [`RunState::earlier_sources`].
pub struct EarlierSources {
    conn: Connection,
    generation: u64,
    path: PathBuf,
}

impl EarlierSources {
    /// Whether an earlier generation committed the source with this key.
    pub fn contains(&self, key: u64) -> Result<bool, StateError> {
        let err = |e: rusqlite::Error| StateError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        self.conn
            .prepare_cached("SELECT 1 FROM sources WHERE key = ?1 AND generation < ?2")
            .map_err(err)?
            .exists(params![key as i64, self.generation as i64])
            .map_err(err)
    }
}

/// An exclusive lock on an output folder, held for as long as the value
/// lives (the OS drops it when the process dies, however it dies).
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

/// Lock `out_dir` for this process, or say who holds it. Two runs on one
/// folder would delete each other's uncommitted shards and interleave
/// checkpoints, so the second is refused before it touches anything.
pub fn lock_folder(out_dir: &Path) -> anyhow::Result<FolderLock> {
    use std::io::{Read, Seek, Write};
    let dir = out_dir.join(STATE_DIR);
    let path = dir.join("lock");
    let context = || format!("locking `{}`", path.display());
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", context()))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", context()))?;
    match file.try_lock() {
        Ok(()) => {
            // Who holds it, for the message the next one gets.
            let _ = file.set_len(0).and_then(|_| {
                file.rewind()?;
                write!(file, "{}", std::process::id())?;
                file.flush()
            });
            Ok(FolderLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another foil process".to_string()
            } else {
                format!("another foil process (pid {holder})")
            };
            Err(crate::UsageError::new(format!(
                "`{}` is in use by {who}; wait for it to finish or write to another folder \
                 (two runs on one folder would delete each other's uncommitted shards)",
                out_dir.display()
            ))
            .into())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(anyhow::anyhow!("{}: {e}", context())),
    }
}
