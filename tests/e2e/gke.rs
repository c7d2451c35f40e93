//! GKE through the real google-cloud-container-v1 client against the simulator's GKE
//! REST API (built only with the `gke` feature).

use crate::harness::*;

fn world(extra: &str) -> String {
    format!(
        r#"
gke_cluster "shop" {{
  project  = "shop-prod"
  location = "europe-west1-b"
  version  = "1.29.8-gke.1031000"
  node_pool "default" {{
    version         = "1.29.8-gke.1031000"
    node_count      = 3
    machine_type    = "e2-standard-4"
    max_surge       = 1
    max_unavailable = 0
  }}
  workload "storefront" {{
    namespace = "shop"
    replicas  = 6
    cpu       = "200m"
    memory    = "256Mi"
    pdb {{ min_available = 4 }}
  }}
  {extra}
}}
"#
    )
}

fn config(root: &std::path::Path, sim: &Sim, target: &str) -> std::path::PathBuf {
    config_with(
        root,
        sim,
        target,
        "max_unavailable = 0\n    max_surge       = 1",
    )
}

/// The configuration with `pool` as the body of node_group "default" (after its version).
fn config_with(root: &std::path::Path, sim: &Sim, target: &str, pool: &str) -> std::path::PathBuf {
    let dir = root.join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.kup.hcl"),
        format!(
            r#"provider "gke" {{
  project       = "shop-prod"
  location      = "europe-west1-b"
  endpoint      = "{}"
  simulate      = true
  speed         = {speed}
  poll_interval = "20ms"
}}

cluster "shop" {{
  version = "{target}"
  node_group "default" {{
    version         = "{target}"
    {pool}
  }}
}}
"#,
            sim.eks,
            speed = sim.speed,
        ),
    )
    .unwrap();
    dir
}

fn gke_version(sim: &Sim) -> (String, String) {
    let w = sim.world_json();
    let c = &w["gke_cluster"]["shop"];
    (
        c["version"].as_str().unwrap().to_string(),
        c["node_pool"]["default"]["version"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

fn assert_budgets_kept(sim: &Sim) {
    let a = sim.kube_audit("shop");
    let text = a.to_string();
    assert!(a["lost_pods"].as_array().unwrap().is_empty(), "{text}");
    assert_eq!(a["pdbs"]["shop/storefront"]["violated"], false, "{text}");
    assert!(
        a["unavailable_workloads"].as_array().unwrap().is_empty(),
        "{text}"
    );
}

#[test]
fn multi_hop_master_with_a_pool_rollout_where_skew_requires_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world(""), 3000.0, None);
    let dir = config(tmp.path(), &sim, "1.32");
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&plan.stdout).unwrap();
    let ids: Vec<&str> = saved.plan.steps.iter().map(|s| s.id.as_str()).collect();
    // GKE nodes may trail the master by two minors: before 1.32 the pool must move.
    assert_eq!(
        ids,
        [
            "shop/control_plane/1.30",
            "shop/control_plane/1.31",
            "shop/node_group/default/1.31",
            "shop/control_plane/1.32",
            "shop/node_group/default/1.32",
            "shop/postflight",
        ]
    );
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let (master, pool) = gke_version(&sim);
    assert!(
        master.starts_with("1.32.") && pool.starts_with("1.32."),
        "{master} {pool}"
    );
    assert_budgets_kept(&sim);
    assert!(kup(&["apply", "-auto-approve", d])
        .stdout
        .contains("No changes."));
}

#[test]
fn sigkill_while_an_operation_runs_then_resume_issues_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world(""), 300.0, None);
    let dir = config(tmp.path(), &sim, "1.31");
    let d = dir.to_str().unwrap();
    for n in 1..3 {
        let mut child = spawn_kup(&["apply", "-auto-approve", d]);
        wait_until("an operation", || {
            sim.mutations().len() >= n || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
        });
        // SAFETY: plain kill(2) of our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = child.wait();
    }
    let last = kup(&["apply", "-auto-approve", d]);
    assert_eq!(last.code, 0, "{last:?}");
    let (master, pool) = gke_version(&sim);
    assert!(
        master.starts_with("1.31.") && pool.starts_with("1.31."),
        "{master} {pool}"
    );
    // Three steps (two master hops, one pool rollout), three operations: none twice,
    // and GKE never had to refuse a second operation on the cluster.
    assert_eq!(sim.mutations().len(), 3, "{:#?}", sim.mutations());
    let refused = sim
        .calls()
        .iter()
        .filter(|c| {
            c["error"]
                .as_str()
                .is_some_and(|e| e.contains("FAILED_PRECONDITION"))
        })
        .count();
    assert_eq!(refused, 0, "{:#?}", sim.calls());
    assert_budgets_kept(&sim);
}

