//! The Kubernetes side of AKS clusters: nodes from agent pools (AKS VMSS names, labels and
//! kubelet versions), the surge agent-pool upgrade (surge maxSurge nodes, cordon and drain
//! through PDBs, soak, delete; stop on drainTimeoutInMinutes), agent-pool creation and
//! deletion, driven by the ARM operations of `crate::aks`.

use serde_json::{json, Value};

use super::ctrl;
use super::nodes::{
    self, cordon, ensure_namespace, node_release, pods_on, uncordon, workload_objects,
};
use super::select::LabelSelector;
use super::util::{self, k8s_time};
use super::{KCluster, Kind};
use crate::aks::{self, AgentPool, AksCluster, OpKind};
use crate::faults::FaultSpec;

/// Simulated seconds from VM creation to a Ready node.
pub const NODE_BOOT_SECS: f64 = 90.0;
/// New nodes that never become Ready fail the operation after this long.
pub const JOIN_TIMEOUT_SECS: f64 = 20.0 * 60.0;
/// Simulated seconds to delete (reimage) a drained VM.
pub const DELETE_SECS: f64 = 30.0;
/// Eviction retry interval after a 429.
pub const EVICT_RETRY_SECS: f64 = 5.0;

pub const POOL_LABEL: &str = "kubernetes.azure.com/agentpool";
pub const QUARANTINE_LABEL: &str = "kubernetes.azure.com/upgrade-status";

fn node_pool(n: &Value) -> &str {
    n["metadata"]["labels"][POOL_LABEL].as_str().unwrap_or("")
}

