//! Near-duplicate dedup throughput: foil's MinHash LSH (the `near_dedup`
//! stage's code) over a file of short texts, one per line, streamed in
//! order like the sink does. Prints texts/s and writes the 0-based line
//! numbers flagged as near-duplicates of an earlier line to OUT.
//!
//!   cargo run --release --example bench_minhash -- TEXTS.txt OUT.txt [INDEX_DIR MIB]
//!
//! With INDEX_DIR and MIB the index holds at most MIB MiB in memory and
//! moves older entries to disk in INDEX_DIR (as a run does past its
//! `[dedup] index_memory_mib` share).

use std::io::{BufRead, Write};
use std::time::Instant;

use foil::dedup::near::{NearDedup, NearDedupConfig};
use foil::record::Candidate;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (input, out) = (&args[1], &args[2]);
    let texts: Vec<String> = std::io::BufReader::new(std::fs::File::open(input).unwrap())
        .lines()
        .map(|l| l.unwrap())
        .collect();
    let mut near = NearDedup::new(NearDedupConfig::default());
    if let (Some(dir), Some(mib)) = (args.get(3), args.get(4)) {
        near = near.spill_to(
            std::path::Path::new(dir),
            mib.parse::<usize>().unwrap() << 20,
        );
    }
    let template = Candidate::blank();
    let start = Instant::now();
    let mut flagged = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let mut c = [Candidate {
            pair_id: format!("{i:016x}"),
            edited: t.clone(),
            ..template.clone()
        }];
        near.check(i as u64, &mut c, |_| None).unwrap();
        if c[0].is_rejected() {
            flagged.push(i);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    for i in &flagged {
        writeln!(f, "{i}").unwrap();
    }
    println!(
        "foil minhash ({}): {} texts in {secs:.2} s = {:.0} texts/s; {} flagged",
        if near.on_disk() {
            "index on disk"
        } else {
            "index in memory"
        },
        texts.len(),
        texts.len() as f64 / secs,
        flagged.len()
    );
}
