//! `foil eval DIR --predictions PREDS.jsonl`: accuracy on originals, on
//! edits, and contrast consistency (Gardner et al. 2020: a contrast set —
//! an original and its edits — counts only if the model is right on the
//! original and on every edit), overall, per task and per edit type, with
//! percentile bootstrap confidence intervals over contrast sets.
//!
//! Gold labels are the pairs' `original_label` / `edited_label` (an
//! invariant pair without an edited label keeps the original's). Labels
//! and predictions compare as [`crate::text::same_label`] says. A missing
//! prediction is reported, never guessed: a contrast set missing any of its
//! predictions is left out of consistency and counted as incomplete.

use super::Exit;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::UsageError;
use crate::cli::EvalArgs;
use crate::review::{PairRow, load_pairs, read_verdicts};
use crate::text::same_label;

/// Predictions by id, with file:line errors for bad lines.
pub fn read_predictions(path: &Path) -> Result<HashMap<String, String>, UsageError> {
    let name = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError::new(format!("reading `{name}`: {e}")))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| UsageError::new(format!("{name}:{n}: not JSON: {e}")))?;
        let id = match &v["id"] {
            Value::String(s) => s.clone(),
            Value::Number(x) => x.to_string(),
            Value::Null => {
                return Err(UsageError::new(format!(
                    "{name}:{n}: field `id` is missing"
                )));
            }
            other => {
                return Err(UsageError::new(format!(
                    "{name}:{n}: field `id` must be a string, got {other}"
                )));
            }
        };
        let p = match &v["prediction"] {
            Value::String(s) => s.clone(),
            Value::Number(x) => x.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => {
                return Err(UsageError::new(format!(
                    "{name}:{n}: field `prediction` is missing"
                )));
            }
            other => {
                return Err(UsageError::new(format!(
                    "{name}:{n}: field `prediction` must be a string, number or boolean, got {other}"
                )));
            }
        };
        if out.insert(id.clone(), p).is_some() {
            return Err(UsageError::new(format!(
                "{name}:{n}: field `id`: `{id}` appears twice"
            )));
        }
    }
    Ok(out)
}

/// One contrast set, scored.
#[derive(Debug, Clone)]
struct SetScore {
    task: String,
    /// Original correct?
    original: bool,
    /// (edit type, correct) per edit with gold and prediction.
    edits: Vec<(String, bool)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metric {
    pub value: Option<f64>,
    pub n: usize,
    pub ci95: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub original_accuracy: Metric,
    pub edit_accuracy: Metric,
    pub consistency: Metric,
}

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub contrast_sets: usize,
    pub complete_sets: usize,
    pub incomplete_sets: usize,
    pub missing_predictions: usize,
    pub missing_examples: Vec<String>,
    pub pairs_without_gold: usize,
    pub unused_predictions: usize,
    pub overall: Scores,
    pub by_task: BTreeMap<String, Scores>,
    pub by_edit_type: BTreeMap<String, Scores>,
    pub bootstrap: usize,
    pub seed: u64,
}

/// (original accuracy, edit accuracy, consistency) as (correct, total).
fn point(sets: &[&SetScore], edit_type: Option<&str>) -> [(usize, usize); 3] {
    let mut m = [(0, 0); 3];
    for s in sets {
        let edits: Vec<bool> = s
            .edits
            .iter()
            .filter(|(t, _)| edit_type.is_none_or(|w| w == t))
            .map(|(_, ok)| *ok)
            .collect();
        if edits.is_empty() {
            continue;
        }
        m[0].1 += 1;
        m[0].0 += usize::from(s.original);
        m[1].1 += edits.len();
        m[1].0 += edits.iter().filter(|x| **x).count();
        m[2].1 += 1;
        m[2].0 += usize::from(s.original && edits.iter().all(|x| *x));
    }
    m
}

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn ratio((c, t): (usize, usize)) -> Option<f64> {
    (t > 0).then(|| c as f64 / t as f64)
}