#[test]
fn throttling_and_server_errors_are_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        tmp.path(),
        &world(""),
        3000.0,
        Some("seed=3,throttle=0.2,error500=0.1"),
    );
    let dir = config(tmp.path(), &sim, "1.30");
    let apply = kup(&["apply", "-auto-approve", dir.to_str().unwrap()]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let injected = get_json(&format!("{}/faults", sim.admin))["injected"]
        .as_u64()
        .unwrap();
    assert!(injected > 0, "no fault was exercised");
    assert!(gke_version(&sim).0.starts_with("1.30."));
    assert_eq!(
        sim.mutations().len(),
        2,
        "one master hop and one pool rollout, no duplicates"
    );
}

#[test]
fn a_release_channel_is_reported_as_a_drift_source() {
    let tmp = tempfile::tempdir().unwrap();
    let world = world("").replace(
        "version  = \"1.29.8-gke.1031000\"\n  node_pool",
        "version  = \"1.29.8-gke.1031000\"\n  release_channel = \"STABLE\"\n  node_pool",
    );
    assert!(world.contains("STABLE"));
    let sim = Sim::start(tmp.path(), &world, 3000.0, None);
    let dir = config(tmp.path(), &sim, "1.29");
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains("release channel STABLE upgrades this cluster automatically"),
        "{plan:?}"
    );
    let drift = kup(&["drift", d]);
    assert!(
        drift
            .stdout
            .contains("drift source: release channel STABLE"),
        "{drift:?}"
    );
    // A note about what the channel may do, not drift by itself.
    assert_eq!(drift.code, 0, "{drift:?}");
}

const NATIVE_BLUE_GREEN: &str = r#"strategy        = "blue_green"
    max_unavailable = 1
    blue_green {
      soak                      = "2h"
      complete_when_healthy_for = "5m"
    }"#;

fn pool_settings(sim: &Sim) -> serde_json::Value {
    sim.world_json()["gke_cluster"]["shop"]["node_pool"]["default"].clone()
}

fn calls_of(sim: &Sim, op: &str) -> usize {
    sim.calls()
        .iter()
        .filter(|c| c["op"].as_str() == Some(op) && c["error"].is_null())
        .count()
}

#[test]
fn native_blue_green_keeps_budgets_and_completes_when_healthy() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world(""), 3000.0, None);
    let dir = config_with(tmp.path(), &sim, "1.30", NATIVE_BLUE_GREEN);
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&plan.stdout).unwrap();
    let ids: Vec<&str> = saved.plan.steps.iter().map(|s| s.id.as_str()).collect();
    // GKE's own BLUE_GREEN: the pool switches strategy, then one upgrade replaces it.
    assert_eq!(
        ids,
        [
            "shop/node_group/default/config",
            "shop/control_plane/1.30",
            "shop/node_group/default/1.30",
            "shop/postflight",
        ]
    );
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply.stdout.contains("completing the blue/green upgrade"),
        "{apply:?}"
    );
    let (master, pool) = gke_version(&sim);
    assert!(
        master.starts_with("1.30.") && pool.starts_with("1.30."),
        "{master} {pool}"
    );
    let np = pool_settings(&sim);
    assert_eq!(np["strategy"], "BLUE_GREEN", "{np:#}");
    assert_eq!(
        np["node_pool_soak_seconds"].as_f64(),
        Some(7200.0),
        "{np:#}"
    );
    // The soak was cut short once the health window held: exactly one completeUpgrade.
    assert_eq!(
        calls_of(
            &sim,
            "projects.locations.clusters.nodePools.completeUpgrade"
        ),
        1,
        "{:#?}",
        sim.calls()
    );
    assert_budgets_kept(&sim);
    assert!(kup(&["apply", "-auto-approve", d])
        .stdout
        .contains("No changes."));
}

