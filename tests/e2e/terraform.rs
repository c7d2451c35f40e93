//! `terraform-provider-kup` driven by the real Terraform CLI against `kup sim serve`:
//! plan shows kup's plan, apply upgrades, a second plan is empty, an out-of-band change
//! is drift, an impossible version is an attribute-pathed error, and a killed apply
//! resumes from the journal. Skipped (with a message) when `terraform` is not installed;
//! Terraform cannot download providers here, so a test-owned CLI configuration points
//! `kup/kup` at the provider binary this build made (`dev_overrides`, no `terraform init`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::harness::*;

/// The provider binary, beside `kup`: it belongs to the `kup-terraform` package (so that
/// building `kup` never needs protoc), which `cargo test --workspace` builds with it.
fn provider_binary() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_kup")).with_file_name("terraform-provider-kup");
    assert!(
        p.exists(),
        "{} is not built: run `cargo build -p kup-terraform` (`cargo test --workspace` builds it)",
        p.display()
    );
    p
}

fn terraform_present() -> bool {
    let found = Command::new("terraform")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("SKIPPED: terraform is not installed (the provider tests need the Terraform CLI)");
    }
    found
}

/// A Terraform working directory for `sim` with `resources` after the provider block.
fn workdir(root: &Path, sim: &Sim, resources: &str) -> PathBuf {
    let dir = root.join("tf");
    std::fs::create_dir_all(&dir).unwrap();
    let provider = provider_binary();
    let plugin_dir = provider.parent().unwrap();
    std::fs::write(
        root.join("terraform.rc"),
        format!(
            "provider_installation {{\n  dev_overrides {{\n    \"kup/kup\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
            plugin_dir.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("main.tf"),
        format!(
            r#"terraform {{
  required_providers {{
    kup = {{ source = "kup/kup" }}
  }}
}}

provider "kup" {{
  eks {{
    region        = "eu-west-1"
    endpoint      = "{}"
    simulate      = true
    speed         = {}
    poll_interval = "20ms"
  }}
}}

{resources}"#,
            sim.eks, sim.speed
        ),
    )
    .unwrap();
    dir
}

fn cluster(version: &str) -> String {
    format!(
        r#"resource "kup_cluster" "prod" {{
  name    = "prod-eu"
  version = "{version}"
  addon {{
    name    = "coredns"
    version = "compatible"
  }}
  addon {{
    name    = "kube-proxy"
    version = "compatible"
  }}
  node_group {{
    name            = "general"
    max_unavailable = "1"
  }}
  node_group {{
    name            = "payments"
    max_unavailable = "1"
  }}
}}
"#
    )
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("terraform");
    cmd.args(args)
        .arg("-no-color")
        .current_dir(dir)
        .env(
            "TF_CLI_CONFIG_FILE",
            dir.parent().unwrap().join("terraform.rc"),
        )
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .env_remove("TF_LOG")
        .stdin(Stdio::null());
    cmd
}

