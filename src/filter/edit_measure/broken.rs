//! Broken edits recognised by name: truncated, scrambled, doubled,
//! unrelated text.

use std::collections::{HashMap, HashSet};

use super::*;

/// Signatures of a broken edit, in the order they are checked: text that
/// repeats itself, a truncation, a scramble. (An unrelated text is a
/// bound, [`EditBounds::min_related_share`], because how much of the
/// original an edit must keep depends on the task.)
/// `in_order` counts the words the alignment matched in order,
/// `exchanges` the swaps and moves found.
pub(super) fn broken(
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

pub(super) fn ends_sentence(s: &str) -> bool {
    s.trim_end()
        .trim_end_matches(['"', '\'', ')', '”', '’'])
        .ends_with(['.', '!', '?'])
}

pub(super) fn starts_upper(s: &str) -> bool {
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
pub(super) fn truncated(a: &[Token], rest: &[Hunk], original: &str, edited: &str) -> bool {
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
pub(super) const DANGLING: &[&str] = &[
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
pub(super) fn scrambled(
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
pub(super) fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

pub(super) fn broken_detail(b: Broken, m: &FieldMeasure) -> String {
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
