//! Plans as data: steps with pre/postconditions, the version timeline, and the saved-plan
//! envelope (config hash, refreshed-state fingerprints, integrity hash).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{ActualCluster, Desired, Unavailable};
use crate::version::{Minor, Version};

/// Bumped whenever the plan format changes incompatibly.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// One thing a provider is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Move the control plane one minor up.
    UpgradeControlPlane { from: Version, to: Version },
    /// Change how many nodes a node group may replace at once.
    UpdateNodeGroupConfig {
        node_group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Unavailable>,
        max_unavailable: Unavailable,
    },
    /// Roll a node group's nodes to a new kubelet version.
    UpgradeNodeGroup {
        node_group: String,
        from: Version,
        to: Version,
        max_unavailable: Unavailable,
    },
    /// Move an add-on to a version compatible with the control plane.
    UpdateAddon {
        addon: String,
        from: String,
        to: String,
    },
    /// Blue/green, provider side: create `node_group` as a clone of `clone_of` (instance
    /// types, scaling, subnets, labels, taints, AMI and capacity type, launch template,
    /// node role, tags) at `version`.
    CreateNodeGroup {
        node_group: String,
        clone_of: String,
        version: Version,
    },
    /// Blue/green, provider side: delete a node group (only once no pod but DaemonSet
    /// pods runs on it; the executor checks).
    DeleteNodeGroup { node_group: String },
    /// In the cluster: wait until `count` nodes of `node_group` are Ready at `minor`.
    WaitNodesReady {
        node_group: String,
        count: u32,
        minor: Minor,
    },
    /// In the cluster: cordon (or with `uncordon`, uncordon) every node of `node_group`.
    CordonNodeGroup {
        node_group: String,
        #[serde(default)]
        uncordon: bool,
    },
    /// In the cluster: drain every node of `node_group`, `batch_size` nodes at a time,
    /// waiting `batch_soak_secs` between batches.
    DrainNodeGroup {
        node_group: String,
        batch_size: u32,
        batch_soak_secs: u64,
    },
    /// Watch the workloads for `secs` (all Deployments/StatefulSets available, no pod
    /// Pending) before the old group is deleted.
    Soak { node_group: String, secs: u64 },
}

impl Action {
    /// Actions kup carries out itself through the Kubernetes API rather than by asking the
    /// provider.
    pub fn is_in_cluster(&self) -> bool {
        matches!(
            self,
            Action::WaitNodesReady { .. }
                | Action::CordonNodeGroup { .. }
                | Action::DrainNodeGroup { .. }
                | Action::Soak { .. }
        )
    }
}

impl Action {
    /// The resource inside the cluster this action touches, as used in addresses.
    pub fn resource(&self) -> String {
        match self {
            Action::UpgradeControlPlane { .. } => "control_plane".into(),
            Action::UpdateNodeGroupConfig { node_group, .. }
            | Action::UpgradeNodeGroup { node_group, .. } => format!("node_group.{node_group}"),
            Action::UpdateAddon { addon, .. } => format!("addon.{addon}"),
            Action::CreateNodeGroup { node_group, .. }
            | Action::DeleteNodeGroup { node_group }
            | Action::WaitNodesReady { node_group, .. }
            | Action::CordonNodeGroup { node_group, .. }
            | Action::DrainNodeGroup { node_group, .. }
            | Action::Soak { node_group, .. } => format!("node_group.{node_group}"),
        }
    }

