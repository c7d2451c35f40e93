//! Rollouts: clusters in waves. Each wave that follows others (or has a window) gets a
//! gate step that waits for every step of those waves and their soak; the wave's first
//! steps wait for the gate, and `max_parallel` chains its clusters so no more than that
//! many upgrade at once. Pure: the plan's DAG carries the whole order.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Desired, RolloutSpec};
use crate::plan::{Action, Condition, Step};

/// The gate step's id for a wave.
pub fn gate_id(rollout: &str, wave: &str) -> String {
    format!("rollout/{rollout}/wave/{wave}")
}

/// Add the rollouts' gates and ordering to `steps` (every cluster's steps, planned
/// independently).
pub(super) fn order(desired: &Desired, steps: &mut Vec<Step>) {
    for r in &desired.rollouts {
        order_one(desired, r, steps);
    }
}

fn order_one(desired: &Desired, r: &RolloutSpec, steps: &mut Vec<Step>) {
    let address = |label: &str| desired.cluster(label).map(|c| c.address());
    let ids_of = |steps: &[Step], cluster: &str| -> Vec<String> {
        steps
            .iter()
            .filter(|s| s.cluster == cluster)
            .map(|s| s.id.clone())
            .collect()
    };
    let has_steps = |steps: &[Step], labels: &[String]| {
        labels
            .iter()
            .filter_map(|l| address(l))
            .any(|a| steps.iter().any(|s| s.cluster == a))
    };
    // A wave needs a gate when it has something to do, or a later wave that does waits
    // on it (an empty wave still passes its predecessors' soak on).
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    for w in r.waves.iter().rev() {
        if has_steps(steps, &w.clusters)
            || r.waves
                .iter()
                .any(|v| needed.contains(v.name.as_str()) && v.after.contains(&w.name))
        {
            needed.insert(&w.name);
        }
    }
    let mut gates: BTreeMap<&str, String> = BTreeMap::new();
    let mut new_gates: Vec<Step> = Vec::new();
    for w in &r.waves {
        if !needed.contains(w.name.as_str()) {
            continue;
        }
        let members: Vec<String> = w.clusters.iter().filter_map(|l| address(l)).collect();
        if !w.after.is_empty() || w.window.is_some() {
            let mut deps: Vec<String> = Vec::new();
            for a in &w.after {
                if let Some(prev) = r.waves.iter().find(|x| &x.name == a) {
                    for l in &prev.clusters {
                        if let Some(addr) = address(l) {
                            deps.extend(ids_of(steps, &addr));
                        }
                    }
                }
                if let Some(g) = gates.get(a.as_str()) {
                    deps.push(g.clone());
                }
            }
            deps.sort();
            deps.dedup();
            let id = gate_id(&r.name, &w.name);
            let mut reason = format!("rollout \"{}\": wave {}", r.name, w.name);
            if !w.after.is_empty() {
                reason.push_str(&format!(" follows {}", w.after.join(", ")));
                if !w.soak.is_zero() {
                    reason.push_str(&format!(
                        " after a soak of {}",
                        humantime::format_duration(w.soak)
                    ));
                }
            }
            if w.window.is_some() {
                reason.push_str(", and starts only inside its window");
            }
            gates.insert(&w.name, id.clone());
            new_gates.push(Step {
                id: id.clone(),
                cluster: format!("rollout.{}", r.name),
                address: format!("rollout.{}.wave.{}", r.name, w.name),
                action: Action::WaveGate {
                    rollout: r.name.clone(),
                    wave: w.name.clone(),
                    after: w.after.clone(),
                    soak_secs: w.soak.as_secs(),
                    window: w.window.clone(),
                    clusters: members.clone(),
                },
                depends_on: deps,
                precondition: Vec::new(),
                postcondition: vec![Condition::JournalOnly],
                estimated_secs: w.soak.as_secs(),
                reason,
            });
            // The wave's clusters start after the gate.
            for s in steps.iter_mut() {
                if members.contains(&s.cluster) && s.depends_on.is_empty() {
                    s.depends_on.push(id.clone());
                }
            }
        }
        // At most max_parallel clusters at once: each waits for the one max_parallel
        // places before it (in configuration order) to finish.
        if let Some(n) = w.max_parallel {
            let busy: Vec<&String> = members
                .iter()
                .filter(|m| steps.iter().any(|s| &&s.cluster == m))
                .collect();
            for i in (n as usize)..busy.len() {
                let before = ids_of(steps, busy[i - n as usize]);
                for s in steps.iter_mut() {
                    let is_root = s.depends_on.iter().all(|d| gates.values().any(|g| g == d));
                    if &s.cluster == busy[i] && is_root {
                        s.depends_on.extend(before.iter().cloned());
                    }
                }
            }
        }
    }
    // After the clusters' steps, in wave order, so the plan lists the waves as written.
    steps.extend(new_gates);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::model::{ActualCluster, RolloutSpec, WaveSpec};
    use crate::planner::tests::{actual, actual_ng, cluster_spec, eks_policy, ng_spec};
    use crate::planner::{plan, PlanInput, PlanOptions};
    use crate::policy::ProviderPolicy;

    fn wave(name: &str, clusters: &[&str], after: &[&str], max_parallel: Option<u32>) -> WaveSpec {
        WaveSpec {
            name: name.into(),
            patterns: clusters.iter().map(|c| c.to_string()).collect(),
            clusters: clusters.iter().map(|c| c.to_string()).collect(),
            after: after.iter().map(|c| c.to_string()).collect(),
            soak: Duration::from_secs(3600),
            max_parallel,
            window: None,
        }
    }

    #[test]
    fn gates_follow_waves_pass_through_empty_ones_and_bound_parallelism() {
        let mut desired = crate::model::Desired::default();
        let mut act: BTreeMap<String, ActualCluster> = BTreeMap::new();
        for (label, running) in [("a", "1.28"), ("b", "1.29"), ("c", "1.28"), ("d", "1.28")] {
            let mut spec = cluster_spec("1.29", vec![ng_spec("general", "1.29")]);
            spec.label = label.into();
            spec.name = label.into();
            desired.clusters.push(spec);
            let mut a = actual(running, vec![actual_ng("general", running, 2)]);
            a.name = label.into();
            act.insert(label.into(), a);
        }
        desired.rollouts.push(RolloutSpec {
            name: "r".into(),
            waves: vec![
                wave("w1", &["a"], &[], None),
                wave("w2", &["b"], &["w1"], None),
                wave("w3", &["c", "d"], &["w2"], Some(1)),
            ],
        });
        let policies: BTreeMap<String, ProviderPolicy> = [("eks".to_string(), eks_policy())].into();
        let p = plan(&PlanInput {
            desired: &desired,
            actual: &act,
            policies: &policies,
            options: &PlanOptions::default(),
        })
        .unwrap();
        p.validate().unwrap();
        let step = |id: &str| p.step(id).unwrap_or_else(|| panic!("no step {id}"));
        let of = |cluster: &str| -> Vec<&str> {
            p.steps
                .iter()
                .filter(|s| s.cluster == format!("cluster.{cluster}"))
                .map(|s| s.id.as_str())
                .collect()
        };
        // w2 has nothing to do, but w3 waits on it: its gate carries w1's soak on.
        assert!(of("b").is_empty());
        let g2 = step("rollout/r/wave/w2");
        assert_eq!(g2.depends_on, of("a"));
        let g3 = step("rollout/r/wave/w3");
        assert_eq!(g3.depends_on, ["rollout/r/wave/w2"]);
        // c starts after the gate; d (max_parallel 1) after all of c as well.
        let roots = |cluster: &str| -> Vec<&crate::plan::Step> {
            p.steps
                .iter()
                .filter(|s| {
                    s.cluster == format!("cluster.{cluster}")
                        && !s
                            .depends_on
                            .iter()
                            .any(|d| d.starts_with(&format!("{cluster}/")))
                })
                .collect()
        };
        for r in roots("c") {
            assert_eq!(r.depends_on, ["rollout/r/wave/w3"], "{}", r.id);
        }
        for r in roots("d") {
            assert!(
                r.depends_on.contains(&"rollout/r/wave/w3".to_string()),
                "{}",
                r.id
            );
            for c in of("c") {
                assert!(
                    r.depends_on.iter().any(|d| d == c),
                    "{} waits for {c}",
                    r.id
                );
            }
        }
        // The first wave has no gate.
        assert!(p.step("rollout/r/wave/w1").is_none());
    }
}
