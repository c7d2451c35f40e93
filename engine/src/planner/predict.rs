//! Plan-time predictions from the cluster's pods and PodDisruptionBudgets: drains that a
//! PDB will block, and batches whose evicted pods will not fit on the remaining nodes.

use std::collections::BTreeMap;

use crate::kube::{KubePdb, KubePod, KubeSnapshot, Resources};
use crate::plan::{BlockedDrain, CapacityShortfall};

/// Pods a drain would evict (kubectl leaves DaemonSet, mirror and finished pods).
pub fn evictable<'a>(k: &'a KubeSnapshot, node: &'a str) -> impl Iterator<Item = &'a KubePod> {
    k.pods_on(node)
        .filter(|p| !(p.is_daemonset() || p.is_mirror || p.is_finished()))
}

/// Why `pdb` cannot allow a single eviction now, if it cannot.
pub fn pdb_blocks(pdb: &KubePdb) -> Option<String> {
    if pdb
        .max_unavailable
        .as_deref()
        .is_some_and(|m| m == "0" || m == "0%")
    {
        return Some("maxUnavailable is 0, so it never allows an eviction".into());
    }
    if let Some(min) = pdb
        .min_available
        .as_deref()
        .and_then(|m| m.parse::<i32>().ok())
    {
        if min >= pdb.expected_pods && pdb.expected_pods > 0 {
            return Some(format!(
                "minAvailable {min} with {} pods never allows an eviction",
                pdb.expected_pods
            ));
        }
    }
    if pdb.min_available.as_deref() == Some("100%") {
        return Some("minAvailable 100% never allows an eviction".into());
    }
    // More healthy pods than the budget needs, yet no disruption allowed: the status is
    // catching up with an eviction in flight (the disruption controller's disruptedPods),
    // not a budget that blocks; the drain's retries get past it.
    if pdb.disruptions_allowed <= 0 && pdb.current_healthy <= pdb.desired_healthy {
        return Some(if pdb.current_healthy >= pdb.desired_healthy {
            format!(
                "allows no disruption now (needs {} healthy pods and has {})",
                pdb.desired_healthy, pdb.current_healthy
            )
        } else {
            format!(
                "allows no disruption now: only {} of the {} required pods are healthy",
                pdb.current_healthy, pdb.desired_healthy
            )
        });
    }
    None
}

/// Every PDB that would block draining `nodes`, with the pods it protects there.
/// Pods on `nodes` whose nodeSelector names the group itself (`…nodegroup=NAME`,
/// `agentpool=NAME`, `gke-nodepool=NAME`): the group's label with its own name as value,
/// which a differently named replacement group cannot match. Grouped by selector.
pub fn pinned_to_group(
    k: &KubeSnapshot,
    node_group: &str,
    nodes: &[&str],
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in nodes {
        let Some(labels) = k.nodes.iter().find(|n| n.name == *node).map(|n| &n.labels) else {
            continue;
        };
        for pod in evictable(k, node) {
            for (key, value) in &pod.node_selector {
                if value == node_group && labels.get(key) == Some(value) {
                    out.entry(format!("{key}={value}"))
                        .or_default()
                        .push(format!("{} on {node}", pod.address()));
                }
            }
        }
    }
    out
}

pub fn blocked_drains(
    k: &KubeSnapshot,
    node_group: &str,
    nodes: &[&str],
    blocking: bool,
) -> Vec<BlockedDrain> {
    let mut by_pdb: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for node in nodes {
        for pod in evictable(k, node) {
            for pdb in k.pdbs.iter().filter(|b| b.selects(pod)) {
                if let Some(reason) = pdb_blocks(pdb) {
                    by_pdb
                        .entry(pdb.address())
                        .or_insert_with(|| (reason, Vec::new()))
                        .1
                        .push(format!("{} on {node}", pod.address()));
                }
            }
        }
    }
    by_pdb
        .into_iter()
        .map(|(pdb, (reason, pods))| BlockedDrain {
            node_group: node_group.to_string(),
            pdb,
            reason,
            pods,
            blocking,
        })
        .collect()
}

