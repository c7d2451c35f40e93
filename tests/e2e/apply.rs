use crate::harness::*;

#[test]
fn plan_apply_then_nothing_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.31"));
    let d = dir.to_str().unwrap();

    let plan = kup(&["plan", "-detailed-exitcode", d]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stdout.contains("1.28 → 1.29"), "{plan:?}");
    assert!(plan.stdout.contains("Version timeline"), "{plan:?}");
    assert!(sim.mutations().is_empty(), "plan must not change anything");

    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(apply.stdout.contains("Apply complete!"), "{apply:?}");
    let world = sim.world_json();
    assert_eq!(cluster_version(&world, "prod-eu"), "1.31");
    assert_eq!(node_group_version(&world, "prod-eu", "general"), "1.31");
    assert_eq!(node_group_version(&world, "prod-eu", "payments"), "1.31");
    // 3 hops + 2 rollouts (only at the end: 1.28 nodes may trail 1.31 by three) + add-ons.
    let ops: Vec<String> = sim
        .mutations()
        .iter()
        .map(|c| c["op"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ops.iter().filter(|o| *o == "UpdateClusterVersion").count(),
        3,
        "{ops:?}"
    );
    assert_eq!(
        ops.iter()
            .filter(|o| *o == "UpdateNodegroupVersion")
            .count(),
        2,
        "{ops:?}"
    );

    let again = kup(&["apply", "-auto-approve", d]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("No changes."), "{again:?}");
    let plan = kup(&["plan", "-detailed-exitcode", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert_eq!(
        sim.mutations().len(),
        ops.len(),
        "a no-op run changed something"
    );

    // The state records what was applied.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_path(&dir)).unwrap()).unwrap();
    assert_eq!(
        state["clusters"]["cluster.prod"]["observed"]["version"],
        "1.31"
    );
    assert!(state["serial"].as_u64().unwrap() >= 2);
}

#[test]
fn json_events_follow_the_event_types() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let run = kup(&["apply", "-auto-approve", "-json", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut lines = run.stdout.lines();
    let plan: kup_engine::plan::SavedPlan = serde_json::from_str(lines.next().unwrap()).unwrap();
    let events: Vec<kup_engine::events::EventRecord> = lines
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let finished = events
        .iter()
        .filter(|e| matches!(e.event, kup_engine::events::Event::StepFinished { .. }))
        .count();
    assert_eq!(finished, plan.plan.steps.len());
    assert!(matches!(
        events.last().unwrap().event,
        kup_engine::events::Event::ApplyFinished { failed: 0, .. }
    ));
}

#[test]
fn throttling_and_server_errors_are_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        tmp.path(),
        WORLD_ONE,
        3000.0,
        Some("seed=11,throttle=0.25,error500=0.1"),
    );
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.30"));
    let run = kup(&["apply", "-auto-approve", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    // Reads count too: whether a fault lands on one of the few updates depends on how
    // requests interleave, so counting updates alone made this test flaky.
    let injected = get_json(&format!("{}/faults", sim.admin))["injected"]
        .as_u64()
        .unwrap_or(0);
    assert!(injected > 0, "the faults were not exercised");
    assert_eq!(cluster_version(&sim.world_json(), "prod-eu"), "1.30");
    // Retries never duplicated an update: one mutation per planned step.
    let hops = sim
        .mutations()
        .iter()
        .filter(|c| c["op"] == "UpdateClusterVersion")
        .count();
    assert_eq!(hops, 2);
}

#[test]
fn failed_update_stops_that_cluster_and_reports_the_cloud_error() {
    let world = format!(
        "{WORLD_ONE}\ncluster \"staging\" {{\n  region = \"eu-west-1\"\n  version = \"1.28\"\n  node_group \"general\" {{\n    version = \"1.28\"\n    desired_size = 2\n    min_size = 1\n    max_size = 3\n    max_unavailable = 1\n  }}\n}}\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        tmp.path(),
        &world,
        3000.0,
        Some("fail=prod-eu/general:PodEvictionFailure"),
    );
    let body = format!(
        "{}\ncluster \"staging\" {{\n  version = \"1.29\"\n  node_group \"general\" {{\n    version = \"1.29\"\n  }}\n}}\n",
        one_cluster("1.29")
    );
    let dir = config_dir(tmp.path(), &sim, &body);
    let run = kup(&[
        "apply",
        "-auto-approve",
        "-parallelism",
        "4",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let out = run.all();
    assert!(out.contains("PodEvictionFailure"), "{run:?}");
    assert!(out.contains("Apply failed."), "{run:?}");
    // The other cluster finished.
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "staging"), "1.29");
    assert_eq!(node_group_version(&w, "staging", "general"), "1.29");
    assert_eq!(node_group_version(&w, "prod-eu", "general"), "1.28");

    // Once the fault is gone, apply finishes the job.
    sim.clear_faults();
    let run = kup(&["apply", "-auto-approve", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        node_group_version(&sim.world_json(), "prod-eu", "general"),
        "1.29"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_after_an_out_of_band_change() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let d = dir.to_str().unwrap().to_string();
    let run = tokio::task::spawn_blocking({
        let d = d.clone();
        move || kup(&["apply", "-auto-approve", &d])
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{run:?}");
    let none = tokio::task::spawn_blocking({
        let d = d.clone();
        move || kup(&["drift", &d])
    })
    .await
    .unwrap();
    assert_eq!(none.code, 0, "{none:?}");

    // Someone changes the update config in the console (through the EKS API).
    let eks = sim.eks_client().await;
    eks.update_nodegroup_config()
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
    // Let the simulated config update finish.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let drift = tokio::task::spawn_blocking({
        let d = d.clone();
        move || kup(&["drift", &d])
    })
    .await
    .unwrap();
    assert_eq!(drift.code, 2, "{drift:?}");
    assert!(
        drift
            .stdout
            .contains("max_unavailable: configuration says 1, running 3"),
        "{drift:?}"
    );
    assert!(
        drift
            .stdout
            .contains("-node_group.general.max_unavailable: 1"),
        "{drift:?}"
    );
    assert!(
        drift
            .stdout
            .contains("+node_group.general.max_unavailable: 3"),
        "{drift:?}"
    );
    let json = tokio::task::spawn_blocking({
        let d = d.clone();
        move || kup(&["drift", "-json", &d])
    })
    .await
    .unwrap();
    assert_eq!(json.code, 2);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["drift"], true);
    assert_eq!(
        v["clusters"][0]["config"][0]["attribute"],
        "max_unavailable"
    );

    // Someone upgrades by hand and adds a node group outside kup.
    eks.update_cluster_version()
        .name("prod-eu")
        .version("1.30")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    eks.update_nodegroup_version()
        .cluster_name("prod-eu")
        .nodegroup_name("payments")
        .version("1.30")
        .send()
        .await
        .unwrap();
    eks.create_nodegroup()
        .cluster_name("prod-eu")
        .nodegroup_name("batch")
        .subnets("subnet-1")
        .node_role("arn:aws:iam::123456789012:role/nodes")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let drift = tokio::task::spawn_blocking(move || kup(&["drift", &d]))
        .await
        .unwrap();
    assert_eq!(drift.code, 2, "{drift:?}");
    for expected in [
        "~ cluster.prod version: configuration says 1.29, running 1.30",
        "~ cluster.prod.node_group.payments version: configuration says 1.29, running 1.30",
        "+ cluster.prod.node_group.batch exists (1.30) but is not in the configuration",
        "-version: 1.29",
        "+version: 1.30",
    ] {
        assert!(
            drift.stdout.contains(expected),
            "missing {expected:?} in {drift:?}"
        );
    }
}

#[test]
fn a_failed_step_can_be_retried_with_the_same_configuration() {
    // The plan after a failure is identical to the one that failed; the provider must
    // get a new request, not a replay of the failed update.
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(
        tmp.path(),
        WORLD_ONE,
        3000.0,
        Some("fail=prod-eu:AccessDenied"),
    );
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let d = dir.to_str().unwrap();
    let first = kup(&["apply", "-auto-approve", d]);
    assert_eq!(first.code, 1, "{first:?}");
    assert!(first.stdout.contains("AccessDenied"), "{first:?}");
    assert!(
        !first.stdout.contains("AccessDenied: AccessDenied"),
        "code shown twice: {first:?}"
    );
    sim.clear_faults();
    let second = kup(&["apply", "-auto-approve", d]);
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(cluster_version(&sim.world_json(), "prod-eu"), "1.29");
}

/// The EKS endpoint behind HTTPS with a certificate no system trusts: refused, naming the
/// endpoint; trusted through `ca_file`; accepted with `insecure_skip_tls_verify`, with a
/// warning in the plan.
#[test]
fn eks_verifies_the_endpoint_unless_the_provider_block_says_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 600.0, None);
    let front = TlsFront::start(&sim.eks);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let d = dir.to_str().unwrap();
    let main = dir.join("main.kup.hcl");
    let base = std::fs::read_to_string(&main)
        .unwrap()
        .replace(&sim.eks, &front.url);
    std::fs::write(&main, &base).unwrap();
    let refused = kup(&["plan", d]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.all().contains(&front.url)
            && refused.all().contains("certificate")
            && refused.all().contains("ca_file")
            && !refused.all().contains("retrying"),
        "{refused:?}"
    );

    std::fs::write(dir.join("ca.pem"), &front.ca_pem).unwrap();
    std::fs::write(
        &main,
        base.replace(
            "simulate      = true",
            "simulate      = true\n  ca_file = \"ca.pem\"",
        ),
    )
    .unwrap();
    let trusted = kup(&["plan", d]);
    assert_eq!(trusted.code, 0, "{trusted:?}");
    assert!(trusted.stdout.contains("1.28 → 1.29"), "{trusted:?}");
    assert!(!trusted.all().contains("insecure"), "{trusted:?}");

    std::fs::write(
        &main,
        base.replace(
            "simulate      = true",
            "simulate      = true\n  insecure_skip_tls_verify = true",
        ),
    )
    .unwrap();
    let skipped = kup(&["plan", "-json", d]);
    assert_eq!(skipped.code, 0, "{skipped:?}");
    let saved: serde_json::Value = serde_json::from_str(&skipped.stdout).unwrap();
    let warnings = saved["plan"]["clusters"][0]["warnings"].to_string();
    assert!(
        warnings.contains("provider \\\"eks\\\"")
            && warnings.contains("insecure_skip_tls_verify = true"),
        "{warnings}"
    );
}
