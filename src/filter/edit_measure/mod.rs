//! What an edit *is*: original and edit aligned word by word, the
//! differences grouped into the operations a person would name — replace a
//! phrase, insert one, delete one, swap two, move one — and the signatures
//! of broken edits read off the same alignment (a truncation, a scramble,
//! doubled text, an unrelated text, a no-op).
//!
//! Counting operations instead of word edits is what lets real contrast
//! edits through: SugarCrepe's attribute swap ("a white dog and a black
//! cat" ↔ "a black dog and a white cat") is one operation, not four word
//! edits, and a phrase replaced in a 600-word review is one operation
//! however long the phrase. Bounds then scale with the text's length
//! ([`EditBounds`]), so a caption and a review are judged alike.
//!
//! Everything here is pure: no model, no I/O; the filter
//! (`filter/edit_distance.rs`) applies it per changed field.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub use crate::tasks::EditBounds;

mod align;
mod broken;
mod tokens;

use align::*;
use broken::*;
use tokens::*;

/// Separator of joined multi-field texts ("premise ||| hypothesis"), as
/// several published contrast sets store two-field examples.
pub const SEGMENT_SEPARATOR: &str = "|||";

/// The kind of one edit operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A word or phrase replaced by another.
    Substitute,
    Insert,
    Delete,
    /// Two words or phrases exchanged ("born in London, educated in
    /// Ireland" ↔ the reverse).
    Swap,
    /// A word or phrase taken out and put back elsewhere.
    Move,
}

/// One operation, with what changed and where, for highlighting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditOp {
    /// The field it happened in (`text`, `premise`, `context`, or
    /// `text#2` for the second segment of a joined text).
    pub field: String,
    pub op: OpKind,
    /// Words of the original it replaced or removed (for a swap: the
    /// first phrase).
    pub from: String,
    /// Words of the edit that came in (for a swap: the second phrase).
    pub to: String,
    /// Byte range in the original field, and in the edited field (the
    /// whole field, also for a segment of a joined text), of what changed:
    /// insertions have an empty original range; a swap or move covers the
    /// stretch from the first exchanged phrase to the second.
    pub original_at: (usize, usize),
    pub edited_at: (usize, usize),
}

/// Reason for an edit that changes nothing once case, spacing and edge
/// punctuation are ignored.
pub const NO_OP: &str = "no_op";
/// Reason for an edit below [`EditBounds::min_related_share`].
pub const UNRELATED: &str = "unrelated_text";
/// More edit operations than the bounds allow for the field's length.
pub const TOO_MANY_EDIT_OPS: &str = "too_many_edit_ops";
/// More changed words than the bounds allow for the field's length.
pub const TOO_MANY_CHANGED_WORDS: &str = "too_many_changed_words";

/// What the alignment shows is broken about an edit, rather than merely
/// too large. (A no-op and an unrelated text are bounds questions:
/// [`NO_OP`], [`UNRELATED`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// A large deletion is the whole edit: half a sentence, or the end of
    /// one without its full stop.
    Truncated,
    /// The same words, mostly, in another order, beyond one swap or move.
    Scrambled,
    /// A run of words of the edit repeats another part of it.
    Duplicated,
}

impl Broken {
    /// The reason code written to `rejected/`.
    pub fn reason(self) -> &'static str {
        match self {
            Broken::Truncated => "truncated",
            Broken::Scrambled => "scrambled",
            Broken::Duplicated => "duplicated_text",
        }
    }
}

/// The measure of one field's edit.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMeasure {
    pub field: String,
    /// Words in the original and the edited field.
    pub original_words: usize,
    pub edited_words: usize,
    pub ops: Vec<EditOp>,
    /// Words removed and words added, not counting words that only moved
    /// (a swap or a move changes positions, not words).
    pub removed_words: usize,
    pub added_words: usize,
    /// How much the edit has to do with the example: the larger of the
    /// share of the original's content words it keeps and the share of its
    /// own content words found in the original example (every field, so a
    /// rewritten NLI hypothesis about the premise's scene is related, and
    /// another example's hypothesis is not). 1 when there are no content
    /// words.
    pub related_share: f64,
    /// What makes the edit broken, if anything; the first signature found.
    pub broken: Option<Broken>,
}

