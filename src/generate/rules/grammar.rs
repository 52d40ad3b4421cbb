//! What the rules know about English: words with their part of speech in
//! context (a lexicon tagger with a few contextual rules), verb forms, and
//! the repairs an edit needs (case, "a"/"an").
//!
//! The lexicon files in `data/lexicon/` are built by
//! `scripts/build-lexicon` from en-lexicon and en-inflectors (MIT) and
//! WordNet 3.1 (WordNet license), and compiled into the binary.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

const POS_TSV: &str = include_str!("../../../data/lexicon/pos.tsv");
const VERBS_TSV: &str = include_str!("../../../data/lexicon/verbs.tsv");
const ADJ_ANTONYMS_TSV: &str = include_str!("../../../data/lexicon/adjective-antonyms.tsv");
const COMPOUNDS_TSV: &str = include_str!("../../../data/lexicon/noun-compounds.tsv");
const DEGREE_ANTONYMS_TSV: &str = include_str!("../../../data/lexicon/antonyms.tsv");

/// Coarse part of speech, decided in context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pos {
    Det,
    Pron,
    /// Possessive determiner: his, her, their, …
    PossPron,
    Noun,
    /// A capitalised word that is not the first of its sentence, or one the
    /// lexicon does not know in lower case.
    Proper,
    Adj,
    /// Comparative or superlative adjective/adverb.
    Degree,
    Adv,
    Prep,
    Conj,
    /// Subordinating word or relative pronoun: who, which, that, when, if…
    Sub,
    Wh,
    Num,
    /// be, have, do and the modals.
    Aux,
    /// A finite main verb (3rd person singular, past, or plural present).
    Verb,
    /// Base form (after "to", a modal or do-support).
    VerbBase,
    Participle,
    Gerund,
    Neg,
    Other,
}

/// A word in the text: byte span, lower-cased form (curly apostrophes
/// straightened) and its part of speech in context.
#[derive(Debug, Clone)]
pub struct Word {
    pub start: usize,
    pub end: usize,
    pub lower: String,
    pub pos: Pos,
    /// The Penn tags the lexicon lists, most frequent first.
    pub tags: &'static [&'static str],
    pub capitalised: bool,
    /// The lexicon lists the word (else its tags are guessed).
    pub known: bool,
}

impl Word {
    pub fn has_tag(&self, t: &str) -> bool {
        self.tags.contains(&t)
    }

    /// A negative word: not, never, no, none, nobody, … or a "n't" form.
    pub fn negates(&self) -> bool {
        NEGATIONS.contains(&self.lower.as_str()) || self.lower.ends_with("n't")
    }
}

/// Two-word noun compounds ("high school", "higher education"): their
/// first word is not an adjective to swap.
pub fn is_compound(first: &str, second: &str) -> bool {
    let c = &lexicon().compounds;
    // "hot dogs": the compound is listed in the singular.
    let singular = second
        .strip_suffix("es")
        .filter(|s| s.ends_with(['s', 'x', 'z']) || s.ends_with("ch") || s.ends_with("sh"))
        .or_else(|| second.strip_suffix('s'));
    c.contains(&(first, second)) || singular.is_some_and(|s| c.contains(&(first, s)))
}

pub struct Lexicon {
    compounds: std::collections::HashSet<(&'static str, &'static str)>,
    pos: HashMap<&'static str, &'static [&'static str]>,
    /// base → (3sg, past, participle, gerund)
    pub verb_forms: HashMap<&'static str, [&'static str; 4]>,
    /// inflected form → base (3sg, past, participle, gerund)
    pub verb_base: HashMap<&'static str, &'static str>,
    /// Adjective → antonym, for the word's most frequent sense (WordNet).
    pub adj_antonyms: HashMap<&'static str, &'static str>,
    /// Comparatives and superlatives, both directions (hand list).
    pub degree_antonyms: HashMap<&'static str, &'static str>,
}

fn data_lines(tsv: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
}

/// Words that look like adjectives in WordNet but act as determiners or
/// ordinals; their swaps are the quantifier's and temporal operations'.
const NOT_PLAIN_ADJECTIVES: &[&str] = &[
    "all", "some", "no", "much", "many", "few", "more", "most", "less", "least", "first", "last",
    "past", "future", "next", "previous", "other", "same", "own", "such", "only", "whole", "each",
    "every", "any", "both", "either", "neither", "several", "enough",
];

