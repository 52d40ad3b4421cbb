//! Text helpers shared by generators, filters and dedup: one definition of
//! "normalised", of "word" and of "stable hash", so that a no-op in the
//! edit-distance filter and a duplicate in dedup mean the same thing.

use sha2::{Digest, Sha256};

/// Lower-cased, whitespace-collapsed, with punctuation at word edges
/// dropped: "Who wrote  Hamlet?" and "who wrote hamlet" normalise alike.
pub fn normalize(text: &str) -> String {
    words(text).join(" ")
}

/// When two labels (or a label and a prediction) are the same: compared as
/// normalised text, so "True.", " true" and "TRUE" agree. The one
/// definition eval, pairs mode, the label-change filter and the rules'
/// semantics use.
pub fn same_label(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
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

/// One piece of a word-level diff, in the original's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diff<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// Word-level diff of two texts (longest common subsequence over tokens
/// compared after normalisation, so case and edge punctuation do not count
/// as edits). Tokens keep their own spelling.
pub fn word_diff<'a>(a: &'a str, b: &'a str) -> Vec<Diff<'a>> {
    let ta: Vec<&str> = a.split_whitespace().collect();
    let tb: Vec<&str> = b.split_whitespace().collect();
    let key = |t: &str| {
        t.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let (ka, kb): (Vec<String>, Vec<String>) = (
        ta.iter().map(|t| key(t)).collect(),
        tb.iter().map(|t| key(t)).collect(),
    );
    let (n, m) = (ta.len(), tb.len());
    // lcs[i][j]: LCS length of ka[i..] and kb[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if ka[i] == kb[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(n.max(m)));
    while i < n && j < m {
        if ka[i] == kb[j] {
            out.push(Diff::Same(tb[j]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(Diff::Removed(ta[i]));
            i += 1;
        } else {
            out.push(Diff::Added(tb[j]));
            j += 1;
        }
    }
    out.extend(ta[i..].iter().map(|t| Diff::Removed(t)));
    out.extend(tb[j..].iter().map(|t| Diff::Added(t)));
    out
}

/// Escape text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The edit as HTML: removed words in `<del>`, added words in `<ins>`.
pub fn diff_html(a: &str, b: &str) -> String {
    word_diff(a, b)
        .iter()
        .map(|d| match d {
            Diff::Same(t) => html_escape(t),
            Diff::Removed(t) => format!("<del>{}</del>", html_escape(t)),
            Diff::Added(t) => format!("<ins>{}</ins>", html_escape(t)),
        })
        .collect::<Vec<_>>()
        .join(" ")
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

/// 64-bit FNV-1a, finished with a splitmix64 mix: stable across runs,
/// platforms and versions (std's hasher is not).
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    mix64(h)
}

pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Serialise a JSON value with object keys sorted at every level, so that
/// equal requests hash equally whatever order their fields were built in.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        words(s)
    }

    #[test]
    fn labels_are_the_same_whatever_their_case_spacing_and_edge_punctuation() {
        assert!(same_label("True.", "true"));
        assert!(same_label(" Entailment ", "entailment"));
        assert!(!same_label("true", "false"));
        assert!(!same_label("not entailed", "entailed"));
    }

    #[test]
    fn word_diff_marks_only_the_edit() {
        assert_eq!(
            diff_html("The man is tall.", "the man is not <tall>"),
            "the man is <ins>not</ins> &lt;tall&gt;"
        );
        assert_eq!(
            word_diff("a b c", "a x c"),
            vec![
                Diff::Same("a"),
                Diff::Removed("b"),
                Diff::Added("x"),
                Diff::Same("c")
            ]
        );
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
