//! Managed node groups on the Kubernetes side: version updates replace nodes (surge, cordon,
//! drain through PDBs, terminate), PodEvictionFailure after 15 simulated minutes unless
//! `force`, faults, and node groups created / deleted with their nodes.

mod common;

use aws_sdk_eks::types::{ErrorCode, UpdateStatus};
use common::{start_with, Harness, CLUSTER};
use serde_json::{json, Value};

const FAST: f64 = 6000.0;

fn world(stuck_min_available: u32) -> String {
    format!(
        r#"
cluster "prod-eu" {{
  region  = "eu-west-1"
  version = "1.29"
  node_group "general" {{
    version         = "1.28"
    release_version = "1.28.5-20240307"
    instance_types  = ["m5.xlarge"]
    desired_size    = 3
    max_size        = 6
    max_unavailable = 1
  }}
  workload "web" {{
    namespace = "shop"
    replicas  = 6
    cpu       = "250m"
    memory    = "256Mi"
    pdb {{ min_available = 4 }}
  }}
  workload "db" {{
    namespace = "shop"
    kind      = "StatefulSet"
    replicas  = 3
    pdb {{ max_unavailable = 1 }}
  }}
  workload "stuck" {{
    replicas = 2
    pdb {{ min_available = {stuck_min_available} }}
  }}
}}
"#
    )
}

