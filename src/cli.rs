//! Command-line definitions (clap) and nothing else; each subcommand's
//! behaviour is in `commands/<verb>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "foil",
    version,
    about = "Build contrast sets: minimal edits that flip a label, checked, deduplicated, written as Parquet"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors; no progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One-off run: a file in, a contrast set out, flags only.
    Generate(Box<GenerateArgs>),
    /// Run a pipeline file (the scheduled-job form of `generate`).
    Run(Box<RunArgs>),
    /// Parse and check a pipeline file without running it.
    Validate(ValidateArgs),
    /// Summarise an output folder: counts, funnel, sample pairs.
    Inspect(InspectArgs),
    /// Send pairs to people and bring their verdicts back.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Precision and recall of each filter's accept decision against the
    /// reviewed verdicts, over a sweep of thresholds.
    Calibrate(CalibrateArgs),
    /// Accuracy and contrast consistency of a model's predictions.
    Eval(EvalArgs),
    /// Write a self-contained HTML report of an output folder.
    Report(ReportArgs),
    /// Combine the worker folders of a sharded run: global exact and
    /// near-duplicate dedup, evenly sized shards, one manifest.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The run's output folder, holding worker-i-of-N/ folders.
    pub dir: PathBuf,
    /// Where the merged contrast set goes.
    #[arg(long)]
    pub into: PathBuf,
    /// Rows per merged shard (default: the pipeline's rows_per_shard).
    #[arg(long)]
    pub rows_per_shard: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Create (or reuse) a Label Studio project and import pairs as tasks.
    Push(ReviewPushArgs),
    /// Export annotations from Label Studio into DIR/reviewed/.
    Pull(ReviewPullArgs),
    /// Write pairs for other queues: csv, jsonl (spreadsheets) or argilla.
    Export(ReviewExportArgs),
    /// Read decisions back from a filled CSV/JSONL or an Argilla export.
    Import(ReviewImportArgs),
}

/// Which pairs to send for review.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Send at most this many pairs (default: all).
    #[arg(long)]
    pub sample: Option<usize>,
    /// How to choose them: stratified by edit type, or the lowest
    /// verification score (else similarity) first.
    #[arg(long, value_parser = ["stratified", "lowest-score"], default_value = "stratified")]
    pub by: String,
    /// Include pairs the filters rejected (to calibrate them).
    #[arg(long)]
    pub include_rejected: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct LabelStudioArgs {
    /// Label Studio base URL.
    #[arg(long = "label-studio", value_name = "URL")]
    pub url: String,
    /// Project title (created on push when missing).
    #[arg(long)]
    pub project: String,
    /// Environment variable holding the API token.
    #[arg(long, default_value = "LABEL_STUDIO_API_KEY")]
    pub token_env: String,
}

#[derive(Debug, Args)]
pub struct ReviewPushArgs {
    /// An output folder of `foil generate` or `foil run`.
    pub dir: PathBuf,
    #[command(flatten)]
    pub server: LabelStudioArgs,
    #[command(flatten)]
    pub sample: SampleArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReviewPullArgs {
    pub dir: PathBuf,
    #[command(flatten)]
    pub server: LabelStudioArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReviewExportArgs {
    pub dir: PathBuf,
    #[arg(long, value_parser = ["csv", "jsonl", "argilla"])]
    pub format: String,
    /// File (csv, jsonl) or folder (argilla) to write.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub sample: SampleArgs,
}

#[derive(Debug, Args)]
pub struct ReviewImportArgs {
    pub dir: PathBuf,
    /// A filled CSV or JSONL from `review export`, or Argilla records with
    /// responses (JSON or JSONL).
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    pub dir: PathBuf,
    /// Precision the suggested thresholds must reach.
    #[arg(long, default_value_t = 0.9)]
    pub target_precision: f64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A contrast set (output folder).
    pub dir: PathBuf,
    /// JSONL: `{"id": ..., "prediction": ...}`; an id equal to a source_id
    /// is the prediction on the original, one equal to a pair_id on that
    /// edit.
    #[arg(long)]
    pub predictions: PathBuf,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use only pairs people accepted or fixed (DIR/reviewed/).
    #[arg(long)]
    pub reviewed_only: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    pub dir: PathBuf,
    /// Where to write the page (default DIR/report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sample pairs shown in the table.
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Input file: .csv, .jsonl or .parquet.
    pub input: PathBuf,
    /// Task preset: question, caption, nli, claim or text.
    #[arg(long)]
    pub task: String,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Input format, when the extension does not tell.
    #[arg(long, value_parser = ["csv", "jsonl", "parquet"])]
    pub format: Option<String>,

    /// Column holding the text to edit (task field `text`).
    #[arg(long, help_heading = "Input mapping")]
    pub text_field: Option<String>,
    /// Column holding the label or answer (task field `label`).
    #[arg(long, help_heading = "Input mapping")]
    pub label_field: Option<String>,
    /// Column holding a stable id (default: a hash of the content).
    #[arg(long, help_heading = "Input mapping")]
    pub id_field: Option<String>,
    /// Any task field: FIELD=COLUMN (e.g. premise=sentence1). Repeatable.
    #[arg(
        long = "field",
        value_name = "FIELD=COLUMN",
        help_heading = "Input mapping"
    )]
    pub fields: Vec<String>,
    /// Pairs mode: the column holding an existing edit; generation is skipped.
    /// `FIELD=COLUMN` names the edited version of another task field (an NLI
    /// premise, a QA passage); repeat for each edited field.
    #[arg(long, value_name = "[FIELD=]COLUMN", help_heading = "Input mapping")]
    pub edited_field: Vec<String>,
    /// Pairs mode: the column holding the edit's label.
    #[arg(long, help_heading = "Input mapping")]
    pub edited_label_field: Option<String>,
    /// Pairs mode: the column holding the edit type.
    #[arg(long, help_heading = "Input mapping")]
    pub edit_type_field: Option<String>,
    /// Fail the run after more than this many bad rows (they are quarantined).
    #[arg(long, help_heading = "Input mapping")]
    pub max_bad_rows: Option<u64>,
    /// Longest accepted field, in bytes; longer ones are quarantined.
    #[arg(long, help_heading = "Input mapping")]
    pub max_field_bytes: Option<usize>,

