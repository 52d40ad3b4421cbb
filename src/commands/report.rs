//! `foil report DIR`: one self-contained HTML page (inline CSS, SVG and a
//! few lines of script; nothing fetched) — the yield funnel, histograms of
//! similarity and edit distance for accepted vs rejected pairs, accepted
//! pairs per edit type, and sample pairs with word-level diffs. It opens
//! from disk with no server.

use super::Exit;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use serde::Serialize;

use crate::cli::ReportArgs;
use crate::review::{PairRow, load_pairs};
use crate::sink::Manifest;
use crate::text::{diff_html, html_escape as esc};

const ACCEPTED: &str = "#2f855a";
const REJECTED: &str = "#c05621";

/// A histogram of two series over shared bins, as SVG.
fn histogram(title: &str, bins: &[(String, usize, usize)]) -> String {
    let (w, h, pad) = (560.0, 220.0, 34.0);
    let max = bins
        .iter()
        .map(|(_, a, r)| (*a).max(*r))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = bins.len().max(1) as f64;
    let bw = (w - 2.0 * pad) / n;
    let mut s = format!(
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    let _ = write!(
        s,
        r##"<line x1="{pad}" y1="{y}" x2="{x2}" y2="{y}" stroke="#888"/>"##,
        y = h - pad,
        x2 = w - pad
    );
    for (i, (label, a, r)) in bins.iter().enumerate() {
        let x = pad + i as f64 * bw;
        for (k, (count, color)) in [(*a, ACCEPTED), (*r, REJECTED)].iter().enumerate() {
            let bh = (*count as f64 / max) * (h - 2.0 * pad);
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}: {count}</title></rect>"#,
                x + 1.0 + k as f64 * (bw - 2.0) / 2.0,
                h - pad - bh,
                ((bw - 2.0) / 2.0).max(0.5),
                bh,
                esc(label),
            );
        }
        if bins.len() <= 12 || i % (bins.len() / 10).max(1) == 0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#444">{}</text>"##,
                x + bw / 2.0,
                h - pad + 14.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        s,
        r##"<text x="{pad}" y="14" font-size="11" fill="#444">max {max}</text></svg></figure>"##
    );
    s
}

fn sim_bins(pairs: &[PairRow]) -> Vec<(String, usize, usize)> {
    let mut bins: Vec<(String, usize, usize)> = (0..20)
        .map(|i| (format!("{:.2}", i as f64 / 20.0), 0, 0))
        .collect();
    for p in pairs {
        if let Some(s) = p.similarity {
            let b = ((s.clamp(0.0, 1.0) * 20.0) as usize).min(19);
            if p.reject_stage.is_some() {
                bins[b].2 += 1;
            } else {
                bins[b].1 += 1;
            }
        }
    }
    bins
}

fn edit_bins(pairs: &[PairRow]) -> Vec<(String, usize, usize)> {
    let max = pairs
        .iter()
        .filter_map(|p| p.word_edits)
        .fold(0.0f64, f64::max)
        .min(30.0) as usize;
    let mut bins: Vec<(String, usize, usize)> = (0..=max)
        .map(|i| {
            let label = if i == 30 {
                "30+".to_string()
            } else {
                i.to_string()
            };
            (label, 0, 0)
        })
        .collect();
    for p in pairs {
        if let Some(e) = p.word_edits {
            let b = (e.max(0.0) as usize).min(max);
            if p.reject_stage.is_some() {
                bins[b].2 += 1;
            } else {
                bins[b].1 += 1;
            }
        }
    }
    bins
}

/// The page's template; everything in it is escaped unless marked `safe`
/// (the SVG histograms and the word diffs, built escaped here).
const TEMPLATE: &str = include_str!("report.html");

/// Everything the template shows.
#[derive(Serialize)]
struct Page<'a> {
    title: String,
    status: &'a str,
    counts: &'a crate::sink::manifest::Counts,
    foil_version: &'a str,
    duration: String,
    accepted_color: &'static str,
    rejected_color: &'static str,
    funnel: Vec<FunnelRow<'a>>,
    similarity: Option<String>,
    word_edits: Option<String>,
    edit_types: Vec<TypeRow<'a>>,
    samples: Vec<SampleRow<'a>>,
}

#[derive(Serialize)]
struct FunnelRow<'a> {
    stage: &'a str,
    unit: &'a str,
    in_: u64,
    out: u64,
    width: String,
    reasons: String,
    failed: u64,
}

#[derive(Serialize)]
struct TypeRow<'a> {
    name: &'a str,
    n: u64,
    width: String,
}

