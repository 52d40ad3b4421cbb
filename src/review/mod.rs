//! Review queues: pairs out to people (Label Studio, Argilla, CSV/JSONL),
//! their verdicts back in through one path — validated, then written to
//! `DIR/reviewed/` with agreement statistics — for `foil calibrate` and for
//! anyone who wants only the pairs people accepted.
//!
//! A verdict is `accept` (the pair is right as it is), `reject` (it is not a
//! valid contrast) or `fix` (it is, after the corrected text replaces the
//! edit). Every queue's decisions become [`Annotation`]s; nothing is taken
//! on trust, because the servers do not check results against their own
//! configuration.

pub mod flat;
pub mod label_studio;
mod reviewed;

pub use reviewed::{ReviewSummary, Reviewed, read_annotations, read_verdicts, write_reviewed};

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sink::Manifest;

pub const REVIEWED_DIR: &str = "reviewed";
pub const VERDICTS: &[&str] = &["accept", "reject", "fix"];

/// A pair as the review tools see it (read back from the shards).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairRow {
    pub pair_id: String,
    pub source_id: String,
    pub task: String,
    pub original: String,
    pub edited: String,
    pub original_label: Option<String>,
    pub edited_label: Option<String>,
    pub relation: String,
    /// What a reviewer must supply (`relation: …`, `answer: …`).
    pub needs_review: Option<String>,
    pub edit_type: String,
    pub context: Option<String>,
    /// The context after the edit, when the edit changed it (an edited
    /// premise or passage).
    pub edited_context: Option<String>,
    /// Fields the edit changed, comma-separated.
    pub changed_fields: Option<String>,
    pub word_edits: Option<f64>,
    pub edit_ratio: Option<f64>,
    pub edit_ops: Option<f64>,
    pub changed_share: Option<f64>,
    pub related_share: Option<f64>,
    /// The edit operations as JSON (field, op, from, to, byte ranges).
    pub edit_spans: Option<String>,
    pub similarity: Option<f64>,
    pub verify_relation: Option<f64>,
    pub verify_label: Option<f64>,
    pub verify_fluent: Option<f64>,
    pub verify_minimal: Option<f64>,
    /// Set for pairs a filter turned down.
    pub reject_stage: Option<String>,
    pub reject_reason: Option<String>,
}

impl PairRow {
    /// The lowest verification score, if the pair was verified.
    pub fn verify_min(&self) -> Option<f64> {
        [
            self.verify_relation,
            self.verify_label,
            self.verify_fluent,
            self.verify_minimal,
        ]
        .into_iter()
        .flatten()
        .reduce(f64::min)
    }

    /// One number for "how sure foil is": the lowest verification score,
    /// else the similarity.
    pub fn confidence(&self) -> Option<f64> {
        self.verify_min().or(self.similarity)
    }
}

impl PairRow {
    /// How foil itself decided: `accepted`, or the stage and reason.
    pub fn status(&self) -> String {
        match (&self.reject_stage, &self.reject_reason) {
            (Some(s), Some(r)) => format!("rejected by {s}: {r}"),
            _ => "accepted".to_string(),
        }
    }

