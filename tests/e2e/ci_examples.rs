//! `examples/ci/`: the GitHub Actions workflow, the GitLab pipeline and the Jenkinsfile.
//! Their `kup …` lines are taken from the files themselves and run in order against the
//! simulator, the way each CI system would across its jobs: check, plan and comment,
//! plan and apply the saved plan, drift. A changed command in an example is tested as
//! changed; a removed one fails the expected sequence.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

const WORLD: &str = r#"
cluster "shop-eu" {
  region  = "eu-west-1"
  version = "1.30"
  node_group "general" {
    version         = "1.30"
    min_size        = 2
    max_size        = 4
    desired_size    = 2
    max_unavailable = 1
  }
  workload "web" {
    namespace = "shop"
    replicas  = 3
    cpu       = "250m"
    memory    = "256Mi"
    pdb { min_available = 2 }
  }
}
"#;

const CONFIG: &str = r#"
provider "eks" {
  region   = "eu-west-1"
  simulate = true
  world    = "world.hcl"
}

cluster "shop" {
  name    = "shop-eu"
  version = "1.31"
  node_group "general" {
    version         = "1.31"
    max_unavailable = 1
  }
}
"#;

/// The `kup …` command lines of a CI file, in order (YAML list items included).
fn kup_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .map(|l| l.strip_prefix("- ").unwrap_or(l))
        .filter(|l| l.starts_with("kup "))
        .map(str::to_string)
        .collect()
}

/// A repository checkout with the configuration under infra/kup, formatted as a team
/// would have it.
fn repo(root: &Path) -> PathBuf {
    let dir = root.join("infra/kup");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("world.hcl"), WORLD).unwrap();
    std::fs::write(dir.join("main.kup.hcl"), CONFIG).unwrap();
    let fmt = kup(&["fmt", dir.to_str().unwrap()]);
    assert_eq!(fmt.code, 0, "{fmt:?}");
    dir
}

fn sh(cwd: &Path, line: &str) -> Run {
    let bin = Path::new(KUP).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(line)
        .current_dir(cwd)
        .env("PATH", path)
        .env("KUP_DIR", "infra/kup")
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .output()
        .expect("sh runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_example(file: &str) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/ci")
            .join(file),
    )
    .unwrap();
    let lines = kup_lines(&text);
    let verbs: Vec<String> = lines
        .iter()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        verbs,
        [
            "kup fmt",
            "kup validate",
            "kup plan",
            "kup show",
            "kup plan",
            "kup apply",
            "kup drift"
        ],
        "{file}: the pipeline's kup commands, in order"
    );
    let tmp = tempfile::tempdir().unwrap();
    let checkout = tmp.path();
    repo(checkout);
    for line in &lines {
        let run = sh(checkout, line);
        assert_eq!(run.code, 0, "{file}: `{line}` failed: {run:?}");
    }
    // What the pull request got: the Markdown summary.
    let comment = std::fs::read_to_string(checkout.join("plan.md")).unwrap();
    assert!(comment.starts_with("### kup plan `"), "{comment}");
    assert!(
        comment.contains("| `cluster.shop` | eks `shop-eu` | 1.30 → 1.31"),
        "{comment}"
    );
    // The apply happened, and the nightly drift found nothing.
    let drift = std::fs::read_to_string(checkout.join("drift.json")).unwrap();
    assert!(!drift.trim().is_empty());
    let again = kup(&[
        "plan",
        "-detailed-exitcode",
        checkout.join("infra/kup").to_str().unwrap(),
    ]);
    assert_eq!(
        again.code, 0,
        "{file}: nothing left to do after the pipeline: {again:?}"
    );
}

#[test]
fn the_github_actions_workflow_runs_against_the_simulator() {
    run_example("github-actions.yml");
}

#[test]
fn the_gitlab_pipeline_runs_against_the_simulator() {
    run_example("gitlab-ci.yml");
}

#[test]
fn the_jenkinsfile_runs_against_the_simulator() {
    run_example("Jenkinsfile");
}

/// The merge job applies the artifact planned earlier; when the configuration changed in
/// between, apply refuses it rather than doing something nobody reviewed. The graph of the
/// same plan is DOT that Graphviz accepts.
#[test]
fn a_saved_plan_is_refused_once_stale_and_graphs_as_dot() {
    let tmp = tempfile::tempdir().unwrap();
    let checkout = tmp.path();
    let dir = repo(checkout);
    let run = sh(checkout, "kup plan -out plan.kupplan \"$KUP_DIR\"");
    assert_eq!(run.code, 0, "{run:?}");

    let dot = sh(checkout, "kup graph plan.kupplan");
    assert_eq!(dot.code, 0, "{dot:?}");
    assert!(dot.stdout.starts_with("digraph kup {"), "{dot:?}");
    assert!(
        dot.stdout.contains("-> \"shop/node_group/general/1.31\""),
        "{dot:?}"
    );
    if Command::new("dot").arg("-V").output().is_ok() {
        let svg = sh(checkout, "kup graph plan.kupplan | dot -Tsvg > plan.svg");
        assert_eq!(svg.code, 0, "Graphviz refused kup's DOT: {svg:?}");
        let svg = std::fs::read_to_string(checkout.join("plan.svg")).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    } else {
        eprintln!("SKIPPED: Graphviz `dot` is not installed; kup graph's output was not rendered");
    }
    // The directory form plans first and prints the same graph.
    let from_dir = sh(checkout, "kup graph \"$KUP_DIR\"");
    assert_eq!(from_dir.code, 0, "{from_dir:?}");
    assert_eq!(
        from_dir.stdout.lines().skip(5).collect::<Vec<_>>(),
        dot.stdout.lines().skip(5).collect::<Vec<_>>(),
        "same steps and edges"
    );

    let mut config = std::fs::read_to_string(dir.join("main.kup.hcl")).unwrap();
    config.push_str("\n# changed after the plan was reviewed\n");
    std::fs::write(dir.join("main.kup.hcl"), config).unwrap();
    let apply = sh(checkout, "kup apply plan.kupplan");
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(apply.all().contains("the saved plan is stale"), "{apply:?}");
}
