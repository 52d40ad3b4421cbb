//! Text helpers shared by generators, filters and dedup: one definition of
//! "normalised", of "word" and of "stable hash", so that a no-op in the
//! edit-distance filter and a duplicate in dedup mean the same thing.

use sha2::{Digest, Sha256};

/// Lower-cased, whitespace-collapsed, with punctuation at word edges
/// dropped: "Who wrote  Hamlet?" and "who wrote hamlet" normalise alike.
pub fn normalize(text: &str) -> String {
    words(text).join(" ")
}

/// Words for edit distance and dedup: lower-cased, split on whitespace,
/// punctuation trimmed from both ends, empty pieces dropped.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level Levenshtein distance (insertions, deletions, substitutions).
pub fn word_edit_distance(a: &[String], b: &[String]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, wa) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, wb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(wa != wb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Hex sha256 of the parts joined by an ASCII unit separator (which cannot
/// occur in a field boundary by accident), cut to `hex_len` characters.
pub fn stable_hash(parts: &[&str], hex_len: usize) -> String {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0x1f]);
        }
        h.update(p.as_bytes());
    }
    let digest = hex::encode(h.finalize());
    digest[..hex_len.min(digest.len())].to_string()
}

/// Full hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        words(s)
    }

    #[test]
    fn normalisation_ignores_case_spacing_and_edge_punctuation() {
        assert_eq!(normalize("Who wrote  Hamlet?"), "who wrote hamlet");
        assert_eq!(normalize("It isn't."), "it isn't");
    }

    #[test]
    fn word_distance_counts_substitutions_insertions_deletions() {
        assert_eq!(word_edit_distance(&w("a b c"), &w("a b c")), 0);
        assert_eq!(
            word_edit_distance(&w("the man is tall"), &w("the man is not tall")),
            1
        );
        assert_eq!(word_edit_distance(&w("x y z"), &w("y z x")), 2);
        assert_eq!(word_edit_distance(&w(""), &w("a b")), 2);
    }

    #[test]
    fn stable_hash_separates_fields() {
        assert_ne!(stable_hash(&["ab", "c"], 16), stable_hash(&["a", "bc"], 16));
        assert_eq!(stable_hash(&["x"], 16).len(), 16);
    }
}
