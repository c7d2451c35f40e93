use super::*;
use serde_json::json;

fn provider(kind: &str) -> ProviderSpec {
    serde_json::from_value(json!({ "kind": kind, "region": "eu-west-1" })).unwrap()
}

fn cluster_spec(name: &str) -> ClusterSpec {
    serde_json::from_value(json!({
        "label": name, "provider": "eks", "name": name, "version": "1.31",
        "addons": [], "node_groups": [], "parallel_node_groups": 1
    }))
    .unwrap_or_else(|e| panic!("a minimal ClusterSpec: {e}"))
}

fn pod(ns: &str, name: &str, owner: Option<(&str, &str)>, labels: Value) -> Value {
    json!({
        "namespace": ns, "name": name, "node": "n1",
        "owner": owner.map(|(k, n)| [k, n]),
        "phase": "Running",
        "requests": { "cpu_millis": 250, "memory_bytes": 268435456u64 },
        "has_empty_dir": false, "is_mirror": false,
        "labels": labels
    })
}

/// An EKS cluster with two groups, three workloads (one pinned, one crash-looping, one
/// with a budget), a DaemonSet, a bare pod, a Job's pod and kube-system pods.
fn eks_actual() -> ActualCluster {
    let mut pinned = pod(
        "shop",
        "db-0",
        Some(("StatefulSet", "db")),
        json!({"app": "db", "controller-revision-hash": "db-5f"}),
    );
    pinned["node_selector"] = json!({ "eks.amazonaws.com/nodegroup": "payments" });
    let mut crashing = pod(
        "shop",
        "worker-7d4b9-x1",
        Some(("ReplicaSet", "worker-7d4b9")),
        json!({"app": "worker", "pod-template-hash": "7d4b9"}),
    );
    crashing["waiting_reason"] = json!("CrashLoopBackOff");
    let mut scratch = pod("shop", "scratch", None, json!({}));
    scratch["has_empty_dir"] = json!(true);
    serde_json::from_value(json!({
        "name": "prod-eu", "region": "eu-west-1", "version": "1.28", "status": "ACTIVE",
        "offered_versions": ["1.29", "1.30"],
        "node_groups": [
            { "name": "general", "version": "1.28", "status": "ACTIVE", "desired_size": 3, "min_size": 2, "max_size": 6,
              "max_unavailable": { "percent": 25 }, "labels": { "team": "web" } },
            { "name": "payments", "version": "1.27", "status": "ACTIVE", "desired_size": 2, "min_size": 2, "max_size": 2,
              "max_unavailable": { "count": 1 } }
        ],
        "addons": [
            { "name": "coredns", "version": "v1.10.1-eksbuild.7", "status": "ACTIVE" },
            { "name": "kube-proxy", "version": "v1.28.99-eksbuild.1", "status": "ACTIVE" },
            { "name": "aws-ebs-csi-driver", "version": "v1.30.0-eksbuild.1", "status": "ACTIVE" }
        ],
        "kube": {
            "nodes": [
                { "name": "n1", "kubelet_version": "v1.28.15-eks-1", "ready": true, "unschedulable": false,
                  "node_group": "general", "allocatable": { "cpu_millis": 1930, "memory_bytes": 7000000000u64 },
                  "allocatable_pods": 29, "labels": { "node.kubernetes.io/instance-type": "m5.large" } }
            ],
            "pods": [
                pod("shop", "web-6c9f8-a", Some(("ReplicaSet", "web-6c9f8")), json!({"app": "web", "pod-template-hash": "6c9f8"})),
                pod("shop", "web-6c9f8-b", Some(("ReplicaSet", "web-6c9f8")), json!({"app": "web", "pod-template-hash": "6c9f8"})),
                pinned,
                crashing,
                scratch,
                pod("monitoring", "agent-x", Some(("DaemonSet", "agent")), json!({"app": "agent"})),
                pod("shop", "report-1-abc", Some(("Job", "report-1")), json!({"job": "report"})),
                pod("kube-system", "coredns-1", Some(("ReplicaSet", "coredns-55")), json!({"k8s-app": "kube-dns"}))
            ],
            "pdbs": [
                { "namespace": "shop", "name": "web", "match_labels": { "app": "web" }, "min_available": "50%",
                  "disruptions_allowed": 1, "current_healthy": 2, "desired_healthy": 1, "expected_pods": 2 },
                { "namespace": "shop", "name": "db", "match_labels": { "app": "db" }, "max_unavailable": "1",
                  "disruptions_allowed": 1, "current_healthy": 1, "desired_healthy": 0, "expected_pods": 1 }
            ]
        },
        "scan": {
            "workloads": [
                { "namespace": "shop", "kind": "Deployment", "name": "web", "replicas": 4, "available": 2,
                  "pod_labels": { "app": "web" } }
            ]
        }
    }))
    .unwrap_or_else(|e| panic!("the fixture is an ActualCluster: {e}"))
}

