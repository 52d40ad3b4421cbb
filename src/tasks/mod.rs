//! Task presets. A task names the fields it reads, which field gets
//! edited, what its labels look like, its prompt templates and reply
//! schema (files under `prompts/<task>/`), its edit taxonomy and its
//! default filter bounds.
//!
//! Presets are data: adding a task is a `prompts/<task>/` folder and one
//! entry in [`PRESETS`]; the runtime never matches on a task name.

mod bounds;

pub use bounds::EditBounds;

/// A field of the task's input.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// The task's name for the field (`text`, `label`, `premise`, …).
    pub name: &'static str,
    /// The input column read when the mapping does not say otherwise.
    pub default_column: &'static str,
    pub required: bool,
}

/// What a task's labels look like, which decides what a rules edit does to
/// the label.
#[derive(Debug, Clone, Copy)]
pub enum LabelKind {
    /// No label (or one foil cannot reason about).
    Unlabelled,
    /// Free text (an answer): a flip leaves the new label unknown.
    Free,
    /// Two values: a flip turns one into the other.
    Binary(&'static str, &'static str),
    /// A closed set: a flip leaves the new label unknown until verified.
    Classes(&'static [&'static str]),
}

impl LabelKind {
    /// The label of a flipped edit, when the label set decides it.
    pub fn flipped(&self, label: &str) -> Option<String> {
        match self {
            LabelKind::Binary(a, b) => {
                if crate::text::same_label(label, a) {
                    Some(b.to_string())
                } else if crate::text::same_label(label, b) {
                    Some(a.to_string())
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// What a task's label says about its example, which decides what a rules
/// edit does to it (`generate/rules/semantics.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelMeaning {
    /// The label is the statement's truth value (claims).
    Truth,
    /// The text describes its media; a label, when it is a truth value,
    /// says whether it matches (captions).
    Depiction,
    /// The label is the question's answer; yes/no answers are truth
    /// values.
    Answer,
    /// The label relates a premise to the edited hypothesis (NLI).
    Inference,
    /// foil cannot reason about the label.
    Open,
}

/// Default filter bounds for a task; a pipeline file may override each.
///
/// Derived from the distribution of real contrast edits
/// (`scripts/bench-quality` prints it; figures in docs/BENCHMARKS.md), not
/// from single rows:
/// - `edit.max_ops` and `edit.max_changed_words` are at or above the 99th
///   percentile of the task's real sets (claims: CREAK; captions: COCO-CON,
///   VideoCon; NLI: CAD, ScoNe), so short texts keep what people wrote;
///   for `text` they sit between Tailor's 90th and 99th percentiles (3–7
///   operations, 9–27 changed words), whose tail is garbled model output. Long fields get 6 operations per 100 words (8 for
///   `text`, whose long inputs are reviews edited in many places, as in
///   CAD's sentiment set) and up to 40% changed words: a review with a few
///   phrase edits passes.
/// - `edit.min_related_share` is below the 1st percentile of real edits
///   (CAD rewrites whole hypotheses about the premise's scene, so NLI
///   counts the premise as what an edit may be about) and above what an
///   unrelated text of the same set shares.
/// - `similarity_min` is below the 1st percentile of real pairs' cosine,
///   but for NLI: CAD's rewritten hypotheses go down to −0.05, and 0.0
///   keeps 98.7% of them;
///   `similarity_max` is 1: a minimal edit of a long text, or a swap of two
///   words, is as close to its original as an embedding can tell, and
///   no-ops are caught by the edit measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterDefaults {
    pub edit: EditBounds,
    pub similarity_min: f64,
    pub similarity_max: f64,
}

const fn bounds(
    max_ops: u32,
    ops_per_100_words: f64,
    max_changed_words: u32,
    max_changed_share: f64,
    min_related_share: f64,
) -> EditBounds {
    EditBounds {
        max_ops,
        ops_per_100_words,
        max_changed_words,
        max_changed_share,
        min_related_share,
    }
}

/// Where the LLM reply keeps the parts of a candidate.
#[derive(Debug, Clone, Copy)]
pub struct ReplyFields {
    pub edited: &'static str,
    pub new_label: Option<&'static str>,
    pub edit_type: &'static str,
    pub rationale: Option<&'static str>,
    /// Reply keys of the replaced span and its replacement, when the
    /// task's replies name them.
    pub spans: Option<(&'static str, &'static str)>,
}

/// The prompt templates and reply schema shipped in `prompts/<task>/`,
/// compiled into the binary so `foil` works from any directory. A pipeline
/// can point `prompts_dir` at its own copies.
#[derive(Debug, Clone, Copy)]
pub struct PromptFiles {
    pub system: &'static str,
    pub user: &'static str,
    pub schema: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub struct TaskPreset {
    pub name: &'static str,
    pub summary: &'static str,
    pub fields: &'static [FieldSpec],
    /// The field an edit changes.
    pub edit_field: &'static str,
    pub label: LabelKind,
    pub meaning: LabelMeaning,
    /// The rules operations on by default: those a careful reader judged
    /// at least 80% valid on real originals of the task (docs/BENCHMARKS.md,
    /// "What foil makes").
    pub rule_ops: &'static [&'static str],
    /// Whether the task's inputs may name a span and its alternative, for
    /// the COCO-CON span swap to run beside the generator.
    pub span_swap: bool,
    pub edit_types: &'static [&'static str],
    pub reply: ReplyFields,
    pub prompts: PromptFiles,
    pub filters: FilterDefaults,
}

impl TaskPreset {
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

macro_rules! prompts {
    ($task:literal) => {
        PromptFiles {
            system: include_str!(concat!("../../prompts/", $task, "/system.jinja")),
            user: include_str!(concat!("../../prompts/", $task, "/user.jinja")),
            schema: include_str!(concat!("../../prompts/", $task, "/schema.json")),
        }
    };
}

/// The verification judge's templates (one set for every task).
pub const VERIFY_PROMPTS: PromptFiles = prompts!("verify");

const fn field(name: &'static str, default_column: &'static str, required: bool) -> FieldSpec {
    FieldSpec {
        name,
        default_column,
        required,
    }
}

pub const PRESETS: &[TaskPreset] = &[
    TaskPreset {
        name: "question",
        summary: "minimally edited questions whose answer changes (MEQ)",
        fields: &[
            field("text", "question", true),
            field("label", "answer", false),
            field("context", "context", false),
        ],
        edit_field: "text",
        label: LabelKind::Free,
        meaning: LabelMeaning::Answer,
        // Negation acts only on yes/no questions (answer flipped); every
        // other operation was judged below 80% valid on real questions.
        rule_ops: &["negation"],
        span_swap: false,
        edit_types: &[
            "entity",
            "attribute",
            "number",
            "negation",
            "quantifier",
            "comparative",
            "temporal",
            "relation",
        ],
        reply: ReplyFields {
            edited: "edited",
            new_label: Some("new_answer"),
            edit_type: "edit_type",
            rationale: Some("rationale"),
            spans: None,
        },
        prompts: prompts!("question"),
        filters: FilterDefaults {
            edit: bounds(3, 6.0, 10, 0.4, 0.2),
            similarity_min: 0.35,
            similarity_max: 1.0,
        },
    },
    TaskPreset {
        name: "caption",
        summary: "contrast captions with one misalignment (VideoCon, COCO-CON)",
        fields: &[
            field("text", "caption", true),
            field("label", "label", false),
            field("media", "media", false),
            // COCO-CON style span swap: a span of the caption and the
            // alternative to put in its place.
            field("span", "span", false),
            field("alternative", "alternative", false),
        ],
        edit_field: "text",
        label: LabelKind::Unlabelled,
        meaning: LabelMeaning::Depiction,
        rule_ops: &["negation", "antonym", "number", "gender"],
        span_swap: true,
        edit_types: &[
            "object",
            "action",
            "attribute",
            "counting",
            "relation",
            "hallucination",
            "event_order",
        ],
        reply: ReplyFields {
            edited: "edited",
            new_label: None,
            edit_type: "edit_type",
            rationale: Some("explanation"),
            spans: Some(("source_span", "target_span")),
        },
        prompts: prompts!("caption"),
        filters: FilterDefaults {
            edit: bounds(3, 6.0, 12, 0.4, 0.4),
            similarity_min: 0.4,
            similarity_max: 1.0,
        },
    },
    TaskPreset {
        name: "nli",
        summary: "premise/hypothesis edits that reach another label (CAD, ScoNe)",
        fields: &[
            field("premise", "premise", true),
            field("text", "hypothesis", true),
            field("label", "label", false),
        ],
        edit_field: "text",
        label: LabelKind::Classes(&["entailment", "neutral", "contradiction"]),
        meaning: LabelMeaning::Inference,
        rule_ops: &["negation", "number", "quantifier"],
        span_swap: false,
        edit_types: &[
            "negation",
            "negation_scope",
            "lexical",
            "quantifier",
            "insert",
            "delete",
            "resemantic",
        ],
        reply: ReplyFields {
            edited: "edited",
            new_label: Some("new_label"),
            edit_type: "edit_type",
            rationale: Some("rationale"),
            spans: None,
        },
        prompts: prompts!("nli"),
        filters: FilterDefaults {
            edit: bounds(4, 6.0, 14, 0.4, 0.2),
            similarity_min: 0.0,
            similarity_max: 1.0,
        },
    },
    TaskPreset {
        name: "claim",
        summary: "true claims made false and back (CREAK)",
        fields: &[field("text", "claim", true), field("label", "label", false)],
        edit_field: "text",
        label: LabelKind::Binary("true", "false"),
        meaning: LabelMeaning::Truth,
        rule_ops: &["negation", "number", "quantifier", "comparative", "gender"],
        span_swap: false,
        edit_types: &[
            "entity",
            "attribute",
            "number",
            "negation",
            "temporal",
            "relation",
        ],
        reply: ReplyFields {
            edited: "edited",
            new_label: Some("new_label"),
            edit_type: "edit_type",
            rationale: Some("rationale"),
            spans: None,
        },
        prompts: prompts!("claim"),
        filters: FilterDefaults {
            edit: bounds(3, 6.0, 12, 0.4, 0.15),
            similarity_min: 0.3,
            similarity_max: 1.0,
        },
    },
    TaskPreset {
        name: "text",
        summary: "any text, Tailor/Polyjuice control codes as edit types",
        fields: &[field("text", "text", true), field("label", "label", false)],
        edit_field: "text",
        label: LabelKind::Unlabelled,
        meaning: LabelMeaning::Open,
        // Not measured (no labelled real originals); every edit but a gender
        // swap is routed to review.
        rule_ops: &["negation", "gender"],
        span_swap: false,
        edit_types: &[
            "negation",
            "quantifier",
            "lexical",
            "resemantic",
            "insert",
            "delete",
            "restructure",
            "shuffle",
            "change_voice",
            "change_tense",
            "swap_core",
        ],
        reply: ReplyFields {
            edited: "edited",
            new_label: Some("new_label"),
            edit_type: "edit_type",
            rationale: None,
            spans: None,
        },
        prompts: prompts!("text"),
        filters: FilterDefaults {
            edit: bounds(6, 8.0, 16, 0.4, 0.3),
            similarity_min: 0.3,
            similarity_max: 1.0,
        },
    },
];

/// Look a task up by name.
pub fn preset(name: &str) -> Option<&'static TaskPreset> {
    PRESETS.iter().find(|t| t.name == name)
}

/// Names of all tasks, for error messages and `--help`.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|t| t.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_preset_has_a_parsable_schema_naming_its_reply_fields() {
        for t in PRESETS {
            let schema: Value = serde_json::from_str(t.prompts.schema)
                .unwrap_or_else(|e| panic!("{}: schema.json: {e}", t.name));
            let props = schema["properties"].as_object().expect("properties");
            assert!(props.contains_key(t.reply.edited), "{}", t.name);
            assert!(props.contains_key(t.reply.edit_type), "{}", t.name);
            if let Some(l) = t.reply.new_label {
                assert!(props.contains_key(l), "{}: {l}", t.name);
            }
            assert!(t.field(t.edit_field).is_some(), "{}", t.name);
        }
    }

    #[test]
    fn binary_labels_flip_and_others_stay_unknown() {
        let claim = preset("claim").unwrap();
        assert_eq!(claim.label.flipped("True").as_deref(), Some("false"));
        assert_eq!(claim.label.flipped("false").as_deref(), Some("true"));
        assert_eq!(preset("nli").unwrap().label.flipped("neutral"), None);
    }
}
