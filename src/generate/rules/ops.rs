//! Where each operation applies and what it writes there. Every site
//! names its logical strength, which the task's semantics turn into a
//! relation and a new label (`semantics.rs`).
//!
//! Operations rather skip a sentence than break one: a word is swapped
//! only in the part of speech the swap is for, negation goes to the main
//! clause (`negation.rs`), and articles follow the new word.

use super::grammar::{BE, Pos, Word, article_for, is_compound, lexicon, match_case};
use super::negation::{has_negation, negation};
use crate::config::RuleOp;

/// What an edit does to the truth of the statement it edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// The edit's statement is the negation of the original: true becomes
    /// false and false becomes true.
    Contradictory,
    /// Both cannot be true (tall/short, all/no, 3/4): true becomes false,
    /// a false one may stay false.
    Contrary,
}

/// One edit: replace `text[start..end]` with `with`.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub start: usize,
    pub end: usize,
    pub with: String,
    pub strength: Strength,
}

pub(super) fn swap(text: &str, w: &Word, replacement: &str, strength: Strength) -> Site {
    Site {
        start: w.start,
        end: w.end,
        with: match_case(&text[w.start..w.end], replacement),
        strength,
    }
}

/// Swap `ws[i]` for `replacement`, re-choosing a preceding "a"/"an".
fn swap_with_article(
    text: &str,
    ws: &[Word],
    i: usize,
    replacement: &str,
    strength: Strength,
) -> Site {
    let w = &ws[i];
    let repl = match_case(&text[w.start..w.end], replacement);
    if i > 0 && matches!(ws[i - 1].lower.as_str(), "a" | "an") {
        let art = &ws[i - 1];
        let between = &text[art.end..w.start];
        return Site {
            start: art.start,
            end: w.end,
            with: format!(
                "{}{between}{repl}",
                match_case(&text[art.start..art.end], article_for(replacement))
            ),
            strength,
        };
    }
    Site {
        start: w.start,
        end: w.end,
        with: repl,
        strength,
    }
}

pub fn sites(op: RuleOp, text: &str, ws: &[Word]) -> Vec<Site> {
    if text.trim_end().ends_with('?') && ws.iter().any(|w| w.lower == "or") {
        // "Is this a clear or cloudy day?" names its own alternatives: an
        // edit of either side asks nothing new.
        return Vec::new();
    }
    match op {
        RuleOp::Negation => negation(text, ws).into_iter().collect(),
        RuleOp::Antonym => antonym(text, ws),
        RuleOp::Comparative => comparative(text, ws),
        RuleOp::Number => number(text, ws),
        RuleOp::Quantifier => quantifier(text, ws),
        RuleOp::Temporal => temporal(text, ws),
        RuleOp::Gender => gender(text, ws),
    }
}

// ------------------------------------------------------------- word swaps

/// Part of a name ("The Right Stuff", "Big Ben") when a neighbour is
/// capitalised mid-sentence.
fn in_name(ws: &[Word], i: usize) -> bool {
    ws[i].pos == Pos::Proper
        || (i > 0 && ws[i - 1].pos == Pos::Proper)
        || ws.get(i + 1).is_some_and(|n| n.pos == Pos::Proper)
}

fn antonym(text: &str, ws: &[Word]) -> Vec<Site> {
    if has_negation(ws) {
        // "not tall" → "not short" is no contrast.
        return Vec::new();
    }
    let lex = lexicon();
    ws.iter()
        .enumerate()
        .filter(|(i, w)| {
            w.pos == Pos::Adj && !in_name(ws, *i) && adjective_use(ws, *i) && !after_degree(ws, *i)
        })
        .filter_map(|(i, w)| {
            let a = lex.adj_antonyms.get(w.lower.as_str())?;
            // "multiple power lines" → "single power lines" breaks number.
            let plural_next = ws
                .get(i + 1)
                .is_some_and(|n| n.tags.first() == Some(&"NNS"));
            if matches!(*a, "single" | "singular") && plural_next {
                return None;
            }
            Some(swap_with_article(text, ws, i, a, Strength::Contrary))
        })
        .collect()
}

/// Words that make a following adjective part of a degree phrase ("most
/// likely"), whose antonym is not a contrast.
fn after_degree(ws: &[Word], i: usize) -> bool {
    i > 0 && matches!(ws[i - 1].lower.as_str(), "more" | "most" | "less" | "least")
}

