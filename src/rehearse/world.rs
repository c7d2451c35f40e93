//! A simulator world (the JSON world-file form of `sim/README.md`) copied from what a
//! refresh read: clusters, node groups with their sizes and update settings, node
//! instance types (so capacity matches), add-ons, and the workloads on the nodes with
//! their replicas, requests, node-group pins and PodDisruptionBudgets.
//!
//! This writes the simulator's documented file format rather than using its types: the
//! simulator stays an independent implementation of the clouds, and this copy is checked
//! by the simulator's own loader like any hand-written world.

use std::collections::BTreeMap;

use kup_engine::kube::{KubePdb, KubePod, KubeSnapshot, Resources};
use kup_engine::model::{ActualCluster, ActualNodeGroup, ClusterSpec, ProviderSpec, Unavailable};
use serde_json::{json, Map, Value};

/// A world file for one provider block, and what it could not copy faithfully.
#[derive(Debug, Default)]
pub struct World {
    pub json: Value,
    pub notes: Vec<String>,
}

/// Labels that name a pod's node group, per provider (a `nodeSelector` on one of these
/// pins the workload to that group).
const GROUP_LABELS: &[&str] = &[
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "agentpool",
];

/// Labels controllers add to their pods; the simulator's controllers add their own.
const CONTROLLER_LABELS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "pod-template-generation",
    "apps.kubernetes.io/pod-index",
];

/// The AKS mode label kup carries in an agent pool's labels.
const AKS_MODE_LABEL: &str = "kubernetes.azure.com/mode";

/// The world for the clusters of one provider block of kind `kind`.
pub fn world(
    kind: &str,
    spec: &ProviderSpec,
    clusters: &[(&ClusterSpec, &ActualCluster)],
) -> World {
    let mut w = World::default();
    let mut top = Map::new();
    let section = match kind {
        "eks" => "cluster",
        "gke" => "gke_cluster",
        "aks" => "aks_cluster",
        "k3s" => "k3s_cluster",
        _ => {
            w.notes
                .push(format!("provider kind {kind} cannot be rehearsed"));
            w.json = Value::Object(top);
            return w;
        }
    };
    let mut out = Map::new();
    for (c, a) in clusters {
        let mut notes = Vec::new();
        let body = match kind {
            "eks" => eks_cluster(spec, a, &mut notes),
            "gke" => gke_cluster(spec, a, &mut notes),
            "aks" => aks_cluster(spec, a, &mut notes),
            _ => k3s_cluster(a, &mut notes),
        };
        let Some(mut body) = body else {
            w.notes
                .extend(notes.into_iter().map(|n| format!("{}: {n}", c.address())));
            continue;
        };
        match &a.kube {
            Some(k) => {
                let loads = workloads(k, a, &mut notes);
                if !loads.is_empty() {
                    body["workload"] = Value::Object(loads);
                }
            }
            None => notes.push(
                "kup could not read its Kubernetes API, so the rehearsal has no workloads to drain and its drains are faster than the real ones".into(),
            ),
        }
        w.notes
            .extend(notes.into_iter().map(|n| format!("{}: {n}", c.address())));
        out.insert(a.name.clone(), body);
    }
    top.insert(section.into(), Value::Object(out));
    w.json = Value::Object(top);
    w
}

