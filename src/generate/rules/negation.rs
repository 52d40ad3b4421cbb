//! Negation: of the main clause's auxiliary or finite verb (outside
//! relative clauses, after a leading subordinate clause), never under a
//! quantified subject, a frequency adverb or a focus word, never into a
//! caption's participle; yes/no questions get "not" after their subject;
//! an existing negation of the main clause is dropped instead.

use super::grammar::{BE, DO, HAVE, MODALS, Pos, Word, lexicon, match_case};
use super::ops::{Site, Strength, swap};

pub(super) fn has_negation(ws: &[Word]) -> bool {
    ws.iter().any(Word::negates)
}

/// Words between two words that hold a comma (a clause boundary).
fn comma_between(text: &str, a: &Word, b: &Word) -> bool {
    text[a.end..b.start].contains(',')
}

/// Negation of the main clause: one site per text, or none when foil
/// cannot tell where it goes.
pub(super) fn negation(text: &str, ws: &[Word]) -> Option<Site> {
    let first = ws.first()?;
    if first.pos == Pos::Wh {
        // "What is not the tallest mountain?" asks nothing.
        return None;
    }
    if has_negation(ws) {
        return remove_negation(text, ws);
    }
    if first.pos == Pos::Aux {
        return question_negation(ws);
    }
    let m = main_predicate(text, ws)?;
    // "Some people are sitting" / "Some people are not sitting" can both
    // be true: a quantified subject makes negation no contrast.
    if ws[..m]
        .iter()
        .any(|w| QUANTIFIED_SUBJECT.contains(&w.lower.as_str()))
    {
        return None;
    }
    // "Autumn often represents" / "often does not represent": an adverb of
    // frequency quantifies too.
    let around = &ws[m.saturating_sub(2)..(m + 2).min(ws.len())];
    if around.iter().any(|w| FREQUENCY.contains(&w.lower.as_str())) {
        return None;
    }
    // "Only talented people can win", "would most likely travel": a focus
    // or hedge takes the negation into its scope.
    let before = &ws[..(m + 3).min(ws.len())];
    if before.iter().any(|w| SCOPE.contains(&w.lower.as_str())) {
        return None;
    }
    insert_negation(text, ws, m)
}

const FREQUENCY: &[&str] = &[
    "often",
    "usually",
    "sometimes",
    "typically",
    "mostly",
    "mainly",
    "generally",
    "frequently",
    "rarely",
    "seldom",
    "always",
    "occasionally",
    "commonly",
    "normally",
    "largely",
];

const SCOPE: &[&str] = &[
    "only",
    "likely",
    "probably",
    "possibly",
    "even",
    "just",
    "hardly",
    "barely",
    "almost",
    "nearly",
    "certainly",
    "definitely",
];

const QUANTIFIED_SUBJECT: &[&str] = &[
    "some", "many", "most", "few", "several", "all", "every", "each", "any", "both", "much",
];

/// The index of the main clause's auxiliary or finite verb: after a
/// leading subordinate clause, outside relative clauses, with a subject
/// before it.
fn main_predicate(text: &str, ws: &[Word]) -> Option<usize> {
    let mut i = 0;
    if ws[0].pos == Pos::Sub || matches!(ws[0].lower.as_str(), "after" | "before" | "since") {
        // "When it rains, the street is wet": the main clause follows the
        // comma.
        i = (1..ws.len()).find(|&k| comma_between(text, &ws[k - 1], &ws[k]))?;
    }
    let start = i;
    let mut in_relative = false;
    while i < ws.len() {
        let w = &ws[i];
        if w.pos == Pos::Sub && i > start {
            if !matches!(
                w.lower.as_str(),
                "who" | "which" | "that" | "whose" | "whom"
            ) {
                // "a woman jumping so she can hit": no main verb before
                // another clause starts.
                return None;
            }
            in_relative = true;
        } else if matches!(w.lower.as_str(), "so" | "yet" | "but" | "or") && !in_relative {
            return None;
        } else if matches!(w.lower.as_str(), "before" | "after" | "until" | "because")
            && ws
                .get(i + 1)
                .is_some_and(|n| matches!(n.pos, Pos::Pron | Pos::Det | Pos::Proper))
            && ws
                .get(i + 2)
                .is_some_and(|n| matches!(n.pos, Pos::Verb | Pos::Aux))
        {
            // "a man slices bread before he makes a sandwich": the verb
            // found next is the subordinate clause's.
            return None;
        } else if matches!(w.pos, Pos::Aux | Pos::Verb) {
            if in_relative {
                in_relative = false;
                // The relative clause's verb group.
                while ws
                    .get(i + 1)
                    .is_some_and(|n| matches!(n.pos, Pos::Aux | Pos::Participle | Pos::Gerund))
                {
                    i += 1;
                }
            } else {
                let prev = ws.get(i.checked_sub(1)?)?;
                if i == start || matches!(prev.pos, Pos::Det | Pos::Prep | Pos::PossPron) {
                    return None;
                }
                return Some(i);
            }
        } else if w.pos == Pos::Conj && i > start && !in_relative {
            // Coordinated subjects are fine ("Tom and Ann are"); a clause
            // boundary before any verb is not.
            if comma_between(text, &ws[i - 1], w) {
                return None;
            }
        }
        i += 1;
    }
    None
}

