//! The verification stage: an LLM judge (its own endpoint and prompt,
//! `prompts/verify/`) scores every live edit on four criteria in [0, 1] —
//! does the edit flip the label (keep it, for `relation = invariant`), is
//! the proposed new label right for the edited input, is the edit fluent,
//! is it minimal — and the stage rejects edits below any threshold. All
//! four scores and the judge's one-sentence explanation are stored with the
//! pair, accepted or not, so thresholds can be recalibrated later without
//! asking again (and a rerun asks the response cache, not the judge).

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::Filter;
use crate::config::VerifyConfig;
use crate::llm::prompt::PromptSet;
use crate::llm::{BadReply, OpenAiClient, extract_json_object, schema};
use crate::record::{Candidate, SourceExample, VerifyScores};

pub const STAGE: &str = "verify";
/// Every reply of the judge broke the verdict schema.
pub const VERDICT_UNUSABLE: &str = "verdict_unusable";

pub struct Verifier {
    task: &'static str,
    config: VerifyConfig,
    client: Arc<OpenAiClient>,
    prompts: PromptSet,
}

/// Why one candidate could not be judged.
enum Unjudged {
    /// Every reply broke the schema: the candidate is rejected.
    Unusable(BadReply),
    /// The endpoint failed (or the budget ran out): the source is
    /// dead-lettered (or the run stops), not judged.
    Failed(crate::record::StageError),
}

impl Verifier {
    pub fn new(
        task: &'static str,
        config: VerifyConfig,
        client: Arc<OpenAiClient>,
        prompts: PromptSet,
    ) -> Self {
        Verifier {
            task,
            config,
            client,
            prompts,
        }
    }

    pub fn messages(
        &self,
        example: &SourceExample,
        c: &Candidate,
    ) -> Result<Vec<Value>, minijinja::Error> {
        let context: std::collections::BTreeMap<String, String> = example
            .fields
            .iter()
            .filter(|(k, _)| k.as_str() != c.edited_field && k.as_str() != "label")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let ctx = minijinja::context! {
            task => self.task,
            context => context,
            edited_field => &c.edited_field,
            original => &c.original,
            edited => &c.edited,
            original_label => c.original_label.as_deref().unwrap_or_default(),
            edited_label => c.edited_label.as_deref().unwrap_or_default(),
            relation => c.relation.as_str(),
            edit_type => &c.edit_type,
        };
        self.prompts.render_context(&ctx)
    }

    async fn judge(&self, example: &SourceExample, c: &Candidate) -> Result<Verdict, Unjudged> {
        let messages = self.messages(example, c).map_err(|e| {
            Unjudged::Failed(crate::record::StageError::failed(format!(
                "rendering the verify prompt: {e}"
            )))
        })?;
        let body = json!({
            "model": self.config.endpoint.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "seed": self.config.seed,
            "n": 1,
        });
        let mut why = BadReply::from("no reply");
        for variant in 0..=self.config.bad_reply_retries {
            // A spent budget's message passes through; the sink stops the
            // run on it.
            let reply = self
                .client
                .chat_json(&body, "verdict", &self.prompts.schema, variant)
                .await
                .map_err(|(e, attempts)| {
                    Unjudged::Failed(match e {
                        crate::llm::LlmError::Budget(b) => {
                            crate::record::StageError::Budget(b.to_string())
                        }
                        e => crate::record::StageError::failed(format!(
                            "verify request failed after {attempts} attempts: {e}"
                        )),
                    })
                })?;
            match parse_verdict(&self.prompts.schema, &reply.content) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    tracing::debug!(pair_id = %c.pair_id, attempt = variant + 1, %e, "unusable verdict");
                    why = e;
                }
            }
        }
        Err(Unjudged::Unusable(why))
    }
}

/// A verdict: the scores, and the judge's answer when the pair had none.
type Verdict = (VerifyScores, Option<String>);