fn eks_cluster(spec: &ProviderSpec, a: &ActualCluster, notes: &mut Vec<String>) -> Option<Value> {
    let minor = a.version.minor;
    if kup_sim::catalog::version(minor).is_none() {
        notes.push(format!(
            "the simulator has no EKS {}; not rehearsed",
            a.version.plain()
        ));
        return None;
    }
    let mut groups = Map::new();
    for g in &a.node_groups {
        let mut ng = json!({
            "version": format!("1.{}", g.version.minor),
            "min_size": g.min_size.min(g.desired_size),
            "max_size": g.max_size.max(g.desired_size).max(1),
            "desired_size": g.desired_size,
        });
        if let Some(t) = instance_type(a, g) {
            ng["instance_types"] = json!([t]);
        }
        match g.max_unavailable {
            Some(Unavailable::Percent(p)) => {
                ng["max_unavailable_percentage"] = json!(p.clamp(1, 100))
            }
            Some(Unavailable::Count(n)) => ng["max_unavailable"] = json!(n.clamp(1, 100)),
            None => {}
        }
        let labels = &g.labels;
        if !labels.is_empty() {
            ng["labels"] = json!(labels);
        }
        groups.insert(g.name.clone(), ng);
    }
    let mut addons = Map::new();
    for ad in &a.addons {
        let Some(cat) = kup_sim::catalog::addon(&ad.name) else {
            notes.push(format!(
                "add-on {} is not in the simulator's catalog; the rehearsal leaves it out",
                ad.name
            ));
            continue;
        };
        let version = if cat.versions.iter().any(|v| v.version == ad.version) {
            ad.version.clone()
        } else {
            // The closest stand-in: the catalog's default for the cluster's minor.
            let Some(v) = cat
                .versions
                .iter()
                .rev()
                .find(|v| v.default_for.contains(&minor))
                .or_else(|| cat.versions.iter().rev().find(|v| v.compatible_with(minor)))
            else {
                notes.push(format!(
                    "the simulator has no {} version for 1.{minor}; the rehearsal leaves it out",
                    ad.name
                ));
                continue;
            };
            notes.push(format!(
                "add-on {} {} stands in for {} (not in the simulator's catalog)",
                ad.name, v.version, ad.version
            ));
            v.version.to_string()
        };
        addons.insert(ad.name.clone(), json!({ "version": version }));
    }
    let mut c = json!({
        "region": a.region.clone().or_else(|| spec.region.clone()).unwrap_or_else(|| "us-east-1".into()),
        "version": format!("1.{minor}"),
    });
    if !groups.is_empty() {
        c["node_group"] = Value::Object(groups);
    }
    if !addons.is_empty() {
        c["addon"] = Value::Object(addons);
    }
    Some(c)
}

/// The closest version the simulated GKE offers: the same version, else the newest of
/// the same patch, else of the same minor.
fn gke_version(
    v: &kup_engine::version::Version,
    notes: &mut Vec<String>,
    what: &str,
) -> Option<String> {
    let full = v.to_string();
    let resolved = kup_sim::catalog::gke_resolve(&full, &full)
        .filter(|r| kup_sim::catalog::GKE_VERSIONS.contains(&r.as_str()))
        .or_else(|| kup_sim::catalog::gke_resolve(&v.plain(), ""))
        .filter(|r| !r.is_empty())
        .or_else(|| kup_sim::catalog::gke_resolve(&format!("1.{}", v.minor), ""))
        .filter(|r| !r.is_empty())?;
    if resolved != full {
        notes.push(format!(
            "{what} {resolved} stands in for {full} (not in the simulator's catalog)"
        ));
    }
    Some(resolved)
}

fn gke_cluster(spec: &ProviderSpec, a: &ActualCluster, notes: &mut Vec<String>) -> Option<Value> {
    let Some(version) = gke_version(&a.version, notes, "control plane") else {
        notes.push(format!(
            "the simulator has no GKE {}; not rehearsed",
            a.version
        ));
        return None;
    };
    let mut pools = Map::new();
    for g in &a.node_groups {
        let Some(v) = gke_version(&g.version, notes, &format!("node pool {}", g.name)) else {
            notes.push(format!(
                "node pool {}: the simulator has no GKE {}; left out",
                g.name, g.version
            ));
            continue;
        };
        let mut p = json!({ "version": v, "node_count": g.desired_size });
        if let Some(t) = instance_type(a, g) {
            p["machine_type"] = json!(t);
        }
        if let Some(Unavailable::Count(n)) = g.max_surge {
            p["max_surge"] = json!(n);
        }
        if let Some(Unavailable::Count(n)) = g.max_unavailable {
            p["max_unavailable"] = json!(n);
        }
        if let Some(bg) = &g.blue_green {
            p["strategy"] = json!("BLUE_GREEN");
            match bg.batch {
                Unavailable::Count(n) => p["batch_node_count"] = json!(n),
                Unavailable::Percent(pc) => {
                    p["batch_percentage"] = json!((pc.clamp(1, 100) as f64) / 100.0)
                }
            }
            p["batch_soak_seconds"] = json!(bg.batch_soak.as_secs_f64());
            p["node_pool_soak_seconds"] = json!(bg.soak.as_secs_f64());
        }
        if let Some(d) = &g.drain_limits {
            let mut dc = Map::new();
            if let Some(t) = d.pdb_timeout {
                dc.insert("pdb_timeout_seconds".into(), json!(t.as_secs_f64()));
            }
            if let Some(t) = d.grace_termination {
                dc.insert("grace_termination_seconds".into(), json!(t.as_secs_f64()));
            }
            if !dc.is_empty() {
                p["drain_config"] = Value::Object(dc);
            }
        }
        pools.insert(g.name.clone(), p);
    }
    let mut c = json!({
        "project": spec.project.clone().unwrap_or_else(|| "kup-sim".into()),
        "location": spec.location.clone().or_else(|| a.region.clone()).unwrap_or_else(|| "us-central1".into()),
        "version": version,
        // Release channels only drive automatic upgrades, which a rehearsal never waits for.
        "release_channel": "UNSPECIFIED",
    });
    if !pools.is_empty() {
        c["node_pool"] = Value::Object(pools);
    }
    Some(c)
}

