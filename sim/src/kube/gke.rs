//! The Kubernetes side of GKE clusters: nodes from node pools (GKE names, labels and kubelet
//! versions), the SURGE and BLUE_GREEN node-pool upgrades (surge new nodes, cordon, drain
//! through PDBs, delete old nodes) driven by the `UPGRADE_NODES` operation, and node-pool
//! creation and deletion (`CREATE_NODE_POOL`, `DELETE_NODE_POOL`).

use serde_json::{json, Value};

use super::ctrl;
use super::nodes::{
    self, cordon, ensure_namespace, node_release, pods_on, uncordon, workload_objects,
};
use super::util::{self, k8s_time};
use super::{KCluster, Kind};
use crate::faults::FaultSpec;
use crate::gke::{self, DrainConfig, GkeCluster, NodePool, OpStatus};

/// Simulated seconds from VM creation to a Ready node.
pub const NODE_BOOT_SECS: f64 = 60.0;
/// New nodes that never become Ready fail the upgrade after this long.
pub const JOIN_TIMEOUT_SECS: f64 = 20.0 * 60.0;
/// Simulated seconds to delete a drained VM.
pub const DELETE_SECS: f64 = 30.0;
/// Eviction retry interval after a 429.
pub const EVICT_RETRY_SECS: f64 = 5.0;

pub const POOL_LABEL: &str = "cloud.google.com/gke-nodepool";

fn node_pool(n: &Value) -> &str {
    n["metadata"]["labels"][POOL_LABEL].as_str().unwrap_or("")
}

fn region(location: &str) -> String {
    if gke::is_zone(location) {
        location
            .rsplit_once('-')
            .map(|(r, _)| r.to_string())
            .unwrap_or_else(|| location.to_string())
    } else {
        location.to_string()
    }
}

/// (vCPUs, memory GiB) of a Compute Engine machine type.
fn machine(t: &str) -> (i64, f64) {
    match t {
        "e2-micro" => return (2, 1.0),
        "e2-small" => return (2, 2.0),
        "e2-medium" => return (2, 4.0),
        _ => {}
    }
    let mut parts = t.split('-');
    let _family = parts.next();
    let class = parts.next().unwrap_or("standard");
    let cpus: i64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(2);
    let per = match class {
        "highmem" => 8.0,
        "highcpu" => 1.0,
        _ => 4.0,
    };
    (cpus, cpus as f64 * per)
}

