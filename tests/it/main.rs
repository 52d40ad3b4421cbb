//! foil's integration tests: the real binary, real files, a fake
//! OpenAI-compatible server on 127.0.0.1 and the real local embedding
//! model (fetched by `scripts/fetch-model`, which `.ci/run` calls first).

mod support;

mod bad_input;
mod cli;
mod determinism;
mod embed;
mod evaluate;
mod incremental;
mod layers;
mod limits;
mod llm;
mod local_llm;
mod near_dedup;
mod pairs;
mod pipelines;
mod prompts;
mod reliability;
mod review;
mod settings;
mod sources;
mod span_swap;
mod verify;
mod workers;
