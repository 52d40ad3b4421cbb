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

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Separator of joined multi-field texts ("premise ||| hypothesis"), as
/// several published contrast sets store two-field examples.
pub const SEGMENT_SEPARATOR: &str = "|||";

/// A word of a field: where it is, and the key it is compared by
/// (lower-cased, edge punctuation trimmed).
#[derive(Debug, Clone)]
struct Token {
    key: String,
    /// Byte range in the field.
    start: usize,
    end: usize,
}

fn tokens(text: &str) -> Vec<Token> {
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
const CONTRACTIONS: &[&str] = &["n't", "'s", "'re", "'ve", "'ll", "'d", "'m"];

/// Function words (and words as light as them: negation, modals,
/// quantifiers, "person", "get"): ignored when judging whether an edit
/// kept the original's content (an unrelated text shares "a", "the", "is",
/// "not" with anything) and allowed as the glue that joins two replaced
/// pieces into one phrase replacement.
const STOPWORDS: &[&str] = &[
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

fn is_stopword(key: &str) -> bool {
    STOPWORDS.contains(&key)
}

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

/// A maximal run of differences between two matched stretches:
/// `a[a0..a1]` became `b[b0..b1]`.
#[derive(Debug, Clone, Copy)]
struct Hunk {
    a0: usize,
    a1: usize,
    b0: usize,
    b1: usize,
}

impl Hunk {
    fn kind(&self) -> OpKind {
        match (self.a0 == self.a1, self.b0 == self.b1) {
            (true, _) => OpKind::Insert,
            (_, true) => OpKind::Delete,
            _ => OpKind::Substitute,
        }
    }
}

/// "a" and "an" as one word, so an article repaired after a swap does not
/// hide the swap.
fn article(k: &str) -> &str {
    if k == "an" { "a" } else { k }
}

fn keys(t: &[Token], from: usize, to: usize) -> Vec<&str> {
    t[from..to].iter().map(|t| t.key.as_str()).collect()
}

fn span_text(field: &str, t: &[Token], from: usize, to: usize) -> String {
    if from == to {
        return String::new();
    }
    field[t[from].start..t[to - 1].end].to_string()
}

fn byte_range(t: &[Token], from: usize, to: usize, field_len: usize) -> (usize, usize) {
    if from < to {
        (t[from].start, t[to - 1].end)
    } else if from < t.len() {
        (t[from].start, t[from].start)
    } else {
        (field_len, field_len)
    }
}

/// Longest stretch of text (in words) searched for an exchange of two
/// blocks; swaps people make are short, and the search is cubic.
const MAX_EXCHANGE_WORDS: usize = 60;

/// Whether `rb` is `ra` = Y X Z with Y and Z exchanged (Z X Y), Y and Z
/// not empty, X possibly empty; returns (|Y|, |Z|), shortest Y first.
fn block_exchange(ra: &[&str], rb: &[&str]) -> Option<(usize, usize)> {
    let n = ra.len();
    if n < 2 || rb.len() != n || ra == rb {
        return None;
    }
    // Only the same words can be an exchange: a cheap test first, since
    // most stretches are not.
    let (mut sa, mut sb) = (ra.to_vec(), rb.to_vec());
    sa.sort_unstable();
    sb.sort_unstable();
    if sa != sb {
        return None;
    }
    for y in 1..n {
        for z in 1..=n - y {
            let (ys, xs, zs) = (&ra[..y], &ra[y..n - z], &ra[n - z..]);
            if rb[..z] == *zs && rb[z..n - y] == *xs && rb[n - y..] == *ys {
                return Some((y, z));
            }
        }
    }
    None
}

/// Word alignment: the runs of differences between `a` and `b`.
/// Patience diff anchors on words that occur once on each side, so a
/// frequent "the" or "a" does not pull a long text out of line.
fn hunks(a: &[Token], b: &[Token]) -> Vec<Hunk> {
    let ka: Vec<&str> = a.iter().map(|t| t.key.as_str()).collect();
    let kb: Vec<&str> = b.iter().map(|t| t.key.as_str()).collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Patience, &ka, &kb);
    // The matched blocks, in order; the differences are the gaps between
    // them (built from the matches alone, whatever order the diff reports
    // its insertions and deletions in).
    let mut equal: Vec<(usize, usize, usize)> = ops
        .iter()
        .filter_map(|op| match *op {
            similar::DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => Some((old_index, new_index, len)),
            _ => None,
        })
        .collect();
    equal.sort_unstable();
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    for (oi, ni, len) in equal.into_iter().chain([(a.len(), b.len(), 0)]) {
        if oi < i || ni < j {
            continue;
        }
        if oi > i || ni > j {
            out.push(Hunk {
                a0: i,
                a1: oi,
                b0: j,
                b1: ni,
            });
        }
        (i, j) = (oi + len, ni + len);
    }
    out
}

/// Content-word stems of a text: a crude stem (the first five
/// characters) so "wood" and "wooden", "jump" and "jumping" meet.
fn stems(text: &str) -> HashSet<String> {
    tokens(text)
        .into_iter()
        .filter(|t| !is_stopword(&t.key))
        .map(|t| stem(&t.key))
        .collect()
}

fn stem(key: &str) -> String {
    key.chars().take(5).collect()
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

    // Swaps and moves first: a stretch of hunks i..=j whose edited side is
    // the original side with two blocks exchanged is one operation.
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
            let ra: Vec<&str> = keys(&a, hi.a0, hj.a1).into_iter().map(article).collect();
            let rb: Vec<&str> = keys(&b, hi.b0, hj.b1).into_iter().map(article).collect();
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
            from: span_text(original, &a, hi.a0, hi.a0 + y),
            to: span_text(original, &a, hj.a1 - z, hj.a1),
            original_at: byte_range(&a, hi.a0, hj.a1, original.len()),
            edited_at: byte_range(&b, hi.b0, hj.b1, edited.len()),
        });
        for u in &mut used[i..=j] {
            *u = true;
        }
        i = j + 1;
    }

    // The rest, with two replaced pieces joined into one phrase
    // replacement when only a function word or two separate them ("plays
    // a musical instrument" → "invented a web search algorithm").
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

    // Content kept: the original's content words that are still there in
    // place, or moved as a block.
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
    m.related_share = kept.max(anchored);
    let in_order = a.len() - hunks.iter().map(|h| h.a1 - h.a0).sum::<usize>();
    let exchanges = m
        .ops
        .iter()
        .filter(|o| matches!(o.op, OpKind::Swap | OpKind::Move))
        .count();
    m.broken = broken(&a, &b, &rest, (in_order, exchanges), original, edited);
    m
}