/// (vCPUs, memory GiB) of an Azure VM size like `Standard_D4s_v5`.
fn vm(size: &str) -> (i64, f64) {
    let s = size.trim_start_matches("Standard_");
    let family: String = s.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let digits: String = s[family.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let cpus: i64 = digits.parse().unwrap_or(2).max(1);
    let per = match family.trim_end_matches('S').chars().next() {
        Some('E') => 8.0,
        Some('F') => 2.0,
        Some('A') => 2.0,
        Some('D') if s.ends_with("_v2") => 3.5,
        _ => 4.0,
    };
    (cpus, cpus as f64 * per)
}

fn taint_json(t: &str) -> Option<Value> {
    let (kv, effect) = t.rsplit_once(':')?;
    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
    let mut x = json!({ "key": k, "effect": effect });
    if !v.is_empty() {
        x["value"] = json!(v);
    }
    Some(x)
}

fn zone_label(a: &AksCluster, p: &AgentPool, i: usize) -> String {
    if p.zones.is_empty() {
        "0".into()
    } else {
        format!("{}-{}", a.location, p.zones[i % p.zones.len()])
    }
}

fn create_node(
    kc: &mut KCluster,
    a: &AksCluster,
    p: &AgentPool,
    version: &str,
    ready: bool,
    now: f64,
) -> String {
    // Spread over the pool's zones (fewest nodes first).
    let zones: Vec<String> = (0..p.zones.len().max(1))
        .map(|i| zone_label(a, p, i))
        .collect();
    let mut per_zone = vec![0usize; zones.len()];
    for n in kc
        .objs(Kind::Node)
        .values()
        .filter(|n| node_pool(n) == p.name)
    {
        if let Some(z) = n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str() {
            if let Some(i) = zones.iter().position(|x| x == z) {
                per_zone[i] += 1;
            }
        }
    }
    let zi = (0..zones.len())
        .min_by_key(|i| (per_zone[*i], *i))
        .unwrap_or(0);
    let zone = zones[zi].clone();
    let vmss = format!(
        "aks-{}-{:08}-vmss",
        p.name,
        util::fnv(&format!("{}/{}", a.name, p.name)) % 100_000_000
    );
    let (name, idx) = loop {
        let seq = kc.aks_seq.entry(p.name.clone()).or_insert(0);
        let idx = *seq;
        *seq += 1;
        let mut n = idx;
        let mut b36 = String::new();
        for _ in 0..6 {
            b36.insert(0, std::char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
            n /= 36;
        }
        let name = format!("{vmss}{b36}");
        if kc.get(Kind::Node, "", &name).is_none() {
            break (name, idx);
        }
    };
    let ip = kc.next_ip().replacen("10.0.", "10.224.", 1);
    let (cpus, mem_gib) = vm(&p.vm_size);
    let mem_ki = (mem_gib * 1024.0 * 1024.0 * 0.96) as i64;
    let alloc_mem_ki = (mem_ki as f64 * 0.8) as i64 - 750 * 1024;
    let alloc_cpu = cpus * 1000
        - if cpus <= 2 {
            100
        } else {
            140 + 20 * (cpus - 4).max(0)
        };
    let mode = p.mode.to_ascii_lowercase();
    let mut labels = json!({
        "agentpool": p.name,
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": p.vm_size,
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": a.location,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "kubernetes.azure.com/agentpool": p.name,
        "kubernetes.azure.com/cluster": a.node_resource_group(),
        "kubernetes.azure.com/mode": mode,
        "kubernetes.azure.com/node-image-version": aks::NODE_IMAGE,
        "kubernetes.azure.com/nodepool-type": "VirtualMachineScaleSets",
        "kubernetes.azure.com/os-sku": p.os_sku,
        "kubernetes.azure.com/role": "agent",
        "kubernetes.azure.com/storageprofile": "managed",
        "kubernetes.azure.com/storagetier": "Premium_LRS",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/role": "agent",
        "node-role.kubernetes.io/agent": "",
        "node.kubernetes.io/instance-type": p.vm_size,
        "storageprofile": "managed",
        "storagetier": "Premium_LRS",
        "topology.disk.csi.azure.com/zone": if p.zones.is_empty() { String::new() } else { zone.clone() },
        "topology.kubernetes.io/region": a.location,
        "topology.kubernetes.io/zone": zone,
    });
    for (k, v) in &p.labels {
        labels[k] = json!(v);
    }
    let taints: Vec<Value> = p.taints.iter().filter_map(|t| taint_json(t)).collect();
    let t = k8s_time(now);
    let ready_cond = if ready {
        json!({ "type": "Ready", "status": "True", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletReady", "message": "kubelet is posting ready status" })
    } else {
        json!({ "type": "Ready", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletNotReady",
            "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized" })
    };
    let kv = format!("v{version}");
    let mut spec = json!({
        "providerID": format!(
            "azure:///subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{idx}",
            a.subscription,
            a.node_resource_group().to_ascii_lowercase()
        ),
        "podCIDR": format!("10.244.{}.0/24", util::fnv(&name) % 250),
    });
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    let node = json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "csi.volume.kubernetes.io/nodeid": format!("{{\"disk.csi.azure.com\":\"{name}\",\"file.csi.azure.com\":\"{name}\"}}"),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "kup-sim/release-version": version,
            }
        },
        "spec": spec,
        "status": {
            "capacity": {
                "cpu": cpus.to_string(), "memory": format!("{mem_ki}Ki"), "pods": p.max_pods.to_string(),
                "ephemeral-storage": "129886128Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0"
            },
            "allocatable": {
                "cpu": format!("{alloc_cpu}m"), "memory": format!("{alloc_mem_ki}Ki"), "pods": p.max_pods.to_string(),
                "ephemeral-storage": "119703055367", "hugepages-1Gi": "0", "hugepages-2Mi": "0"
            },
            "conditions": crate::kube::nodes::node_conditions(&t, ready_cond),
            "addresses": [
                { "type": "InternalIP", "address": ip },
                { "type": "Hostname", "address": name }
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": {
                "machineID": format!("{:032x}", util::fnv(&name) as u128),
                "systemUUID": uuid::Uuid::new_v4().to_string(),
                "bootID": uuid::Uuid::new_v4().to_string(),
                "kernelVersion": "5.15.0-1089-azure",
                "osImage": "Ubuntu 22.04.5 LTS",
                "containerRuntimeVersion": "containerd://1.7.27-1",
                "kubeletVersion": kv,
                "kubeProxyVersion": kv,
                "operatingSystem": "linux",
                "architecture": "amd64"
            },
            "images": []
        }
    });
    nodes::register_node(kc, node, &p.name, ready, NODE_BOOT_SECS, now);
    name
}

