//! Refresh + plan of 500 simulated EKS clusters, every API call delayed 20 ms by the
//! simulator, through the real AWS SDK. Reports wall time at several concurrency levels
//! against the sequential run in the same process, so the ratio shows the concurrency.
//!
//!     cargo bench --bench refresh                       # 500 clusters
//!     KUP_BENCH_CLUSTERS=200 cargo bench --bench refresh
//!
//! A harness rather than criterion: one sample of the sequential run already takes tens of
//! seconds, and the point is the ratio between runs made back to back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use kup_engine::model::{ActualCluster, ClusterSpec, Desired, ProviderSpec};
use kup_engine::planner::{plan, PlanInput, PlanOptions};
use kup_engine::provider::{ClusterTarget, Provider};

fn clusters() -> usize {
    std::env::var("KUP_BENCH_CLUSTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn world_hcl() -> String {
    let mut s = String::new();
    for c in 0..clusters() {
        s.push_str(&format!(
            "cluster \"c{c:03}\" {{\n  region = \"eu-west-1\"\n  version = \"1.28\"\n  node_group \"a\" {{\n    version = \"1.28\"\n    desired_size = 3\n    min_size = 1\n    max_size = 6\n    max_unavailable = 1\n  }}\n  addon \"kube-proxy\" {{ version = \"v1.28.4-eksbuild.1\" }}\n}}\n"
        ));
    }
    s
}

fn desired() -> Desired {
    let text = (0..clusters())
        .map(|c| format!("cluster \"c{c:03}\" {{\n  version = \"1.30\"\n  node_group \"a\" {{ version = \"1.30\" }}\n  addon \"kube-proxy\" {{ version = \"compatible\" }}\n}}\n"))
        .collect::<String>();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.kup.hcl"),
        format!("provider \"eks\" {{\n  region = \"eu-west-1\"\n  endpoint = \"http://127.0.0.1:1\"\n  simulate = true\n}}\n{text}"),
    )
    .unwrap();
    kup_engine::config::load_dir(dir.path(), &Default::default())
        .unwrap()
        .desired
}

async fn refresh_all(
    provider: &Arc<dyn Provider>,
    clusters: &[ClusterSpec],
    parallelism: usize,
) -> (Duration, BTreeMap<String, ActualCluster>) {
    let start = Instant::now();
    let results: Vec<(String, ActualCluster)> = stream::iter(clusters)
        .map(|c| {
            let p = provider.clone();
            async move {
                let a = p
                    .refresh(&ClusterTarget {
                        name: c.name.clone(),
                        region: Some("eu-west-1".into()),
                    })
                    .await
                    .unwrap();
                (c.label.clone(), a)
            }
        })
        .buffer_unordered(parallelism)
        .collect()
        .await;
    (start.elapsed(), results.into_iter().collect())
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
        speed: 60.0,
        faults: kup_sim::FaultSpec::parse("latency=20ms").unwrap(),
    })
    .await
    .unwrap();
    let desired = desired();
    let spec = ProviderSpec {
        endpoint: Some(sim.endpoints().eks),
        ..desired.providers[0].clone()
    };
    let provider = kup_provider::build(&spec, None).await.unwrap();
    let policies = [("eks".to_string(), provider.policy())].into();

    // One warm-up refresh fills the provider's per-region catalog cache, as in a real run.
    let _ = refresh_all(&provider, &desired.clusters[..1], 1).await;

    println!(
        "refresh + plan of {} simulated EKS clusters, 20 ms injected latency per API call",
        clusters()
    );
    let mut sequential = Duration::ZERO;
    for parallelism in [1usize, 10, 50] {
        let (refresh, actual) = refresh_all(&provider, &desired.clusters, parallelism).await;
        let t = Instant::now();
        let p = plan(&PlanInput {
            desired: &desired,
            actual: &actual,
            policies: &policies,
            options: &PlanOptions::default(),
        })
        .unwrap();
        let planning = t.elapsed();
        if parallelism == 1 {
            sequential = refresh + planning;
        }
        let total = refresh + planning;
        println!(
            "  parallelism {parallelism:>3}: refresh {:>7.2}s  plan {:>6.1}ms  total {:>7.2}s  speed-up vs sequential {:>5.1}x  ({} steps)",
            refresh.as_secs_f64(),
            planning.as_secs_f64() * 1000.0,
            total.as_secs_f64(),
            sequential.as_secs_f64() / total.as_secs_f64(),
            p.steps.len()
        );
    }
    sim.shutdown().await.unwrap();
}
