//! SIGKILL after every update of an apply, resuming each time, then `kup apply` again: the
//! upgrade completes, and no update is issued twice (the simulator counts every mutating
//! call, and would refuse a second concurrent update with ResourceInUseException).

use std::collections::BTreeMap;

use crate::harness::*;

fn kill_when(sim: &Sim, dir: &str, mutations_at_least: usize) -> String {
    let mut child = spawn_kup(&["apply", "-auto-approve", dir]);
    wait_until(&format!("{mutations_at_least} mutations"), || {
        sim.mutations().len() >= mutations_at_least
            || child.try_wait().map(|s| s.is_some()).unwrap_or(true)
    });
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sigkill_then_resume_never_repeats_an_update() {
    let tmp = tempfile::tempdir().unwrap();
    // Slow enough that kills land while operations are in flight.
    let sim = Sim::start(tmp.path(), WORLD_ONE, 400.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.31"));
    let d = dir.to_str().unwrap();
    let planned = kup(&["plan", "-json", d]);
    let saved: kup_engine::plan::SavedPlan = serde_json::from_str(&planned.stdout).unwrap();
    // Provider steps, each one mutation (the post-flight check only reads the cluster).
    let steps = provider_steps(&saved);
    assert!(steps >= 8, "expected a long plan, got {steps}");

    // Kill right after each update is accepted by the provider: after the 1st, then
    // (resumed) after the 2nd, and so on through the whole plan.
    for n in 1..steps {
        kill_when(&sim, d, n);
    }
    let journal = std::fs::read_to_string(journal_path(&dir)).unwrap();
    assert!(journal.contains("operation_started"), "{journal}");

    let last = kup(&["apply", "-auto-approve", d]);
    assert_eq!(last.code, 0, "{last:?}");
    assert!(
        last.stdout
            .contains("Resuming the apply that did not finish"),
        "{last:?}"
    );
    let w = sim.world_json();
    assert_eq!(cluster_version(&w, "prod-eu"), "1.31");
    assert_eq!(node_group_version(&w, "prod-eu", "general"), "1.31");
    assert_eq!(node_group_version(&w, "prod-eu", "payments"), "1.31");

    // One accepted mutation per planned step; resends were replays, not new updates.
    let mutations = sim.mutations();
    let mut per_resource: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mutations {
        let key = format!(
            "{} {} {} {}",
            m["op"], m["cluster"], m["nodegroup"], m["addon"]
        );
        *per_resource.entry(key).or_default() += 1;
    }
    assert_eq!(
        mutations.len(),
        steps,
        "mutations per resource: {per_resource:#?}"
    );
    let refused = sim.refused_in_use();
    assert_eq!(
        refused, 0,
        "a resumed apply re-issued an update that was in flight"
    );

    let again = kup(&["apply", "-auto-approve", d]);
    assert!(again.stdout.contains("No changes."), "{again:?}");
}

#[test]
fn first_ctrl_c_detaches_releases_the_lock_and_apply_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    // The first control-plane update never finishes while the fault is set.
    let sim = Sim::start(tmp.path(), WORLD_ONE, 3000.0, Some("hang=prod-eu"));
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let d = dir.to_str().unwrap();
    let child = spawn_kup(&["apply", "-auto-approve", d]);
    wait_until("the update to start", || !sim.mutations().is_empty());
    // SAFETY: plain kill(2) of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Apply interrupted."), "{stdout}");
    assert!(
        !dir.join(".kup/kup.state.json.lock").exists(),
        "the lock must be released"
    );
    let journal = std::fs::read_to_string(journal_path(&dir)).unwrap();
    assert!(journal.contains("\"outcome\":\"interrupted\""), "{journal}");

    sim.clear_faults();
    let resumed = kup(&["apply", "-auto-approve", d]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert!(
        resumed.stdout.contains("waiting on operation"),
        "{resumed:?}"
    );
    let hops = sim
        .mutations()
        .iter()
        .filter(|m| m["op"] == "UpdateClusterVersion")
        .count();
    assert_eq!(hops, 1, "the hung update was waited on, not issued again");
    assert_eq!(cluster_version(&sim.world_json(), "prod-eu"), "1.29");
}