fn system_workloads(kc: &mut KCluster, a: &AksCluster, now: f64) {
    let tol_all = json!([{ "operator": "Exists" }]);
    let kp = format!("mcr.microsoft.com/oss/kubernetes/kube-proxy:v{}", a.version);
    for (name, image, cpu, labels) in [
        (
            "kube-proxy",
            kp,
            "100m",
            json!({ "component": "kube-proxy", "tier": "node" }),
        ),
        (
            "cloud-node-manager",
            "mcr.microsoft.com/oss/kubernetes/azure-cloud-node-manager:v1.30.7".to_string(),
            "50m",
            json!({ "k8s-app": "cloud-node-manager" }),
        ),
    ] {
        let ds = json!({
            "metadata": { "name": name, "namespace": "kube-system", "labels": labels.clone(),
                "annotations": { "deprecated.daemonset.template.generation": "1" } },
            "spec": {
                "selector": { "matchLabels": labels.clone() },
                "template": { "metadata": { "labels": labels },
                    "spec": { "containers": [nodes::container(name, &image, cpu, None)], "priorityClassName": "system-node-critical",
                        "hostNetwork": true, "tolerations": tol_all.clone(), "serviceAccountName": name } },
                "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": 0 } },
                "revisionHistoryLimit": 10
            },
            "status": {}
        });
        kc.create(Kind::DaemonSet, ds, now);
    }
    for (name, labels, image, pdb_name) in [
        (
            "coredns",
            json!({ "k8s-app": "kube-dns", "version": "v20" }),
            "mcr.microsoft.com/oss/kubernetes/coredns:v1.11.3-2",
            "coredns-pdb",
        ),
        (
            "metrics-server",
            json!({ "k8s-app": "metrics-server" }),
            "mcr.microsoft.com/oss/kubernetes/metrics-server:v0.7.2",
            "metrics-server-pdb",
        ),
    ] {
        let dep = json!({
            "metadata": { "name": name, "namespace": "kube-system", "labels": labels.clone(),
                "annotations": { "deployment.kubernetes.io/revision": "1" } },
            "spec": {
                "replicas": 2, "selector": { "matchLabels": labels.clone() },
                "template": { "metadata": { "labels": labels.clone() },
                    "spec": { "containers": [nodes::container(name, image, "100m", Some("70Mi"))],
                        "priorityClassName": "system-cluster-critical", "serviceAccountName": name,
                        "tolerations": [ { "key": "CriticalAddonsOnly", "operator": "Exists" } ] } },
                "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1, "maxSurge": "10%" } },
                "revisionHistoryLimit": 2, "progressDeadlineSeconds": 600
            },
            "status": {}
        });
        kc.create(Kind::Deployment, dep, now);
        let pdb = json!({
            "metadata": { "name": pdb_name, "namespace": "kube-system" },
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": labels } },
            "status": { "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0, "observedGeneration": 0 }
        });
        kc.create(Kind::Pdb, pdb, now);
    }
}

/// Build the AKS cluster's settled state: nodes Ready, system and world workloads Running.
pub fn populate(kc: &mut KCluster, a: &AksCluster, now: f64) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure_namespace(kc, ns, now);
    }
    for p in a.pools.values() {
        if !a.pool_provisioned(&p.name) {
            continue;
        }
        // A pool still being created gets its nodes when its operation runs.
        if a.ops.iter().any(|o| {
            o.active() && o.kind == OpKind::CreatePool && o.pool.as_deref() == Some(&p.name)
        }) {
            continue;
        }
        for _ in 0..p.count {
            create_node(kc, a, p, &p.version, true, now);
        }
    }
    system_workloads(kc, a, now);
    for w in &a.workloads {
        ensure_namespace(kc, &w.namespace, now);
        let (kind, mut obj, pdb) = workload_objects(w);
        nodes::select_pool_label(POOL_LABEL, &mut obj);
        kc.create(kind, obj, now);
        if let Some(p) = pdb {
            kc.create(Kind::Pdb, p, now);
        }
    }
    nodes::settle(kc, now);
    kc.record_events = true;
}