fn create_node(
    kc: &mut KCluster,
    g: &GkeCluster,
    p: &NodePool,
    version: &str,
    ready: bool,
    now: f64,
) -> String {
    let zones = g.zones();
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
    let group = fnv32(&format!("{}/{}/{zone}", g.name, p.name));
    let name = loop {
        let suffix: String = (0..4)
            .map(|_| {
                let i = rand::Rng::random_range(&mut kc.rng, 0..36u32);
                std::char::from_digit(i, 36).unwrap_or('x')
            })
            .collect();
        let name = format!("gke-{}-{}-{group:08x}-{suffix}", g.name, p.name);
        if kc.get(Kind::Node, "", &name).is_none() {
            break name;
        }
    };
    let ip = kc.next_ip().replacen("10.0.", "10.128.", 1);
    let (cpus, mem_gib) = machine(&p.machine_type);
    let mem_ki = (mem_gib * 1024.0 * 1024.0 * 0.97) as i64;
    let alloc_mem_ki = (mem_ki as f64 * 0.78) as i64;
    let alloc_cpu = cpus * 1000 - 60 - 10 * (cpus - 1).max(0);
    let region = region(&g.location);
    let family = p.machine_type.split('-').next().unwrap_or("e2");
    let labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": p.machine_type,
        "beta.kubernetes.io/os": "linux",
        "cloud.google.com/gke-boot-disk": "pd-balanced",
        "cloud.google.com/gke-container-runtime": "containerd",
        "cloud.google.com/gke-cpu-scaling-level": cpus.to_string(),
        "cloud.google.com/gke-logging-variant": "DEFAULT",
        "cloud.google.com/gke-max-pods-per-node": "110",
        "cloud.google.com/gke-nodepool": p.name,
        "cloud.google.com/gke-os-distribution": "cos",
        "cloud.google.com/gke-provisioning": "standard",
        "cloud.google.com/gke-stack-type": "IPV4",
        "cloud.google.com/machine-family": family,
        "cloud.google.com/private-node": "false",
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": p.machine_type,
        "topology.gke.io/zone": zone,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
    });
    let t = k8s_time(now);
    let ready_cond = if ready {
        json!({ "type": "Ready", "status": "True", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletReady", "message": "kubelet is posting ready status. AppArmor enabled" })
    } else {
        json!({ "type": "Ready", "status": "False", "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": "KubeletNotReady",
            "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized" })
    };
    let kv = format!("v{version}");
    let instance_id = format!("{}", util::fnv(&name) % 10_000_000_000_000_000_000);
    let node = json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "container.googleapis.com/instance_id": instance_id,
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "kup-sim/release-version": version,
            }
        },
        "spec": {
            "providerID": format!("gce://{}/{zone}/{name}", g.project),
            "podCIDR": format!("10.4.{}.0/24", util::fnv(&name) % 250),
        },
        "status": {
            "capacity": {
                "cpu": cpus.to_string(), "memory": format!("{mem_ki}Ki"), "pods": "110",
                "ephemeral-storage": "98831908Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0"
            },
            "allocatable": {
                "cpu": format!("{alloc_cpu}m"), "memory": format!("{alloc_mem_ki}Ki"), "pods": "110",
                "ephemeral-storage": "47060071478", "hugepages-1Gi": "0", "hugepages-2Mi": "0"
            },
            "conditions": crate::kube::nodes::node_conditions(&t, ready_cond),
            "addresses": [
                { "type": "InternalIP", "address": ip },
                { "type": "Hostname", "address": name }
            ],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": {
                "machineID": format!("{:032x}", util::fnv(&instance_id) as u128),
                "systemUUID": uuid::Uuid::new_v4().to_string(),
                "bootID": uuid::Uuid::new_v4().to_string(),
                "kernelVersion": "6.1.100+",
                "osImage": "Container-Optimized OS from Google",
                "containerRuntimeVersion": "containerd://1.7.24",
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

fn fnv32(s: &str) -> u32 {
    util::fnv(s) as u32
}

fn system_workloads(kc: &mut KCluster, now: f64) {
    let tol_all = json!([{ "operator": "Exists" }]);
    let labels = json!({ "k8s-app": "fluentbit-gke" });
    let ds = json!({
        "metadata": { "name": "fluentbit-gke", "namespace": "kube-system", "labels": labels.clone(),
            "annotations": { "deprecated.daemonset.template.generation": "1" } },
        "spec": {
            "selector": { "matchLabels": labels.clone() },
            "template": { "metadata": { "labels": labels },
                "spec": { "containers": [nodes::container("fluentbit", "gke.gcr.io/fluent-bit:v1.8.12-gke.37", "50m", Some("100Mi"))],
                    "priorityClassName": "system-node-critical", "tolerations": tol_all, "serviceAccountName": "fluentbit-gke" } },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "10%", "maxSurge": 0 } },
            "revisionHistoryLimit": 10
        },
        "status": {}
    });
    kc.create(Kind::DaemonSet, ds, now);
    let labels = json!({ "k8s-app": "kube-dns" });
    let dep = json!({
        "metadata": { "name": "kube-dns", "namespace": "kube-system", "labels": labels.clone(),
            "annotations": { "deployment.kubernetes.io/revision": "1" } },
        "spec": {
            "replicas": 2, "selector": { "matchLabels": labels.clone() },
            "template": { "metadata": { "labels": labels.clone() },
                "spec": { "containers": [nodes::container("kubedns", "gke.gcr.io/k8s-dns-kube-dns:1.23.0-gke.9", "100m", Some("70Mi"))],
                    "priorityClassName": "system-cluster-critical", "serviceAccountName": "kube-dns",
                    "tolerations": [ { "key": "CriticalAddonsOnly", "operator": "Exists" } ] } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 0, "maxSurge": "10%" } },
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600
        },
        "status": {}
    });
    kc.create(Kind::Deployment, dep, now);
}