/// Signatures of a broken edit, in the order they are checked: text that
/// repeats itself, a truncation, a scramble. (An unrelated text is a
/// bound, [`EditBounds::min_related_share`], because how much of the
/// original an edit must keep depends on the task.)
/// `in_order` counts the words the alignment matched in order,
/// `exchanges` the swaps and moves found.
fn broken(
    a: &[Token],
    b: &[Token],
    rest: &[Hunk],
    (in_order, exchanges): (usize, usize),
    original: &str,
    edited: &str,
) -> Option<Broken> {
    // Doubled text: an added run that also stands elsewhere in the edit —
    // a long run (its first eight words compared), or a run that is a
    // quarter of the text. A short phrase that recurs ("at the end of")
    // is ordinary in a long review.
    let kb: Vec<&str> = b.iter().map(|t| t.key.as_str()).collect();
    for h in rest {
        let run = &kb[h.b0..h.b1];
        let probe = &run[..run.len().min(8)];
        if probe.len() < 3 || (probe.len() < 6 && (run.len() as f64) < 0.25 * a.len() as f64) {
            continue;
        }
        let elsewhere = kb
            .windows(probe.len())
            .enumerate()
            .any(|(i, w)| w == probe && (i + probe.len() <= h.b0 || i >= h.b1));
        if elsewhere {
            return Some(Broken::Duplicated);
        }
    }
    if truncated(a, rest, original, edited) {
        return Some(Broken::Truncated);
    }
    scrambled(a, b, (in_order, exchanges, rest), original, edited).then_some(Broken::Scrambled)
}