// ---------------------------------------------------------------------------------------------
// Tick: operations driven by the Kubernetes side
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Launch,
    Drain,
    Soak,
    Delete,
    /// DeleteAgentPool: cordon and drain (unless ignore-pod-disruption-budget).
    PoolDrain,
    PoolDelete,
}

/// One in-flight agent-pool upgrade or deletion.
#[derive(Debug, Clone)]
pub struct AProc {
    pool: String,
    version: String,
    phase: Phase,
    phase_started: f64,
    next_evict: f64,
    batch: Vec<String>,
    cordoned: bool,
}

enum Outcome {
    Running,
    Done,
    Failed(String, String),
}

pub fn tick(kc: &mut KCluster, a: &mut AksCluster, faults: &FaultSpec, now: f64) -> bool {
    if let Some(e) = &a.endpoint {
        kc.endpoint.clone_from(e);
    }
    nodes::run_timers(kc, faults, now);
    let mut changed = run_procs(kc, a, faults, now);
    sync_sizes(kc, a, now);
    changed |= run_creates(kc, a, faults, now);
    nodes::run_controllers(kc, now);
    changed
}

fn hung(faults: &FaultSpec, cluster: &str, pool: &str) -> bool {
    faults
        .hang
        .iter()
        .any(|t| t.matches(cluster, Some(pool), None))
}

fn pool_nodes(kc: &KCluster, pool: &str) -> Vec<String> {
    kc.objs(Kind::Node)
        .values()
        .filter(|n| node_pool(n) == pool)
        .map(|n| util::name(n).to_string())
        .collect()
}

/// CreateAgentPool: `sync_sizes` boots the pool's nodes; the operation succeeds when all are
/// Ready.
fn run_creates(kc: &mut KCluster, a: &mut AksCluster, faults: &FaultSpec, now: f64) -> bool {
    let mut changed = false;
    for i in 0..a.ops.len() {
        let o = &a.ops[i];
        if o.kind != OpKind::CreatePool || !o.active() || o.deadline.is_finite() {
            continue;
        }
        let Some(pool) = o.pool.clone() else {
            continue;
        };
        if hung(faults, &a.name, &pool) {
            continue;
        }
        let Some(want) = a.pools.get(&pool).map(|p| p.count as usize) else {
            continue;
        };
        kc.hold.remove(&pool);
        let (total, ready) = kc
            .objs(Kind::Node)
            .values()
            .filter(|n| node_pool(n) == pool)
            .fold((0, 0), |(t, r), n| {
                (t + 1, r + util::node_ready(n) as usize)
            });
        a.ops[i].nodes_done = ready as u32;
        if total == want && ready == want {
            aks::finish_op(a, i, now);
            changed = true;
        } else if now - a.ops[i].start >= kc.wall(JOIN_TIMEOUT_SECS) {
            for n in pool_nodes(kc, &pool) {
                ctrl::remove_node(kc, &n, now);
            }
            aks::fail_op(
                a,
                i,
                "VMExtensionProvisioningError",
                format!("Agent pool '{pool}': VM has reported a failure when processing extension 'vmssCSE'. Nodes did not register with the cluster (kup-sim: not Ready after 20 minutes)."),
                now,
            );
            changed = true;
        }
    }
    changed
}

/// Pools with no operation replacing their nodes follow `count`: new nodes boot, surplus nodes
/// (emptiest first) are deleted without draining.
fn sync_sizes(kc: &mut KCluster, a: &AksCluster, now: f64) {
    let orphans: Vec<String> = kc
        .objs(Kind::Node)
        .values()
        .filter(|n| !a.pools.contains_key(node_pool(n)))
        .map(|n| util::name(n).to_string())
        .collect();
    for n in orphans {
        ctrl::remove_node(kc, &n, now);
    }
    for p in a.pools.values() {
        if kc.aks_procs.values().any(|x| x.pool == p.name)
            || kc.hold.contains(&p.name)
            || !a.pool_provisioned(&p.name)
        {
            continue;
        }
        if a.active_op().is_some_and(|o| {
            matches!(o.kind, OpKind::UpgradePool | OpKind::DeletePool)
                && o.pool.as_deref() == Some(&p.name)
        }) {
            continue;
        }
        let names = pool_nodes(kc, &p.name);
        let want = p.count as usize;
        if names.len() < want {
            for _ in names.len()..want {
                create_node(kc, a, p, &p.version, false, now);
            }
        } else if names.len() > want {
            let mut by_pods: Vec<(usize, String)> = names
                .iter()
                .map(|n| {
                    let c = kc
                        .objs(Kind::Pod)
                        .values()
                        .filter(|x| x["spec"]["nodeName"] == n.as_str())
                        .count();
                    (c, n.clone())
                })
                .collect();
            by_pods.sort();
            for (_, n) in by_pods.into_iter().take(names.len() - want) {
                ctrl::remove_node(kc, &n, now);
            }
        }
    }
}

