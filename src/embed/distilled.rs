//! A static embedder distilled from the sentence model, model2vec-style:
//! every vocabulary token is passed once through the model (`[CLS] token
//! [SEP]`, mean-pooled and normalised as a sentence would be), and a text's
//! vector is then the sum of its tokens' weighted rows, normalised — a
//! table lookup instead of six transformer layers.
//!
//! The distilled table is built once per model (a first run on a fresh
//! cache takes about 26 s in all on two cores) into foil's cache, keyed by the SHA-256 of the model's weights,
//! and holds the model's raw per-token vectors. What turns them into the
//! embedder is applied at load, in [`Table::prepare`]: the mean token
//! vector is subtracted (a mean of raw rows points mostly along the
//! direction every token shares, so unrelated texts would look alike) and
//! each row is weighted by how rare its token is (smooth inverse frequency
//! with a Zipf prior over the vocabulary's frequency order, as model2vec
//! does), so "the" and "." count for little and content words for much.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

pub use super::local::weights_sha256;
use super::local::{SentenceModel, cache_root};
use super::{EmbedError, Embedder};

/// The per-token vectors inside a distilled folder.
pub const TABLE_FILE: &str = "token-vectors.safetensors";
/// What the table was made from, and how.
pub const INFO_FILE: &str = "distilled.json";
const TENSOR: &str = "token_vectors";
/// Bumped when the table's meaning changes, so older folders are rebuilt.
const FORMAT: u32 = 1;
/// Tokens per forward pass while distilling.
const DISTILL_BATCH: usize = 512;
/// The smooth-inverse-frequency constant: a token of probability `p`
/// weighs `SIF / (SIF + p)`.
const SIF: f64 = 1e-4;

fn model_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(e.to_string())
}

/// Provenance of a distilled table, written next to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillInfo {
    pub format: u32,
    /// The model folder's name (all-MiniLM-L6-v2 by default).
    pub source_model: String,
    /// SHA-256 of the model's `model.safetensors`.
    pub source_sha256: String,
    pub vocab: usize,
    pub dims: usize,
    pub method: String,
}

/// Where the table distilled from weights with this hash lives, under
/// foil's cache folder `cache`.
pub fn distilled_dir(cache: &Path, sha256: &str) -> PathBuf {
    cache
        .join("models")
        .join("distilled")
        .join(&sha256[..16.min(sha256.len())])
}

/// The distilled folder, under the cache folder `cache`, for the model in
/// `model_dir` whose weights hash to `sha256` ([`weights_sha256`]: the
/// caller has it, as the model's own store fingerprint does, so the 90 MB
/// are read once per run). Built first if it is missing or was made by
/// another format; processes that find it missing at the same time build
/// it once ([`build_once`]). Also says whether this call built it.
pub fn ensure_distilled(
    cache: &Path,
    model_dir: &Path,
    sha256: &str,
) -> Result<(PathBuf, bool), EmbedError> {
    let dir = distilled_dir(cache, sha256);
    let ready =
        |dir: &Path| read_info(dir).is_ok_and(|i| i.format == FORMAT && i.source_sha256 == sha256);
    let built = build_once(&dir, ready, || {
        tracing::warn!(
            "distilling a static embedder from {} (once per model; about half a minute)",
            model_dir.display()
        );
        distill(model_dir, sha256, &dir)
    })?;
    Ok((dir, built))
}