    /// OpenAI-compatible base URL ending in /v1; switches to the LLM generator.
    #[arg(long, help_heading = "LLM generator", requires = "model")]
    pub llm_url: Option<String>,
    /// Model name for --llm-url.
    #[arg(long, help_heading = "LLM generator")]
    pub model: Option<String>,
    /// Environment variable holding the API key (may be unset for local servers).
    #[arg(long, help_heading = "LLM generator")]
    pub api_key_env: Option<String>,
    /// Candidates per source.
    #[arg(long, help_heading = "LLM generator")]
    pub n: Option<u32>,
    #[arg(long, help_heading = "LLM generator")]
    pub temperature: Option<f64>,
    #[arg(long, help_heading = "LLM generator")]
    pub seed: Option<u64>,
    /// Most tokens per reply (sent as `max_tokens`).
    #[arg(long, help_heading = "LLM generator")]
    pub max_completion_tokens: Option<u32>,
    /// Folder with <task>/system.jinja, user.jinja, schema.json.
    #[arg(long, help_heading = "LLM generator")]
    pub prompts_dir: Option<PathBuf>,
    /// Attempts per request on 429, 5xx and timeouts.
    #[arg(long, help_heading = "LLM generator")]
    pub max_attempts: Option<u32>,
    /// Seconds before a request times out.
    #[arg(long, help_heading = "LLM generator")]
    pub timeout: Option<f64>,

    /// Rules generator operations, comma separated (default: all).
    #[arg(long, value_delimiter = ',', help_heading = "Rules generator")]
    pub ops: Vec<String>,
    /// Most candidates one operation makes per source.
    #[arg(long, help_heading = "Rules generator")]
    pub max_per_op: Option<usize>,