/// Build the GKE cluster's settled state: nodes Ready, system and world workloads Running.
pub fn populate(kc: &mut KCluster, g: &GkeCluster, now: f64) {
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "gke-managed-system",
    ] {
        ensure_namespace(kc, ns, now);
    }
    for p in g.node_pools.values() {
        if !g.pool_provisioned(&p.name) {
            continue;
        }
        for _ in 0..p.node_count {
            create_node(kc, g, p, &p.version, true, now);
        }
    }
    system_workloads(kc, now);
    for w in &g.workloads {
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
// Tick and the SURGE upgrade
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    // SURGE
    Launch,
    Drain,
    Delete,
    // BLUE_GREEN
    BgCreate,
    BgDrain,
    BgSoak,
    BgDelete,
    /// Rolling a blue-green upgrade back: drain (if respectPdb) and delete the green nodes.
    BgRollback,
    // DELETE_NODE_POOL
    /// With `respectPdbDuringNodePoolDeletion`: cordon every node, drain through PDBs.
    PoolDrain,
    /// Delete every node; pods still on them are killed.
    PoolDelete,
}

/// One in-flight node-pool upgrade on the Kubernetes side.
#[derive(Debug, Clone)]
pub struct GProc {
    pool: String,
    version: String,
    blue_green: bool,
    phase: Phase,
    phase_started: f64,
    next_evict: f64,
    batch: Vec<String>,
    /// BLUE_GREEN: blue nodes already drained.
    drained: Vec<String>,
    /// BLUE_GREEN: end of the current batch soak.
    soak_until: f64,
    /// DELETE_NODE_POOL: the nodes were cordoned and taken as the drain batch.
    cordoned: bool,
    // Copied from the operation every tick.
    complete: bool,
    rollback: bool,
    respect_pdb: bool,
}

enum Outcome {
    Running,
    Done,
    Failed(String),
    RolledBack,
}

pub fn tick(kc: &mut KCluster, g: &mut GkeCluster, faults: &FaultSpec, now: f64) -> bool {
    if let Some(e) = &g.endpoint {
        kc.endpoint.clone_from(e);
    }
    nodes::run_timers(kc, faults, now);
    let mut changed = run_procs(kc, g, faults, now);
    sync_sizes(kc, g, now);
    changed |= run_creates(kc, g, faults, now);
    nodes::run_controllers(kc, now);
    changed
}

/// CREATE_NODE_POOL: `sync_sizes` boots the new pool's nodes (like surge nodes) once the
/// operation runs; it ends when all of them are Ready.
fn run_creates(kc: &mut KCluster, g: &mut GkeCluster, faults: &FaultSpec, now: f64) -> bool {
    let mut changed = false;
    for i in 0..g.ops.len() {
        let o = &g.ops[i];
        if o.op_type != "CREATE_NODE_POOL"
            || o.status != OpStatus::Running
            || o.deadline.is_finite()
        {
            continue;
        }
        let Some(pool) = o.pool.clone() else {
            continue;
        };
        if faults
            .hang
            .iter()
            .any(|t| t.matches(&g.name, Some(&pool), None))
        {
            continue;
        }
        let Some(want) = g.node_pools.get(&pool).map(|p| p.node_count as usize) else {
            continue;
        };
        // A pool of that name deleted after a failed upgrade must not stay frozen.
        kc.hold.remove(&pool);
        let (total, ready) = kc
            .objs(Kind::Node)
            .values()
            .filter(|n| node_pool(n) == pool)
            .fold((0, 0), |(t, r), n| {
                (t + 1, r + util::node_ready(n) as usize)
            });
        g.ops[i].nodes_done = ready as u32;
        if total == want && ready == want {
            gke::finish_op(g, i, now);
            changed = true;
        } else if now - g.ops[i].running_at >= kc.wall(JOIN_TIMEOUT_SECS) {
            // A failed creation leaves an ERROR pool without nodes (also after a restart).
            let names: Vec<String> = kc
                .objs(Kind::Node)
                .values()
                .filter(|n| node_pool(n) == pool)
                .map(|n| util::name(n).to_string())
                .collect();
            for n in names {
                ctrl::remove_node(kc, &n, now);
            }
            g.ops[i].error = Some((
                "INTERNAL".into(),
                format!(
                    "Failed to create node pool {pool}: nodes did not become ready (instances failed to register with the cluster)."
                ),
            ));
            gke::finish_op(g, i, now);
            changed = true;
        }
    }
    changed
}

