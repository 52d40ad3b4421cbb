//! Every task preset through a real OpenAI-compatible server: llama.cpp's
//! llama-server with SmolLM2-135M-Instruct, built and started by
//! `scripts/llm-server` (scripts/test builds it first; it is cached under
//! ~/.cache/foil). The model is far too small for good edits: this checks
//! the plumbing — schema-conforming candidates, provenance, usage, funnel,
//! the same server as verification judge — not quality.

use std::process::Command;

use crate::support::{assert_funnel_adds_up, foil, manifest, read_rows, repo};

struct LocalServer {
    url: String,
}

impl LocalServer {
    fn start() -> Self {
        let out = Command::new(repo().join("scripts/llm-server"))
            .arg("start")
            .output()
            .expect("scripts/llm-server runs");
        assert!(
            out.status.success(),
            "scripts/llm-server start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/v1"),
            "{url}"
        );
        LocalServer { url }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/llm-server"))
            .arg("stop")
            .status();
    }
}

#[test]
fn every_task_preset_runs_through_a_real_local_llm_server() {
    let server = LocalServer::start();
    let mut funnels = Vec::new();
    for task in ["question", "caption", "nli", "claim", "text"] {
        let out = tempfile::tempdir().unwrap();
        let run = foil()
            .args(["run", &format!("pipelines/{task}.toml"), "--out"])
            .arg(out.path())
            .args([
                "--llm-url",
                &server.url,
                "--model",
                "smollm2",
                "--limit",
                "4",
                "--quiet",
            ])
            // The same server as the verification judge.
            .args(["--verify-url", &server.url, "--verify-model", "smollm2"])
            .current_dir(repo())
            .assert();
        let code = run.get_output().status.code();
        assert!(matches!(code, Some(0) | Some(3)), "{task}: exit {code:?}");
        let m = manifest(out.path());
        assert_eq!(m["status"], "complete", "{task}");
        assert_funnel_adds_up(&m);
        let generate = &m["usage"]["stages"]["generate"];
        assert!(
            generate["requests"].as_u64().unwrap() >= 8,
            "{task}: 4 sources x n=2"
        );
        assert!(
            generate["prompt_tokens"].as_u64().unwrap() > 0,
            "{task}: usage read from the server"
        );
        let funnel_generate = m["funnel"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == "generate")
            .unwrap();
        assert!(
            funnel_generate["produced"].as_u64().unwrap() > 0,
            "{task}: the server's json_schema output yields schema-conforming candidates"
        );
        let sha = m["prompts"][task].as_str().unwrap().to_string();
        let preset = foil::tasks::preset(task).unwrap();
        let rows: Vec<_> = read_rows(out.path(), "shards")
            .into_iter()
            .chain(read_rows(out.path(), "rejected_shards"))
            .collect();
        assert!(!rows.is_empty(), "{task}");
        assert!(m["prompts"]["verify"].is_string(), "{task}");
        for r in &rows {
            // Whatever reached the judge carries its scores (or says why
            // not); accepted pairs always passed it.
            let field = |k: &str| r.get(k).cloned().unwrap_or_default();
            let stage = field("reject_stage");
            let reached_verify = stage.is_null() || stage == "verify";
            if reached_verify && field("reject_reason") != "verdict_unusable" {
                for k in [
                    "verify_relation",
                    "verify_label",
                    "verify_fluent",
                    "verify_minimal",
                ] {
                    let v = r[k].as_f64().unwrap_or(-1.0);
                    assert!((0.0..=1.0).contains(&v), "{task}: {k} = {}", r[k]);
                }
            }
            assert_eq!(r["generator"], "llm:smollm2");
            assert_eq!(r["prompt_sha256"].as_str(), Some(sha.as_str()));
            let et = r["edit_type"].as_str().unwrap();
            assert!(
                preset.edit_types.contains(&et),
                "{task}: edit type `{et}` outside the taxonomy"
            );
        }
        funnels.push(format!(
            "{task}: {}",
            serde_json::to_string(&m["funnel"]).unwrap()
        ));
    }
    eprintln!("local endpoint funnels:\n{}", funnels.join("\n"));
}
