//! What kup sees inside a cluster through the Kubernetes API: nodes, the pods on them and
//! PodDisruptionBudgets. Plain data (no client here): the provider crate fills it, the
//! planner reads it to check skew against real kubelets and to predict blocked drains and
//! missing capacity.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::version::Version;

/// CPU in millicores and memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl std::ops::Add for Resources {
    type Output = Resources;
    fn add(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis + o.cpu_millis,
            memory_bytes: self.memory_bytes + o.memory_bytes,
        }
    }
}

impl Resources {
    pub fn saturating_sub(self, o: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(o.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(o.memory_bytes),
        }
    }
    pub fn fits_in(self, o: Resources) -> bool {
        self.cpu_millis <= o.cpu_millis && self.memory_bytes <= o.memory_bytes
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubeSnapshot {
    pub nodes: Vec<KubeNode>,
    pub pods: Vec<KubePod>,
    pub pdbs: Vec<KubePdb>,
}

impl KubeSnapshot {
    pub fn nodes_of_group<'a>(&'a self, node_group: &'a str) -> impl Iterator<Item = &'a KubeNode> {
        self.nodes
            .iter()
            .filter(move |n| n.node_group.as_deref() == Some(node_group))
    }
    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a KubePod> {
        self.pods
            .iter()
            .filter(move |p| p.node.as_deref() == Some(node))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubeNode {
    pub name: String,
    /// `status.nodeInfo.kubeletVersion`, e.g. `v1.28.15-eks-1234abc`.
    pub kubelet_version: Version,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    /// The node group the node belongs to, from the provider's label
    /// (`eks.amazonaws.com/nodegroup` on EKS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
    pub allocatable: Resources,
    /// `status.allocatable.pods`.
    pub allocatable_pods: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubePod {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Controller owner (`kind`, `name`), e.g. (`ReplicaSet`, `web-7d4b9`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<(String, String)>,
    /// `status.phase`.
    pub phase: String,
    /// Sum of the containers' requests.
    pub requests: Resources,
    /// Uses an `emptyDir` volume (its data is lost when the pod is evicted).
    pub has_empty_dir: bool,
    /// A static pod mirrored by the kubelet (`kubernetes.io/config.mirror` annotation).
    pub is_mirror: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `spec.nodeSelector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// The first reason a container is waiting (`CrashLoopBackOff`, `ImagePullBackOff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<String>,
    /// Container restarts, summed.
    #[serde(default)]
    pub restarts: u32,
    /// Why the scheduler could not place the pod (`PodScheduled=False`), when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<String>,
}

impl KubePod {
    pub fn is_daemonset(&self) -> bool {
        self.owner.as_ref().is_some_and(|(k, _)| k == "DaemonSet")
    }
    pub fn is_finished(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }
    pub fn address(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What kup reads in a cluster for its pre-flight checks, beyond nodes, pods and PDBs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterScan {
    /// The API server's `/readyz` checks that fail (`None`: ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_ready: Option<String>,
    /// Deployments and StatefulSets with their replicas.
    #[serde(default)]
    pub workloads: Vec<KubeWorkload>,
    /// Objects whose applied or stored apiVersion kup found (last-applied-configuration,
    /// managedFields, Helm release manifests).
    #[serde(default)]
    pub api_uses: Vec<crate::removed_apis::ApiUse>,
    /// The Deployments and DaemonSets in `kube-system` with their first container's
    /// image: CoreDNS, kube-proxy, the CNI, whose versions the add-on check reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// What could not be read (e.g. Secrets forbidden by RBAC), so the checks are
    /// incomplete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
}

/// A system component and the image it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Component {
    /// `Deployment/coredns`, `DaemonSet/kube-proxy`.
    pub workload: String,
    pub image: String,
}

impl Component {
    /// The image's tag (`v1.11.1`), or the whole image without one.
    pub fn version(&self) -> &str {
        let last = self.image.rsplit('/').next().unwrap_or(&self.image);
        last.split_once(':').map_or(self.image.as_str(), |(_, t)| t)
    }
    /// The workload's name without its kind.
    pub fn name(&self) -> &str {
        self.workload
            .split_once('/')
            .map_or(&self.workload, |(_, n)| n)
    }
    /// A CNI plugin's agent (Calico, Cilium, Flannel, Canal, Weave, Antrea, kube-router).
    pub fn is_cni(&self) -> bool {
        const CNI: &[&str] = &[
            "calico",
            "cilium",
            "flannel",
            "canal",
            "weave",
            "antrea",
            "kube-router",
        ];
        let n = self.name();
        CNI.iter().any(|c| n.contains(c))
    }
}

/// A Deployment or StatefulSet and how many of its replicas are available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KubeWorkload {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub replicas: i32,
    pub available: i32,
    /// The pod template's labels, to find the PodDisruptionBudgets covering it.
    #[serde(default)]
    pub pod_labels: BTreeMap<String, String>,
}

impl KubeWorkload {
    /// `namespace/Kind/name`.
    pub fn address(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind, self.name)
    }
    pub fn is_available(&self) -> bool {
        self.available >= self.replicas
    }
}

/// `policy/v1` PodDisruptionBudget with its status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubePdb {
    pub namespace: String,
    pub name: String,
    /// `spec.selector.matchLabels` (a PDB with `matchExpressions` is reported with
    /// `selector_unsupported = true`: kup then treats it as matching nothing and says so).
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub selector_unsupported: bool,
    /// `spec.minAvailable` / `spec.maxUnavailable`, as written (`2` or `"50%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
    pub disruptions_allowed: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
}

impl KubePdb {
    pub fn address(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
    pub fn selects(&self, pod: &KubePod) -> bool {
        !self.selector_unsupported
            && pod.namespace == self.namespace
            && self
                .match_labels
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v))
    }
}

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrainReport {
    pub node: String,
    pub evicted: Vec<String>,
    pub deleted: Vec<String>,
    /// DaemonSet and mirror pods, left in place as kubectl does.
    pub skipped: Vec<String>,
    pub elapsed: Duration,
}

/// Why a drain stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DrainError {
    /// Pods kubectl's rules refuse to remove without an explicit option.
    #[error("cannot drain {node}: {reason}: {}", .pods.join(", "))]
    Refused {
        node: String,
        reason: String,
        pods: Vec<String>,
    },
    /// An eviction kept being refused by a PodDisruptionBudget until the timeout.
    #[error("drain of {node} timed out after {}: pod {pod} could not be evicted because PodDisruptionBudget {pdb} allows no disruption ({message})", humantime::format_duration(*.waited))]
    BlockedByPdb {
        node: String,
        pod: String,
        pdb: String,
        message: String,
        waited: Duration,
    },
    #[error("drain of {node} timed out after {}: still waiting for {}", humantime::format_duration(*.waited), .pods.join(", "))]
    Timeout {
        node: String,
        pods: Vec<String>,
        waited: Duration,
    },
    #[error("drain of {node} failed: {message}")]
    Api { node: String, message: String },
}
