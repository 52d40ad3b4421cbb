//! The offline rules generator: deterministic perturbations that need no
//! endpoint and no key. Each operation scans the words of the field to
//! edit and makes one candidate per place it applies (at most
//! `max_per_op`), recording itself as `edit_type` and `rules:<op>`.
//!
//! The operations are deliberately conservative: they would rather skip a
//! sentence than produce a broken one, because the filters downstream
//! cannot tell a grammatical error from a contrast.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use regex::Regex;

use super::{Generated, Generator};
use crate::config::RuleOp;
use crate::record::{Candidate, Relation, SourceExample};
use crate::tasks::TaskPreset;

const ANTONYMS_TSV: &str = include_str!("../../data/lexicon/antonyms.tsv");
const VERBS_TSV: &str = include_str!("../../data/lexicon/verbs.tsv");

/// A word in the text: byte span and lower-cased form (curly apostrophes
/// straightened).
#[derive(Debug, Clone)]
struct Word {
    start: usize,
    end: usize,
    lower: String,
}

fn words(text: &str) -> Vec<Word> {
    static WORD: OnceLock<Regex> = OnceLock::new();
    let re = WORD
        .get_or_init(|| Regex::new(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*").expect("static regex"));
    re.find_iter(text)
        .map(|m| Word {
            start: m.start(),
            end: m.end(),
            lower: m.as_str().to_lowercase().replace('’', "'"),
        })
        .collect()
}

/// Give `replacement` the capitalisation of `original`.
fn match_case(original: &str, replacement: &str) -> String {
    let letters: Vec<char> = original.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() > 1 && letters.iter().all(|c| c.is_uppercase()) {
        return replacement.to_uppercase();
    }
    if original.chars().next().is_some_and(char::is_uppercase) {
        let mut chars = replacement.chars();
        return match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        };
    }
    replacement.to_string()
}

fn splice(text: &str, start: usize, end: usize, with: &str) -> String {
    let mut out = String::with_capacity(text.len() + with.len());
    out.push_str(&text[..start]);
    out.push_str(with);
    out.push_str(&text[end..]);
    out
}

struct Lexicon {
    /// Plain antonyms (adjectives, verbs, nouns, adverbs), both directions.
    antonyms: HashMap<String, String>,
    /// Comparatives and superlatives, both directions.
    comparatives: HashMap<String, String>,
    /// 3rd-person singular → base, past → base, base → (3sg, past).
    verb_base_of_3sg: HashMap<String, String>,
    verb_base_of_past: HashMap<String, String>,
    verb_forms: HashMap<String, (String, String)>,
}

fn third_singular(base: &str) -> String {
    if base == "be" {
        return "is".into();
    }
    if base == "have" {
        return "has".into();
    }
    if base.ends_with('s')
        || base.ends_with("sh")
        || base.ends_with("ch")
        || base.ends_with('x')
        || base.ends_with('z')
        || base.ends_with('o')
    {
        return format!("{base}es");
    }
    let b = base.as_bytes();
    if base.ends_with('y') && b.len() > 1 && !b"aeiou".contains(&b[b.len() - 2]) {
        return format!("{}ies", &base[..base.len() - 1]);
    }
    format!("{base}s")
}

fn regular_past(base: &str) -> String {
    let b = base.as_bytes();
    if base.ends_with('e') {
        format!("{base}d")
    } else if base.ends_with('y') && b.len() > 1 && !b"aeiou".contains(&b[b.len() - 2]) {
        format!("{}ied", &base[..base.len() - 1])
    } else {
        format!("{base}ed")
    }
}

fn lexicon() -> &'static Lexicon {
    static LEX: OnceLock<Lexicon> = OnceLock::new();
    LEX.get_or_init(|| {
        let mut antonyms = HashMap::new();
        let mut comparatives = HashMap::new();
        for line in ANTONYMS_TSV.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 3 {
                continue;
            }
            let map = match cols[2] {
                "comparative" | "superlative" => &mut comparatives,
                _ => &mut antonyms,
            };
            // First listed wins: "old young" before "old new".
            map.entry(cols[0].to_string())
                .or_insert_with(|| cols[1].to_string());
            map.entry(cols[1].to_string())
                .or_insert_with(|| cols[0].to_string());
        }
        let mut verb_base_of_3sg = HashMap::new();
        let mut verb_base_of_past = HashMap::new();
        let mut verb_forms = HashMap::new();
        for line in VERBS_TSV.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let mut cols = line.split('\t');
            let base = cols.next().unwrap_or_default().trim().to_string();
            if base.is_empty() || base == "be" || base == "do" {
                continue; // handled as auxiliaries
            }
            let past = cols
                .next()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| regular_past(&base));
            let third = third_singular(&base);
            verb_base_of_3sg.insert(third.clone(), base.clone());
            verb_base_of_past.insert(past.clone(), base.clone());
            verb_forms.insert(base, (third, past));
        }
        Lexicon {
            antonyms,
            comparatives,
            verb_base_of_3sg,
            verb_base_of_past,
            verb_forms,
        }
    })
}