fn terraform(dir: &Path, args: &[&str]) -> Run {
    let out = command(dir, args).output().expect("terraform runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn terraform_plan_apply_converge_and_drift() {
    if !terraform_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = workdir(tmp.path(), &sim, &cluster("1.30"));
    let run = |args: &[&str]| terraform(&dir, args);

    let plan = run(&["plan", "-detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    for expected in [
        "+ resource \"kup_cluster\" \"prod\"",
        "\"prod-eu/control_plane/1.29: upgrade control plane 1.28 → 1.29",
        "\"prod-eu/control_plane/1.30: upgrade control plane 1.29",
        "\"prod-eu/node_group/general/1.30: roll node group general 1.28 → 1.30",
        "\"after prod-eu/control_plane/1.29: control_plane=1.29 general=1.28 payments=1.28\"",
        "\"after prod-eu/node_group/payments/1.30: control_plane=1.30 general=1.30 payments=1.30\"",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "missing {expected:?} in {plan:?}"
        );
    }
    assert!(sim.mutations().is_empty(), "plan changed the world");

    let apply = run(&["apply", "-auto-approve"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply.stdout.contains("Apply complete! Resources: 1 added"),
        "{apply:?}"
    );
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "prod-eu"), "1.30");
    assert_eq!(node_group_version(&w, "prod-eu", "general"), "1.30");
    assert_eq!(node_group_version(&w, "prod-eu", "payments"), "1.30");
    let hops = sim
        .mutations()
        .iter()
        .filter(|m| m["op"] == "UpdateClusterVersion")
        .count();
    assert_eq!(hops, 2, "one update per minor");
    // A finished run leaves no journal to resume.
    assert!(!dir.join(".kup/terraform/eks_prod-eu.journal").exists());

    let again = run(&["plan", "-detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("No changes."), "{again:?}");

    // Someone changes the update config in the console (through the EKS API).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        sim.eks_client()
            .await
            .update_nodegroup_config()
            .cluster_name("prod-eu")
            .nodegroup_name("general")
            .update_config(
                aws_sdk_eks::types::NodegroupUpdateConfig::builder()
                    .max_unavailable(3)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    wait_until("the config update to finish", || {
        find_cluster(&sim.world_json(), "prod-eu")["node_group"]["general"]["max_unavailable"] == 3
    });
    // The refresh reads the running value, so the plan changes it back (kup plans the
    // step that does).
    let drift = run(&["plan", "-detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{drift:?}");
    for expected in [
        "~ max_unavailable = \"3\" -> \"1\"",
        "\"prod-eu/node_group/general/config: set node group general max_unavailable 3 → 1\"",
    ] {
        assert!(
            drift.stdout.contains(expected),
            "missing {expected:?} in {drift:?}"
        );
    }
}

#[test]
fn impossible_version_and_bad_arguments_are_errors_at_their_attribute() {
    if !terraform_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = workdir(tmp.path(), &sim, &cluster("1.99"));
    let plan = terraform(&dir, &["plan"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    // Terraform quotes the line the diagnostic's attribute path leads to.
    for expected in [
        "Error: the provider does not offer Kubernetes 1.99",
        "version = \"1.99\"",
        "the provider offers: 1.28.15, 1.29.13, 1.30.11",
    ] {
        assert!(
            plan.stderr.contains(expected),
            "missing {expected:?} in {plan:?}"
        );
    }
    assert!(sim.mutations().is_empty());

    // kup's loader checks the arguments at `terraform validate`, before any provider runs.
    let bad = cluster("1.30").replace(
        "name            = \"payments\"",
        "name            = \"payments\"\n    strategy        = \"purple\"",
    );
    let dir = workdir(tmp.path(), &sim, &bad);
    let validate = terraform(&dir, &["validate"]);
    assert_eq!(validate.code, 1, "{validate:?}");
    for expected in [
        "Error: Unknown strategy \"purple\"",
        "strategy        = \"purple\"",
        "Hint: use strategy = \"rolling\" or strategy = \"blue_green\"",
    ] {
        assert!(
            validate.stderr.contains(expected),
            "missing {expected:?} in {validate:?}"
        );
    }
}

/// `terraform apply`, in its own process group so the provider it starts dies with it.
fn spawn_apply(dir: &Path) -> Child {
    command(dir, &["apply", "-auto-approve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("terraform starts")
}

#[test]
fn killed_terraform_apply_resumes_from_the_journal() {
    if !terraform_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Slow enough that the kill lands while the first update runs.
    let sim = Sim::start(tmp.path(), WORLD_ONE, 400.0, None);
    let dir = workdir(tmp.path(), &sim, &cluster("1.30"));
    let mut child = spawn_apply(&dir);
    wait_until("the first update", || {
        !sim.mutations().is_empty() || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
    });
    // SAFETY: kill(2) of the process group of our own child (terraform and its provider).
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let killed = child.wait_with_output().unwrap();
    let journal = dir.join(".kup/terraform/eks_prod-eu.journal");
    let text = std::fs::read_to_string(&journal).unwrap_or_else(|e| {
        panic!(
            "the killed apply left no journal ({e}); terraform said:\n{}\n{}",
            String::from_utf8_lossy(&killed.stdout),
            String::from_utf8_lossy(&killed.stderr)
        )
    });
    // The update was issued, so its step had started (its operation id may not have been
    // journaled yet: the kill can land between the request and that record).
    assert!(text.contains("\"step_started\""), "{text}");
    assert!(!sim.mutations().is_empty());

    let apply = terraform(&dir, &["apply", "-auto-approve"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .all()
            .contains("kup finished the apply that did not finish before"),
        "{apply:?}"
    );
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "prod-eu"), "1.30");
    assert_eq!(node_group_version(&w, "prod-eu", "payments"), "1.30");
    let hops = sim
        .mutations()
        .iter()
        .filter(|m| m["op"] == "UpdateClusterVersion")
        .count();
    assert_eq!(
        hops, 2,
        "the update in flight was waited on, not issued again"
    );
    assert!(!journal.exists());
}

#[test]
fn terraform_prints_the_checked_in_schema_and_kup_versions_reads_the_provider() {
    if !terraform_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = workdir(
        tmp.path(),
        &sim,
        r#"data "kup_versions" "prod" {
  cluster = "prod-eu"
}

output "current" {
  value = data.kup_versions.prod.current_version
}

output "offered" {
  value = data.kup_versions.prod.versions
}
"#,
    );
    // The document under schemas/ is what Terraform itself prints for this provider.
    let schema = terraform(&dir, &["providers", "schema", "-json"]);
    assert_eq!(schema.code, 0, "{schema:?}");
    let printed: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap();
    let checked_in: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("schemas")
                .join(kup_terraform::SCHEMA_FILE),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, checked_in);

    let apply = terraform(&dir, &["apply", "-auto-approve"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let out = terraform(&dir, &["output", "-json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["current"]["value"], "1.28", "{v}");
    let offered = v["offered"]["value"].as_array().unwrap();
    let versions: Vec<&str> = offered
        .iter()
        .map(|o| o["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions.first(), Some(&"1.28.15"), "{v}");
    assert!(versions.contains(&"1.30.11"), "{v}");
    // Support dates come from kup's release table, as the planner's warnings do.
    assert_eq!(offered[0]["end_of_support"], "2024-11-26", "{v}");
    assert_eq!(
        offered[0]["support"], "end of standard support on EKS",
        "{v}"
    );
    assert!(
        sim.mutations().is_empty(),
        "reading versions changed the world"
    );
}

#[test]
fn the_example_upgrades_the_simulated_cluster_and_converges() {
    if !terraform_present() {
        return;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/terraform");
    let tmp = tempfile::tempdir().unwrap();
    let world = std::fs::read_to_string(example.join("world.hcl")).unwrap();
    let sim = Sim::start(tmp.path(), &world, 3000.0, None);
    // The example as written, with the CLI configuration the tests use.
    let dir = workdir(tmp.path(), &sim, "");
    std::fs::copy(example.join("main.tf"), dir.join("main.tf")).unwrap();
    let endpoint = format!("endpoint={}", sim.eks);
    let apply = terraform(&dir, &["apply", "-auto-approve", "-var", &endpoint]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("\"1.30.11 (end of standard support on EKS: 2025-07-23)\""),
        "{apply:?}"
    );
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "prod-eu"), "1.30");
    assert_eq!(node_group_version(&w, "prod-eu", "payments"), "1.30");
    let again = terraform(&dir, &["plan", "-detailed-exitcode", "-var", &endpoint]);
    assert_eq!(again.code, 0, "{again:?}");
}