impl FieldMeasure {
    pub fn changed(&self) -> bool {
        !self.ops.is_empty()
    }

    /// Changed words (the larger of removed and added) over the longer
    /// text's length.
    pub fn changed_share(&self) -> f64 {
        let longest = self.original_words.max(self.edited_words).max(1);
        self.removed_words.max(self.added_words) as f64 / longest as f64
    }

    pub fn changed_words(&self) -> usize {
        self.removed_words.max(self.added_words)
    }
}

/// Measure the edit of one field on its own.
pub fn measure_field(field: &str, original: &str, edited: &str) -> FieldMeasure {
    measure_field_in(field, original, edited, &stems(original))
}

/// Measure the edit of one field of an example whose original fields have
/// the content stems `example`.
pub fn measure_field_in(
    field: &str,
    original: &str,
    edited: &str,
    example: &HashSet<String>,
) -> FieldMeasure {
    let a = tokens(original);
    let b = tokens(edited);
    let hunks = hunks(&a, &b);
    let mut m = FieldMeasure {
        field: field.to_string(),
        original_words: a.len(),
        edited_words: b.len(),
        ops: Vec::new(),
        removed_words: 0,
        added_words: 0,
        related_share: 1.0,
        broken: None,
    };
    if hunks.is_empty() {
        return m;
    }

    let (mut ops, used) = exchanges(field, original, edited, &a, &b, &hunks);
    let rest = join_replacements(&a, &hunks, &used);
    for h in &rest {
        ops.push(EditOp {
            field: field.to_string(),
            op: h.kind(),
            from: span_text(original, &a, h.a0, h.a1),
            to: span_text(edited, &b, h.b0, h.b1),
            original_at: byte_range(&a, h.a0, h.a1, original.len()),
            edited_at: byte_range(&b, h.b0, h.b1, edited.len()),
        });
    }
    ops.sort_by_key(|op| (op.original_at, op.edited_at));
    m.ops = ops;
    m.removed_words = rest.iter().map(|h| h.a1 - h.a0).sum();
    m.added_words = rest.iter().map(|h| h.b1 - h.b0).sum();

    m.related_share = related_share(&a, &b, &rest, example);
    let in_order = a.len() - hunks.iter().map(|h| h.a1 - h.a0).sum::<usize>();
    let exchanges = m
        .ops
        .iter()
        .filter(|o| matches!(o.op, OpKind::Swap | OpKind::Move))
        .count();
    m.broken = broken(&a, &b, &rest, (in_order, exchanges), original, edited);
    m
}

/// Split a field into the segments of a joined multi-field text when both
/// sides have the same number of segments; otherwise the field is one
/// segment.
pub fn segments<'a>(
    name: &str,
    original: &'a str,
    edited: &'a str,
) -> Vec<(String, &'a str, &'a str)> {
    let sa: Vec<&str> = original.split(SEGMENT_SEPARATOR).collect();
    let sb: Vec<&str> = edited.split(SEGMENT_SEPARATOR).collect();
    if sa.len() > 1 && sa.len() == sb.len() {
        sa.into_iter()
            .zip(sb)
            .enumerate()
            .map(|(i, (x, y))| (format!("{name}#{}", i + 1), x, y))
            .collect()
    } else {
        vec![(name.to_string(), original, edited)]
    }
}

