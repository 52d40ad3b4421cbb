//! Progress reporting: one bar per stage on a terminal, a plain log line
//! every few seconds otherwise (scheduled jobs write to files), nothing
//! with `--quiet` or `--json`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bars,
    Log,
    Off,
}

impl ProgressMode {
    /// Bars on a terminal, log lines otherwise, nothing when quiet.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            ProgressMode::Off
        } else if std::io::stderr().is_terminal() {
            ProgressMode::Bars
        } else {
            ProgressMode::Log
        }
    }
}

/// A counter per stage, shown as a bar or logged.
pub struct StageProgress {
    pub name: String,
    count: AtomicU64,
    bar: Option<ProgressBar>,
}

impl StageProgress {
    pub fn inc(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

pub struct Progress {
    mode: ProgressMode,
    multi: MultiProgress,
    pub stages: Vec<Arc<StageProgress>>,
}

impl Progress {
    pub fn new(mode: ProgressMode, stage_names: &[String]) -> Self {
        let multi = MultiProgress::with_draw_target(match mode {
            ProgressMode::Bars => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        let style =
            ProgressStyle::with_template("{prefix:>14} {spinner} {human_pos:>9} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let stages = stage_names
            .iter()
            .map(|name| {
                let bar = (mode == ProgressMode::Bars).then(|| {
                    let b = multi.add(ProgressBar::no_length());
                    b.set_style(style.clone());
                    b.set_prefix(name.clone());
                    b.enable_steady_tick(Duration::from_millis(200));
                    b
                });
                Arc::new(StageProgress {
                    name: name.clone(),
                    count: AtomicU64::new(0),
                    bar,
                })
            })
            .collect();
        Progress {
            mode,
            multi,
            stages,
        }
    }

    pub fn stage(&self, i: usize) -> Arc<StageProgress> {
        self.stages[i.min(self.stages.len() - 1)].clone()
    }

    /// For log mode: a task that prints the counters every `every`.
    pub fn spawn_logger(&self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if self.mode != ProgressMode::Log {
            return None;
        }
        let stages = self.stages.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let line: Vec<String> = stages
                    .iter()
                    .map(|s| format!("{} {}", s.name, s.get()))
                    .collect();
                // Plain lines for logs of scheduled jobs, whatever the log
                // level: a job that prints nothing for an hour looks dead.
                eprintln!("foil: progress: {}", line.join(", "));
            }
        }))
    }

    pub fn finish(&self) {
        for s in &self.stages {
            if let Some(b) = &s.bar {
                b.finish_and_clear();
            }
        }
        let _ = self.multi.clear();
    }
}