fn run_procs(kc: &mut KCluster, a: &mut AksCluster, faults: &FaultSpec, now: f64) -> bool {
    for o in &a.ops {
        if matches!(o.kind, OpKind::UpgradePool | OpKind::DeletePool)
            && o.active()
            && !o.deadline.is_finite()
            && !kc.aks_procs.contains_key(&o.id)
        {
            let Some(pool) = o.pool.clone() else {
                continue;
            };
            kc.hold.remove(&pool);
            kc.aks_procs.insert(
                o.id.clone(),
                AProc {
                    pool,
                    version: o.target_version.clone(),
                    phase: if o.kind == OpKind::DeletePool {
                        Phase::PoolDrain
                    } else {
                        Phase::Launch
                    },
                    phase_started: now,
                    next_evict: now,
                    batch: vec![],
                    cordoned: false,
                },
            );
        }
    }
    let mut changed = false;
    let ids: Vec<String> = kc.aks_procs.keys().cloned().collect();
    for id in ids {
        let mut p = kc.aks_procs.remove(&id).expect("proc");
        let Some(i) = a.ops.iter().position(|o| o.id == id && o.active()) else {
            continue;
        };
        if !a.pools.contains_key(&p.pool) {
            continue;
        }
        if hung(faults, &a.name, &p.pool) {
            kc.aks_procs.insert(id, p);
            continue;
        }
        let deleting = a.ops[i].kind == OpKind::DeletePool;
        let ignore_pdb = a.ops[i].ignore_pdb;
        let outcome = if deleting {
            step_delete(kc, a, &mut p, ignore_pdb, now)
        } else {
            step(kc, a, &mut p, now)
        };
        if !deleting {
            let done = kc
                .objs(Kind::Node)
                .values()
                .filter(|n| {
                    node_pool(n) == p.pool && node_release(n) == p.version && util::node_ready(n)
                })
                .count() as u32;
            a.ops[i].nodes_done = done.min(a.ops[i].nodes_total);
        }
        match outcome {
            Outcome::Running => {
                kc.aks_procs.insert(id, p);
            }
            Outcome::Done => {
                aks::finish_op(a, i, now);
                if !a.pools.contains_key(&p.pool) {
                    kc.hold.remove(&p.pool);
                }
                changed = true;
                kc.dirty = true;
            }
            Outcome::Failed(code, msg) => {
                aks::fail_op(a, i, &code, msg, now);
                kc.hold.insert(p.pool.clone());
                changed = true;
                kc.dirty = true;
            }
        }
    }
    changed
}

/// One drain pass over `p.batch`: true when the batch is empty.
fn drain(kc: &mut KCluster, p: &mut AProc, respect_pdb: bool, now: f64) -> bool {
    let (remaining, to_evict) = pods_on(kc, &p.batch);
    if remaining == 0 {
        return true;
    }
    if now >= p.next_evict {
        for (ns, name) in to_evict {
            if respect_pdb {
                let _ = ctrl::evict(kc, &ns, &name, None, now);
            } else {
                ctrl::delete_pod(kc, &ns, &name, None, now, false);
            }
        }
        p.next_evict = now + kc.wall(EVICT_RETRY_SECS);
    }
    false
}