#[derive(Serialize)]
struct SampleRow<'a> {
    class: &'static str,
    edit_type: &'a str,
    original: &'a str,
    diff: String,
    original_label: &'a str,
    edited_label: &'a str,
    similarity: String,
    status: String,
}

/// Up to `samples` pairs, accepted first then rejected (half each), taken
/// round-robin over edit types so every type shows.
fn pick_samples(pairs: &[PairRow], samples: usize) -> Vec<&PairRow> {
    let mut by_type: BTreeMap<(bool, &str), Vec<&PairRow>> = BTreeMap::new();
    for p in pairs {
        by_type
            .entry((p.reject_stage.is_some(), p.edit_type.as_str()))
            .or_default()
            .push(p);
    }
    let mut shown = Vec::new();
    for rejected in [false, true] {
        let budget = if rejected {
            samples / 2
        } else {
            samples - samples / 2
        };
        let groups: Vec<&Vec<&PairRow>> = by_type
            .iter()
            .filter(|((r, _), _)| *r == rejected)
            .map(|(_, v)| v)
            .collect();
        let mut round = 0;
        let mut taken = 0;
        while taken < budget {
            let mut any = false;
            for g in &groups {
                if taken < budget
                    && let Some(p) = g.get(round)
                {
                    shown.push(*p);
                    taken += 1;
                    any = true;
                }
            }
            if !any {
                break;
            }
            round += 1;
        }
    }
    shown
}

pub fn render(m: &Manifest, pairs: &[PairRow], samples: usize) -> anyhow::Result<String> {
    let top = m.funnel.iter().map(|s| s.in_).max().unwrap_or(1).max(1) as f64;
    let funnel: Vec<FunnelRow> = m
        .funnel
        .iter()
        .map(|s| FunnelRow {
            stage: &s.stage,
            unit: &s.unit,
            in_: s.in_,
            out: s.out,
            width: format!("{:.0}", 240.0 * s.out as f64 / top),
            reasons: s
                .rejected
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            failed: s.failed,
        })
        .collect();
    let c = &m.counts;
    let most = c
        .accepted_by_edit_type
        .values()
        .max()
        .copied()
        .unwrap_or(1)
        .max(1) as f64;
    let edit_types: Vec<TypeRow> = c
        .accepted_by_edit_type
        .iter()
        .map(|(t, n)| TypeRow {
            name: t,
            n: *n,
            width: format!("{:.0}", 300.0 * *n as f64 / most),
        })
        .collect();
    let samples: Vec<SampleRow> = pick_samples(pairs, samples)
        .into_iter()
        .map(|p| SampleRow {
            class: if p.reject_stage.is_some() {
                "rejected"
            } else {
                "accepted"
            },
            edit_type: &p.edit_type,
            original: &p.original,
            diff: diff_html(&p.original, &p.edited),
            original_label: p.original_label.as_deref().unwrap_or("–"),
            edited_label: p.edited_label.as_deref().unwrap_or("–"),
            similarity: p.similarity.map_or("–".into(), |s| format!("{s:.3}")),
            status: p.status(),
        })
        .collect();
    let similarity = pairs
        .iter()
        .any(|p| p.similarity.is_some())
        .then(|| histogram("Embedding similarity (cosine)", &sim_bins(pairs)));
    let word_edits = pairs
        .iter()
        .any(|p| p.word_edits.is_some())
        .then(|| histogram("Word edits", &edit_bins(pairs)));
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("report.html", TEMPLATE)?;
    let page = Page {
        title: format!(
            "foil report — {} ({})",
            m.task,
            m.config.name.as_deref().unwrap_or("run")
        ),
        status: &m.status,
        counts: c,
        foil_version: &m.foil_version,
        duration: format!("{:.1}", m.duration_s),
        accepted_color: ACCEPTED,
        rejected_color: REJECTED,
        funnel,
        similarity,
        word_edits,
        edit_types,
        samples,
    };
    let html = env
        .get_template("report.html")?
        .render(minijinja::value::Serde(&page))?;
    Ok(html + "\n")
}

pub fn run(args: ReportArgs) -> anyhow::Result<Exit> {
    let manifest = Manifest::read(&args.dir).map_err(|e| {
        crate::UsageError::new(format!(
            "`{}` is not a foil output folder (manifest.json: {e})",
            args.dir.display()
        ))
    })?;
    let pairs = load_pairs(&args.dir, true)?;
    let html = render(&manifest, &pairs, args.samples)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("report.html"));
    crate::files::write_atomic(&out, html.as_bytes())
        .with_context(|| format!("writing `{}`", out.display()))?;
    println!("foil: report written to `{}`", out.display());
    Ok(Exit::Success)
}
