//! Plans as data: steps with pre/postconditions, the version timeline, and the saved-plan
//! envelope (config hash, refreshed-state fingerprints, integrity hash).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{ActualCluster, Desired, DrainLimits, NativeBlueGreen, Unavailable};
use crate::version::{Minor, Version};

/// Bumped whenever the plan format changes incompatibly.
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// One thing a provider is asked to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Move the control plane one minor up.
    UpgradeControlPlane { from: Version, to: Version },
    /// Change how a node group upgrades: how many nodes it may replace at once and, on a
    /// provider with its own blue/green upgrade, whether it uses it (`blue_green`) or surges.
    UpdateNodeGroupConfig {
        node_group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Unavailable>,
        max_unavailable: Unavailable,
        /// Also set the extra nodes added during an upgrade (`None`: leave it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_surge: Option<Unavailable>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blue_green: Option<NativeBlueGreen>,
        /// Also set the limits of the provider's own drains (`None`: leave them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drain_limits: Option<DrainLimits>,
        /// Also set the provider's wait after draining each node (`None`: leave it).
        #[serde(
            default,
            with = "crate::model::opt_duration",
            skip_serializing_if = "Option::is_none"
        )]
        #[schemars(with = "Option<String>")]
        node_soak: Option<std::time::Duration>,
    },
    /// Roll a node group's nodes to a new kubelet version. With `native`, the provider
    /// replaces the group blue/green by itself.
    UpgradeNodeGroup {
        node_group: String,
        from: Version,
        to: Version,
        max_unavailable: Unavailable,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        native: Option<NativeUpgrade>,
    },
    /// Undo a provider-native blue/green upgrade that has not finished: the old nodes
    /// serve again and the new ones are drained (respecting PodDisruptionBudgets) and
    /// removed.
    RollbackNodeGroupUpgrade { node_group: String },
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
        #[serde(default)]
        drain: crate::model::DrainSpec,
    },
    /// Watch the workloads for `secs` (all Deployments/StatefulSets available, no pod
    /// Pending) before the old group is deleted.
    Soak { node_group: String, secs: u64 },
    /// Remove the upgrade resources kup left in the cluster for this plan's rounds
    /// (K3s/RKE2: its system-upgrade-controller Plans), so the controller does not keep
    /// acting on nodes once kup is done.
    RemoveUpgradePlans,
    /// Check every host before anything changes (kubeadm: SSH, sudo, swap, the package
    /// manager and its pkgs.k8s.io repository, admin.conf, every node Ready).
    PrecheckHosts,
    /// Run the user's hook command on the machine running kup; a non-zero exit stops the
    /// plan here.
    RunHook {
        point: String,
        #[schemars(with = "Vec<String>")]
        command: crate::model::Argv,
        timeout_secs: u64,
        /// The hook's environment: KUP_HOOK, KUP_CLUSTER, KUP_CLUSTER_NAME, KUP_PROVIDER,
        /// KUP_FROM_VERSION, KUP_TO_VERSION, KUP_NODE_GROUP, KUBECONFIG.
        env: BTreeMap<String, String>,
    },
    /// In the cluster, after its last step: every node Ready and the planned node groups
    /// at their planned minor, every workload that was available when the plan was made
    /// available again, no pod Pending that was not before, and optionally a smoke pod
    /// that starts, runs and is removed.
    PostFlight {
        /// Node group (as the provider names it after the plan) → the minor its kubelets
        /// must run.
        node_groups: BTreeMap<String, Minor>,
        /// `namespace/Kind/name` of the Deployments and StatefulSets available before.
        available_before: Vec<String>,
        /// Pods Pending before, by owner (`namespace/ReplicaSet/name`) or name.
        pending_before: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        smoke_pod: Option<SmokePod>,
        /// How long workloads may take to become available again.
        timeout_secs: u64,
    },
    /// A wave of a rollout may start: the waves it follows have finished (every step of
    /// their clusters, post-flight included), then `soak_secs` have passed, and now is
    /// inside `window`. Until then apply stops here and says when to come back (or, with
    /// `-wait`, waits).
    WaveGate {
        rollout: String,
        wave: String,
        after: Vec<String>,
        soak_secs: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<crate::model::UpgradeWindow>,
        /// The wave's clusters (addresses), whose simulated clocks a soak follows.
        clusters: Vec<String>,
    },
}

