//! A BERT-family sentence model run in-process with candle: mean pooling
//! over the attention mask, then L2 normalisation — what
//! sentence-transformers does for all-MiniLM-L6-v2.
//!
//! The model lives on one worker thread that drains a queue, so requests
//! from many concurrent pipeline tasks are batched together; within a batch
//! texts are sorted by length and padded only to the longest of their
//! chunk, so short edits do not pay for long ones.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;

use super::bert::Bert;
use super::qgemm::Kernel;
use crate::config::Precision;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::oneshot;

use super::{EmbedError, Embedder};

/// The folder `scripts/fetch-model` fills: `$FOIL_MODEL_DIR`, else
/// `$FOIL_CACHE/models/all-MiniLM-L6-v2` (`~/.cache/foil` by default).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FOIL_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    cache_root().join("models").join("all-MiniLM-L6-v2")
}

/// foil's cache folder: `$FOIL_CACHE`, else `~/.cache/foil`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("FOIL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".cache").join("foil")
        })
}

/// A model folder has what [`SentenceModel::load`] reads, or the error
/// says which file is missing and how to get the model.
fn require_model_files(dir: &Path) -> Result<(), EmbedError> {
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        if !dir.join(f).is_file() {
            return Err(EmbedError::Model(format!(
                "`{}` has no {f}; fetch the default model with `scripts/fetch-model`, or \
                 point `embedder.model_dir` (or $FOIL_MODEL_DIR) at a sentence-model folder",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// SHA-256 of a model folder's weights, streamed (the folder is checked
/// first, so a missing model is reported as [`SentenceModel::load`] does).
pub fn weights_sha256(model_dir: &Path) -> Result<String, EmbedError> {
    require_model_files(model_dir)?;
    let path = model_dir.join("model.safetensors");
    let mut f = std::fs::File::open(&path)
        .map_err(|e| EmbedError::Model(format!("{}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(model_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn model_err(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Model(e.to_string())
}

/// The model and its tokenizer, used from one thread.
pub struct SentenceModel {
    model: Bert,
    tokenizer: Tokenizer,
    device: Device,
    pub dim: usize,
    name: String,
    /// Whether the dense products run in 8-bit integers.
    int8: bool,
}

impl SentenceModel {
    /// Load from a folder with `config.json`, `tokenizer.json` and
    /// `model.safetensors` (any BERT-family sentence model), in the
    /// checkpoint's own f32 arithmetic.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_with(dir, Precision::F32)
    }

    /// [`SentenceModel::load`] at a precision (`Auto` resolved for this
    /// CPU: int8 where it has VNNI instructions).
    pub fn load_with(dir: &Path, precision: Precision) -> Result<Self, EmbedError> {
        require_model_files(dir)?;
        let kernel = Kernel::detect();
        let int8 = match precision {
            Precision::F32 => None,
            Precision::Int8 => Some(kernel),
            Precision::Auto => kernel.is_fast().then_some(kernel),
        };
        let config_text = std::fs::read_to_string(dir.join("config.json")).map_err(model_err)?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| EmbedError::Model(format!("{}/config.json: {e}", dir.display())))?;
        let dim = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|v| v["hidden_size"].as_u64())
            .unwrap_or(0) as usize;
        // sentence-transformers truncates at max_seq_length (256 for
        // MiniLM), not at the tokenizer file's 128.
        let max_len = std::fs::read_to_string(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["max_seq_length"].as_u64())
            .unwrap_or(512) as usize;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| EmbedError::Model(format!("{}/tokenizer.json: {e}", dir.display())))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(model_err)?;
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only; foil never
        // writes to it, and a model folder changed under a running process
        // is outside what any loader can defend against.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &device,
            )
        }
        .map_err(model_err)?;
        let model = Bert::load(vb, &config, int8).map_err(model_err)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".to_string());
        Ok(SentenceModel {
            model,
            tokenizer,
            device,
            dim,
            name,
            int8: int8.is_some(),
        })
    }

    /// `int8` or `f32`: the arithmetic this model runs in.
    pub fn precision(&self) -> &'static str {
        if self.int8 { "int8" } else { "f32" }
    }

    /// Tokens in the tokenizer's vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The ids of `[CLS]` and `[SEP]`.
    pub fn cls_sep(&self) -> Result<(u32, u32), EmbedError> {
        let id = |t: &str| {
            self.tokenizer
                .token_to_id(t)
                .ok_or_else(|| EmbedError::Model(format!("the tokenizer has no {t}")))
        };
        Ok((id("[CLS]")?, id("[SEP]")?))
    }

    /// Embed rows of token ids as given (special tokens included), all in
    /// one pass, padded to the longest.
    pub fn embed_ids(&self, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let len = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(rows.len() * len);
        let mut mask = Vec::with_capacity(rows.len() * len);
        for r in rows {
            ids.extend_from_slice(r);
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            ids.extend(std::iter::repeat_n(0u32, len - r.len()));
            mask.extend(std::iter::repeat_n(0u32, len - r.len()));
        }
        self.forward(&ids, &mask, rows.len(), len)
            .map_err(model_err)
    }

    /// Embed texts, `batch` at a time after sorting by token length; the
    /// result is in input order.
    pub fn embed(&self, texts: &[String], batch: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(model_err)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch.max(1)) {
            let len = chunk
                .iter()
                .map(|&i| encodings[i].get_ids().len())
                .max()
                .unwrap_or(1)
                .max(1);
            let mut ids = Vec::with_capacity(chunk.len() * len);
            let mut mask = Vec::with_capacity(chunk.len() * len);
            for &i in chunk {
                let e = &encodings[i];
                ids.extend_from_slice(e.get_ids());
                mask.extend_from_slice(e.get_attention_mask());
                let pad = len - e.get_ids().len();
                ids.extend(std::iter::repeat_n(0u32, pad));
                mask.extend(std::iter::repeat_n(0u32, pad));
            }
            let vectors = self
                .forward(&ids, &mask, chunk.len(), len)
                .map_err(model_err)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward(
        &self,
        ids: &[u32],
        mask: &[u32],
        rows: usize,
        len: usize,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let ids = Tensor::from_slice(ids, (rows, len), &self.device)?;
        let mask = Tensor::from_slice(mask, (rows, len), &self.device)?;
        let hidden = self.model.forward(&ids, &mask)?;
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

/// The local model behind a queue, batched across callers.
pub struct LocalEmbedder {
    queue: mpsc::Sender<Job>,
    description: String,
    fingerprint: String,
}

impl LocalEmbedder {
    /// Load the model (on the calling thread, so load errors surface here)
    /// and start its worker thread, at `precision`. `weights_sha256` ([`weights_sha256`] of
    /// `dir`) files its vectors in the store by the weights, not the
    /// folder's name.
    pub fn start(
        dir: &Path,
        batch_size: usize,
        weights_sha256: &str,
        precision: Precision,
    ) -> Result<Self, EmbedError> {
        let model = SentenceModel::load_with(dir, precision)?;
        let description = format!(
            "{} (local, candle, {}, {} dims)",
            model.name,
            model.precision(),
            model.dim
        );
        // f32 vectors keep the fingerprint they were stored under before
        // int8 existed; int8 ones are filed apart.
        let suffix = if model.int8 { " int8" } else { "" };
        let fingerprint = format!("{} sha256:{weights_sha256}{suffix}", model.name);
        let (queue, jobs) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("foil-embed".into())
            .spawn(move || worker(model, jobs, batch_size))
            .map_err(model_err)?;
        Ok(LocalEmbedder {
            queue,
            description,
            fingerprint,
        })
    }
}

fn worker(model: SentenceModel, jobs: mpsc::Receiver<Job>, batch_size: usize) {
    while let Ok(first) = jobs.recv() {
        // Take whatever else is waiting, up to a few batches' worth.
        let mut batch = vec![first];
        let mut count = batch[0].texts.len();
        while count < batch_size * 4 {
            match jobs.try_recv() {
                Ok(job) => {
                    count += job.texts.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let all: Vec<String> = batch.iter().flat_map(|j| j.texts.iter().cloned()).collect();
        match model.embed(&all, batch_size) {
            Ok(vectors) => {
                let mut it = vectors.into_iter();
                for job in batch {
                    let mine: Vec<Vec<f32>> = it.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

impl Embedder for LocalEmbedder {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let (reply, rx) = oneshot::channel();
            self.queue
                .send(Job { texts, reply })
                .map_err(|_| EmbedError::Model("embedding worker stopped".into()))?;
            rx.await
                .map_err(|_| EmbedError::Model("embedding worker stopped".into()))?
        })
    }
}