/// When `batch` is drained and nothing replaces it first, do its evictable pods fit in the
/// free room of the other schedulable nodes plus `extra` (capacity the plan adds first,
/// e.g. a green group)? Returns the shortfall if not.
pub fn capacity_shortfall(
    k: &KubeSnapshot,
    node_group: &str,
    batch: &[&str],
    extra: Resources,
) -> Option<CapacityShortfall> {
    let need = batch
        .iter()
        .flat_map(|n| evictable(k, n))
        .fold(Resources::default(), |acc, p| acc + p.requests);
    let free = k
        .nodes
        .iter()
        .filter(|n| n.ready && !n.unschedulable && !batch.contains(&n.name.as_str()))
        .map(|n| {
            let used = k
                .pods_on(&n.name)
                .filter(|p| !p.is_finished())
                .fold(Resources::default(), |acc, p| acc + p.requests);
            n.allocatable.saturating_sub(used)
        })
        .fold(extra, |a, b| a + b);
    if need.fits_in(free) {
        return None;
    }
    Some(CapacityShortfall {
        node_group: node_group.to_string(),
        nodes: batch.iter().map(|s| s.to_string()).collect(),
        needed: need,
        free,
        short: need.saturating_sub(free),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::KubeNode;

    fn node(name: &str, group: &str, cpu: u64) -> KubeNode {
        KubeNode {
            name: name.into(),
            kubelet_version: "v1.28.5".parse().unwrap(),
            ready: true,
            unschedulable: false,
            node_group: Some(group.into()),
            allocatable: Resources {
                cpu_millis: cpu,
                memory_bytes: 8 << 30,
            },
            allocatable_pods: 110,
            labels: Default::default(),
        }
    }

    fn pod(name: &str, node: &str, app: &str, owner: &str, cpu: u64) -> KubePod {
        KubePod {
            waiting_reason: None,
            restarts: 0,
            unschedulable: None,
            namespace: "shop".into(),
            name: name.into(),
            node: Some(node.into()),
            owner: Some((owner.into(), format!("{app}-x"))),
            phase: "Running".into(),
            requests: Resources {
                cpu_millis: cpu,
                memory_bytes: 1 << 30,
            },
            has_empty_dir: false,
            is_mirror: false,
            labels: [("app".to_string(), app.to_string())].into(),
            node_selector: Default::default(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pdb(
        name: &str,
        app: &str,
        min: Option<&str>,
        max: Option<&str>,
        allowed: i32,
        healthy: i32,
        desired: i32,
        expected: i32,
    ) -> KubePdb {
        KubePdb {
            namespace: "shop".into(),
            name: name.into(),
            match_labels: [("app".to_string(), app.to_string())].into(),
            selector_unsupported: false,
            min_available: min.map(str::to_string),
            max_unavailable: max.map(str::to_string),
            disruptions_allowed: allowed,
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: expected,
        }
    }

    #[test]
    fn the_three_kinds_of_never_allowing_pdb() {
        assert!(pdb_blocks(&pdb("a", "x", Some("3"), None, 0, 3, 3, 3))
            .unwrap()
            .contains("never"));
        assert!(pdb_blocks(&pdb("b", "x", None, Some("0"), 0, 3, 3, 3))
            .unwrap()
            .contains("maxUnavailable is 0"));
        assert!(pdb_blocks(&pdb("c", "x", Some("2"), None, 0, 2, 2, 3))
            .unwrap()
            .contains("needs 2 healthy pods and has 2"));
        assert!(pdb_blocks(&pdb("d", "x", Some("2"), None, 1, 3, 2, 3)).is_none());
    }

    #[test]
    fn blocked_drain_names_pdb_and_pods_but_ignores_daemonsets() {
        let k = KubeSnapshot {
            nodes: vec![node("n1", "g", 2000), node("n2", "g", 2000)],
            pods: vec![
                pod("web-1", "n1", "web", "ReplicaSet", 100),
                pod("agent-1", "n1", "agent", "DaemonSet", 100),
                pod("api-1", "n2", "api", "ReplicaSet", 100),
            ],
            pdbs: vec![
                pdb("web", "web", Some("1"), None, 0, 1, 1, 1),
                pdb("agent", "agent", None, Some("0"), 0, 1, 1, 1),
                pdb("api", "api", Some("1"), None, 1, 2, 1, 2),
            ],
        };
        let b = blocked_drains(&k, "g", &["n1", "n2"], true);
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].pdb, "shop/web");
        assert_eq!(b[0].pods, ["shop/web-1 on n1"]);
    }

    #[test]
    fn capacity_counts_free_room_elsewhere_and_extra() {
        let k = KubeSnapshot {
            nodes: vec![node("n1", "g", 1000), node("n2", "g", 1000)],
            pods: vec![
                pod("a", "n1", "a", "ReplicaSet", 800),
                pod("b", "n2", "b", "ReplicaSet", 500),
            ],
            pdbs: vec![],
        };
        let short = capacity_shortfall(&k, "g", &["n1"], Resources::default()).unwrap();
        assert_eq!(short.short.cpu_millis, 300);
        let extra = Resources {
            cpu_millis: 1000,
            memory_bytes: 8 << 30,
        };
        assert!(capacity_shortfall(&k, "g", &["n1"], extra).is_none());
    }
}