impl FieldMeasure {
    /// Why the field's edit is out of bounds (reason, detail), if it is.
    pub fn check(&self, bounds: &EditBounds) -> Option<(&'static str, String)> {
        if !self.changed() {
            return None;
        }
        if let Some(b) = self.broken {
            return Some((b.reason(), broken_detail(b, self)));
        }
        if self.related_share < bounds.min_related_share {
            return Some((
                UNRELATED,
                format!(
                    "{}: {:.0}% of content words shared with the original < {:.0}%",
                    self.field,
                    self.related_share * 100.0,
                    bounds.min_related_share * 100.0
                ),
            ));
        }
        let n = self.original_words;
        let allowed = bounds.allowed_ops(n);
        if self.ops.len() > allowed {
            return Some((
                TOO_MANY_EDIT_OPS,
                format!(
                    "{}: {} edit operations > {allowed} allowed for {n} words",
                    self.field,
                    self.ops.len()
                ),
            ));
        }
        let allowed = bounds.allowed_changed_words(n);
        if self.changed_words() > allowed {
            return Some((
                TOO_MANY_CHANGED_WORDS,
                format!(
                    "{}: {} changed words > {allowed} allowed for {n} words",
                    self.field,
                    self.changed_words()
                ),
            ));
        }
        None
    }
}

/// Swaps and moves: a stretch of hunks i..=j whose edited side is the
/// original side with two blocks exchanged is one operation. The
/// operations, and which hunks they used.
fn exchanges(
    field: &str,
    original: &str,
    edited: &str,
    a: &[Token],
    b: &[Token],
    hunks: &[Hunk],
) -> (Vec<EditOp>, Vec<bool>) {
    let mut used = vec![false; hunks.len()];
    let mut ops: Vec<EditOp> = Vec::new();
    let mut i = 0;
    while i < hunks.len() {
        let hi = hunks[i];
        let mut found = None;
        for (j, hj) in hunks.iter().enumerate().skip(i) {
            if hj.a1 - hi.a0 > MAX_EXCHANGE_WORDS || hj.b1 - hi.b0 > MAX_EXCHANGE_WORDS {
                break;
            }
            let ra: Vec<&str> = keys(a, hi.a0, hj.a1).into_iter().map(article).collect();
            let rb: Vec<&str> = keys(b, hi.b0, hj.b1).into_iter().map(article).collect();
            if let Some((y, z)) = block_exchange(&ra, &rb) {
                found = Some((j, y, z));
                break;
            }
        }
        let Some((j, y, z)) = found else {
            i += 1;
            continue;
        };
        let (hj, len) = (hunks[j], hunks[j].a1 - hi.a0);
        // The original region is Y X Z and the edit Z X Y; with X empty
        // the edit moved a block past its neighbour.
        let kind = if y + z == len {
            OpKind::Move
        } else {
            OpKind::Swap
        };
        ops.push(EditOp {
            field: field.to_string(),
            op: kind,
            from: span_text(original, a, hi.a0, hi.a0 + y),
            to: span_text(original, a, hj.a1 - z, hj.a1),
            original_at: byte_range(a, hi.a0, hj.a1, original.len()),
            edited_at: byte_range(b, hi.b0, hj.b1, edited.len()),
        });
        for u in &mut used[i..=j] {
            *u = true;
        }
        i = j + 1;
    }

    (ops, used)
}

/// The hunks no exchange used, with two replaced pieces joined into one
/// phrase replacement when only a function word or two separate them
/// ("plays a musical instrument" → "invented a web search algorithm").
fn join_replacements(a: &[Token], hunks: &[Hunk], used: &[bool]) -> Vec<Hunk> {
    let mut rest: Vec<Hunk> = Vec::new();
    for (i, h) in hunks.iter().enumerate() {
        if used[i] {
            continue;
        }
        if let Some(last) = rest.last_mut() {
            let gap_a = &a[last.a1..h.a0];
            let joinable = last.kind() == OpKind::Substitute
                && h.kind() == OpKind::Substitute
                && !gap_a.is_empty()
                && gap_a.len() <= 2
                && h.b0 - last.b1 == gap_a.len()
                && gap_a.iter().all(|t| is_stopword(&t.key));
            if joinable {
                last.a1 = h.a1;
                last.b1 = h.b1;
                continue;
            }
        }
        rest.push(*h);
    }
    rest
}

