//! The distribution of real contrast edits under foil's edit measure: for
//! each JSONL file of pairs (`original`, `edited`, joined multi-field texts
//! split at ` ||| `), per changed field, the field's length, the edit
//! operations, the changed words and the share of content words kept —
//! as percentiles, with the share each task's default bounds would keep.
//! This is how the defaults in `src/tasks/mod.rs` were chosen
//! (`scripts/bench-quality` runs it).
//!
//!   cargo run --release --example edit_stats -- TASK=FILE.jsonl ...
//!
//! With `EDIT_STATS_SHOW=1` each pair the task's bounds reject is printed
//! to stderr with the reason.

use std::io::BufRead;

use foil::filter::edit_measure::EditMeasure;

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

fn main() {
    // EDIT_STATS_SHOW=1 prints each pair the task's bounds reject, with why.
    let show = std::env::var_os("EDIT_STATS_SHOW").is_some();
    println!(
        "| set | task | fields | words p50/p90 | ops p50/p90/p99/max | changed words p50/p90/p99 | \
         related share p1/p2/p5 | kept by task bounds |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for arg in std::env::args().skip(1) {
        let (task, path) = arg.split_once('=').expect("TASK=FILE");
        let preset = foil::tasks::preset(task).expect("known task");
        let bounds = preset.filters.edit;
        let file = std::fs::File::open(path).expect("open");
        let (mut words, mut ops, mut changed, mut kept) = (vec![], vec![], vec![], vec![]);
        let (mut pairs, mut pass) = (0usize, 0usize);
        for line in std::io::BufReader::new(file).lines() {
            let line = line.expect("read");
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            let (o, e) = (
                v["original"].as_str().unwrap_or_default(),
                v["edited"].as_str().unwrap_or_default(),
            );
            let m = EditMeasure::of([("text", o, e)]);
            pairs += 1;
            match m.check(&bounds) {
                None => pass += 1,
                Some((reason, detail)) if show => {
                    eprintln!("{reason}: {detail}\n  {o}\n  {e}");
                }
                Some(_) => {}
            }
            for f in m.changed() {
                words.push(f.original_words as f64);
                ops.push(f.ops.len() as f64);
                changed.push(f.changed_words() as f64);
                kept.push(f.related_share);
            }
        }
        let name = std::path::Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "| {name} | {task} | {} | {:.0}/{:.0} | {:.0}/{:.0}/{:.0}/{:.0} | {:.0}/{:.0}/{:.0} | \
             {:.2}/{:.2}/{:.2} | {pass}/{pairs} |",
            words.len(),
            pct(&mut words, 0.5),
            pct(&mut words, 0.9),
            pct(&mut ops, 0.5),
            pct(&mut ops, 0.9),
            pct(&mut ops, 0.99),
            pct(&mut ops, 1.0),
            pct(&mut changed, 0.5),
            pct(&mut changed, 0.9),
            pct(&mut changed, 0.99),
            pct(&mut kept, 0.01),
            pct(&mut kept, 0.02),
            pct(&mut kept, 0.05),
        );
    }
}