/// Run `build` unless `ready(dir)`, holding an exclusive lock on
/// `dir.lock` and looking again once it is held, so that processes (or
/// threads) that find `dir` missing at once build it once. Whether this
/// call built it.
fn build_once(
    dir: &Path,
    ready: impl Fn(&Path) -> bool,
    build: impl FnOnce() -> Result<(), EmbedError>,
) -> Result<bool, EmbedError> {
    if ready(dir) {
        return Ok(false);
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(model_err)?;
    let lock_path = dir.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| EmbedError::Model(format!("{}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| EmbedError::Model(format!("{}: {e}", lock_path.display())))?;
    if ready(dir) {
        return Ok(false);
    }
    build()?;
    Ok(true)
}

fn read_info(dir: &Path) -> Result<DistillInfo, EmbedError> {
    let path = dir.join(INFO_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| EmbedError::Model(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| EmbedError::Model(format!("{}: {e}", path.display())))
}

/// Pass every vocabulary token through the model and write the table,
/// the tokenizer and the provenance into `dest` (atomically: a temporary
/// sibling folder renamed into place). Called under [`build_once`]'s lock.
fn distill(model_dir: &Path, sha256: &str, dest: &Path) -> Result<(), EmbedError> {
    let model = SentenceModel::load(model_dir)?;
    let vocab = model.vocab_size();
    let (cls, sep) = model.cls_sep()?;
    let mut table: Vec<f32> = Vec::with_capacity(vocab * model.dim);
    let ids: Vec<u32> = (0..vocab as u32).collect();
    for chunk in ids.chunks(DISTILL_BATCH) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|&t| vec![cls, t, sep]).collect();
        for v in model.embed_ids(&rows)? {
            table.extend_from_slice(&v);
        }
    }
    let info = DistillInfo {
        format: FORMAT,
        source_model: model_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_sha256: sha256.to_string(),
        vocab,
        dims: model.dim,
        method: "each token as [CLS] token [SEP] through the model, mean-pooled and \
                 normalised; at load: minus the mean token vector, weighted by smooth inverse \
                 frequency (Zipf prior over the vocabulary order)"
            .to_string(),
    };
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(model_err)?;
    let tmp = parent.join(format!(
        ".{}.{}.tmp",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(model_err)?;
    let tensor = Tensor::from_vec(table, (vocab, model.dim), &Device::Cpu).map_err(model_err)?;
    candle_core::safetensors::save(
        &HashMap::from([(TENSOR.to_string(), tensor)]),
        tmp.join(TABLE_FILE),
    )
    .map_err(model_err)?;
    std::fs::copy(model_dir.join("tokenizer.json"), tmp.join("tokenizer.json"))
        .map_err(model_err)?;
    let json = serde_json::to_string_pretty(&info).map_err(model_err)?;
    crate::files::write_atomic(&tmp.join(INFO_FILE), json.as_bytes()).map_err(model_err)?;
    // A folder of an older format is replaced.
    let _ = std::fs::remove_dir_all(dest);
    std::fs::rename(&tmp, dest).map_err(model_err)
}

/// The prepared per-token rows.
struct Table {
    rows: Vec<f32>,
    dim: usize,
}

impl Table {
    /// Centre the raw rows on the mean of the real tokens and weight each
    /// by its token's rarity. Special and `[unused…]` tokens get weight 0.
    fn prepare(mut raw: Vec<f32>, dim: usize, tokenizer: &Tokenizer) -> Table {
        let vocab = raw.len() / dim;
        let real: Vec<bool> = (0..vocab as u32)
            .map(|id| {
                tokenizer
                    .id_to_token(id)
                    .is_some_and(|t| !(t.starts_with('[') && t.ends_with(']') && t.len() > 2))
            })
            .collect();
        let n_real = real.iter().filter(|r| **r).count().max(1);
        let mut mean = vec![0f64; dim];
        for (row, _) in raw.chunks(dim).zip(&real).filter(|(_, r)| **r) {
            for (m, x) in mean.iter_mut().zip(row) {
                *m += f64::from(*x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n_real as f64);
        // Zipf: the k-th real token (vocabulary order) has probability
        // ∝ 1/k.
        let harmonic: f64 = (1..=n_real).map(|k| 1.0 / k as f64).sum();
        let mut rank = 0usize;
        for (row, is_real) in raw.chunks_mut(dim).zip(&real) {
            if !is_real {
                row.iter_mut().for_each(|x| *x = 0.0);
                continue;
            }
            rank += 1;
            let p = 1.0 / (rank as f64 * harmonic);
            let w = SIF / (SIF + p);
            for (x, m) in row.iter_mut().zip(&mean) {
                *x = ((f64::from(*x) - m) * w) as f32;
            }
        }
        Table { rows: raw, dim }
    }

    fn embed(&self, ids: &[u32]) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        for &id in ids {
            let start = id as usize * self.dim;
            if let Some(row) = self.rows.get(start..start + self.dim) {
                for (a, b) in v.iter_mut().zip(row) {
                    *a += b;
                }
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 1e-12 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

/// The distilled embedder: tokenise, sum the tokens' rows, normalise.
pub struct StaticEmbedder {
    tokenizer: Tokenizer,
    table: Table,
    description: String,
}

impl StaticEmbedder {
    /// Load the distilled table for the model in `model_dir` (weights
    /// hashing to `sha256`) from foil's cache, distilling it first when the
    /// cache has none.
    pub fn for_model(model_dir: &Path, sha256: &str) -> Result<Self, EmbedError> {
        let (dir, _) = ensure_distilled(&cache_root(), model_dir, sha256)?;
        Self::load(&dir)
    }

    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let info = read_info(dir)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| EmbedError::Model(format!("{}/tokenizer.json: {e}", dir.display())))?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(model_err)?;
        let path = dir.join(TABLE_FILE);
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", path.display())))?;
        let raw = tensors
            .get(TENSOR)
            .ok_or_else(|| EmbedError::Model(format!("{}: no `{TENSOR}`", path.display())))?
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(model_err)?;
        if raw.len() != info.vocab * info.dims {
            return Err(EmbedError::Model(format!(
                "{}: {} values, expected {} × {}",
                path.display(),
                raw.len(),
                info.vocab,
                info.dims
            )));
        }
        let table = Table::prepare(raw, info.dims, &tokenizer);
        Ok(StaticEmbedder {
            tokenizer,
            table,
            description: format!(
                "{} distilled (static, {} dims, weights sha256 {})",
                info.source_model,
                info.dims,
                &info.source_sha256[..12.min(info.source_sha256.len())]
            ),
        })
    }

    pub fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts
            .iter()
            .map(|t| {
                let enc = self
                    .tokenizer
                    .encode(t.as_str(), false)
                    .map_err(model_err)?;
                Ok(self.table.embed(enc.get_ids()))
            })
            .collect()
    }
}

impl Embedder for StaticEmbedder {
    fn describe(&self) -> String {
        self.description.clone()
    }

    /// A table lookup is faster than a SQLite read.
    fn worth_storing(&self) -> bool {
        false
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move { self.embed_texts(&texts) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn builders_that_start_together_build_once() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("models/distilled/abc");
        let builds = AtomicUsize::new(0);
        let ready = |d: &Path| d.join("done").is_file();
        let built: Vec<bool> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        build_once(&dir, ready, || {
                            builds.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(100));
                            std::fs::create_dir_all(&dir).unwrap();
                            std::fs::write(dir.join("done"), "").unwrap();
                            Ok(())
                        })
                        .unwrap()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(built.iter().filter(|b| **b).count(), 1);
        assert!(!build_once(&dir, ready, || panic!("built again")).unwrap());
    }
}
