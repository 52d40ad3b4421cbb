//! The LLM generator: renders the task's prompt templates, asks an
//! OpenAI-compatible chat endpoint for JSON (a `json_schema` response
//! format, falling back to `json_object` for servers that refuse it),
//! validates each reply against the task's schema and turns it into a
//! candidate with the prompt's sha256 and the sampling parameters.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{GenerateFailure, Generated, Generator};
use crate::config::LlmGeneratorConfig;
pub use crate::llm::prompt::PromptSet;
use crate::llm::{BadReply, OpenAiClient, extract_json_object, schema};

use crate::record::{Candidate, Relation, SourceExample};
use crate::tasks::TaskPreset;

pub struct LlmGenerator {
    task: &'static TaskPreset,
    config: LlmGeneratorConfig,
    client: Arc<OpenAiClient>,
    prompts: PromptSet,
}

impl LlmGenerator {
    pub fn new(
        task: &'static TaskPreset,
        config: LlmGeneratorConfig,
        client: Arc<OpenAiClient>,
        prompts: PromptSet,
    ) -> Self {
        LlmGenerator {
            task,
            config,
            client,
            prompts,
        }
    }

    /// The request body; the client adds `response_format`.
    fn body(&self, messages: &[Value], seed: u64) -> Value {
        let mut body = json!({
            "model": self.config.endpoint.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "seed": seed,
            "n": 1,
        });
        if let Some(top_p) = self.config.top_p {
            body["top_p"] = json!(top_p);
        }
        body
    }

    /// One candidate: a request (falling back once to `json_object` when the
    /// server answers 400 to `json_schema`), then up to `bad_reply_retries`
    /// more when the reply is not JSON or breaks the schema — the same
    /// request as a new cache entry, or another seed if so configured.
    /// `Ok(None)` means every reply was unusable.
    async fn request(
        &self,
        example: &SourceExample,
        messages: &[Value],
        seed: u64,
        wanted: Option<&str>,
        out: &mut Generated,
    ) -> Result<Option<Candidate>, GenerateFailure> {
        let mut variant = 0;
        let mut seed_now = seed;
        let name = format!("{}_edit", self.task.name);
        for bad in 0..=self.config.bad_reply_retries {
            let body = self.body(messages, seed_now);
            // A spent budget fails here too: the sink recognises its
            // message and stops the run instead of dead-lettering.
            let reply = self
                .client
                .chat_json(&body, &name, &self.prompts.schema, variant)
                .await
                .map_err(|(err, attempts)| GenerateFailure {
                    error: err.into(),
                    attempts,
                })?;
            let parsed = self
                .candidate_from_reply(example, &reply.content, seed_now)
                .and_then(|c| match wanted {
                    Some(w) if c.edit_type != w => Err(BadReply(format!(
                        "asked for edit type `{w}`, got `{}`",
                        c.edit_type
                    ))),
                    _ => Ok(c),
                });
            match parsed {
                Ok(c) => return Ok(Some(c)),
                Err(why) => {
                    out.invalid_replies += 1;
                    tracing::debug!(source_id = %example.source_id, attempt = bad + 1, %why, "unusable reply");
                    if self.config.reseed_bad_replies {
                        seed_now = seed + 1000 * u64::from(bad + 1);
                    } else {
                        variant = bad + 1;
                    }
                }
            }
        }
        Ok(None)
    }