/// Content kept: the larger of the share of the original's content words
/// still there (in place, or moved as a block) and the share of the edit's
/// own content words that come from the example.
fn related_share(a: &[Token], b: &[Token], rest: &[Hunk], example: &HashSet<String>) -> f64 {
    let content: Vec<&str> = a
        .iter()
        .map(|t| t.key.as_str())
        .filter(|k| !is_stopword(k))
        .collect();
    let kept = if content.is_empty() {
        1.0
    } else {
        let lost = rest
            .iter()
            .flat_map(|h| &a[h.a0..h.a1])
            .filter(|t| !is_stopword(&t.key))
            .count();
        1.0 - lost as f64 / content.len() as f64
    };
    let own: Vec<String> = b
        .iter()
        .filter(|t| !is_stopword(&t.key))
        .map(|t| stem(&t.key))
        .collect();
    let anchored = if own.is_empty() {
        1.0
    } else {
        own.iter().filter(|s| example.contains(*s)).count() as f64 / own.len() as f64
    };
    kept.max(anchored)
}

/// The content-word stems of an example's original fields: what an edit's
/// own words are checked against for [`FieldMeasure::related_share`]. The
/// same for every candidate of a source, so computed once per source.
pub fn example_stems<'a>(fields: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
    let mut out = HashSet::new();
    for text in fields {
        out.extend(stems(text));
    }
    out
}

/// The measure of a whole candidate: the fields (and segments of joined
/// fields) that changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EditMeasure {
    pub fields: Vec<FieldMeasure>,
}

impl EditMeasure {
    /// Measure `(field, original, edited)` triples on their own: the
    /// example is their originals.
    pub fn of<'a>(parts: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> Self {
        let parts: Vec<(&str, &str, &str)> = parts.into_iter().collect();
        let example = example_stems(parts.iter().map(|(_, o, _)| *o));
        Self::within(&example, parts)
    }

    /// Measure the `(field, original, edited)` triples of an example whose
    /// original fields have the stems `example` ([`example_stems`]),
    /// splitting joined multi-field texts into their segments. Fields left
    /// as they were are not aligned at all.
    pub fn within<'a>(
        example: &HashSet<String>,
        parts: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Self {
        let mut fields = Vec::new();
        for (name, original, edited) in parts {
            if original == edited {
                continue;
            }
            for (seg, o, e) in segments(name, original, edited) {
                let mut f = measure_field_in(&seg, o, e, example);
                // Spans point into the whole field, not into the segment.
                let (da, db) = (offset_in(original, o), offset_in(edited, e));
                for op in &mut f.ops {
                    op.original_at = (op.original_at.0 + da, op.original_at.1 + da);
                    op.edited_at = (op.edited_at.0 + db, op.edited_at.1 + db);
                }
                fields.push(f);
            }
        }
        EditMeasure { fields }
    }

    pub fn changed(&self) -> impl Iterator<Item = &FieldMeasure> {
        self.fields.iter().filter(|f| f.changed())
    }

    /// Names of the fields that changed, comma-separated.
    pub fn changed_fields(&self) -> String {
        self.changed()
            .map(|f| f.field.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn ops(&self) -> usize {
        self.changed().map(|f| f.ops.len()).sum()
    }

    /// The largest changed share over the changed fields.
    pub fn changed_share(&self) -> f64 {
        self.changed()
            .map(FieldMeasure::changed_share)
            .fold(0.0, f64::max)
    }

    /// The smallest related share over the changed fields.
    pub fn related_share(&self) -> f64 {
        self.changed().map(|f| f.related_share).fold(1.0, f64::min)
    }

    /// Every operation, as JSON, for reviewers and the report.
    pub fn spans_json(&self) -> String {
        let ops: Vec<&EditOp> = self.changed().flat_map(|f| &f.ops).collect();
        serde_json::to_string(&ops).unwrap_or_else(|_| "[]".into())
    }

    /// Why the candidate is out of bounds: the first field that is.
    pub fn check(&self, bounds: &EditBounds) -> Option<(&'static str, String)> {
        if self.changed().next().is_none() {
            return Some((
                NO_OP,
                "identical to the original after normalisation".into(),
            ));
        }
        self.changed().find_map(|f| f.check(bounds))
    }
}

#[cfg(test)]
mod tests;