fn insert_negation(text: &str, ws: &[Word], m: usize) -> Option<Site> {
    let lex = lexicon();
    let w = &ws[m];
    let next = ws.get(m + 1);
    let after = |with: &str| Site {
        start: w.end,
        end: w.end,
        with: with.to_string(),
        strength: Strength::Contradictory,
    };
    let l = w.lower.as_str();
    if w.pos == Pos::Aux {
        if matches!(l, "be" | "been" | "being") || next.is_none() {
            return None;
        }
        if l == "can" {
            return Some(swap(text, w, "cannot", Strength::Contradictory));
        }
        if BE.contains(&l) || MODALS.contains(&l) {
            return Some(after(" not"));
        }
        if HAVE.contains(&l) {
            let participle = ws[m + 1..]
                .iter()
                .find(|n| n.pos != Pos::Adv)
                .is_some_and(|n| n.pos == Pos::Participle);
            if participle {
                return Some(after(" not"));
            }
            // Main-verb "have": "has a dog" → "does not have a dog".
            let repl = match l {
                "has" => "does not have",
                "have" => "do not have",
                _ => "did not have",
            };
            return Some(swap(text, w, repl, Strength::Contradictory));
        }
        if DO.contains(&l) {
            if next.is_some_and(|n| n.pos == Pos::VerbBase) {
                return Some(after(" not"));
            }
            return None;
        }
        return None;
    }
    // A finite main verb.
    let base = *lex.verb_base.get(l)?;
    // A caption's noun phrase ("A sandwich placed on a plate", "Hands
    // typing on light colored keys") has no finite verb; an ambiguous past
    // form there is a participle.
    let in_gerund = ws[..m]
        .iter()
        .any(|x| matches!(x.pos, Pos::Gerund | Pos::Participle) || x.has_tag("VBG"));
    let indefinite = ws[0].lower == "a" || ws[0].lower == "an";
    // After a gerund ("A train traveling past houses by train tracks") any
    // verb-looking word belongs to the gerund's phrase.
    if in_gerund || indefinite && w.has_tag("VBN") {
        return None;
    }
    let aux = if lex.inflect(base, "VBZ") == l {
        "does"
    } else if lex.inflect(base, "VBD") == l && base != l {
        "did"
    } else if base == l {
        let subject = &ws[m - 1];
        if subject.tags.first() == Some(&"NNS")
            || matches!(subject.lower.as_str(), "they" | "we" | "you" | "i")
        {
            "do"
        } else {
            return None;
        }
    } else {
        return None;
    };
    Some(swap(
        text,
        w,
        &format!("{aux} not {base}"),
        Strength::Contradictory,
    ))
}