    /// Parse and validate a reply into a candidate, or say why it is unusable.
    fn candidate_from_reply(
        &self,
        example: &SourceExample,
        content: &str,
        seed: u64,
    ) -> Result<Candidate, BadReply> {
        let value = extract_json_object(content).ok_or("reply is not a JSON object")?;
        schema::validate(&self.prompts.schema, &value)?;
        let r = &self.task.reply;
        let edited = value[r.edited]
            .as_str()
            .ok_or("no edited text")?
            .trim()
            .to_string();
        let mut c = Candidate::new(
            example,
            self.task.edit_field,
            edited,
            Relation::Flip,
            value[r.edit_type].as_str().unwrap_or("unspecified"),
            format!("llm:{}", self.config.endpoint.model),
        );
        c.edited_label = r
            .new_label
            .and_then(|k| value[k].as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        c.rationale = r
            .rationale
            .and_then(|k| value[k].as_str())
            .map(str::to_string);
        if let Some((from, to)) = r.spans {
            let span = |k: &str| {
                value[k]
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            c.source_span = span(from);
            c.target_span = span(to);
        }
        c.prompt_sha256 = Some(self.prompts.sha256.clone());
        c.temperature = Some(self.config.temperature);
        c.seed = Some(seed);
        Ok(c)
    }
}

impl Generator for LlmGenerator {
    fn describe(&self) -> String {
        format!("llm:{}", self.config.endpoint.model)
    }

    fn generate(&self, example: Arc<SourceExample>) -> BoxFuture<'_, Generated> {
        Box::pin(async move {
            let mut out = Generated::default();
            // Without quotas: `n` requests of any type. With quotas:
            // `per_type` requests for each listed type, the type named in
            // the prompt and required of the reply.
            let plan: Vec<(Option<&str>, u32)> = if self.config.types.is_empty() {
                vec![(None, self.config.n)]
            } else {
                self.config
                    .types
                    .iter()
                    .map(|t| (Some(t.as_str()), self.config.per_type))
                    .collect()
            };
            let base_seed = self.config.seed.unwrap_or(0);
            'plan: for (wanted, count) in plan {
                let messages = match self.prompts.render(self.task, &example, wanted) {
                    Ok(m) => m,
                    Err(e) => {
                        out.failure = Some(GenerateFailure {
                            error: crate::record::StageError::failed(e.to_string()),
                            attempts: 0,
                        });
                        return out;
                    }
                };
                for i in 0..u64::from(count) {
                    match self
                        .request(&example, &messages, base_seed + i, wanted, &mut out)
                        .await
                    {
                        Ok(Some(c)) => out.candidates.push(c),
                        Ok(None) => {}
                        Err(f) => {
                            out.failure = Some(f);
                            break 'plan;
                        }
                    }
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn example() -> SourceExample {
        let mut fields = BTreeMap::new();
        fields.insert("text".to_string(), "Who wrote Hamlet?".to_string());
        fields.insert("label".to_string(), "Shakespeare".to_string());
        SourceExample {
            seq: 0,
            source_id: "q".into(),
            fields,
            passthrough: Vec::new(),
            given: None,
            origin: crate::record::RowOrigin {
                file: Arc::from("f"),
                line: 1,
            },
        }
    }

    fn set(user: &str) -> PromptSet {
        let task = crate::tasks::preset("question").unwrap();
        PromptSet::from_parts("s".into(), user.into(), task.prompts.schema).unwrap()
    }

    #[test]
    fn templates_render_the_example() {
        let task = crate::tasks::preset("question").unwrap();
        let set = PromptSet::load(task, None).unwrap();
        let m = set.render(task, &example(), None).unwrap();
        let user = m[1]["content"].as_str().unwrap();
        assert!(
            user.contains("Question: Who wrote Hamlet?\nAnswer: Shakespeare"),
            "{user}"
        );
        assert_eq!(set.sha256.len(), 64);
    }

    #[test]
    fn templates_cannot_read_files_or_the_environment() {
        let task = crate::tasks::preset("question").unwrap();
        // SAFETY: single-threaded test setting a variable only it reads.
        unsafe { std::env::set_var("FOIL_TEMPLATE_CANARY", "sk-canary") };
        assert!(
            set("{% include '/etc/passwd' %}")
                .render(task, &example(), None)
                .is_err()
        );
        for probe in ["{{ env }}", "{{ environ }}", "{{ FOIL_TEMPLATE_CANARY }}"] {
            let out = set(probe).render(task, &example(), None).unwrap();
            assert!(
                !out[1]["content"].as_str().unwrap().contains("sk-canary"),
                "{probe}"
            );
        }
    }
}