    /// Does this action replace nodes (and so move pods)?
    pub fn is_disruptive(&self) -> bool {
        matches!(
            self,
            Action::UpgradeNodeGroup { .. }
                | Action::DrainNodeGroup { .. }
                | Action::DeleteNodeGroup { .. }
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Action::UpgradeControlPlane { from, to } => {
                format!("upgrade control plane {from} → {to}")
            }
            Action::UpdateNodeGroupConfig {
                node_group,
                from,
                max_unavailable,
            } => match from {
                Some(f) => {
                    format!("set node group {node_group} max_unavailable {f} → {max_unavailable}")
                }
                None => format!("set node group {node_group} max_unavailable = {max_unavailable}"),
            },
            Action::UpgradeNodeGroup {
                node_group,
                from,
                to,
                max_unavailable,
            } => format!(
                "roll node group {node_group} {from} → {to} (max_unavailable {max_unavailable})"
            ),
            Action::UpdateAddon { addon, from, to } => {
                format!("update add-on {addon} {from} → {to}")
            }
            Action::CreateNodeGroup {
                node_group,
                clone_of,
                version,
            } => format!(
                "create node group {node_group} at {version} (green, cloned from {clone_of})"
            ),
            Action::DeleteNodeGroup { node_group } => format!("delete node group {node_group}"),
            Action::WaitNodesReady {
                node_group,
                count,
                minor,
            } => format!("wait for {count} nodes of {node_group} Ready at {minor}"),
            Action::CordonNodeGroup {
                node_group,
                uncordon,
            } => {
                if *uncordon {
                    format!("uncordon every node of {node_group}")
                } else {
                    format!("cordon every node of {node_group}")
                }
            }
            Action::DrainNodeGroup {
                node_group,
                batch_size,
                ..
            } => format!("drain {node_group}, {batch_size} node(s) at a time"),
            Action::Soak { node_group, secs } => format!(
                "soak {} with workloads on {node_group}",
                humantime::format_duration(std::time::Duration::from_secs(*secs))
            ),
        }
    }
}

/// A fact about one cluster's actual state, checked by the executor before a step
/// (precondition: else the plan is stale) and after it (postcondition: done).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Condition {
    ControlPlaneAt {
        minor: Minor,
    },
    ControlPlaneAtLeast {
        minor: Minor,
    },
    NodeGroupAt {
        node_group: String,
        minor: Minor,
    },
    NodeGroupAtLeast {
        node_group: String,
        minor: Minor,
    },
    NodeGroupMaxUnavailable {
        node_group: String,
        max_unavailable: Unavailable,
    },
    AddonAt {
        addon: String,
        version: String,
    },
}

impl Condition {
    /// Whether the condition holds for this refreshed cluster.
    pub fn holds(&self, actual: &ActualCluster) -> bool {
        match self {
            Condition::ControlPlaneAt { minor } => actual.version.minor() == *minor,
            Condition::ControlPlaneAtLeast { minor } => actual.version.minor() >= *minor,
            Condition::NodeGroupAt { node_group, minor } => actual
                .node_group(node_group)
                .is_some_and(|n| n.version.minor() == *minor),
            Condition::NodeGroupAtLeast { node_group, minor } => actual
                .node_group(node_group)
                .is_some_and(|n| n.version.minor() >= *minor),
            Condition::NodeGroupMaxUnavailable {
                node_group,
                max_unavailable,
            } => actual
                .node_group(node_group)
                .is_some_and(|n| n.max_unavailable == Some(*max_unavailable)),
            Condition::AddonAt { addon, version } => {
                actual.addon(addon).is_some_and(|a| &a.version == version)
            }
        }
    }

    /// What the actual state shows instead, for error messages.
    pub fn observed(&self, actual: &ActualCluster) -> String {
        match self {
            Condition::ControlPlaneAt { .. } | Condition::ControlPlaneAtLeast { .. } => {
                format!("control plane is at {}", actual.version)
            }
            Condition::NodeGroupAt { node_group, .. }
            | Condition::NodeGroupAtLeast { node_group, .. }
            | Condition::NodeGroupMaxUnavailable { node_group, .. } => {
                match actual.node_group(node_group) {
                    Some(n) => format!(
                        "node group {node_group} is at {} with max_unavailable {}",
                        n.version,
                        n.max_unavailable
                            .map(|u| u.to_string())
                            .unwrap_or_else(|| "unset".into())
                    ),
                    None => format!("node group {node_group} does not exist"),
                }
            }
            Condition::AddonAt { addon, .. } => match actual.addon(addon) {
                Some(a) => format!("add-on {addon} is at {}", a.version),
                None => format!("add-on {addon} is not installed"),
            },
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::ControlPlaneAt { minor } => write!(f, "control plane at {minor}"),
            Condition::ControlPlaneAtLeast { minor } => {
                write!(f, "control plane at {minor} or newer")
            }
            Condition::NodeGroupAt { node_group, minor } => {
                write!(f, "node group {node_group} at {minor}")
            }
            Condition::NodeGroupAtLeast { node_group, minor } => {
                write!(f, "node group {node_group} at {minor} or newer")
            }
            Condition::NodeGroupMaxUnavailable {
                node_group,
                max_unavailable,
            } => write!(
                f,
                "node group {node_group} max_unavailable = {max_unavailable}"
            ),
            Condition::AddonAt { addon, version } => write!(f, "add-on {addon} at {version}"),
        }
    }
}

