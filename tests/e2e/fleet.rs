//! Rollouts in waves: ordering, soaks that end the apply and a later apply that goes on,
//! `max_parallel`, and a failing wave that stops the waves after it.

use serde_json::Value;

use crate::harness::*;

/// Four EKS clusters at 1.28, one node group each.
fn world() -> String {
    ["dev-1", "stg-1", "prod-1", "prod-2"]
        .iter()
        .map(|c| {
            format!(
                r#"
cluster "{c}" {{
  region  = "eu-west-1"
  version = "1.28"
  node_group "general" {{
    version         = "1.28"
    min_size        = 1
    max_size        = 4
    desired_size    = 2
    max_unavailable = 1
  }}
}}
"#
            )
        })
        .collect()
}

/// Every cluster to 1.29, in three waves; `soak` between them.
fn config(soak: &str) -> String {
    let clusters: String = ["dev-1", "stg-1", "prod-1", "prod-2"]
        .iter()
        .map(|c| {
            format!(
                r#"
cluster "{c}" {{
  version = "1.29"
  node_group "general" {{
    max_unavailable = 1
  }}
}}
"#
            )
        })
        .collect();
    format!(
        r#"{clusters}
rollout "q3" {{
  wave "canary" {{
    clusters = ["dev-*"]
  }}
  wave "staging" {{
    clusters = ["stg-1"]
    after    = ["canary"]
    soak     = "{soak}"
  }}
  wave "prod" {{
    clusters     = ["prod-*"]
    after        = ["staging"]
    soak         = "{soak}"
    max_parallel = 1
  }}
}}
"#
    )
}

/// Mutating calls per cluster, in the order the simulator received them.
fn order_of_clusters(sim: &Sim) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in sim.mutations() {
        let c = m["cluster"].as_str().unwrap_or("").to_string();
        if out.last() != Some(&c) {
            out.push(c);
        }
    }
    out
}

fn waiting(dir: &std::path::Path) -> Vec<Value> {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(state_path(dir)).unwrap()).unwrap();
    state["waiting"].as_array().cloned().unwrap_or_default()
}

#[test]
fn waves_run_in_order_and_a_soak_ends_the_apply_until_it_has_passed() {
    let tmp = tempfile::tempdir().unwrap();
    // 60 simulated minutes of soak = 6 s at speed 600.
    let sim = Sim::start(tmp.path(), &world(), 600.0, None);
    let dir = config_dir(tmp.path(), &sim, &config("60m"));
    let d = dir.to_str().unwrap();

    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains(
            "rollout q3: start wave staging once canary finished and soaked 1h (cluster.stg-1)"
        ),
        "{plan:?}"
    );

    // The canary wave runs; staging must soak: the apply ends, successfully, saying when.
    let first = kup(&["apply", "-auto-approve", d]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("Apply paused"), "{first:?}");
    assert!(
        first
            .stdout
            .contains("rollout q3 wave staging may start at"),
        "{first:?}"
    );
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "dev-1"), "1.29");
    assert_eq!(cluster_version(&w, "stg-1"), "1.28");
    let waits = waiting(&dir);
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0]["wave"], "staging");

    // A scheduled apply before the soak has passed changes nothing and says so again.
    let early = kup(&["apply", "-auto-approve", d]);
    assert_eq!(early.code, 0, "{early:?}");
    assert!(
        early
            .stdout
            .contains("Resuming the apply that did not finish"),
        "{early:?}"
    );
    assert!(
        early.stdout.contains("wave staging may start at"),
        "{early:?}"
    );
    assert_eq!(cluster_version(&sim.world_json(), "stg-1"), "1.28");

    // After it: staging runs, then prod waits for its own soak; `-wait` stays for it.
    let not_before: jiff::Timestamp = waits[0]["not_before"].as_str().unwrap().parse().unwrap();
    let left = not_before.duration_since(jiff::Timestamp::now());
    if left.is_positive() {
        std::thread::sleep(std::time::Duration::try_from(left).unwrap());
    }
    let last = kup(&["apply", "-auto-approve", "-wait", d]);
    assert_eq!(last.code, 0, "{last:?}");
    assert!(last.stdout.contains("Apply complete!"), "{last:?}");
    let w = sim.world_json();
    for c in ["dev-1", "stg-1", "prod-1", "prod-2"] {
        assert_eq!(cluster_version(&w, c), "1.29", "{c}");
        assert_eq!(node_group_version(&w, c, "general"), "1.29", "{c}");
    }
    // Wave by wave, and prod one cluster at a time (max_parallel = 1).
    assert_eq!(
        order_of_clusters(&sim),
        ["dev-1", "stg-1", "prod-1", "prod-2"]
    );
    assert!(waiting(&dir).is_empty(), "nothing waits any more");
}

