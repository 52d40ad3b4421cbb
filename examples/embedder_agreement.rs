//! How well the distilled static embedder stands in for the sentence model
//! in the similarity band. For each real contrast set (JSONL: `original`,
//! `edited`; two-field NLI texts joined with ` ||| `), the texts the
//! similarity filter embeds for each pair are scored by both embedders,
//! and printed per set:
//!
//! - **agreement**: the share of pairs on which both make the same
//!   accept/reject decision at the task's band — the distilled embedder
//!   alone, and cascade scoring (the model asked near the band's edges,
//!   with the share of pairs it was asked for);
//! - **Spearman**: the rank correlation of the two scores;
//! - the same for *unrelated* pairs (each original against the original
//!   half the set away), the kind of edit the band exists to reject.
//!
//!   cargo run --release --example embedder_agreement -- TASK=FILE.jsonl ...
//!
//! The sentence model is the one in `$FOIL_MODEL_DIR` / foil's cache, in
//! f32. A second table compares the same model in int8 (`--precision
//! int8`) with it: decision agreement on real and unrelated pairs, the
//! largest change of a band score, and texts/s of each.

use std::io::BufRead;
use std::time::Instant;

use foil::config::Precision;
use foil::embed::distilled::StaticEmbedder;
use foil::embed::local::{SentenceModel, default_model_dir, weights_sha256};
use foil::filter::similarity::{band_score, needs_model};
use foil::text::cosine;

