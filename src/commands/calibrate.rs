//! `foil calibrate DIR`: how good each filter's accept decision is, judged
//! by the verdicts people gave (`DIR/reviewed/`), at a sweep of
//! thresholds — and the threshold that would have kept the most good pairs
//! while staying at a target precision.
//!
//! A reviewed pair is *good* when its verdict is `accept`; `reject` and
//! `fix` (not right as it stood) are *bad*. For a score and a threshold t a
//! filter accepts when the score passes t (`≥ t` for scores where higher
//! is better, `≤ t` where lower is); precision is good ÷ accepted, recall is
//! accepted good ÷ all good. Reviewing some rejected pairs too (`review
//! push --include-rejected`) is what lets calibration loosen a threshold.
//!
//! When an LLM judge scored the pairs (verify), it also reports how far the
//! judge agrees with people: per criterion, the judge's pass (score at or
//! above the run's threshold) against the people's accept, as accuracy and
//! Cohen's κ (agreement beyond what the two rates alone would give).

use super::Exit;
use serde::Serialize;

use crate::cli::CalibrateArgs;
use crate::review::{PairRow, load_pairs, read_verdicts};

/// (name, accept when higher?, score getter)
type Score = (&'static str, bool, fn(&PairRow) -> Option<f64>);

const SCORES: &[Score] = &[
    ("similarity (min)", true, |p| p.similarity),
    ("similarity (max)", false, |p| p.similarity),
    // The edit measure's bounds: `max_ops`, `ops_per_100_words`,
    // `max_changed_share`, `min_related_share`.
    ("edit_ops (max)", false, |p| p.edit_ops),
    ("edit_ops per 100 words (max)", false, |p| {
        let n = crate::text::words(&p.original).len().max(1);
        p.edit_ops.map(|o| o * 100.0 / n as f64)
    }),
    ("changed_share (max)", false, |p| p.changed_share),
    ("related_share (min)", true, |p| p.related_share),
    ("word_edits (max)", false, |p| p.word_edits),
    ("edit_ratio (max)", false, |p| p.edit_ratio),
    ("verify_relation (min)", true, |p| p.verify_relation),
    ("verify_label (min)", true, |p| p.verify_label),
    ("verify_fluent (min)", true, |p| p.verify_fluent),
    ("verify_minimal (min)", true, |p| p.verify_minimal),
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    pub threshold: f64,
    pub accepted: usize,
    pub good_accepted: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub score: String,
    /// Reviewed pairs that have this score.
    pub reviewed: usize,
    pub good: usize,
    pub sweep: Vec<Point>,
    /// The threshold keeping the most good pairs at the target precision.
    pub suggested: Option<Point>,
}

/// How far the judge's pass on one criterion agrees with people.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JudgeAgreement {
    pub criterion: String,
    /// `None` for all four together (each at its own threshold).
    pub threshold: Option<f64>,
    /// Reviewed pairs the judge scored.
    pub pairs: usize,
    pub accuracy: Option<f64>,
    /// Cohen's κ; `None` when both sides said the same thing throughout
    /// (chance agreement is then 1).
    pub kappa: Option<f64>,
}

/// Cohen's κ and accuracy of two yes/no raters over the same items.
pub fn kappa(pairs: &[(bool, bool)]) -> (Option<f64>, Option<f64>) {
    if pairs.is_empty() {
        return (None, None);
    }
    let n = pairs.len() as f64;
    let agree = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let a_yes = pairs.iter().filter(|(a, _)| *a).count() as f64 / n;
    let b_yes = pairs.iter().filter(|(_, b)| *b).count() as f64 / n;
    let chance = a_yes * b_yes + (1.0 - a_yes) * (1.0 - b_yes);
    let k = ((1.0 - chance).abs() > 1e-12).then(|| (agree - chance) / (1.0 - chance));
    (Some(agree), k)
}

/// The judge against people, per criterion and for all four together.
pub fn judge_agreement(pairs: &[(PairRow, bool)], thresholds: [f64; 4]) -> Vec<JudgeAgreement> {
    let scores = |p: &PairRow| {
        Some([
            p.verify_relation?,
            p.verify_label?,
            p.verify_fluent?,
            p.verify_minimal?,
        ])
    };
    let names = ["relation", "label", "fluent", "minimal"];
    let judged: Vec<([f64; 4], bool)> = pairs
        .iter()
        .filter_map(|(p, good)| scores(p).map(|s| (s, *good)))
        .collect();
    if judged.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let votes: Vec<(bool, bool)> = judged
            .iter()
            .map(|(s, good)| (s[i] >= thresholds[i], *good))
            .collect();
        let (accuracy, kappa) = kappa(&votes);
        out.push(JudgeAgreement {
            criterion: name.to_string(),
            threshold: Some(thresholds[i]),
            pairs: votes.len(),
            accuracy,
            kappa,
        });
    }
    let all: Vec<(bool, bool)> = judged
        .iter()
        .map(|(s, good)| (s.iter().zip(thresholds).all(|(s, t)| *s >= t), *good))
        .collect();
    let (accuracy, kappa) = kappa(&all);
    out.push(JudgeAgreement {
        criterion: "all four".to_string(),
        threshold: None,
        pairs: all.len(),
        accuracy,
        kappa,
    });
    out
}