/// Linking verbs after which an adjective is predicative.
const LINKING: &[&str] = &[
    "seem", "seems", "seemed", "look", "looks", "looked", "become", "becomes", "became", "remain",
    "remains", "remained", "stay", "stays", "stayed", "appear", "appears", "appeared", "feel",
    "feels", "felt",
];

/// Is the word at `i` used as an adjective: the lexicon's adjective
/// reading comes before any verb reading ("side" is not) and it is no
/// participle ("worn"), and it
/// stands before a noun that it does not form a compound with ("high
/// school"), or after a copula or linking verb.
fn adjective_use(ws: &[Word], i: usize) -> bool {
    let w = &ws[i];
    let jj = w.tags.iter().position(|t| *t == "JJ");
    let verb = w.tags.iter().position(|t| t.starts_with("VB"));
    // A participle reading at all ("worn", "married") makes "is worn in
    // winter" a passive, whose antonym is another sense.
    let participle = (w.has_tag("VBN") || w.has_tag("VBD"))
        && lexicon()
            .verb_base
            .get(w.lower.as_str())
            .is_some_and(|base| *base != w.lower);
    if jj.is_none() || participle || verb.is_some_and(|v| Some(v) < jj) {
        return false;
    }
    // A compound blocks the swap unless its contrast is a compound too
    // ("old man" / "young man", not "high school" / "low school").
    let antonym = lexicon()
        .adj_antonyms
        .get(w.lower.as_str())
        .copied()
        .unwrap_or("");
    let attributive = ws.get(i + 1).is_some_and(|n| {
        matches!(n.pos, Pos::Noun | Pos::Adj)
            && (!is_compound(&w.lower, &n.lower) || is_compound(antonym, &n.lower))
    });
    let mut k = i;
    while k > 0 && ws[k - 1].pos == Pos::Adv {
        k -= 1;
    }
    let predicative = k > 0 && {
        let p = ws[k - 1].lower.as_str();
        BE.contains(&p) || LINKING.contains(&p)
    };
    attributive || predicative
}

fn comparative(text: &str, ws: &[Word]) -> Vec<Site> {
    if has_negation(ws) {
        return Vec::new();
    }
    let lex = lexicon();
    ws.iter()
        .enumerate()
        .filter(|(i, w)| {
            !in_name(ws, *i)
                && (w.has_tag("JJR") || w.has_tag("JJS") || w.has_tag("RBR") || w.has_tag("RBS"))
        })
        .filter_map(|(i, w)| {
            let next = ws.get(i + 1);
            let prev = (i > 0).then(|| &ws[i - 1]);
            // "most households" is a quantifier, not a degree.
            if w.lower == "most" && next.is_some_and(|n| n.pos == Pos::Noun) {
                return None;
            }
            // "more and more", "most likely", "higher education".
            if next.is_some_and(|n| {
                n.lower == "and" || n.lower == "likely" || is_compound(&w.lower, &n.lower)
            }) || prev.is_some_and(|p| p.lower == "and" && i > 1 && ws[i - 2].lower == w.lower)
            {
                return None;
            }
            let mut a = *lex.degree_antonyms.get(w.lower.as_str())?;
            let plural_next = next.is_some_and(|n| n.tags.first() == Some(&"NNS"));
            let mass_next = next.is_some_and(|n| n.tags.first() == Some(&"NN"));
            a = match a {
                "less" if plural_next => "fewer",
                "fewer" if mass_next => "less",
                "least" if plural_next => "fewest",
                other => other,
            };
            Some(swap_with_article(text, ws, i, a, Strength::Contrary))
        })
        .collect()
}

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

/// Words before a number that make it a bound, not a count ("at least 3"
/// is still true with 4).
const BOUNDS: &[&str] = &[
    "least",
    "most",
    "over",
    "than",
    "about",
    "around",
    "nearly",
    "almost",
    "under",
    "roughly",
    "approximately",
    "some",
    "up",
    "since",
    "before",
    "after",
    "until",
    "till",
    "by",
    "from",
];