    /// OpenAI-compatible base URL for embeddings (default: local model).
    #[arg(long, help_heading = "Similarity", requires = "embed_model")]
    pub embed_url: Option<String>,
    /// Model name for --embed-url.
    #[arg(long, help_heading = "Similarity")]
    pub embed_model: Option<String>,
    /// Environment variable holding the embedding endpoint's key.
    #[arg(long, help_heading = "Similarity")]
    pub embed_api_key_env: Option<String>,
    /// Local sentence-model folder (config.json, tokenizer.json, model.safetensors).
    #[arg(long, help_heading = "Similarity")]
    pub model_dir: Option<PathBuf>,
    /// Local model from a Hugging Face-style hub (owner/name), cached after the
    /// first download; the hub address comes from $HF_ENDPOINT.
    #[arg(long, help_heading = "Similarity", conflicts_with = "model_dir")]
    pub hub_model: Option<String>,
    /// The hub revision to fetch (a branch, tag or commit; pin a commit for
    /// a run that can be repeated). Each revision is cached on its own.
    #[arg(
        long,
        value_name = "REV",
        requires = "hub_model",
        help_heading = "Similarity"
    )]
    pub hub_revision: Option<String>,
    /// Who scores the band: `cascade` (default: the static embedder
    /// distilled from the local model, and the model itself for pairs near
    /// an edge of the band), `distilled` (static only) or `model` (the
    /// model for every pair: 194–486 texts/s in f32, 544–1,170 in int8, on
    /// two cores).
    #[arg(
        long,
        value_parser = ["cascade", "distilled", "model"],
        help_heading = "Similarity",
        conflicts_with = "embed_url"
    )]
    pub scoring: Option<String>,
    /// The local model's arithmetic: `auto` (default: 8-bit integer
    /// products where the CPU has VNNI instructions, f32 elsewhere), `int8`
    /// or `f32` (the checkpoint's own arithmetic).
    #[arg(
        long,
        value_parser = crate::config::Precision::NAMES,
        help_heading = "Similarity",
        conflicts_with = "embed_url"
    )]
    pub precision: Option<String>,
    /// Lower bound of the similarity band (default: the task's).
    #[arg(long, help_heading = "Similarity")]
    pub sim_min: Option<f64>,
    /// Upper bound of the similarity band (default: the task's).
    #[arg(long, help_heading = "Similarity")]
    pub sim_max: Option<f64>,
    /// Skip the similarity filter (no embedder needed).
    #[arg(long, help_heading = "Similarity")]
    pub no_similarity: bool,

    /// Edit operations allowed in a short field (default: the task's); long
    /// fields get more, by the task's ops per 100 words.
    #[arg(long, help_heading = "Edit measure")]
    pub max_edit_ops: Option<u32>,
    /// Further edit operations per 100 words of a field (default: the task's).
    #[arg(long, help_heading = "Edit measure")]
    pub ops_per_100_words: Option<f64>,
    /// Changed words as a share of a long field (default: the task's).
    #[arg(long, help_heading = "Edit measure")]
    pub max_changed_share: Option<f64>,
    /// Least share of the original's content words an edit keeps (default:
    /// the task's); below it the edit counts as an unrelated text.
    #[arg(long, help_heading = "Edit measure")]
    pub min_related_share: Option<f64>,
    /// Also cap word-level Levenshtein edits (off unless set).
    #[arg(long, help_heading = "Edit measure")]
    pub max_word_edits: Option<u32>,
    /// Also cap Levenshtein edits per original word (off unless set).
    #[arg(long, help_heading = "Edit measure")]
    pub max_edit_ratio: Option<f64>,

    /// Sources in flight per stage.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Rows per Parquet shard.
    #[arg(long)]
    pub rows_per_shard: Option<usize>,
    /// Do not write rejected pairs to rejected/.
    #[arg(long)]
    pub no_rejected: bool,
    /// Most requests per minute to the LLM endpoint.
    #[arg(long, help_heading = "LLM generator")]
    pub rpm: Option<f64>,
    /// Most tokens per minute to the LLM endpoint.
    #[arg(long, help_heading = "LLM generator")]
    pub tpm: Option<f64>,
    /// Most requests in flight to the LLM endpoint.
    #[arg(long, help_heading = "LLM generator")]
    pub max_concurrent_requests: Option<usize>,
    /// Further attempts after a reply that is not JSON or breaks the schema.
    #[arg(long, help_heading = "LLM generator")]
    pub bad_reply_retries: Option<u32>,
    /// Edit-type quotas: ask for --per-type candidates of each of these types
    /// (comma separated, from the task's taxonomy) instead of --n of any type.
    #[arg(long, value_delimiter = ',', help_heading = "LLM generator")]
    pub types: Vec<String>,
    /// Candidates per edit type with --types.
    #[arg(long, help_heading = "LLM generator")]
    pub per_type: Option<u32>,
    /// Retry bad replies with another seed rather than the same request.
    #[arg(long, help_heading = "LLM generator")]
    pub reseed_bad_replies: bool,
    /// Price of the model, for --max-cost and the manifest: MODEL=PROMPT,COMPLETION
    /// per million tokens. Repeatable.
    #[arg(long = "price", value_name = "MODEL=IN,OUT", help_heading = "Budgets")]
    pub prices: Vec<String>,
    /// Response cache file (default: DIR/cache.sqlite).
    #[arg(long, help_heading = "Cache")]
    pub cache: Option<PathBuf>,
    /// File cached replies under this name instead of each endpoint's URL
    /// (share answers between URLs that serve the same model).
    #[arg(long, value_name = "NAME", help_heading = "Cache")]
    pub cache_namespace: Option<String>,

    #[command(flatten)]
    pub control: RunControl,
    #[command(flatten)]
    pub dedup: DedupArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub shard: ShardArgs,

    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Which slice of the sources this process takes (`generate` and `run`).