pub fn lexicon() -> &'static Lexicon {
    static LEX: OnceLock<Lexicon> = OnceLock::new();
    LEX.get_or_init(|| {
        let mut pos = HashMap::new();
        for cols in data_lines(POS_TSV) {
            if let [w, tags] = cols[..] {
                let tags: Vec<&'static str> = tags.split(',').collect();
                pos.insert(w, &*Box::leak(tags.into_boxed_slice()));
            }
        }
        let mut verb_forms = HashMap::new();
        let mut verb_base = HashMap::new();
        for cols in data_lines(VERBS_TSV) {
            if let [base, third, past, part, ger] = cols[..] {
                verb_forms.insert(base, [third, past, part, ger]);
                for f in [third, past, part, ger] {
                    verb_base.entry(f).or_insert(base);
                }
            }
        }
        let has_jj = |w: &str| pos.get(w).is_some_and(|t: &&[&str]| t.contains(&"JJ"));
        let mut adj_antonyms = HashMap::new();
        for cols in data_lines(ADJ_ANTONYMS_TSV) {
            // word, antonym, sense rank, antonym's rank, tagged counts…
            let [w, a, rank, _, tw, ta, ..] = cols[..] else {
                continue;
            };
            let common = tw.parse::<u32>().unwrap_or(0) >= 1 && ta.parse::<u32>().unwrap_or(0) >= 1;
            if rank == "1"
                && common
                && has_jj(w)
                && has_jj(a)
                && !NOT_PLAIN_ADJECTIVES.contains(&w)
                && !NOT_PLAIN_ADJECTIVES.contains(&a)
            {
                adj_antonyms.entry(w).or_insert(a);
            }
        }
        let compounds = data_lines(COMPOUNDS_TSV)
            .filter_map(|c| match c[..] {
                [a, b, ..] => Some((a, b)),
                _ => None,
            })
            .collect();
        let mut degree_antonyms = HashMap::new();
        for cols in data_lines(DEGREE_ANTONYMS_TSV) {
            if let [w, a, "comparative" | "superlative"] = cols[..] {
                degree_antonyms.entry(w).or_insert(a);
                degree_antonyms.entry(a).or_insert(w);
            }
        }
        Lexicon {
            compounds,
            pos,
            verb_forms,
            verb_base,
            adj_antonyms,
            degree_antonyms,
        }
    })
}

impl Lexicon {
    pub fn tags(&self, w: &str) -> &'static [&'static str] {
        self.pos.get(w).copied().unwrap_or(&[])
    }

    /// The form of `base` for a Penn verb tag (VBZ, VBD, VBN, VBG; else
    /// the base).
    pub fn inflect(&self, base: &str, tag: &str) -> String {
        let i = match tag {
            "VBZ" => 0,
            "VBD" => 1,
            "VBN" => 2,
            "VBG" => 3,
            _ => return base.to_string(),
        };
        match self.verb_forms.get(base) {
            Some(forms) => forms[i].to_string(),
            None => match i {
                0 => format!("{base}s"),
                3 => format!("{base}ing"),
                _ if base.ends_with('e') => format!("{base}d"),
                _ => format!("{base}ed"),
            },
        }
    }
}