/// The post-flight smoke pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SmokePod {
    pub namespace: String,
    pub image: String,
}

/// How kup follows a provider-native blue/green upgrade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NativeUpgrade {
    pub blue_green: NativeBlueGreen,
    /// Complete the upgrade early (skip the rest of the soak) once every node of the group
    /// is Ready and every workload available for this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_when_healthy_secs: Option<u64>,
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
                | Action::PostFlight { .. }
        )
    }
}

impl Action {
    /// The resource inside the cluster this action touches, as used in addresses.
    pub fn resource(&self) -> String {
        match self {
            Action::UpgradeControlPlane { .. } => "control_plane".into(),
            Action::UpdateNodeGroupConfig { node_group, .. }
            | Action::UpgradeNodeGroup { node_group, .. }
            | Action::RollbackNodeGroupUpgrade { node_group } => format!("node_group.{node_group}"),
            Action::UpdateAddon { addon, .. } => format!("addon.{addon}"),
            Action::CreateNodeGroup { node_group, .. }
            | Action::DeleteNodeGroup { node_group }
            | Action::WaitNodesReady { node_group, .. }
            | Action::CordonNodeGroup { node_group, .. }
            | Action::DrainNodeGroup { node_group, .. }
            | Action::Soak { node_group, .. } => format!("node_group.{node_group}"),
            Action::RemoveUpgradePlans => "upgrade_plans".into(),
            Action::PrecheckHosts => "hosts".into(),
            Action::RunHook { point, .. } => format!("hook.{point}"),
            Action::PostFlight { .. } => "postflight".into(),
            Action::WaveGate { wave, .. } => format!("wave.{wave}"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Action::UpgradeControlPlane { from, to } => {
                format!("upgrade control plane {from} → {to}")
            }
            Action::UpdateNodeGroupConfig {
                node_group,
                blue_green: Some(bg),
                drain_limits,
                ..
            } => format!(
                "set node group {node_group} to upgrade by {bg}{}",
                drain_limits
                    .as_ref()
                    .map(|l| format!(", drains with {l}"))
                    .unwrap_or_default()
            ),
            Action::UpdateNodeGroupConfig {
                node_group,
                from,
                max_unavailable,
                blue_green: None,
                drain_limits,
                max_surge,
                node_soak,
            } => {
                let drain = max_surge
                    .map(|s| format!(", max_surge {s}"))
                    .into_iter()
                    .chain(node_soak.map(|d| {
                        format!(", node soak {}", humantime::format_duration(d))
                    }))
                    .chain(drain_limits.as_ref().map(|l| format!(", drains with {l}")))
                    .collect::<String>();
                match from {
                    Some(f) if *f != *max_unavailable => format!(
                        "set node group {node_group} max_unavailable {f} → {max_unavailable}{drain}"
                    ),
                    _ => format!(
                        "set node group {node_group} max_unavailable = {max_unavailable}{drain}"
                    ),
                }
            }
            Action::UpgradeNodeGroup {
                node_group,
                from,
                to,
                native: Some(n),
                ..
            } => format!(
                "replace node group {node_group} {from} → {to} by the provider's blue/green upgrade (batches of {}, soak {})",
                n.blue_green.batch,
                humantime::format_duration(n.blue_green.soak)
            ),
            Action::UpgradeNodeGroup {
                node_group,
                from,
                to,
                max_unavailable,
                native: None,
            } => format!(
                "roll node group {node_group} {from} → {to} (max_unavailable {max_unavailable})"
            ),
            Action::RollbackNodeGroupUpgrade { node_group } => format!(
                "roll back the blue/green upgrade of node group {node_group} (old nodes serve again)"
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
            Action::RemoveUpgradePlans => {
                "remove kup's upgrade Plans (the controller stops acting on the nodes)".into()
            }
            Action::RunHook { point, command, .. } => {
                format!("run hook {point}: {command}")
            }
            Action::PrecheckHosts => {
                "pre-check every host (SSH, sudo, swap off, package manager and repository, admin.conf) and that every node is Ready".into()
            }
            Action::WaveGate {
                wave,
                after,
                soak_secs,
                window,
                ..
            } => {
                let mut s = format!("start wave {wave}");
                if !after.is_empty() {
                    s.push_str(&format!(" once {} finished", after.join(", ")));
                    if *soak_secs > 0 {
                        s.push_str(&format!(
                            " and soaked {}",
                            humantime::format_duration(std::time::Duration::from_secs(*soak_secs))
                        ));
                    }
                }
                if let Some(w) = window {
                    s.push_str(&format!(
                        ", inside {} {}–{} {}",
                        w.days.join(", "),
                        w.start,
                        w.end,
                        w.time_zone.as_deref().unwrap_or("UTC")
                    ));
                }
                s
            }
            Action::PostFlight {
                node_groups,
                available_before,
                smoke_pod,
                ..
            } => format!(
                "post-flight: every node Ready{}, {} workload(s) available as before, no new Pending pods{}",
                if node_groups.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {}",
                        node_groups
                            .iter()
                            .map(|(g, m)| format!("{g} at {m}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                available_before.len(),
                if smoke_pod.is_some() { ", a smoke pod runs" } else { "" }
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
    /// The control plane runs this exact release or a newer one (patch upgrades).
    ControlPlaneAtLeastVersion {
        version: Version,
    },
    /// Every node of the group runs this exact release or a newer one (providers that
    /// move kubelets to exact releases: K3s, kubeadm).
    NodeGroupAtLeastVersion {
        node_group: String,
        version: Version,
    },
    /// No upgrade Plan kup created is left in the cluster.
    NoUpgradePlans,
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
    /// The group upgrades by the provider's blue/green with these settings (`Some`), or
    /// by surge (`None`).
    NodeGroupUpgradeStrategy {
        node_group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blue_green: Option<NativeBlueGreen>,
    },
    /// The provider waits this long after draining each node.
    NodeGroupNodeSoak {
        node_group: String,
        secs: u64,
    },
    /// The provider adds this many extra nodes during an upgrade.
    NodeGroupMaxSurge {
        node_group: String,
        max_surge: Unavailable,
    },
    /// The provider drains the group's nodes with these limits.
    NodeGroupDrainLimits {
        node_group: String,
        limits: DrainLimits,
    },
    /// No provider-native blue/green upgrade of the group is under way.
    NodeGroupNotUpgrading {
        node_group: String,
    },
    AddonAt {
        addon: String,
        version: String,
    },
    NodeGroupExists {
        node_group: String,
    },
    NodeGroupAbsent {
        node_group: String,
    },
    /// At least `count` nodes of the group are Ready with a kubelet at `minor` (needs the
    /// Kubernetes API).
    NodesReady {
        node_group: String,
        count: u32,
        minor: Minor,
    },
    /// Every node of the group is cordoned (or, with `cordoned: false`, none is).
    NodeGroupCordoned {
        node_group: String,
        cordoned: bool,
    },
    /// No pod but DaemonSet, mirror or finished pods runs on the group's nodes.
    NodeGroupDrained {
        node_group: String,
    },
    /// Never true: the step counts as done only when the journal says so (a soak).
    JournalOnly,
}

impl Condition {
    /// Whether the condition holds for this refreshed cluster.
    pub fn holds(&self, actual: &ActualCluster) -> bool {
        match self {
            Condition::ControlPlaneAt { minor } => actual.version.minor() == *minor,
            Condition::ControlPlaneAtLeast { minor } => actual.version.minor() >= *minor,
            Condition::ControlPlaneAtLeastVersion { version } => {
                actual.version.minor() > version.minor() || actual.version >= *version
            }
            Condition::NodeGroupAtLeastVersion {
                node_group,
                version,
            } => actual
                .node_group(node_group)
                .is_some_and(|n| n.version.minor() > version.minor() || n.version >= *version),
            Condition::NoUpgradePlans => actual.upgrade_plans.is_empty(),
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
            Condition::NodeGroupUpgradeStrategy {
                node_group,
                blue_green,
            } => actual
                .node_group(node_group)
                .is_some_and(|n| n.blue_green == *blue_green),
            Condition::NodeGroupNotUpgrading { node_group } => actual
                .node_group(node_group)
                .is_some_and(|n| n.upgrade_phase.is_none()),
            Condition::NodeGroupDrainLimits { node_group, limits } => actual
                .node_group(node_group)
                .is_some_and(|n| n.drain_limits.as_ref() == Some(limits)),
            Condition::NodeGroupMaxSurge {
                node_group,
                max_surge,
            } => actual
                .node_group(node_group)
                .is_some_and(|n| n.max_surge == Some(*max_surge)),
            Condition::NodeGroupNodeSoak { node_group, secs } => actual
                .node_group(node_group)
                .is_some_and(|n| n.node_soak.map(|d| d.as_secs()) == Some(*secs)),
            Condition::AddonAt { addon, version } => {
                actual.addon(addon).is_some_and(|a| &a.version == version)
            }
            Condition::NodeGroupExists { node_group } => actual.node_group(node_group).is_some(),
            Condition::NodeGroupAbsent { node_group } => actual.node_group(node_group).is_none(),
            Condition::NodesReady {
                node_group,
                count,
                minor,
            } => actual.kube.as_ref().is_some_and(|k| {
                k.nodes_of_group(node_group)
                    .filter(|n| n.ready && n.kubelet_version.minor() == *minor)
                    .count()
                    >= *count as usize
            }),
            Condition::NodeGroupCordoned {
                node_group,
                cordoned,
            } => actual.kube.as_ref().is_some_and(|k| {
                k.nodes_of_group(node_group)
                    .all(|n| n.unschedulable == *cordoned)
            }),
            Condition::NodeGroupDrained { node_group } => actual.kube.as_ref().is_some_and(|k| {
                k.nodes_of_group(node_group).all(|n| {
                    k.pods_on(&n.name)
                        .all(|p| p.is_daemonset() || p.is_mirror || p.is_finished())
                })
            }),
            Condition::JournalOnly => false,
        }
    }

    /// What the actual state shows instead, for error messages.
    pub fn observed(&self, actual: &ActualCluster) -> String {
        match self {
            Condition::ControlPlaneAt { .. }
            | Condition::ControlPlaneAtLeast { .. }
            | Condition::ControlPlaneAtLeastVersion { .. } => {
                format!("control plane is at {}", actual.version)
            }
            Condition::NodeGroupAtLeastVersion { node_group, .. } => {
                match actual.node_group(node_group) {
                    Some(n) => format!("node group {node_group} is at {}", n.version),
                    None => format!("node group {node_group} does not exist"),
                }
            }
            Condition::NoUpgradePlans => {
                format!(
                    "kup's Plans are still there: {}",
                    actual.upgrade_plans.join(", ")
                )
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
            Condition::NodeGroupNodeSoak { node_group, .. } => {
                match actual.node_group(node_group) {
                    Some(n) => format!(
                        "node group {node_group} soaks {} after each node",
                        n.node_soak
                            .map(|d| humantime::format_duration(d).to_string())
                            .unwrap_or_else(|| "unset".into())
                    ),
                    None => format!("node group {node_group} does not exist"),
                }
            }
            Condition::NodeGroupMaxSurge { node_group, .. } => {
                match actual.node_group(node_group) {
                    Some(n) => format!(
                        "node group {node_group} has max_surge {}",
                        n.max_surge
                            .map(|u| u.to_string())
                            .unwrap_or_else(|| "unset".into())
                    ),
                    None => format!("node group {node_group} does not exist"),
                }
            }
            Condition::NodeGroupDrainLimits { node_group, .. } => {
                match actual.node_group(node_group) {
                    Some(n) => format!(
                        "node group {node_group} drains with {}",
                        n.drain_limits
                            .as_ref()
                            .map(|l| l.to_string())
                            .unwrap_or_else(|| "the provider's default limits".into())
                    ),
                    None => format!("node group {node_group} does not exist"),
                }
            }
            Condition::NodeGroupUpgradeStrategy { node_group, .. }
            | Condition::NodeGroupNotUpgrading { node_group } => {
                match actual.node_group(node_group) {
                    Some(n) => format!(
                        "node group {node_group} upgrades by {}{}",
                        n.blue_green
                            .as_ref()
                            .map(|b| b.to_string())
                            .unwrap_or_else(|| "surge".into()),
                        n.upgrade_phase
                            .as_ref()
                            .map(|p| format!(", with an upgrade in phase {p}"))
                            .unwrap_or_default()
                    ),
                    None => format!("node group {node_group} does not exist"),
                }
            }
            Condition::AddonAt { addon, .. } => match actual.addon(addon) {
                Some(a) => format!("add-on {addon} is at {}", a.version),
                None => format!("add-on {addon} is not installed"),
            },
            Condition::NodeGroupExists { node_group }
            | Condition::NodeGroupAbsent { node_group } => match actual.node_group(node_group) {
                Some(n) => format!(
                    "node group {node_group} exists ({}, {})",
                    n.version, n.status
                ),
                None => format!("node group {node_group} does not exist"),
            },
            Condition::NodesReady { node_group, .. }
            | Condition::NodeGroupCordoned { node_group, .. }
            | Condition::NodeGroupDrained { node_group } => match &actual.kube {
                None => "the cluster's Kubernetes API could not be read".into(),
                Some(k) => {
                    let nodes: Vec<String> = k
                        .nodes_of_group(node_group)
                        .map(|n| {
                            let pods = k
                                .pods_on(&n.name)
                                .filter(|p| !(p.is_daemonset() || p.is_mirror || p.is_finished()))
                                .count();
                            format!(
                                "{} ({}, {}{}, {pods} pods)",
                                n.name,
                                n.kubelet_version,
                                if n.ready { "Ready" } else { "NotReady" },
                                if n.unschedulable { ", cordoned" } else { "" }
                            )
                        })
                        .collect();
                    if nodes.is_empty() {
                        format!("node group {node_group} has no nodes")
                    } else {
                        format!("node group {node_group} nodes: {}", nodes.join("; "))
                    }
                }
            },
            Condition::JournalOnly => "the journal does not record it as done".into(),
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
            Condition::ControlPlaneAtLeastVersion { version } => {
                write!(f, "control plane at {version} or newer")
            }
            Condition::NodeGroupAtLeastVersion {
                node_group,
                version,
            } => write!(f, "node group {node_group} at {version} or newer"),
            Condition::NoUpgradePlans => write!(f, "no upgrade Plan of kup's left"),
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
            Condition::NodeGroupUpgradeStrategy {
                node_group,
                blue_green: Some(bg),
            } => write!(f, "node group {node_group} upgrades by {bg}"),
            Condition::NodeGroupUpgradeStrategy {
                node_group,
                blue_green: None,
            } => write!(f, "node group {node_group} upgrades by surge"),
            Condition::NodeGroupNotUpgrading { node_group } => {
                write!(
                    f,
                    "no blue/green upgrade of node group {node_group} under way"
                )
            }
            Condition::NodeGroupDrainLimits { node_group, limits } => {
                write!(f, "node group {node_group} drains with {limits}")
            }
            Condition::NodeGroupMaxSurge {
                node_group,
                max_surge,
            } => write!(f, "node group {node_group} max_surge = {max_surge}"),
            Condition::NodeGroupNodeSoak { node_group, secs } => write!(
                f,
                "node group {node_group} soaks {} after each node",
                humantime::format_duration(std::time::Duration::from_secs(*secs))
            ),
            Condition::AddonAt { addon, version } => write!(f, "add-on {addon} at {version}"),
            Condition::NodeGroupExists { node_group } => {
                write!(f, "node group {node_group} exists")
            }
            Condition::NodeGroupAbsent { node_group } => {
                write!(f, "node group {node_group} does not exist")
            }
            Condition::NodesReady {
                node_group,
                count,
                minor,
            } => write!(f, "{count} nodes of {node_group} Ready at {minor}"),
            Condition::NodeGroupCordoned {
                node_group,
                cordoned,
            } => {
                if *cordoned {
                    write!(f, "every node of {node_group} cordoned")
                } else {
                    write!(f, "no node of {node_group} cordoned")
                }
            }
            Condition::NodeGroupDrained { node_group } => {
                write!(f, "no pod but DaemonSet pods left on {node_group}")
            }
            Condition::JournalOnly => write!(f, "recorded as done in the journal"),
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

/// A PodDisruptionBudget that will not let a drain of this plan evict anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BlockedDrain {
    pub node_group: String,
    /// `namespace/name`.
    pub pdb: String,
    pub reason: String,
    /// `namespace/pod on node`.
    pub pods: Vec<String>,
    /// True unless the node group opted to wait (`drain { on_blocked = "wait" }`);
    /// `kup apply` refuses a plan with a blocking drain unless `-allow-blocked-drain`.
    pub blocking: bool,
}

/// A batch whose evicted pods will not fit on the nodes left.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CapacityShortfall {
    pub node_group: String,
    pub nodes: Vec<String>,
    pub needed: crate::kube::Resources,
    pub free: crate::kube::Resources,
    pub short: crate::kube::Resources,
}

/// Nodes of one group as the Kubernetes API shows them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupNodes {
    pub nodes: u32,
    pub ready: u32,
    pub kubelets: Vec<String>,
    pub pods: u32,
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
    /// What the pre-flight checks found (errors that block are plan errors instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<crate::preflight::Finding>,
    /// Nodes per node group, when the Kubernetes API could be read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, GroupNodes>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_drains: Vec<BlockedDrain>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity: Vec<CapacityShortfall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned_pods: Vec<PinnedPods>,
}

/// Pods that select the old group by its name (`nodeSelector`): a kup-driven blue/green
/// replacement can never move them to the new group, so its drain would never finish.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PinnedPods {
    pub node_group: String,
    pub new_group: String,
    /// `key=value` of the selector that names the old group.
    pub selector: String,
    /// `namespace/pod on node`.
    pub pods: Vec<String>,
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

    /// A token that is the same every time this step is issued within one run (`run_id`
    /// is journaled before anything is issued, and a resumed run keeps it), so a re-sent
    /// request is recognised by the provider as the same request. A new run gets new
    /// tokens: after a failed update the provider must accept a fresh attempt rather than
    /// replay the failure.
    pub fn idempotency_token(&self, run_id: &str, step_id: &str) -> String {
        sha256_hex(format!("{}/{run_id}/{step_id}", self.id).as_bytes())[..32].to_string()
    }

    /// Check the DAG: unique step ids, dependencies that exist, no cycle. Plans come
    /// from files and journals, so this is checked before anything runs.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.steps {
            if !seen.insert(s.id.as_str()) {
                return Err(format!("step id {} appears twice", s.id));
            }
        }
        for s in &self.steps {
            if let Some(d) = s.depends_on.iter().find(|d| !seen.contains(d.as_str())) {
                return Err(format!(
                    "step {} depends on {d}, which is not in the plan",
                    s.id
                ));
            }
        }
        // Kahn's algorithm: every step must become ready.
        let mut remaining: BTreeMap<&str, usize> = self
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.depends_on.len()))
            .collect();
        let mut ready: Vec<&str> = remaining
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(id, _)| *id)
            .collect();
        let mut done = 0;
        while let Some(id) = ready.pop() {
            done += 1;
            for s in self
                .steps
                .iter()
                .filter(|s| s.depends_on.iter().any(|d| d == id))
            {
                let n = remaining.get_mut(s.id.as_str()).expect("known");
                *n -= 1;
                if *n == 0 {
                    ready.push(&s.id);
                }
            }
        }
        if done != self.steps.len() {
            return Err("the steps' dependencies form a cycle".into());
        }
        Ok(())
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

    /// Read from a file or the journal, the plan holds no sensitive value: some hook
    /// arguments must be given again before it can run.
    pub fn needs_sensitive_values(&self) -> bool {
        self.plan
            .steps
            .iter()
            .any(|s| matches!(&s.action, Action::RunHook { command, .. } if !command.is_filled()))
    }

    /// Fill in the sensitive hook arguments from `desired`, the configuration evaluated
    /// again (a hook step's id ends in `/hook/POINT/N`: the cluster's Nth hook at POINT).
    pub fn fill_sensitive(&mut self, desired: &Desired) -> Result<(), String> {
        for step in &mut self.plan.steps {
            let Action::RunHook { point, command, .. } = &mut step.action else {
                continue;
            };
            if command.is_filled() {
                continue;
            }
            let n: Option<usize> = step
                .id
                .rsplit_once(&format!("/hook/{point}/"))
                .and_then(|(_, n)| n.parse().ok());
            let spec = desired
                .clusters
                .iter()
                .find(|c| c.address() == step.cluster)
                .and_then(|c| n.and_then(|n| c.hooks.iter().filter(|h| h.point == *point).nth(n)))
                .ok_or_else(|| {
                    format!(
                        "step {}: the configuration no longer has this hook, so its sensitive arguments cannot be given again; make a new plan",
                        step.id
                    )
                })?;
            command.fill(&spec.command).map_err(|e| {
                format!(
                    "step {}: the hook changed since the plan was made ({e}); make a new plan",
                    step.id
                )
            })?;
        }
        Ok(())
    }
}

/// Fingerprint of the parts of a refreshed cluster that a plan depends on: versions,
/// rolling settings, add-on versions, the set of node groups and operations in flight.
/// Sizes, health, platform versions and catalogs change on their own (autoscalers, new
/// builds) and do not make a plan stale; the executor's per-step preconditions still
/// guard every step.
pub fn fingerprint(actual: &ActualCluster) -> String {
    let view = serde_json::json!({
        "version": actual.version.minor().to_string(),
        "node_groups": actual
            .node_groups
            .iter()
            .map(|n| (n.name.as_str(), n.version.minor().to_string(), n.max_unavailable.map(|u| u.to_string())))
            .collect::<Vec<_>>(),
        "addons": actual
            .addons
            .iter()
            .map(|a| (a.name.as_str(), a.version.as_str()))
            .collect::<Vec<_>>(),
        "in_flight": actual
            .in_flight
            .iter()
            .map(|o| (o.resource.as_str(), o.kind.as_str(), o.target.as_deref()))
            .collect::<Vec<_>>(),
    });
    sha256_hex(view.to_string().as_bytes())[..32].to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod fingerprint_tests {
    use super::*;
    use crate::model::ActualNodeGroup;

    fn cluster() -> ActualCluster {
        ActualCluster {
            scan: None,
            insights: Vec::new(),
            upgrade_protection: None,
            support: Vec::new(),
            api_uses: Vec::new(),
            upgrade_plans: Vec::new(),
            name: "c".into(),
            region: None,
            version: "1.29".parse().unwrap(),
            platform_version: Some("eks.1".into()),
            status: "ACTIVE".into(),
            offered_versions: vec![],
            node_groups: vec![ActualNodeGroup {
                control_plane: false,
                name: "g".into(),
                version: "1.29".parse().unwrap(),
                release_version: None,
                status: "ACTIVE".into(),
                desired_size: 3,
                min_size: 1,
                max_size: 9,
                max_unavailable: Some(Unavailable::Count(1)),
                health_issues: vec![],
                labels: Default::default(),
                blue_green: None,
                upgrade_phase: None,
                drain_limits: None,
                max_surge: None,
                node_soak: None,
            }],
            addons: vec![],
            in_flight: vec![],
            kube: None,
            auto_upgrade: None,
            default_version: None,
            maintenance: None,
        }
    }

    #[test]
    fn autoscaling_and_platform_bumps_do_not_make_a_plan_stale_but_versions_do() {
        let a = cluster();
        let mut b = cluster();
        b.node_groups[0].desired_size = 7;
        b.platform_version = Some("eks.9".into());
        b.status = "UPDATING".into();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.node_groups[0].version = "1.30".parse().unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&b));
        let mut c = cluster();
        c.node_groups[0].max_unavailable = Some(Unavailable::Count(3));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