/// The texts the similarity filter compares for one pair: the edited field
/// alone, or (when the premise changed too) hypothesis and premise.
fn filter_texts(original: &str, edited: &str) -> (String, String) {
    match (original.split_once(" ||| "), edited.split_once(" ||| ")) {
        (Some((p, h)), Some((ep, eh))) if p != ep => (format!("{h}\n{p}"), format!("{eh}\n{ep}")),
        (Some((_, h)), Some((_, eh))) => (h.to_string(), eh.to_string()),
        _ => (original.to_string(), edited.to_string()),
    }
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

struct Scores {
    exact: Vec<f64>,
    fast: Vec<f64>,
}

fn score(
    model: &SentenceModel,
    fast: &StaticEmbedder,
    pairs: &[(String, String)],
) -> (Scores, f64, f64) {
    let (exact, exact_rate) = model_scores(model, pairs);
    let texts: Vec<String> = pairs
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let t = Instant::now();
    let f = fast.embed_texts(&texts).expect("static embedder");
    let fast_rate = texts.len() as f64 / t.elapsed().as_secs_f64();
    let fast = f
        .chunks(2)
        .map(|c| band_score(cosine(&c[0], &c[1])))
        .collect();
    (Scores { exact, fast }, exact_rate, fast_rate)
}

struct Agreement {
    alone: f64,
    cascade: f64,
    asked: f64,
    kept_exact: usize,
    kept_fast: usize,
}

fn agreement(s: &Scores, min: f64, max: f64) -> Agreement {
    let keep = |x: f64| x >= min && x <= max;
    let unsure = |f: f64| needs_model(min, max, f);
    let n = s.exact.len() as f64;
    let pairs = || s.exact.iter().zip(&s.fast);
    let same = pairs().filter(|(a, b)| keep(**a) == keep(**b)).count();
    let same_cascade = pairs()
        .filter(|&(&a, &b)| keep(a) == keep(if unsure(b) { a } else { b }))
        .count();
    Agreement {
        alone: same as f64 / n,
        cascade: same_cascade as f64 / n,
        asked: s.fast.iter().filter(|b| unsure(**b)).count() as f64 / n,
        kept_exact: s.exact.iter().filter(|a| keep(**a)).count(),
        kept_fast: s.fast.iter().filter(|b| keep(**b)).count(),
    }
}

/// Band scores of `pairs` by `model`, and texts/s.
fn model_scores(model: &SentenceModel, pairs: &[(String, String)]) -> (Vec<f64>, f64) {
    let texts: Vec<String> = pairs
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let t = Instant::now();
    let v = model.embed(&texts, 32).expect("sentence model");
    let rate = texts.len() as f64 / t.elapsed().as_secs_f64();
    let scores = v
        .chunks(2)
        .map(|c| band_score(cosine(&c[0], &c[1])))
        .collect();
    (scores, rate)
}

/// One row of the int8 table: how the int8 model's decisions and scores
/// compare with the f32 model's on real and unrelated pairs.
fn int8_row(
    name: &str,
    int8: &SentenceModel,
    (min, max): (f64, f64),
    sets: [(&[(String, String)], &Scores); 2],
    f32_rate: f64,
) -> String {
    let keep = |x: f64| x >= min && x <= max;
    let mut cells = Vec::new();
    let mut worst = 0f64;
    let mut rate = 0.0;
    for (pairs, exact) in sets {
        let (scores, r) = model_scores(int8, pairs);
        rate = r;
        let same = scores
            .iter()
            .zip(&exact.exact)
            .filter(|(a, b)| keep(**a) == keep(**b))
            .count();
        worst = scores
            .iter()
            .zip(&exact.exact)
            .fold(worst, |w, (a, b)| w.max((a - b).abs()));
        cells.push(format!("{same} / {}", scores.len()));
    }
    format!(
        "| {name} | {} | {} | {worst:.4} | {f32_rate:.0} / {rate:.0} |",
        cells[0], cells[1]
    )
}

fn main() {
    let dir = default_model_dir();
    let model = SentenceModel::load(&dir).expect("scripts/fetch-model first");
    let int8 = SentenceModel::load_with(&dir, Precision::Int8).expect("the model in int8");
    let mut int8_rows = Vec::new();
    let sha = weights_sha256(&dir).expect("the model's weights");
    let fast = StaticEmbedder::for_model(&dir, &sha).expect("distilled embedder");
    println!(
        "| set | task | band | pairs | agreement: distilled / cascade (model asked) | kept: model / distilled | Spearman: real / real + unrelated | unrelated pairs: agreement distilled / cascade (model asked) | unrelated kept: model / distilled | texts/s: model / distilled |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for arg in std::env::args().skip(1) {
        let (task, path) = arg.split_once('=').expect("TASK=FILE.jsonl");
        let preset = foil::tasks::preset(task).expect("a task name");
        let (min, max) = (preset.filters.similarity_min, preset.filters.similarity_max);
        let mut originals = Vec::new();
        let mut pairs = Vec::new();
        let file = std::fs::File::open(path).expect("set file");
        for line in std::io::BufReader::new(file).lines() {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            let (o, e) = (
                v["original"].as_str().unwrap_or_default(),
                v["edited"].as_str().unwrap_or_default(),
            );
            pairs.push(filter_texts(o, e));
            originals.push(filter_texts(o, o).0);
        }
        let n = originals.len();
        let unrelated: Vec<(String, String)> = (0..n)
            .map(|i| (originals[i].clone(), originals[(i + n / 2) % n].clone()))
            .filter(|(a, b)| a != b)
            .collect();
        let (real, exact_rate, fast_rate) = score(&model, &fast, &pairs);
        let (other, _, _) = score(&model, &fast, &unrelated);
        if let Some(dump) = std::env::var_os("AGREEMENT_DUMP") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dump)
                .unwrap();
            for (kind, s) in [("real", &real), ("unrelated", &other)] {
                for (a, b) in s.exact.iter().zip(&s.fast) {
                    writeln!(f, "{path}\t{task}\t{kind}\t{a}\t{b}").unwrap();
                }
            }
        }
        let name = std::path::Path::new(path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        int8_rows.push(int8_row(
            &name,
            &int8,
            (min, max),
            [(&pairs, &real), (&unrelated, &other)],
            exact_rate,
        ));
        let a = agreement(&real, min, max);
        let u = agreement(&other, min, max);
        println!(
            "| {name} | {task} | [{min}, {max}] | {} | {:.3} / {:.3} ({:.2}) | {} / {} | {:.3} / {:.3} | {:.3} / {:.3} ({:.2}) | {} / {} | {exact_rate:.0} / {fast_rate:.0} |",
            pairs.len(),
            a.alone,
            a.cascade,
            a.asked,
            a.kept_exact,
            a.kept_fast,
            spearman(&real.exact, &real.fast),
            spearman(
                &[&real.exact[..], &other.exact[..]].concat(),
                &[&real.fast[..], &other.fast[..]].concat()
            ),
            u.alone,
            u.cascade,
            u.asked,
            u.kept_exact,
            u.kept_fast,
        );
    }
    println!();
    println!(
        "| set | int8 decision = f32's: real pairs | unrelated pairs | largest score change | texts/s: f32 / int8 |"
    );
    println!("|---|---|---|---|---|");
    for row in int8_rows {
        println!("{row}");
    }
}
