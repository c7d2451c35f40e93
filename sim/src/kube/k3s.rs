//! The Kubernetes side of K3s / RKE2 clusters: server and agent nodes (K3s role labels,
//! `+k3s1` / `+rke2r1` kubelet versions), the distribution's system workloads and, when the
//! world installs it, the system-upgrade-controller (its Deployment, ServiceAccount and the
//! `plans.upgrade.cattle.io` CRD; the controller itself is `suc.rs`).

use serde_json::{json, Value};

use super::nodes::{self, ensure_namespace, workload_objects};
use super::util::{self, k8s_time};
use super::{suc, KCluster, Kind};
use crate::faults::{FaultSpec, JobFail};
use crate::k3s::{Dist, K3sCluster, K3sNode};

/// The official Plan CRD (`upgrade.cattle.io_plans.yaml`, converted to JSON).
const PLAN_CRD: &str = include_str!("plans_crd.json");

pub const ROLE_CP: &str = "node-role.kubernetes.io/control-plane";
pub const ROLE_MASTER: &str = "node-role.kubernetes.io/master";
pub const ROLE_ETCD: &str = "node-role.kubernetes.io/etcd";

fn create_node(kc: &mut KCluster, k: &K3sCluster, n: &K3sNode, now: f64) {
    let dist = k.distribution.as_str();
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": dist,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": dist,
    });
    let servers = k.nodes.iter().filter(|x| x.server).count();
    if n.server {
        labels[ROLE_CP] = json!("true");
        labels[ROLE_MASTER] = json!("true");
        if k.distribution == Dist::Rke2 || servers > 1 {
            labels[ROLE_ETCD] = json!("true");
        }
    }
    for (a, b) in &n.labels {
        labels[a] = json!(b);
    }
    let ip = kc.next_ip().replacen("10.0.", "192.168.", 1);
    let t = k8s_time(now);
    let node = json!({
        "metadata": {
            "name": n.name,
            "labels": labels,
            "annotations": {
                format!("{dist}.io/hostname"): n.name,
                format!("{dist}.io/internal-ip"): ip,
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            }
        },
        "spec": {
            "providerID": format!("{dist}://{}", n.name),
            "podCIDR": format!("10.42.{}.0/24", util::fnv(&n.name) % 250),
        },
        "status": {
            "capacity": { "cpu": "4", "memory": "16374940Ki", "pods": "110", "ephemeral-storage": "81106868Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0" },
            "allocatable": { "cpu": "4", "memory": "16374940Ki", "pods": "110", "ephemeral-storage": "78899998113", "hugepages-1Gi": "0", "hugepages-2Mi": "0" },
            "conditions": crate::kube::nodes::node_conditions(&t, crate::kube::nodes::ready_condition(&t)),
            "addresses": [
                { "type": "InternalIP", "address": ip },
                { "type": "Hostname", "address": n.name }
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": {
                "machineID": format!("{:032x}", util::fnv(&n.name) as u128),
                "systemUUID": uuid::Uuid::new_v4().to_string(),
                "bootID": uuid::Uuid::new_v4().to_string(),
                "kernelVersion": "6.8.0-45-generic",
                "osImage": "Ubuntu 24.04.1 LTS",
                "containerRuntimeVersion": format!("containerd://1.7.20-{dist}1"),
                "kubeletVersion": n.version,
                "kubeProxyVersion": n.version,
                "operatingSystem": "linux",
                "architecture": "amd64"
            },
            "images": []
        }
    });
    kc.create(Kind::Node, node, now);
}

fn deployment(name: &str, ns: &str, image: &str, replicas: u32, extra: Value) -> Value {
    let labels = json!({ "k8s-app": name });
    let mut spec = json!({ "containers": [nodes::container(name, image, "100m", Some("70Mi"))],
        "priorityClassName": "system-cluster-critical",
        "tolerations": [ { "key": "CriticalAddonsOnly", "operator": "Exists" },
            { "key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule" },
            { "key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule" } ] });
    if let Some(m) = extra.as_object() {
        for (a, b) in m {
            spec[a] = b.clone();
        }
    }
    json!({
        "metadata": { "name": name, "namespace": ns, "labels": labels.clone(),
            "annotations": { "deployment.kubernetes.io/revision": "1" } },
        "spec": {
            "replicas": replicas, "selector": { "matchLabels": labels.clone() },
            "template": { "metadata": { "labels": labels }, "spec": spec },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": "25%" } },
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
        },
        "status": {}
    })
}