pub fn calibrate(pairs: &[(PairRow, bool)], target: f64) -> Vec<Calibration> {
    let mut out = Vec::new();
    for (name, higher, get) in SCORES {
        let scored: Vec<(f64, bool)> = pairs
            .iter()
            .filter_map(|(p, good)| get(p).map(|s| (s, *good)))
            .collect();
        if scored.is_empty() {
            continue;
        }
        let good = scored.iter().filter(|(_, g)| *g).count();
        let mut thresholds: Vec<f64> = scored.iter().map(|(s, _)| *s).collect();
        thresholds.sort_by(f64::total_cmp);
        thresholds.dedup();
        let sweep: Vec<Point> = thresholds
            .iter()
            .map(|&t| {
                let pass = |s: f64| if *higher { s >= t } else { s <= t };
                let accepted = scored.iter().filter(|(s, _)| pass(*s)).count();
                let good_accepted = scored.iter().filter(|(s, g)| *g && pass(*s)).count();
                Point {
                    threshold: t,
                    accepted,
                    good_accepted,
                    precision: (accepted > 0).then(|| good_accepted as f64 / accepted as f64),
                    recall: (good > 0).then(|| good_accepted as f64 / good as f64),
                }
            })
            .collect();
        let suggested = sweep
            .iter()
            .filter(|p| p.precision.is_some_and(|x| x >= target))
            .max_by(|a, b| {
                a.good_accepted
                    .cmp(&b.good_accepted)
                    // Ties: the stricter threshold.
                    .then_with(|| {
                        if *higher {
                            a.threshold.total_cmp(&b.threshold)
                        } else {
                            b.threshold.total_cmp(&a.threshold)
                        }
                    })
            })
            .cloned();
        out.push(Calibration {
            score: name.to_string(),
            reviewed: scored.len(),
            good,
            sweep,
            suggested,
        });
    }
    out
}

fn pct(x: Option<f64>) -> String {
    x.map_or("  n/a".into(), |v| format!("{:5.1}%", v * 100.0))
}

