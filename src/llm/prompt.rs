//! A run's prompt templates (system and user, minijinja) and reply schema,
//! compiled once: the generator's and the verifier's.

use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde_json::{Value, json};

use crate::record::SourceExample;
use crate::tasks::{PromptFiles, TaskPreset};
use crate::text::sha256_hex;

/// Why a set of templates cannot be used; names the folder or the built-in
/// set, the file, and for a schema the keyword's path.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("reading `{}`: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("schema.json: {0}")]
    SchemaJson(serde_json::Error),
    #[error("schema.json: {0}")]
    Schema(super::schema::SchemaError),
    #[error("{0}")]
    Template(minijinja::Error),
    #[error("{name} prompt templates: {problem}")]
    Builtin {
        name: String,
        problem: Box<PromptError>,
    },
    #[error("`{}`: {problem}", folder.display())]
    Folder {
        folder: PathBuf,
        problem: Box<PromptError>,
    },
}

/// The templates a run uses, parsed once.
#[derive(Debug, Clone)]
pub struct PromptSet {
    /// `system` and `user`, compiled. No loader: templates cannot include
    /// files, and nothing exposes the process environment.
    env: Environment<'static>,
    pub schema: Value,
    /// sha256 over system template, user template and schema: changes
    /// whenever any of them does.
    pub sha256: String,
}

impl PromptSet {
    /// The task's templates: from `prompts_dir/<task>/` when given, else
    /// the copies compiled into the binary.
    pub fn load(task: &TaskPreset, prompts_dir: Option<&Path>) -> Result<Self, PromptError> {
        Self::load_named(task.name, &task.prompts, prompts_dir)
    }

    /// Templates named `name`: from `prompts_dir/<name>/` when given, else
    /// `builtin`.
    pub fn load_named(
        name: &str,
        builtin: &PromptFiles,
        prompts_dir: Option<&Path>,
    ) -> Result<Self, PromptError> {
        let Some(dir) = prompts_dir else {
            return Self::from_parts(
                builtin.system.to_string(),
                builtin.user.to_string(),
                builtin.schema,
            )
            .map_err(|e| PromptError::Builtin {
                name: name.to_string(),
                problem: Box::new(e),
            });
        };
        let folder = dir.join(name);
        let read = |file: &str| {
            let p = folder.join(file);
            std::fs::read_to_string(&p).map_err(|err| PromptError::Read { path: p, err })
        };
        let (system, user, schema) = (
            read("system.jinja")?,
            read("user.jinja")?,
            read("schema.json")?,
        );
        // Errors name the folder, and schema errors the keyword's path.
        Self::from_parts(system, user, &schema).map_err(|e| PromptError::Folder {
            folder,
            problem: Box::new(e),
        })
    }

    /// Compile templates and schema; a broken template fails here, at
    /// start, not on the first example.
    pub fn from_parts(
        system: String,
        user: String,
        schema_text: &str,
    ) -> Result<Self, PromptError> {
        let schema: Value = serde_json::from_str(schema_text).map_err(PromptError::SchemaJson)?;
        super::schema::check_supported(&schema).map_err(PromptError::Schema)?;
        let sha256 = sha256_hex(format!("{system}\u{1f}{user}\u{1f}{schema_text}").as_bytes());
        let mut env = Environment::new();
        env.add_template_owned("system", system)
            .and_then(|_| env.add_template_owned("user", user))
            .map_err(PromptError::Template)?;
        Ok(PromptSet {
            env,
            schema,
            sha256,
        })
    }

    /// The chat messages for one example.
    pub fn render(
        &self,
        task: &TaskPreset,
        example: &SourceExample,
        edit_type: Option<&str>,
    ) -> Result<Vec<Value>, minijinja::Error> {
        let ctx = minijinja::context! {
            task => task.name,
            text => example.field(task.edit_field).unwrap_or_default(),
            label => example.field("label").unwrap_or_default(),
            fields => &example.fields,
            edit_types => task.edit_types.to_vec(),
            edit_type => edit_type.unwrap_or_default(),
        };
        self.render_context(&ctx)
    }

    /// The chat messages for any template context.
    pub fn render_context(&self, ctx: &minijinja::Value) -> Result<Vec<Value>, minijinja::Error> {
        let env = &self.env;
        let system = env.get_template("system")?.render(ctx)?;
        let user = env.get_template("user")?.render(ctx)?;
        Ok(vec![
            json!({"role": "system", "content": system.trim()}),
            json!({"role": "user", "content": user.trim()}),
        ])
    }
}