/// Pools with no upgrade running follow `node_count` (nodePools.setSize): new nodes boot,
/// surplus nodes (emptiest first) are deleted without draining.
fn sync_sizes(kc: &mut KCluster, g: &GkeCluster, now: f64) {
    // Nodes of a pool that no longer exists (deleted while the simulator was down).
    let orphans: Vec<String> = kc
        .objs(Kind::Node)
        .values()
        .filter(|n| !g.node_pools.contains_key(node_pool(n)))
        .map(|n| util::name(n).to_string())
        .collect();
    for n in orphans {
        ctrl::remove_node(kc, &n, now);
    }
    for p in g.node_pools.values() {
        if kc.gke_procs.values().any(|x| x.pool == p.name)
            || kc.hold.contains(&p.name)
            || !g.pool_provisioned(&p.name)
        {
            continue;
        }
        if g.active_op()
            .is_some_and(|o| o.op_type == "UPGRADE_NODES" && o.pool.as_deref() == Some(&p.name))
        {
            continue;
        }
        let names: Vec<String> = kc
            .objs(Kind::Node)
            .values()
            .filter(|n| node_pool(n) == p.name)
            .map(|n| util::name(n).to_string())
            .collect();
        let want = p.node_count as usize;
        if names.len() < want {
            for _ in names.len()..want {
                create_node(kc, g, p, &p.version, false, now);
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

fn run_procs(kc: &mut KCluster, g: &mut GkeCluster, faults: &FaultSpec, now: f64) -> bool {
    for o in &g.ops {
        let deleting = o.op_type == "DELETE_NODE_POOL";
        if (o.op_type == "UPGRADE_NODES" || deleting)
            && o.status == OpStatus::Running
            && !o.deadline.is_finite()
            && !kc.gke_procs.contains_key(&o.name)
        {
            let Some(pool) = o.pool.clone() else {
                continue;
            };
            let blue_green = !o.is_rollback
                && !deleting
                && g.node_pools
                    .get(&pool)
                    .is_some_and(|p| p.strategy == "BLUE_GREEN");
            kc.hold.remove(&pool);
            kc.gke_procs.insert(
                o.name.clone(),
                GProc {
                    pool,
                    version: o.target_version.clone(),
                    blue_green,
                    phase: if deleting {
                        Phase::PoolDrain
                    } else if blue_green {
                        Phase::BgCreate
                    } else {
                        Phase::Launch
                    },
                    phase_started: now,
                    next_evict: now,
                    batch: vec![],
                    drained: vec![],
                    soak_until: now,
                    cordoned: false,
                    complete: false,
                    rollback: false,
                    respect_pdb: false,
                },
            );
        }
    }
    let mut changed = false;
    let ids: Vec<String> = kc.gke_procs.keys().cloned().collect();
    for id in ids {
        let mut p = kc.gke_procs.remove(&id).expect("proc");
        let Some(i) = g.ops.iter().position(|o| o.name == id && o.active()) else {
            continue;
        };
        if !g.node_pools.contains_key(&p.pool) {
            continue;
        }
        p.complete = g.ops[i].complete_requested;
        p.rollback = g.ops[i].rollback_requested;
        p.respect_pdb = g.ops[i].rollback_respect_pdb;
        if faults
            .hang
            .iter()
            .any(|t| t.matches(&g.name, Some(&p.pool), None))
        {
            kc.gke_procs.insert(id, p);
            continue;
        }
        let outcome = step(kc, g, &mut p, now);
        let done = kc
            .objs(Kind::Node)
            .values()
            .filter(|n| {
                node_pool(n) == p.pool && node_release(n) == p.version && util::node_ready(n)
            })
            .count() as u32;
        g.ops[i].nodes_done = done.min(g.ops[i].nodes_total);
        if p.blue_green && !g.ops[i].rollback_requested {
            let ph = match p.phase {
                Phase::BgCreate => "CREATING_GREEN_POOL",
                Phase::BgDrain if p.drained.is_empty() && p.batch.is_empty() => {
                    "CORDONING_BLUE_POOL"
                }
                Phase::BgDrain => "DRAINING_BLUE_POOL",
                Phase::BgSoak => "NODE_POOL_SOAKING",
                Phase::BgDelete => "DELETING_BLUE_POOL",
                _ => "ROLLBACK_STARTED",
            };
            g.ops[i].bg_phase = Some(ph.to_string());
        }
        match outcome {
            Outcome::Running => {
                kc.gke_procs.insert(id, p);
            }
            Outcome::Done => {
                gke::finish_op(g, i, now);
                if !g.node_pools.contains_key(&p.pool) {
                    // Deleted: a new pool of that name starts afresh.
                    kc.hold.remove(&p.pool);
                }
                changed = true;
                kc.dirty = true;
            }
            Outcome::Failed(msg) => {
                g.ops[i].error = Some(("INTERNAL".into(), msg));
                gke::finish_op(g, i, now);
                kc.hold.insert(p.pool.clone());
                changed = true;
            }
            Outcome::RolledBack => {
                g.ops[i].error = Some((
                    "ABORTED".into(),
                    format!(
                        "Node pool {} upgrade was rolled back; the node pool stays at its previous version.",
                        p.pool
                    ),
                ));
                g.ops[i].nodes_done = 0;
                gke::finish_op(g, i, now);
                changed = true;
                kc.dirty = true;
            }
        }
    }
    changed
}

/// One drain pass over `p.batch`: true when the batch is empty (or the pool's PDB timeout
/// passed).
fn drain(kc: &mut KCluster, p: &mut GProc, cfg: &DrainConfig, now: f64) -> bool {
    let (remaining, to_evict) = pods_on(kc, &p.batch);
    if remaining == 0 || now - p.phase_started >= kc.wall(cfg.pdb_timeout()) {
        // After pdbTimeoutDuration (1 hour by default) GKE stops respecting PDBs and deletes
        // the node anyway; the pods still on it are lost.
        return true;
    }
    if now >= p.next_evict {
        for (ns, name) in to_evict {
            // graceTerminationDuration caps the pod's own termination grace.
            let grace = cfg.grace_termination_secs.map(|cap| {
                kc.get(Kind::Pod, &ns, &name)
                    .and_then(|pod| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
                    .unwrap_or(30)
                    .min(cap as i64)
            });
            let _ = ctrl::evict(kc, &ns, &name, grace, now);
        }
        p.next_evict = now + kc.wall(EVICT_RETRY_SECS);
    }
    false
}

/// DELETE_NODE_POOL: GKE ignores PDBs when deleting a pool unless
/// `respectPdbDuringNodePoolDeletion` is set; then it drains first (up to pdbTimeoutDuration).
fn step_delete(kc: &mut KCluster, pool: &NodePool, p: &mut GProc, now: f64) -> Outcome {
    let nodes: Vec<String> = kc
        .objs(Kind::Node)
        .values()
        .filter(|n| node_pool(n) == pool.name)
        .map(|n| util::name(n).to_string())
        .collect();
    if p.phase == Phase::PoolDrain {
        if pool.drain.respect_pdb_during_deletion() {
            if !p.cordoned {
                for n in &nodes {
                    cordon(kc, n, now);
                }
                p.batch = nodes.clone();
                p.cordoned = true;
                p.phase_started = now;
                p.next_evict = now;
            }
            if !drain(kc, p, &pool.drain, now) {
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

fn step(kc: &mut KCluster, g: &GkeCluster, p: &mut GProc, now: f64) -> Outcome {
    let pool = g.node_pools[&p.pool].clone();
    let desired = pool.node_count as usize;
    let surge = pool.max_surge as usize;
    let unavail = pool.max_unavailable as usize;
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
    let new_names: Vec<String> = new_nodes
        .iter()
        .map(|n| util::name(n).to_string())
        .collect();
    let old_nodes: Vec<String> = nodes
        .iter()
        .filter(|n| node_release(n) != p.version)
        .map(|n| util::name(n).to_string())
        .collect();
    if p.blue_green && p.rollback && p.phase != Phase::BgRollback && p.phase != Phase::BgDelete {
        for n in &old_nodes {
            uncordon(kc, n, now);
        }
        p.batch = new_names.clone();
        if p.respect_pdb {
            for b in p.batch.clone() {
                cordon(kc, &b, now);
            }
        }
        p.phase = Phase::BgRollback;
        p.phase_started = now;
        p.next_evict = now;
    }
    let join_timeout =
        |kc: &KCluster, p: &GProc| now - p.phase_started >= kc.wall(JOIN_TIMEOUT_SECS);
    loop {
        match p.phase {
            Phase::Launch => {
                let target = (desired + surge)
                    .saturating_sub(old_nodes.len())
                    .min(desired);
                if new_nodes.len() < target {
                    for _ in new_nodes.len()..target {
                        create_node(kc, g, &pool, &p.version, false, now);
                    }
                    p.phase_started = now;
                    return Outcome::Running;
                }
                if new_nodes.iter().any(|n| !util::node_ready(n)) {
                    if join_timeout(kc, p) {
                        return Outcome::Failed(format!(
                            "Node pool {} upgrade failed: new nodes did not become ready (instances failed to register with the cluster).",
                            pool.name
                        ));
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
                if drain(kc, p, &pool.drain, now) {
                    p.phase = Phase::Delete;
                    p.phase_started = now;
                    continue;
                }
                return Outcome::Running;
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
            Phase::BgCreate => {
                // The green pool: as many nodes as the blue pool, at the new version.
                if new_nodes.len() < desired {
                    for _ in new_nodes.len()..desired {
                        create_node(kc, g, &pool, &p.version, false, now);
                    }
                    p.phase_started = now;
                    return Outcome::Running;
                }
                if new_nodes.iter().any(|n| !util::node_ready(n)) {
                    if join_timeout(kc, p) {
                        return Outcome::Failed(format!(
                            "Node pool {} upgrade failed: green nodes did not become ready.",
                            pool.name
                        ));
                    }
                    return Outcome::Running;
                }
                for n in &old_nodes {
                    cordon(kc, n, now);
                }
                p.phase = Phase::BgDrain;
                p.phase_started = now;
                p.soak_until = now;
                return Outcome::Running;
            }
            Phase::BgDrain => {
                if !p.batch.is_empty() {
                    if !drain(kc, p, &pool.drain, now) {
                        return Outcome::Running;
                    }
                    p.drained.append(&mut p.batch);
                    p.soak_until = now + kc.wall(pool.bg.batch_soak_secs);
                }
                if now < p.soak_until {
                    return Outcome::Running;
                }
                let todo: Vec<String> = old_nodes
                    .iter()
                    .filter(|n| !p.drained.contains(n))
                    .cloned()
                    .collect();
                if todo.is_empty() {
                    p.phase = Phase::BgSoak;
                    p.phase_started = now;
                    return Outcome::Running;
                }
                let blue_total = old_nodes.len().max(1);
                let size = match pool.bg.batch_node_count {
                    Some(n) => n as usize,
                    None => (pool.bg.batch_percentage * blue_total as f64).ceil() as usize,
                }
                .max(1);
                p.batch = todo.into_iter().take(size).collect();
                p.phase_started = now;
                p.next_evict = now;
                return Outcome::Running;
            }
            Phase::BgSoak => {
                if !p.complete && now - p.phase_started < kc.wall(pool.bg.node_pool_soak_secs) {
                    return Outcome::Running;
                }
                p.phase = Phase::BgDelete;
                p.phase_started = now;
                return Outcome::Running;
            }
            Phase::BgDelete => {
                if now - p.phase_started < kc.wall(DELETE_SECS) {
                    return Outcome::Running;
                }
                for n in &old_nodes {
                    ctrl::remove_node(kc, n, now);
                }
                return Outcome::Done;
            }
            Phase::BgRollback => {
                if p.respect_pdb && !drain(kc, p, &pool.drain, now) {
                    return Outcome::Running;
                }
                for n in std::mem::take(&mut p.batch) {
                    ctrl::remove_node(kc, &n, now);
                }
                return Outcome::RolledBack;
            }
            Phase::PoolDrain | Phase::PoolDelete => return step_delete(kc, &pool, p, now),
        }
    }
}