pub fn run(args: CalibrateArgs) -> anyhow::Result<Exit> {
    if !(0.0..=1.0).contains(&args.target_precision) {
        return Err(crate::UsageError::new("--target-precision must be in [0, 1]").into());
    }
    let verdicts = read_verdicts(&args.dir)?;
    let pairs: Vec<(PairRow, bool)> = load_pairs(&args.dir, true)?
        .into_iter()
        .filter_map(|p| {
            let good = verdicts.get(&p.pair_id)?.verdict == "accept";
            Some((p, good))
        })
        .collect();
    if pairs.is_empty() {
        return Err(crate::UsageError::new(format!(
            "no reviewed pair of `{}` matches a pair in its shards",
            args.dir.display()
        ))
        .into());
    }
    let result = calibrate(&pairs, args.target_precision);
    let manifest = crate::sink::Manifest::read(&args.dir).ok();
    // Cascade scoring mixes two embedders' scores in one column: a
    // threshold swept across it means different things on either side of
    // the band's margins.
    let scorers = manifest
        .as_ref()
        .map_or(0, |m| m.counts.similarity_scored_by.len());
    if scorers > 1 {
        eprintln!(
            "foil: note: the similarity scores of `{}` come from {scorers} embedders (cascade \
             scoring); to calibrate the similarity band, score with one (`--scoring model`)",
            args.dir.display()
        );
    }
    // The thresholds the run judged with (0.5 each when it had no judge).
    let thresholds = manifest
        .and_then(|m| m.config.resolved_filters().ok())
        .and_then(|fs| {
            fs.into_iter().find_map(|f| match f {
                crate::config::FilterConfig::Verify(v) => {
                    Some([v.min_relation, v.min_label, v.min_fluent, v.min_minimal])
                }
                _ => None,
            })
        })
        .unwrap_or([0.5; 4]);
    let judge = judge_agreement(&pairs, thresholds);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "reviewed_pairs": pairs.len(),
                "target_precision": args.target_precision,
                "scores": result,
                "judge_agreement": judge,
            }))?
        );
        return Ok(Exit::Success);
    }
    println!(
        "{} reviewed pairs ({} accepted by people); target precision {:.0}%",
        pairs.len(),
        pairs.iter().filter(|(_, g)| *g).count(),
        args.target_precision * 100.0
    );
    for c in &result {
        println!("\n{} — {} reviewed, {} good", c.score, c.reviewed, c.good);
        println!("  threshold  accepted  precision  recall");
        // At most ~10 rows: evenly spaced through the sweep.
        let step = c.sweep.len().div_ceil(10).max(1);
        for p in c.sweep.iter().step_by(step) {
            println!(
                "  {:>9.4}  {:>8}  {:>9}  {:>6}",
                p.threshold,
                p.accepted,
                pct(p.precision),
                pct(p.recall)
            );
        }
        match &c.suggested {
            Some(p) => println!(
                "  suggested: {:.4} keeps {} good pairs at precision {} (recall {})",
                p.threshold,
                p.good_accepted,
                pct(p.precision).trim(),
                pct(p.recall).trim()
            ),
            None => println!("  no threshold reaches the target precision"),
        }
    }
    if !judge.is_empty() {
        println!("\nthe judge against people (judge passes vs people accept)");
        println!("  criterion   threshold  pairs  accuracy  Cohen's κ");
        for j in &judge {
            let t = j.threshold.map_or("—".to_string(), |t| format!("{t:.2}"));
            println!(
                "  {:<10}  {:>9}  {:>5}  {:>8}  {:>9}",
                j.criterion,
                t,
                j.pairs,
                pct(j.accuracy),
                j.kappa.map_or("n/a".to_string(), |k| format!("{k:.3}"))
            );
        }
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kappa_matches_a_hand_computed_case() {
        // 10 items: both yes 4, both no 3, judge yes/people no 2, judge
        // no/people yes 1. Agreement 0.7; judge yes 0.6, people yes 0.5;
        // chance 0.6·0.5 + 0.4·0.5 = 0.5; κ = (0.7 − 0.5) / 0.5 = 0.4.
        let mut v = vec![(true, true); 4];
        v.extend([(false, false); 3]);
        v.extend([(true, false); 2]);
        v.push((false, true));
        let (acc, k) = kappa(&v);
        assert!((acc.unwrap() - 0.7).abs() < 1e-12);
        assert!((k.unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(kappa(&[(true, true), (true, true)]).1, None);
    }

    #[test]
    fn the_judge_is_compared_per_criterion() {
        let p = |rel: f64| PairRow {
            verify_relation: Some(rel),
            verify_label: Some(0.9),
            verify_fluent: Some(0.9),
            verify_minimal: Some(0.9),
            ..PairRow::default()
        };
        let pairs = vec![
            (p(0.9), true),
            (p(0.2), false),
            (p(0.8), false),
            (p(0.1), true),
        ];
        let j = judge_agreement(&pairs, [0.5; 4]);
        assert_eq!(j[0].criterion, "relation");
        assert_eq!(j[0].accuracy, Some(0.5));
        // `label` passes everything: agreement is the people's accept rate
        // and κ is 0.
        assert_eq!(j[1].accuracy, Some(0.5));
        assert_eq!(j[1].kappa, Some(0.0));
        assert_eq!(j.last().unwrap().criterion, "all four");
    }

    #[test]
    fn the_sweep_counts_by_hand() {
        let p = |sim: f64| PairRow {
            similarity: Some(sim),
            ..PairRow::default()
        };
        // Good pairs at 0.6, 0.7, 0.8; bad at 0.5 and 0.9.
        let pairs = vec![
            (p(0.5), false),
            (p(0.6), true),
            (p(0.7), true),
            (p(0.8), true),
            (p(0.9), false),
        ];
        let c = calibrate(&pairs, 0.75);
        let min = &c[0];
        assert_eq!(min.score, "similarity (min)");
        // ≥ 0.6 accepts 4, 3 good: precision 0.75, recall 1.
        let at = min.sweep.iter().find(|x| x.threshold == 0.6).unwrap();
        assert_eq!((at.accepted, at.good_accepted), (4, 3));
        assert_eq!(at.precision, Some(0.75));
        assert_eq!(at.recall, Some(1.0));
        assert_eq!(min.suggested.as_ref().unwrap().threshold, 0.6);
        let max = &c[1];
        // ≤ 0.8 accepts 4, 3 good.
        assert_eq!(max.suggested.as_ref().unwrap().threshold, 0.8);
    }
}
