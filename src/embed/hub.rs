//! Fetch a sentence model from a Hugging Face-style model hub into foil's
//! cache, for users with internet access. The hub address comes from
//! `HF_ENDPOINT` (the variable the hub's own tools read) and falls back to
//! the public hub; a token, when needed, from `HF_TOKEN` — sent only as a
//! header, never logged. Files land under a temp name and are renamed, so
//! an interrupted download is fetched again, not trusted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::EmbedError;

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const REQUIRED: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];
const OPTIONAL: &[&str] = &["sentence_bert_config.json"];

/// Where a hub model is cached: `<cache>/models/hub/<owner>--<name>`.
pub fn cache_dir_for(cache: &Path, repo: &str) -> PathBuf {
    cache
        .join("models")
        .join("hub")
        .join(repo.replace('/', "--"))
}

fn check_repo(repo: &str) -> Result<(), EmbedError> {
    let ok = !repo.is_empty()
        && repo.split('/').count() <= 2
        && repo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !repo.contains("..");
    if ok {
        Ok(())
    } else {
        Err(EmbedError::Model(format!(
            "`{repo}` is not a model repository name (owner/name)"
        )))
    }
}

/// The model folder for `repo`, downloading what is missing.
pub async fn fetch(repo: &str, revision: &str, cache: &Path) -> Result<PathBuf, EmbedError> {
    check_repo(repo)?;
    let dir = cache_dir_for(cache, repo);
    if REQUIRED.iter().all(|f| dir.join(f).is_file()) {
        return Ok(dir);
    }
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_string());
    let endpoint = endpoint.trim_end_matches('/');
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| EmbedError::Model(e.to_string()))?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| EmbedError::Model(format!("{}: {e}", dir.display())))?;
    for (file, required) in REQUIRED
        .iter()
        .map(|f| (f, true))
        .chain(OPTIONAL.iter().map(|f| (f, false)))
    {
        let dest = dir.join(file);
        if dest.is_file() {
            continue;
        }
        let url = format!("{endpoint}/{repo}/resolve/{revision}/{file}");
        tracing::info!("downloading {url}");
        let mut req = http.get(&url);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| EmbedError::Model(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            if required {
                return Err(EmbedError::Model(format!("{url}: HTTP {}", resp.status())));
            }
            continue;
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| EmbedError::Model(format!("{url}: {e}")))?;
        let tmp = crate::sink::tmp_path(&dest);
        std::fs::write(&tmp, &bytes)
            .and_then(|_| std::fs::rename(&tmp, &dest))
            .map_err(|e| EmbedError::Model(format!("{}: {e}", dest.display())))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_cannot_escape_the_cache() {
        assert!(check_repo("sentence-transformers/all-MiniLM-L6-v2").is_ok());
        assert!(check_repo("../etc").is_err());
        assert!(check_repo("a/b/c").is_err());
        assert!(check_repo("").is_err());
        assert_eq!(
            cache_dir_for(Path::new("/c"), "o/n"),
            PathBuf::from("/c/models/hub/o--n")
        );
    }
}
