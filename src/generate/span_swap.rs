//! COCO-CON style span swap: when a caption example names a `span` of its
//! text and an `alternative` for it, the contrast caption is the text with
//! that span replaced — no model needed. The swap is made before the
//! wrapped generator's candidates (rules or LLM), which still run.
//!
//! The span is matched case-insensitively at word boundaries (first
//! occurrence); a capital at the start of the span carries over, and an
//! indefinite article in front is fixed ("a apple" → "an apple"). When the
//! original label is the span (COCO-CON's VQA answer), the alternative is
//! the new label.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Generated, Generator};
use crate::record::{Candidate, Relation, SourceExample};

pub const EDIT_TYPE: &str = "span_swap";

pub struct SpanSwap {
    inner: Arc<dyn Generator>,
}

impl SpanSwap {
    pub fn new(inner: Arc<dyn Generator>) -> Self {
        SpanSwap { inner }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '\'' || c == '-'
}

/// Byte range of the first word-bounded, case-insensitive match.
fn find_span(text: &str, span: &str) -> Option<(usize, usize)> {
    let lower = text.to_lowercase();
    let needle = span.trim().to_lowercase();
    if needle.is_empty() || lower.len() != text.len() {
        // Lower-casing changed byte lengths (rare scripts): match exactly.
        return text.find(span.trim()).map(|i| (i, i + span.trim().len()));
    }
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle) {
        let (s, e) = (from + i, from + i + needle.len());
        if !text.is_char_boundary(s) || !text.is_char_boundary(e) {
            // Same total length, different widths per character: the
            // lower-cased offsets do not map back; match exactly instead.
            return text.find(span.trim()).map(|i| (i, i + span.trim().len()));
        }
        let before = text[..s].chars().next_back();
        let after = text[e..].chars().next();
        if !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char) {
            return Some((s, e));
        }
        from = s + needle.chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// The text with the span swapped, or `None` when the span is not there.
pub fn swap(text: &str, span: &str, alternative: &str) -> Option<String> {
    let (s, e) = find_span(text, span)?;
    let mut alt = alternative.trim().to_string();
    if text[s..].chars().next().is_some_and(char::is_uppercase)
        && let Some(first) = alt.chars().next()
    {
        alt = first.to_uppercase().chain(alt.chars().skip(1)).collect();
    }
    let mut head = text[..s].to_string();
    // Fix "a"/"an" right before the span.
    let trimmed = head.trim_end();
    let gap = head.len() - trimmed.len();
    if gap > 0 {
        // After the last non-letter, whatever its width in bytes.
        let word_start = trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let article = &trimmed[word_start..];
        let vowel = alt.chars().next().is_some_and(|c| "aeiouAEIOU".contains(c));
        let fixed = match (article, vowel) {
            ("a", true) => Some("an"),
            ("A", true) => Some("An"),
            ("an", false) => Some("a"),
            ("An", false) => Some("A"),
            _ => None,
        };
        if let Some(f) = fixed {
            head = format!("{}{f}{}", &trimmed[..word_start], &head[trimmed.len()..]);
        }
    }
    Some(format!("{head}{alt}{}", &text[e..]))
}

impl Generator for SpanSwap {
    fn describe(&self) -> String {
        // Swapped pairs say `span_swap` in their own `generator` column.
        self.inner.describe()
    }

    fn generate(&self, example: Arc<SourceExample>) -> BoxFuture<'_, Generated> {
        Box::pin(async move {
            let swapped = match (example.field("span"), example.field("alternative")) {
                (Some(span), Some(alt)) if !span.trim().is_empty() && !alt.trim().is_empty() => {
                    let text = example.field("text").unwrap_or_default();
                    match swap(text, span, alt) {
                        Some(edited) => Some(candidate(&example, edited, span, alt)),
                        None => {
                            tracing::debug!(source_id = %example.source_id, span, "span not in the caption; no swap");
                            None
                        }
                    }
                }
                _ => None,
            };
            let mut out = self.inner.generate(example).await;
            if let Some(c) = swapped {
                out.candidates.insert(0, c);
            }
            out
        })
    }
}

fn candidate(example: &SourceExample, edited: String, span: &str, alt: &str) -> Candidate {
    let mut c = Candidate::new(
        example,
        "text",
        edited,
        Relation::Flip,
        EDIT_TYPE,
        "span_swap",
    );
    if example
        .field("label")
        .is_some_and(|l| l.trim().eq_ignore_ascii_case(span.trim()))
    {
        c.edited_label = Some(alt.trim().to_string());
    }
    c.source_span = Some(span.trim().to_string());
    c.target_span = Some(alt.trim().to_string());
    c
}

#[cfg(test)]
mod tests {
    use super::swap;

    #[test]
    fn multibyte_punctuation_before_the_article_does_not_panic() {
        // The article's start was found one byte after the last
        // non-letter, inside a three-byte quotation mark.
        assert_eq!(
            swap("“A apple on a table", "apple", "pear").as_deref(),
            Some("“A pear on a table")
        );
        assert_eq!(
            swap("«an owl» on a branch", "owl", "crow").as_deref(),
            Some("«a crow» on a branch")
        );
    }

    #[test]
    fn swaps_the_first_word_bounded_match() {
        assert_eq!(
            swap("a woman with the meal on a green plate", "green", "white").as_deref(),
            Some("a woman with the meal on a white plate")
        );
        // "cat" inside "catcher" is not the span.
        assert_eq!(
            swap("A catcher near a cat.", "cat", "dog").as_deref(),
            Some("A catcher near a dog.")
        );
        assert_eq!(swap("a dog runs", "horse", "cow"), None);
    }

    #[test]
    fn keeps_capitals_and_fixes_articles() {
        assert_eq!(
            swap("Bread is on a board", "bread", "cheese").as_deref(),
            Some("Cheese is on a board")
        );
        assert_eq!(
            swap("a man holds a banana", "banana", "apple").as_deref(),
            Some("a man holds an apple")
        );
        assert_eq!(
            swap("An owl sits on an apple", "apple", "pear").as_deref(),
            Some("An owl sits on a pear")
        );
    }
}