/// The closest version the simulated AKS offers: the same patch, else the newest patch of
/// the minor.
fn aks_version(
    v: &kup_engine::version::Version,
    notes: &mut Vec<String>,
    what: &str,
) -> Option<String> {
    let plain = v.plain();
    if kup_sim::AKS_VERSIONS.contains(&plain.as_str()) {
        return Some(plain);
    }
    let prefix = format!("1.{}.", v.minor);
    let stand_in = kup_sim::AKS_VERSIONS
        .iter()
        .rev()
        .find(|x| x.starts_with(&prefix))?;
    notes.push(format!(
        "{what} {stand_in} stands in for {plain} (not in the simulator's catalog)"
    ));
    Some(stand_in.to_string())
}

fn aks_cluster(spec: &ProviderSpec, a: &ActualCluster, notes: &mut Vec<String>) -> Option<Value> {
    let Some(version) = aks_version(&a.version, notes, "control plane") else {
        notes.push(format!(
            "the simulator has no AKS {}; not rehearsed",
            a.version
        ));
        return None;
    };
    let mut pools = Map::new();
    for g in &a.node_groups {
        let Some(v) = aks_version(&g.version, notes, &format!("agent pool {}", g.name)) else {
            notes.push(format!(
                "agent pool {}: the simulator has no AKS {}; left out",
                g.name, g.version
            ));
            continue;
        };
        let system = g
            .labels
            .get(AKS_MODE_LABEL)
            .is_some_and(|m| m.eq_ignore_ascii_case("system"));
        let mut p = json!({
            "mode": if system { "System" } else { "User" },
            "version": v,
            "count": g.desired_size,
        });
        if let Some(t) = instance_type(a, g) {
            p["vm_size"] = json!(t);
        }
        if let Some(s) = g.max_surge {
            p["max_surge"] = json!(s.to_string());
        }
        if !system {
            if let Some(u) = g.max_unavailable {
                p["max_unavailable"] = json!(u.to_string());
            }
        }
        if let Some(t) = g.drain_limits.as_ref().and_then(|d| d.pdb_timeout) {
            p["drain_timeout_minutes"] = json!((t.as_secs() / 60).clamp(1, 1440));
        }
        if let Some(t) = g.node_soak {
            p["node_soak_minutes"] = json!((t.as_secs() / 60).min(30));
        }
        let labels: BTreeMap<&String, &String> = g
            .labels
            .iter()
            .filter(|(k, _)| *k != AKS_MODE_LABEL)
            .collect();
        if !labels.is_empty() {
            p["labels"] = json!(labels);
        }
        pools.insert(g.name.clone(), p);
    }
    let mut c = json!({
        "subscription_id": spec.subscription_id.clone().unwrap_or_else(|| "00000000-0000-0000-0000-000000000001".into()),
        "resource_group": spec.resource_group.clone().unwrap_or_else(|| "rg-kup-sim".into()),
        "location": a.region.clone().unwrap_or_else(|| "westeurope".into()),
        "version": version,
    });
    if !pools.is_empty() {
        c["agent_pool"] = Value::Object(pools);
    }
    Some(c)
}