/// Drop the first negation of the main clause.
fn remove_negation(text: &str, ws: &[Word]) -> Option<Site> {
    let lex = lexicon();
    let is_neg = |w: &Word| w.lower == "not" || w.lower.ends_with("n't") || w.lower == "cannot";
    let i = ws.iter().position(is_neg)?;
    // Only the main clause's: "The players who did not score did not
    // have a ball" keeps the relative clause's negation.
    if ws[..i]
        .iter()
        .enumerate()
        .any(|(k, w)| k > 0 && w.pos == Pos::Sub)
    {
        return None;
    }
    if i == 0 {
        // "Isn't it …?", "Don't …": a rhetorical question or an order.
        return None;
    }
    let w = &ws[i];
    let contraction = w.lower.ends_with("n't") || w.lower == "cannot";
    let (aux, verb_at) = if contraction {
        let positive = match w.lower.as_str() {
            "can't" | "cannot" => "can",
            "won't" => "will",
            "shan't" => "shall",
            other => other.trim_end_matches("n't"),
        };
        (positive.to_string(), i + 1)
    } else {
        (ws[i - 1].lower.clone(), i + 1)
    };
    let aux_word = if contraction { w } else { &ws[i - 1] };
    if !contraction && !matches!(ws[i - 1].pos, Pos::Aux) {
        return None; // "not" outside a verb group ("not only", "not a")
    }
    if DO.contains(&aux.as_str()) {
        // "does not own" → "owns", "didn't win" → "won".
        let v = ws.get(verb_at).filter(|v| v.pos == Pos::VerbBase)?;
        let tag = match aux.as_str() {
            "does" => "VBZ",
            "did" => "VBD",
            _ => "VB",
        };
        let base = lex
            .verb_base
            .get(v.lower.as_str())
            .copied()
            .unwrap_or(&v.lower);
        let base = if lex.verb_forms.contains_key(v.lower.as_str()) {
            v.lower.as_str()
        } else {
            base
        };
        return Some(Site {
            start: aux_word.start,
            end: v.end,
            with: match_case(&text[aux_word.start..aux_word.end], &lex.inflect(base, tag)),
            strength: Strength::Contradictory,
        });
    }
    if contraction {
        return Some(swap(text, w, &aux, Strength::Contradictory));
    }
    // "is not tall" → "is tall"
    Some(Site {
        start: ws[i - 1].end,
        end: w.end,
        with: String::new(),
        strength: Strength::Contradictory,
    })
}

/// "is the sky blue" → "is the sky not blue"; "does ethanol take …" →
/// "does ethanol not take …". Only for be/do questions with a short
/// subject whose end foil can see.
fn question_negation(ws: &[Word]) -> Option<Site> {
    let aux = ws[0].lower.as_str();
    let is_be = BE.contains(&aux);
    if !is_be && !DO.contains(&aux) {
        return None;
    }
    if !matches!(
        ws.get(1)?.pos,
        Pos::Det
            | Pos::Proper
            | Pos::Noun
            | Pos::Pron
            | Pos::PossPron
            | Pos::Adj
            | Pos::Num
            | Pos::VerbBase
    ) {
        return None;
    }
    let mut j = 2;
    while j < ws.len() && j <= 6 {
        let w = &ws[j];
        let boundary = if is_be {
            match w.pos {
                Pos::Det | Pos::Participle | Pos::Gerund | Pos::Adv | Pos::Num | Pos::Degree => {
                    true
                }
                // "is the sky blue": an adjective after a noun.
                Pos::Adj => matches!(ws[j - 1].pos, Pos::Noun | Pos::Proper | Pos::Pron),
                // "Is Paris in France", "Is Mount Everest in Nepal".
                Pos::Prep if j == 2 || ws[1..j].iter().all(|x| x.pos == Pos::Proper) => true,
                // "Is the food on the plate …": the subject's end is
                // unclear.
                Pos::Prep => return None,
                _ => false,
            }
        } else {
            // "Does water boil", "Does a spider have": after do-support the
            // first word that can be a verb's base form is the verb.
            matches!(w.pos, Pos::VerbBase | Pos::Verb)
                || (w.has_tag("VB") && w.pos != Pos::Proper)
                || HAVE.contains(&w.lower.as_str())
        };
        if boundary {
            return Some(Site {
                start: ws[j - 1].end,
                end: ws[j - 1].end,
                with: " not".into(),
                strength: Strength::Contradictory,
            });
        }
        // "do Iran and Afghanistan speak …": a coordinated subject of a
        // do-question is still one subject.
        let coordinated_subject = !is_be && w.lower == "and";
        if matches!(w.pos, Pos::Conj | Pos::Sub | Pos::Aux | Pos::Wh) && !coordinated_subject {
            return None;
        }
        j += 1;
    }
    None
}
