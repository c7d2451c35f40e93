//! Apply makespan of a fleet in the simulator against the critical-path lower bound.
//!
//!     cargo bench --bench makespan
//!
//! 40 EKS clusters, each 1.28 → 1.30 with two node groups and kube-proxy, applied at once
//! (parallelism ≥ clusters). The lower bound is the longest path through each cluster's
//! step DAG, every step weighted by what the simulator itself takes for that operation
//! (its `durations` at the run's speed, node groups by their batches), i.e. the makespan
//! of a scheduler with no overhead at all. The ratio is kup's overhead: polling, the
//! refresh before every step, journal writes, the DAG walk.
//!
//! A harness rather than criterion: one apply takes tens of seconds, and the number that
//! matters is the ratio within one run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use kup_engine::executor::{ClusterHandle, Executor, RetryPolicy};
use kup_engine::journal::Journal;
use kup_engine::model::{ActualCluster, ProviderSpec};
use kup_engine::plan::{Action, Plan, SavedPlan, Step, PLAN_FORMAT_VERSION};
use kup_engine::planner::{plan, PlanInput, PlanOptions};
use kup_engine::provider::ClusterTarget;
use kup_sim::eks_durations as d;

const CLUSTERS: usize = 40;
/// Simulated seconds per real second: a control-plane upgrade (8 simulated minutes) takes
/// 4.8 s, long enough that per-step overhead is measured against realistic step lengths.
const SPEED: f64 = 100.0;
/// (name, desired size, max_unavailable)
const GROUPS: [(&str, u32, u32); 2] = [("a", 4, 2), ("b", 2, 1)];

fn world_hcl() -> String {
    let mut s = String::new();
    for c in 0..CLUSTERS {
        s.push_str(&format!(
            "cluster \"m{c:03}\" {{\n  region = \"eu-west-1\"\n  version = \"1.28\"\n"
        ));
        for (name, size, mu) in GROUPS {
            s.push_str(&format!(
                "  node_group \"{name}\" {{\n    version = \"1.28\"\n    desired_size = {size}\n    min_size = 1\n    max_size = 8\n    max_unavailable = {mu}\n  }}\n"
            ));
        }
        s.push_str("  addon \"kube-proxy\" { version = \"v1.28.4-eksbuild.1\" }\n}\n");
    }
    s
}

fn config(endpoint: &str) -> String {
    let mut s = format!(
        "provider \"eks\" {{\n  region = \"eu-west-1\"\n  endpoint = \"{endpoint}\"\n  simulate = true\n  poll_interval = \"20ms\"\n}}\n"
    );
    for c in 0..CLUSTERS {
        s.push_str(&format!("cluster \"m{c:03}\" {{\n  version = \"1.30\"\n"));
        for (name, _, mu) in GROUPS {
            s.push_str(&format!(
                "  node_group \"{name}\" {{\n    version = \"1.30\"\n    max_unavailable = {mu}\n  }}\n"
            ));
        }
        s.push_str("  addon \"kube-proxy\" { version = \"compatible\" }\n}\n");
    }
    s
}

/// What the simulator takes for `step`, in real seconds at `SPEED`.
fn sim_secs(step: &Step) -> f64 {
    let simulated = match &step.action {
        Action::UpgradeControlPlane { .. } => d::CLUSTER_VERSION,
        Action::UpdateAddon { .. } => d::ADDON,
        Action::UpdateNodeGroupConfig { .. } => d::NODEGROUP_CONFIG,
        Action::UpgradeNodeGroup { node_group, .. } => {
            let (_, size, mu) = GROUPS
                .iter()
                .find(|(n, _, _)| n == node_group)
                .expect("a group of the world");
            d::NODEGROUP_VERSION_PER_BATCH * size.div_ceil(*mu) as f64
        }
        other => panic!("the benchmark's plan has no {other:?}"),
    };
    simulated / SPEED
}

/// The longest path through the plan's DAG with every step at its simulated duration.
fn critical_path(plan: &Plan) -> f64 {
    let mut finish: BTreeMap<&str, f64> = BTreeMap::new();
    // Steps are listed after their dependencies.
    for s in &plan.steps {
        let start = s
            .depends_on
            .iter()
            .map(|d| finish[d.as_str()])
            .fold(0.0, f64::max);
        finish.insert(&s.id, start + sim_secs(s));
    }
    finish.values().copied().fold(0.0, f64::max)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.hcl");
    std::fs::write(&world, world_hcl()).unwrap();
    let sim = kup_sim::Sim::start(kup_sim::SimConfig {
        world,
        listen: "127.0.0.1:0".parse().unwrap(),
        speed: SPEED,
        faults: kup_sim::FaultSpec::parse("").unwrap(),
    })
    .await
    .unwrap();
    let cfg = dir.path().join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("main.kup.hcl"), config(&sim.endpoints().eks)).unwrap();
    let desired = kup_engine::config::load_dir(&cfg, &Default::default())
        .unwrap()
        .desired;
    let spec: ProviderSpec = desired.providers[0].clone();
    let provider = kup_provider::build(&spec, None).await.unwrap();
    let policies = [("eks".to_string(), provider.policy())].into();
    let target = |name: &str| ClusterTarget {
        name: name.to_string(),
        region: Some("eu-west-1".into()),
    };
    let actual: BTreeMap<String, ActualCluster> = stream::iter(&desired.clusters)
        .map(|c| {
            let p = provider.clone();
            let t = target(&c.name);
            async move { (c.label.clone(), p.refresh(&t).await.unwrap()) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let plan = plan(&PlanInput {
        desired: &desired,
        actual: &actual,
        policies: &policies,
        options: &PlanOptions::default(),
    })
    .unwrap();
    let bound = critical_path(&plan);
    let steps = plan.steps.len();
    let saved = SavedPlan {
        kup_version: env!("CARGO_PKG_VERSION").into(),
        format_version: PLAN_FORMAT_VERSION,
        created_at: kup_engine::state::now_rfc3339(),
        config_dir: cfg.display().to_string(),
        config_hash: String::new(),
        state_fingerprints: BTreeMap::new(),
        desired: desired.clone(),
        plan,
        integrity: String::new(),
    }
    .seal();
    let clusters = desired
        .clusters
        .iter()
        .map(|c| {
            (
                c.address(),
                ClusterHandle {
                    provider: provider.clone(),
                    target: target(&c.name),
                    node_ops: None,
                    time_scale: SPEED,
                    operation_timeout: None,
                },
            )
        })
        .collect();
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let executor = Executor {
        wave_gates: kup_engine::executor::WaveGates::Stop,
        clusters,
        parallelism: CLUSTERS * 4,
        retry: RetryPolicy::default(),
        events: Arc::new(|_| {}),
        cancel,
    };
    let journal = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    let start = Instant::now();
    let report = executor.run(&saved, journal, None).await.unwrap();
    let makespan = start.elapsed();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.done.len(), steps);
    println!(
        "apply of {CLUSTERS} simulated EKS clusters 1.28 → 1.30 ({steps} steps, speed {SPEED}):"
    );
    println!(
        "  makespan {:.2}s  critical-path lower bound {:.2}s  ratio {:.3}",
        makespan.as_secs_f64(),
        bound,
        makespan.as_secs_f64() / bound
    );
    sim.shutdown().await.unwrap();
}
