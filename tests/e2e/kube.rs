//! The Kubernetes side against the simulator's Kubernetes API: workloads with
//! PodDisruptionBudgets, blocked drains, blue/green node groups, and SIGKILL in every
//! blue/green phase. The simulator's audit says whether a budget was ever violated and
//! whether any pod was lost.

use crate::harness::*;

/// One cluster with workloads: a PDB-protected Deployment, a StatefulSet, a DaemonSet.
pub fn world_with_workloads(extra_pdb: &str) -> String {
    format!(
        r#"
cluster "prod-eu" {{
  region  = "eu-west-1"
  version = "1.28"
  node_group "general" {{
    version         = "1.28"
    instance_types  = ["m5.xlarge"]
    min_size        = 3
    max_size        = 8
    desired_size    = 3
    max_unavailable = 1
  }}
  workload "web" {{
    namespace = "shop"
    replicas  = 6
    cpu       = "250m"
    memory    = "256Mi"
    pdb {{ min_available = 4 }}
  }}
  workload "db" {{
    namespace = "shop"
    kind      = "StatefulSet"
    replicas  = 3
    cpu       = "500m"
    memory    = "1Gi"
    pdb {{ max_unavailable = 1 }}
  }}
  workload "agent" {{
    namespace = "monitoring"
    kind      = "DaemonSet"
    cpu       = "50m"
    memory    = "64Mi"
  }}
  {extra_pdb}
}}
"#
    )
}

fn node_group_names(world: &serde_json::Value, cluster: &str) -> Vec<String> {
    find_cluster(world, cluster)["node_group"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn audit(sim: &Sim, cluster: &str) -> serde_json::Value {
    sim.kube_audit(cluster)
}

/// No pod lost, no budget ever violated, every workload back; returns the audit.
fn assert_nothing_lost(sim: &Sim) -> serde_json::Value {
    let a = audit(sim, "prod-eu");
    let text = a.to_string();
    let lost = a["lost_pods"]
        .as_array()
        .unwrap_or_else(|| panic!("audit has no lost_pods: {text}"));
    assert!(lost.is_empty(), "pods lost: {text}");
    let pdbs = a["pdbs"]
        .as_object()
        .unwrap_or_else(|| panic!("audit has no pdbs: {text}"));
    assert!(
        pdbs.contains_key("shop/web") && pdbs.contains_key("shop/db"),
        "{text}"
    );
    for (name, p) in pdbs {
        assert_eq!(p["violated"], false, "PDB {name} violated: {text}");
    }
    let unavailable = a["unavailable_workloads"]
        .as_array()
        .unwrap_or_else(|| panic!("{text}"));
    assert!(unavailable.is_empty(), "workloads not back: {text}");
    a
}

fn bg_config(target: &str, soak: &str) -> String {
    format!(
        r#"cluster "prod" {{
  name    = "prod-eu"
  version = "{target}"
  node_group "general" {{
    version         = "{target}"
    strategy        = "blue_green"
    max_unavailable = 1
    blue_green {{
      soak = "{soak}"
    }}
    drain {{
      timeout = "5s"
    }}
  }}
}}
"#
    )
}

#[test]
fn rolling_upgrade_with_workloads_keeps_every_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world_with_workloads(""), 3000.0, None);
    let dir = config_dir(
        tmp.path(),
        &sim,
        "cluster \"prod\" {\n  name = \"prod-eu\"\n  version = \"1.29\"\n  node_group \"general\" {\n    version = \"1.29\"\n  }\n}\n",
    );
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("Nodes (from the Kubernetes API)"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("general: 3 nodes (3 Ready)"),
        "{plan:?}"
    );
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert_eq!(
        node_group_version(&sim.world_json(), "prod-eu", "general"),
        "1.29"
    );
    let a = assert_nothing_lost(&sim);
    assert!(
        a["evictions"].as_u64().unwrap() > 0,
        "the managed update should have evicted pods: {a}"
    );
}