#[test]
fn a_failing_wave_stops_the_waves_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world(), 600.0, Some("fail=stg-1:AccessDenied"));
    let dir = config_dir(tmp.path(), &sim, &config("0s"));
    let d = dir.to_str().unwrap();
    let run = kup(&["apply", "-auto-approve", d]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("AccessDenied"), "{run:?}");
    assert!(
        run.stdout
            .contains("rollout/q3/wave/prod: not run (depends on"),
        "{run:?}"
    );
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "dev-1"), "1.29");
    assert_eq!(cluster_version(&w, "prod-1"), "1.28");
    assert_eq!(cluster_version(&w, "prod-2"), "1.28");
    assert!(
        sim.mutations()
            .iter()
            .all(|m| !m["cluster"].as_str().unwrap_or("").starts_with("prod-")),
        "no prod cluster was touched"
    );
}

/// `examples/fleet`: K3s, GKE, EKS and AKS clusters in three waves, applied with `-wait`.
#[test]
fn the_fleet_example_runs_its_waves_across_providers_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dir = tmp.path().join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(tmp.path().join("quickstart")).unwrap();
    std::fs::copy(
        examples.join("fleet/main.kup.hcl"),
        dir.join("main.kup.hcl"),
    )
    .unwrap();
    // The fleet uses the quickstart's world.
    std::fs::copy(
        examples.join("quickstart/world.hcl"),
        tmp.path().join("quickstart/world.hcl"),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let run = kup(&["apply", "-auto-approve", "-wait", "-json", d]);
    assert_eq!(run.code, 0, "{run:?}");
    // The first step each cluster started, in the order they started.
    let mut first_started: Vec<String> = Vec::new();
    let mut last_finished: std::collections::BTreeMap<String, usize> = Default::default();
    let events: Vec<Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for (i, e) in events.iter().enumerate() {
        let cluster = |step: &str| step.split('/').next().unwrap_or("").to_string();
        match e["type"].as_str() {
            Some("step_started") => {
                let c = cluster(e["step"].as_str().unwrap());
                if c != "rollout" && !first_started.contains(&c) {
                    first_started.push(c);
                }
            }
            Some("step_finished") => {
                last_finished.insert(cluster(e["step"].as_str().unwrap()), i);
            }
            _ => {}
        }
    }
    assert_eq!(
        first_started,
        ["edge", "shop", "prod", "checkout"],
        "{run:?}"
    );
    let first_start_of = |c: &str| {
        events
            .iter()
            .position(|e| {
                e["type"] == "step_started"
                    && e["step"].as_str().unwrap().starts_with(&format!("{c}/"))
            })
            .unwrap()
    };
    assert!(last_finished["edge"] < first_start_of("shop"));
    assert!(last_finished["shop"] < first_start_of("prod"));
    assert!(
        last_finished["prod"] < first_start_of("checkout"),
        "max_parallel = 1"
    );
    let plan = kup(&["plan", "-detailed-exitcode", d]);
    assert_eq!(plan.code, 0, "everything at 1.31: {plan:?}");
}

/// The most cloud API requests the simulator received in any one second.
fn peak_per_second(sim: &Sim) -> u64 {
    get_json(&format!("{}/requests", sim.admin))["peak_per_second"]
        .as_u64()
        .unwrap()
}

#[test]
fn requests_per_second_bounds_what_the_provider_receives() {
    let run = |limit: &str| {
        let tmp = tempfile::tempdir().unwrap();
        let sim = Sim::start(tmp.path(), WORLD_ONE, 600.0, None);
        let dir = tmp.path().join("config");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("main.kup.hcl"),
            format!(
                "provider \"eks\" {{\n  region        = \"eu-west-1\"\n  endpoint      = \"{}\"\n  simulate      = true\n  poll_interval = \"20ms\"\n  {limit}\n}}\n\n{}",
                sim.eks,
                one_cluster("1.29")
            ),
        )
        .unwrap();
        let apply = kup(&["apply", "-auto-approve", dir.to_str().unwrap()]);
        assert_eq!(apply.code, 0, "{apply:?}");
        assert_eq!(cluster_version(&sim.world_json(), "prod-eu"), "1.29");
        peak_per_second(&sim)
    };
    let unlimited = run("");
    let limited = run("requests_per_second = 10");
    // Without a limit a refresh alone sends a dozen requests at once; with one, no second
    // sees more than 10 (11 allowing for the network's jitter at a second's edge).
    assert!(
        unlimited > 11,
        "the test must be able to fail: peak {unlimited}"
    );
    assert!(limited <= 11, "peak {limited} requests in one second");
}