/// AKS's drain-failure message: the node, the blocked pod and the PDB blocking it.
fn drain_failure(kc: &KCluster, batch: &[String], timeout_min: u32) -> String {
    for pod in kc.objs(Kind::Pod).values() {
        let Some(node) = pod["spec"]["nodeName"].as_str() else {
            continue;
        };
        if !batch.iter().any(|b| b == node)
            || util::controller_of(pod).is_some_and(|(k, _, _)| k == "DaemonSet")
        {
            continue;
        }
        let (ns, name) = (util::namespace(pod), util::name(pod));
        let pdb = kc.objs(Kind::Pdb).iter().find(|((pns, _), b)| {
            pns == ns && {
                let sel = LabelSelector::from_object(&b["spec"]["selector"]);
                !sel.is_empty() && sel.matches(&pod["metadata"]["labels"])
            }
        });
        if let Some((_, b)) = pdb {
            let st = &b["status"];
            return format!(
                "Drain node {node} failed when evicting pod {name} failed with Too Many Requests error. This is often caused by a restrictive Pod Disruption Budget (PDB) policy. See http://aka.ms/aks/debugdrainfailures. Original error: Cannot evict pod as it would violate the pod's disruption budget.. PDB debug info: {ns}/{name} blocked by pdb {} (desiredHealthy {}, currentHealthy {}, disruptionsAllowed {}). The drain did not complete within drainTimeoutInMinutes ({timeout_min}); the upgrade stopped and will resume on the next PUT of the agent pool.",
                util::name(b),
                st["desiredHealthy"].as_i64().unwrap_or(0),
                st["currentHealthy"].as_i64().unwrap_or(0),
                st["disruptionsAllowed"].as_i64().unwrap_or(0),
            );
        }
        return format!(
            "Drain node {node} failed: pod {ns}/{name} was not evicted within drainTimeoutInMinutes ({timeout_min}). See http://aka.ms/aks/debugdrainfailures. The upgrade stopped and will resume on the next PUT of the agent pool."
        );
    }
    format!(
        "Drain of nodes {} did not complete within drainTimeoutInMinutes ({timeout_min}).",
        batch.join(", ")
    )
}

/// After a drain timeout: apply `undrainableNodeBehavior` to the blocked nodes.
fn stop_upgrade(kc: &mut KCluster, pool: &AgentPool, p: &mut AProc, now: f64) {
    let blocked = std::mem::take(&mut p.batch);
    let behavior = pool.undrainable_node_behavior.as_deref();
    let keep_surge = match behavior {
        Some("Schedule") => {
            for b in &blocked {
                uncordon(kc, b, now);
            }
            0
        }
        Some("Cordon") => {
            for b in &blocked {
                kc.update(Kind::Node, "", b, |n| {
                    n["metadata"]["labels"][QUARANTINE_LABEL] = json!("Quarantined");
                });
            }
            blocked.len()
        }
        // Unset: the upgrade stops and everything stays as it is.
        _ => return,
    };
    // Best effort: delete surge nodes (nodes above count at the new version) that hold no
    // workload pods, keeping one per blocked node with `Cordon`.
    let all = pool_nodes(kc, &pool.name);
    let surplus = all.len().saturating_sub(pool.count as usize + keep_surge);
    let empty_new: Vec<String> = all
        .into_iter()
        .filter(|n| {
            kc.get(Kind::Node, "", n)
                .is_some_and(|x| node_release(x) == p.version)
                && pods_on(kc, std::slice::from_ref(n)).0 == 0
        })
        .take(surplus)
        .collect();
    for n in empty_new {
        ctrl::remove_node(kc, &n, now);
    }
}

fn step_delete(
    kc: &mut KCluster,
    a: &AksCluster,
    p: &mut AProc,
    ignore_pdb: bool,
    now: f64,
) -> Outcome {
    let pool = a.pools[&p.pool].clone();
    let nodes = pool_nodes(kc, &pool.name);
    if p.phase == Phase::PoolDrain {
        if !ignore_pdb {
            // Without ignore-pod-disruption-budget AKS cordons and drains the nodes through the
            // eviction API first.
            if !p.cordoned {
                for n in &nodes {
                    cordon(kc, n, now);
                }
                p.batch = nodes.clone();
                p.cordoned = true;
                p.phase_started = now;
                p.next_evict = now;
            }
            if !drain(kc, p, true, now) {
                if now - p.phase_started >= kc.wall(pool.drain_timeout_minutes as f64 * 60.0) {
                    let msg = drain_failure(kc, &p.batch, pool.drain_timeout_minutes)
                        .replace("the upgrade stopped and will resume on the next PUT of the agent pool", "the agent pool deletion stopped; retry it, or delete with ignore-pod-disruption-budget=true");
                    return Outcome::Failed("PodDrainFailure".into(), msg);
                }
                return Outcome::Running;
            }
        }
        p.phase = Phase::PoolDelete;
        p.phase_started = now;
    }
    if now - p.phase_started < kc.wall(DELETE_SECS) {
        return Outcome::Running;
    }
    for n in &nodes {
        ctrl::remove_node(kc, n, now);
    }
    Outcome::Done
}