/// Without `--shard`, the batch engine's environment decides: Slurm job
/// arrays (`SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`,
/// `SLURM_ARRAY_TASK_MIN`) or Kubernetes Indexed Jobs
/// (`JOB_COMPLETION_INDEX`, with the count from `--workers` or the
/// pipeline's `workers`).
#[derive(Debug, Args, Default)]
pub struct ShardArgs {
    /// Be worker i of N (0-based); output goes to DIR/worker-i-of-N/.
    #[arg(long, value_name = "i/N", help_heading = "Workers")]
    pub shard: Option<String>,
    /// Number of workers, for an index from JOB_COMPLETION_INDEX.
    #[arg(long, help_heading = "Workers")]
    pub workers: Option<u32>,
    /// Ignore the batch engine's environment variables.
    #[arg(long, help_heading = "Workers")]
    pub no_worker_env: bool,
}

/// Near-duplicate dedup flags (`generate` and `run`).
#[derive(Debug, Args, Default)]
pub struct DedupArgs {
    /// An earlier output folder: new pairs that (nearly) repeat its
    /// accepted pairs are rejected. Repeatable.
    #[arg(long, value_name = "DIR", help_heading = "Dedup")]
    pub against: Vec<PathBuf>,
    /// Turn MinHash near-duplicate dedup off (exact dedup stays).
    #[arg(long, help_heading = "Dedup", conflicts_with = "against")]
    pub no_near_dedup: bool,
    /// Jaccard similarity at which two edits are near-duplicates (exact for
    /// texts up to 60 words, estimated beyond).
    #[arg(long, help_heading = "Dedup")]
    pub near_threshold: Option<f64>,
    /// Also reject an edit whose Jaccard similarity to its own
    /// original reaches this (off by default: the edit measure rejects
    /// no-ops, and a fixed bound rejects minimal edits of long texts).
    #[arg(long, help_heading = "Dedup")]
    pub near_original_threshold: Option<f64>,
}

/// Verification-stage flags (`generate` and `run`): an LLM judge after the
/// other filters.
#[derive(Debug, Args, Default)]
pub struct VerifyArgs {
    /// OpenAI-compatible endpoint (base URL ending in /v1) for the judge.
    #[arg(long, help_heading = "Verification", requires = "verify_model")]
    pub verify_url: Option<String>,
    #[arg(long, help_heading = "Verification")]
    pub verify_model: Option<String>,
    /// Environment variable holding the judge endpoint's key.
    #[arg(long, help_heading = "Verification")]
    pub verify_api_key_env: Option<String>,
    /// Lowest score in [0, 1] an edit may get on every criterion
    /// (relation, label, fluent, minimal).
    #[arg(long, help_heading = "Verification")]
    pub verify_min: Option<f64>,
    /// Refuse a judge that is the generator's own model at the same
    /// endpoint.
    #[arg(long, help_heading = "Verification")]
    pub verify_independent: bool,
}

/// Flags both `generate` and `run` take: how this run goes, not what it makes.
#[derive(Debug, Args, Default)]
pub struct RunControl {
    /// Neither read nor write the response cache and the embedding store.
    #[arg(long, help_heading = "Cache", conflicts_with = "refresh_cache")]
    pub no_cache: bool,
    /// Send every request again and replace the cached answers (the
    /// embedding store is written, not read).
    #[arg(long, help_heading = "Cache")]
    pub refresh_cache: bool,
    /// Stop cleanly (committed, resumable) after this many requests.
    #[arg(long, help_heading = "Budgets")]
    pub max_requests: Option<u64>,
    /// Stop cleanly after this many tokens (prompt + completion).
    #[arg(long, help_heading = "Budgets")]
    pub max_tokens: Option<u64>,
    /// Stop cleanly after this estimated cost (needs a price per model).
    #[arg(long, help_heading = "Budgets")]
    pub max_cost: Option<f64>,
    /// Commit shards and a checkpoint at least every this many sources.
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Retry a source that went to the dead letters in at most this many
    /// later runs of the same folder (default 3; 0: never).
    #[arg(long, value_name = "N")]
    pub dead_letter_retries: Option<u32>,
    /// Read at most this many examples.
    #[arg(long = "limit", id = "run_limit")]
    pub limit: Option<u64>,
    /// Print the resolved settings (TOML, every default filled in) and
    /// exit without running.
    #[arg(long)]
    pub show_settings: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Output folder (overrides the file's `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Use this OpenAI-compatible endpoint (base URL ending in /v1) for
    /// generation, whatever generator the file names.
    #[arg(long, requires = "model")]
    pub llm_url: Option<String>,
    /// Model name for --llm-url.
    #[arg(long)]
    pub model: Option<String>,
    /// Environment variable holding the key for --llm-url.
    #[arg(long)]
    pub api_key_env: Option<String>,
    #[command(flatten)]
    pub control: RunControl,
    #[command(flatten)]
    pub dedup: DedupArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Also print the resolved settings (TOML, every default filled in).
    #[arg(long)]
    pub show: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An output folder of `foil generate` or `foil run`.
    pub dir: PathBuf,
    /// Sample pairs to show.
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
}
