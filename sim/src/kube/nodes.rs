//! Nodes from EKS node groups, the system and world workloads, and the managed node-group
//! rolling update (EKS's documented surge / upgrade / scale-down phases).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::ctrl;
use super::util::{self, k8s_time};
use super::{KCluster, Kind, TEv};
use crate::faults::{FaultSpec, Target};
use crate::world::{self, Cluster, Lifecycle, NodeGroup, UpdateStatus, Workload};

/// Simulated seconds from instance launch to a Ready node.
pub const NODE_BOOT_SECS: f64 = 90.0;
/// EKS: pods that do not leave a node within 15 minutes fail the upgrade.
pub const DRAIN_TIMEOUT_SECS: f64 = 15.0 * 60.0;
/// EKS waits 60 seconds after draining before terminating the instance.
pub const TERMINATE_WAIT_SECS: f64 = 60.0;
/// Eviction retry interval after a 429 (kubectl and EKS both use 5 s).
pub const EVICT_RETRY_SECS: f64 = 5.0;
/// New nodes that never join fail the update after this long.
pub const JOIN_TIMEOUT_SECS: f64 = 15.0 * 60.0;

/// (vCPUs, memory GiB, EKS max pods, arm64)
fn instance(t: &str) -> (i64, f64, i64, bool) {
    let (family, size) = t.split_once('.').unwrap_or((t, "large"));
    let arm = family.ends_with('g') || family.ends_with("gd") || family.ends_with("gn");
    let known: &[(&str, i64, f64, i64)] = &[
        ("t3.micro", 2, 1.0, 4),
        ("t3.small", 2, 2.0, 11),
        ("t3.medium", 2, 4.0, 17),
        ("t3.large", 2, 8.0, 35),
        ("t3.xlarge", 4, 16.0, 58),
        ("t3.2xlarge", 8, 32.0, 58),
        ("t4g.medium", 2, 4.0, 17),
        ("t4g.large", 2, 8.0, 35),
        ("c5.large", 2, 4.0, 29),
        ("c5.xlarge", 4, 8.0, 58),
        ("c5.2xlarge", 8, 16.0, 58),
        ("c5.4xlarge", 16, 32.0, 234),
        ("r5.large", 2, 16.0, 29),
        ("r5.xlarge", 4, 32.0, 58),
        ("r5.2xlarge", 8, 64.0, 58),
    ];
    if let Some((_, c, m, p)) = known.iter().find(|(n, ..)| *n == t) {
        return (*c, *m, *p, arm);
    }
    // General purpose families (m5, m6i, m6g, m7i, m7g, ...): 4 GiB per vCPU.
    let (cpu, pods) = match size {
        "medium" => (1, 8),
        "large" => (2, 29),
        "xlarge" => (4, 58),
        "2xlarge" => (8, 58),
        "4xlarge" => (16, 234),
        "8xlarge" => (32, 234),
        "12xlarge" => (48, 234),
        "16xlarge" => (64, 737),
        "24xlarge" => (96, 737),
        _ => (2, 29),
    };
    let per = if family.starts_with('c') {
        2.0
    } else if family.starts_with('r') {
        8.0
    } else {
        4.0
    };
    (cpu, cpu as f64 * per, pods, arm)
}

fn reserved_cpu_milli(cores: i64) -> i64 {
    let mut r = 0.0;
    for c in 0..cores {
        r += match c {
            0 => 60.0,
            1 => 10.0,
            2 | 3 => 5.0,
            _ => 2.5,
        };
    }
    r as i64
}

fn kubelet_version(release: &str) -> String {
    let patch = release.split('-').next().unwrap_or(release);
    format!("v{patch}-eks-{:07x}", util::fnv(patch) & 0xfff_ffff)
}

fn ami_id(release: &str, ami_type: &str, region: &str) -> String {
    format!(
        "ami-0{:016x}",
        util::fnv(&format!("{release}/{ami_type}/{region}"))
    )
}

fn node_ng(n: &Value) -> &str {
    n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"]
        .as_str()
        .unwrap_or("")
}

pub(super) fn node_release(n: &Value) -> &str {
    n["metadata"]["annotations"]["kup-sim/release-version"]
        .as_str()
        .unwrap_or("")
}

fn taint_effect(e: &str) -> &'static str {
    match e {
        "NO_EXECUTE" => "NoExecute",
        "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
        _ => "NoSchedule",
    }
}

fn ng_taints(ng: &NodeGroup) -> Vec<Value> {
    ng.taints
        .iter()
        .map(|t| {
            let mut v = json!({ "key": t.key, "effect": taint_effect(&t.effect) });
            if let Some(val) = &t.value {
                v["value"] = json!(val);
            }
            v
        })
        .collect()
}