#[test]
fn a_never_allowing_pdb_is_predicted_and_apply_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let stuck = r#"workload "ledger" {
    namespace = "payments"
    replicas  = 2
    cpu       = "100m"
    memory    = "128Mi"
    pdb { min_available = 2 }
  }"#;
    let sim = Sim::start(tmp.path(), &world_with_workloads(stuck), 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &bg_config("1.29", "1m"));
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("blocked:") && plan.stdout.contains("payments/ledger"),
        "{plan:?}"
    );
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        apply.stderr.contains("payments/ledger") && apply.stderr.contains("-allow-blocked-drain"),
        "{apply:?}"
    );
    assert!(
        sim.mutations().is_empty(),
        "a refused apply must change nothing"
    );

    // Forced through, the drain fails after its timeout naming the PDB, and the
    // replacement is rolled back: blue serves again, green is gone, no pod lost.
    let forced = kup(&["apply", "-auto-approve", "-allow-blocked-drain", d]);
    assert_eq!(forced.code, 1, "{forced:?}");
    assert!(forced.all().contains("payments/ledger"), "{forced:?}");
    assert!(forced.all().contains("rolling back"), "{forced:?}");
    let w = sim.world_json();
    let groups = node_group_names(&w, "prod-eu");
    assert_eq!(groups, ["general"], "green must be removed by the rollback");
    assert_nothing_lost(&sim);

    // Once the budget is relaxed (here: removed), apply goes through.
    let r = sim.kube_request(
        "prod-eu",
        reqwest::Method::DELETE,
        "/apis/policy/v1/namespaces/payments/poddisruptionbudgets/ledger",
    );
    assert!(r.status().is_success(), "deleting the PDB: {}", r.status());
    let done = kup(&["apply", "-auto-approve", d]);
    assert_eq!(done.code, 0, "{done:?}");
    let w = sim.world_json();
    let groups = node_group_names(&w, "prod-eu");
    assert_eq!(groups, ["general-1-29"]);
}

#[test]
fn blue_green_replacement_completes_and_records_the_live_colour() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world_with_workloads(""), 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &bg_config("1.29", "5m"));
    let d = dir.to_str().unwrap();
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let w = sim.world_json();
    let groups = node_group_names(&w, "prod-eu");
    assert_eq!(groups, ["general-1-29"]);
    let a = assert_nothing_lost(&sim);
    assert!(
        a["evictions"].as_u64().unwrap() > 0,
        "kup's drain should have evicted pods: {a}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_path(&dir)).unwrap()).unwrap();
    assert_eq!(
        state["clusters"]["cluster.prod"]["live_colours"]["general"],
        "general-1-29"
    );
    // The next upgrade treats the live colour as blue.
    std::fs::write(
        dir.join("main.kup.hcl"),
        std::fs::read_to_string(dir.join("main.kup.hcl"))
            .unwrap()
            .replace("1.29", "1.30"),
    )
    .unwrap();
    let plan = kup(&["plan", d]);
    assert!(
        plan.stdout
            .contains("general-1-30 at 1.30 (green, cloned from general-1-29)"),
        "{plan:?}"
    );
}

#[test]
fn sigkill_in_every_blue_green_phase_then_resume() {
    let tmp = tempfile::tempdir().unwrap();
    // Slower, so each phase lasts long enough to be killed in.
    let sim = Sim::start(tmp.path(), &world_with_workloads(""), 300.0, None);
    let dir = config_dir(tmp.path(), &sim, &bg_config("1.29", "10m"));
    let d = dir.to_str().unwrap();
    let journal = journal_path(&dir);
    for phase in ["create", "ready", "cordon", "drain", "soak", "delete"] {
        let needle = "\"step_started\",\"run_id\"";
        let step = format!("prod/node_group/general/1.29/{phase}");
        let mut child = spawn_kup(&["apply", "-auto-approve", d]);
        wait_until(&format!("phase {phase} to start"), || {
            std::fs::read_to_string(&journal)
                .map(|j| j.lines().any(|l| l.contains(needle) && l.contains(&step)))
                .unwrap_or(false)
                || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
        });
        assert!(
            child.try_wait().unwrap().is_none(),
            "kup finished before phase {phase} could be interrupted"
        );
        // SAFETY: plain kill(2) of our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = child.wait();
    }
    let last = kup(&["apply", "-auto-approve", d]);
    assert_eq!(last.code, 0, "{last:?}");
    let w = sim.world_json();
    let groups = node_group_names(&w, "prod-eu");
    assert_eq!(groups, ["general-1-29"], "one green group, no orphan");
    let creates = sim
        .mutations()
        .iter()
        .filter(|m| m["op"] == "CreateNodegroup")
        .count();
    assert_eq!(creates, 1, "the green group was created exactly once");
    assert_nothing_lost(&sim);
}
