//! `kup rehearse`: the simulated "real" clusters are copied into a second simulator, the
//! plan is applied there, and the predicted timeline must match what the apply against the
//! "real" simulator then takes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::harness::*;

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

/// The quickstart (EKS, GKE, AKS and K3s): rehearse, then apply for real and compare.
#[test]
fn rehearsal_predicts_the_apply_of_four_providers_within_ten_percent() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    std::fs::copy(examples.join("world.hcl"), tmp.path().join("world.hcl")).unwrap();
    // Both the rehearsal and the apply at 300×: kup's own work between steps (a few
    // milliseconds) weighs half as much in simulated time as at the default 600×, so a
    // busy machine moves the comparison less.
    let config = std::fs::read_to_string(examples.join("main.kup.hcl"))
        .unwrap()
        .replace("simulate = true\n", "simulate = true\n  speed    = 300\n")
        .replace(
            "simulate        = true\n",
            "simulate        = true\n  speed           = 300\n",
        );
    assert_eq!(
        config.matches("speed").count(),
        4,
        "every provider block: {config}"
    );
    std::fs::write(tmp.path().join("main.kup.hcl"), config).unwrap();
    let d = tmp.path().to_str().unwrap();
    let svg = tmp.path().join("timeline.svg");
    let run = kup(&[
        "rehearse",
        "-json",
        "-speed",
        "300",
        "-graph",
        svg.to_str().unwrap(),
        d,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let ev = events(&run.stdout);
    let steps = of_type(&ev, "rehearsal_step");
    let finished = of_type(&ev, "rehearsal_finished");
    assert_eq!(finished.len(), 1, "{run:?}");
    let verdict = finished[0];
    assert_eq!(verdict["outcome"], "completed", "{verdict:#}");
    assert_eq!(verdict["clusters"], 4);
    let predicted_total = verdict["total_secs"].as_f64().unwrap();
    let predicted: BTreeMap<String, f64> = steps
        .iter()
        .map(|s| {
            assert_eq!(s["outcome"], "done", "{s:#}");
            (
                s["step"].as_str().unwrap().to_string(),
                s["duration_secs"].as_f64().unwrap(),
            )
        })
        .collect();
    // The quickstart's PDBs hold drains up until replacements are Ready: the rehearsal saw
    // the refusals.
    let blocked = verdict["blocked_drains"].to_string();
    assert!(blocked.contains("refused"), "{verdict:#}");
    // The chart has one bar per step.
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg"), "{chart}");
    assert_eq!(chart.matches("<rect x=").count(), steps.len(), "{chart}");

    // Nothing real moved.
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let p: Value = serde_json::from_str(plan.stdout.lines().last().unwrap()).unwrap();
    let real_steps: Vec<&str> = p["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        real_steps.len(),
        predicted.len(),
        "the rehearsal ran the real plan's steps: {real_steps:?} vs {:?}",
        predicted.keys()
    );

    // The apply against the "real" simulator.
    let apply = kup(&["apply", "-auto-approve", "-json", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let ev = events(&apply.stdout);
    let actual: BTreeMap<String, f64> = of_type(&ev, "step_finished")
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_string(),
                e["elapsed_secs"].as_f64().unwrap() * 300.0,
            )
        })
        .collect();
    let actual_total = of_type(&ev, "apply_finished")[0]["elapsed_secs"]
        .as_f64()
        .unwrap()
        * 300.0;
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        predicted.keys().collect::<Vec<_>>(),
        "the same steps ran"
    );
    let error = (predicted_total - actual_total).abs() / actual_total;
    assert!(
        error < 0.10,
        "predicted {predicted_total:.0} s, the apply took {actual_total:.0} s ({:.1}% off)",
        error * 100.0
    );
    // Long steps are each in the right range too: a copy that lost the workloads would
    // drain in no time.
    for (step, want) in &actual {
        if *want < 600.0 {
            continue;
        }
        let got = predicted[step];
        assert!(
            (got - want).abs() / want < 0.30,
            "{step}: predicted {got:.0} s, took {want:.0} s"
        );
    }
}

const BLOCKED_WORLD: &str = r#"
cluster "pay-eu" {
  region  = "eu-west-1"
  version = "1.30"
  node_group "apps" {
    version         = "1.30"
    min_size        = 2
    max_size        = 4
    desired_size    = 2
    max_unavailable = 1
  }
  workload "ledger" {
    namespace = "pay"
    replicas  = 2
    cpu       = "250m"
    memory    = "256Mi"
    node_group = "apps"
    pdb { min_available = 2 }
  }
}
"#;

const BLOCKED_CONFIG: &str = r#"
provider "eks" {
  region   = "eu-west-1"
  simulate = true
  world    = "world.hcl"
}