/// Create one node of `ng` at `release`. Ready at once when `ready`, else after booting.
fn create_node(
    kc: &mut KCluster,
    c: &Cluster,
    ng: &NodeGroup,
    release: &str,
    ready: bool,
    now: f64,
) -> String {
    let region = c.region.clone();
    let azs = ng.subnets.len().clamp(1, 6);
    // Balance across AZs.
    let mut per_az = vec![0usize; azs];
    for n in kc
        .objs(Kind::Node)
        .values()
        .filter(|n| node_ng(n) == ng.name)
    {
        if let Some(z) = n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str() {
            if let Some(i) = z
                .chars()
                .last()
                .map(|ch| (ch as u8).wrapping_sub(b'a') as usize)
            {
                if i < azs {
                    per_az[i] += 1;
                }
            }
        }
    }
    let az = (0..azs).min_by_key(|i| (per_az[*i], *i)).unwrap_or(0);
    let zone = format!("{region}{}", (b'a' + az as u8) as char);
    let (o3, o4, name) = loop {
        let o3 = az as u32 * 32 + rand::Rng::random_range(&mut kc.rng, 0..32u32);
        let o4 = rand::Rng::random_range(&mut kc.rng, 2..255u32);
        let name = format!("ip-10-0-{o3}-{o4}.{region}.compute.internal");
        if kc.get(Kind::Node, "", &name).is_none() {
            break (o3, o4, name);
        }
    };
    let ip = format!("10.0.{o3}.{o4}");
    let itype = ng
        .instance_types
        .first()
        .cloned()
        .unwrap_or_else(|| "t3.medium".into());
    let (cpus, mem_gib, max_pods, arm) = instance(&itype);
    let arch = if arm || ng.ami_type.contains("ARM") {
        "arm64"
    } else {
        "amd64"
    };
    let windows = ng.ami_type.starts_with("WINDOWS");
    let os = if windows { "windows" } else { "linux" };
    let mem_ki = (mem_gib * 1024.0 * 1024.0 * 0.94) as i64;
    let alloc_mem_ki = mem_ki - (255 + 11 * max_pods + 100) * 1024;
    let (os_image, kernel) = if ng.ami_type.starts_with("AL2023") {
        (
            "Amazon Linux 2023.6.20250203".to_string(),
            format!(
                "6.1.127-135.201.amzn2023.{}",
                if arch == "arm64" { "aarch64" } else { "x86_64" }
            ),
        )
    } else if ng.ami_type.starts_with("BOTTLEROCKET") {
        (
            format!("Bottlerocket OS 1.32.0 (aws-k8s-1.{})", ng.version),
            "6.1.124".to_string(),
        )
    } else if windows {
        (
            "Windows Server 2022 Datacenter".to_string(),
            "10.0.20348.3091".to_string(),
        )
    } else {
        (
            "Amazon Linux 2".to_string(),
            format!(
                "5.10.233-223.887.amzn2.{}",
                if arch == "arm64" { "aarch64" } else { "x86_64" }
            ),
        )
    };
    let instance_id = format!("i-0{:016x}", util::fnv(&name));
    let mut labels = json!({
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/instance-type": itype,
        "beta.kubernetes.io/os": os,
        "eks.amazonaws.com/capacityType": ng.capacity_type,
        "eks.amazonaws.com/nodegroup": ng.name,
        "eks.amazonaws.com/nodegroup-image": ami_id(release, &ng.ami_type, &region),
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "k8s.io/cloud-provider-aws": format!("{:032x}", util::fnv(&c.name) as u128 * 7919),
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": os,
        "node.kubernetes.io/instance-type": itype,
        "topology.k8s.aws/zone-id": format!("{}-az{}", region.replace('-', "").chars().take(4).collect::<String>(), az + 1),
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
    });
    for (k, v) in &ng.labels {
        labels[k] = json!(v);
    }
    let kv = kubelet_version(release);
    let t = k8s_time(now);
    let ready_cond = if ready {
        json!({ "type": "Ready", "status": "True", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletReady", "message": "kubelet is posting ready status" })
    } else {
        json!({ "type": "Ready", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletNotReady",
            "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized" })
    };
    let mut spec = json!({ "providerID": format!("aws:///{zone}/{instance_id}") });
    let taints = ng_taints(ng);
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    let node = json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": ip,
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "kup-sim/release-version": release,
            }
        },
        "spec": spec,
        "status": {
            "capacity": {
                "cpu": cpus.to_string(), "memory": format!("{mem_ki}Ki"), "pods": max_pods.to_string(),
                "ephemeral-storage": format!("{}Ki", ng.disk_size as i64 * 1024 * 1024 - 12288),
                "hugepages-1Gi": "0", "hugepages-2Mi": "0"
            },
            "allocatable": {
                "cpu": format!("{}m", cpus * 1000 - reserved_cpu_milli(cpus)), "memory": format!("{alloc_mem_ki}Ki"),
                "pods": max_pods.to_string(),
                "ephemeral-storage": format!("{}", (ng.disk_size as i64 * 1024 * 1024 * 1024) * 9 / 10),
                "hugepages-1Gi": "0", "hugepages-2Mi": "0"
            },
            "conditions": crate::kube::nodes::node_conditions(&t, ready_cond),
            "addresses": [
                { "type": "InternalIP", "address": ip },
                { "type": "InternalDNS", "address": name },
                { "type": "Hostname", "address": name }
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": {
                "machineID": format!("ec2{:029x}", util::fnv(&instance_id) as u128),
                "systemUUID": format!("ec2{:05x}-{:04x}-{:04x}-{:04x}-{:012x}", util::fnv(&name) & 0xfffff, util::fnv(&ip) & 0xffff, util::fnv(&zone) & 0xffff, util::fnv(release) & 0xffff, util::fnv(&t) & 0xffff_ffff_ffff),
                "bootID": uuid::Uuid::new_v4().to_string(),
                "kernelVersion": kernel,
                "osImage": os_image,
                "containerRuntimeVersion": "containerd://1.7.25",
                "kubeletVersion": kv,
                "kubeProxyVersion": kv,
                "operatingSystem": os,
                "architecture": arch
            },
            "images": []
        }
    });
    register_node(kc, node, &ng.name, ready, NODE_BOOT_SECS, now);
    name
}