const QUANTIFIERS: &[(&str, &str)] = &[
    ("all", "some"),
    ("some", "all"),
    ("every", "no"),
    ("each", "no"),
    ("no", "every"),
    ("none", "all"),
    ("most", "few"),
    ("few", "most"),
    ("many", "few"),
    ("always", "never"),
    ("never", "always"),
    ("everyone", "no one"),
    ("everybody", "nobody"),
    ("nobody", "everybody"),
    ("nothing", "everything"),
    ("everything", "nothing"),
    ("sometimes", "always"),
    ("both", "neither"),
    ("neither", "both"),
    ("any", "no"),
];

const TEMPORAL: &[(&str, &str)] = &[
    ("before", "after"),
    ("after", "before"),
    ("earlier", "later"),
    ("later", "earlier"),
    ("first", "last"),
    ("last", "first"),
    ("yesterday", "tomorrow"),
    ("tomorrow", "yesterday"),
    ("previously", "subsequently"),
    ("subsequently", "previously"),
    ("since", "until"),
    ("until", "since"),
    ("preceded", "followed"),
    ("followed", "preceded"),
    ("precedes", "follows"),
    ("follows", "precedes"),
    ("prior", "subsequent"),
    ("past", "future"),
    ("future", "past"),
];

const GENDER: &[(&str, &str)] = &[
    ("he", "she"),
    ("she", "he"),
    ("him", "her"),
    ("his", "her"),
    ("himself", "herself"),
    ("herself", "himself"),
    ("man", "woman"),
    ("woman", "man"),
    ("men", "women"),
    ("women", "men"),
    ("boy", "girl"),
    ("girl", "boy"),
    ("boys", "girls"),
    ("girls", "boys"),
    ("father", "mother"),
    ("mother", "father"),
    ("son", "daughter"),
    ("daughter", "son"),
    ("sons", "daughters"),
    ("daughters", "sons"),
    ("brother", "sister"),
    ("sister", "brother"),
    ("husband", "wife"),
    ("wife", "husband"),
    ("king", "queen"),
    ("queen", "king"),
    ("prince", "princess"),
    ("princess", "prince"),
    ("actor", "actress"),
    ("actress", "actor"),
    ("uncle", "aunt"),
    ("aunt", "uncle"),
    ("nephew", "niece"),
    ("niece", "nephew"),
    ("grandfather", "grandmother"),
    ("grandmother", "grandfather"),
    ("male", "female"),
    ("female", "male"),
    ("gentleman", "lady"),
    ("lady", "gentleman"),
    ("mr", "ms"),
    ("ms", "mr"),
];

const NUMBER_WORDS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// Auxiliaries and copulas that take "not" directly after them.
const AUX_NOT: &[&str] = &[
    "is", "are", "was", "were", "am", "can", "could", "will", "would", "should", "shall", "may",
    "might", "must",
];

/// Negative contractions whose positive form is one word.
const NEG_CONTRACTIONS: &[(&str, &str)] = &[
    ("isn't", "is"),
    ("aren't", "are"),
    ("wasn't", "was"),
    ("weren't", "were"),
    ("can't", "can"),
    ("cannot", "can"),
    ("couldn't", "could"),
    ("won't", "will"),
    ("wouldn't", "would"),
    ("shouldn't", "should"),
    ("mustn't", "must"),
    ("hasn't", "has"),
    ("haven't", "have"),
    ("hadn't", "had"),
];

/// Words after "does not" / "doesn't" that mean the auxiliary was inverted
/// ("Why doesn't he …"), so only the negation is dropped.
const NOT_A_VERB: &[&str] = &[
    "he", "she", "it", "they", "we", "you", "i", "the", "a", "an", "this", "that", "these",
    "those", "his", "her", "their", "my", "your", "our", "its", "anyone", "someone",
];