const DETS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "no", "every", "each",
    "all", "both", "either", "neither", "another", "many", "few", "several", "most",
];
const PRONOUNS: &[&str] = &[
    "i",
    "you",
    "he",
    "she",
    "it",
    "we",
    "they",
    "me",
    "him",
    "us",
    "them",
    "someone",
    "somebody",
    "something",
    "anyone",
    "anybody",
    "anything",
    "everyone",
    "everybody",
    "everything",
    "nobody",
    "nothing",
    "one",
    "itself",
    "himself",
    "herself",
    "themselves",
];
const POSSESSIVES: &[&str] = &["his", "her", "its", "their", "my", "your", "our"];
const PREPS: &[&str] = &[
    "in", "on", "at", "by", "for", "with", "from", "to", "of", "into", "onto", "over", "under",
    "above", "below", "near", "behind", "beside", "between", "through", "during", "without",
    "within", "about", "against", "across", "along", "around", "among", "toward", "towards",
    "upon", "off", "out", "up", "down", "like", "than", "per", "via",
];
const INTENSIFIERS: &[&str] = &[
    "very",
    "too",
    "quite",
    "rather",
    "really",
    "extremely",
    "fairly",
    "somewhat",
    "highly",
];
const CONJS: &[&str] = &["and", "or", "but", "nor", "so", "yet"];
const SUBS: &[&str] = &[
    "who", "whom", "whose", "which", "that", "when", "while", "if", "because", "although",
    "though", "whereas", "unless", "whether", "where", "since", "as",
];
const WH: &[&str] = &[
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how",
];
pub const BE: &[&str] = &["is", "are", "was", "were", "am", "be", "been", "being"];
pub const HAVE: &[&str] = &["has", "have", "had"];
pub const DO: &[&str] = &["does", "do", "did"];
pub const MODALS: &[&str] = &[
    "can", "could", "will", "would", "shall", "should", "may", "might", "must",
];
pub const NEGATIONS: &[&str] = &[
    "not", "n't", "never", "no", "none", "neither", "nor", "nobody", "nothing", "nowhere", "cannot",
];

fn closed_class(w: &str) -> Option<Pos> {
    Some(
        if w == "not" || w == "never" || w.ends_with("n't") || w == "cannot" {
            Pos::Neg
        } else if BE.contains(&w) || HAVE.contains(&w) || DO.contains(&w) || MODALS.contains(&w) {
            Pos::Aux
        } else if POSSESSIVES.contains(&w) {
            Pos::PossPron
        } else if DETS.contains(&w) {
            Pos::Det
        } else if PRONOUNS.contains(&w) {
            Pos::Pron
        } else if INTENSIFIERS.contains(&w) {
            Pos::Adv
        } else if CONJS.contains(&w) {
            Pos::Conj
        } else if PREPS.contains(&w) {
            Pos::Prep
        } else {
            return None;
        },
    )
}

fn pos_of_tag(t: &str) -> Pos {
    match t {
        "NN" | "NNS" => Pos::Noun,
        "NNP" | "NNPS" => Pos::Proper,
        "JJ" => Pos::Adj,
        "JJR" | "JJS" | "RBR" | "RBS" => Pos::Degree,
        "RB" => Pos::Adv,
        "IN" => Pos::Prep,
        "CC" => Pos::Conj,
        "CD" => Pos::Num,
        "DT" | "PDT" => Pos::Det,
        "PRP" => Pos::Pron,
        "PRP$" => Pos::PossPron,
        "MD" => Pos::Aux,
        "VBZ" | "VBD" | "VBP" => Pos::Verb,
        "VB" => Pos::VerbBase,
        "VBN" => Pos::Participle,
        "VBG" => Pos::Gerund,
        "WDT" | "WP" | "WRB" | "WP$" => Pos::Wh,
        _ => Pos::Other,
    }
}

/// Penn tags a word the lexicon does not know might have, from its shape.
fn guess_tags(w: &str) -> &'static [&'static str] {
    if w.bytes().all(|b| b.is_ascii_digit()) {
        &["CD"]
    } else if w.ends_with("ly") {
        &["RB"]
    } else if w.ends_with("ing") {
        &["VBG", "NN"]
    } else if w.ends_with("ed") {
        &["VBD", "VBN", "JJ"]
    } else if w.ends_with('s') && !w.ends_with("ss") {
        &["NNS", "VBZ"]
    } else {
        &["NN"]
    }
}

fn prefer(tags: &[&str], order: &[&str]) -> Option<Pos> {
    order
        .iter()
        .find(|t| tags.contains(t))
        .map(|t| pos_of_tag(t))
}