/// Create a node object and announce it as a kubelet does (Starting, RegisteredNode, and
/// NodeReady now or after `boot_secs` of simulated time). Shared by every cloud's node
/// side; `group` is the node group or pool the NodeReady timer reports against.
pub(crate) fn register_node(
    kc: &mut KCluster,
    node: Value,
    group: &str,
    ready: bool,
    boot_secs: f64,
    now: f64,
) {
    let node = kc.create(Kind::Node, node, now);
    let name = util::name(&node).to_string();
    kc.event(
        &node,
        "Normal",
        "Starting",
        "Starting kubelet.",
        "kubelet",
        now,
    );
    kc.event(
        &node,
        "Normal",
        "RegisteredNode",
        &format!("Node {name} event: Registered Node {name} in Controller"),
        "node-controller",
        now,
    );
    if ready {
        kc.event(
            &node,
            "Normal",
            "NodeReady",
            &format!("Node {name} status is now: NodeReady"),
            "kubelet",
            now,
        );
    } else {
        let at = now + kc.wall(boot_secs);
        let uid = util::uid(&node).to_string();
        kc.timer(at, TEv::NodeReady, group, &name, &uid);
    }
    kc.dirty = true;
}

fn node_ready_timer(
    kc: &mut KCluster,
    ng: &str,
    name: &str,
    uid: &str,
    faults: &FaultSpec,
    now: f64,
) {
    let Some(n) = kc.get(Kind::Node, "", name) else {
        return;
    };
    if util::uid(n) != uid {
        return;
    }
    if faults
        .notready
        .contains(&Target::NodeGroup(kc.name.clone(), ng.to_string()))
    {
        // Check again later: clearing the fault lets the node join.
        let at = now + kc.wall(10.0);
        kc.timer(at, TEv::NodeReady, ng, name, uid);
        return;
    }
    let t = k8s_time(now);
    let node = kc.update(Kind::Node, "", name, |n| {
        if let Some(cs) = n["status"]["conditions"].as_array_mut() {
            for c in cs {
                if c["type"] == "Ready" {
                    *c = json!({ "type": "Ready", "status": "True", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletReady", "message": "kubelet is posting ready status" });
                }
            }
        }
    });
    if let Some(node) = node {
        kc.event(
            &node,
            "Normal",
            "NodeReady",
            &format!("Node {name} status is now: NodeReady"),
            "kubelet",
            now,
        );
    }
}

fn has_nodes(ng: &NodeGroup) -> bool {
    matches!(
        ng.lifecycle,
        Lifecycle::Active | Lifecycle::Deleting { .. } | Lifecycle::DeleteFailed
    )
}

// ---------------------------------------------------------------------------------------------
// Initial population
// ---------------------------------------------------------------------------------------------

pub(super) fn container(name: &str, image: &str, cpu: &str, memory: Option<&str>) -> Value {
    let mut req = json!({ "cpu": cpu });
    if let Some(m) = memory {
        req["memory"] = json!(m);
    }
    json!({ "name": name, "image": image, "resources": { "requests": req } })
}

fn namespace_obj(name: &str) -> Value {
    json!({ "metadata": { "name": name, "labels": { "kubernetes.io/metadata.name": name } },
        "spec": { "finalizers": ["kubernetes"] }, "status": { "phase": "Active" } })
}

/// A node's conditions as the kubelet reports them: no pressure, and `ready`.
pub fn node_conditions(t: &str, ready: Value) -> Value {
    json!([
        { "type": "MemoryPressure", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available" },
        { "type": "DiskPressure", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure" },
        { "type": "PIDPressure", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available" },
        ready
    ])
}

/// The Ready condition of a kubelet that is posting ready status since `t`.
pub fn ready_condition(t: &str) -> Value {
    json!({ "type": "Ready", "status": "True", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletReady", "message": "kubelet is posting ready status" })
}

pub fn ensure_namespace(kc: &mut KCluster, ns: &str, now: f64) {
    if kc.get(Kind::Namespace, "", ns).is_none() {
        kc.create(Kind::Namespace, namespace_obj(ns), now);
    }
}

fn system_workloads(kc: &mut KCluster, c: &Cluster, now: f64) {
    let region = &c.region;
    let ecr = format!("602401143452.dkr.ecr.{region}.amazonaws.com");
    let addon = |n: &str, default: String| {
        c.addons
            .get(n)
            .map(|a| a.version.clone())
            .unwrap_or(default)
    };
    let kp = addon("kube-proxy", format!("v1.{}.0-eksbuild.1", c.version));
    let cni = addon("vpc-cni", "v1.19.2-eksbuild.1".into());
    let dns = addon("coredns", "v1.11.4-eksbuild.2".into());
    let tol_all = json!([{ "operator": "Exists" }]);
    for (name, image, cpu, labels) in [
        (
            "kube-proxy",
            format!(
                "{ecr}/eks/kube-proxy:{}",
                kp.replace("-eksbuild", "-minimal-eksbuild")
            ),
            "100m",
            json!({ "k8s-app": "kube-proxy" }),
        ),
        (
            "aws-node",
            format!("{ecr}/amazon-k8s-cni:{cni}"),
            "25m",
            json!({ "k8s-app": "aws-node", "app.kubernetes.io/name": "aws-node" }),
        ),
    ] {
        let ds = json!({
            "metadata": { "name": name, "namespace": "kube-system", "labels": labels.clone(),
                "annotations": { "deprecated.daemonset.template.generation": "1" } },
            "spec": {
                "selector": { "matchLabels": { "k8s-app": name } },
                "template": { "metadata": { "labels": labels },
                    "spec": { "containers": [container(name, &image, cpu, None)], "priorityClassName": "system-node-critical",
                        "hostNetwork": true, "tolerations": tol_all.clone(), "serviceAccountName": name } },
                "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "10%", "maxSurge": 0 } },
                "revisionHistoryLimit": 10
            },
            "status": {}
        });
        kc.create(Kind::DaemonSet, ds, now);
    }
    let labels = json!({ "k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns" });
    let dep = json!({
        "metadata": { "name": "coredns", "namespace": "kube-system", "labels": labels.clone(),
            "annotations": { "deployment.kubernetes.io/revision": "1" } },
        "spec": {
            "replicas": 2, "selector": { "matchLabels": labels.clone() },
            "template": { "metadata": { "labels": labels.clone() },
                "spec": { "containers": [container("coredns", &format!("{ecr}/eks/coredns:{dns}"), "100m", Some("70Mi"))],
                    "priorityClassName": "system-cluster-critical", "serviceAccountName": "coredns",
                    "tolerations": [ { "key": "CriticalAddonsOnly", "operator": "Exists" },
                                     { "key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule" } ] } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": "25%" } },
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
        },
        "status": {}
    });
    kc.create(Kind::Deployment, dep, now);
    let pdb = json!({
        "metadata": { "name": "coredns", "namespace": "kube-system", "labels": labels.clone() },
        "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns" } } },
        "status": { "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0, "observedGeneration": 0 }
    });
    kc.create(Kind::Pdb, pdb, now);
}

/// The JSON objects (controller or bare pod, optional PDB) for a world workload.
pub fn workload_objects(w: &Workload) -> (Kind, Value, Option<Value>) {
    let labels: BTreeMap<&str, &str> = w
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut c = container("app", &w.image, &w.cpu, Some(&w.memory));
    let mut spec =
        json!({ "containers": [], "terminationGracePeriodSeconds": w.termination_grace_period });
    if w.empty_dir {
        c["volumeMounts"] = json!([{ "name": "scratch", "mountPath": "/scratch" }]);
        spec["volumes"] = json!([{ "name": "scratch", "emptyDir": {} }]);
    }
    spec["containers"] = json!([c]);
    if let Some(ng) = &w.node_group {
        spec["nodeSelector"] = json!({ "eks.amazonaws.com/nodegroup": ng });
    }
    let meta = json!({ "name": w.name, "namespace": w.namespace, "labels": labels });
    let template = json!({ "metadata": { "labels": labels }, "spec": spec });
    let selector = json!({ "matchLabels": labels });
    let (kind, obj) = match w.kind.as_str() {
        "StatefulSet" => (
            Kind::StatefulSet,
            json!({ "metadata": meta, "spec": {
            "replicas": w.replicas, "selector": selector, "serviceName": w.name, "template": template,
            "podManagementPolicy": "OrderedReady", "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "partition": 0 } },
            "revisionHistoryLimit": 10, "persistentVolumeClaimRetentionPolicy": { "whenDeleted": "Retain", "whenScaled": "Retain" } }, "status": {} }),
        ),
        "DaemonSet" => (
            Kind::DaemonSet,
            json!({ "metadata": meta, "spec": {
            "selector": selector, "template": template,
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } },
            "revisionHistoryLimit": 10 }, "status": {} }),
        ),
        "Pod" => {
            let mut spec = spec;
            ctrl::pod_defaults(&mut spec);
            (
                Kind::Pod,
                json!({ "metadata": meta, "spec": spec, "status": { "phase": "Pending", "qosClass": "Burstable" } }),
            )
        }
        _ => (
            Kind::Deployment,
            json!({ "metadata": meta, "spec": {
            "replicas": w.replicas, "selector": selector, "template": template,
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "25%", "maxSurge": "25%" } },
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600 }, "status": {} }),
        ),
    };
    let pdb = w.pdb.as_ref().map(|p| {
        let mut spec = json!({ "selector": { "matchLabels": labels } });
        if let Some(v) = &p.min_available {
            spec["minAvailable"] = v.to_json();
        }
        if let Some(v) = &p.max_unavailable {
            spec["maxUnavailable"] = v.to_json();
        }
        json!({ "metadata": { "name": w.name, "namespace": w.namespace }, "spec": spec, "status": {
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0, "observedGeneration": 0 } })
    });
    (kind, obj, pdb)
}

/// Build the cluster's settled state: nodes Ready, system and world workloads Running.
pub fn populate(kc: &mut KCluster, c: &Cluster, now: f64) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure_namespace(kc, ns, now);
    }
    for ng in c.node_groups.values() {
        if has_nodes(ng) {
            for _ in 0..ng.desired_size {
                create_node(kc, c, ng, &ng.release_version, true, now);
            }
        }
        kc.ng_applied
            .insert(ng.name.clone(), (ng.labels.clone(), ng.taints.clone()));
    }
    system_workloads(kc, c, now);
    for w in &c.workloads {
        ensure_namespace(kc, &w.namespace, now);
        let (kind, obj, pdb) = workload_objects(w);
        kc.create(kind, obj, now);
        if let Some(p) = pdb {
            kc.create(Kind::Pdb, p, now);
        }
    }
    settle(kc, now);
    kc.record_events = true;
}