    /// foil's own verdict, offered to reviewers as a suggestion.
    pub fn foil_verdict(&self) -> &'static str {
        if self.reject_stage.is_some() {
            "reject"
        } else {
            "accept"
        }
    }

    fn from_row(r: crate::sink::shards::Row) -> Self {
        let c = r.candidate;
        let v = c.scores.verify.as_ref();
        PairRow {
            pair_id: c.pair_id,
            source_id: c.source_id,
            task: r.task.to_string(),
            original: c.original,
            edited: c.edited,
            original_label: c.original_label,
            edited_label: c.edited_label,
            relation: c.relation.as_str().to_string(),
            needs_review: c.needs_review,
            edit_type: c.edit_type,
            context: r.context,
            edited_context: c.edited_context.clone(),
            changed_fields: c.scores.changed_fields.clone(),
            word_edits: c.scores.word_edits.map(f64::from),
            edit_ratio: c.scores.edit_ratio,
            edit_ops: c.scores.edit_ops.map(f64::from),
            changed_share: c.scores.changed_share,
            related_share: c.scores.related_share,
            edit_spans: c.scores.edit_spans.clone(),
            similarity: c.scores.similarity,
            verify_relation: v.map(|v| v.relation),
            verify_label: v.map(|v| v.label),
            verify_fluent: v.map(|v| v.fluent),
            verify_minimal: v.map(|v| v.minimal),
            reject_stage: c.rejection.as_ref().map(|x| x.stage.clone()),
            reject_reason: c.rejection.map(|x| x.reason),
        }
    }
}

/// The accepted pairs of an output folder (and its rejected ones too when
/// asked), in shard order.
pub fn load_pairs(dir: &Path, with_rejected: bool) -> anyhow::Result<Vec<PairRow>> {
    let manifest = Manifest::read(dir).map_err(|e| {
        crate::UsageError::new(format!(
            "`{}` is not a foil output folder (manifest.json: {e})",
            dir.display()
        ))
    })?;
    let mut entries = manifest.shards.clone();
    if with_rejected {
        entries.extend(manifest.rejected_shards.iter().cloned());
    }
    let task = manifest.config.task()?.name;
    let rows = crate::sink::shards::read_back(dir, &entries, task)
        .map_err(|e| anyhow::anyhow!("reading the shards of `{}`: {e}", dir.display()))?;
    Ok(rows.into_iter().map(PairRow::from_row).collect())
}

/// How to choose the pairs people see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Round-robin over edit types (each shuffled by `seed`), so every type
    /// is represented as evenly as the counts allow.
    Stratified,
    /// The pairs foil was least sure of first (lowest verification score,
    /// else lowest similarity).
    LowestScore,
}

/// Pick `n` pairs (all when `n` is `None`), deterministically.
pub fn sample(pairs: &[PairRow], n: Option<usize>, how: Sampling, seed: u64) -> Vec<PairRow> {
    let n = n.unwrap_or(pairs.len()).min(pairs.len());
    match how {
        Sampling::LowestScore => {
            let mut v: Vec<&PairRow> = pairs.iter().collect();
            v.sort_by(|a, b| {
                let (x, y) = (
                    a.confidence().unwrap_or(f64::INFINITY),
                    b.confidence().unwrap_or(f64::INFINITY),
                );
                x.total_cmp(&y).then_with(|| a.pair_id.cmp(&b.pair_id))
            });
            v.into_iter().take(n).cloned().collect()
        }
        Sampling::Stratified => {
            let mut by_type: BTreeMap<&str, Vec<&PairRow>> = BTreeMap::new();
            for p in pairs {
                by_type.entry(&p.edit_type).or_default().push(p);
            }
            for list in by_type.values_mut() {
                // A seeded order that does not depend on input order.
                list.sort_by_key(|p| {
                    crate::text::hash64(&[p.pair_id.as_bytes(), &seed.to_le_bytes()])
                });
            }
            let mut out = Vec::with_capacity(n);
            let mut round = 0;
            while out.len() < n {
                let mut took = false;
                for list in by_type.values() {
                    if let Some(p) = list.get(round)
                        && out.len() < n
                    {
                        out.push((*p).clone());
                        took = true;
                    }
                }
                if !took {
                    break;
                }
                round += 1;
            }
            out
        }
    }
}

