//! Label Studio round trip over its REST API (`Authorization: Token …`,
//! the token read from an environment variable, never from a flag).
//!
//! Push: find the project by title or create it with foil's review
//! interface — original and edited side by side, the edit highlighted, the
//! edit type and labels, a verdict (accept / reject / fix) and a box for the
//! corrected edit — then import the pairs as tasks carrying `pair_id`, with
//! foil's own verdict and confidence as a prediction. Tasks whose `pair_id`
//! is already in the project are not imported again.
//!
//! Pull: export every task with its annotations and turn them into
//! [`Annotation`]s, checking control names, types and choices ourselves:
//! the server stores whatever a client sends.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Annotation, Invalid, PairRow, VERDICTS};
use crate::text::diff_html;

/// The review interface. `edited` shows the edit with removed words struck
/// through and added ones highlighted.
pub const LABEL_CONFIG: &str = r#"<View>
  <Style>
    .foil-pair { display: flex; gap: 16px; }
    .foil-pair > div { flex: 1; }
    ins { background: #c8f7c5; text-decoration: none; }
    del { background: #f9c8c8; }
  </Style>
  <Header value="Edit type: $edit_type · labels: $original_label → $edited_label"/>
  <View className="foil-pair">
    <View>
      <Header value="Original" size="5"/>
      <Text name="original" value="$original"/>
    </View>
    <View>
      <Header value="Edited" size="5"/>
      <HyperText name="edited" value="$edited_html"/>
    </View>
  </View>
  <Header value="Context (the other fields; an edit of them highlighted)" size="5"/>
  <HyperText name="context" value="$context_html"/>
  <Header value="Is this a valid contrast pair?" size="5"/>
  <Choices name="verdict" toName="edited" choice="single" required="true" showInline="true">
    <Choice value="accept"/>
    <Choice value="reject"/>
    <Choice value="fix"/>
  </Choices>
  <TextArea name="corrected" toName="edited" placeholder="For fix: the corrected edited text" maxSubmissions="1" editable="true"/>
  <Header value="New label or answer — needed when foil says: $needs_review" size="6"/>
  <TextArea name="new_label" toName="edited" placeholder="The edited example's label or answer" maxSubmissions="1" editable="true"/>
</View>"#;

pub struct LabelStudio {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn api_error(what: &str, status: reqwest::StatusCode, body: &str) -> anyhow::Error {
    let body: String = body.chars().take(300).collect();
    anyhow::anyhow!("Label Studio: {what}: HTTP {status}: {body}")
}

impl LabelStudio {
    /// `token_env` names the environment variable holding the API token.
    pub fn new(url: &str, token_env: &str) -> anyhow::Result<Self> {
        let token = std::env::var(token_env).map_err(|_| {
            crate::UsageError::new(format!(
                "the Label Studio API token is read from ${token_env}, which is not set"
            ))
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(LabelStudio {
            http,
            base: url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("Authorization", format!("Token {}", self.token));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("Label Studio at {}: {e}", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            // Never echo the token, even if a proxy reflects it.
            let text = text.replace(&self.token, "[redacted]");
            return Err(api_error(&format!("{method} {path}"), status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("Label Studio: {method} {path}: not JSON: {e}"))
    }

    /// The id of the project with this title, if any.
    pub async fn find_project(&self, title: &str) -> anyhow::Result<Option<i64>> {
        let mut page = 1;
        loop {
            let v = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/projects?page={page}&page_size=100"),
                    None,
                )
                .await?;
            let results = v["results"].as_array().cloned().unwrap_or_default();
            if let Some(p) = results.iter().find(|p| p["title"] == title) {
                return Ok(p["id"].as_i64());
            }
            if v["next"].is_null() || results.is_empty() {
                return Ok(None);
            }
            page += 1;
        }
    }

    pub async fn create_project(&self, title: &str) -> anyhow::Result<i64> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/api/projects",
                Some(&json!({
                    "title": title,
                    "description": "Contrast pairs from foil: accept, reject, or fix the edit.",
                    "label_config": LABEL_CONFIG,
                })),
            )
            .await?;
        v["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("Label Studio: project created without an id: {v}"))
    }

    /// Every task of the project with its annotations (JSON export).
    pub async fn export(&self, project: i64) -> anyhow::Result<Vec<Value>> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/api/projects/{project}/export?exportType=JSON&download_all_tasks=true"),
                None,
            )
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    pub async fn import(&self, project: i64, tasks: &[Value]) -> anyhow::Result<usize> {
        let mut n = 0;
        for chunk in tasks.chunks(500) {
            let v = self
                .call(
                    reqwest::Method::POST,
                    &format!("/api/projects/{project}/import?return_task_ids=true"),
                    Some(&Value::Array(chunk.to_vec())),
                )
                .await?;
            n += v["task_count"].as_u64().unwrap_or(chunk.len() as u64) as usize;
        }
        Ok(n)
    }

    /// Import `pairs` into the project `title` (created if missing),
    /// skipping pairs already there. Returns (project id, created, imported,
    /// skipped).
    pub async fn push(&self, title: &str, pairs: &[PairRow]) -> anyhow::Result<PushResult> {
        let (project, created) = match self.find_project(title).await? {
            Some(id) => (id, false),
            None => (self.create_project(title).await?, true),
        };
        let existing: HashSet<String> = self
            .export(project)
            .await?
            .iter()
            .filter_map(|t| t["data"]["pair_id"].as_str().map(str::to_string))
            .collect();
        let tasks: Vec<Value> = pairs
            .iter()
            .filter(|p| !existing.contains(&p.pair_id))
            .map(task_for)
            .collect();
        let imported = self.import(project, &tasks).await?;
        Ok(PushResult {
            project,
            created,
            imported,
            skipped: pairs.len() - tasks.len(),
        })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PushResult {
    pub project: i64,
    pub created: bool,
    pub imported: usize,
    pub skipped: usize,
}

/// A task: the pair's fields for the interface, and foil's verdict as a
/// pre-annotation scored with its confidence.
pub fn task_for(p: &PairRow) -> Value {
    let mut prediction = json!({
        "model_version": format!("foil-{}", env!("CARGO_PKG_VERSION")),
        "result": [{
            "from_name": "verdict", "to_name": "edited", "type": "choices",
            "value": {"choices": [p.foil_verdict()]}
        }],
    });
    if let Some(c) = p.confidence() {
        prediction["score"] = json!(c);
    }
    json!({
        "data": {
            "pair_id": p.pair_id,
            "source_id": p.source_id,
            "task": p.task,
            "original": p.original,
            "edited": p.edited,
            "edited_html": diff_html(&p.original, &p.edited),
            "edit_type": p.edit_type,
            "needs_review": p.needs_review.clone().unwrap_or_else(|| "nothing".into()),
            "original_label": p.original_label.clone().unwrap_or_default(),
            "edited_label": p.edited_label.clone().unwrap_or_default(),
            "context": p.context.clone().unwrap_or_default(),
            "edited_context": p.edited_context.clone().unwrap_or_default(),
            "context_html": match (&p.context, &p.edited_context) {
                (Some(c), Some(e)) => diff_html(c, e),
                (Some(c), None) => crate::text::html_escape(c),
                _ => String::new(),
            },
            "similarity": p.similarity,
            "verify_min": p.verify_min(),
            "foil_status": p.status(),
        },
        "predictions": [prediction],
    })
}

/// Annotations of an export, checked: known control names and types, one
/// known choice, corrected text as a string. Cancelled (skipped)
/// annotations are left out.
pub fn annotations_of(tasks: &[Value]) -> (Vec<Annotation>, Vec<Invalid>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for t in tasks {
        let task_id = t["id"].as_i64().unwrap_or_default();
        let Some(pair_id) = t["data"]["pair_id"].as_str() else {
            bad.push(Invalid {
                origin: format!("task {task_id}"),
                field: "data.pair_id".into(),
                problem: "the task has no pair_id (not pushed by foil?)".into(),
            });
            continue;
        };
        for a in t["annotations"].as_array().into_iter().flatten() {
            if a["was_cancelled"].as_bool() == Some(true) {
                continue;
            }
            let origin = format!(
                "task {task_id}, annotation {}",
                a["id"].as_i64().unwrap_or_default()
            );
            let annotator = match &a["completed_by"] {
                Value::Number(n) => format!("label-studio:{n}"),
                Value::Object(o) => format!(
                    "label-studio:{}",
                    o.get("id").map(Value::to_string).unwrap_or_default()
                ),
                _ => "label-studio:unknown".to_string(),
            };
            let mut verdict: Option<String> = None;
            let mut corrected: Option<String> = None;
            let mut label: Option<String> = None;
            let mut problem: Option<(String, String)> = None;
            for r in a["result"].as_array().into_iter().flatten() {
                let from = r["from_name"].as_str().unwrap_or_default();
                let kind = r["type"].as_str().unwrap_or_default();
                match (from, kind) {
                    ("verdict", "choices") => {
                        let choices: Vec<&str> = r["value"]["choices"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        match choices.as_slice() {
                            [one] if VERDICTS.contains(one) => verdict = Some(one.to_string()),
                            [one] => {
                                problem.get_or_insert((
                                    "verdict".into(),
                                    format!("`{one}` is not one of {}", VERDICTS.join(", ")),
                                ));
                            }
                            other => {
                                problem.get_or_insert((
                                    "verdict".into(),
                                    format!("expected one choice, got {}", other.len()),
                                ));
                            }
                        }
                    }
                    (field @ ("corrected" | "new_label"), "textarea") => {
                        let text: Vec<&str> = r["value"]["text"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        let joined = text.join("\n").trim().to_string();
                        if !joined.is_empty() {
                            if field == "corrected" {
                                corrected = Some(joined);
                            } else {
                                label = Some(joined);
                            }
                        }
                    }
                    (name, kind) => {
                        problem.get_or_insert((
                            name.to_string(),
                            format!(
                                "unknown control `{name}` of type `{kind}` (the interface has `verdict` choices, `corrected` and `new_label` text)"
                            ),
                        ));
                    }
                }
            }
            if problem.is_none() && verdict.is_none() {
                problem = Some(("verdict".into(), "no verdict chosen".into()));
            }
            match problem {
                Some((field, problem)) => bad.push(Invalid {
                    origin,
                    field,
                    problem,
                }),
                None => ok.push(Annotation {
                    pair_id: pair_id.to_string(),
                    annotator,
                    verdict: verdict.unwrap_or_default(),
                    corrected,
                    label,
                    queue: "label-studio".into(),
                    source: String::new(),
                    origin,
                }),
            }
        }
    }
    (ok, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_context_is_shown_highlighted() {
        let p = PairRow {
            pair_id: "p1".into(),
            original: "A man is prone.".into(),
            edited: "A man is prone.".into(),
            context: Some("someone is lying down on the street".into()),
            edited_context: Some("someone is sitting on the street".into()),
            ..Default::default()
        };
        let t = task_for(&p);
        let html = t["data"]["context_html"].as_str().unwrap();
        assert!(html.contains("<ins>sitting</ins>"), "{html}");
        assert!(html.contains("<del>lying</del>"), "{html}");
        let unedited = PairRow {
            edited_context: None,
            context: Some("a <b> premise".into()),
            ..p
        };
        assert_eq!(
            task_for(&unedited)["data"]["context_html"],
            "a &lt;b&gt; premise"
        );
    }

    #[test]
    fn misspelled_controls_and_unknown_choices_are_caught() {
        let tasks = vec![json!({
            "id": 7,
            "data": {"pair_id": "p1"},
            "annotations": [
                {"id": 1, "completed_by": 3, "result": [
                    {"from_name": "verdict", "type": "choices", "value": {"choices": ["accept"]}}]},
                {"id": 2, "completed_by": 4, "result": [
                    {"from_name": "verdcit", "type": "choices", "value": {"choices": ["accept"]}}]},
                {"id": 3, "completed_by": 5, "result": [
                    {"from_name": "verdict", "type": "choices", "value": {"choices": ["maybe"]}}]},
                {"id": 4, "completed_by": 6, "was_cancelled": true, "result": []},
                {"id": 5, "completed_by": 7, "result": [
                    {"from_name": "verdict", "type": "choices", "value": {"choices": ["fix"]}},
                    {"from_name": "corrected", "type": "textarea", "value": {"text": ["Better."]}}]}
            ]
        })];
        let (ok, bad) = annotations_of(&tasks);
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].corrected.as_deref(), Some("Better."));
        assert_eq!(ok[0].annotator, "label-studio:3");
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].field, "verdcit");
        assert_eq!(bad[0].origin, "task 7, annotation 2");
        assert!(bad[1].problem.contains("`maybe`"));
    }
}
