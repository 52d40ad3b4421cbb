//! Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{EmbedError, Embedder};
use crate::llm::OpenAiClient;

/// Texts per request.
const BATCH: usize = 64;

pub struct HttpEmbedder {
    client: Arc<OpenAiClient>,
    model: String,
    url: String,
}

impl HttpEmbedder {
    pub fn new(client: Arc<OpenAiClient>, model: String, url: String) -> Self {
        HttpEmbedder { client, model, url }
    }
}

impl Embedder for HttpEmbedder {
    fn describe(&self) -> String {
        format!("{} via {}", self.model, self.url)
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(BATCH) {
                let v = self
                    .client
                    .embeddings(&self.model, chunk)
                    .await
                    .map_err(|e| match e {
                        crate::llm::LlmError::Budget(b) => EmbedError::Budget(b),
                        e => EmbedError::Endpoint(e.to_string()),
                    })?;
                out.extend(v);
            }
            Ok(out)
        })
    }
}