fn ends_sentence(s: &str) -> bool {
    s.trim_end()
        .trim_end_matches(['"', '\'', ')', '”', '’'])
        .ends_with(['.', '!', '?'])
}

fn starts_upper(s: &str) -> bool {
    s.trim_start()
        .chars()
        .find(|c| c.is_alphanumeric())
        .is_some_and(char::is_uppercase)
}

/// A truncation: the edit only deletes, and what is left is not a
/// finished sentence — it lost the full stop the original had, starts
/// mid-sentence, or ends on an article, preposition or auxiliary; or, in a
/// text written without a full stop (most captions), a large share is
/// gone. People do shorten sentences on purpose ("The person is
/// snowboarding on top of a mountain." → "The person is snowboarding."),
/// and then the edit ends and begins as the original did.
fn truncated(a: &[Token], rest: &[Hunk], original: &str, edited: &str) -> bool {
    let n = a.len();
    if rest.is_empty() || rest.iter().any(|h| h.b0 != h.b1) {
        return false;
    }
    let deleted: usize = rest.iter().map(|h| h.a1 - h.a0).sum();
    let share = deleted as f64 / n.max(1) as f64;
    let cuts_end = rest.last().is_some_and(|h| h.a1 == n);
    let cuts_start = rest.first().is_some_and(|h| h.a0 == 0);
    let lost_stop = cuts_end && ends_sentence(original) && !ends_sentence(edited);
    let lost_start = cuts_start && starts_upper(original) && !starts_upper(edited);
    let dangling = cuts_end
        && !ends_sentence(edited)
        && rest
            .last()
            .and_then(|h| h.a0.checked_sub(1))
            .is_some_and(|last| DANGLING.contains(&a[last].key.as_str()));
    let finished = (ends_sentence(edited) || !ends_sentence(original))
        && (starts_upper(edited) || !starts_upper(original));
    (deleted >= 2 && (lost_stop || lost_start))
        || dangling
        || (!ends_sentence(original) && share >= 0.4)
        || (!finished && share >= 0.25)
        || share >= 0.8
}

/// Words a finished sentence does not end on.
const DANGLING: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "with", "by", "from", "into", "and",
    "or", "but", "is", "are", "was", "were", "be", "his", "her", "their", "its", "my", "your",
    "our", "this", "that", "these", "those", "while", "when", "where", "after", "before",
    "because", "if", "then", "they", "he", "she", "it", "we", "not", "no", "does", "do", "did",
    "has", "have", "had", "will", "would", "can", "could",
];