fn scores(sets: &[&SetScore], edit_type: Option<&str>, b: usize, seed: u64) -> Scores {
    let p = point(sets, edit_type);
    let mut samples: [Vec<f64>; 3] = Default::default();
    if !sets.is_empty() && b > 0 {
        let mut rng = Lcg(seed ^ 0x5851_f42d_4c95_7f2d);
        for _ in 0..b {
            let resampled: Vec<&SetScore> = (0..sets.len())
                .map(|_| sets[rng.below(sets.len())])
                .collect();
            let q = point(&resampled, edit_type);
            for k in 0..3 {
                if let Some(r) = ratio(q[k]) {
                    samples[k].push(r);
                }
            }
        }
    }
    let ci = |v: &mut Vec<f64>| -> Option<(f64, f64)> {
        if v.len() < 2 {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some((at(0.025), at(0.975)))
    };
    let [mut a, mut e, mut c] = samples;
    Scores {
        original_accuracy: Metric {
            value: ratio(p[0]),
            n: p[0].1,
            ci95: ci(&mut a),
        },
        edit_accuracy: Metric {
            value: ratio(p[1]),
            n: p[1].1,
            ci95: ci(&mut e),
        },
        consistency: Metric {
            value: ratio(p[2]),
            n: p[2].1,
            ci95: ci(&mut c),
        },
    }
}

pub fn evaluate(
    pairs: &[PairRow],
    predictions: &HashMap<String, String>,
    b: usize,
    seed: u64,
) -> EvalReport {
    // Contrast sets by source, in first-seen order.
    let mut order: Vec<&str> = Vec::new();
    let mut by_source: HashMap<&str, Vec<&PairRow>> = HashMap::new();
    for p in pairs {
        by_source
            .entry(&p.source_id)
            .or_insert_with(|| {
                order.push(&p.source_id);
                Vec::new()
            })
            .push(p);
    }
    let mut used = 0usize;
    let mut missing = Vec::new();
    let mut no_gold = 0usize;
    let mut sets = Vec::new();
    let mut incomplete = 0usize;
    for sid in &order {
        let members = &by_source[sid];
        let first = members[0];
        let Some(gold_o) = first.original_label.as_deref() else {
            no_gold += members.len();
            continue;
        };
        let mut complete = true;
        let original = match predictions.get(*sid) {
            Some(p) => {
                used += 1;
                same_label(p, gold_o)
            }
            None => {
                missing.push(sid.to_string());
                complete = false;
                false
            }
        };
        let mut edits = Vec::new();
        for p in members {
            let gold = match (&p.edited_label, p.relation.as_str()) {
                (Some(l), _) => l.as_str(),
                (None, "invariant") => gold_o,
                (None, _) => {
                    no_gold += 1;
                    continue;
                }
            };
            match predictions.get(&p.pair_id) {
                Some(pred) => {
                    used += 1;
                    edits.push((p.edit_type.clone(), same_label(pred, gold)));
                }
                None => {
                    missing.push(p.pair_id.clone());
                    complete = false;
                }
            }
        }
        if !complete {
            incomplete += 1;
            continue;
        }
        if !edits.is_empty() {
            sets.push(SetScore {
                task: first.task.clone(),
                original,
                edits,
            });
        }
    }
    let all: Vec<&SetScore> = sets.iter().collect();
    let mut by_task = BTreeMap::new();
    let tasks: std::collections::BTreeSet<&str> = sets.iter().map(|s| s.task.as_str()).collect();
    for t in tasks {
        let subset: Vec<&SetScore> = sets.iter().filter(|s| s.task == t).collect();
        by_task.insert(t.to_string(), scores(&subset, None, b, seed));
    }
    let mut by_edit_type = BTreeMap::new();
    let types: std::collections::BTreeSet<&str> = sets
        .iter()
        .flat_map(|s| s.edits.iter().map(|(t, _)| t.as_str()))
        .collect();
    for t in types {
        by_edit_type.insert(t.to_string(), scores(&all, Some(t), b, seed));
    }
    EvalReport {
        contrast_sets: order.len(),
        complete_sets: sets.len(),
        incomplete_sets: incomplete,
        missing_predictions: missing.len(),
        missing_examples: missing.into_iter().take(10).collect(),
        pairs_without_gold: no_gold,
        unused_predictions: predictions.len().saturating_sub(used),
        overall: scores(&all, None, b, seed),
        by_task,
        by_edit_type,
        bootstrap: b,
        seed,
    }
}

fn fmt_metric(m: &Metric) -> String {
    match (m.value, m.ci95) {
        (Some(v), Some((lo, hi))) => format!("{v:.3} [{lo:.3}, {hi:.3}] (n={})", m.n),
        (Some(v), None) => format!("{v:.3} (n={})", m.n),
        _ => "n/a".to_string(),
    }
}

pub fn run(args: EvalArgs) -> anyhow::Result<Exit> {
    let mut pairs = load_pairs(&args.dir, false)?;
    // Reviews bring labels back: a question's new answer, an uncertain
    // pair's label. Pairs still without one are not scored (and counted).
    let reviewed = args.dir.join(crate::review::REVIEWED_DIR);
    if args.reviewed_only || reviewed.join("part-00000.parquet").exists() {
        let verdicts = read_verdicts(&args.dir)?;
        for p in &mut pairs {
            if let Some(r) = verdicts.get(&p.pair_id)
                && r.verdict != "reject"
                && r.edited_label.is_some()
            {
                p.edited_label = r.edited_label.clone();
            }
        }
        if args.reviewed_only {
            pairs.retain(|p| {
                verdicts
                    .get(&p.pair_id)
                    .is_some_and(|r| r.verdict == "accept" || r.verdict == "fix")
            });
        }
    }
    let predictions = read_predictions(&args.predictions)?;
    let r = evaluate(&pairs, &predictions, args.bootstrap, args.seed);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(Exit::Success);
    }
    println!(
        "contrast sets: {} ({} complete, {} missing predictions: {} predictions missing)",
        r.contrast_sets, r.complete_sets, r.incomplete_sets, r.missing_predictions
    );
    if !r.missing_examples.is_empty() {
        println!("  first missing ids: {}", r.missing_examples.join(", "));
    }
    if r.pairs_without_gold > 0 {
        println!(
            "  {} pair(s) have no gold label and are not scored",
            r.pairs_without_gold
        );
    }
    let table = |name: &str, s: &Scores| {
        println!(
            "  {name:<18} originals {}  edits {}  consistency {}",
            fmt_metric(&s.original_accuracy),
            fmt_metric(&s.edit_accuracy),
            fmt_metric(&s.consistency)
        );
    };
    println!(
        "95% intervals: percentile bootstrap over contrast sets ({} resamples)",
        r.bootstrap
    );
    table("overall", &r.overall);
    for (t, s) in &r.by_task {
        table(&format!("task {t}"), s);
    }
    for (t, s) in &r.by_edit_type {
        table(&format!("type {t}"), s);
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_predictions_compare_as_one_function_says() {
        // "True." (a dataset's spelling) and "true" (a model's) are the
        // same label; so are " FALSE" and "false".
        let pair = |id: &str, label: &str| PairRow {
            pair_id: id.into(),
            source_id: "s".into(),
            task: "claim".into(),
            original_label: Some("True.".into()),
            edited_label: Some(label.into()),
            relation: "flip".into(),
            edit_type: "negation".into(),
            ..PairRow::default()
        };
        let pairs = vec![pair("p1", " FALSE")];
        let predictions: HashMap<String, String> = [
            ("s".to_string(), "true".to_string()),
            ("p1".to_string(), "false".to_string()),
        ]
        .into();
        let r = evaluate(&pairs, &predictions, 0, 0);
        assert_eq!(r.overall.original_accuracy.value, Some(1.0));
        assert_eq!(r.overall.edit_accuracy.value, Some(1.0));
        assert_eq!(r.overall.consistency.value, Some(1.0));
    }
}
