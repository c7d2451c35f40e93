use crate::harness::*;

#[test]
fn bad_config_names_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("main.kup.hcl"),
        "provider \"eks\" {\n  region = \"eu-west-1\"\n}\n\ncluster \"prod\" {\n  version = \"1.3O\"\n  node_group \"a\" {\n    versoin = \"1.30\"\n  }\n}\n",
    )
    .unwrap();
    let run = kup(&["validate", dir.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("main.kup.hcl:6:"), "{run:?}");
    assert!(run.stderr.contains("main.kup.hcl:8:"), "{run:?}");
    assert!(
        run.stderr.to_lowercase().contains("did you mean"),
        "{run:?}"
    );
    let json = kup(&["validate", "-json", dir.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(v["diagnostics"].as_array().unwrap().len() >= 2, "{json:?}");
}

#[test]
fn downgrade_is_refused_at_plan_time() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.27"));
    let run = kup(&["plan", dir.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("does not support downgrades"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("main.kup.hcl:"),
        "the error should point at the config: {run:?}"
    );
}

#[test]
fn unoffered_version_lists_what_is_offered() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.40"));
    let run = kup(&["plan", dir.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("does not offer Kubernetes 1.40"),
        "{run:?}"
    );
    assert!(run.stderr.contains("1.31.7"), "{run:?}");
}

#[test]
fn apply_without_terminal_or_auto_approve_is_an_error_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let run = kup(&["apply", dir.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("-auto-approve"), "{run:?}");
    assert!(sim.mutations().is_empty());
}

#[test]
fn variables_from_cli_env_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let body = format!(
        "variable \"target\" {{\n  default = \"1.29\"\n}}\n{}",
        one_cluster("${var.target}")
    );
    let dir = config_dir(tmp.path(), &sim, &body);
    let d = dir.to_str().unwrap();
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", "-json"];
        args.extend_from_slice(extra);
        args.push(d);
        let r = kup(&args);
        assert_eq!(r.code, 0, "{r:?}");
        let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&r.stdout).unwrap();
        saved.plan.clusters[0].to.minor().to_string()
    };
    assert_eq!(plan(&[]), "1.29");
    std::fs::write(dir.join("kup.kupvars"), "target = \"1.30\"\n").unwrap();
    assert_eq!(plan(&[]), "1.30");
    assert_eq!(plan(&["-var", "target=1.31"]), "1.31");
}

#[test]
fn fmt_check_and_rewrite() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("main.kup.hcl");
    std::fs::write(&f, "cluster \"a\" {\nversion = \"1.30\"\n  name=\"x\"\n}\n").unwrap();
    let d = tmp.path().to_str().unwrap();
    let check = kup(&["fmt", "-check", "-diff", d]);
    assert_eq!(check.code, 3, "{check:?}");
    assert!(check.stdout.contains("main.kup.hcl"), "{check:?}");
    assert_eq!(kup(&["fmt", d]).code, 0);
    assert_eq!(kup(&["fmt", "-check", d]).code, 0, "fmt must be idempotent");
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(
        text.contains("  version = \"1.30\"\n  name    = \"x\""),
        "{text}"
    );
}

#[test]
fn version_and_completions() {
    let v = kup(&["version", "-json"]);
    let j: serde_json::Value = serde_json::from_str(&v.stdout).unwrap();
    assert_eq!(j["kup_version"], env!("CARGO_PKG_VERSION"));
    assert!(j["providers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "eks"));
    let c = kup(&["completions", "bash"]);
    assert!(c.stdout.contains("kup"), "{c:?}");
}

/// Every example directory validates and is formatted as `kup fmt` would write it.
#[test]
fn every_example_validates_and_is_formatted() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut dirs = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && p.file_name().is_some_and(|n| n != ".kup") {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".kup.hcl") && !dirs.contains(&d) {
                dirs.push(d.clone());
            }
        }
    }
    assert!(dirs.len() >= 8, "examples found: {dirs:?}");
    for d in dirs {
        let d = d.to_str().unwrap();
        let v = kup(&["validate", d]);
        assert_eq!(v.code, 0, "{d}: {v:?}");
        let f = kup(&["fmt", "-check", "-diff", d]);
        assert_eq!(f.code, 0, "{d} is not formatted: {f:?}");
    }
}