/// A scramble: the edit is mostly the original's own words, some of them
/// out of order, and the order is broken — most of the edit's word pairs
/// are not neighbours in the original, or a sentence now ends mid-text or
/// starts with a word that was not first. A swap of two clauses (VideoCon's
/// event order) keeps nearly every pair and its sentence shape, and passes.
///
/// `exchanges` swaps and moves were found; when they explain every
/// difference (`rest` empty) the order is one exchange, not a scramble,
/// unless the sentence shape broke.
fn scrambled(
    a: &[Token],
    b: &[Token],
    (in_order, exchanges, rest): (usize, usize, &[Hunk]),
    original: &str,
    edited: &str,
) -> bool {
    if a.len() < 3 || b.len() < 3 {
        return false;
    }
    let mut pool: HashMap<&str, usize> = HashMap::new();
    for t in a {
        *pool.entry(t.key.as_str()).or_default() += 1;
    }
    let mut common = 0;
    for t in b {
        if let Some(n) = pool.get_mut(t.key.as_str())
            && *n > 0
        {
            *n -= 1;
            common += 1;
        }
    }
    let own_words = common as f64 / a.len().max(b.len()) as f64;
    if own_words < 0.8 || common <= in_order {
        return false;
    }
    let pairs: HashSet<(&str, &str)> = a
        .windows(2)
        .map(|w| (w[0].key.as_str(), w[1].key.as_str()))
        .collect();
    let kept_pairs = b
        .windows(2)
        .filter(|w| pairs.contains(&(w[0].key.as_str(), w[1].key.as_str())))
        .count() as f64
        / (b.len() - 1) as f64;
    // Sentence ends inside the text, as written.
    let inner_stops = |s: &str| {
        let words: Vec<&str> = s.split_whitespace().collect();
        words.len().saturating_sub(1)
            - words[..words.len().saturating_sub(1)]
                .iter()
                .filter(|w| !ends_sentence(w))
                .count()
    };
    let stop_moved = inner_stops(edited) > inner_stops(original);
    let start_moved = starts_upper(original) && !starts_upper(edited);
    // One word out of place is what moving a negation looks like ("The man
    // is not steering a car" → "The man is steering a car, not pleased"):
    // it needs a more broken order to count.
    let broken_pairs = if common - in_order >= 2 { 0.6 } else { 0.5 };
    let one_exchange = exchanges == 1 && rest.is_empty();
    exchanges >= 2 || stop_moved || start_moved || (!one_exchange && kept_pairs < broken_pairs)
}

/// Byte offset of `part`, a subslice of `whole`.
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
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

/// How large an edit may be, as a function of the field's length: a floor
/// for short texts and a rate for long ones, so a 12-word caption and a
/// 600-word review are both judged by what a person would call minimal.
/// The defaults per task (`tasks/mod.rs`) come from the distribution of
/// real contrast edits (`scripts/bench-quality` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBounds {
    /// Operations allowed in any field, however short.
    pub max_ops: u32,
    /// Further operations per 100 words of the field.
    pub ops_per_100_words: f64,
    /// Changed words allowed in any field, however short.
    pub max_changed_words: u32,
    /// Changed words as a share of the field's length, for long fields.
    pub max_changed_share: f64,
    /// Least share of the original's content words the edit must keep;
    /// below it the edit is an unrelated text.
    pub min_related_share: f64,
}

impl EditBounds {
    /// Operations allowed in a field of `words` words.
    pub fn allowed_ops(&self, words: usize) -> usize {
        let scaled = (words as f64 * self.ops_per_100_words / 100.0).ceil() as usize;
        (self.max_ops as usize).max(scaled)
    }

    /// Changed words allowed in a field of `words` words.
    pub fn allowed_changed_words(&self, words: usize) -> usize {
        let scaled = (words as f64 * self.max_changed_share).floor() as usize;
        (self.max_changed_words as usize).max(scaled)
    }

    /// A one-line problem with the bounds themselves, if any.
    pub fn problem(&self) -> Option<String> {
        let share_ok = |x: f64| (0.0..=1.0).contains(&x);
        if self.max_ops == 0 || self.max_changed_words == 0 {
            Some("max_ops and max_changed_words must be above 0 (0 rejects every edit)".into())
        } else if self.ops_per_100_words.is_nan() || self.ops_per_100_words < 0.0 {
            Some(format!(
                "ops_per_100_words must be 0 or more, got {}",
                self.ops_per_100_words
            ))
        } else if !share_ok(self.max_changed_share) || !share_ok(self.min_related_share) {
            Some(format!(
                "max_changed_share and min_related_share must be in [0, 1], got {} and {}",
                self.max_changed_share, self.min_related_share
            ))
        } else {
            None
        }
    }

