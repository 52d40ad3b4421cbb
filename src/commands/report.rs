//! `foil report DIR`: one self-contained HTML page (inline CSS, SVG and a
//! few lines of script; nothing fetched) — the yield funnel, histograms of
//! similarity and edit distance for accepted vs rejected pairs, accepted
//! pairs per edit type, and sample pairs with word-level diffs. It opens
//! from disk with no server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;

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

pub fn render(m: &Manifest, pairs: &[PairRow], samples: usize) -> String {
    let mut h = String::new();
    let title = format!(
        "foil report — {} ({})",
        m.task,
        m.config.name.as_deref().unwrap_or("run")
    );
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1a202c;background:#fff}}
h1{{font-size:22px}} h2{{font-size:17px;margin-top:28px;border-bottom:1px solid #e2e8f0}}
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #edf2f7;padding:4px 6px;text-align:left;vertical-align:top}}
.bar{{display:inline-block;height:12px;background:{ACCEPTED}}} .num{{text-align:right;font-variant-numeric:tabular-nums}}
ins{{background:#c6f6d5;text-decoration:none}} del{{background:#fed7d7}}
.legend span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}}
figure{{display:inline-block;margin:8px 16px 8px 0}} figcaption{{font-weight:600}}
button{{margin-right:8px}} .muted{{color:#718096}}
</style></head><body data-ready="0">
<h1>{}</h1>"#,
        esc(&title),
        esc(&title)
    );
    let c = &m.counts;
    let _ = write!(
        h,
        r#"<p>Status: <b>{}</b> · {} sources read · <b>{}</b> accepted · {} rejected · {} quarantined · {} dead letters · foil {} · {:.1} s</p>"#,
        esc(&m.status),
        c.rows_read,
        c.accepted,
        c.rejected,
        c.quarantined,
        c.dead_letters,
        esc(&m.foil_version),
        m.duration_s
    );

    // Funnel.
    h.push_str("<h2>Yield funnel</h2><table><tr><th>stage</th><th>unit</th><th class=num>in</th><th class=num>out</th><th></th><th>rejected (reason: count)</th></tr>");
    let top = m.funnel.iter().map(|s| s.in_).max().unwrap_or(1).max(1) as f64;
    for s in &m.funnel {
        let reasons: Vec<String> = s
            .rejected
            .iter()
            .map(|(r, n)| format!("{}: {n}", esc(r)))
            .collect();
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td><td><span class=bar style="width:{:.0}px"></span></td><td>{}{}</td></tr>"#,
            esc(&s.stage),
            esc(&s.unit),
            s.in_,
            s.out,
            240.0 * s.out as f64 / top,
            reasons.join(", "),
            if s.failed > 0 {
                format!(" failed: {}", s.failed)
            } else {
                String::new()
            }
        );
    }
    h.push_str("</table>");

    // Histograms.
    let _ = write!(
        h,
        r#"<h2>Scores, accepted vs rejected</h2><p class=legend><span style="background:{ACCEPTED}"></span>accepted<span style="background:{REJECTED}"></span>rejected</p>"#
    );
    if pairs.iter().any(|p| p.similarity.is_some()) {
        h.push_str(&histogram(
            "Embedding similarity (cosine)",
            &sim_bins(pairs),
        ));
    } else {
        h.push_str("<p class=muted>No similarity scores (the similarity filter did not run).</p>");
    }
    if pairs.iter().any(|p| p.word_edits.is_some()) {
        h.push_str(&histogram("Word edits", &edit_bins(pairs)));
    }

    // Edit types.
    h.push_str("<h2>Accepted pairs per edit type</h2><table>");
    let most = c
        .accepted_by_edit_type
        .values()
        .max()
        .copied()
        .unwrap_or(1)
        .max(1) as f64;
    for (t, n) in &c.accepted_by_edit_type {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class=num>{n}</td><td><span class=bar style="width:{:.0}px"></span></td></tr>"#,
            esc(t),
            300.0 * *n as f64 / most
        );
    }
    h.push_str("</table>");

    // Samples: accepted first, then rejected, each spread over edit types.
    h.push_str(r#"<h2>Sample pairs</h2><p><button data-show="all">all</button><button data-show="accepted">accepted</button><button data-show="rejected">rejected</button> <span id=shown class=muted></span></p><table id=samples><tr><th>edit type</th><th>original → edited</th><th>labels</th><th class=num>sim</th><th>status</th></tr>"#);
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
    for p in shown {
        let status = esc(&p.status());
        let _ = write!(
            h,
            r#"<tr class="{}"><td>{}</td><td>{}<br>{}</td><td>{} → {}</td><td class=num>{}</td><td>{}</td></tr>"#,
            if p.reject_stage.is_some() {
                "rejected"
            } else {
                "accepted"
            },
            esc(&p.edit_type),
            esc(&p.original),
            diff_html(&p.original, &p.edited),
            esc(p.original_label.as_deref().unwrap_or("–")),
            esc(p.edited_label.as_deref().unwrap_or("–")),
            p.similarity.map_or("–".into(), |s| format!("{s:.3}")),
            status
        );
    }
    h.push_str("</table>");
    h.push_str(
        r#"<script>
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('#samples tr.accepted, #samples tr.rejected'));
  function show(which) {
    var n = 0;
    rows.forEach(function (r) {
      var on = which === 'all' || r.className === which;
      r.style.display = on ? '' : 'none';
      if (on) n++;
    });
    document.getElementById('shown').textContent = n + ' shown';
  }
  document.querySelectorAll('button[data-show]').forEach(function (b) {
    b.addEventListener('click', function () { show(b.getAttribute('data-show')); });
  });
  show('all');
  document.body.setAttribute('data-ready', '1');
})();
</script></body></html>
"#,
    );
    h
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::read(&args.dir).map_err(|e| {
        crate::UsageError::new(format!(
            "`{}` is not a foil output folder (manifest.json: {e})",
            args.dir.display()
        ))
    })?;
    let pairs = load_pairs(&args.dir, true)?;
    let html = render(&manifest, &pairs, args.samples);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dir.join("report.html"));
    let tmp = out.with_extension("html.tmp");
    std::fs::write(&tmp, html).with_context(|| format!("writing `{}`", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("writing `{}`", out.display()))?;
    println!("foil: report written to `{}`", out.display());
    Ok(ExitCode::SUCCESS)
}