cluster "pay" {
  name    = "pay-eu"
  version = "1.31"
  node_group "apps" {
    version         = "1.31"
    strategy        = "blue_green"
    max_unavailable = 1
    blue_green {
      soak = "1m"
    }
    drain {
      timeout = "5m"
    }
  }
}
"#;

/// A budget that allows no disruption: the rehearsal's drain fails as the real one would,
/// the steps after it are not run, and the exit code says so.
#[test]
fn rehearsal_stops_at_a_drain_a_budget_blocks_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("world.hcl"), BLOCKED_WORLD).unwrap();
    std::fs::write(tmp.path().join("main.kup.hcl"), BLOCKED_CONFIG).unwrap();
    let d = tmp.path().to_str().unwrap();
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let before: Value = serde_json::from_str(plan.stdout.lines().last().unwrap()).unwrap();
    let html = tmp.path().join("timeline.html");
    let run = kup(&["rehearse", "-graph", html.to_str().unwrap(), d]);
    assert_eq!(run.code, 2, "{run:?}");
    let out = run.stdout.clone();
    assert!(out.contains("Rehearsal failed"), "{run:?}");
    assert!(
        out.contains("✗") && out.contains("/drain"),
        "the drain is the failed step: {run:?}"
    );
    assert!(
        out.contains("pay/ledger") && out.contains("refused"),
        "the budget is named: {run:?}"
    );
    assert!(out.contains("not run"), "{run:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("class=\"failed\""),
        "{page}"
    );

    // The JSON verdict carries the same.
    let run = kup(&["rehearse", "-json", d]);
    assert_eq!(run.code, 2, "{run:?}");
    let ev = events(&run.stdout);
    let verdict = of_type(&ev, "rehearsal_finished")[0];
    assert_eq!(verdict["outcome"], "failed");
    let steps = of_type(&ev, "rehearsal_step");
    let failed: Vec<&&Value> = steps.iter().filter(|s| s["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{steps:#?}");
    assert!(failed[0]["step"].as_str().unwrap().ends_with("/drain"));
    assert!(
        steps
            .iter()
            .any(|s| s["outcome"] == "not_run" && s["step"].as_str().unwrap().ends_with("/delete")),
        "{steps:#?}"
    );
    let blocked = verdict["blocked_drains"].to_string();
    assert!(
        blocked.contains("node group apps: PodDisruptionBudget pay/ledger"),
        "the planner's prediction from the real cluster: {verdict:#}"
    );

    // The real world was not touched: the same plan as before the rehearsals (a green
    // group, a cordon or an upgrade would each change it), and no mutating call.
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let after: Value = serde_json::from_str(plan.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(after["plan"]["clusters"][0]["from"], "1.30", "{after:#}");
    assert_eq!(after["plan"]["id"], before["plan"]["id"], "{after:#}");
    let world = std::fs::read_to_string(tmp.path().join(".kup/sim/world.hcl")).unwrap();
    assert!(
        !world.contains("update \""),
        "no update was started: {world}"
    );
    assert!(!world.contains("apps-1-31"), "no green group: {world}");
}

const TIGHT_WORLD: &str = r#"
k3s_cluster "edge" {
  distribution = "k3s"
  version      = "v1.30.9+k3s1"
  servers      = 1
  agents       = 2
  suc {
    installed = true
  }
  channel_server {
    channels = {
      "v1.31" = "v1.31.4+k3s1"
      stable  = "v1.31.4+k3s1"
    }
  }
  workload "batch" {
    namespace = "edge"
    replicas  = 5
    cpu       = "2"
    memory    = "1Gi"
  }
}
"#;

const TIGHT_CONFIG: &str = r#"
provider "k3s" {
  simulate = true
  world    = "world.hcl"
}

cluster "edge" {
  version = "v1.31.4+k3s1"
  node_group "servers" {
    max_unavailable = 1
  }
  node_group "agents" {
    max_unavailable = 1
    drain {
      timeout = "10m"
    }
  }
}
"#;

/// Three 4-CPU nodes and 10 CPUs of pods: whichever node drains, two pods wait for room.
#[test]
fn rehearsal_reports_pods_that_waited_for_room() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("world.hcl"), TIGHT_WORLD).unwrap();
    std::fs::write(tmp.path().join("main.kup.hcl"), TIGHT_CONFIG).unwrap();
    let d = tmp.path().to_str().unwrap();
    let run = kup(&["rehearse", "-json", d]);
    assert_eq!(run.code, 0, "{run:?}");
    let ev = events(&run.stdout);
    let verdict = of_type(&ev, "rehearsal_finished")[0];
    let capacity: Vec<&str> = verdict["capacity"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(
        capacity
            .iter()
            .any(|c| c.starts_with("cluster.edge: ") && c.contains("waited for a node with room")),
        "{verdict:#}"
    );
}
