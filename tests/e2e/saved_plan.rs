use crate::harness::*;

#[test]
fn saved_plan_is_applied_exactly_and_only_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.30"));
    let planfile = tmp.path().join("upgrade.kupplan");
    let p = planfile.to_str().unwrap();
    let plan = kup(&["plan", "-out", p, dir.to_str().unwrap()]);
    assert_eq!(plan.code, 0, "{plan:?}");

    let show = kup(&["show", "-json", p]);
    assert_eq!(show.code, 0, "{show:?}");
    let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&show.stdout).unwrap();
    let human = kup(&["show", p]);
    assert!(human.stdout.contains("Steps:"), "{human:?}");

    // Applying a saved plan asks nothing, even without a terminal.
    let apply = kup(&["apply", p]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let mutations = sim.mutations();
    assert_eq!(
        mutations.len(),
        saved
            .plan
            .steps
            .iter()
            .filter(|s| !s.action.is_in_cluster())
            .count(),
        "exactly the planned provider steps"
    );
    // Every mutation carried the run's deterministic token for its step.
    let journal = std::fs::read_to_string(journal_path(&dir)).unwrap();
    let first: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    let run_id = first["run_id"].as_str().unwrap();
    for step in saved
        .plan
        .steps
        .iter()
        .filter(|s| !s.action.is_in_cluster())
    {
        let token = saved.plan.idempotency_token(run_id, &step.id);
        assert!(
            mutations
                .iter()
                .any(|m| m["client_request_token"] == token.as_str()),
            "no call carried the token of {}",
            step.id
        );
    }
    // The same plan again is stale: the world it was made for is gone.
    let again = kup(&["apply", p]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("stale"), "{again:?}");
    assert_eq!(sim.mutations().len(), mutations.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_is_stale_after_out_of_band_change() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.30"));
    let planfile = tmp.path().join("p.kupplan");
    let (d, p) = (
        dir.to_str().unwrap().to_string(),
        planfile.to_str().unwrap().to_string(),
    );
    let plan = tokio::task::spawn_blocking({
        let (d, p) = (d.clone(), p.clone());
        move || kup(&["plan", "-out", &p, &d])
    })
    .await
    .unwrap();
    assert_eq!(plan.code, 0, "{plan:?}");

    // Someone upgrades the control plane by hand.
    let eks = sim.eks_client().await;
    eks.update_cluster_version()
        .name("prod-eu")
        .version("1.29")
        .send()
        .await
        .unwrap();
    // Let the hand-made upgrade land first: caught half-way (DescribeCluster still at
    // 1.28, ListUpdates already done), the world would look unchanged to the refresh.
    tokio::task::block_in_place(|| {
        wait_until("the hand-made upgrade", || {
            cluster_version(&sim.world_json(), "prod-eu").starts_with("1.29")
        })
    });
    let before = tokio::task::block_in_place(|| sim.mutations().len());
    let apply = tokio::task::spawn_blocking(move || kup(&["apply", &p]))
        .await
        .unwrap();
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        apply.stderr.contains("stale") && apply.stderr.contains("cluster.prod"),
        "{apply:?}"
    );
    let after = tokio::task::block_in_place(|| sim.mutations().len());
    assert_eq!(after, before, "a stale plan must change nothing");
}

#[test]
fn plan_is_stale_after_config_change() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.30"));
    let planfile = tmp.path().join("p.kupplan");
    let p = planfile.to_str().unwrap();
    assert_eq!(kup(&["plan", "-out", p, dir.to_str().unwrap()]).code, 0);
    let main = dir.join("main.kup.hcl");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, text.replace("\"1.30\"", "\"1.29\"")).unwrap();
    let apply = kup(&["apply", p]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        apply.stderr.contains("configuration in") && apply.stderr.contains("changed"),
        "{apply:?}"
    );
    assert!(sim.mutations().is_empty());
}

#[test]
fn tampered_plan_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let planfile = tmp.path().join("p.kupplan");
    let p = planfile.to_str().unwrap();
    assert_eq!(kup(&["plan", "-out", p, dir.to_str().unwrap()]).code, 0);
    let text = std::fs::read_to_string(&planfile).unwrap();
    // Sneak in a different max_unavailable.
    let edited = text.replacen("\"count\": 1", "\"count\": 50", 1);
    assert_ne!(
        edited, text,
        "the plan should contain a max_unavailable count"
    );
    std::fs::write(&planfile, edited).unwrap();
    let apply = kup(&["apply", p]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        apply.stderr.contains("modified after kup wrote it"),
        "{apply:?}"
    );
    assert!(sim.mutations().is_empty());
    let garbage = tmp.path().join("garbage");
    std::fs::write(&garbage, "not a plan").unwrap();
    let apply = kup(&["apply", garbage.to_str().unwrap()]);
    assert!(apply.stderr.contains("is not a kup plan file"), "{apply:?}");
}

/// A saved plan is private (it describes every cluster), and one made by another kup
/// version is refused with the reason even when its integrity holds.
#[test]
fn a_saved_plan_is_private_and_applied_only_by_the_kup_that_made_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let planfile = tmp.path().join("p.kupplan");
    let p = planfile.to_str().unwrap();
    assert_eq!(kup(&["plan", "-out", p, dir.to_str().unwrap()]).code, 0);
    let mode = std::fs::metadata(&planfile).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "plan file mode {mode:o}");

    let mut saved: kup_engine::plan::SavedPlan =
        serde_json::from_str(&std::fs::read_to_string(&planfile).unwrap()).unwrap();
    saved.kup_version = "0.0.1".into();
    let resealed = saved.seal();
    std::fs::write(&planfile, serde_json::to_vec_pretty(&resealed).unwrap()).unwrap();
    let apply = kup(&["apply", p]);
    assert_eq!(apply.code, 1, "{apply:?}");
    assert!(
        apply
            .stderr
            .contains("was made by kup 0.0.1, and this is kup"),
        "{apply:?}"
    );
    assert!(sim.mutations().is_empty());
    // Showing it is still fine: it is only a record.
    assert_eq!(kup(&["show", p]).code, 0);
}

#[test]
fn second_apply_fails_fast_naming_the_lock_holder() {
    let tmp = tempfile::tempdir().unwrap();
    // The control-plane update never finishes, so the first apply holds the lock.
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, Some("hang=prod-eu"));
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let d = dir.to_str().unwrap();
    let mut first = spawn_kup(&["apply", "-auto-approve", d]);
    wait_until("the first apply to start an update", || {
        !sim.mutations().is_empty()
    });
    let second = kup(&["apply", "-auto-approve", d]);
    assert_eq!(second.code, 1, "{second:?}");
    assert!(second.stderr.contains("the state is locked"), "{second:?}");
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{second:?}"
    );
    assert!(second.stderr.contains("kup force-unlock"), "{second:?}");
    let _ = first.kill();
    let _ = first.wait();

    // The killed holder left its lock: force-unlock needs the right ID.
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".kup/kup.state.json.lock")).unwrap())
            .unwrap();
    let wrong = kup(&["force-unlock", "deadbeef", d]);
    assert_eq!(wrong.code, 1, "{wrong:?}");
    let ok = kup(&["force-unlock", lock["id"].as_str().unwrap(), d]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(!dir.join(".kup/kup.state.json.lock").exists());
}
