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
    // 1.30.4 is not offered by the simulator: the closest 1.30 patch stands in (nothing
    // older is offered, so the oldest), and no pool may pass it.
    assert_eq!(c["version"], "1.30.5");
    assert_eq!(c["agent_pool"]["system"]["mode"], "System");
    assert_eq!(c["agent_pool"]["system"]["max_surge"], "10%");
    assert!(c["agent_pool"]["system"].get("max_unavailable").is_none());
    assert_eq!(c["agent_pool"]["apps"]["mode"], "User");
    assert_eq!(c["agent_pool"]["apps"]["version"], "1.30.5");
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
    // Long names in a long namespace: every candidate is a DNS label, and a third one with
    // the same name still finds a free one.
    let long = "a".repeat(70);
    let mut out = Map::new();
    for _ in 0..3 {
        let n = unique_name(&out, &long, "ingress-nginx-controllers");
        assert!(
            n.len() <= 63 && !n.ends_with('-') && !n.starts_with('-'),
            "{n}"
        );
        assert!(!out.contains_key(&n));
        out.insert(n, json!({}));
    }
    assert_eq!(unique_name(&Map::new(), "---", "ns"), "workload");
}

fn k3s_actual() -> ActualCluster {
    let node = |name: &str, version: &str, cp: bool| {
        let mut labels = json!({ "kubernetes.io/hostname": name, "pool": "edge" });
        if cp {
            labels["node-role.kubernetes.io/control-plane"] = json!("true");
        }
        json!({ "name": name, "kubelet_version": version, "ready": true, "unschedulable": false,
                "allocatable": { "cpu_millis": 4000, "memory_bytes": 16000000000u64 },
                "allocatable_pods": 110, "labels": labels })
    };
    serde_json::from_value(json!({
        "name": "edge", "version": "v1.30.9+k3s1", "status": "ACTIVE",
        "offered_versions": ["v1.30.9+k3s1", "v1.31.2+k3s1", "v1.31.4+k3s1"],
        "node_groups": [], "addons": [],
        "kube": {
            "nodes": [node("edge-cp", "v1.30.9+k3s1", true), node("edge-a1", "v1.30.9+k3s1", false)],
            "pods": [
                pod("edge", "sensors-5c-x", Some(("ReplicaSet", "sensors-5c")), json!({"app": "sensors"})),
                pod("cattle-system", "system-upgrade-controller-1", Some(("ReplicaSet", "system-upgrade-controller-7f")), json!({"app": "suc"}))
            ],
            "pdbs": []
        }
    }))
    .unwrap()
}

#[test]
fn a_k3s_cluster_keeps_its_nodes_versions_labels_channels_and_controller_namespace() {
    let a = k3s_actual();
    let mut spec = cluster_spec("edge");
    spec.namespace = Some("cattle-system".into());
    spec.channel = Some("edge-stable".into());
    let w = world("k3s", &provider("k3s"), &[(&spec, &a)]);
    let c = &w.json["k3s_cluster"]["edge"];
    assert_eq!(c["distribution"], "k3s");
    assert_eq!(c["version"], "v1.30.9+k3s1");
    assert_eq!(c["server"]["edge-cp"]["version"], "v1.30.9+k3s1");
    // Labels a group may select by stay; the ones the simulator sets go.
    assert_eq!(c["server"]["edge-cp"]["labels"], json!({"pool": "edge"}));
    assert_eq!(c["agent"]["edge-a1"]["labels"], json!({"pool": "edge"}));
    assert_eq!(
        c["suc"],
        json!({"installed": true, "namespace": "cattle-system"})
    );
    let ch = &c["channel_server"]["channels"];
    assert_eq!(ch["v1.31"], "v1.31.4+k3s1");
    assert_eq!(ch["stable"], "v1.31.4+k3s1");
    assert!(
        ch.get("edge-stable").is_some(),
        "the configured channel answers: {ch}"
    );
    // The controller's own pods are not a workload of the copy.
    assert!(
        c["workload"].get("system-upgrade-controller").is_none(),
        "{c:#}"
    );
    assert_eq!(c["workload"]["sensors"]["replicas"], 1);
    assert_eq!(w.copied, ["edge"]);
}

#[test]
fn two_clusters_of_one_name_in_one_provider_block_are_not_merged() {
    let a = eks_actual();
    let first = cluster_spec("prod-eu");
    let mut second = cluster_spec("prod-eu");
    second.label = "prod-eu-again".into();
    let w = world("eks", &provider("eks"), &[(&first, &a), (&second, &a)]);
    assert_eq!(w.copied, ["prod-eu"]);
    assert!(
        w.notes
            .iter()
            .any(|n| n.starts_with("cluster.prod-eu-again: not rehearsed")),
        "{:?}",
        w.notes
    );
}

/// The worlds are written for the simulator's own loader, which must accept them: a
/// cluster copied from real clusters that the simulator refuses is no rehearsal at all.
#[tokio::test]
async fn the_simulator_loads_every_copied_world() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gke_p = provider("gke");
    gke_p.project = Some("p".into());
    gke_p.location = Some("europe-west1-b".into());
    let gke: ActualCluster = serde_json::from_value(json!({
        "name": "shop", "version": "1.30.9-gke.1127000", "status": "RUNNING",
        "offered_versions": [], "addons": [],
        "node_groups": [{ "name": "default", "version": "1.30.7-gke.1", "status": "RUNNING",
            "desired_size": 3, "min_size": 3, "max_size": 3,
            "max_surge": { "count": 1 }, "max_unavailable": { "count": 0 } }]
    }))
    .unwrap();
    let aks: ActualCluster = serde_json::from_value(json!({
        "name": "checkout", "region": "westeurope", "version": "1.30.9", "status": "Succeeded",
        "offered_versions": [], "addons": [],
        "node_groups": [
            { "name": "system", "version": "1.30.7", "status": "Succeeded", "desired_size": 2, "min_size": 2, "max_size": 2,
              "max_surge": { "percent": 10 }, "labels": { "kubernetes.azure.com/mode": "system" } }
        ]
    }))
    .unwrap();
    let cases: Vec<(&str, ProviderSpec, ActualCluster, &str)> = vec![
        ("eks", provider("eks"), eks_actual(), "prod-eu"),
        ("gke", gke_p, gke, "shop"),
        ("aks", provider("aks"), aks, "checkout"),
        ("k3s", provider("k3s"), k3s_actual(), "edge"),
    ];
    for (kind, p, a, name) in cases {
        let spec = cluster_spec(name);
        let w = world(kind, &p, &[(&spec, &a)]);
        assert_eq!(w.copied, [name], "{kind}: {:?}", w.notes);
        let path = tmp.path().join(format!("{kind}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&w.json).unwrap()).unwrap();
        let sim = kup_sim::Sim::start(kup_sim::SimConfig {
            world: path.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            speed: 600.0,
            faults: kup_sim::FaultSpec::none(),
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{kind}: the simulator refused the copy: {e:#}\n{:#}",
                w.json
            )
        });
        sim.shutdown().await.unwrap();
    }
}