fn k3s_cluster(a: &ActualCluster, notes: &mut Vec<String>) -> Option<Value> {
    let Some(kube) = &a.kube else {
        notes.push("a K3s/RKE2 cluster is read through its Kubernetes API, which kup could not reach; not rehearsed".into());
        return None;
    };
    let rke2 = a
        .version
        .suffix
        .as_deref()
        .is_some_and(|s| s.contains("rke2"));
    let distribution = if rke2 { "rke2" } else { "k3s" };
    let with_v = |v: &kup_engine::version::Version| format!("v{v}");
    let control_plane = |n: &kup_engine::kube::KubeNode| {
        n.labels
            .contains_key("node-role.kubernetes.io/control-plane")
            || n.labels.contains_key("node-role.kubernetes.io/master")
    };
    let mut servers = Map::new();
    let mut agents = Map::new();
    for n in &kube.nodes {
        let labels: BTreeMap<&String, &String> = n
            .labels
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("node-role.kubernetes.io/")
                    && !k.contains("kubernetes.io/hostname")
                    && !k.starts_with("node.kubernetes.io/")
                    && !k.starts_with("beta.kubernetes.io/")
                    && !k.starts_with("plan.upgrade.cattle.io/")
            })
            .collect();
        let mut node = json!({ "version": with_v(&n.kubelet_version) });
        if !labels.is_empty() {
            node["labels"] = json!(labels);
        }
        if control_plane(n) {
            servers.insert(n.name.clone(), node);
        } else {
            agents.insert(n.name.clone(), node);
        }
    }
    if servers.is_empty() {
        notes.push("no control-plane node found; not rehearsed".into());
        return None;
    }
    // The channel server answers each minor with the newest release kup was offered.
    let mut channels = BTreeMap::new();
    for v in &a.offered_versions {
        let key = format!("v1.{}", v.minor);
        let better = channels
            .get(&key)
            .is_none_or(|(old, _): &(kup_engine::version::Version, String)| v > old);
        if better {
            channels.insert(key, (v.clone(), with_v(v)));
        }
    }
    let mut channel_map: BTreeMap<String, String> = channels
        .into_values()
        .map(|(v, s)| (format!("v1.{}", v.minor), s))
        .collect();
    if let Some(newest) = a.offered_versions.iter().max() {
        channel_map.insert("stable".into(), with_v(newest));
        channel_map.insert("latest".into(), with_v(newest));
    }
    let mut c = json!({
        "distribution": distribution,
        "version": with_v(&a.version),
        "server": servers,
        "suc": { "installed": true },
    });
    if !agents.is_empty() {
        c["agent"] = Value::Object(agents);
    }
    if !channel_map.is_empty() {
        c["channel_server"] = json!({ "channels": channel_map });
    }
    Some(c)
}

/// The instance type the group's nodes report, so the simulated nodes have the same
/// capacity.
fn instance_type(a: &ActualCluster, g: &ActualNodeGroup) -> Option<String> {
    let kube = a.kube.as_ref()?;
    kube.nodes_of_group(&g.name)
        .find_map(|n| n.labels.get("node.kubernetes.io/instance-type").cloned())
}

