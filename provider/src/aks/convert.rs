//! The AKS resources kup reads, typed for exactly the fields it needs (written from the
//! 2026-10-01 managedClusters.json), and their conversion to kup's model.

use std::collections::BTreeMap;
use std::time::Duration;

use kup_engine::model::{ActualNodeGroup, DrainLimits, InFlightOperation, Unavailable};
use kup_engine::provider::Progress;
use kup_engine::Version;
use serde::Deserialize;
use serde_json::Value;

use crate::OperationStatus;

/// The label AKS puts on every node of an agent pool.
pub const AGENT_POOL_LABEL: &str = "kubernetes.azure.com/agentpool";
/// The node label AKS sets to the pool's mode; kup also carries it in the group's labels.
pub const MODE_LABEL: &str = "kubernetes.azure.com/mode";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCluster {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub properties: ClusterProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProperties {
    #[serde(default)]
    pub provisioning_state: String,
    #[serde(default)]
    pub kubernetes_version: String,
    #[serde(default)]
    pub current_kubernetes_version: String,
    #[serde(default)]
    pub auto_upgrade_profile: Option<AutoUpgradeProfile>,
    #[serde(default)]
    pub upgrade_settings: Option<ClusterUpgradeSettings>,
}

/// `ClusterUpgradeSettings`: only its override of AKS's upgrade protection.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterUpgradeSettings {
    #[serde(default)]
    pub override_settings: Option<UpgradeOverrideSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeOverrideSettings {
    #[serde(default)]
    pub force_upgrade: Option<bool>,
    #[serde(default)]
    pub until: Option<String>,
}

/// AKS checks for deprecated API usage before every upgrade unless `forceUpgrade` is set
/// (and `until` is in the future); kup reports which.
pub fn upgrade_protection(c: &ManagedCluster) -> kup_engine::preflight::UpgradeProtection {
    let o = c
        .properties
        .upgrade_settings
        .as_ref()
        .and_then(|u| u.override_settings.as_ref());
    kup_engine::preflight::UpgradeProtection {
        force_upgrade: o.and_then(|o| o.force_upgrade).unwrap_or(false),
        until: o.and_then(|o| o.until.clone()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoUpgradeProfile {
    #[serde(default)]
    pub upgrade_channel: Option<String>,
    #[serde(default, rename = "nodeOSUpgradeChannel")]
    pub node_os_upgrade_channel: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPool {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: AgentPoolProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolProperties {
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub enable_auto_scaling: Option<bool>,
    #[serde(default)]
    pub min_count: Option<u32>,
    #[serde(default)]
    pub max_count: Option<u32>,
    #[serde(default)]
    pub provisioning_state: String,
    #[serde(default)]
    pub orchestrator_version: Option<String>,
    #[serde(default)]
    pub current_orchestrator_version: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub node_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub upgrade_settings: Option<UpgradeSettings>,
    #[serde(default)]
    pub status: Option<PoolStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeSettings {
    #[serde(default)]
    pub max_surge: Option<String>,
    #[serde(default)]
    pub max_unavailable: Option<String>,
    #[serde(default)]
    pub drain_timeout_in_minutes: Option<u64>,
    #[serde(default)]
    pub node_soak_duration_in_minutes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    #[serde(default)]
    pub provisioning_error: Option<ArmErrorBody>,
}

#[derive(Debug, Default, Deserialize, Clone)]
pub struct ArmErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// `GET …/locations/{l}/kubernetesVersions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesVersionList {
    #[serde(default)]
    pub values: Vec<KubernetesVersion>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesVersion {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub is_default: Option<bool>,
    #[serde(default)]
    pub is_preview: Option<bool>,
    #[serde(default)]
    pub patch_versions: BTreeMap<String, Value>,
}

/// The ARM async-operation status resource.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncOperation {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub percent_complete: Option<f64>,
    #[serde(default)]
    pub error: Option<ArmErrorBody>,
}

/// ARM's terminal provisioning states; anything else is still moving.
pub fn is_terminal(state: &str) -> bool {
    matches!(
        state.to_ascii_lowercase().as_str(),
        "succeeded" | "failed" | "canceled" | "cancelled" | ""
    )
}

/// `"33%"` or `"2"` as kup's [`Unavailable`].
pub fn parse_unavailable(s: &str) -> Option<Unavailable> {
    let s = s.trim();
    match s.strip_suffix('%') {
        Some(p) => p.trim().parse().ok().map(Unavailable::Percent),
        None => s.parse().ok().map(Unavailable::Count),
    }
}

/// kup's [`Unavailable`] as AKS writes it: `"2"` or `"33%"`.
pub fn unavailable_string(u: Unavailable) -> String {
    match u {
        Unavailable::Count(n) => n.to_string(),
        Unavailable::Percent(p) => format!("{p}%"),
    }
}

fn parse_version(s: &str, what: &str) -> Result<Version, String> {
    s.parse()
        .map_err(|e| format!("AKS reported {what} `{s}`, which kup cannot read: {e}"))
}

pub fn is_system(p: &AgentPoolProperties) -> bool {
    p.mode
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("system"))
}

/// An agent pool as a kup node group. The version is the one the nodes run
/// (`currentOrchestratorVersion`): after a stopped upgrade `orchestratorVersion` already
/// names the target.
pub fn node_group(p: &AgentPool) -> Result<ActualNodeGroup, String> {
    let props = &p.properties;
    let raw = props
        .current_orchestrator_version
        .as_deref()
        .or(props.orchestrator_version.as_deref())
        .unwrap_or_default();
    let version = parse_version(raw, &format!("agent pool `{}` at version", p.name))?;
    let count = props.count.unwrap_or(0);
    let (min_size, max_size) = if props.enable_auto_scaling.unwrap_or(false) {
        (
            props.min_count.unwrap_or(count),
            props.max_count.unwrap_or(count),
        )
    } else {
        (count, count)
    };
    let us = props.upgrade_settings.as_ref();
    let mut labels = props.node_labels.clone();
    labels.insert(
        MODE_LABEL.to_string(),
        if is_system(props) { "system" } else { "user" }.to_string(),
    );
    let mut health_issues = Vec::new();
    if let Some(e) = props
        .status
        .as_ref()
        .and_then(|s| s.provisioning_error.as_ref())
    {
        health_issues.push(format!("{}: {}", e.code, e.message));
    }
    Ok(ActualNodeGroup {
        control_plane: false,
        name: p.name.clone(),
        version,
        release_version: None,
        status: props.provisioning_state.clone(),
        desired_size: count,
        min_size,
        max_size,
        // AKS refuses maxUnavailable on System pools: reporting none keeps kup from
        // planning a change AKS would reject (System pools surge only).
        max_unavailable: if is_system(props) {
            None
        } else {
            Some(
                us.and_then(|u| u.max_unavailable.as_deref())
                    .and_then(parse_unavailable)
                    .unwrap_or(Unavailable::Count(0)),
            )
        },
        max_surge: Some(
            us.and_then(|u| u.max_surge.as_deref())
                .and_then(parse_unavailable)
                // The API's documented default.
                .unwrap_or(Unavailable::Percent(10)),
        ),
        health_issues,
        labels,
        blue_green: None,
        upgrade_phase: None,
        drain_limits: us
            .and_then(|u| u.drain_timeout_in_minutes)
            .map(|m| DrainLimits {
                pdb_timeout: Some(Duration::from_secs(m * 60)),
                grace_termination: None,
            }),
        node_soak: Some(Duration::from_secs(
            us.and_then(|u| u.node_soak_duration_in_minutes)
                .unwrap_or(0)
                * 60,
        )),
    })
}

/// Every version AKS offers in the location (each minor's patches), sorted.
pub fn offered_versions(list: &KubernetesVersionList) -> Vec<Version> {
    let mut out: Vec<Version> = list
        .values
        .iter()
        .filter(|v| !v.is_preview.unwrap_or(false))
        .flat_map(|v| {
            let patches: Vec<Version> = v
                .patch_versions
                .keys()
                .filter_map(|p| p.parse().ok())
                .collect();
            if patches.is_empty() {
                v.version.parse().ok().into_iter().collect()
            } else {
                patches
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The newest patch of the minor AKS marks default (what `version = "-"` means).
pub fn default_version(list: &KubernetesVersionList) -> Option<Version> {
    let d = list.values.iter().find(|v| v.is_default == Some(true))?;
    d.patch_versions
        .keys()
        .filter_map(|p| p.parse::<Version>().ok())
        .max()
        .or_else(|| d.version.parse().ok())
}

/// What AKS does to the cluster by itself: auto-upgrade and node OS channels.
pub fn auto_upgrade(c: &ManagedCluster) -> Option<String> {
    let p = c.properties.auto_upgrade_profile.as_ref()?;
    let mut parts = Vec::new();
    if let Some(ch) = p
        .upgrade_channel
        .as_deref()
        .filter(|c| !c.eq_ignore_ascii_case("none"))
    {
        parts.push(format!(
            "auto-upgrade channel {ch} upgrades this cluster automatically"
        ));
    }
    if let Some(ch) = p
        .node_os_upgrade_channel
        .as_deref()
        .filter(|c| !c.eq_ignore_ascii_case("none") && !c.eq_ignore_ascii_case("unmanaged"))
    {
        parts.push(format!(
            "node OS upgrade channel {ch} replaces node images automatically"
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Resources whose provisioning state says an operation is running, as in-flight
/// operations (AKS lists no operations; kup follows the resource instead).
pub fn in_flight(
    cluster_path: &str,
    c: &ManagedCluster,
    pools: &[AgentPool],
) -> Vec<InFlightOperation> {
    let mut out = Vec::new();
    if !is_terminal(&c.properties.provisioning_state) {
        out.push(InFlightOperation {
            id: state_op_id(cluster_path),
            resource: "control_plane".into(),
            kind: c.properties.provisioning_state.clone(),
            target: Some(c.properties.kubernetes_version.clone()),
        });
    }
    for p in pools {
        if !is_terminal(&p.properties.provisioning_state) {
            out.push(InFlightOperation {
                id: state_op_id(&format!("{cluster_path}/agentPools/{}", p.name)),
                resource: format!("node_group.{}", p.name),
                kind: p.properties.provisioning_state.clone(),
                target: p.properties.orchestrator_version.clone(),
            });
        }
    }
    out
}

/// An operation id that follows a resource's provisioningState (used when kup finds a
/// change already running and has no operation URL for it).
pub const STATE_PREFIX: &str = "provisioningState:";

/// An operation id that is a `Location` URL: running while it answers 202.
pub const LOCATION_PREFIX: &str = "location:";

pub fn state_op_id(resource_path: &str) -> String {
    format!("{STATE_PREFIX}{resource_path}")
}

/// The async-operation status resource as an [`OperationStatus`].
pub fn operation_status(op: &AsyncOperation) -> OperationStatus {
    match op.status.to_ascii_lowercase().as_str() {
        "succeeded" => OperationStatus::Succeeded,
        "failed" => {
            let e = op.error.clone().unwrap_or_default();
            OperationStatus::Failed {
                code: if e.code.is_empty() {
                    "Failed".into()
                } else {
                    e.code
                },
                message: if e.message.is_empty() {
                    "the operation failed without a message".into()
                } else {
                    e.message
                },
            }
        }
        "canceled" | "cancelled" => OperationStatus::Cancelled {
            message: op
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "the operation was canceled".into()),
        },
        _ => OperationStatus::InProgress(Progress {
            stage: op
                .percent_complete
                .filter(|p| *p > 0.0)
                .map(|p| format!("{p:.0}% complete")),
            ..Progress::default()
        }),
    }
}

/// A resource's provisioning state as an [`OperationStatus`] (for `provisioningState:` ids).
pub fn state_status(state: &str, error: Option<&ArmErrorBody>) -> OperationStatus {
    match state.to_ascii_lowercase().as_str() {
        "succeeded" | "" => OperationStatus::Succeeded,
        "failed" => OperationStatus::Failed {
            code: error
                .map(|e| e.code.clone())
                .unwrap_or_else(|| "Failed".into()),
            message: error
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "the resource's provisioning state is Failed".into()),
        },
        "canceled" | "cancelled" => OperationStatus::Cancelled {
            message: "the resource's provisioning state is Canceled".into(),
        },
        other => OperationStatus::InProgress(Progress {
            stage: Some(other.to_string()),
            ..Progress::default()
        }),
    }
}

/// The exact version to send for a node pool upgrade to `to`: the control plane's own
/// version when it is of that minor (a pool can never be ahead of it), else the newest
/// offered patch of that minor not newer than the control plane.
pub fn pool_version(to: &Version, control_plane: &Version, offered: &[Version]) -> String {
    if to.patch.is_some() {
        return to.to_string();
    }
    if control_plane.minor() == to.minor() {
        return control_plane.to_string();
    }
    offered
        .iter()
        .filter(|v| v.minor() == to.minor() && *v <= control_plane)
        .max()
        .map(|v| v.to_string())
        .unwrap_or_else(|| to.to_string())
}

/// Agent-pool properties that describe one pool's current state rather than its desired
/// shape. They are never sent back: `nodeImageVersion` in particular is writable, and
/// setting it rolls the pool's node image back (per the 2026-10-01 spec).
const POOL_READ_ONLY: &[&str] = &[
    "nodeImageVersion",
    "currentOrchestratorVersion",
    "provisioningState",
    "powerState",
    "status",
    "eTag",
    "creationData",
];

/// Remove read-only and state-bearing fields from an agent pool's `properties` (or a
/// cluster's `agentPoolProfiles` entry) before it is PUT back.
pub fn strip_pool(props: &mut Value) {
    if let Some(m) = props.as_object_mut() {
        for k in POOL_READ_ONLY {
            m.remove(*k);
        }
    }
}

/// A managed cluster as read, made fit to PUT back: pool profiles without their state, and
/// without the service principal profile, whose secret ARM never returns (`az aks upgrade`
/// leaves it out for the same reason).
pub fn strip_cluster(body: &mut Value) {
    let props = &mut body["properties"];
    if let Some(m) = props.as_object_mut() {
        for k in [
            "provisioningState",
            "powerState",
            "servicePrincipalProfile",
            "currentKubernetesVersion",
        ] {
            m.remove(k);
        }
    }
    if let Some(pools) = props["agentPoolProfiles"].as_array_mut() {
        for p in pools {
            strip_pool(p);
        }
    }
}

/// The agent pool body for a green clone of `blue` at `version`: every property of the
/// blue pool (size, zones, labels, taints, mode, kubelet and OS config, encryption, …)
/// except those that describe the blue pool's own state.
pub fn clone_pool(blue: &Value, version: &str) -> Value {
    let mut props = blue["properties"].clone();
    if !props.is_object() {
        props = Value::Object(Default::default());
    }
    strip_pool(&mut props);
    props["orchestratorVersion"] = Value::String(version.to_string());
    serde_json::json!({ "properties": props })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(v: Value) -> AgentPool {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn agent_pools_become_node_groups() {
        let user = pool(json!({"name": "apps", "properties": {
            "count": 4, "mode": "User", "provisioningState": "Succeeded",
            "orchestratorVersion": "1.31.2", "currentOrchestratorVersion": "1.30.5",
            "nodeLabels": {"team": "web"},
            "upgradeSettings": {"maxSurge": "33%", "maxUnavailable": "1", "drainTimeoutInMinutes": 45}
        }}));
        let g = node_group(&user).unwrap();
        assert_eq!(g.version.to_string(), "1.30.5", "what the nodes run");
        assert_eq!(g.max_surge, Some(Unavailable::Percent(33)));
        assert_eq!(g.max_unavailable, Some(Unavailable::Count(1)));
        assert_eq!(
            g.drain_limits.unwrap().pdb_timeout,
            Some(Duration::from_secs(45 * 60))
        );
        assert_eq!(g.labels[MODE_LABEL], "user");
        let sys = pool(json!({"name": "system", "properties": {
            "count": 3, "mode": "System", "provisioningState": "Failed",
            "orchestratorVersion": "1.30.5",
            "status": {"provisioningError": {"code": "UpgradeFailed", "message": "drain timeout"}}
        }}));
        let g = node_group(&sys).unwrap();
        assert_eq!(
            g.max_unavailable, None,
            "AKS refuses maxUnavailable on System pools"
        );
        assert_eq!(
            g.max_surge,
            Some(Unavailable::Percent(10)),
            "the API default"
        );
        assert_eq!(g.health_issues, ["UpgradeFailed: drain timeout"]);
    }

    #[test]
    fn versions_defaults_and_pool_targets() {
        let list: KubernetesVersionList = serde_json::from_value(json!({"values": [
            {"version": "1.30", "patchVersions": {"1.30.5": {}, "1.30.9": {}}},
            {"version": "1.31", "isDefault": true, "patchVersions": {"1.31.2": {}, "1.31.8": {}}},
            {"version": "1.32", "isPreview": true, "patchVersions": {"1.32.0": {}}}
        ]}))
        .unwrap();
        let offered = offered_versions(&list);
        let names: Vec<String> = offered.iter().map(|v| v.to_string()).collect();
        assert_eq!(names, ["1.30.5", "1.30.9", "1.31.2", "1.31.8"]);
        assert_eq!(default_version(&list).unwrap().to_string(), "1.31.8");
        let cp: Version = "1.31.2".parse().unwrap();
        assert_eq!(
            pool_version(&"1.31".parse().unwrap(), &cp, &offered),
            "1.31.2"
        );
        assert_eq!(
            pool_version(&"1.30".parse().unwrap(), &cp, &offered),
            "1.30.9"
        );
        assert_eq!(
            pool_version(&"1.30.5".parse().unwrap(), &cp, &offered),
            "1.30.5"
        );
    }

    #[test]
    fn operation_and_state_statuses() {
        let op = |v: Value| operation_status(&serde_json::from_value(v).unwrap());
        assert_eq!(
            op(json!({"status": "Succeeded"})),
            OperationStatus::Succeeded
        );
        assert!(op(json!({"status": "InProgress", "percentComplete": 40.0})).is_in_progress());
        assert_eq!(
            op(
                json!({"status": "Failed", "error": {"code": "UpgradeFailed", "message": "Drain node aks-x failed"}})
            ),
            OperationStatus::Failed {
                code: "UpgradeFailed".into(),
                message: "Drain node aks-x failed".into()
            }
        );
        assert!(matches!(
            op(json!({"status": "Canceled"})),
            OperationStatus::Cancelled { .. }
        ));
        assert!(state_status("Upgrading", None).is_in_progress());
        assert_eq!(state_status("Succeeded", None), OperationStatus::Succeeded);
    }

    #[test]
    fn clones_copy_shape_not_state() {
        let blue = json!({"name": "apps", "properties": {
            "count": 3, "vmSize": "Standard_D4s_v5", "mode": "User", "maxPods": 50,
            "availabilityZones": ["1", "2"], "nodeLabels": {"a": "b"}, "nodeTaints": ["k=v:NoSchedule"],
            "osSKU": "AzureLinux", "eTag": "e1", "provisioningState": "Succeeded",
            "orchestratorVersion": "1.30.5", "currentOrchestratorVersion": "1.30.5",
            "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202611.01.0"
        }});
        let green = clone_pool(&blue, "1.31.2");
        let p = &green["properties"];
        assert_eq!(p["orchestratorVersion"], "1.31.2");
        assert_eq!(p["vmSize"], "Standard_D4s_v5");
        assert_eq!(p["availabilityZones"], json!(["1", "2"]));
        assert_eq!(p["nodeTaints"], json!(["k=v:NoSchedule"]));
        for k in [
            "eTag",
            "provisioningState",
            "currentOrchestratorVersion",
            "nodeImageVersion",
        ] {
            assert!(p.get(k).is_none(), "{k} copied");
        }
        let with_kubelet = json!({"properties": {"mode": "User", "kubeletConfig": {"allowedUnsafeSysctls": ["net.core.*"]}, "enableEncryptionAtHost": true}});
        let g = clone_pool(&with_kubelet, "1.31.2");
        assert_eq!(
            g["properties"]["kubeletConfig"]["allowedUnsafeSysctls"][0],
            "net.core.*"
        );
        assert_eq!(g["properties"]["enableEncryptionAtHost"], true);
    }

    #[test]
    fn puts_never_carry_the_node_image_or_state() {
        let mut c = json!({"properties": {
            "kubernetesVersion": "1.30.5", "provisioningState": "Succeeded",
            "servicePrincipalProfile": {"clientId": "msi"},
            "agentPoolProfiles": [{"name": "system", "nodeImageVersion": "AKSUbuntu-1", "orchestratorVersion": "1.30.5", "eTag": "x"}]
        }});
        strip_cluster(&mut c);
        let p = &c["properties"];
        assert!(p.get("servicePrincipalProfile").is_none());
        assert!(p["agentPoolProfiles"][0].get("nodeImageVersion").is_none());
        assert!(p["agentPoolProfiles"][0].get("eTag").is_none());
        assert_eq!(p["agentPoolProfiles"][0]["orchestratorVersion"], "1.30.5");
        assert_eq!(p["kubernetesVersion"], "1.30.5");
    }

    #[test]
    fn channels_are_drift_sources() {
        let c: ManagedCluster = serde_json::from_value(json!({"properties": {
            "autoUpgradeProfile": {"upgradeChannel": "stable", "nodeOSUpgradeChannel": "NodeImage"}
        }}))
        .unwrap();
        let s = auto_upgrade(&c).unwrap();
        assert!(s.contains("auto-upgrade channel stable"), "{s}");
        assert!(s.contains("node OS upgrade channel NodeImage"), "{s}");
        let none: ManagedCluster = serde_json::from_value(json!({"properties": {
            "autoUpgradeProfile": {"upgradeChannel": "none", "nodeOSUpgradeChannel": "Unmanaged"}
        }}))
        .unwrap();
        assert_eq!(auto_upgrade(&none), None);
    }
}
