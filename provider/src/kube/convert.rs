//! Pure conversions from Kubernetes API objects to kup's [`KubeSnapshot`] types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod, ResourceRequirements};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kup_engine::kube::{KubeNode, KubePdb, KubePod, Resources};
use kup_engine::Version;

use super::quantity::{cpu_millis, value, QuantityError};

/// Annotation the kubelet puts on the API mirror of a static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

fn labels_of(l: &Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
    l.clone().unwrap_or_default()
}

fn q_cpu(q: Option<&KQuantity>) -> Result<u64, QuantityError> {
    q.map(|q| cpu_millis(&q.0))
        .transpose()
        .map(|v| v.unwrap_or(0))
}

fn q_val(q: Option<&KQuantity>) -> Result<u64, QuantityError> {
    q.map(|q| value(&q.0)).transpose().map(|v| v.unwrap_or(0))
}

fn resources_of(map: Option<&BTreeMap<String, KQuantity>>) -> Result<Resources, QuantityError> {
    let Some(m) = map else {
        return Ok(Resources::default());
    };
    Ok(Resources {
        cpu_millis: q_cpu(m.get("cpu"))?,
        memory_bytes: q_val(m.get("memory"))?,
    })
}

fn requests_of(r: Option<&ResourceRequirements>) -> Result<Resources, QuantityError> {
    resources_of(r.and_then(|r| r.requests.as_ref()))
}

fn container_requests(c: &Container) -> Result<Resources, QuantityError> {
    requests_of(c.resources.as_ref())
}

fn max(a: Resources, b: Resources) -> Resources {
    Resources {
        cpu_millis: a.cpu_millis.max(b.cpu_millis),
        memory_bytes: a.memory_bytes.max(b.memory_bytes),
    }
}

/// A pod's effective requests as the scheduler computes them
/// (`k8s.io/component-helpers/resource.PodRequests`): the sum of the app containers, plus
/// restartable (sidecar) init containers, against the largest regular init container
/// (which runs alongside the sidecars started before it), whichever is larger per
/// resource; plus the pod overhead. Pod-level `spec.resources.requests` win when set.
pub fn pod_requests(pod: &Pod) -> Result<Resources, QuantityError> {
    let Some(spec) = &pod.spec else {
        return Ok(Resources::default());
    };
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs = reqs + container_requests(c)?;
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for ic in spec.init_containers.iter().flatten() {
        let r = container_requests(ic)?;
        let during = if ic.restart_policy.as_deref() == Some("Always") {
            reqs = reqs + r;
            sidecars = sidecars + r;
            sidecars
        } else {
            r + sidecars
        };
        init_max = max(init_max, during);
    }
    let mut reqs = max(reqs, init_max);
    if let Some(pod_level) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
        let p = resources_of(Some(pod_level))?;
        if pod_level.contains_key("cpu") {
            reqs.cpu_millis = p.cpu_millis;
        }
        if pod_level.contains_key("memory") {
            reqs.memory_bytes = p.memory_bytes;
        }
    }
    reqs = reqs + resources_of(spec.overhead.as_ref())?;
    Ok(reqs)
}

/// The controller owner (`ownerReferences[controller=true]`), as kubectl's
/// `metav1.GetControllerOf` finds it.
pub fn controller_of(pod: &Pod) -> Option<(String, String)> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| (o.kind.clone(), o.name.clone()))
}

pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

pub fn has_empty_dir(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()))
}

pub fn pod_from(pod: &Pod) -> Result<KubePod, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let requests =
        pod_requests(pod).map_err(|e| format!("pod {namespace}/{name}: requests: {e}"))?;
    Ok(KubePod {
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        owner: controller_of(pod),
        phase: pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".into()),
        requests,
        has_empty_dir: has_empty_dir(pod),
        is_mirror: is_mirror(pod),
        labels: labels_of(&pod.metadata.labels),
        node_selector: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.clone())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        waiting_reason: pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            }),
        restarts: pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count.max(0) as u32).sum())
            .unwrap_or(0),
        unschedulable: pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                    .map(|c| {
                        c.message
                            .clone()
                            .or_else(|| c.reason.clone())
                            .unwrap_or_else(|| "not scheduled".into())
                    })
            }),
        namespace,
        name,
    })
}

/// The node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn kubelet_version_raw(node: &Node) -> Option<&str> {
    node.status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.as_str())
        .filter(|v| !v.is_empty())
}

pub fn kubelet_version(node: &Node) -> Result<Version, String> {
    let name = node.metadata.name.as_deref().unwrap_or("?");
    let raw = kubelet_version_raw(node)
        .ok_or_else(|| format!("node {name} reports no kubelet version (status.nodeInfo)"))?;
    raw.parse::<Version>()
        .map_err(|e| format!("node {name} reports kubelet version `{raw}`: {e}"))
}

pub fn node_from(node: &Node, node_group_label: &str) -> Result<KubeNode, String> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let labels = labels_of(&node.metadata.labels);
    let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let allocatable = resources_of(alloc).map_err(|e| format!("node {name}: allocatable: {e}"))?;
    let allocatable_pods = q_val(alloc.and_then(|a| a.get("pods")))
        .map_err(|e| format!("node {name}: allocatable pods: {e}"))?;
    Ok(KubeNode {
        kubelet_version: kubelet_version(node)?,
        ready: node_ready(node),
        unschedulable: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        node_group: labels.get(node_group_label).cloned(),
        allocatable,
        allocatable_pods: u32::try_from(allocatable_pods).unwrap_or(u32::MAX),
        labels,
        name,
    })
}