/// A workload as the simulator stages it, keyed by a name unique in the cluster.
fn workloads(k: &KubeSnapshot, a: &ActualCluster, notes: &mut Vec<String>) -> Map<String, Value> {
    let scanned = a
        .scan
        .as_ref()
        .map(|s| s.workloads.as_slice())
        .unwrap_or(&[]);
    // (namespace, kind, name) → its pods.
    let mut owners: BTreeMap<(String, String, String), Vec<&KubePod>> = BTreeMap::new();
    let mut skipped_jobs = 0;
    for p in &k.pods {
        if p.is_mirror || p.is_finished() || system_namespace(&p.namespace) {
            continue;
        }
        let key = match &p.owner {
            None => (p.namespace.clone(), "Pod".to_string(), p.name.clone()),
            Some((kind, name)) => match kind.as_str() {
                "ReplicaSet" => {
                    let deployment = scanned
                        .iter()
                        .find(|w| {
                            w.kind == "Deployment"
                                && w.namespace == p.namespace
                                && !w.pod_labels.is_empty()
                                && w.pod_labels.iter().all(|(k, v)| p.labels.get(k) == Some(v))
                        })
                        .map(|w| w.name.clone())
                        // A ReplicaSet is named DEPLOYMENT-HASH.
                        .unwrap_or_else(|| {
                            name.rsplit_once('-')
                                .map_or(name.clone(), |(d, _)| d.to_string())
                        });
                    (p.namespace.clone(), "Deployment".to_string(), deployment)
                }
                "StatefulSet" | "DaemonSet" => (p.namespace.clone(), kind.clone(), name.clone()),
                _ => {
                    skipped_jobs += 1;
                    continue;
                }
            },
        };
        owners.entry(key).or_default().push(p);
    }
    if skipped_jobs > 0 {
        notes.push(format!(
            "{skipped_jobs} pods owned by Jobs or other controllers are left out (they finish on their own)"
        ));
    }
    let mut out = Map::new();
    for ((ns, kind, name), pods) in owners {
        let first = pods[0];
        let replicas = scanned
            .iter()
            .find(|w| w.namespace == ns && w.kind == kind && w.name == name)
            .map(|w| w.replicas.max(0) as usize)
            .unwrap_or(pods.len());
        let labels: BTreeMap<&String, &String> = first
            .labels
            .iter()
            .filter(|(k, _)| !CONTROLLER_LABELS.contains(&k.as_str()))
            .collect();
        let mut w = json!({
            "namespace": ns,
            "kind": kind,
            "cpu": cpu(first.requests),
            "memory": memory(first.requests),
        });
        if kind == "Deployment" || kind == "StatefulSet" {
            w["replicas"] = json!(replicas);
        }
        if !labels.is_empty() {
            w["labels"] = json!(labels);
        }
        if first.has_empty_dir {
            w["empty_dir"] = json!(true);
        }
        if pods
            .iter()
            .any(|p| p.waiting_reason.as_deref() == Some("CrashLoopBackOff"))
        {
            w["crash_loop"] = json!(true);
        }
        if let Some(group) = pinned_group(first, a) {
            w["node_group"] = json!(group);
        }
        let pdbs: Vec<&KubePdb> = k.pdbs.iter().filter(|b| b.selects(first)).collect();
        if let Some(b) = pdbs.first() {
            let mut pdb = Map::new();
            if let Some(m) = &b.min_available {
                pdb.insert("min_available".into(), int_or_string(m));
            } else if let Some(m) = &b.max_unavailable {
                pdb.insert("max_unavailable".into(), int_or_string(m));
            }
            if !pdb.is_empty() {
                w["pdb"] = Value::Object(pdb);
            }
            if pdbs.len() > 1 {
                notes.push(format!(
                    "{ns}/{name}: its pods match {} PodDisruptionBudgets; the rehearsal keeps {}",
                    pdbs.len(),
                    b.address()
                ));
            }
        }
        let key = unique_name(&out, &name, &ns);
        out.insert(key, w);
    }
    out
}

fn system_namespace(ns: &str) -> bool {
    ns.starts_with("kube-") || ns == "system-upgrade"
}

/// The node group a pod's `nodeSelector` pins it to, if any.
fn pinned_group(p: &KubePod, a: &ActualCluster) -> Option<String> {
    for (k, v) in &p.node_selector {
        if GROUP_LABELS.contains(&k.as_str()) {
            return Some(v.clone());
        }
    }
    if p.node_selector.is_empty() {
        return None;
    }
    // A selector on labels only one group carries.
    let matching: Vec<&ActualNodeGroup> = a
        .node_groups
        .iter()
        .filter(|g| {
            p.node_selector
                .iter()
                .all(|(k, v)| g.labels.get(k) == Some(v))
        })
        .collect();
    (matching.len() == 1).then(|| matching[0].name.clone())
}

/// Workload names are DNS labels and unique per cluster in the world file.
fn unique_name(out: &Map<String, Value>, name: &str, ns: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_matches('-').chars().take(50).collect::<String>();
    if !out.contains_key(&clean) {
        return clean;
    }
    let mut n = 2;
    loop {
        let candidate = format!("{clean}-{ns}-{n}")
            .chars()
            .take(63)
            .collect::<String>();
        if !out.contains_key(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

fn cpu(r: Resources) -> String {
    format!("{}m", r.cpu_millis)
}

fn memory(r: Resources) -> String {
    const MI: u64 = 1 << 20;
    if r.memory_bytes.is_multiple_of(MI) {
        format!("{}Mi", r.memory_bytes / MI)
    } else {
        r.memory_bytes.to_string()
    }
}

fn int_or_string(s: &str) -> Value {
    s.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| json!(s))
}

#[cfg(test)]
mod tests;
