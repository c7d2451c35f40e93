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
    /// Labels of the clusters the world holds.
    pub copied: Vec<String>,
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
        "k3s" | "rke2" => "k3s_cluster",
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
        if out.contains_key(&a.name) {
            w.notes.push(format!(
                "{}: not rehearsed: another cluster of provider {} has the name {} (one simulated cluster per name)",
                c.address(),
                spec.key(),
                a.name
            ));
            continue;
        }
        let body = match kind {
            "eks" => eks_cluster(spec, a, &mut notes),
            "gke" => gke_cluster(spec, a, &mut notes),
            "aks" => aks_cluster(spec, a, &mut notes),
            _ => k3s_cluster(c, a, &mut notes),
        };
        let Some(mut body) = body else {
            w.notes
                .extend(notes.into_iter().map(|n| format!("{}: {n}", c.address())));
            continue;
        };
        // The groups the copy has, which a workload may be pinned to.
        let groups: Vec<String> = ["node_group", "node_pool", "agent_pool"]
            .iter()
            .filter_map(|k| body[*k].as_object())
            .flat_map(|m| m.keys().cloned())
            .collect();
        match &a.kube {
            Some(k) => {
                let mut skip: Vec<&str> = Vec::new();
                if let Some(ns) = c.namespace.as_deref() {
                    skip.push(ns);
                }
                let loads = workloads(k, a, &groups, &skip, &mut notes);
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
        w.copied.push(c.label.clone());
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

/// The version the simulated GKE offers for `v`: the same, else the newest of its minor
/// that is no newer than `v`, else the oldest of its minor; never above `ceiling` (a
/// pool's may not pass its master's).
fn gke_version(
    v: &kup_engine::version::Version,
    ceiling: Option<&str>,
    notes: &mut Vec<String>,
    what: &str,
) -> Option<String> {
    use kup_sim::catalog::{gke_cmp, gke_minor, GKE_VERSIONS};
    use std::cmp::Ordering::Greater;
    let full = v.to_string();
    let fits = |c: &str| ceiling.is_none_or(|m| gke_cmp(c, m) != Greater);
    let of_minor: Vec<&str> = GKE_VERSIONS
        .iter()
        .copied()
        .filter(|c| gke_minor(c) == Some(v.minor) && fits(c))
        .collect();
    // Newest first within a minor.
    let chosen = of_minor
        .iter()
        .find(|c| **c == full)
        .or_else(|| of_minor.iter().find(|c| gke_cmp(c, &full) != Greater))
        .or_else(|| of_minor.last())?
        .to_string();
    if chosen != full {
        notes.push(format!(
            "{what} {chosen} stands in for {full} (not in the simulator's catalog)"
        ));
    }
    Some(chosen)
}

fn gke_cluster(spec: &ProviderSpec, a: &ActualCluster, notes: &mut Vec<String>) -> Option<Value> {
    let Some(version) = gke_version(&a.version, None, notes, "control plane") else {
        notes.push(format!(
            "the simulator has no GKE {}; not rehearsed",
            a.version
        ));
        return None;
    };
    let mut pools = Map::new();
    for g in &a.node_groups {
        let Some(v) = gke_version(
            &g.version,
            Some(&version),
            notes,
            &format!("node pool {}", g.name),
        ) else {
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
        // The real channel was checked when the real plan was made; unenrolled, the copy
        // accepts the planned versions whatever channel kup read them from.
        "release_channel": "UNSPECIFIED",
    });
    if !pools.is_empty() {
        c["node_pool"] = Value::Object(pools);
    }
    Some(c)
}

/// The version the simulated AKS offers for `v`: the same, else the newest patch of its
/// minor no newer than `v`, else the oldest of its minor; never above `ceiling`.
fn aks_version(
    v: &kup_engine::version::Version,
    ceiling: Option<&str>,
    notes: &mut Vec<String>,
    what: &str,
) -> Option<String> {
    use kup_engine::version::Version;
    let parse = |s: &str| s.parse::<Version>().ok();
    let ceiling = ceiling.and_then(parse);
    let of_minor: Vec<(&str, Version)> = kup_sim::AKS_VERSIONS
        .iter()
        .filter_map(|s| parse(s).map(|p| (*s, p)))
        .filter(|(_, p)| p.minor == v.minor && ceiling.as_ref().is_none_or(|c| p <= c))
        .collect();
    // Oldest first.
    let chosen = of_minor
        .iter()
        .rev()
        .find(|(_, p)| p <= v)
        .or_else(|| of_minor.first())?
        .0
        .to_string();
    let plain = v.plain();
    if chosen != plain {
        notes.push(format!(
            "{what} {chosen} stands in for {plain} (not in the simulator's catalog)"
        ));
    }
    Some(chosen)
}

fn aks_cluster(spec: &ProviderSpec, a: &ActualCluster, notes: &mut Vec<String>) -> Option<Value> {
    let Some(version) = aks_version(&a.version, None, notes, "control plane") else {
        notes.push(format!(
            "the simulator has no AKS {}; not rehearsed",
            a.version
        ));
        return None;
    };
    let mut pools = Map::new();
    for g in &a.node_groups {
        let Some(v) = aks_version(
            &g.version,
            Some(&version),
            notes,
            &format!("agent pool {}", g.name),
        ) else {
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
    if !pools.values().any(|p| p["mode"].as_str() == Some("System")) {
        notes.push("no System agent pool could be copied (AKS needs one); not rehearsed".into());
        return None;
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

fn k3s_cluster(c: &ClusterSpec, a: &ActualCluster, notes: &mut Vec<String>) -> Option<Value> {
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
    // The simulator wants the distribution's release form, `v1.31.4+k3s1`.
    let mut unsuffixed = false;
    let mut with_v = |v: &kup_engine::version::Version| {
        if v.suffix.is_some() {
            format!("v{v}")
        } else {
            unsuffixed = true;
            format!("v{}{}", v.plain(), if rke2 { "+rke2r1" } else { "+k3s1" })
        }
    };
    let control_plane = |n: &kup_engine::kube::KubeNode| {
        n.labels
            .contains_key("node-role.kubernetes.io/control-plane")
            || n.labels.contains_key("node-role.kubernetes.io/master")
    };
    let mut servers = Map::new();
    let mut agents = Map::new();
    for n in &kube.nodes {
        // Labels the simulator sets itself (roles, host name, instance type) and the
        // controller's own are left to it; every other label stays, since node groups
        // select their nodes by labels.
        let labels: BTreeMap<&String, &String> = n
            .labels
            .iter()
            .filter(|(k, _)| {
                ![
                    "node-role.kubernetes.io/control-plane",
                    "node-role.kubernetes.io/master",
                    "node-role.kubernetes.io/etcd",
                    "kubernetes.io/hostname",
                    "node.kubernetes.io/instance-type",
                ]
                .contains(&k.as_str())
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
    let mut newest: BTreeMap<u32, &kup_engine::version::Version> = BTreeMap::new();
    for v in &a.offered_versions {
        if newest.get(&v.minor).is_none_or(|old| v > *old) {
            newest.insert(v.minor, v);
        }
    }
    let mut channel_map: BTreeMap<String, String> = newest
        .iter()
        .map(|(minor, v)| (format!("v1.{minor}"), with_v(v)))
        .collect();
    if let Some(top) = a.offered_versions.iter().max() {
        let top = with_v(top);
        channel_map.insert("stable".into(), top.clone());
        channel_map.insert("latest".into(), top.clone());
        // A channel the configuration names (not a URL) answers what it answered kup.
        if let Some(ch) = c.channel.as_deref().filter(|ch| !ch.contains("://")) {
            let answer = a.default_version.as_ref().map(&mut with_v).unwrap_or(top);
            channel_map.entry(ch.to_string()).or_insert(answer);
        }
    }
    let version = with_v(&a.version);
    if unsuffixed {
        notes.push(format!(
            "versions without a {distribution} release suffix are simulated as the first release of that patch"
        ));
    }
    let namespace = c
        .namespace
        .clone()
        .unwrap_or_else(|| "system-upgrade".into());
    notes.push(
        "K3s/RKE2 nodes are simulated at 4 CPUs and 16 GiB each (the simulator does not size them), so capacity may differ from the real nodes'".into(),
    );
    let mut out = json!({
        "distribution": distribution,
        "version": version,
        "server": servers,
        "suc": { "installed": true, "namespace": namespace },
    });
    if !agents.is_empty() {
        out["agent"] = Value::Object(agents);
    }
    if !channel_map.is_empty() {
        out["channel_server"] = json!({ "channels": channel_map });
    }
    Some(out)
}

/// The instance type the group's nodes report, so the simulated nodes have the same
/// capacity.
fn instance_type(a: &ActualCluster, g: &ActualNodeGroup) -> Option<String> {
    let kube = a.kube.as_ref()?;
    kube.nodes_of_group(&g.name)
        .find_map(|n| n.labels.get("node.kubernetes.io/instance-type").cloned())
}

/// A workload as the simulator stages it, keyed by a name unique in the cluster.
/// `groups` are the node groups the copy has; `skip` namespaces beyond `kube-*` that
/// belong to the platform (the system-upgrade-controller's).
fn workloads(
    k: &KubeSnapshot,
    a: &ActualCluster,
    groups: &[String],
    skip: &[&str],
    notes: &mut Vec<String>,
) -> Map<String, Value> {
    let scanned = a
        .scan
        .as_ref()
        .map(|s| s.workloads.as_slice())
        .unwrap_or(&[]);
    // (namespace, kind, name) → its pods.
    let mut owners: BTreeMap<(String, String, String), Vec<&KubePod>> = BTreeMap::new();
    let mut jobs = 0;
    let mut operated: BTreeMap<String, usize> = BTreeMap::new();
    for p in &k.pods {
        if p.is_mirror
            || p.is_finished()
            || system_namespace(&p.namespace)
            || skip.contains(&p.namespace.as_str())
        {
            continue;
        }
        let key = match &p.owner {
            None => (p.namespace.clone(), "Pod".to_string(), p.name.clone()),
            Some((kind, name)) => match kind.as_str() {
                "ReplicaSet" => {
                    // A ReplicaSet is named DEPLOYMENT-HASH; the scanned Deployment of that
                    // name, else the one whose selector the pod matches.
                    let prefix = name
                        .rsplit_once('-')
                        .map_or(name.clone(), |(d, _)| d.to_string());
                    let in_ns = |w: &&kup_engine::kube::KubeWorkload| {
                        w.kind == "Deployment" && w.namespace == p.namespace
                    };
                    let deployment = scanned
                        .iter()
                        .filter(in_ns)
                        .find(|w| w.name == prefix)
                        .or_else(|| {
                            scanned.iter().filter(in_ns).find(|w| {
                                !w.pod_labels.is_empty()
                                    && w.pod_labels.iter().all(|(k, v)| p.labels.get(k) == Some(v))
                            })
                        })
                        .map_or(prefix.clone(), |w| w.name.clone());
                    (p.namespace.clone(), "Deployment".to_string(), deployment)
                }
                "StatefulSet" | "DaemonSet" => (p.namespace.clone(), kind.clone(), name.clone()),
                "Job" => {
                    jobs += 1;
                    continue;
                }
                // Operators' pods (database clusters, Kafka brokers, VMs) are often the
                // hardest to drain: kept, as StatefulSets of the same size.
                other => {
                    *operated.entry(other.to_string()).or_default() += 1;
                    (p.namespace.clone(), "StatefulSet".to_string(), name.clone())
                }
            },
        };
        owners.entry(key).or_default().push(p);
    }
    if jobs > 0 {
        notes.push(format!(
            "{jobs} pods owned by Jobs are left out (they finish on their own)"
        ));
    }
    for (kind, n) in &operated {
        notes.push(format!(
            "{n} pods owned by {kind} objects are simulated as StatefulSets (the simulator runs no operators)"
        ));
    }
    let mut out = Map::new();
    // Budgets per workload that uses them: a budget over several workloads counts
    // differently when each gets its own copy.
    let mut pdb_users: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
        match pinned_group(first, a) {
            Some(group) if groups.contains(&group) => w["node_group"] = json!(group),
            Some(group) => notes.push(format!(
                "{ns}/{name}: pinned to node group {group}, which the copy does not have; simulated unpinned"
            )),
            None => {}
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
                pdb_users
                    .entry(b.address())
                    .or_default()
                    .push(format!("{ns}/{name}"));
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
    for (pdb, users) in pdb_users.iter().filter(|(_, u)| u.len() > 1) {
        notes.push(format!(
            "PodDisruptionBudget {pdb} covers {}; the rehearsal gives each its own copy of it, which counts its pods separately",
            users.join(", ")
        ));
    }
    out
}

fn system_namespace(ns: &str) -> bool {
    ns.starts_with("kube-")
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

/// Workload names are DNS labels (at most 63 characters, no leading or trailing `-`)
/// and unique per cluster in the world file.
fn unique_name(out: &Map<String, Value>, name: &str, ns: &str) -> String {
    fn label(s: &str, max: usize) -> String {
        let clean: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(max)
            .collect();
        let clean = clean.trim_matches('-').to_string();
        if clean.is_empty() {
            "workload".into()
        } else {
            clean
        }
    }
    let base = label(name, 63);
    if !out.contains_key(&base) {
        return base;
    }
    for n in 2.. {
        let suffix = format!("-{n}");
        let head = label(&format!("{name}-{ns}"), 63 - suffix.len());
        let candidate = format!("{head}{suffix}");
        if !out.contains_key(&candidate) {
            return candidate;
        }
    }
    unreachable!("an unused suffix exists")
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
