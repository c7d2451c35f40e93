use super::*;
use crate::model::UpgradeWindow;
use crate::plan::Step;
use crate::version::Version;

fn step(id: &str, cluster: &str, deps: &[&str], action: Action) -> Step {
    Step {
        id: id.into(),
        cluster: cluster.into(),
        address: id.into(),
        action,
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        precondition: Vec::new(),
        postcondition: Vec::new(),
        estimated_secs: 600,
        reason: String::new(),
    }
}

fn cp(from: &str, to: &str) -> Action {
    Action::UpgradeControlPlane {
        from: from.parse::<Version>().unwrap(),
        to: to.parse::<Version>().unwrap(),
    }
}

fn gate(soak_secs: u64, window: Option<UpgradeWindow>) -> Action {
    Action::WaveGate {
        rollout: "r".into(),
        wave: "prod".into(),
        after: vec!["canary".into()],
        soak_secs,
        window,
        clusters: vec!["cluster.b".into()],
    }
}

fn done(secs: f64) -> Measured {
    Measured {
        secs,
        outcome: Outcome::Done,
    }
}

fn plan(steps: Vec<Step>) -> Plan {
    Plan::new(Vec::new(), steps)
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn by_id<'a>(t: &'a Timeline, id: &str) -> &'a TimedStep {
    t.steps.iter().find(|s| s.id == id).unwrap()
}

#[test]
fn dependent_steps_follow_each_other_and_independent_ones_overlap() {
    let p = plan(vec![
        step("a/1", "cluster.a", &[], cp("1.28", "1.29")),
        step("a/2", "cluster.a", &["a/1"], cp("1.29", "1.30")),
        step("b/1", "cluster.b", &[], cp("1.28", "1.29")),
    ]);
    let m = [("a/1", 500.0), ("a/2", 300.0), ("b/1", 700.0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), done(v)))
        .collect();
    let t = compose(&p, &m, 10, at("2026-11-23T10:00:00Z")).unwrap();
    assert_eq!(by_id(&t, "a/2").start_secs, 500.0);
    assert_eq!(by_id(&t, "b/1").start_secs, 0.0);
    assert_eq!(t.total_secs, 800.0);
    // Listed in the order they start.
    let order: Vec<&str> = t.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, ["a/1", "b/1", "a/2"]);
}

#[test]
fn parallelism_queues_steps_in_plan_order() {
    let p = plan(vec![
        step("a", "cluster.a", &[], cp("1.28", "1.29")),
        step("b", "cluster.b", &[], cp("1.28", "1.29")),
        step("c", "cluster.c", &[], cp("1.28", "1.29")),
    ]);
    let m = [("a", 100.0), ("b", 300.0), ("c", 100.0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), done(v)))
        .collect();
    let t = compose(&p, &m, 2, at("2026-11-23T10:00:00Z")).unwrap();
    // c waits for the first free slot: a's, at 100 s.
    assert_eq!(by_id(&t, "c").start_secs, 100.0);
    assert_eq!(t.total_secs, 300.0);
    let serial = compose(&p, &m, 1, at("2026-11-23T10:00:00Z")).unwrap();
    assert_eq!(serial.total_secs, 500.0);
}

#[test]
fn a_wave_gate_lasts_its_soak_though_the_rehearsal_passed_it_at_once() {
    let p = plan(vec![
        step("a", "cluster.a", &[], cp("1.28", "1.29")),
        step("gate", "", &["a"], gate(3600, None)),
        step("b", "cluster.b", &["gate"], cp("1.28", "1.29")),
    ]);
    let m = [("a", 600.0), ("gate", 0.1), ("b", 600.0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), done(v)))
        .collect();
    let t = compose(&p, &m, 10, at("2026-11-23T10:00:00Z")).unwrap();
    assert_eq!(by_id(&t, "gate").duration_secs, 3600.0);
    assert_eq!(by_id(&t, "gate").kind, "wave");
    assert_eq!(by_id(&t, "b").start_secs, 4200.0);
    assert_eq!(t.total_secs, 4800.0);
}

#[test]
fn a_wave_gate_waits_for_its_window_after_the_soak() {
    // Monday 2026-11-23 10:00 UTC; the window is Tuesday 09:00–16:00 UTC.
    let window = UpgradeWindow {
        days: vec!["tue".into()],
        start: "09:00".into(),
        end: "16:00".into(),
        time_zone: Some("UTC".into()),
    };
    let p = plan(vec![
        step("a", "cluster.a", &[], cp("1.28", "1.29")),
        step("gate", "", &["a"], gate(3600, Some(window))),
        step("b", "cluster.b", &["gate"], cp("1.28", "1.29")),
    ]);
    let m = [("a", 600.0), ("b", 600.0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), done(v)))
        .collect();
    let t = compose(&p, &m, 10, at("2026-11-23T10:00:00Z")).unwrap();
    // Reached at 10:10 Monday; open at 09:00 Tuesday: 22 h 50 min later.
    assert_eq!(
        by_id(&t, "gate").duration_secs,
        (22 * 3600 + 50 * 60) as f64
    );
    assert_eq!(
        by_id(&t, "b").start_secs,
        600.0 + (22 * 3600 + 50 * 60) as f64
    );
}

#[test]
fn a_failed_step_stops_what_depends_on_it() {
    let p = plan(vec![
        step("a/drain", "cluster.a", &[], cp("1.28", "1.29")),
        step("a/delete", "cluster.a", &["a/drain"], cp("1.29", "1.30")),
        step("b", "cluster.b", &[], cp("1.28", "1.29")),
    ]);
    let mut m: BTreeMap<String, Measured> = BTreeMap::new();
    m.insert(
        "a/drain".into(),
        Measured {
            secs: 300.0,
            outcome: Outcome::Failed("PodDisruptionBudget shop/db".into()),
        },
    );
    m.insert("b".into(), done(900.0));
    let t = compose(&p, &m, 10, at("2026-11-23T10:00:00Z")).unwrap();
    let drain = by_id(&t, "a/drain");
    assert_eq!(drain.outcome, "failed");
    assert_eq!(drain.error.as_deref(), Some("PodDisruptionBudget shop/db"));
    assert_eq!(by_id(&t, "a/delete").outcome, "not_run");
    assert_eq!(t.steps.last().unwrap().id, "a/delete");
    assert_eq!(t.total_secs, 900.0);
}

#[test]
fn a_soak_runs_from_when_the_waves_before_finished_even_when_the_gate_waits_for_a_slot() {
    let p = plan(vec![
        step("a", "cluster.a", &[], cp("1.28", "1.29")),
        step("x", "cluster.x", &[], cp("1.28", "1.29")),
        step("gate", "", &["a"], gate(3600, None)),
        step("b", "cluster.b", &["gate"], cp("1.28", "1.29")),
    ]);
    let m = [("a", 600.0), ("x", 1000.0), ("b", 600.0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), done(v)))
        .collect();
    let t = compose(&p, &m, 1, at("2026-11-23T10:00:00Z")).unwrap();
    // One slot: x runs 600–1600, so the gate starts at 1600, but the soak began at 600.
    assert_eq!(by_id(&t, "gate").start_secs, 1600.0);
    assert_eq!(by_id(&t, "b").start_secs, 4200.0);
}