/// Split `text` into words and tag each in context.
pub fn words(text: &str) -> Vec<Word> {
    static WORD: OnceLock<Regex> = OnceLock::new();
    let re = WORD
        .get_or_init(|| Regex::new(r"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*").expect("static regex"));
    let lex = lexicon();
    let mut out: Vec<Word> = re
        .find_iter(text)
        .map(|m| {
            let lower = m.as_str().to_lowercase().replace('’', "'");
            let tags = lex.tags(&lower);
            let known = !tags.is_empty();
            let tags = if tags.is_empty() {
                guess_tags(&lower)
            } else {
                tags
            };
            Word {
                start: m.start(),
                end: m.end(),
                capitalised: m.as_str().starts_with(|c: char| c.is_uppercase()),
                lower,
                pos: Pos::Other,
                tags,
                known,
            }
        })
        .collect();
    for i in 0..out.len() {
        // "W. B. Yeats", "U.S. Route": an initial's full stop ends nothing.
        let initial = i > 0 && out[i - 1].end - out[i - 1].start == 1;
        let sentence_start =
            i == 0 || !initial && ends_sentence(&text[out[i - 1].end..out[i].start]);
        out[i].pos = tag_in_context(text, &out, i, sentence_start);
    }
    out
}

fn ends_sentence(between: &str) -> bool {
    between.contains(['.', '!', '?', ':', ';', '"']) || between.contains("|||")
}

fn tag_in_context(text: &str, ws: &[Word], i: usize, sentence_start: bool) -> Pos {
    let w = &ws[i];
    let prev = if sentence_start || i == 0 {
        None
    } else {
        Some(ws[i - 1].pos)
    };
    // The auxiliary a verb depends on, looking through "not": "does not
    // own", "doesn't own".
    let prev_word = (i > 0).then(|| {
        let p = ws[i - 1].lower.as_str();
        match p {
            "not" if i > 1 => ws[i - 2].lower.as_str(),
            "cannot" => "can",
            "won't" => "will",
            _ => p.strip_suffix("n't").unwrap_or(p),
        }
    });
    if w.capitalised && !sentence_start && w.lower != "i" {
        return Pos::Proper;
    }
    // "iPhone", "eBay": a capital inside a word names something.
    if text[w.start..w.end].chars().skip(1).any(char::is_uppercase) {
        return Pos::Proper;
    }
    if WH.contains(&w.lower.as_str()) && (sentence_start || i == 0) {
        return Pos::Wh;
    }
    if SUBS.contains(&w.lower.as_str()) {
        // "that" after a noun or verb opens a clause; before a noun it is
        // a determiner.
        let next_noun = ws.get(i + 1).is_some_and(|n| {
            n.tags.first().is_some_and(|t| t.starts_with("NN")) && !n.has_tag("VBZ")
        });
        if !(w.lower == "that" && next_noun || w.lower == "as" && prev == Some(Pos::Aux)) {
            return Pos::Sub;
        }
    }
    if let Some(p) = closed_class(&w.lower) {
        // "that" as a determiner falls through to here.
        return p;
    }
    if w.lower.bytes().all(|b| b.is_ascii_digit()) {
        return Pos::Num;
    }
    if w.capitalised && sentence_start && (!w.known || w.tags.iter().all(|t| t.starts_with("NNP")))
    {
        return Pos::Proper;
    }
    let tags = w.tags;
    let first = tags.first().copied().unwrap_or("NN");
    match prev {
        Some(Pos::Det | Pos::PossPron | Pos::Num | Pos::Adj | Pos::Degree) => {
            // Before a noun, a word that can be an adjective is one; else a
            // noun if it can be ("the sink", "a single pelican").
            // "a man rides": a noun before what can be its verb stays a
            // noun; "the right side": an adjective before a noun.
            let next = ws.get(i + 1);
            let next_noun =
                next.is_some_and(|n| n.tags.first().is_some_and(|t| t.starts_with("NN")));
            let next_agrees = next.is_some_and(|n| n.has_tag("VBZ") || n.has_tag("VBD"));
            let noun_first = first.starts_with("NN");
            if first == "JJ" || next_noun && tags.contains(&"JJ") && !(noun_first && next_agrees) {
                return Pos::Adj;
            }
            if let Some(p) = prefer(tags, &["NN", "NNS", "JJ", "JJS", "JJR", "VBG", "NNP"]) {
                return p;
            }
        }
        Some(Pos::Aux | Pos::Neg) if matches!(prev_word, Some(w) if DO.contains(&w) || MODALS.contains(&w)) => {
            if let Some(p) = prefer(tags, &["VB"]) {
                return p;
            }
        }
        Some(Pos::Aux | Pos::Neg) if matches!(prev_word, Some(w) if BE.contains(&w) || w == "not" || w.ends_with("n't")) => {
            if let Some(p) = prefer(tags, &["VBG", "VBN", "JJ", "JJR", "JJS", "RB", "DT"]) {
                return p;
            }
        }
        Some(Pos::Aux) if matches!(prev_word, Some(w) if HAVE.contains(&w)) => {
            if let Some(p) = prefer(tags, &["VBN"]) {
                return p;
            }
        }
        Some(Pos::Prep) if prev_word == Some("to") => {
            if let Some(p) = prefer(tags, &["VB"]) {
                return p;
            }
        }
        Some(Pos::Noun | Pos::Pron | Pos::Proper) => {
            // "Two teddy bears are": a noun before the verb is not one.
            let next_is_verb = ws.get(i + 1).is_some_and(|n| {
                let l = n.lower.as_str();
                BE.contains(&l) || MODALS.contains(&l) || HAVE.contains(&l)
            });
            if next_is_verb && let Some(p) = prefer(tags, &["NNS", "NN"]) {
                return p;
            }
            if let Some(p) = prefer(tags, &["VBZ", "VBD", "VBP"]) {
                // "the man owns", but a noun compound ("apple pie") keeps
                // its first reading when that is a noun.
                if !first.starts_with("NN") || !tags.iter().any(|t| t.starts_with("NN")) {
                    return p;
                }
                if prev == Some(Pos::Pron) {
                    return p;
                }
            }
        }
        _ => {}
    }
    pos_of_tag(first)
}