fn lookup(table: &[(&str, &'static str)], word: &str) -> Option<&'static str> {
    table.iter().find(|(w, _)| *w == word).map(|(_, r)| *r)
}

/// One edit: replace `text[start..end]` with `with`.
struct Splice {
    start: usize,
    end: usize,
    with: String,
}

fn swap_at(text: &str, w: &Word, replacement: &str) -> Splice {
    Splice {
        start: w.start,
        end: w.end,
        with: match_case(&text[w.start..w.end], replacement),
    }
}

/// Negation on/off, auxiliary and copula aware.
fn negation_sites(text: &str, ws: &[Word]) -> Vec<Splice> {
    let lex = lexicon();
    let mut out = Vec::new();
    let mut i = 0;
    // After a do-support auxiliary ("How many legs does a spider have?")
    // the main verb is already in its base form and must stay so.
    let mut seen_do = false;
    while i < ws.len() {
        let w = &ws[i];
        let next = ws.get(i + 1).map(|n| n.lower.as_str());
        let do_form = match w.lower.as_str() {
            "doesn't" => Some(("does", 1)),
            "don't" => Some(("do", 1)),
            "didn't" => Some(("did", 1)),
            "does" | "do" | "did" if next == Some("not") => Some((w.lower.as_str(), 2)),
            _ => None,
        };
        if let Some((aux, skip)) = do_form {
            // "does not own" → "owns"; "didn't win" → "won"; inverted
            // questions ("Why doesn't he …") only lose the negation.
            let verb = ws.get(i + skip);
            match verb {
                Some(v) if !NOT_A_VERB.contains(&v.lower.as_str()) => {
                    let form = lex.verb_forms.get(&v.lower).map(|(third, past)| match aux {
                        "does" => third.clone(),
                        "did" => past.clone(),
                        _ => v.lower.clone(),
                    });
                    let inflected = form.unwrap_or_else(|| match aux {
                        "does" => third_singular(&v.lower),
                        "did" => regular_past(&v.lower),
                        _ => v.lower.clone(),
                    });
                    out.push(Splice {
                        start: w.start,
                        end: v.end,
                        with: match_case(&text[w.start..w.end], &inflected),
                    });
                }
                _ => {
                    let end = if skip == 2 { ws[i + 1].end } else { w.end };
                    out.push(Splice {
                        start: w.start,
                        end,
                        with: match_case(&text[w.start..w.end], aux),
                    });
                }
            }
            i += skip;
            continue;
        }
        if let Some(pos) = lookup(NEG_CONTRACTIONS, &w.lower) {
            out.push(swap_at(text, w, pos));
        } else if AUX_NOT.contains(&w.lower.as_str())
            || matches!(w.lower.as_str(), "has" | "have" | "had")
        {
            if next == Some("not") {
                // "is not tall" → "is tall"
                out.push(Splice {
                    start: w.end,
                    end: ws[i + 1].end,
                    with: String::new(),
                });
                i += 2;
                continue;
            }
            let is_have = matches!(w.lower.as_str(), "has" | "have" | "had");
            let next_is_participle = next.is_some_and(|n| {
                n.ends_with("ed") || n.ends_with("en") || lex.verb_base_of_past.contains_key(n)
            });
            // Sentence-initial auxiliaries are inverted questions ("Is the
            // sky blue?"): "Is not the sky blue?" would be broken English.
            if i > 0 && next.is_some() && !(is_have && seen_do) {
                if is_have && !next_is_participle {
                    // main-verb "has": "has a dog" → "does not have a dog"
                    let repl = match w.lower.as_str() {
                        "has" => "does not have",
                        "have" => "do not have",
                        _ => "did not have",
                    };
                    out.push(swap_at(text, w, repl));
                } else {
                    out.push(Splice {
                        start: w.end,
                        end: w.end,
                        with: " not".to_string(),
                    });
                }
            }
        } else if matches!(w.lower.as_str(), "does" | "do" | "did") {
            seen_do = true;
        } else if i > 0 && !seen_do && !NOT_A_VERB.contains(&ws[i - 1].lower.as_str()) {
            // A main verb: "owns" → "does not own", "won" → "did not win".
            // Not after a determiner, where the word is likely a noun.
            if let Some(base) = lex.verb_base_of_3sg.get(&w.lower) {
                out.push(swap_at(text, w, &format!("does not {base}")));
            } else if let Some(base) = lex.verb_base_of_past.get(&w.lower) {
                out.push(swap_at(text, w, &format!("did not {base}")));
            }
        }
        i += 1;
    }
    out
}

fn table_sites(text: &str, ws: &[Word], table: &[(&str, &'static str)]) -> Vec<Splice> {
    ws.iter()
        .enumerate()
        // "how many" asks for a number; "how few" is not a contrast.
        .filter(|(i, _)| *i == 0 || ws[i - 1].lower != "how")
        .filter_map(|(_, w)| lookup(table, &w.lower).map(|r| swap_at(text, w, r)))
        .collect()
}

fn map_sites(text: &str, ws: &[Word], map: &HashMap<String, String>) -> Vec<Splice> {
    ws.iter()
        .filter_map(|w| map.get(&w.lower).map(|r| swap_at(text, w, r)))
        .collect()
}

fn number_sites(text: &str, ws: &[Word]) -> Vec<Splice> {
    ws.iter()
        .filter_map(|w| {
            if w.lower.bytes().all(|b| b.is_ascii_digit()) && w.lower.len() <= 9 {
                let n: u64 = w.lower.parse().ok()?;
                // Change years by a decade-scale step and counts by one, so
                // the edit stays plausible.
                let changed = if (1000..=2100).contains(&n) {
                    n + 10
                } else {
                    n + 1
                };
                Some(swap_at(text, w, &changed.to_string()))
            } else {
                let idx = NUMBER_WORDS.iter().position(|n| *n == w.lower)?;
                let next = NUMBER_WORDS.get(idx + 1).copied().unwrap_or("twenty-one");
                Some(swap_at(text, w, next))
            }
        })
        .collect()
}

fn gender_sites(text: &str, ws: &[Word]) -> Vec<Splice> {
    let mut out = Vec::new();
    for (i, w) in ws.iter().enumerate() {
        if w.lower == "her" {
            // "her book" → "his book"; "saw her." → "saw him."
            let next_is_word_in_phrase = ws.get(i + 1).is_some_and(|n| {
                text[w.end..n.start].trim().is_empty()
                    && !matches!(
                        n.lower.as_str(),
                        "and"
                            | "or"
                            | "to"
                            | "in"
                            | "on"
                            | "at"
                            | "with"
                            | "for"
                            | "from"
                            | "by"
                            | "of"
                            | "as"
                            | "that"
                    )
            });
            out.push(swap_at(
                text,
                w,
                if next_is_word_in_phrase { "his" } else { "him" },
            ));
        } else if let Some(r) = lookup(GENDER, &w.lower) {
            out.push(swap_at(text, w, r));
        }
    }
    out
}

/// The edits one operation makes on `text`, in text order.
pub fn apply_op(op: RuleOp, text: &str) -> Vec<String> {
    let ws = words(text);
    let lex = lexicon();
    let sites = match op {
        RuleOp::Negation => negation_sites(text, &ws),
        RuleOp::Antonym => map_sites(text, &ws, &lex.antonyms),
        RuleOp::Comparative => map_sites(text, &ws, &lex.comparatives),
        RuleOp::Number => number_sites(text, &ws),
        RuleOp::Quantifier => table_sites(text, &ws, QUANTIFIERS),
        RuleOp::Temporal => table_sites(text, &ws, TEMPORAL),
        RuleOp::Gender => gender_sites(text, &ws),
    };
    sites
        .into_iter()
        .map(|s| splice(text, s.start, s.end, &s.with))
        .filter(|edited| edited != text)
        .collect()
}

/// Gender swaps probe invariance: a model's answer should not change.
fn relation_of(op: RuleOp) -> Relation {
    match op {
        RuleOp::Gender => Relation::Invariant,
        _ => Relation::Flip,
    }
}

pub struct RulesGenerator {
    task: &'static TaskPreset,
    ops: Vec<RuleOp>,
    max_per_op: usize,
}

impl RulesGenerator {
    pub fn new(task: &'static TaskPreset, ops: Vec<RuleOp>, max_per_op: usize) -> Self {
        RulesGenerator {
            task,
            ops,
            max_per_op,
        }
    }

    pub fn candidates(&self, example: &SourceExample) -> Vec<Candidate> {
        let Some(text) = example.field(self.task.edit_field) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for &op in &self.ops {
            let relation = relation_of(op);
            for edited in apply_op(op, text).into_iter().take(self.max_per_op) {
                let mut c = Candidate::new(
                    example,
                    self.task.edit_field,
                    edited,
                    relation,
                    op.name(),
                    format!("rules:{}", op.name()),
                );
                c.edited_label = match (relation, c.original_label.as_deref()) {
                    (Relation::Invariant, label) => label.map(str::to_string),
                    (Relation::Flip, Some(label)) => self.task.label.flipped(label),
                    (Relation::Flip, None) => None,
                };
                out.push(c);
            }
        }
        out
    }
}

impl Generator for RulesGenerator {
    fn describe(&self) -> String {
        let ops: Vec<&str> = self.ops.iter().map(|o| o.name()).collect();
        format!("rules ({})", ops.join(", "))
    }

    fn generate(&self, example: Arc<SourceExample>) -> BoxFuture<'_, Generated> {
        let candidates = self.candidates(&example);
        Box::pin(async move {
            Generated {
                candidates,
                ..Generated::default()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(op: RuleOp, text: &str) -> String {
        apply_op(op, text).into_iter().next().unwrap_or_default()
    }

    #[test]
    fn negation_handles_copulas_and_do_support_both_ways() {
        assert_eq!(
            first(RuleOp::Negation, "The sky is blue."),
            "The sky is not blue."
        );
        assert_eq!(
            first(RuleOp::Negation, "The sky is not blue."),
            "The sky is blue."
        );
        assert_eq!(
            first(RuleOp::Negation, "the man does not own a dog"),
            "the man owns a dog"
        );
        assert_eq!(
            first(RuleOp::Negation, "the man owns a dog"),
            "the man does not own a dog"
        );
        assert_eq!(
            first(RuleOp::Negation, "She didn't win the race."),
            "She won the race."
        );
        assert_eq!(
            first(RuleOp::Negation, "It isn't raining."),
            "It is raining."
        );
        assert_eq!(
            first(RuleOp::Negation, "Paris has a metro."),
            "Paris does not have a metro."
        );
        assert_eq!(
            first(RuleOp::Negation, "Why doesn't he swim?"),
            "Why does he swim?"
        );
        // An inverted question gets no misplaced "not".
        assert!(apply_op(RuleOp::Negation, "Is the sky blue?").is_empty());
        assert!(apply_op(RuleOp::Negation, "How many legs does a spider have?").is_empty());
        assert!(apply_op(RuleOp::Quantifier, "How many legs does it have?").is_empty());
    }

    #[test]
    fn swaps_keep_capitalisation_and_punctuation() {
        assert_eq!(first(RuleOp::Antonym, "Hot coffee."), "Cold coffee.");
        assert_eq!(
            first(RuleOp::Comparative, "Which is the tallest tower?"),
            "Which is the shortest tower?"
        );
        assert_eq!(
            first(RuleOp::Quantifier, "All birds can fly."),
            "Some birds can fly."
        );
        assert_eq!(
            first(RuleOp::Temporal, "He left before noon."),
            "He left after noon."
        );
        assert_eq!(first(RuleOp::Number, "It has 3 legs."), "It has 4 legs.");
        assert_eq!(first(RuleOp::Number, "Built in 1889."), "Built in 1899.");
        assert_eq!(
            first(RuleOp::Number, "It has three legs."),
            "It has four legs."
        );
        assert_eq!(
            first(RuleOp::Gender, "Her brother sang."),
            "His brother sang."
        );
    }

    #[test]
    fn each_site_gives_one_candidate() {
        let edits = apply_op(RuleOp::Antonym, "a hot day and a cold night");
        assert!(
            edits.contains(&"a cold day and a cold night".to_string()),
            "{edits:?}"
        );
        assert!(
            edits.contains(&"a hot night and a cold night".to_string()),
            "{edits:?}"
        );
    }

    #[test]
    fn lexicon_has_hundreds_of_pairs() {
        let lex = lexicon();
        assert!(lex.antonyms.len() + lex.comparatives.len() >= 600);
        assert_eq!(lex.antonyms.get("win").map(String::as_str), Some("lose"));
    }
}