#[test]
fn an_eks_cluster_is_copied_with_its_groups_capacity_and_workloads() {
    let a = eks_actual();
    let spec = cluster_spec("prod-eu");
    let w = world("eks", &provider("eks"), &[(&spec, &a)]);
    let c = &w.json["cluster"]["prod-eu"];
    assert_eq!(c["version"], "1.28");
    assert_eq!(c["region"], "eu-west-1");
    let general = &c["node_group"]["general"];
    assert_eq!(general["desired_size"], 3);
    assert_eq!(general["max_unavailable_percentage"], 25);
    assert_eq!(general["instance_types"], json!(["m5.large"]));
    assert_eq!(general["labels"], json!({"team": "web"}));
    assert_eq!(c["node_group"]["payments"]["version"], "1.27");
    assert_eq!(c["node_group"]["payments"]["max_unavailable"], 1);

    let loads = &c["workload"];
    // The Deployment by its scanned name, with its declared replicas (not just the two
    // pods that exist) and its budget as written.
    assert_eq!(loads["web"]["kind"], "Deployment");
    assert_eq!(loads["web"]["replicas"], 4);
    assert_eq!(loads["web"]["cpu"], "250m");
    assert_eq!(loads["web"]["memory"], "256Mi");
    assert_eq!(loads["web"]["labels"], json!({"app": "web"}));
    assert_eq!(loads["web"]["pdb"], json!({"min_available": "50%"}));
    // The StatefulSet keeps its pin and its budget; controller labels are dropped.
    assert_eq!(loads["db"]["kind"], "StatefulSet");
    assert_eq!(loads["db"]["node_group"], "payments");
    assert_eq!(loads["db"]["pdb"], json!({"max_unavailable": 1}));
    assert_eq!(loads["db"]["labels"], json!({"app": "db"}));
    // A ReplicaSet without a scanned Deployment is named by its ReplicaSet's prefix.
    assert_eq!(loads["worker"]["crash_loop"], true);
    assert_eq!(loads["scratch"]["kind"], "Pod");
    assert_eq!(loads["scratch"]["empty_dir"], true);
    assert_eq!(loads["agent"]["kind"], "DaemonSet");
    assert!(loads["agent"].get("replicas").is_none());
    // Jobs finish on their own; kube-system is the simulator's own.
    assert!(loads.get("report-1").is_none() && loads.get("report").is_none());
    assert!(loads.get("coredns").is_none());
    assert_eq!(loads.as_object().unwrap().len(), 5, "{loads:#}");

    // Add-ons: kept when the catalog has them, stood in for when the version is unknown,
    // left out (with a note) when the simulator has no such add-on.
    assert_eq!(c["addon"]["coredns"]["version"], "v1.10.1-eksbuild.7");
    let kp = c["addon"]["kube-proxy"]["version"].as_str().unwrap();
    assert_ne!(kp, "v1.28.99-eksbuild.1");
    assert!(c["addon"].get("aws-ebs-csi-driver").is_none());
    let notes = w.notes.join("\n");
    assert!(
        notes.contains("kube-proxy") && notes.contains("stands in for v1.28.99-eksbuild.1"),
        "{notes}"
    );
    assert!(
        notes.contains("aws-ebs-csi-driver is not in the simulator's catalog"),
        "{notes}"
    );
    assert!(notes.contains("1 pods owned by Jobs"), "{notes}");
    assert!(notes.starts_with("cluster.prod-eu: "), "{notes}");
}

#[test]
fn a_cluster_without_kubernetes_access_is_copied_without_workloads_and_says_so() {
    let mut a = eks_actual();
    a.kube = None;
    let spec = cluster_spec("prod-eu");
    let w = world("eks", &provider("eks"), &[(&spec, &a)]);
    let c = &w.json["cluster"]["prod-eu"];
    assert!(c.get("workload").is_none());
    // No nodes seen: the simulator's default instance type.
    assert!(c["node_group"]["general"].get("instance_types").is_none());
    assert!(
        w.notes.iter().any(|n| n.contains("no workloads to drain")),
        "{:?}",
        w.notes
    );
}

