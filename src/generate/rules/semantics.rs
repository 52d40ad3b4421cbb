//! What a rules edit does to the label, per task: each operation's site
//! has a logical strength ([`Strength`]), each task says what its label
//! means ([`LabelMeaning`]), and together they decide whether the pair is
//! a flip with a known new label, a flip whose new answer someone must
//! supply, an invariance probe, or `uncertain` — routed to review, never
//! labelled by guess.

use super::ops::Strength;
use crate::config::RuleOp;
use crate::record::Relation;
use crate::tasks::LabelMeaning;
use crate::text::same_label;

/// The decision for one edit.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub relation: Relation,
    pub edited_label: Option<String>,
    /// What a reviewer must supply before the pair is finished
    /// (`relation`, `answer`), with the reason.
    pub needs_review: Option<String>,
}

impl Outcome {
    fn flip(label: Option<String>) -> Self {
        Outcome {
            relation: Relation::Flip,
            edited_label: label,
            needs_review: None,
        }
    }

    fn uncertain(why: &str) -> Self {
        Outcome {
            relation: Relation::Uncertain,
            edited_label: None,
            needs_review: Some(format!("relation: {why}")),
        }
    }

    fn needs_answer(why: &str) -> Self {
        Outcome {
            relation: Relation::Flip,
            edited_label: None,
            needs_review: Some(format!("answer: {why}")),
        }
    }
}

/// Truth values as datasets spell them, with their opposites.
const TRUTH_PAIRS: &[(&str, &str)] = &[
    ("true", "false"),
    ("yes", "no"),
    ("1", "0"),
    ("supports", "refutes"),
    ("supported", "refuted"),
    ("correct", "incorrect"),
    ("aligned", "misaligned"),
    ("match", "mismatch"),
    ("matches", "does not match"),
    ("entailed", "not entailed"),
];

/// The truth value a label states, and its opposite in the same spelling.
pub fn truth(label: &str) -> Option<(bool, String)> {
    for (t, f) in TRUTH_PAIRS {
        let recase = |w: &str| super::grammar::match_case(label.trim(), w);
        if same_label(label, t) {
            return Some((true, recase(f)));
        }
        if same_label(label, f) {
            return Some((false, recase(t)));
        }
    }
    None
}

/// Does the text join statements ("and", "or", "but", a comma, "while")?
/// An edit of one of them need not change the truth of a false whole.
pub fn compound(text: &str) -> bool {
    let t = format!(" {} ", text.to_lowercase());
    [" and ", " or ", " but ", " while ", " whereas ", ", "]
        .iter()
        .any(|c| t.contains(c))
}