fn number(text: &str, ws: &[Word]) -> Vec<Site> {
    ws.iter()
        .enumerate()
        .filter(|(i, _)| {
            // "under the age of 16" is a bound four words back.
            let bound = ws[i.saturating_sub(4)..*i]
                .iter()
                .any(|p| BOUNDS.contains(&p.lower.as_str()));
            *i == 0 || (!bound && ws[i - 1].pos != Pos::Proper)
        })
        .filter_map(|(i, w)| {
            if w.lower.bytes().all(|b| b.is_ascii_digit()) && w.lower.len() <= 4 {
                // Not part of 3.5, 1,000, 10:30, 3/4 or a name ("Apollo 11").
                let touches = |s: &str| s.starts_with(['.', ',', ':', '/']) && s.len() > 1;
                let before = &text[..w.start];
                let after = &text[w.end..];
                if before.ends_with(['.', ',', ':', '/', '-', '$', '#'])
                    || touches(after) && after[1..].starts_with(|c: char| c.is_ascii_digit())
                    || after.starts_with(|c: char| c.is_alphabetic())
                    || ws.get(i + 1).is_some_and(|n| n.pos == Pos::Proper)
                {
                    return None;
                }
                let n: u64 = w.lower.parse().ok()?;
                // Years move by a decade, counts by one: the edit stays
                // plausible and the claim stays checkable.
                let year = (1000..=2100).contains(&n) && w.lower.len() == 4;
                if year && text.trim_end().ends_with('?') {
                    // "Which city hosted the Olympics in 2018?" asks about
                    // an event that may not exist.
                    return None;
                }
                let changed = if year {
                    // Back a decade when forward would be the future.
                    if n + 10 > 2025 { n - 10 } else { n + 10 }
                } else if (2..1000).contains(&n) {
                    n + 1
                } else {
                    return None; // 0 and 1 change the noun's number
                };
                Some(swap(text, w, &changed.to_string(), Strength::Contrary))
            } else {
                let idx = NUMBER_WORDS.iter().position(|n| *n == w.lower)?;
                // "one" is often a pronoun, and "one dog" → "two dogs" needs
                // the noun changed too.
                if idx < 2 || w.pos == Pos::Proper || ws.get(i + 1).is_some_and(|n| n.capitalised) {
                    return None; // "Six Flags"
                }
                let next = NUMBER_WORDS.get(idx + 1).copied().unwrap_or("twenty-one");
                Some(swap(text, w, next, Strength::Contrary))
            }
        })
        .collect()
}

fn quantifier(text: &str, ws: &[Word]) -> Vec<Site> {
    let negatives = ws.iter().filter(|w| w.negates()).count();
    let mut out = Vec::new();
    for (i, w) in ws.iter().enumerate() {
        let prev = (i > 0).then(|| ws[i - 1].lower.as_str());
        let next = ws.get(i + 1);
        let next_nominal = next.is_some_and(|n| {
            matches!(n.pos, Pos::Noun | Pos::Adj | Pos::Num) || n.lower == "of" || n.lower == "the"
        });
        if matches!(
            prev,
            Some("how" | "at" | "for" | "not" | "in" | "after" | "above" | "of")
        ) {
            continue;
        }
        let l = w.lower.as_str();
        let own_negative = matches!(l, "no" | "never" | "nobody" | "nothing" | "none");
        // Another negation in the sentence makes the scope unclear
        // ("None of the lemons in neither image").
        if negatives > usize::from(own_negative) {
            break;
        }
        let plural_next = next.is_some_and(|n| n.tags.first() == Some(&"NNS") || n.lower == "of");
        let (with, strength) = match l {
            "all" if next.is_some_and(|n| n.lower == "of") => ("none", Strength::Contrary),
            // Not "all the year round".
            "all" if next_nominal && next.is_some_and(|n| n.lower != "the") => {
                ("no", Strength::Contrary)
            }
            "every" | "each" if next.is_some_and(|n| n.pos == Pos::Noun) => {
                ("no", Strength::Contrary)
            }
            "no" if next.is_some_and(|n| n.pos == Pos::Noun) => (
                if plural_next { "all" } else { "every" },
                Strength::Contrary,
            ),
            "some"
                if next.is_some_and(|n| n.pos == Pos::Noun && n.tags.first() == Some(&"NNS")) =>
            {
                ("no", Strength::Contradictory)
            }
            "always" => ("never", Strength::Contrary),
            "never" => ("always", Strength::Contrary),
            "everyone" => ("no one", Strength::Contrary),
            "everybody" => ("nobody", Strength::Contrary),
            "nobody" => ("everybody", Strength::Contrary),
            "everything" => ("nothing", Strength::Contrary),
            "nothing" => ("everything", Strength::Contrary),
            _ => continue,
        };
        out.push(swap(text, w, with, strength));
    }
    out
}

