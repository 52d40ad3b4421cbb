//! The code's shape holds: no module under `src/` imports from a layer
//! below its own (the layers listed in `docs/ARCHITECTURE.md`), every
//! module has a layer, no file is over 600 lines, no function over 120,
//! and no error is a bare `String` (tests excepted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module → layer number, read from the numbered list under `## Layers`.
fn layers_from_doc(doc: &str) -> BTreeMap<String, u32> {
    let section = doc
        .split("## Layers")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a `## Layers` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut out = BTreeMap::new();
    for line in section.lines() {
        let Some((number, rest)) = line.split_once(". ") else {
            continue;
        };
        let Ok(layer) = number.trim().parse::<u32>() else {
            continue;
        };
        let names = rest.split(" — ").next().unwrap_or("");
        for name in names.split(',') {
            let name = name.trim().trim_matches('`');
            if !name.is_empty() {
                out.insert(name.to_string(), layer);
            }
        }
    }
    out
}

/// The top-level modules a file's non-test code names through `crate::`,
/// with the line of each first mention.
fn crate_refs(text: &str) -> Vec<(String, usize)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out: Vec<(String, usize)> = Vec::new();
    let mut push = |name: &str, line: usize| {
        if !name.is_empty() && !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), line));
        }
    };
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut group: Option<usize> = None;
    for (i, line) in code.lines().enumerate() {
        let line_no = i + 1;
        let l = line.trim_start();
        if l.starts_with("//") {
            continue;
        }
        // Inside a multi-line `use crate::{ … };`: each item's first segment.
        if let Some(start) = group {
            for item in l.split(',') {
                let item = item.trim().trim_end_matches("};").trim_end_matches('}');
                push(&ident(item), start);
            }
            if l.contains('}') {
                group = None;
            }
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(inner) = rest.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => {
                        for item in inner[..end].split(',') {
                            push(&ident(item.trim()), line_no);
                        }
                    }
                    None => {
                        for item in inner.split(',') {
                            push(&ident(item.trim()), line_no);
                        }
                        group = Some(line_no);
                    }
                }
            } else {
                push(&ident(rest), line_no);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every import from a lower layer to a higher one, and every module
/// without a layer, as `file:line: message`.
fn violations(src: &Path, layers: &BTreeMap<String, u32>) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("tests.rs") {
            continue;
        }
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let Some(&own) = layers.get(&module) else {
            out.push(format!("{}: module `{module}` has no layer", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (used, line) in crate_refs(&text) {
            if let Some(&theirs) = layers.get(&used)
                && theirs > own
            {
                out.push(format!(
                    "{}:{line}: `{module}` (layer {own}) uses `{used}` (layer {theirs})",
                    rel.display()
                ));
            }
        }
    }
    out
}

#[test]
fn no_module_imports_from_a_lower_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let layers = layers_from_doc(&doc);
    assert!(
        layers.len() >= 15 && layers["config"] < layers["sink"],
        "{layers:?}"
    );
    let found = violations(&root.join("src"), &layers);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_layer_check_finds_upward_imports() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path();
    std::fs::create_dir_all(src.join("config")).unwrap();
    std::fs::write(
        src.join("config/mod.rs"),
        "//! uses [`crate::sink`] in a comment only\nuse crate::text;\nuse crate::{\n    record::X,\n    llm::cache::CacheMode,\n};\n#[cfg(test)]\nmod tests { use crate::sink::S; }\n",
    )
    .unwrap();
    std::fs::write(src.join("text.rs"), "pub fn f() { crate::config::g() }\n").unwrap();
    std::fs::write(src.join("stray.rs"), "").unwrap();
    let layers = layers_from_doc(
        "## Layers\n\n1. `text`, `record` — words.\n2. `config` — types.\n3. `llm`, `sink` — the rest.\n\n## Next\n4. `stray` — not a layer.\n",
    );
    assert_eq!(layers.len(), 5, "{layers:?}");
    let found = violations(src, &layers);
    assert_eq!(
        found,
        vec![
            "config/mod.rs:3: `config` (layer 2) uses `llm` (layer 3)".to_string(),
            "stray.rs: module `stray` has no layer".to_string(),
            "text.rs:1: `text` (layer 1) uses `config` (layer 2)".to_string(),
        ]
    );
}

/// Non-test source: a file's text before its `#[cfg(test)]` module, or
/// nothing for a `*tests.rs` file; with the path under `src/`.
fn sources(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|f| !f.to_string_lossy().ends_with("tests.rs"))
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            (f.strip_prefix(src).unwrap().display().to_string(), code)
        })
        .collect()
}

/// Functions longer than `most` lines, counted from the `fn` line to the
/// closing brace at the same indentation, both included.
fn long_functions(file: &str, code: &str, most: usize) -> Vec<String> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let mut words = body.split_whitespace();
        let is_fn = loop {
            match words.next() {
                Some("pub" | "async" | "unsafe" | "const") => continue,
                Some(w) if w.starts_with("pub(") => continue,
                Some("fn") => break true,
                _ => break false,
            }
        };
        if !is_fn || body.ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            let n = end + 2;
            if n > most {
                out.push(format!("{file}:{}: {n} lines: {}", i + 1, body));
            }
        }
    }
    out
}

/// `Result<T, String>` written anywhere in `code`.
fn string_errors(file: &str, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("Result<") {
        let rest = &code[at + "Result<".len()..];
        let (mut depth, mut comma, mut end) = (1usize, None, None);
        for (k, ch) in rest.char_indices() {
            match ch {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(k);
                        break;
                    }
                }
                ',' if depth == 1 => comma = Some(k),
                _ => {}
            }
        }
        if let (Some(c), Some(e)) = (comma, end)
            && rest[c + 1..e].trim() == "String"
        {
            let line = code[..at].matches('\n').count() + 1;
            out.push(format!("{file}:{line}: Result<{}>", &rest[..e]));
        }
    }
    out
}

#[test]
fn files_and_functions_stay_small_and_errors_are_types() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for (file, code) in sources(&src) {
        let all = std::fs::read_to_string(src.join(&file)).unwrap();
        let n = all.lines().count();
        if n > 600 {
            found.push(format!("{file}: {n} lines"));
        }
        found.extend(long_functions(&file, &code, 120));
        found.extend(string_errors(&file, &code));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_shape_checks_find_what_they_look_for() {
    let long = format!(
        "pub(crate) async fn f() {{\n{}}}\nfn g() {{}}\n",
        "    x;\n".repeat(120)
    );
    assert_eq!(
        long_functions("a.rs", &long, 120),
        vec!["a.rs:1: 122 lines: pub(crate) async fn f() {"]
    );
    assert!(long_functions("a.rs", &long, 122).is_empty());
    let code = "fn a() -> Result<Vec<u8>, String> {}\nfn b() -> Result<(), Error> {}\ntype C = Result<HashMap<String, String>, String>;\n";
    assert_eq!(
        string_errors("b.rs", code),
        vec![
            "b.rs:1: Result<Vec<u8>, String>",
            "b.rs:3: Result<HashMap<String, String>, String>"
        ]
    );
}
