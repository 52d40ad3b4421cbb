//! The exact messages each task preset sends, as snapshots: a change to a
//! template shows up in review as a change to what the model reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use foil::generate::llm::PromptSet;
use foil::record::{RowOrigin, SourceExample};

fn example(fields: &[(&str, &str)]) -> SourceExample {
    let fields: BTreeMap<String, String> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    SourceExample {
        seq: 0,
        source_id: "s1".into(),
        fields,
        passthrough: Vec::new(),
        given: None,
        origin: RowOrigin {
            file: Arc::from("sample"),
            line: 2,
        },
    }
}

/// (task, fields of the example, edit type asked for).
type Case = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Option<&'static str>,
);

#[test]
fn rendered_messages_per_task() {
    let cases: [Case; 6] = [
        (
            "question",
            vec![
                ("text", "Who wrote the play Hamlet?"),
                ("label", "William Shakespeare"),
            ],
            None,
        ),
        (
            "question",
            vec![
                ("text", "Who wrote the play Hamlet?"),
                ("label", "William Shakespeare"),
            ],
            Some("negation"),
        ),
        (
            "caption",
            vec![
                ("text", "a man slices bread on a board"),
                ("media", "videos/k1.mp4"),
            ],
            None,
        ),
        (
            "nli",
            vec![
                ("premise", "A woman rides a red bicycle."),
                ("text", "A woman rides a bicycle."),
                ("label", "entailment"),
            ],
            None,
        ),
        (
            "claim",
            vec![("text", "The Eiffel Tower is in Paris."), ("label", "true")],
            None,
        ),
        (
            "text",
            vec![("text", "The committee approved the budget.")],
            Some("change_voice"),
        ),
    ];
    for (task_name, fields, edit_type) in cases {
        let task = foil::tasks::preset(task_name).unwrap();
        let set = PromptSet::load(task, None).unwrap();
        let messages = set.render(task, &example(&fields), edit_type).unwrap();
        let name = format!("prompt_{task_name}_{}", edit_type.unwrap_or("any"));
        let text: String = messages
            .iter()
            .map(|m| {
                format!(
                    "## {}\n{}\n",
                    m["role"].as_str().unwrap(),
                    m["content"].as_str().unwrap()
                )
            })
            .collect();
        insta::assert_snapshot!(name, format!("prompt_sha256: {}\n\n{text}", set.sha256));
    }
}