fn temporal(text: &str, ws: &[Word]) -> Vec<Site> {
    ws.iter()
        .enumerate()
        .filter(|(i, _)| !in_name(ws, *i))
        .filter_map(|(i, w)| {
            let next = ws.get(i + 1);
            let prev = (i > 0).then(|| &ws[i - 1]);
            // "named after", "looked after": a verb's particle, not an order.
            let after_verb = prev.is_some_and(|p| {
                let base = lexicon().verb_base.get(p.lower.as_str()).copied();
                PHRASAL_AFTER.contains(&base.unwrap_or(&p.lower))
            });
            // "last year" is the one before this; "second to last", "at last".
            let deictic = next.is_some_and(|n| TIME_NOUNS.contains(&n.lower.as_str()))
                || prev.is_some_and(|p| matches!(p.lower.as_str(), "to" | "at"));
            // "after 5 years", "before an hour": a duration, not an order.
            let duration = next.is_some_and(|n| n.pos == Pos::Num)
                || ws.get(i + 2).is_some_and(|n| {
                    TIME_NOUNS
                        .iter()
                        .any(|t| n.lower.trim_end_matches('s') == *t)
                });
            let with = match w.lower.as_str() {
                "before" | "after" if duration => return None,
                "before" if next.is_some() => "after",
                "after" if next.is_some() && i > 0 && !after_verb => "before",
                "first" | "last" if deictic => return None,
                "earlier" => "later",
                "later" if i > 0 => "earlier",
                // Ordinals only before what they order ("the first film").
                "first" if next.is_some_and(|n| matches!(n.pos, Pos::Noun | Pos::Adj)) => "last",
                "last" if next.is_some_and(|n| matches!(n.pos, Pos::Noun | Pos::Adj)) => "first",
                "preceded" => "followed",
                "followed" if next.is_some_and(|n| n.lower != "by") => "preceded",
                "precedes" => "follows",
                "follows" => "precedes",
                _ => return None,
            };
            Some(swap(text, w, with, Strength::Contrary))
        })
        .collect()
}

/// Verbs whose "after" is a particle: named after, look after, take after.
const PHRASAL_AFTER: &[&str] = &[
    "name", "look", "take", "run", "go", "chase", "ask", "seek", "model", "lust", "hanker", "come",
];

const TIME_NOUNS: &[&str] = &[
    "year", "week", "month", "night", "time", "season", "century", "decade", "day", "weekend",
    "summer", "winter", "spring", "fall", "autumn", "minute", "hour", "morning", "evening",
];

const GENDERED_NOUNS: &[(&str, &str)] = &[
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
    ("brother", "sister"),
    ("sister", "brother"),
    ("husband", "wife"),
    ("wife", "husband"),
    ("king", "queen"),
    ("queen", "king"),
    ("gentleman", "lady"),
    ("lady", "gentleman"),
    ("uncle", "aunt"),
    ("aunt", "uncle"),
    ("grandfather", "grandmother"),
    ("grandmother", "grandfather"),
];

const GENDERED_PRONOUNS: &[&str] = &[
    "he", "she", "him", "his", "her", "hers", "himself", "herself",
];

/// Gendered nouns of a text that refers to no one by pronoun (a pronoun
/// would then disagree), never in a name ("The Lion King").
fn gender(text: &str, ws: &[Word]) -> Vec<Site> {
    if ws
        .iter()
        .any(|w| GENDERED_PRONOUNS.contains(&w.lower.as_str()))
    {
        return Vec::new();
    }
    ws.iter()
        .enumerate()
        .filter(|(i, w)| w.pos == Pos::Noun && !w.capitalised && !in_name(ws, *i))
        .filter_map(|(_, w)| {
            let (_, r) = GENDERED_NOUNS.iter().find(|(g, _)| *g == w.lower)?;
            Some(swap(text, w, r, Strength::Contrary))
        })
        .collect()
}