/// One node of the plan's DAG.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// Stable id, unique within the plan, e.g. `prod/control_plane/1.29`.
    pub id: String,
    /// Address of the cluster, e.g. `cluster.prod`.
    pub cluster: String,
    /// Full address of the touched resource, e.g. `cluster.prod.node_group.general`.
    pub address: String,
    pub action: Action,
    pub depends_on: Vec<String>,
    pub precondition: Vec<Condition>,
    pub postcondition: Vec<Condition>,
    pub estimated_secs: u64,
    /// Why the planner included this step.
    pub reason: String,
}

/// The state of one cluster's versions at a point of the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimelinePoint {
    /// The step that led here (`None` for the starting point).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_step: Option<String>,
    pub control_plane: Minor,
    pub node_groups: BTreeMap<String, Minor>,
}

/// One attribute-level difference between desired and actual, for the `~ + -` view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    pub address: String,
    pub attribute: String,
    pub from: String,
    pub to: String,
}

/// Everything the plan says about one cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterPlan {
    pub address: String,
    pub name: String,
    pub provider: String,
    pub from: Version,
    pub to: Version,
    pub changes: Vec<Change>,
    pub timeline: Vec<TimelinePoint>,
    /// Node groups the provider has that the configuration does not mention.
    #[serde(default)]
    pub unmanaged_node_groups: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A complete, deterministic upgrade plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    pub format_version: u32,
    /// Hash of the plan's content; seeds idempotency tokens.
    pub id: String,
    pub clusters: Vec<ClusterPlan>,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn new(clusters: Vec<ClusterPlan>, steps: Vec<Step>) -> Plan {
        let mut plan = Plan {
            format_version: PLAN_FORMAT_VERSION,
            id: String::new(),
            clusters,
            steps,
        };
        plan.id = sha256_hex(&serde_json::to_vec(&(&plan.clusters, &plan.steps)).unwrap())[..16]
            .to_string();
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// A token that is the same every time this step of this plan is issued, so a resumed
    /// apply that re-sends a request is recognised by the provider as the same request.
    pub fn idempotency_token(&self, step_id: &str) -> String {
        sha256_hex(format!("{}/{}", self.id, step_id).as_bytes())[..32].to_string()
    }

    pub fn estimated_secs(&self) -> u64 {
        self.steps.iter().map(|s| s.estimated_secs).sum()
    }
}

/// A plan written by `kup plan -out FILE`: the plan plus what it was computed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SavedPlan {
    pub kup_version: String,
    pub format_version: u32,
    pub created_at: String,
    /// Absolute path of the configuration directory.
    pub config_dir: String,
    /// Hash of every configuration and variable file's bytes plus CLI variables.
    pub config_hash: String,
    /// For each cluster address: fingerprint of the refreshed actual state planned from.
    pub state_fingerprints: BTreeMap<String, String>,
    /// The evaluated configuration (providers are needed to apply without the directory).
    pub desired: Desired,
    pub plan: Plan,
    /// SHA-256 over all fields above; a mismatch means the file was edited.
    pub integrity: String,
}

impl SavedPlan {
    pub fn seal(mut self) -> SavedPlan {
        self.integrity = self.compute_integrity();
        self
    }

    pub fn compute_integrity(&self) -> String {
        let mut copy = self.clone();
        copy.integrity = String::new();
        sha256_hex(&serde_json::to_vec(&copy).expect("plan serializes"))
    }

    pub fn verify_integrity(&self) -> bool {
        self.integrity == self.compute_integrity()
    }
}

/// Fingerprint of the parts of a refreshed cluster that planning depends on.
pub fn fingerprint(actual: &ActualCluster) -> String {
    let mut cloud = actual.clone();
    cloud.kube = None;
    sha256_hex(&serde_json::to_vec(&cloud).expect("actual serializes"))[..32].to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