#[test]
fn a_failed_native_blue_green_upgrade_is_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    // Already BLUE_GREEN with the configured settings, so the armed failure hits the
    // version upgrade itself (it would fail any pool update).
    let world = world("").replace(
        "max_unavailable = 0\n  }",
        "max_unavailable = 0\n    strategy = \"BLUE_GREEN\"\n    batch_node_count = 1\n    node_pool_soak_seconds = 7200\n  }",
    );
    assert!(world.contains("BLUE_GREEN"));
    let sim = Sim::start(
        tmp.path(),
        &world,
        3000.0,
        Some("fail=shop/default:INTERNAL"),
    );
    // The master moves to 1.30 first; then the pool's upgrade fails and is rolled back.
    let dir = config_with(tmp.path(), &sim, "1.30", NATIVE_BLUE_GREEN);
    let d = dir.to_str().unwrap();
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        apply.stdout.contains("kup rolled the upgrade back")
            || apply.stderr.contains("kup rolled the upgrade back"),
        "{apply:?}"
    );
    assert_eq!(
        calls_of(&sim, "projects.locations.clusters.nodePools.rollback"),
        1,
        "{:#?}",
        sim.calls()
    );
    let (master, pool) = gke_version(&sim);
    assert!(master.starts_with("1.30."), "{master}");
    assert!(
        pool.starts_with("1.29."),
        "the pool stays where it was: {pool}"
    );
    assert_budgets_kept(&sim);
}

#[test]
fn apply_rollback_undoes_a_native_blue_green_upgrade_caught_soaking() {
    let tmp = tempfile::tempdir().unwrap();
    let world = world("").replace(
        "max_unavailable = 0\n  }",
        "max_unavailable = 0\n    strategy = \"BLUE_GREEN\"\n    batch_node_count = 1\n    node_pool_soak_seconds = 21600\n  }",
    );
    let sim = Sim::start(tmp.path(), &world, 3000.0, None);
    // No early completion: the pool soaks for six simulated hours (7 s here).
    let dir = config_with(
        tmp.path(),
        &sim,
        "1.30",
        "strategy = \"blue_green\"\n    max_unavailable = 1\n    blue_green { soak = \"6h\" }",
    );
    let d = dir.to_str().unwrap();
    let pool_url = format!(
        "{}/v1/projects/shop-prod/locations/europe-west1-b/clusters/shop/nodePools/default",
        sim.eks
    );
    let mut child = spawn_kup(&["apply", "-auto-approve", d]);
    wait_until("the blue/green upgrade to soak", || {
        get_json(&pool_url)["updateInfo"]["blueGreenInfo"]["phase"] == "NODE_POOL_SOAKING"
            || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
    });
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
    let rb = kup(&["apply", "-rollback", "-auto-approve", d]);
    assert_eq!(rb.code, 0, "{rb:?}");
    assert!(rb.stdout.contains("rollback"), "{rb:?}");
    assert_eq!(
        calls_of(&sim, "projects.locations.clusters.nodePools.rollback"),
        1,
        "{:#?}",
        sim.calls()
    );
    let (master, pool) = gke_version(&sim);
    assert!(master.starts_with("1.30."), "{master}");
    assert!(
        pool.starts_with("1.29."),
        "the blue nodes serve again: {pool}"
    );
    assert!(
        get_json(&pool_url)["updateInfo"].is_null(),
        "{}",
        get_json(&pool_url)
    );
    assert_budgets_kept(&sim);
}

#[test]
fn drain_limits_reach_gke_as_the_pools_node_drain_config() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world(""), 3000.0, None);
    let dir = config_with(
        tmp.path(),
        &sim,
        "1.29",
        "max_unavailable = 0\n    max_surge       = 1\n    drain {\n      timeout      = \"10m\"\n      grace_period = \"30s\"\n    }",
    );
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains("drains with PDB timeout 10m, grace 30s"),
        "{plan:?}"
    );
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let np = pool_settings(&sim);
    assert_eq!(
        np["drain_config"]["pdb_timeout_seconds"].as_f64(),
        Some(600.0),
        "{np:#}"
    );
    assert_eq!(
        np["drain_config"]["grace_termination_seconds"].as_f64(),
        Some(30.0),
        "{np:#}"
    );
    assert!(kup(&["plan", d]).stdout.contains("No changes."));
}