    /// Why the field's edit is out of bounds (reason, detail), if it is.
    pub fn check(&self, m: &FieldMeasure) -> Option<(&'static str, String)> {
        if !m.changed() {
            return None;
        }
        if let Some(b) = m.broken {
            return Some((b.reason(), broken_detail(b, m)));
        }
        if m.related_share < self.min_related_share {
            return Some((
                UNRELATED,
                format!(
                    "{}: {:.0}% of content words shared with the original < {:.0}%",
                    m.field,
                    m.related_share * 100.0,
                    self.min_related_share * 100.0
                ),
            ));
        }
        let n = m.original_words;
        let allowed = self.allowed_ops(n);
        if m.ops.len() > allowed {
            return Some((
                "too_many_edit_ops",
                format!(
                    "{}: {} edit operations > {allowed} allowed for {n} words",
                    m.field,
                    m.ops.len()
                ),
            ));
        }
        let allowed = self.allowed_changed_words(n);
        if m.changed_words() > allowed {
            return Some((
                "too_many_changed_words",
                format!(
                    "{}: {} changed words > {allowed} allowed for {n} words",
                    m.field,
                    m.changed_words()
                ),
            ));
        }
        None
    }
}

fn broken_detail(b: Broken, m: &FieldMeasure) -> String {
    let f = &m.field;
    match b {
        Broken::Truncated => format!(
            "{f}: the edit only deletes ({} of {} words)",
            m.removed_words, m.original_words
        ),
        Broken::Scrambled => format!("{f}: the original's words reordered beyond one swap or move"),
        Broken::Duplicated => format!("{f}: added words repeat another part of the text"),
    }
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
        self.changed().find_map(|f| bounds.check(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(a: &str, b: &str) -> FieldMeasure {
        measure_field("text", a, b)
    }

    fn kinds(f: &FieldMeasure) -> Vec<OpKind> {
        f.ops.iter().map(|o| o.op).collect()
    }

    const CLAIM: EditBounds = EditBounds {
        max_ops: 3,
        ops_per_100_words: 4.0,
        max_changed_words: 8,
        max_changed_share: 0.5,
        min_related_share: 0.25,
    };

    #[test]
    fn a_swap_of_two_phrases_is_one_operation() {
        let f = m(
            "W. B. Yeats was born in London and educated in Ireland.",
            "W. B. Yeats was born in Ireland and educated in London.",
        );
        assert_eq!(kinds(&f), vec![OpKind::Swap]);
        assert_eq!(f.ops[0].from, "London");
        assert_eq!(f.ops[0].to, "Ireland.");
        assert_eq!(f.changed_words(), 0, "swapped words are not changed words");
        assert_eq!(f.broken, None);
        let f = m("a white dog and a black cat", "a black dog and a white cat");
        assert_eq!(kinds(&f), vec![OpKind::Swap]);
        let f = m(
            "the big red ball is next to the small blue box",
            "the small blue box is next to the big red ball",
        );
        assert_eq!(kinds(&f), vec![OpKind::Swap], "{:?}", f.ops);
        assert_eq!(CLAIM.check(&f), None);
    }

    #[test]
    fn a_phrase_moved_elsewhere_is_one_operation() {
        let f = m(
            "yesterday the man walked his dog in the park",
            "the man walked his dog in the park yesterday",
        );
        assert_eq!(kinds(&f), vec![OpKind::Move]);
        assert_eq!(f.broken, None);
    }

    #[test]
    fn a_replaced_phrase_is_one_operation_whatever_its_length() {
        let f = m(
            "Jimmy Page plays a musical instrument.",
            "Jimmy Page invented a web search algorithm.",
        );
        assert_eq!(kinds(&f), vec![OpKind::Substitute], "{:?}", f.ops);
        assert_eq!(f.ops[0].from, "plays a musical instrument.");
        assert_eq!(CLAIM.check(&f), None);
        let f = m("the man owns a dog", "the man does not own a dog");
        assert_eq!(kinds(&f), vec![OpKind::Substitute]);
        let f = m("the man is tall", "the man is not tall");
        assert_eq!(kinds(&f), vec![OpKind::Insert]);
        assert_eq!(f.ops[0].to, "not");
    }

    #[test]
    fn tokenised_contractions_align_with_written_ones() {
        let f = m(
            "You do n't need the Pentagon 's approval , and you 're right .",
            "You don't need the Pentagon's approval, and you're wrong.",
        );
        assert_eq!(kinds(&f), vec![OpKind::Substitute], "{:?}", f.ops);
        assert_eq!(f.ops[0].to, "wrong.");
    }

    #[test]
    fn spans_point_at_the_words_as_written() {
        let a = "A “dog” runs on   the beach.";
        let b = "A “cat” runs on the beach.";
        let f = m(a, b);
        let op = &f.ops[0];
        assert_eq!(&a[op.original_at.0..op.original_at.1], "“dog”");
        assert_eq!(&b[op.edited_at.0..op.edited_at.1], "“cat”");
    }

    #[test]
    fn a_truncation_is_caught() {
        let f = m("Popeye is famous for eating Spinach.", "Popeye is famous");
        assert_eq!(f.broken, Some(Broken::Truncated));
        assert_eq!(CLAIM.check(&f).map(|r| r.0), Some("truncated"));
        // The second half alone, too.
        let f = m(
            "A man in a red shirt is riding a bike down the hill.",
            "riding a bike down the hill.",
        );
        assert_eq!(f.broken, Some(Broken::Truncated));
        // A small deletion inside the sentence is an edit, not a truncation.
        let f = m(
            "someone who is lying down on the street",
            "someone who is on the street",
        );
        assert_eq!(f.broken, None);
    }

    #[test]
    fn scrambled_doubled_and_unchanged_texts_are_named() {
        let f = m(
            "A butler may work in a factory.",
            "factory. a may work in butler A",
        );
        assert_eq!(f.broken, Some(Broken::Scrambled), "{:?}", f.ops);
        let t = "A dog catches a red frisbee in the park.";
        let f = m(t, &format!("{t} {t}"));
        assert_eq!(f.broken, Some(Broken::Duplicated));
        let f = m(t, "a dog catches a  red Frisbee in the park");
        assert!(!f.changed());
        assert_eq!(
            EditMeasure::of([("text", t, "A dog catches a red frisbee in the park")])
                .check(&CLAIM)
                .map(|r| r.0),
            Some("no_op")
        );
    }

    #[test]
    fn an_unrelated_text_keeps_too_little_of_the_original() {
        let f = m(
            "A dog catches a red frisbee in the park.",
            "Two women are cooking dinner in a small kitchen.",
        );
        assert!(f.related_share < 0.25, "{}", f.related_share);
        assert_eq!(CLAIM.check(&f).map(|r| r.0), Some("unrelated_text"));
    }

    #[test]
    fn a_long_review_with_three_phrase_changes_passes() {
        let sentence = "The plot moves along at a steady pace and the actors seem to \
                        enjoy their roles, even when the script gives them little to do.";
        let original: Vec<String> = (0..12).map(|i| format!("{sentence} Scene {i}.")).collect();
        let mut edited = original.clone();
        edited[2] = edited[2].replace("a steady pace", "a painfully slow crawl");
        edited[6] = edited[6].replace("seem to enjoy", "clearly resent");
        edited[10] = edited[10].replace("little to do", "nothing worth doing");
        let (a, b) = (original.join(" "), edited.join(" "));
        let f = m(&a, &b);
        assert!(f.original_words > 250, "{}", f.original_words);
        assert_eq!(f.ops.len(), 3, "{:?}", f.ops);
        let text = EditBounds {
            max_ops: 4,
            ops_per_100_words: 5.0,
            max_changed_words: 8,
            max_changed_share: 0.4,
            min_related_share: 0.3,
        };
        assert_eq!(text.check(&f), None);
        // The same three changes are too many for a short caption's bound…
        assert!(text.allowed_ops(12) >= 3);
        // …while a bound scales with length.
        assert!(text.allowed_ops(600) > text.allowed_ops(12));
    }

    #[test]
    fn joined_fields_are_measured_one_by_one() {
        let e = EditMeasure::of([(
            "text",
            "the man does not own a dog ||| the man does not own a mammal",
            "the man owns a dog ||| the man owns a mammal",
        )]);
        assert_eq!(e.changed_fields(), "text#1,text#2");
        assert_eq!(e.ops(), 2);
        // Spans point into the joined text, not into its segment.
        let second = &e.fields[1].ops[0];
        let a = "the man does not own a dog ||| the man does not own a mammal";
        let b = "the man owns a dog ||| the man owns a mammal";
        assert_eq!(
            &a[second.original_at.0..second.original_at.1],
            "does not own"
        );
        assert_eq!(&b[second.edited_at.0..second.edited_at.1], "owns");
        assert!(e.fields.iter().all(|f| f.broken.is_none()));
        let e = EditMeasure::of([("premise", "a b c d", "a b c d"), ("text", "x y", "x z")]);
        assert_eq!(e.changed_fields(), "text");
        assert_eq!(e.fields.len(), 1, "an unchanged field is not aligned");
    }

    /// Random texts and random edits of them (from a vocabulary with
    /// multi-byte punctuation, clitics and separators): the measure never
    /// panics, its spans are valid slices of the texts, and it finds a
    /// change exactly when the words differ.
    #[test]
    fn random_edits_keep_the_measure_consistent() {
        const VOCAB: &[&str] = &[
            "a",
            "the",
            "dog",
            "Dog.",
            "“cat”",
            "don't",
            "n't",
            "'s",
            "|||",
            "—",
            "é",
            "niño",
            "runs",
            "runs,",
            "…",
            "big",
            "red",
            "-",
            "l'",
            "x’s",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..3000 {
            let len = next(12);
            let a: Vec<&str> = (0..len).map(|_| VOCAB[next(VOCAB.len())]).collect();
            let mut b = a.clone();
            for _ in 0..next(4) {
                match next(4) {
                    0 if !b.is_empty() => {
                        let i = next(b.len());
                        b[i] = VOCAB[next(VOCAB.len())];
                    }
                    1 => b.insert(next(b.len() + 1), VOCAB[next(VOCAB.len())]),
                    2 if !b.is_empty() => {
                        b.remove(next(b.len()));
                    }
                    _ if b.len() > 1 => {
                        let (i, j) = (next(b.len()), next(b.len()));
                        b.swap(i, j);
                    }
                    _ => {}
                }
            }
            let (ta, tb) = (a.join(" "), b.join("  "));
            let e = EditMeasure::of([("text", ta.as_str(), tb.as_str())]);
            let _ = e.check(&CLAIM);
            let _ = e.spans_json();
            for f in &e.fields {
                for op in &f.ops {
                    assert!(
                        ta.get(op.original_at.0..op.original_at.1).is_some(),
                        "{ta:?}"
                    );
                    assert!(tb.get(op.edited_at.0..op.edited_at.1).is_some(), "{tb:?}");
                }
                assert!(f.removed_words <= f.original_words);
                assert!((0.0..=1.0).contains(&f.related_share));
            }
            let f = measure_field("text", &ta, &tb);
            let same = tokens(&ta)
                .iter()
                .map(|t| &t.key)
                .eq(tokens(&tb).iter().map(|t| &t.key));
            assert_eq!(f.changed(), !same, "{ta:?} → {tb:?}");
        }
    }

    #[test]
    fn any_text_is_measured_without_panicking() {
        for (a, b) in [
            ("", ""),
            ("", "a"),
            ("…", "“"),
            ("é à ü", "ü à é"),
            ("a a a a", "a a"),
            ("x ||| y ||| z", "||| |||"),
        ] {
            let _ = EditMeasure::of([("text", a, b)]).check(&CLAIM);
        }
    }
}
