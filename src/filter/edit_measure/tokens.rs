//! Words as the edit measure sees them: tokens with byte offsets and
//! normalised keys, stopwords, stems.

use std::collections::HashSet;

/// A word of a field: where it is, and the key it is compared by
/// (lower-cased, edge punctuation trimmed).
#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) key: String,
    /// Byte range in the field.
    pub(super) start: usize,
    pub(super) end: usize,
}

pub(super) fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut pos = 0;
    for piece in text.split_whitespace() {
        // split_whitespace yields subslices in order: find each after `pos`.
        let start = text[pos..].find(piece).map_or(pos, |i| pos + i);
        let end = start + piece.len();
        pos = end;
        let key = piece
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
            .replace('’', "'");
        if key.is_empty() {
            continue;
        }
        // Contractions as tokenised corpora (Penn Treebank, UD) write
        // them: "don't" is "do n't", "Pentagon's" is "Pentagon 's", so a
        // tokenised original and a detokenised edit align word for word.
        if let Some(at) = CONTRACTIONS
            .iter()
            .find(|c| key.len() > c.len() && key.ends_with(*c))
            .map(|c| key.len() - c.len())
            && let Some(apostrophe) = piece.rfind(['\'', '’'])
        {
            let split = if key[at..].starts_with('n') {
                apostrophe.saturating_sub(1)
            } else {
                apostrophe
            };
            let suffix = key[at..].trim_start_matches('\'').to_string();
            out.push(Token {
                key: key[..at].to_string(),
                start,
                end: start + split,
            });
            out.push(Token {
                key: suffix,
                start: start + split,
                end,
            });
            continue;
        }
        out.push(Token { key, start, end });
    }
    out
}

/// Clitics split off the word before them, as tokenised corpora do; a
/// lone "'s" token is "s" once its apostrophe is trimmed, so the suffix
/// is kept without it ("n't" keeps its own).
pub(super) const CONTRACTIONS: &[&str] = &["n't", "'s", "'re", "'ve", "'ll", "'d", "'m"];

/// Function words (and words as light as them: negation, modals,
/// quantifiers, "person", "get"): ignored when judging whether an edit
/// kept the original's content (an unrelated text shares "a", "the", "is",
/// "not" with anything) and allowed as the glue that joins two replaced
/// pieces into one phrase replacement.
pub(super) const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "to",
    "for",
    "with",
    "by",
    "from",
    "and",
    "or",
    "but",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "am",
    "it",
    "its",
    "this",
    "that",
    "these",
    "those",
    "as",
    "into",
    "onto",
    "up",
    "down",
    "out",
    "over",
    "his",
    "her",
    "their",
    "he",
    "she",
    "they",
    "them",
    "him",
    "we",
    "you",
    "i",
    "me",
    "my",
    "our",
    "your",
    "has",
    "have",
    "had",
    "do",
    "does",
    "did",
    "there",
    "here",
    "which",
    "who",
    "whom",
    "what",
    "while",
    "than",
    "then",
    "so",
    "if",
    "s",
    "'s",
    "not",
    "no",
    "never",
    "nor",
    "n't",
    "can",
    "could",
    "will",
    "would",
    "shall",
    "should",
    "may",
    "might",
    "must",
    "all",
    "any",
    "some",
    "every",
    "each",
    "very",
    "also",
    "just",
    "only",
    "more",
    "most",
    "much",
    "many",
    "other",
    "such",
    "about",
    "after",
    "before",
    "because",
    "through",
    "off",
    "again",
    "now",
    "one",
    "someone",
    "something",
    "people",
    "person",
    "thing",
    "get",
    "gets",
    "got",
    "getting",
    "doing",
    "done",
    "being",
    "having",
];

pub(super) fn is_stopword(key: &str) -> bool {
    STOPWORDS.contains(&key)
}

/// Content-word stems of a text: a crude stem (the first five
/// characters) so "wood" and "wooden", "jump" and "jumping" meet.
pub(super) fn stems(text: &str) -> HashSet<String> {
    tokens(text)
        .into_iter()
        .filter(|t| !is_stopword(&t.key))
        .map(|t| stem(&t.key))
        .collect()
}

pub(super) fn stem(key: &str) -> String {
    key.chars().take(5).collect()
}
