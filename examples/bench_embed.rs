//! Local embeddings throughput: foil's in-process all-MiniLM-L6-v2 (the
//! similarity filter's model code) over a file of sentences, one per line,
//! at a batch size. Prints sentences/s and writes the vectors (f32, little
//! endian, row after row) to OUT for the agreement check.
//!
//!   cargo run --release --example bench_embed -- SENTENCES.txt BATCH OUT.f32 [RUNS]
//!
//! `FOIL_PRECISION` (auto, int8 or f32; default auto) picks the
//! arithmetic, as `--precision` does for foil.

use std::io::Write;
use std::time::Instant;

use foil::config::Precision;
use foil::embed::local::{SentenceModel, default_model_dir};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let texts: Vec<String> = std::fs::read_to_string(&args[1])
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let batch: usize = args[2].parse().unwrap();
    let runs: usize = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(1);
    let precision = std::env::var("FOIL_PRECISION")
        .ok()
        .and_then(|p| Precision::from_name(&p))
        .unwrap_or_default();
    let model = SentenceModel::load_with(&default_model_dir(), precision)
        .expect("scripts/fetch-model first");
    // Warm up as the sentence-transformers side does (one batch).
    model
        .embed(&texts[..batch.min(texts.len())], batch)
        .unwrap();
    let mut vectors = Vec::new();
    for run in 0..runs {
        let start = Instant::now();
        vectors = model.embed(&texts, batch).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "foil candle {} run {run}: {} sentences, batch {batch}: {secs:.2} s = {:.0} sentences/s",
            model.precision(),
            texts.len(),
            texts.len() as f64 / secs
        );
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(&args[3]).unwrap());
    for v in &vectors {
        for x in v {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
}