async fn kget(h: &Harness, path: &str) -> Value {
    let base = &h.sim.endpoints().kube[CLUSTER];
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn nodes(h: &Harness) -> Vec<Value> {
    kget(h, "/api/v1/nodes").await["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn kubelet(n: &Value) -> &str {
    n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap()
}

async fn update_version(h: &Harness, force: bool) -> String {
    let u = h
        .eks
        .update_nodegroup_version()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .version("1.29")
        .force(force)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    u.id().unwrap().to_string()
}

/// Poll the audit until every workload is back (bounded iterations).
async fn settled_audit(h: &Harness) -> Value {
    for _ in 0..2000 {
        let a = h.admin_get("kube/prod-eu/audit").await;
        if a["unavailable_workloads"].as_array().unwrap().is_empty() {
            return a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("workloads never came back");
}

#[tokio::test]
async fn version_update_replaces_nodes_without_violating_budgets() {
    let h = start_with(&world(1), "world.hcl", FAST, "").await;
    let before = nodes(&h).await;
    assert_eq!(before.len(), 3);
    assert!(before
        .iter()
        .all(|n| kubelet(n).starts_with("v1.28.5-eks-")));
    let id = update_version(&h, false).await;
    let done = h.wait_update(&id, Some("general"), None).await;
    assert_eq!(done.status, Some(UpdateStatus::Successful), "{done:?}");
    let after = nodes(&h).await;
    assert_eq!(after.len(), 3, "scaled back to desired");
    for n in &after {
        assert!(kubelet(n).starts_with("v1.29.13-eks-"), "{}", kubelet(n));
        assert!(n["spec"]["unschedulable"].is_null());
        assert!(
            before
                .iter()
                .all(|b| b["metadata"]["name"] != n["metadata"]["name"]),
            "every node replaced"
        );
    }
    let ng = h
        .eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.version(), Some("1.29"));
    let a = settled_audit(&h).await;
    for (name, p) in a["pdbs"].as_object().unwrap() {
        assert_eq!(p["violated"], false, "{name}: {a}");
        assert!(
            p["min_healthy_observed"].as_i64().unwrap() >= p["budget"].as_i64().unwrap(),
            "{name}: {a}"
        );
    }
    assert_eq!(a["lost_pods"], json!([]), "{a}");
    assert!(
        a["evictions"].as_u64().unwrap() >= 9,
        "web, db, stuck, coredns evicted: {a}"
    );
    // Every workload pod now runs on a new node.
    let pods = kget(&h, "/api/v1/pods").await;
    let names: Vec<&str> = after
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    for p in pods["items"].as_array().unwrap() {
        assert!(
            names.contains(&p["spec"]["nodeName"].as_str().unwrap()),
            "{p}"
        );
    }
    // Events were recorded for the cordons.
    let evs = kget(
        &h,
        "/api/v1/events?fieldSelector=reason%3DNodeNotSchedulable",
    )
    .await;
    assert_eq!(evs["items"].as_array().unwrap().len(), 3);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn blocked_drain_fails_with_pod_eviction_failure_unless_forced() {
    // minAvailable == replicas: never evictable.
    let h = start_with(&world(2), "world.hcl", FAST, "").await;
    let started = std::time::Instant::now();
    let id = update_version(&h, false).await;
    let done = h.wait_update(&id, Some("general"), None).await;
    // The drain gave up only after the simulated 15 minutes (a lower bound, not a timing test).
    assert!(started.elapsed() >= std::time::Duration::from_secs_f64(15.0 * 60.0 / FAST));
    assert_eq!(done.status, Some(UpdateStatus::Failed), "{done:?}");
    let e = &done.errors()[0];
    assert_eq!(e.error_code, Some(ErrorCode::PodEvictionFailure));
    assert_eq!(
        e.error_message(),
        Some("Reached max retries while trying to evict pods from nodes in node group general")
    );
    assert!(e.resource_ids()[0].starts_with("i-0"), "{e:?}");
    let ng = h
        .eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(
        ng.version(),
        Some("1.28"),
        "a failed update leaves the old version"
    );
    // Old nodes stay cordoned as EKS leaves them; the protected pods still run.
    let ns = nodes(&h).await;
    let old: Vec<&Value> = ns
        .iter()
        .filter(|n| kubelet(n).starts_with("v1.28"))
        .collect();
    assert!(!old.is_empty());
    assert!(old.iter().all(|n| n["spec"]["unschedulable"] == true));
    let stuck = kget(
        &h,
        "/api/v1/namespaces/default/pods?labelSelector=app%3Dstuck",
    )
    .await;
    assert_eq!(stuck["items"].as_array().unwrap().len(), 2);
    let a = h.admin_get("kube/prod-eu/audit").await;
    assert!(a["evictions_refused"].as_u64().unwrap() > 0, "{a}");
    assert_eq!(a["pdbs"]["default/stuck"]["violated"], false);

    // With force the drain gives up on the budget after 15 minutes and the update succeeds.
    let id = update_version(&h, true).await;
    let done = h.wait_update(&id, Some("general"), None).await;
    assert_eq!(done.status, Some(UpdateStatus::Successful), "{done:?}");
    let ns = nodes(&h).await;
    assert_eq!(ns.len(), 3);
    assert!(ns.iter().all(|n| kubelet(n).starts_with("v1.29.13-eks-")));
    let a = settled_audit(&h).await;
    assert_eq!(a["pdbs"]["shop/web"]["violated"], false);
    // Forcing terminated nodes that still held the protected pods.
    assert!(
        a["lost_pods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("default/stuck-")),
        "{a}"
    );
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn hang_pauses_and_notready_fails_node_creation() {
    let h = start_with(&world(1), "world.hcl", FAST, "hang=prod-eu/general").await;
    let id = update_version(&h, false).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let ng = h
        .eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.status().unwrap().as_str(), "UPDATING");
    assert!(
        nodes(&h)
            .await
            .iter()
            .all(|n| kubelet(n).starts_with("v1.28")),
        "paused before surging"
    );
    // New nodes that never join: NodeCreationFailure after the join timeout.
    h.set_faults("notready=prod-eu/general").await;
    let done = h.wait_update(&id, Some("general"), None).await;
    assert_eq!(done.status, Some(UpdateStatus::Failed));
    assert_eq!(
        done.errors()[0].error_code,
        Some(ErrorCode::NodeCreationFailure)
    );
    let ns = nodes(&h).await;
    assert!(ns.iter().any(|n| kubelet(n).starts_with("v1.29")
        && !n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn created_and_deleted_node_groups_bring_and_take_nodes() {
    let h = start_with(&world(1), "world.hcl", FAST, "").await;
    h.eks
        .create_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("extra")
        .subnets("subnet-1")
        .node_role("arn:aws:iam::123456789012:role/n")
        .instance_types("m5.large")
        .labels("pool", "extra")
        .scaling_config(
            aws_sdk_eks::types::NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(3)
                .desired_size(2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut ready = 0;
    for _ in 0..2000 {
        let l = kget(&h, "/api/v1/nodes?labelSelector=pool%3Dextra").await;
        ready = l["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        if ready == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(ready, 2);
    // A bare pod pinned to the new group.
    let base = h.sim.endpoints().kube[CLUSTER].clone();
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/namespaces/default/pods"))
        .json(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pinned"},
            "spec": {"nodeSelector": {"pool": "extra"}, "containers": [{"name": "c", "image": "busybox"}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    for _ in 0..2000 {
        if kget(&h, "/api/v1/namespaces/default/pods/pinned").await["status"]["phase"] == "Running"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    h.eks
        .delete_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("extra")
        .send()
        .await
        .unwrap();
    for _ in 0..2000 {
        if kget(&h, "/api/v1/nodes?labelSelector=pool%3Dextra").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        kget(&h, "/api/v1/nodes?labelSelector=pool%3Dextra").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let a = h.admin_get("kube/prod-eu/audit").await;
    assert!(
        a["lost_pods"]
            .as_array()
            .unwrap()
            .contains(&json!("default/pinned")),
        "{a}"
    );
    assert_eq!(nodes(&h).await.len(), 3);
    h.sim.shutdown().await.unwrap();
}
