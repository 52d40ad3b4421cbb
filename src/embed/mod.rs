//! Sentence embeddings for the similarity band. The [`Embedder`] trait has
//! two implementations: [`local::LocalEmbedder`] (a BERT-family sentence
//! model run in-process with candle; all-MiniLM-L6-v2 by default) and
//! [`http::HttpEmbedder`] (any OpenAI-compatible `/v1/embeddings`).
//! [`CachedEmbedder`] wraps either so each distinct text is embedded once.

#[macro_use]
mod lanes;

mod attention;
pub mod bert;
pub mod distilled;
pub mod http;
pub mod hub;
pub mod local;
pub mod qgemm;
pub mod store;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model: {0}")]
    Model(String),
    #[error("embedding endpoint: {0}")]
    Endpoint(String),
    #[error(transparent)]
    Budget(#[from] crate::llm::budget::BudgetExhausted),
}

impl From<EmbedError> for crate::record::StageError {
    fn from(e: EmbedError) -> Self {
        match e {
            EmbedError::Budget(b) => crate::record::StageError::Budget(b.to_string()),
            other => crate::record::StageError::Failed(other.to_string()),
        }
    }
}

/// Turns texts into vectors (L2-normalised for the local model).
pub trait Embedder: Send + Sync {
    /// A name for the manifest: model and where it runs.
    fn describe(&self) -> String;
    /// What its vectors are filed under in the store: changes whenever the
    /// vectors would (by default the description).
    fn fingerprint(&self) -> String {
        self.describe()
    }
    /// Whether its vectors are worth keeping across runs in the store
    /// (not when it computes one faster than the store reads one).
    fn worth_storing(&self) -> bool {
        true
    }
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, EmbedError>>;
}

/// Remembers vectors by text so that an original shared by many edits, or
/// an edit repeated across sources, is embedded once. Memory is bounded:
/// two generations of at most `capacity` entries each; when the young one
/// fills, the old one is dropped. With a [`store::VectorStore`] the
/// vectors are kept across runs too.
pub struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    capacity: usize,
    hasher: RandomState,
    generations: Mutex<[HashMap<u64, Arc<Vec<f32>>>; 2]>,
    /// The store, and what the inner embedder's vectors are filed under.
    store: Option<(Arc<store::VectorStore>, String)>,
}

impl CachedEmbedder {
    pub fn new(inner: Arc<dyn Embedder>, capacity: usize) -> Self {
        CachedEmbedder {
            inner,
            capacity: capacity.max(1),
            hasher: RandomState::new(),
            generations: Mutex::new([HashMap::new(), HashMap::new()]),
            store: None,
        }
    }

    /// Keep vectors in `store` as well, filed under the inner embedder's
    /// fingerprint.
    pub fn with_store(mut self, store: Arc<store::VectorStore>) -> Self {
        self.store = Some((store, self.inner.fingerprint()));
        self
    }

    fn get(&self, key: u64) -> Option<Arc<Vec<f32>>> {
        let g = self.generations.lock().ok()?;
        g[0].get(&key).or_else(|| g[1].get(&key)).cloned()
    }

    fn put(&self, key: u64, v: Arc<Vec<f32>>) {
        if let Ok(mut g) = self.generations.lock() {
            if g[0].len() >= self.capacity {
                g[1] = std::mem::take(&mut g[0]);
            }
            g[0].insert(key, v);
        }
    }

    /// Vectors for `texts`, in order, computing only the ones not seen.
    pub async fn embed_all(&self, texts: &[&str]) -> Result<Vec<Arc<Vec<f32>>>, EmbedError> {
        let keys: Vec<u64> = texts.iter().map(|t| self.hasher.hash_one(t)).collect();
        let mut found: Vec<Option<Arc<Vec<f32>>>> = keys.iter().map(|k| self.get(*k)).collect();
        // The first index of each distinct text not in memory.
        let mut missing: Vec<usize> = Vec::new();
        for (i, f) in found.iter().enumerate() {
            if f.is_none() && !missing.iter().any(|&j| keys[j] == keys[i]) {
                missing.push(i);
            }
        }
        if let Some((store, fingerprint)) = &self.store
            && !missing.is_empty()
        {
            let text_keys: Vec<store::TextKey> =
                missing.iter().map(|&i| store::text_key(texts[i])).collect();
            let stored = store.get(fingerprint, &text_keys);
            missing = missing
                .into_iter()
                .zip(stored)
                .filter_map(|(i, v)| match v {
                    Some(v) => {
                        let v = Arc::new(v);
                        self.put(keys[i], v.clone());
                        found[i] = Some(v);
                        None
                    }
                    None => Some(i),
                })
                .collect();
        }
        if !missing.is_empty() {
            let missing_texts: Vec<String> =
                missing.iter().map(|&i| texts[i].to_string()).collect();
            let vectors = self.inner.embed(missing_texts).await?;
            if let Some((store, fingerprint)) = &self.store {
                let items: Vec<(store::TextKey, &[f32])> = missing
                    .iter()
                    .zip(&vectors)
                    .map(|(&i, v)| (store::text_key(texts[i]), v.as_slice()))
                    .collect();
                store.put(fingerprint, &items);
            }
            for (&i, v) in missing.iter().zip(vectors) {
                let v = Arc::new(v);
                self.put(keys[i], v.clone());
                found[i] = Some(v);
            }
        }
        // Repeats of a text take the vector of its first occurrence.
        for i in 0..found.len() {
            if found[i].is_none() {
                found[i] = (0..i)
                    .find(|&j| keys[j] == keys[i])
                    .and_then(|j| found[j].clone());
            }
        }
        found
            .into_iter()
            .map(|f| f.ok_or_else(|| EmbedError::Model("embedder returned too few vectors".into())))
            .collect()
    }

    pub fn describe(&self) -> String {
        self.inner.describe()
    }
}