/// Give `replacement` the capitalisation of `original`.
pub fn match_case(original: &str, replacement: &str) -> String {
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

/// "a" or "an" before `next` (by its sound, as far as spelling tells).
pub fn article_for(next: &str) -> &'static str {
    let n = next.to_lowercase();
    const AN_EXCEPTIONS: &[&str] = &["hour", "honest", "honor", "honour", "heir"];
    const A_EXCEPTIONS: &[&str] = &["uni", "use", "usu", "uti", "eu", "one", "once", "ewe"];
    if AN_EXCEPTIONS.iter().any(|p| n.starts_with(p)) {
        return "an";
    }
    if A_EXCEPTIONS.iter().any(|p| n.starts_with(p)) {
        return "a";
    }
    if n.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(text: &str) -> Vec<(String, Pos)> {
        words(text).into_iter().map(|w| (w.lower, w.pos)).collect()
    }

    fn pos_of(text: &str, word: &str) -> Pos {
        tags(text)
            .into_iter()
            .find(|(w, _)| w == word)
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("{word} not in {text}"))
    }

    #[test]
    fn the_tagger_reads_words_in_context() {
        assert_eq!(pos_of("A pelican sits by the sink.", "sink"), Pos::Noun);
        assert_eq!(pos_of("The boat will sink.", "sink"), Pos::VerbBase);
        assert_eq!(pos_of("A single pelican.", "single"), Pos::Adj);
        assert_eq!(pos_of("The man owns a dog.", "owns"), Pos::Verb);
        assert_eq!(pos_of("She was born in London.", "born"), Pos::Participle);
        assert_eq!(pos_of("The Lion King 2 was a film.", "king"), Pos::Proper);
        assert_eq!(pos_of("The house is tall.", "tall"), Pos::Adj);
        assert_eq!(pos_of("Who wrote Hamlet?", "who"), Pos::Wh);
    }

    #[test]
    fn lexicon_knows_verb_forms_and_sense_checked_antonyms() {
        let lex = lexicon();
        assert_eq!(lex.inflect("sink", "VBD"), "sank");
        assert_eq!(lex.verb_base.get("won"), Some(&"win"));
        assert_eq!(lex.adj_antonyms.get("tall"), Some(&"short"));
        assert_eq!(lex.adj_antonyms.get("right"), Some(&"left"));
        // "single"'s antonyms are of rarer senses (flowers, "multiple").
        assert_eq!(lex.adj_antonyms.get("single"), None);
        assert!(lex.adj_antonyms.len() > 300, "{}", lex.adj_antonyms.len());
    }

    #[test]
    fn articles_follow_the_next_word() {
        assert_eq!(article_for("old"), "an");
        assert_eq!(article_for("young"), "a");
        assert_eq!(article_for("hour"), "an");
        assert_eq!(article_for("unique"), "a");
    }
}