/// Reconcile and start every scheduled pod at once (no start delay).
pub(super) fn settle(kc: &mut KCluster, now: f64) {
    for _ in 0..3 {
        kc.dirty = true;
        ctrl::reconcile(kc, now);
        let starting: Vec<(String, String)> = kc
            .objs(Kind::Pod)
            .iter()
            .filter(|(_, p)| {
                p["spec"]["nodeName"].is_string() && p["status"]["startTime"].is_null()
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (ns, name) in starting {
            ctrl::kubelet_start(kc, &ns, &name, now);
        }
    }
    // The pods are started: drop their start timers (and anything else populating scheduled),
    // keeping the kubelet's back-off retries of pods that cannot run.
    kc.timers.retain(|t| t.ev == TEv::Backoff);
    kc.dirty = true;
    ctrl::reconcile(kc, now);
}

// ---------------------------------------------------------------------------------------------
// Tick: timers, node-group sync, rolling updates, controllers
// ---------------------------------------------------------------------------------------------

pub fn tick(kc: &mut KCluster, c: &mut Cluster, faults: &FaultSpec, now: f64) -> bool {
    if let Some(e) = &c.endpoint {
        kc.endpoint.clone_from(e);
    }
    run_timers(kc, faults, now);
    sync_nodegroups(kc, c, now);
    let changed = run_procs(kc, c, faults, now);
    run_controllers(kc, now);
    changed
}

/// Fire every due timer (pod start/gone, node Ready).
pub(super) fn run_timers(kc: &mut KCluster, faults: &FaultSpec, now: f64) {
    while kc.timers.peek().is_some_and(|t| t.at <= now) {
        let t = kc.timers.pop().expect("peeked");
        match t.ev {
            TEv::PodStart => ctrl::pod_start(kc, &t.a, &t.b, &t.uid, now),
            TEv::PodGone => ctrl::pod_gone(kc, &t.a, &t.b, &t.uid),
            TEv::NodeReady => node_ready_timer(kc, &t.a, &t.b, &t.uid, faults, now),
            TEv::Backoff => ctrl::kubelet_backoff(kc, &t.a, &t.b, &t.uid, now),
        }
    }
}

/// Controllers run at most every 10 ms, or less often when a pass is expensive (thousands
/// of pods), so request handling keeps most of the lock.
pub(super) fn run_controllers(kc: &mut KCluster, now: f64) {
    if kc.dirty && now - kc.last_reconcile >= kc.reconcile_cost.mul_add(2.0, 0.01) {
        let t = std::time::Instant::now();
        ctrl::reconcile(kc, now);
        kc.reconcile_cost = t.elapsed().as_secs_f64();
        kc.last_reconcile = now;
    }
}

fn sync_nodegroups(kc: &mut KCluster, c: &Cluster, now: f64) {
    let mut by_ng: HashMap<String, Vec<String>> = HashMap::new();
    for n in kc.objs(Kind::Node).values() {
        by_ng
            .entry(node_ng(n).to_string())
            .or_default()
            .push(util::name(n).to_string());
    }
    // Nodes of deleted node groups go away with whatever runs on them.
    for (ng, names) in &by_ng {
        if !ng.is_empty() && !c.node_groups.contains_key(ng) {
            for n in names {
                ctrl::remove_node(kc, n, now);
            }
            kc.ng_applied.remove(ng);
        }
    }
    for ng in c.node_groups.values() {
        if kc.procs.values().any(|p| p.ng == ng.name) || kc.hold.contains(&ng.name) {
            continue;
        }
        let names = by_ng.get(&ng.name).cloned().unwrap_or_default();
        let want = match ng.lifecycle {
            Lifecycle::Active | Lifecycle::DeleteFailed => ng.desired_size as usize,
            Lifecycle::Deleting { .. } => names.len(),
            Lifecycle::Creating { .. } | Lifecycle::CreateFailed => 0,
        };
        if names.len() < want {
            for _ in names.len()..want {
                create_node(kc, c, ng, &ng.release_version, false, now);
            }
        } else if names.len() > want {
            // Scale-in: not-ready, then cordoned, then emptiest nodes first.
            let mut pods_on: HashMap<String, usize> = HashMap::new();
            for p in kc.objs(Kind::Pod).values() {
                if let Some(n) = p["spec"]["nodeName"].as_str() {
                    *pods_on.entry(n.to_string()).or_default() += 1;
                }
            }
            let mut cands: Vec<(bool, bool, usize, String)> = names
                .iter()
                .filter_map(|n| kc.get(Kind::Node, "", n))
                .map(|n| {
                    (
                        util::node_ready(n),
                        n["spec"]["unschedulable"].as_bool() != Some(true),
                        pods_on.get(util::name(n)).copied().unwrap_or(0),
                        util::name(n).to_string(),
                    )
                })
                .collect();
            cands.sort();
            for (_, _, _, n) in cands.into_iter().take(names.len() - want) {
                ctrl::remove_node(kc, &n, now);
            }
        }
        // Labels and taints changed by UpdateNodegroupConfig reach the nodes.
        let applied = kc.ng_applied.get(&ng.name).cloned();
        if applied.as_ref() != Some(&(ng.labels.clone(), ng.taints.clone())) {
            let (old_labels, old_taints) = applied.unwrap_or_default();
            let new_taints = ng_taints(ng);
            let old_taint_keys: Vec<(String, String)> = old_taints
                .iter()
                .map(|t| (t.key.clone(), taint_effect(&t.effect).to_string()))
                .collect();
            for n in by_ng.get(&ng.name).cloned().unwrap_or_default() {
                kc.update(Kind::Node, "", &n, |node| {
                    for k in old_labels.keys() {
                        if !ng.labels.contains_key(k) {
                            if let Some(m) = node["metadata"]["labels"].as_object_mut() {
                                m.remove(k);
                            }
                        }
                    }
                    for (k, v) in &ng.labels {
                        node["metadata"]["labels"][k] = json!(v);
                    }
                    let mut taints: Vec<Value> = node["spec"]["taints"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    taints.retain(|t| {
                        !old_taint_keys
                            .iter()
                            .any(|(k, e)| t["key"] == k.as_str() && t["effect"] == e.as_str())
                    });
                    taints.extend(new_taints.iter().cloned());
                    node["spec"]["taints"] = json!(taints);
                });
            }
            kc.ng_applied
                .insert(ng.name.clone(), (ng.labels.clone(), ng.taints.clone()));
            kc.dirty = true;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Managed node-group rolling update
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Launching new nodes; waiting for them to be Ready.
    Launch,
    /// Evicting the pods of `batch`.
    Drain,
    /// The 60 s wait between a drained batch and its termination.
    Wait,
}

/// One in-flight node-group version update on the Kubernetes side.
#[derive(Debug, Clone)]
pub struct Proc {
    pub ng: String,
    release: String,
    force: bool,
    phase: Phase,
    phase_started: f64,
    next_evict: f64,
    cordoned_old: bool,
    batch: Vec<String>,
}

enum Outcome {
    Running,
    Done,
    Failed(String, String, Vec<String>),
}

fn run_procs(kc: &mut KCluster, c: &mut Cluster, faults: &FaultSpec, now: f64) -> bool {
    // Start a process for every node-driven update that has none (new, or after a restart).
    let mut world_changed = false;
    for u in &c.updates {
        if u.status == UpdateStatus::InProgress
            && !u.deadline.is_finite()
            && !kc.procs.contains_key(&u.id)
        {
            let Some(ng) = u.nodegroup.clone() else {
                continue;
            };
            kc.hold.remove(&ng);
            let release = u.param("ReleaseVersion").unwrap_or("").to_string();
            kc.procs.insert(
                u.id.clone(),
                Proc {
                    ng,
                    release,
                    force: u.force,
                    phase: Phase::Launch,
                    phase_started: now,
                    next_evict: now,
                    cordoned_old: false,
                    batch: vec![],
                },
            );
        }
    }
    let ids: Vec<String> = kc.procs.keys().cloned().collect();
    for id in ids {
        let mut p = kc.procs.remove(&id).expect("proc");
        let Some(i) = c
            .updates
            .iter()
            .position(|u| u.id == id && u.status == UpdateStatus::InProgress)
        else {
            continue;
        };
        if !c.node_groups.contains_key(&p.ng) {
            continue;
        }
        if faults
            .hang
            .iter()
            .any(|t| t.matches(&c.name, Some(&p.ng), None))
        {
            kc.procs.insert(id, p);
            continue;
        }
        let outcome = step(kc, c, &mut p, now);
        match outcome {
            Outcome::Running => {
                kc.procs.insert(id, p);
            }
            Outcome::Done => {
                world::complete_update(c, i, now);
                world_changed = true;
                kc.dirty = true;
            }
            Outcome::Failed(code, msg, ids) => {
                c.updates[i].fail = Some((code, msg));
                world::complete_update(c, i, now);
                if let Some(e) = c.updates[i].errors.first_mut() {
                    if !ids.is_empty() {
                        e.resource_ids = ids;
                    }
                }
                kc.hold.insert(p.ng.clone());
                world_changed = true;
            }
        }
    }
    world_changed
}

fn step(kc: &mut KCluster, c: &Cluster, p: &mut Proc, now: f64) -> Outcome {
    let ng = c.node_groups[&p.ng].clone();
    let nodes: Vec<Value> = kc
        .objs(Kind::Node)
        .values()
        .filter(|n| node_ng(n) == ng.name)
        .cloned()
        .collect();
    let is_new = |n: &Value| node_release(n) == p.release;
    let new_nodes: Vec<&Value> = nodes.iter().filter(|n| is_new(n)).collect();
    let old_nodes: Vec<String> = nodes
        .iter()
        .filter(|n| !is_new(n))
        .map(|n| util::name(n).to_string())
        .collect();
    let desired = ng.desired_size as usize;
    let batch_size = ng.batch_size() as usize;
    loop {
        match p.phase {
            Phase::Launch => {
                let azs = ng.subnets.len().clamp(1, 6);
                // Surge: max(2 × AZs, maxUnavailable), capped at the group's size; later
                // launches replace terminated nodes until the group is back to desired.
                let surge = (2 * azs).max(batch_size).min(desired);
                let target = (desired + surge)
                    .saturating_sub(old_nodes.len())
                    .min(desired);
                if new_nodes.len() < target {
                    for _ in new_nodes.len()..target {
                        create_node(kc, c, &ng, &p.release, false, now);
                    }
                    p.phase_started = now;
                    return Outcome::Running;
                }
                let late: Vec<String> = new_nodes
                    .iter()
                    .filter(|n| !util::node_ready(n))
                    .map(|n| util::name(n).to_string())
                    .collect();
                if !late.is_empty() {
                    if now - p.phase_started >= kc.wall(JOIN_TIMEOUT_SECS) {
                        let ids = late
                            .iter()
                            .filter_map(|n| kc.get(Kind::Node, "", n))
                            .map(|n| {
                                n["spec"]["providerID"]
                                    .as_str()
                                    .unwrap_or("")
                                    .rsplit('/')
                                    .next()
                                    .unwrap_or("")
                                    .to_string()
                            })
                            .collect();
                        return Outcome::Failed(
                            "NodeCreationFailure".into(),
                            "Instances failed to join the kubernetes cluster".into(),
                            ids,
                        );
                    }
                    return Outcome::Running;
                }
                if !p.cordoned_old {
                    // Scale-up phase done: old nodes become unschedulable and excluded from LBs.
                    for n in &old_nodes {
                        cordon(kc, n, now);
                    }
                    p.cordoned_old = true;
                }
                if old_nodes.is_empty() {
                    return Outcome::Done;
                }
                p.batch = old_nodes.iter().take(batch_size).cloned().collect();
                p.phase = Phase::Drain;
                p.phase_started = now;
                p.next_evict = now;
            }
            Phase::Drain => {
                let mut remaining = 0;
                let mut to_evict = Vec::new();
                for pod in kc.objs(Kind::Pod).values() {
                    let Some(n) = pod["spec"]["nodeName"].as_str() else {
                        continue;
                    };
                    if !p.batch.iter().any(|b| b == n) {
                        continue;
                    }
                    if util::controller_of(pod).is_some_and(|(k, _, _)| k == "DaemonSet")
                        || !pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null()
                    {
                        continue;
                    }
                    remaining += 1;
                    if pod["metadata"]["deletionTimestamp"].is_null() {
                        to_evict.push((
                            util::namespace(pod).to_string(),
                            util::name(pod).to_string(),
                        ));
                    }
                }
                if remaining == 0 {
                    p.phase = Phase::Wait;
                    p.phase_started = now;
                    continue;
                }
                if now - p.phase_started >= kc.wall(DRAIN_TIMEOUT_SECS) {
                    if p.force {
                        p.phase = Phase::Wait;
                        p.phase_started = now - kc.wall(TERMINATE_WAIT_SECS);
                        continue;
                    }
                    return Outcome::Failed(
                        "PodEvictionFailure".into(),
                        format!("Reached max retries while trying to evict pods from nodes in node group {}", ng.name),
                        p.batch.iter().filter_map(|n| kc.get(Kind::Node, "", n)).map(|n| {
                            n["spec"]["providerID"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("").to_string()
                        }).collect(),
                    );
                }
                if now >= p.next_evict {
                    for (ns, name) in to_evict {
                        let _ = ctrl::evict(kc, &ns, &name, None, now);
                    }
                    p.next_evict = now + kc.wall(EVICT_RETRY_SECS);
                }
                return Outcome::Running;
            }
            Phase::Wait => {
                if now - p.phase_started < kc.wall(TERMINATE_WAIT_SECS) {
                    return Outcome::Running;
                }
                for n in std::mem::take(&mut p.batch) {
                    ctrl::remove_node(kc, &n, now);
                }
                p.phase = Phase::Launch;
                p.phase_started = now;
                return Outcome::Running;
            }
        }
    }
}

pub(super) fn cordon(kc: &mut KCluster, name: &str, now: f64) {
    let node = kc.update(Kind::Node, "", name, |n| {
        n["spec"]["unschedulable"] = json!(true);
        n["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] =
            json!("true");
    });
    if let Some(node) = node {
        kc.event(
            &node,
            "Normal",
            "NodeNotSchedulable",
            &format!("Node {name} status is now: NodeNotSchedulable"),
            "kubelet",
            now,
        );
    }
}

/// Pods that must leave `batch` (not DaemonSet or mirror pods): (total, not yet terminating).
pub(crate) fn pods_on(kc: &KCluster, batch: &[String]) -> (usize, Vec<(String, String)>) {
    let mut remaining = 0;
    let mut to_evict = Vec::new();
    for pod in kc.objs(Kind::Pod).values() {
        let Some(n) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        if !batch.iter().any(|b| b == n) {
            continue;
        }
        if util::controller_of(pod).is_some_and(|(k, _, _)| k == "DaemonSet")
            || !pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null()
        {
            continue;
        }
        remaining += 1;
        if pod["metadata"]["deletionTimestamp"].is_null() {
            to_evict.push((
                util::namespace(pod).to_string(),
                util::name(pod).to_string(),
            ));
        }
    }
    (remaining, to_evict)
}

/// Make a node schedulable again (the reverse of [`cordon`]).
pub(crate) fn uncordon(kc: &mut KCluster, name: &str, now: f64) {
    let node = kc.update(Kind::Node, "", name, |n| {
        if let Some(m) = n["spec"].as_object_mut() {
            m.remove("unschedulable");
        }
        if let Some(m) = n["metadata"]["labels"].as_object_mut() {
            m.remove("node.kubernetes.io/exclude-from-external-load-balancers");
        }
    });
    if let Some(node) = node {
        kc.event(
            &node,
            "Normal",
            "NodeSchedulable",
            &format!("Node {name} status is now: NodeSchedulable"),
            "kubelet",
            now,
        );
    }
    kc.dirty = true;
}

/// A world workload's `node_group = NAME` selects EKS's node-group label; on another
/// cloud the same selector names that cloud's pool label instead.
pub(crate) fn select_pool_label(label: &str, v: &mut Value) {
    fn fix(label: &str, spec: &mut Value) {
        if let Some(m) = spec["nodeSelector"].as_object_mut() {
            if let Some(pool) = m.remove("eks.amazonaws.com/nodegroup") {
                m.insert(label.into(), pool);
            }
        }
    }
    if v["spec"]["template"].is_object() {
        fix(label, &mut v["spec"]["template"]["spec"]);
    } else {
        fix(label, &mut v["spec"]);
    }
}