fn step(kc: &mut KCluster, a: &AksCluster, p: &mut AProc, now: f64) -> Outcome {
    let pool = a.pools[&p.pool].clone();
    let desired = pool.count as usize;
    let surge = pool.surge() as usize;
    let unavail = pool.unavailable() as usize;
    let nodes: Vec<Value> = kc
        .objs(Kind::Node)
        .values()
        .filter(|n| node_pool(n) == pool.name)
        .cloned()
        .collect();
    let new_nodes: Vec<&Value> = nodes
        .iter()
        .filter(|n| node_release(n) == p.version)
        .collect();
    let old_nodes: Vec<String> = nodes
        .iter()
        .filter(|n| node_release(n) != p.version)
        .map(|n| util::name(n).to_string())
        .collect();
    loop {
        match p.phase {
            Phase::Launch => {
                let target = (desired + surge)
                    .saturating_sub(old_nodes.len())
                    .min(desired);
                if new_nodes.len() < target {
                    for _ in new_nodes.len()..target {
                        create_node(kc, a, &pool, &p.version, false, now);
                    }
                    p.phase_started = now;
                    return Outcome::Running;
                }
                if new_nodes.iter().any(|n| !util::node_ready(n)) {
                    if now - p.phase_started >= kc.wall(JOIN_TIMEOUT_SECS) {
                        return Outcome::Failed(
                            "VMExtensionProvisioningError".into(),
                            format!("Upgrade of agent pool '{}' failed: surge nodes did not register with the cluster (VM has reported a failure when processing extension 'vmssCSE').", pool.name),
                        );
                    }
                    return Outcome::Running;
                }
                if old_nodes.is_empty() {
                    return Outcome::Done;
                }
                let allowed = unavail + (new_nodes.len() + old_nodes.len()).saturating_sub(desired);
                let n = allowed.min(old_nodes.len());
                if n == 0 {
                    return Outcome::Running;
                }
                p.batch = old_nodes.iter().take(n).cloned().collect();
                for b in p.batch.clone() {
                    cordon(kc, &b, now);
                }
                p.phase = Phase::Drain;
                p.phase_started = now;
                p.next_evict = now;
            }
            Phase::Drain => {
                if drain(kc, p, true, now) {
                    p.phase = Phase::Soak;
                    p.phase_started = now;
                    continue;
                }
                if now - p.phase_started >= kc.wall(pool.drain_timeout_minutes as f64 * 60.0) {
                    let msg = drain_failure(kc, &p.batch, pool.drain_timeout_minutes);
                    stop_upgrade(kc, &pool, p, now);
                    return Outcome::Failed("UpgradeFailed".into(), msg);
                }
                return Outcome::Running;
            }
            Phase::Soak => {
                // nodeSoakDurationInMinutes: wait after draining, before reimaging.
                if now - p.phase_started < kc.wall(pool.node_soak_minutes as f64 * 60.0) {
                    return Outcome::Running;
                }
                p.phase = Phase::Delete;
                p.phase_started = now;
            }
            Phase::Delete => {
                if now - p.phase_started < kc.wall(DELETE_SECS) {
                    return Outcome::Running;
                }
                for n in std::mem::take(&mut p.batch) {
                    ctrl::remove_node(kc, &n, now);
                }
                p.phase = Phase::Launch;
                p.phase_started = now;
                return Outcome::Running;
            }
            Phase::PoolDrain | Phase::PoolDelete => {
                return step_delete(kc, a, p, false, now);
            }
        }
    }
}