fn system_workloads(kc: &mut KCluster, k: &K3sCluster, now: f64) {
    let objs = match k.distribution {
        Dist::K3s => vec![
            deployment(
                "coredns",
                "kube-system",
                "rancher/mirrored-coredns-coredns:1.11.3",
                1,
                json!({}),
            ),
            deployment(
                "local-path-provisioner",
                "kube-system",
                "rancher/local-path-provisioner:v0.0.28",
                1,
                json!({}),
            ),
            deployment(
                "metrics-server",
                "kube-system",
                "rancher/mirrored-metrics-server:v0.7.2",
                1,
                json!({}),
            ),
        ],
        Dist::Rke2 => vec![
            deployment(
                "rke2-coredns-rke2-coredns",
                "kube-system",
                "rancher/hardened-coredns:v1.11.1-build20240910",
                2,
                json!({}),
            ),
            deployment(
                "rke2-metrics-server",
                "kube-system",
                "rancher/hardened-k8s-metrics-server:v0.7.1-build20240910",
                1,
                json!({}),
            ),
        ],
    };
    for o in objs {
        kc.create(Kind::Deployment, o, now);
    }
    let Some(ns) = &k.suc else {
        return;
    };
    ensure_namespace(kc, ns, now);
    let crd: Value = serde_json::from_str(PLAN_CRD).expect("embedded CRD is valid JSON");
    let mut crd = crd;
    crd["status"] = json!({
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": ["v1"],
        "conditions": [
            { "type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": k8s_time(now) },
            { "type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": k8s_time(now) }
        ]
    });
    kc.create(Kind::Crd, crd, now);
    kc.create(
        Kind::ServiceAccount,
        json!({ "metadata": { "name": suc::SERVICE_ACCOUNT, "namespace": ns } }),
        now,
    );
    let mut d = deployment(
        "system-upgrade-controller",
        ns,
        "rancher/system-upgrade-controller:v0.14.2",
        1,
        json!({
            "serviceAccountName": suc::SERVICE_ACCOUNT,
            "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                { "matchExpressions": [ { "key": ROLE_CP, "operator": "In", "values": ["true"] } ] } ] } } },
            "nodeSelector": { ROLE_CP: "true" }
        }),
    );
    d["metadata"]["labels"] = json!({ "app.kubernetes.io/name": "system-upgrade-controller" });
    d["spec"]["selector"] =
        json!({ "matchLabels": { "upgrade.cattle.io/controller": "system-upgrade-controller" } });
    d["spec"]["template"]["metadata"]["labels"] =
        json!({ "upgrade.cattle.io/controller": "system-upgrade-controller" });
    kc.create(Kind::Deployment, d, now);
}

/// Build the cluster's settled state: nodes Ready, system and world workloads Running.
pub fn populate(kc: &mut KCluster, k: &K3sCluster, now: f64) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure_namespace(kc, ns, now);
    }
    for n in &k.nodes {
        create_node(kc, k, n, now);
    }
    system_workloads(kc, k, now);
    for w in &k.workloads {
        ensure_namespace(kc, &w.namespace, now);
        let (kind, obj, pdb) = workload_objects(w);
        kc.create(kind, obj, now);
        if let Some(p) = pdb {
            kc.create(Kind::Pdb, p, now);
        }
    }
    nodes::settle(kc, now);
    kc.suc = k.suc.as_ref().map(|ns| suc::Suc::new(ns, k.distribution));
    kc.record_events = true;
}

pub fn tick(
    kc: &mut KCluster,
    k: &mut K3sCluster,
    faults: &FaultSpec,
    jobfails: &mut Vec<JobFail>,
    now: f64,
) -> bool {
    if let Some(e) = &k.endpoint {
        kc.endpoint.clone_from(e);
    }
    nodes::run_timers(kc, faults, now);
    let changed = suc::run(kc, k, jobfails, now);
    suc::gc_jobs(kc, now);
    nodes::run_controllers(kc, now);
    changed
}