#[test]
fn maintenance_exclusions_warn_and_respect_maintenance_window_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let world = world(
        r#"maintenance_exclusion "freeze" {
    start_time = "2026-01-01T00:00:00Z"
    end_time   = "2099-01-01T00:00:00Z"
    scope      = "NO_MINOR_UPGRADES"
  }"#,
    );
    let sim = Sim::start(tmp.path(), &world, 3000.0, None);
    let dir = config(tmp.path(), &sim, "1.30");
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stderr.contains(
            "cluster.shop: now is inside the cluster's maintenance exclusion \"freeze\" (NO_MINOR_UPGRADES"
        ),
        "{plan:?}"
    );
    let refused = kup(&["apply", "-auto-approve", "-respect-maintenance-window", d]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("not applying (-respect-maintenance-window)"),
        "{refused:?}"
    );
    assert!(sim.mutations().is_empty(), "{:#?}", sim.mutations());
    // A saved plan is checked when it is applied, not when it was made.
    let file = tmp.path().join("upgrade.kupplan");
    let saved = kup(&["plan", "-out", file.to_str().unwrap(), d]);
    assert_eq!(saved.code, 0, "{saved:?}");
    let refused = kup(&[
        "apply",
        "-respect-maintenance-window",
        file.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("maintenance exclusion \"freeze\""),
        "{refused:?}"
    );
    assert!(sim.mutations().is_empty(), "{:#?}", sim.mutations());
    // Without the flag kup goes ahead, as GKE itself would for a user's upgrade.
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(gke_version(&sim).0.starts_with("1.30."));
}

#[test]
fn latest_and_default_aliases_resolve_to_exact_versions_in_the_saved_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world(""), 3000.0, None);
    let server = get_json(&format!(
        "{}/v1/projects/shop-prod/locations/europe-west1-b/serverConfig",
        sim.eks
    ));
    let regular_default = server["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "REGULAR")
        .unwrap()["defaultVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for (alias, want) in [("-", regular_default.clone()), ("latest", String::new())] {
        let dir = config_with(
            tmp.path(),
            &sim,
            alias,
            "max_unavailable = 0\n    max_surge       = 1",
        );
        // The node group has no version: it follows the resolved cluster version.
        let text = std::fs::read_to_string(dir.join("main.kup.hcl"))
            .unwrap()
            .replace(&format!("    version         = \"{alias}\"\n"), "");
        std::fs::write(dir.join("main.kup.hcl"), text).unwrap();
        let d = dir.to_str().unwrap();
        let plan = kup(&["plan", "-json", d]);
        assert_eq!(plan.code, 0, "{plan:?}");
        let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&plan.stdout).unwrap();
        let c = &saved.desired.clusters[0];
        let to = saved.plan.clusters[0].to.to_string();
        assert_eq!(c.version.to_string(), to);
        if alias == "-" {
            // The cluster is on the REGULAR channel: "-" is that channel's default.
            assert_eq!(to, want);
        } else {
            let newest = server["validMasterVersions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().parse::<kup_engine::Version>().unwrap())
                .max()
                .unwrap();
            assert_eq!(to, newest.to_string());
        }
        let last = &saved.plan.steps[saved.plan.steps.len() - 2];
        assert_eq!(saved.plan.steps.last().unwrap().id, "shop/postflight");
        assert_eq!(
            last.id,
            format!("shop/node_group/default/{}", c.version.minor()),
            "the pool follows the resolved version"
        );
    }
}

#[test]
fn kup_driven_blue_green_on_gke_creates_and_deletes_pools_within_budgets() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world(""), 3000.0, None);
    let dir = config_with(
        tmp.path(),
        &sim,
        "1.30",
        "strategy        = \"blue_green\"\n    max_unavailable = 1\n    blue_green {\n      native = false\n      soak   = \"2m\"\n    }",
    );
    let d = dir.to_str().unwrap();
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&plan.stdout).unwrap();
    let ids: Vec<&str> = saved.plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "shop/control_plane/1.30",
            "shop/node_group/default/1.30/create",
            "shop/node_group/default/1.30/ready",
            "shop/node_group/default/1.30/cordon",
            "shop/node_group/default/1.30/drain",
            "shop/node_group/default/1.30/soak",
            "shop/node_group/default/1.30/delete",
            "shop/postflight",
        ]
    );
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let pools = sim.world_json()["gke_cluster"]["shop"]["node_pool"].clone();
    let names: Vec<&String> = pools.as_object().unwrap().keys().collect();
    assert_eq!(names, ["default-1-30"], "{pools:#}");
    assert!(pools["default-1-30"]["version"]
        .as_str()
        .unwrap()
        .starts_with("1.30."));
    assert_eq!(
        calls_of(&sim, "projects.locations.clusters.nodePools.create"),
        1
    );
    assert_eq!(
        calls_of(&sim, "projects.locations.clusters.nodePools.delete"),
        1
    );
    // The blue pool was drained through the PDB before GKE deleted it: nothing lost.
    assert_budgets_kept(&sim);
    let again = kup(&["plan", d]);
    assert!(again.stdout.contains("No changes."), "{again:?}");
}
