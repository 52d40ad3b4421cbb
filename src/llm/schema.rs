//! The subset of JSON Schema foil's reply schemas use: `type`,
//! `properties`, `required`, `additionalProperties: false`, `enum`,
//! `minLength`, `minimum`, `maximum`. A reply that breaks it is a malformed reply, named by the
//! path of the first violation.

use serde_json::Value;

/// Where a value (or a schema) breaks the schema, and how.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct SchemaError {
    /// JSONPath-like (`$.edited`).
    pub path: String,
    pub problem: String,
}

impl SchemaError {
    fn at(path: &str, problem: impl Into<String>) -> Self {
        SchemaError {
            path: path.to_string(),
            problem: problem.into(),
        }
    }
}

/// Keywords that change what a reply may be, which foil checks.
const CHECKED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "minLength",
    "minimum",
    "maximum",
    "items",
];

/// Keywords that say what a schema is for, and change nothing.
const NOTES: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
];

/// Refuse a schema with a keyword foil would not check: a user writing
/// `pattern` or `maxLength` expects replies that break it to be refused,
/// and ignoring it silently would let them through. Names the keyword
/// and where it is.
pub fn check_supported(schema: &Value) -> Result<(), SchemaError> {
    fn walk(s: &Value, path: &str) -> Result<(), SchemaError> {
        let Some(obj) = s.as_object() else {
            return Err(SchemaError::at(
                path,
                format!("a schema must be an object, got {}", kind(s)),
            ));
        };
        for (k, v) in obj {
            let here = format!("{path}.{k}");
            if NOTES.contains(&k.as_str()) {
                continue;
            }
            if !CHECKED.contains(&k.as_str()) {
                return Err(SchemaError::at(
                    &here,
                    format!(
                        "foil does not check `{k}`; it checks {} (remove the keyword, or check it in a filter)",
                        CHECKED.join(", ")
                    ),
                ));
            }
            match k.as_str() {
                "type" if !v.is_string() => {
                    return Err(SchemaError::at(
                        &here,
                        "foil checks one type name (a string)",
                    ));
                }
                "additionalProperties" if !v.is_boolean() => {
                    return Err(SchemaError::at(
                        &here,
                        "foil checks only `true` or `false` here",
                    ));
                }
                "properties" => {
                    let Some(props) = v.as_object() else {
                        return Err(SchemaError::at(&here, "expected an object"));
                    };
                    for (name, p) in props {
                        walk(p, &format!("{here}.{name}"))?;
                    }
                }
                "items" => walk(v, &here)?,
                _ => {}
            }
        }
        Ok(())
    }
    walk(schema, "$")
}

/// Check `value` against `schema`; the error names the offending path.
pub fn validate(schema: &Value, value: &Value) -> Result<(), SchemaError> {
    check(schema, value, "$")
}

fn type_ok(expected: &str, v: &Value) -> bool {
    match expected {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn check(schema: &Value, v: &Value, path: &str) -> Result<(), SchemaError> {
    if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_ok(t, v)
    {
        return Err(SchemaError::at(
            path,
            format!("expected {t}, got {}", kind(v)),
        ));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        return Err(SchemaError::at(
            path,
            format!("{v} is not one of {}", Value::Array(options.clone())),
        ));
    }
    if let (Some(min), Some(s)) = (schema.get("minLength").and_then(Value::as_u64), v.as_str())
        && (s.trim().chars().count() as u64) < min
    {
        return Err(SchemaError::at(
            path,
            format!("shorter than {min} characters"),
        ));
    }
    if let Some(x) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && x < min
        {
            return Err(SchemaError::at(
                path,
                format!("{x} is below the minimum {min}"),
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && x > max
        {
            return Err(SchemaError::at(
                path,
                format!("{x} is above the maximum {max}"),
            ));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(SchemaError::at(
                        path,
                        format!("missing required field `{r}`"),
                    ));
                }
            }
        }
        for (k, child) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(s, child, &format!("{path}.{k}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(SchemaError::at(path, format!("unexpected field `{k}`")));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        serde_json::from_str(crate::tasks::preset("question").unwrap().prompts.schema).unwrap()
    }

    #[test]
    fn every_builtin_schema_is_one_foil_checks_and_others_are_refused() {
        for task in ["question", "caption", "claim", "nli", "text"] {
            let s: Value =
                serde_json::from_str(crate::tasks::preset(task).unwrap().prompts.schema).unwrap();
            assert_eq!(check_supported(&s), Ok(()), "{task}");
        }
        let verify: Value = serde_json::from_str(crate::tasks::VERIFY_PROMPTS.schema).unwrap();
        assert_eq!(check_supported(&verify), Ok(()));
        let pattern = json!({"type": "object", "properties": {"edited": {"type": "string", "pattern": "^[A-Z]"}}});
        let e = check_supported(&pattern).unwrap_err();
        assert!(
            e.path == "$.properties.edited.pattern" && e.problem.contains("`pattern`"),
            "{e}"
        );
        for bad in [
            json!({"oneOf": []}),
            json!({"type": ["string", "null"]}),
            json!({"additionalProperties": {"type": "string"}}),
            json!({"items": {"maxLength": 3}}),
        ] {
            assert!(check_supported(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_supported(&json!({"description": "x", "type": "string"})),
            Ok(())
        );
    }

    #[test]
    fn good_reply_passes() {
        let v = json!({"edited": "Who wrote Macbeth?", "new_answer": "Shakespeare", "edit_type": "entity"});
        assert_eq!(validate(&schema(), &v), Ok(()));
    }

    #[test]
    fn violations_name_the_path() {
        let missing = json!({"edited": "x", "edit_type": "entity"});
        assert!(
            validate(&schema(), &missing)
                .unwrap_err()
                .to_string()
                .contains("new_answer")
        );
        let wrong_type = json!({"edited": 3, "new_answer": "a", "edit_type": "entity"});
        assert!(
            validate(&schema(), &wrong_type)
                .unwrap_err()
                .to_string()
                .contains("$.edited")
        );
        let bad_enum = json!({"edited": "x", "new_answer": "a", "edit_type": "vibes"});
        assert!(
            validate(&schema(), &bad_enum)
                .unwrap_err()
                .to_string()
                .contains("edit_type")
        );
        let extra = json!({"edited": "x", "new_answer": "a", "edit_type": "entity", "mood": 1});
        assert!(
            validate(&schema(), &extra)
                .unwrap_err()
                .problem
                .contains("mood")
        );
    }
}