#[test]
fn gke_and_aks_versions_outside_the_simulators_catalog_get_the_nearest_stand_in() {
    let gke: ActualCluster = serde_json::from_value(json!({
        "name": "shop", "region": "europe-west1-b", "version": "1.29.8-gke.1999999", "status": "RUNNING",
        "offered_versions": [], "addons": [],
        "node_groups": [{ "name": "default", "version": "1.29.8-gke.1031000", "status": "RUNNING",
            "desired_size": 3, "min_size": 3, "max_size": 3,
            "max_surge": { "count": 1 }, "max_unavailable": { "count": 0 } }]
    }))
    .unwrap();
    let spec = cluster_spec("shop");
    let mut p = provider("gke");
    p.project = Some("shop-prod".into());
    p.location = Some("europe-west1-b".into());
    let w = world("gke", &p, &[(&spec, &gke)]);
    let c = &w.json["gke_cluster"]["shop"];
    assert_eq!(c["project"], "shop-prod");
    assert_eq!(c["location"], "europe-west1-b");
    // Same patch, the simulator's build of it.
    assert_eq!(c["version"], "1.29.8-gke.1031000");
    assert_eq!(c["node_pool"]["default"]["version"], "1.29.8-gke.1031000");
    assert_eq!(c["node_pool"]["default"]["max_surge"], 1);
    assert_eq!(c["node_pool"]["default"]["max_unavailable"], 0);
    assert!(w
        .notes
        .iter()
        .any(|n| n.contains("stands in for 1.29.8-gke.1999999")));

    let aks: ActualCluster = serde_json::from_value(json!({
        "name": "checkout", "region": "westeurope", "version": "1.30.4", "status": "Succeeded",
        "offered_versions": [], "addons": [],
        "node_groups": [
            { "name": "system", "version": "1.30.4", "status": "Succeeded", "desired_size": 2, "min_size": 2, "max_size": 2,
              "max_surge": { "percent": 10 }, "labels": { "kubernetes.azure.com/mode": "system" } },
            { "name": "apps", "version": "1.30.9", "status": "Succeeded", "desired_size": 3, "min_size": 3, "max_size": 3,
              "max_surge": { "count": 1 }, "max_unavailable": { "count": 0 },
              "labels": { "kubernetes.azure.com/mode": "user", "team": "pay" } }
        ]
    }))
    .unwrap();
    let spec = cluster_spec("checkout");
    let mut p = provider("aks");
    p.subscription_id = Some("00000000-0000-0000-0000-000000000009".into());
    p.resource_group = Some("rg-pay".into());
    let w = world("aks", &p, &[(&spec, &aks)]);
    let c = &w.json["aks_cluster"]["checkout"];
    assert_eq!(c["subscription_id"], "00000000-0000-0000-0000-000000000009");
    assert_eq!(c["resource_group"], "rg-pay");
    // 1.30.4 is not offered by the simulator: the newest 1.30 patch stands in.
    assert_eq!(c["version"], "1.30.14");
    assert_eq!(c["agent_pool"]["system"]["mode"], "System");
    assert_eq!(c["agent_pool"]["system"]["max_surge"], "10%");
    assert!(c["agent_pool"]["system"].get("max_unavailable").is_none());
    assert_eq!(c["agent_pool"]["apps"]["mode"], "User");
    assert_eq!(c["agent_pool"]["apps"]["version"], "1.30.9");
    assert_eq!(c["agent_pool"]["apps"]["max_unavailable"], "0");
    // The mode is the pool's mode, not one of its labels.
    assert_eq!(c["agent_pool"]["apps"]["labels"], json!({"team": "pay"}));
}

#[test]
fn kubeadm_is_not_a_world_the_simulator_can_copy() {
    let a = eks_actual();
    let spec = cluster_spec("prod-eu");
    let w = world("kubeadm", &provider("kubeadm"), &[(&spec, &a)]);
    assert_eq!(w.json, json!({}));
    assert!(w.notes.iter().any(|n| n.contains("cannot be rehearsed")));
}

#[test]
fn workload_names_stay_unique_dns_labels() {
    let mut out = Map::new();
    out.insert("web".into(), json!({}));
    assert_eq!(unique_name(&out, "web", "shop"), "web-shop-2");
    assert_eq!(unique_name(&out, "Web.Front", "shop"), "web-front");
}