fn int_or_string(v: &Option<IntOrString>) -> Option<String> {
    v.as_ref().map(|v| match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    })
}

pub fn pdb_from(pdb: &PodDisruptionBudget) -> KubePdb {
    let spec = pdb.spec.as_ref();
    let selector = spec.and_then(|s| s.selector.as_ref());
    let status = pdb.status.as_ref();
    KubePdb {
        namespace: pdb
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pdb.metadata.name.clone().unwrap_or_default(),
        match_labels: selector
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default(),
        selector_unsupported: selector
            .and_then(|s| s.match_expressions.as_ref())
            .is_some_and(|e| !e.is_empty()),
        min_available: spec.and_then(|s| int_or_string(&s.min_available)),
        max_unavailable: spec.and_then(|s| int_or_string(&s.max_unavailable)),
        disruptions_allowed: status.map(|s| s.disruptions_allowed).unwrap_or(0),
        current_healthy: status.map(|s| s.current_healthy).unwrap_or(0),
        desired_healthy: status.map(|s| s.desired_healthy).unwrap_or(0),
        expected_pods: status.map(|s| s.expected_pods).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_requests_follow_the_scheduler() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Foo", "name": "x", "uid": "1"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "2", "controller": true}
                ],
                "annotations": {"kubernetes.io/config.mirror": "abc"}},
            "spec": {
                "nodeName": "n1",
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "0.5"}}},
                    {"name": "c"}
                ],
                "initContainers": [
                    {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1Mi"}}},
                    {"name": "i2", "resources": {"requests": {"memory": "1Gi"}}}
                ],
                "overhead": {"cpu": "10m"},
                "volumes": [{"name": "v", "emptyDir": {}}]
            },
            "status": {"phase": "Running"}
        }));
        let k = pod_from(&p).unwrap();
        assert_eq!(k.requests.cpu_millis, 2000 + 10);
        assert_eq!(k.requests.memory_bytes, 1 << 30);
        assert_eq!(k.owner, Some(("ReplicaSet".into(), "web-1".into())));
        assert!(k.is_mirror);
        assert!(k.has_empty_dir);
        assert_eq!(k.node.as_deref(), Some("n1"));
        assert_eq!(k.phase, "Running");
    }

    #[test]
    fn sidecar_init_containers_add_up() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                    {"name": "init", "resources": {"requests": {"cpu": "250m"}}}
                ]
            }
        }));
        // containers + sidecar = 300m; init runs next to the sidecar: 450m.
        assert_eq!(pod_requests(&p).unwrap().cpu_millis, 450);
        let k = pod_from(&p).unwrap();
        assert_eq!(k.namespace, "default");
        assert_eq!(k.phase, "Unknown");
        assert!(!k.is_mirror && !k.has_empty_dir && k.owner.is_none());
    }

    #[test]
    fn nodes_and_pdbs() {
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ip-1", "labels": {"eks.amazonaws.com/nodegroup": "general"}},
            "spec": {"unschedulable": true},
            "status": {
                "nodeInfo": {"kubeletVersion": "v1.28.15-eks-1234abc", "architecture": "", "bootID": "",
                    "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                    "machineID": "", "operatingSystem": "", "osImage": "", "systemUUID": ""},
                "allocatable": {"cpu": "1930m", "memory": "7291520Ki", "pods": "110"},
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]
            }
        }))
        .unwrap();
        let k = node_from(&n, "eks.amazonaws.com/nodegroup").unwrap();
        assert_eq!(k.kubelet_version.to_string(), "1.28.15-eks-1234abc");
        assert!(k.ready && k.unschedulable);
        assert_eq!(k.node_group.as_deref(), Some("general"));
        assert_eq!(k.allocatable.cpu_millis, 1930);
        assert_eq!(k.allocatable.memory_bytes, 7291520 * 1024);
        assert_eq!(k.allocatable_pods, 110);
        assert!(node_from(&n, "other").unwrap().node_group.is_none());

        let bare: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}})).unwrap();
        assert!(node_from(&bare, "l")
            .unwrap_err()
            .contains("node x reports no kubelet version"));

        let p: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}
        }))
        .unwrap();
        let k = pdb_from(&p);
        assert_eq!(k.min_available.as_deref(), Some("50%"));
        assert_eq!(k.max_unavailable, None);
        assert_eq!(k.match_labels.get("app").map(String::as_str), Some("web"));
        assert!(!k.selector_unsupported);
        assert_eq!(
            (
                k.disruptions_allowed,
                k.current_healthy,
                k.desired_healthy,
                k.expected_pods
            ),
            (1, 3, 2, 3)
        );

        let p: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"maxUnavailable": 0, "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}}
        }))
        .unwrap();
        let k = pdb_from(&p);
        assert_eq!(k.max_unavailable.as_deref(), Some("0"));
        assert!(k.selector_unsupported);
        assert_eq!(k.disruptions_allowed, 0);
    }
}
