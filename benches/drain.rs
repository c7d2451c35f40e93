//! Drain one node holding about 110 pods with kup's node operations, and an identical
//! node with `kubectl drain`, in the same run against the simulator's Kubernetes API.
//!
//!     cargo bench --bench drain
//!
//! Both nodes are cordoned first so evicted pods cannot land on the other one; each drain
//! evicts every pod of its node and waits until they are gone. kubectl waits by polling
//! every second; kup waits on a watch.

use std::process::Command;
use std::time::Instant;

use kup_engine::model::DrainSpec;
use kup_engine::provider::NodeOps;
use kup_provider::kube::{KubeNodeOps, EKS_NODEGROUP_LABEL};

fn kubectl() -> Option<String> {
    for c in ["kubectl", "/usr/lib/google-cloud-sdk/bin/kubectl"] {
        if Command::new(c)
            .arg("version")
            .arg("--client")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(c.to_string());
        }
    }
    None
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let Some(kubectl) = kubectl() else {
        println!("SKIPPED: kubectl not found; the drain benchmark compares against it");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.hcl");
    std::fs::write(
        &world,
        r#"
cluster "bench" {
  region  = "eu-west-1"
  version = "1.30"
  node_group "big" {
    version        = "1.30"
    instance_types = ["m5.4xlarge"]
    min_size       = 2
    max_size       = 2
    desired_size   = 2
  }
  workload "filler" {
    namespace = "load"
    replicas  = 220
    cpu       = "10m"
    memory    = "16Mi"
    termination_grace_period = 30
  }
}
"#,
    )
    .unwrap();
    let sim = kup_sim::Sim::start(kup_sim::SimConfig {
        world,
        listen: "127.0.0.1:0".parse().unwrap(),
        speed: 600.0,
        faults: kup_sim::FaultSpec::none(),
    })
    .await
    .unwrap();
    let kubeconfig = sim.endpoints().kubeconfigs["bench"].clone();
    let ops = KubeNodeOps::from_kubeconfig(
        Some(kubeconfig.to_str().unwrap()),
        None,
        EKS_NODEGROUP_LABEL,
    )
    .await
    .unwrap();
    // Let the pods start, then add room for the evicted pods (created only now, so the
    // two big nodes hold all the filler pods between them).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let snap = ops.snapshot().await.unwrap();
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .endpoint_url(sim.endpoints().eks)
            .region(aws_sdk_eks::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_eks::config::Credentials::new(
                "a", "b", None, None, "bench",
            ))
            .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
            .build(),
    );
    eks.create_nodegroup()
        .cluster_name("bench")
        .nodegroup_name("spare")
        .subnets("subnet-1")
        .node_role("arn:aws:iam::123456789012:role/nodes")
        .instance_types("m5.4xlarge")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(2)
                .max_size(2)
                .desired_size(2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ops.wait_ready(
        "spare",
        2,
        kup_engine::Minor::new(1, 30),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let mut nodes: Vec<(String, usize)> = snap
        .nodes
        .iter()
        .filter(|n| n.node_group.as_deref() == Some("big"))
        .map(|n| {
            (
                n.name.clone(),
                snap.pods_on(&n.name).filter(|p| !p.is_daemonset()).count(),
            )
        })
        .collect();
    nodes.sort();
    for (n, _) in &nodes {
        ops.set_unschedulable(n, true).await.unwrap();
    }
    println!("drain of one node in the simulator (pods per node, not counting DaemonSet pods):");
    let opts = DrainSpec::default();

    let (kup_node, kup_pods) = &nodes[0];
    let t = Instant::now();
    let report = ops.drain(kup_node, &opts).await.unwrap();
    let kup_time = t.elapsed();
    assert_eq!(report.evicted.len(), *kup_pods);

    let (k_node, k_pods) = &nodes[1];
    let t = Instant::now();
    let out = Command::new(&kubectl)
        .args([
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "drain",
            k_node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ])
        .output()
        .unwrap();
    let kubectl_time = t.elapsed();
    assert!(
        out.status.success(),
        "kubectl drain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    println!(
        "  kup             {kup_pods:>4} pods  {:>6.2}s",
        kup_time.as_secs_f64()
    );
    println!(
        "  kubectl drain   {k_pods:>4} pods  {:>6.2}s",
        kubectl_time.as_secs_f64()
    );
    println!(
        "  kubectl / kup   {:.1}x",
        kubectl_time.as_secs_f64() / kup_time.as_secs_f64()
    );
    sim.shutdown().await.unwrap();
}