/// One person's decision on one pair, from any queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub pair_id: String,
    pub annotator: String,
    pub verdict: String,
    pub corrected: Option<String>,
    /// The new label or answer the reviewer gave (required for pairs that
    /// need one).
    #[serde(default)]
    pub label: Option<String>,
    /// `label-studio`, `argilla`, `csv`, `jsonl`.
    pub queue: String,
    /// Which queue it came from: `file:<path>` for an import,
    /// `label-studio:<url>#<project>` for a pull. Verdicts are kept by
    /// (pair, annotator, source): a new reading of one source replaces that
    /// source's earlier one and leaves every other source's alone.
    #[serde(default)]
    pub source: String,
    /// Where it came from, for messages (`task 12, annotation 40`,
    /// `decisions.csv:7`).
    pub origin: String,
}

/// An annotation that failed validation, with where and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invalid {
    pub origin: String,
    pub field: String,
    pub problem: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: field `{}`: {}",
            self.origin, self.field, self.problem
        )
    }
}

/// Check annotations against the pairs they are about: a known pair, a
/// known verdict, corrected text for (and only needed for) `fix`.
pub fn validate(
    annotations: Vec<Annotation>,
    known: &HashMap<&str, &PairRow>,
) -> (Vec<Annotation>, Vec<Invalid>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for a in annotations {
        let problem = if !known.contains_key(a.pair_id.as_str()) {
            Some(("pair_id", format!("no pair `{}` in this folder", a.pair_id)))
        } else if !VERDICTS.contains(&a.verdict.as_str()) {
            Some((
                "verdict",
                format!("`{}` is not one of {}", a.verdict, VERDICTS.join(", ")),
            ))
        } else if a.verdict == "fix" && a.corrected.as_deref().is_none_or(|c| c.trim().is_empty()) {
            Some((
                "corrected",
                "a `fix` verdict needs the corrected text".to_string(),
            ))
        } else if let Some(need) = known[a.pair_id.as_str()].needs_review.as_deref()
            && a.verdict != "reject"
            && a.label.as_deref().is_none_or(|l| l.trim().is_empty())
        {
            Some((
                "new_label",
                format!(
                    "this pair needs its new label or answer ({need}); give it, or reject the pair"
                ),
            ))
        } else {
            None
        };
        match problem {
            Some((field, problem)) => bad.push(Invalid {
                origin: a.origin.clone(),
                field: field.to_string(),
                problem,
            }),
            None => ok.push(a),
        }
    }
    (ok, bad)
}

/// Agreement over pairs that more than one person reviewed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub annotations: usize,
    pub annotators: usize,
    pub pairs_reviewed: usize,
    /// Pairs with at least two annotations.
    pub pairs_multiply_reviewed: usize,
    /// Mean over those pairs of the fraction of annotator pairs agreeing.
    pub percent_agreement: Option<f64>,
    /// Fleiss' kappa over those pairs (annotation counts may differ per
    /// pair: the per-item agreement uses each pair's own count).
    pub fleiss_kappa: Option<f64>,
    pub verdicts: BTreeMap<String, usize>,
}

pub fn agreement(by_pair: &BTreeMap<String, Vec<&Annotation>>) -> Agreement {
    let mut a = Agreement::default();
    let mut people = std::collections::BTreeSet::new();
    let mut p_items = Vec::new();
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    let mut total_multi = 0usize;
    for list in by_pair.values() {
        a.annotations += list.len();
        a.pairs_reviewed += 1;
        for x in list {
            people.insert(x.annotator.as_str());
            *a.verdicts.entry(x.verdict.clone()).or_default() += 1;
        }
        let n = list.len();
        if n < 2 {
            continue;
        }
        a.pairs_multiply_reviewed += 1;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for x in list {
            *counts.entry(x.verdict.as_str()).or_default() += 1;
            *totals.entry(x.verdict.as_str()).or_default() += 1;
            total_multi += 1;
        }
        let agree: usize = counts.values().map(|c| c * (c - 1)).sum();
        p_items.push(agree as f64 / (n * (n - 1)) as f64);
    }
    a.annotators = people.len();
    if !p_items.is_empty() {
        let p_bar = p_items.iter().sum::<f64>() / p_items.len() as f64;
        a.percent_agreement = Some(p_bar);
        let p_e: f64 = totals
            .values()
            .map(|&c| (c as f64 / total_multi as f64).powi(2))
            .sum();
        a.fleiss_kappa = if (1.0 - p_e).abs() < 1e-12 {
            None
        } else {
            Some((p_bar - p_e) / (1.0 - p_e))
        };
    }
    a
}

