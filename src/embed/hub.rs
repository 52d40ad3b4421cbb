//! Fetch a sentence model from a Hugging Face-style model hub into foil's
//! cache, for users with internet access. The hub address comes from
//! `HF_ENDPOINT` (the variable the hub's own tools read) and falls back to
//! the public hub; a token, when needed, from `HF_TOKEN` — sent only as a
//! header, never logged. Files land under a temp name and are renamed, so
//! an interrupted download is fetched again, not trusted. Each revision
//! has its own folder, and each file's sha256 is recorded at download (and
//! checked against the hub's, when it sends one) and checked at every
//! start: a changed or damaged file is fetched again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::EmbedError;

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const REQUIRED: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];
const OPTIONAL: &[&str] = &["sentence_bert_config.json"];

/// What foil recorded about a downloaded revision: the hub's commit
/// (when it says), each file's sha256, and optional files the hub lacks.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Recorded {
    revision: String,
    #[serde(default)]
    commit: Option<String>,
    files: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    absent: Vec<String>,
}

const RECORD: &str = "foil-files.json";

/// Where a hub model is cached: `<cache>/models/hub/<owner>--<name>/<revision>`,
/// one folder per revision, so asking for another revision never reuses
/// the weights of the last one.
pub fn cache_dir_for(cache: &Path, repo: &str, revision: &str) -> PathBuf {
    cache
        .join("models")
        .join("hub")
        .join(repo.replace('/', "--"))
        .join(revision)
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

fn check_revision(revision: &str) -> Result<(), EmbedError> {
    let ok = !revision.is_empty()
        && revision.len() <= 100
        && revision
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !revision.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(EmbedError::Model(format!(
            "`{revision}` is not a revision foil can cache (a branch, tag or commit of letters, digits, `-`, `_`, `.`)"
        )))
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// A sha256 the hub gives for a file (large files' `X-Linked-Etag` or
/// `ETag` is their sha256), if it gives one.
fn hub_sha256(headers: &reqwest::header::HeaderMap) -> Option<String> {
    ["x-linked-etag", "etag"].iter().find_map(|h| {
        let v = headers.get(*h)?.to_str().ok()?;
        let v = v
            .trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_ascii_lowercase();
        (v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit())).then_some(v)
    })
}

/// The model folder for `repo` at `revision`, downloading what is missing.
/// Every cached file is checked against the sha256 recorded when it was
/// downloaded; one that does not match is fetched again.
pub async fn fetch(repo: &str, revision: &str, cache: &Path) -> Result<PathBuf, EmbedError> {
    check_repo(repo)?;
    check_revision(revision)?;
    let dir = cache_dir_for(cache, repo, revision);
    let record_path = dir.join(RECORD);
    let mut record: Recorded = std::fs::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    record.revision = revision.to_string();
    let mut missing = Vec::new();
    for (file, required) in REQUIRED
        .iter()
        .map(|f| (*f, true))
        .chain(OPTIONAL.iter().map(|f| (*f, false)))
    {
        let path = dir.join(file);
        if !path.is_file() {
            if required || !record.absent.iter().any(|a| a == file) {
                missing.push((file, required));
            }
            continue;
        }
        let actual = sha256_file(&path)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", path.display())))?;
        if record.files.get(file) != Some(&actual) {
            tracing::warn!(
                "`{}` does not match the sha256 recorded when it was downloaded; fetching it again",
                path.display()
            );
            eprintln!(
                "foil: `{}` does not match the sha256 recorded when it was downloaded; fetching it again",
                path.display()
            );
            missing.push((file, required));
        }
    }
    if missing.is_empty() {
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
    for (file, required) in missing {
        let dest = dir.join(file);
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
            record.absent.push(file.to_string());
            continue;
        }
        if let Some(commit) = resp
            .headers()
            .get("x-repo-commit")
            .and_then(|v| v.to_str().ok())
        {
            record.commit = Some(commit.to_string());
        }
        let expected = hub_sha256(resp.headers());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| EmbedError::Model(format!("{url}: {e}")))?;
        let actual = crate::text::sha256_hex(&bytes);
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(EmbedError::Model(format!(
                "{url}: the download's sha256 {actual} is not the hub's {expected}"
            )));
        }
        crate::files::write_atomic(&dest, &bytes)
            .map_err(|e| EmbedError::Model(format!("{}: {e}", dest.display())))?;
        record.files.insert(file.to_string(), actual);
    }
    let text = serde_json::to_vec_pretty(&record).map_err(|e| EmbedError::Model(e.to_string()))?;
    crate::files::write_atomic(&record_path, &text)
        .map_err(|e| EmbedError::Model(format!("{}: {e}", record_path.display())))?;
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
            cache_dir_for(Path::new("/c"), "o/n", "main"),
            PathBuf::from("/c/models/hub/o--n/main")
        );
        assert!(check_revision("v1.0").is_ok());
        assert!(check_revision("0123abcd").is_ok());
        for bad in ["", "..", "../x", "a/b", ".hidden"] {
            assert!(check_revision(bad).is_err(), "{bad}");
        }
    }
}