fn parse_verdict(schema_value: &Value, content: &str) -> Result<Verdict, BadReply> {
    let v = extract_json_object(content).ok_or("verdict is not a JSON object")?;
    schema::validate(schema_value, &v)?;
    let score = |k: &str| v[k].as_f64().ok_or(format!("verdict has no number `{k}`"));
    let new_label = v["new_label"]
        .as_str()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    Ok((
        VerifyScores {
            relation: score("relation")?,
            label: score("label")?,
            fluent: score("fluent")?,
            minimal: score("minimal")?,
            explanation: v["explanation"].as_str().map(str::to_string),
        },
        new_label,
    ))
}

impl Filter for Verifier {
    fn stage(&self) -> &'static str {
        STAGE
    }

    fn apply<'a>(
        &'a self,
        batch: &'a mut crate::record::SourceBatch,
    ) -> BoxFuture<'a, Result<(), crate::record::StageError>> {
        Box::pin(async move {
            let example = batch.example.clone();
            let live: Vec<usize> = (0..batch.candidates.len())
                .filter(|&i| !batch.candidates[i].is_rejected())
                .collect();
            let verdicts = futures::future::join_all(
                live.iter()
                    .map(|&i| self.judge(&example, &batch.candidates[i])),
            )
            .await;
            let mut failure = None;
            for (&i, verdict) in live.iter().zip(verdicts) {
                let c = &mut batch.candidates[i];
                match verdict {
                    Ok((scores, new_label)) => {
                        // A question edited without its new answer gets the
                        // judge's, with provenance; anything else a person
                        // must supply stays marked.
                        let needs_answer = c
                            .needs_review
                            .as_deref()
                            .is_some_and(|n| n.starts_with("answer"));
                        if let (true, None, Some(label)) =
                            (needs_answer, &c.edited_label, new_label)
                        {
                            c.edited_label = Some(label);
                            c.needs_review = None;
                            let by = format!("new label by verify:{}", self.config.endpoint.model);
                            c.rationale = Some(match c.rationale.take() {
                                Some(r) => format!("{r}; {by}"),
                                None => by,
                            });
                        }
                        let s = [scores.relation, scores.label, scores.fluent, scores.minimal];
                        let low = self
                            .config
                            .thresholds()
                            .into_iter()
                            .zip(s)
                            .find(|((_, min), score)| score < min);
                        if let Some(((name, min), score)) = low {
                            c.reject(
                                STAGE,
                                &format!("{name}_below_min"),
                                format!(
                                    "{name} {score:.2} < {min} (relation {:.2}, label {:.2}, fluent {:.2}, minimal {:.2})",
                                    s[0], s[1], s[2], s[3]
                                ),
                            );
                        }
                        c.scores.verify = Some(scores);
                    }
                    Err(Unjudged::Unusable(why)) => {
                        c.reject(STAGE, VERDICT_UNUSABLE, why.0);
                    }
                    Err(Unjudged::Failed(e)) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            // On an endpoint failure the runtime rejects every live
            // candidate of the source as `error` and dead-letters it; a
            // retry replays the verdicts that did arrive from the cache.
            failure.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_outside_the_unit_interval_are_malformed() {
        let schema: Value = serde_json::from_str(crate::tasks::VERIFY_PROMPTS.schema).unwrap();
        let ok =
            r#"{"relation": 0.9, "label": 1, "fluent": 0.8, "minimal": 0.7, "explanation": "x"}"#;
        assert_eq!(parse_verdict(&schema, ok).unwrap().0.label, 1.0);
        let answered = r#"{"relation": 1, "label": 1, "fluent": 1, "minimal": 1, "explanation": "x", "new_label": " Mercury "}"#;
        assert_eq!(
            parse_verdict(&schema, answered).unwrap().1.as_deref(),
            Some("Mercury")
        );
        let high =
            r#"{"relation": 1.5, "label": 1, "fluent": 0.8, "minimal": 0.7, "explanation": "x"}"#;
        assert!(
            parse_verdict(&schema, high)
                .unwrap_err()
                .0
                .contains("maximum")
        );
        let prose = format!("Sure! Here it is: {ok} Hope that helps.");
        assert!(parse_verdict(&schema, &prose).is_ok());
        let missing = r#"{"relation": 0.9, "label": 1, "fluent": 0.8, "explanation": "x"}"#;
        assert!(
            parse_verdict(&schema, missing)
                .unwrap_err()
                .0
                .contains("minimal")
        );
    }
}