/// The majority verdict (ties: reject over fix over accept — the cautious
/// reading), the corrected text of the most recent `fix` and the most
/// recent new label a reviewer who did not reject gave.
pub(crate) fn decide(list: &[&Annotation]) -> (String, Option<String>, Option<String>) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for x in list {
        *counts.entry(x.verdict.as_str()).or_default() += 1;
    }
    let rank = |v: &str| match v {
        "reject" => 2,
        "fix" => 1,
        _ => 0,
    };
    let verdict = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(rank(a.0).cmp(&rank(b.0))))
        .map(|(v, _)| v.to_string())
        .unwrap_or_default();
    let corrected = list
        .iter()
        .rev()
        .find(|x| x.verdict == "fix")
        .and_then(|x| x.corrected.clone());
    let label = list
        .iter()
        .rev()
        .filter(|x| x.verdict != "reject")
        .find_map(|x| x.label.clone().filter(|l| !l.trim().is_empty()));
    (verdict, corrected, label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pair: &str, who: &str, verdict: &str) -> Annotation {
        Annotation {
            pair_id: pair.into(),
            annotator: who.into(),
            verdict: verdict.into(),
            corrected: None,
            label: None,
            queue: "test".into(),
            source: "test".into(),
            origin: "t".into(),
        }
    }

    #[test]
    fn agreement_and_kappa_match_a_hand_computed_case() {
        // Two pairs, two annotators each: one agreement, one not.
        let all = [
            ann("p1", "a", "accept"),
            ann("p1", "b", "accept"),
            ann("p2", "a", "accept"),
            ann("p2", "b", "reject"),
            ann("p3", "a", "reject"),
        ];
        let mut by: BTreeMap<String, Vec<&Annotation>> = BTreeMap::new();
        for a in &all {
            by.entry(a.pair_id.clone()).or_default().push(a);
        }
        let g = agreement(&by);
        assert_eq!(g.pairs_reviewed, 3);
        assert_eq!(g.pairs_multiply_reviewed, 2);
        assert_eq!(g.percent_agreement, Some(0.5));
        // P_e = (3/4)^2 + (1/4)^2 = 0.625; kappa = (0.5 - 0.625) / 0.375.
        let k = g.fleiss_kappa.unwrap();
        assert!((k - (-1.0 / 3.0)).abs() < 1e-12, "{k}");
    }

    #[test]
    fn ties_are_decided_cautiously() {
        let (a, b) = (ann("p", "x", "accept"), ann("p", "y", "reject"));
        assert_eq!(decide(&[&a, &b]).0, "reject");
    }

    #[test]
    fn stratified_sampling_covers_every_type() {
        let pairs: Vec<PairRow> = (0..30)
            .map(|i| PairRow {
                pair_id: format!("p{i}"),
                edit_type: if i < 25 { "negation" } else { "antonym" }.into(),
                ..PairRow::default()
            })
            .collect();
        let s = sample(&pairs, Some(6), Sampling::Stratified, 1);
        assert_eq!(s.iter().filter(|p| p.edit_type == "antonym").count(), 3);
        let mut reversed = pairs.clone();
        reversed.reverse();
        let ids = |v: &[PairRow]| v.iter().map(|p| p.pair_id.clone()).collect::<Vec<_>>();
        let mut a = ids(&s);
        let mut b = ids(&sample(&reversed, Some(6), Sampling::Stratified, 1));
        a.sort();
        b.sort();
        assert_eq!(a, b, "input order does not change the sample");
    }
}