pub fn outcome(
    meaning: LabelMeaning,
    op: RuleOp,
    strength: Strength,
    text: &str,
    label: Option<&str>,
) -> Outcome {
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    match meaning {
        LabelMeaning::Truth => match label.and_then(truth) {
            None => Outcome::uncertain("the original has no truth label"),
            Some((true, flipped)) => Outcome::flip(Some(flipped)),
            Some((false, flipped)) if strength == Strength::Contradictory && !compound(text) => {
                Outcome::flip(Some(flipped))
            }
            Some((false, _)) => {
                Outcome::uncertain("a false statement changed in one place need not become true")
            }
        },
        LabelMeaning::Depiction => match label.map(|l| (l, truth(l))) {
            // A caption without a truth label describes its media; the
            // edit no longer does.
            None | Some((_, None)) => Outcome::flip(None),
            Some((_, Some((true, flipped)))) => Outcome::flip(Some(flipped)),
            Some((_, Some((false, _)))) => Outcome::uncertain(
                "a caption that does not match its media may still not match after the edit",
            ),
        },
        LabelMeaning::Answer => match label.and_then(truth) {
            Some((true, flipped)) => Outcome::flip(Some(flipped)),
            Some((false, flipped)) if strength == Strength::Contradictory => {
                Outcome::flip(Some(flipped))
            }
            Some((false, _)) => Outcome::uncertain(
                "a question whose answer is no, changed to a contrary, may still be answered no",
            ),
            None => Outcome::needs_answer("the edited question's answer is not known yet"),
        },
        // Another person in the hypothesis only is a different referent,
        // which annotators label either way.
        LabelMeaning::Inference if op == RuleOp::Gender => {
            Outcome::uncertain("a hypothesis about someone else may be neutral or contradicted")
        }
        LabelMeaning::Inference => {
            let is = |l: &str| label.is_some_and(|x| same_label(x, l));
            match () {
                _ if is("entailment") => Outcome::flip(Some("contradiction".into())),
                // A neutral hypothesis negated (or made contrary) is still
                // neither entailed nor contradicted.
                _ if is("neutral") && strength == Strength::Contradictory => Outcome {
                    relation: Relation::Invariant,
                    edited_label: Some("neutral".into()),
                    needs_review: None,
                },
                _ if is("neutral") => {
                    Outcome::uncertain("a contrary of a neutral hypothesis may be contradicted")
                }
                _ if is("contradiction") => Outcome::uncertain(
                    "the edit of a contradicted hypothesis may be entailed or neutral",
                ),
                _ => Outcome::uncertain("the original has no inference label"),
            }
        }
        LabelMeaning::Open => {
            if op == RuleOp::Gender {
                Outcome {
                    relation: Relation::Invariant,
                    edited_label: label.map(str::to_string),
                    needs_review: None,
                }
            } else {
                Outcome::uncertain("foil cannot tell what the edit does to this task's label")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn false_claims_flip_only_by_negation_of_a_simple_statement() {
        let t = LabelMeaning::Truth;
        let o = outcome(
            t,
            RuleOp::Antonym,
            Strength::Contrary,
            "X is tall.",
            Some("True"),
        );
        assert_eq!(
            (o.relation, o.edited_label.as_deref()),
            (Relation::Flip, Some("False"))
        );
        let o = outcome(
            t,
            RuleOp::Antonym,
            Strength::Contrary,
            "X is tall.",
            Some("false"),
        );
        assert_eq!(o.relation, Relation::Uncertain);
        assert!(o.needs_review.is_some());
        let o = outcome(
            t,
            RuleOp::Negation,
            Strength::Contradictory,
            "X is tall.",
            Some("false"),
        );
        assert_eq!(o.edited_label.as_deref(), Some("true"));
        let compound = "X is tall and Y is short.";
        let o = outcome(
            t,
            RuleOp::Negation,
            Strength::Contradictory,
            compound,
            Some("false"),
        );
        assert_eq!(o.relation, Relation::Uncertain);
    }

    #[test]
    fn captions_flip_when_they_matched_and_are_uncertain_when_they_did_not() {
        let d = LabelMeaning::Depiction;
        let s = Strength::Contrary;
        assert_eq!(
            outcome(d, RuleOp::Gender, s, "a man", None).relation,
            Relation::Flip
        );
        let o = outcome(d, RuleOp::Gender, s, "a man", Some("aligned"));
        assert_eq!(o.edited_label.as_deref(), Some("misaligned"));
        let o = outcome(d, RuleOp::Number, s, "two cats and a dog", Some("False"));
        assert_eq!(o.relation, Relation::Uncertain);
    }

    #[test]
    fn questions_carry_a_new_answer_or_ask_for_one() {
        let a = LabelMeaning::Answer;
        let o = outcome(
            a,
            RuleOp::Negation,
            Strength::Contradictory,
            "is it",
            Some("yes"),
        );
        assert_eq!(o.edited_label.as_deref(), Some("no"));
        let o = outcome(
            a,
            RuleOp::Number,
            Strength::Contrary,
            "q",
            Some("Mount Everest"),
        );
        assert_eq!((o.relation, o.edited_label), (Relation::Flip, None));
        assert!(o.needs_review.unwrap().starts_with("answer"));
    }

    #[test]
    fn nli_entailment_flips_to_contradiction_and_neutral_negation_stays() {
        let n = LabelMeaning::Inference;
        let o = outcome(
            n,
            RuleOp::Antonym,
            Strength::Contrary,
            "h",
            Some("entailment"),
        );
        assert_eq!(o.edited_label.as_deref(), Some("contradiction"));
        let o = outcome(
            n,
            RuleOp::Negation,
            Strength::Contradictory,
            "h",
            Some("neutral"),
        );
        assert_eq!(o.relation, Relation::Invariant);
        let o = outcome(
            n,
            RuleOp::Negation,
            Strength::Contradictory,
            "h",
            Some("contradiction"),
        );
        assert_eq!(o.relation, Relation::Uncertain);
    }
}
