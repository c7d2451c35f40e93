//! The simulated Azure Resource Manager API for AKS (`Microsoft.ContainerService`), written
//! from `../shared/reference/aks/` (`managedClusters.json` api-version 2026-10-01, the
//! 2026-08-01 examples, `stable-api-versions.json`): the world model of AKS clusters and
//! agent pools, its world-file form, ARM long-running operations (`Azure-AsyncOperation`,
//! `Location`, `Retry-After`) and the REST/JSON handlers under `/subscriptions/`.

use crate::kube::fnv;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::faults::Fault;
use crate::state::{now_secs, App, CallRecord, Inner};
use crate::world::{self, OrderedMap, Workload, WorkloadFile};

/// Simulated seconds of a control-plane upgrade (the docs: "typically 5-15 minutes").
pub const CP_UPGRADE_SECS: f64 = 600.0;
/// Simulated seconds of a configuration-only update (cluster or agent pool).
pub const CONFIG_UPDATE_SECS: f64 = 30.0;
/// Simulated seconds per node before an agent-pool operation with an armed `fail=` fails.
pub const FAILED_NODE_SECS: f64 = 120.0;
/// Simulated seconds clients are told to wait between polls (`Retry-After`).
pub const RETRY_AFTER_SECS: f64 = 30.0;

/// Stable api-versions accepted (stable-api-versions.json, from 2023-01-01 on).
pub const API_VERSIONS: &[&str] = &[
    "2023-01-01",
    "2023-02-01",
    "2023-03-01",
    "2023-04-01",
    "2023-05-01",
    "2023-06-01",
    "2023-07-01",
    "2023-08-01",
    "2023-09-01",
    "2023-10-01",
    "2023-11-01",
    "2024-01-01",
    "2024-02-01",
    "2024-03-01",
    "2024-05-01",
    "2024-07-01",
    "2024-08-01",
    "2024-09-01",
    "2024-10-01",
    "2025-01-01",
    "2025-02-01",
    "2025-03-01",
    "2025-04-01",
    "2025-05-01",
    "2025-06-01",
    "2025-07-01",
    "2025-08-01",
    "2025-09-01",
    "2025-10-01",
    "2026-01-01",
    "2026-02-01",
    "2026-03-01",
    "2026-04-01",
    "2026-05-01",
    "2026-06-01",
    "2026-07-01",
    "2026-08-01",
    "2026-10-01",
];

/// The AKS version catalog: GA patch versions, oldest first (simulation data in AKS's shape).
pub const VERSIONS: &[&str] = &[
    "1.27.7", "1.27.9", "1.27.13", "1.27.16", "1.28.5", "1.28.9", "1.28.15", "1.29.4", "1.29.9",
    "1.29.15", "1.30.5", "1.30.9", "1.30.14", "1.31.2", "1.31.7", "1.31.11", "1.32.2", "1.32.6",
    "1.32.9", "1.33.1", "1.33.5", "1.34.1",
];
/// `isDefault` minor of the kubernetesVersions list.
pub const DEFAULT_MINOR: u32 = 32;
/// Minors with AKS long-term support (reported in `capabilities.supportPlan`).
const LTS_MINORS: &[u32] = &[27, 30];
/// `nodeImageVersion` of every pool (Ubuntu 22.04 containerd image).
pub const NODE_IMAGE: &str = "AKSUbuntu-2204gen2containerd-202510.08.0";

pub const UPGRADE_CHANNELS: &[&str] = &["rapid", "stable", "patch", "node-image", "none"];
pub const NODE_OS_CHANNELS: &[&str] = &["None", "Unmanaged", "NodeImage", "SecurityPatch"];
pub const OS_SKUS: &[&str] = &[
    "Ubuntu",
    "AzureLinux",
    "AzureLinux3",
    "CBLMariner",
    "Ubuntu2204",
    "Ubuntu2404",
];

/// Error codes an operation may be failed with through `fail=CLUSTER[/POOL]:CODE`.
pub const ERROR_CODES: &[&str] = &[
    "UpgradeFailed",
    "PodDrainFailure",
    "InternalOperationError",
    "VMExtensionProvisioningError",
    "QuotaExceeded",
    "AllocationFailed",
    "SubnetIsFull",
    "ReconcileVMSSAgentPoolFailed",
];

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

fn parts(v: &str) -> Option<Vec<u32>> {
    let p: Vec<u32> = v
        .split('.')
        .map(|x| x.parse::<u32>().ok())
        .collect::<Option<_>>()?;
    (p.len() >= 2 && p.len() <= 3 && p[0] == 1).then_some(p)
}

/// Minor of `1.30` or `1.30.5`.
pub fn minor(v: &str) -> Option<u32> {
    parts(v).map(|p| p[1])
}

/// Compare exact versions numerically.
pub fn cmp(a: &str, b: &str) -> std::cmp::Ordering {
    parts(a)
        .unwrap_or_default()
        .cmp(&parts(b).unwrap_or_default())
}

/// `1.31` → the newest GA patch of 1.31; `1.31.5` → itself when the catalog offers it.
pub fn resolve(v: &str) -> Option<String> {
    let p = parts(v)?;
    if p.len() == 3 {
        return VERSIONS.contains(&v).then(|| v.to_string());
    }
    VERSIONS
        .iter()
        .rfind(|x| minor(x) == Some(p[1]))
        .map(|s| s.to_string())
}

/// The exact version a requested `kubernetesVersion` / `orchestratorVersion` means for a
/// resource now at `current`: "Updating the cluster with the same <major.minor> once it has
/// been created (e.g. 1.14.x -> 1.14) will not trigger an upgrade".
pub fn goal_exact(requested: &str, current: &str) -> Option<String> {
    let p = parts(requested)?;
    if p.len() == 2 && minor(current) == Some(p[1]) {
        return Some(current.to_string());
    }
    resolve(requested)
}

/// Catalog versions a control plane at `cur` may move to: newer patches of its minor and
/// every patch of the next minor.
fn cp_upgrades(cur: &str) -> Vec<&'static str> {
    let m = minor(cur).unwrap_or(0);
    VERSIONS
        .iter()
        .filter(|v| {
            let vm = minor(v).unwrap_or(0);
            (vm == m && cmp(v, cur).is_gt()) || vm == m + 1
        })
        .copied()
        .collect()
}

/// An int-or-percent upgrade setting against `count` nodes, percentages rounded up.
pub fn resolve_count(s: &str, count: u32) -> Option<u32> {
    match s.strip_suffix('%') {
        Some(p) => {
            let p: f64 = p.parse().ok().filter(|p: &f64| (0.0..=100.0).contains(p))?;
            Some((p * count as f64 / 100.0).ceil() as u32)
        }
        None => s.parse().ok(),
    }
}

fn valid_int_or_percent(s: &str) -> bool {
    match s.strip_suffix('%') {
        Some(p) => p.parse::<u32>().is_ok_and(|p| p <= 100),
        None => s.parse::<u32>().is_ok(),
    }
}

fn is_zero_setting(s: &str) -> bool {
    s.trim_end_matches('%').parse::<u32>() == Ok(0)
}

// ---------------------------------------------------------------------------------------------
// Runtime model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub struct AgentPool {
    pub name: String,
    /// `System` or `User`.
    pub mode: String,
    /// `currentOrchestratorVersion` (exact).
    pub version: String,
    /// `orchestratorVersion` as requested (`1.30` or `1.30.5`): the goal.
    pub orchestrator_version: String,
    pub count: u32,
    pub vm_size: String,
    pub os_sku: String,
    pub max_pods: u32,
    /// `availabilityZones` (`["1","2","3"]`), empty = regional.
    pub zones: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// `key=value:Effect` strings.
    pub taints: Vec<String>,
    pub enable_auto_scaling: bool,
    pub min_count: Option<u32>,
    pub max_count: Option<u32>,
    pub max_surge: String,
    pub max_unavailable: String,
    pub drain_timeout_minutes: u32,
    pub node_soak_minutes: u32,
    /// `Cordon` | `Schedule`; unset = not reported (the upgrade simply stops).
    pub undrainable_node_behavior: Option<String>,
}

impl AgentPool {
    pub fn surge(&self) -> u32 {
        resolve_count(&self.max_surge, self.count).unwrap_or(1)
    }

    pub fn unavailable(&self) -> u32 {
        resolve_count(&self.max_unavailable, self.count).unwrap_or(0)
    }

    pub fn etag(&self, ops: usize) -> String {
        etag_of(&format!("{self:?}/{ops}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    UpgradeControlPlane,
    UpdateCluster,
    CreatePool,
    UpgradePool,
    UpdatePool,
    DeletePool,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::UpgradeControlPlane => "UpgradeControlPlane",
            OpKind::UpdateCluster => "UpdateManagedCluster",
            OpKind::CreatePool => "CreateAgentPool",
            OpKind::UpgradePool => "UpgradeAgentPool",
            OpKind::UpdatePool => "UpdateAgentPool",
            OpKind::DeletePool => "DeleteAgentPool",
        }
    }

    fn parse(s: &str) -> Option<OpKind> {
        [
            OpKind::UpgradeControlPlane,
            OpKind::UpdateCluster,
            OpKind::CreatePool,
            OpKind::UpgradePool,
            OpKind::UpdatePool,
            OpKind::DeletePool,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The words AKS uses in its "in progress … operation" conflict message.
    fn words(self) -> &'static str {
        match self {
            OpKind::UpgradeControlPlane => "upgrade managed cluster",
            OpKind::UpdateCluster => "update managed cluster",
            OpKind::CreatePool => "create agent pool",
            OpKind::UpgradePool => "upgrade agent pool",
            OpKind::UpdatePool => "update agent pool",
            OpKind::DeletePool => "delete agent pool",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    InProgress,
    Succeeded,
    Failed,
    Canceled,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::InProgress => "InProgress",
            OpStatus::Succeeded => "Succeeded",
            OpStatus::Failed => "Failed",
            OpStatus::Canceled => "Canceled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct AksOp {
    /// The operation id (a GUID, as AKS's).
    pub id: String,
    pub kind: OpKind,
    pub pool: Option<String>,
    pub status: OpStatus,
    pub start: f64,
    pub end: Option<f64>,
    /// Wall time a fixed-duration operation ends; infinite when the Kubernetes side drives it.
    pub deadline: f64,
    /// Wall seconds the fixed-duration operation takes (for `percentComplete`).
    pub span: f64,
    pub target_version: String,
    /// Armed failure (`fail=` fault).
    pub fail: Option<(String, String)>,
    /// Final error (code, message).
    pub error: Option<(String, String)>,
    pub nodes_total: u32,
    pub nodes_done: u32,
    /// DELETE with `ignore-pod-disruption-budget=true`.
    pub ignore_pdb: bool,
}

impl AksOp {
    pub fn active(&self) -> bool {
        self.status == OpStatus::InProgress
    }
}

#[derive(Debug, Clone)]
pub struct AksCluster {
    pub name: String,
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
    /// `currentKubernetesVersion` (exact).
    pub version: String,
    /// `kubernetesVersion` as requested (the goal).
    pub kubernetes_version: String,
    pub dns_prefix: String,
    pub upgrade_channel: String,
    pub node_os_channel: String,
    /// Minors an agent pool may be behind the control plane (2 per the API reference, 3 per
    /// the 2025 docs).
    pub max_pool_skew: u32,
    pub created_at: f64,
    pub pools: BTreeMap<String, AgentPool>,
    pub workloads: Vec<Workload>,
    /// Objects, Helm releases and readiness failures staged in the Kubernetes API.
    pub staging: crate::stage::Staging,
    /// Every operation ever started, oldest first.
    pub ops: Vec<AksOp>,
    /// `upgradeSettings.overrideSettings` (None = never set).
    pub override_settings: Option<OverrideSettings>,
    /// Deprecated API collections the cluster saw requests for in the last 12 hours
    /// (`/apis/GROUP/VERSION/RESOURCE`); a minor upgrade that removes one is refused.
    pub deprecated_api_usage: Vec<String>,
    /// Kubernetes API URL of this run (not persisted).
    pub endpoint: Option<String>,
}

/// ManagedCluster `properties.upgradeSettings.overrideSettings` (`UpgradeOverrideSettings`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OverrideSettings {
    pub force_upgrade: Option<bool>,
    /// `until`, as given (RFC 3339).
    pub until: Option<String>,
}

impl OverrideSettings {
    /// The overrides apply to an upgrade starting at `now`: `forceUpgrade` is set and
    /// `until` (which "must be set for the overrides to take effect") is later.
    pub fn force_active(&self, now: f64) -> bool {
        self.force_upgrade == Some(true)
            && self
                .until
                .as_deref()
                .and_then(|u| crate::world::parse_time("until", u).ok())
                .is_some_and(|t| t > now)
    }

    fn to_json(&self) -> Value {
        let mut o = json!({});
        if let Some(f) = self.force_upgrade {
            o["forceUpgrade"] = json!(f);
        }
        if let Some(u) = &self.until {
            o["until"] = json!(u);
        }
        json!({ "overrideSettings": o })
    }
}

impl AksCluster {
    pub fn active_op(&self) -> Option<&AksOp> {
        self.ops.iter().find(|o| o.active())
    }

    fn last_pool_op(&self, pool: &str) -> Option<&AksOp> {
        self.ops
            .iter()
            .rev()
            .find(|o| o.pool.as_deref() == Some(pool))
    }

    pub fn provisioning_state(&self) -> &'static str {
        match self.active_op() {
            Some(o) if o.kind == OpKind::UpgradeControlPlane => "Upgrading",
            Some(o) if o.kind == OpKind::UpdateCluster => "Updating",
            _ => match self.ops.last() {
                Some(o) if o.status == OpStatus::Failed => "Failed",
                Some(o) if o.status == OpStatus::Canceled => "Canceled",
                _ => "Succeeded",
            },
        }
    }

    pub fn pool_state(&self, pool: &str) -> &'static str {
        match self.last_pool_op(pool) {
            Some(o) if o.active() => match o.kind {
                OpKind::CreatePool => "Creating",
                OpKind::UpgradePool => "Upgrading",
                OpKind::DeletePool => "Deleting",
                _ => "Updating",
            },
            Some(o) if o.status == OpStatus::Failed => "Failed",
            Some(o) if o.status == OpStatus::Canceled => "Canceled",
            _ => "Succeeded",
        }
    }

    /// The error of the pool's last operation when it failed (`status.provisioningError`).
    pub fn pool_error(&self, pool: &str) -> Option<&(String, String)> {
        self.last_pool_op(pool)
            .filter(|o| o.status == OpStatus::Failed)
            .and_then(|o| o.error.as_ref())
    }

    /// Whether the pool's VMs exist: not while its creation is about to fail or has failed.
    pub fn pool_provisioned(&self, pool: &str) -> bool {
        match self.last_pool_op(pool) {
            Some(o) if o.kind == OpKind::CreatePool => match o.status {
                OpStatus::InProgress => o.fail.is_none(),
                _ => o.error.is_none(),
            },
            _ => true,
        }
    }

    pub fn pool_etag(&self, p: &AgentPool) -> String {
        let n = self
            .ops
            .iter()
            .filter(|o| o.pool.as_deref() == Some(&p.name))
            .count();
        p.etag(n)
    }

    pub fn etag(&self) -> String {
        let mut s = format!(
            "{}/{}/{}/{}/{}/{}",
            self.name,
            self.version,
            self.kubernetes_version,
            self.upgrade_channel,
            self.node_os_channel,
            self.ops.len()
        );
        for p in self.pools.values() {
            s.push('/');
            s.push_str(&self.pool_etag(p));
        }
        etag_of(&s)
    }

    /// `MC_{rg}_{name}_{location}`.
    pub fn node_resource_group(&self) -> String {
        format!("MC_{}_{}_{}", self.resource_group, self.name, self.location)
    }

    fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.subscription, self.resource_group, self.name
        )
    }
}

/// A GUID-shaped etag derived from `s`.
fn etag_of(s: &str) -> String {
    let a = fnv(s);
    let b = fnv(&format!("{s}#"));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a as u16,
        (b >> 48) as u16,
        b & 0xffff_ffff_ffff
    )
}

/// Complete due fixed-duration operations. True when the world changed.
pub fn advance(
    clusters: &mut BTreeMap<String, AksCluster>,
    now: f64,
    hung: &dyn Fn(&str, Option<&str>) -> bool,
) -> bool {
    let mut changed = false;
    for a in clusters.values_mut() {
        let name = a.name.clone();
        for i in 0..a.ops.len() {
            let o = &a.ops[i];
            if !o.active() || hung(&name, o.pool.as_deref()) || now < o.deadline {
                continue;
            }
            finish_op(a, i, now);
            changed = true;
        }
    }
    changed
}

/// End operation `i`: apply it, or record its armed failure / error.
pub fn finish_op(a: &mut AksCluster, i: usize, now: f64) {
    let op = &mut a.ops[i];
    op.end = Some(now);
    if let Some(f) = op.fail.take() {
        op.error = Some(f);
    }
    if op.error.is_some() {
        op.status = OpStatus::Failed;
        return;
    }
    op.status = OpStatus::Succeeded;
    op.nodes_done = op.nodes_total;
    let (kind, pool, v) = (op.kind, op.pool.clone(), op.target_version.clone());
    match (kind, pool) {
        (OpKind::UpgradeControlPlane, _) if !v.is_empty() => a.version = v,
        (OpKind::UpgradePool, Some(p)) if !v.is_empty() => {
            if let Some(ap) = a.pools.get_mut(&p) {
                ap.version = v;
            }
        }
        (OpKind::DeletePool, Some(p)) => {
            a.pools.remove(&p);
        }
        _ => {}
    }
}

/// End operation `i` with an error.
pub fn fail_op(a: &mut AksCluster, i: usize, code: &str, message: String, now: f64) {
    a.ops[i].error = Some((code.to_string(), message));
    finish_op(a, i, now);
}

// ---------------------------------------------------------------------------------------------
// World file form
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AksClusterFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// currentKubernetesVersion: `1.30.5` (or `1.30` = newest patch).
    pub version: String,
    /// kubernetesVersion as requested, when it differs from `version` (written after a failed
    /// upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_upgrade_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_os_upgrade_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pool_skew: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_override: Option<UpgradeOverrideFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_api_usage: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub agent_pool: OrderedMap<AgentPoolFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub workload: OrderedMap<WorkloadFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub helm_release: OrderedMap<crate::stage::HelmReleaseFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readyz_failing: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub operation: OrderedMap<AksOperationFile>,
}

/// `upgrade_override { force_upgrade = true, until = "…" }`: the cluster's
/// `upgradeSettings.overrideSettings`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeOverrideFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_upgrade: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPoolFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// currentOrchestratorVersion (default: the cluster's version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// orchestratorVersion as requested, when it differs from `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pods: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_auto_scaling: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_soak_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undrainable_node_behavior: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AksOperationFile {
    /// UpgradeControlPlane | UpdateManagedCluster | CreateAgentPool | UpgradeAgentPool |
    /// UpdateAgentPool | DeleteAgentPool
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_pool: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    pub start_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_total: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_pdb: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// ManagedCluster `resourceName` pattern.
fn valid_cluster_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

/// `agentPoolName` pattern `^[a-z][a-z0-9]{0,11}$`.
pub fn valid_pool_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 12
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn valid_guid(s: &str) -> bool {
    let lens = [8, 4, 4, 4, 12];
    let ps: Vec<&str> = s.split('-').collect();
    ps.len() == 5
        && ps
            .iter()
            .zip(lens)
            .all(|(p, l)| p.len() == l && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `key=value:Effect` (value optional).
fn valid_taint(t: &str) -> bool {
    let Some((kv, effect)) = t.rsplit_once(':') else {
        return false;
    };
    let key = kv.split('=').next().unwrap_or("");
    !key.is_empty() && ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
}

/// Check a pool's version against the control plane (AKS's `NodePoolMcVersionIncompatible`).
fn skew_error(pool_v: &str, cp: &str, skew: u32) -> Option<String> {
    let (pm, cm) = (minor(pool_v)?, minor(cp)?);
    if pm > cm {
        return Some(format!(
            "Node pool version {pool_v} and control plane version {cp} are incompatible. Minor version of node pool version {pm} is bigger than control plane version {cm}. For more information, please check https://aka.ms/version-skew-policy"
        ));
    }
    if cmp(pool_v, cp).is_gt() {
        return Some(format!(
            "Node pool version {pool_v} and control plane version {cp} are incompatible. Node pool version cannot be greater than the control plane version. For more information, please check https://aka.ms/version-skew-policy"
        ));
    }
    if pm + skew < cm {
        return Some(format!(
            "Node pool version {pool_v} and control plane version {cp} are incompatible. Minor version of node pool version {pm} is more than {skew} minor versions behind control plane version {cm}. For more information, please check https://aka.ms/version-skew-policy"
        ));
    }
    None
}

struct UpgradeSettings {
    max_surge: String,
    max_unavailable: String,
    drain_timeout_minutes: u32,
    node_soak_minutes: u32,
    undrainable: Option<String>,
}

/// The upgradeSettings rules (spec + PRIOR-ART 2.5); errors are plain messages.
fn check_settings(mode: &str, s: &UpgradeSettings) -> Result<(), String> {
    if !valid_int_or_percent(&s.max_surge) {
        return Err(format!(
            "upgradeSettings.maxSurge '{}' must be an integer (e.g. '5') or a percentage (e.g. '50%')",
            s.max_surge
        ));
    }
    if !valid_int_or_percent(&s.max_unavailable) {
        return Err(format!(
            "upgradeSettings.maxUnavailable '{}' must be an integer (e.g. '1') or a percentage (e.g. '5%')",
            s.max_unavailable
        ));
    }
    if mode == "System" && !is_zero_setting(&s.max_unavailable) {
        return Err(format!(
            "upgradeSettings.maxUnavailable '{}' is not allowed on System agent pools; use maxSurge",
            s.max_unavailable
        ));
    }
    if is_zero_setting(&s.max_unavailable) && is_zero_setting(&s.max_surge) {
        return Err(
            "upgradeSettings.maxSurge must be greater than 0 when maxUnavailable is 0".into(),
        );
    }
    if !(1..=1440).contains(&s.drain_timeout_minutes) {
        return Err(format!(
            "upgradeSettings.drainTimeoutInMinutes {} must be between 1 and 1440",
            s.drain_timeout_minutes
        ));
    }
    if s.node_soak_minutes > 30 {
        return Err(format!(
            "upgradeSettings.nodeSoakDurationInMinutes {} must be between 0 and 30",
            s.node_soak_minutes
        ));
    }
    if let Some(u) = &s.undrainable {
        if u != "Cordon" && u != "Schedule" {
            return Err(format!(
                "upgradeSettings.undrainableNodeBehavior '{u}' must be Cordon or Schedule"
            ));
        }
    }
    Ok(())
}

fn check_zone(z: &str) -> bool {
    ["1", "2", "3"].contains(&z)
}

/// Build a runtime AKS cluster from its file form.
pub fn cluster_from_file(
    name: &str,
    f: AksClusterFile,
    now: f64,
    speed: f64,
) -> Result<AksCluster, String> {
    if !valid_cluster_name(name) {
        return Err("AKS cluster names must be 1-63 letters, digits, `-` or `_`, starting and ending with a letter or digit".into());
    }
    let version = resolve(&f.version).ok_or_else(|| {
        format!(
            "version `{}` is not an AKS version of the catalog (one of: {}; or a minor like \"1.31\")",
            f.version,
            VERSIONS.join(", ")
        )
    })?;
    let kubernetes_version = f.kubernetes_version.unwrap_or_else(|| f.version.clone());
    if goal_exact(&kubernetes_version, &version).is_none() {
        return Err(format!(
            "kubernetes_version `{kubernetes_version}` is not an AKS version of the catalog"
        ));
    }
    let subscription = f
        .subscription_id
        .unwrap_or_else(|| "00000000-0000-0000-0000-000000000001".into());
    if !valid_guid(&subscription) {
        return Err(format!(
            "subscription_id `{subscription}` must be a GUID (00000000-0000-0000-0000-000000000000)"
        ));
    }
    let resource_group = f.resource_group.unwrap_or_else(|| "rg-kup-sim".into());
    if resource_group.is_empty()
        || resource_group.len() > 90
        || !resource_group
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.()".contains(c))
        || resource_group.ends_with('.')
    {
        return Err(format!(
            "resource_group `{resource_group}` must be 1-90 letters, digits, `-`, `_`, `.`, `(`, `)`, not ending with `.`"
        ));
    }
    let location = f.location.unwrap_or_else(|| "westeurope".into());
    if location.is_empty()
        || !location
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "location `{location}` must be an Azure region name like \"westeurope\""
        ));
    }
    let upgrade_channel = f.auto_upgrade_channel.unwrap_or_else(|| "none".into());
    if !UPGRADE_CHANNELS.contains(&upgrade_channel.as_str()) {
        return Err(format!(
            "auto_upgrade_channel `{upgrade_channel}` must be one of {}",
            UPGRADE_CHANNELS.join(", ")
        ));
    }
    let node_os_channel = f
        .node_os_upgrade_channel
        .unwrap_or_else(|| "NodeImage".into());
    if !NODE_OS_CHANNELS.contains(&node_os_channel.as_str()) {
        return Err(format!(
            "node_os_upgrade_channel `{node_os_channel}` must be one of {}",
            NODE_OS_CHANNELS.join(", ")
        ));
    }
    let max_pool_skew = f.max_pool_skew.unwrap_or(2);
    if max_pool_skew != 2 && max_pool_skew != 3 {
        return Err(format!(
            "max_pool_skew {max_pool_skew} must be 2 (the API reference) or 3 (the 2025 docs)"
        ));
    }
    let created_at = match &f.created_at {
        Some(t) => world::parse_time("created_at", t)?,
        None => now,
    };
    let mut pools = BTreeMap::new();
    for (pname, pf) in f.agent_pool.0 {
        let ctx = format!("agent_pool \"{pname}\"");
        if !valid_pool_name(&pname) {
            return Err(format!(
                "{ctx}: agent pool names must match ^[a-z][a-z0-9]{{0,11}}$ (lowercase letters and digits, up to 12, starting with a letter)"
            ));
        }
        let mode = pf.mode.unwrap_or_else(|| "User".into());
        if mode != "System" && mode != "User" {
            return Err(format!("{ctx}: mode `{mode}` must be System or User"));
        }
        let v = pf.version.unwrap_or_else(|| version.clone());
        let pv = resolve(&v)
            .ok_or_else(|| format!("{ctx}: version `{v}` is not an AKS version of the catalog"))?;
        if let Some(e) = skew_error(&pv, &version, max_pool_skew) {
            return Err(format!("{ctx}: version: {e}"));
        }
        let orchestrator_version = pf.orchestrator_version.unwrap_or(v);
        if goal_exact(&orchestrator_version, &pv).is_none() {
            return Err(format!(
                "{ctx}: orchestrator_version `{orchestrator_version}` is not an AKS version of the catalog"
            ));
        }
        let count = pf.count.unwrap_or(3);
        if count > 1000 || (mode == "System" && count == 0) {
            return Err(format!(
                "{ctx}: count {count} must be 1-1000 for System pools and 0-1000 for User pools"
            ));
        }
        let os_sku = pf.os_sku.unwrap_or_else(|| "Ubuntu".into());
        if !OS_SKUS.contains(&os_sku.as_str()) {
            return Err(format!(
                "{ctx}: os_sku `{os_sku}` must be one of {} (Linux SKUs)",
                OS_SKUS.join(", ")
            ));
        }
        let zones = pf.zones.unwrap_or_default();
        if let Some(z) = zones.iter().find(|z| !check_zone(z)) {
            return Err(format!("{ctx}: zones: `{z}` must be \"1\", \"2\" or \"3\""));
        }
        let taints = pf.taints.unwrap_or_default();
        if let Some(t) = taints.iter().find(|t| !valid_taint(t)) {
            return Err(format!(
                "{ctx}: taints: `{t}` must be key=value:NoSchedule|PreferNoSchedule|NoExecute"
            ));
        }
        let settings = UpgradeSettings {
            max_surge: pf.max_surge.unwrap_or_else(|| "10%".into()),
            max_unavailable: pf.max_unavailable.unwrap_or_else(|| "0".into()),
            drain_timeout_minutes: pf.drain_timeout_minutes.unwrap_or(30),
            node_soak_minutes: pf.node_soak_minutes.unwrap_or(0),
            undrainable: pf.undrainable_node_behavior,
        };
        check_settings(&mode, &settings).map_err(|e| format!("{ctx}: {e}"))?;
        let vm_size = pf.vm_size.unwrap_or_else(|| "Standard_D4s_v5".into());
        if !vm_size.starts_with("Standard_") {
            return Err(format!(
                "{ctx}: vm_size `{vm_size}` must be an Azure VM size like \"Standard_D4s_v5\""
            ));
        }
        pools.insert(
            pname.clone(),
            AgentPool {
                name: pname,
                mode,
                version: pv,
                orchestrator_version,
                count,
                vm_size,
                os_sku,
                max_pods: pf.max_pods.unwrap_or(110),
                zones,
                labels: pf.labels.unwrap_or_default(),
                taints,
                enable_auto_scaling: pf.enable_auto_scaling.unwrap_or(false),
                min_count: pf.min_count,
                max_count: pf.max_count,
                max_surge: settings.max_surge,
                max_unavailable: settings.max_unavailable,
                drain_timeout_minutes: settings.drain_timeout_minutes,
                node_soak_minutes: settings.node_soak_minutes,
                undrainable_node_behavior: settings.undrainable,
            },
        );
    }
    let deleted: Vec<&str> = f
        .operation
        .0
        .iter()
        .filter(|(_, o)| o.kind == "DeleteAgentPool" && o.status == "Succeeded")
        .filter_map(|(_, o)| o.agent_pool.as_deref())
        .collect();
    let deleting: Vec<&str> = f
        .operation
        .0
        .iter()
        .filter(|(_, o)| o.kind == "DeleteAgentPool" && o.status == "InProgress")
        .filter_map(|(_, o)| o.agent_pool.as_deref())
        .collect();
    if !pools
        .values()
        .any(|p| p.mode == "System" && !deleting.contains(&p.name.as_str()))
    {
        return Err("a managed cluster must have at least one agent_pool with mode = \"System\" (AKS: \"There has to be at least one system agent pool.\")".into());
    }
    let mut workloads = Vec::new();
    for (wname, wf) in f.workload.0 {
        let ctx = format!("workload \"{wname}\"");
        let w = world::workload_from_file(&wname, wf, &|p| {
            pools.contains_key(p) || deleted.contains(&p)
        })
        .map_err(|e| format!("{ctx}: {}", e.replace("node group", "agent pool")))?;
        if workloads
            .iter()
            .any(|x: &Workload| x.name == w.name && x.namespace == w.namespace)
        {
            return Err(format!("{ctx}: duplicate workload name in the namespace"));
        }
        workloads.push(w);
    }
    let mut ops = Vec::new();
    for (id, of) in f.operation.0 {
        let ctx = format!("operation \"{id}\"");
        let kind = OpKind::parse(&of.kind).ok_or_else(|| {
            format!(
                "{ctx}: type `{}` must be UpgradeControlPlane, UpdateManagedCluster, CreateAgentPool, UpgradeAgentPool, UpdateAgentPool or DeleteAgentPool",
                of.kind
            )
        })?;
        let status = match of.status.as_str() {
            "InProgress" => OpStatus::InProgress,
            "Succeeded" => OpStatus::Succeeded,
            "Failed" => OpStatus::Failed,
            "Canceled" => OpStatus::Canceled,
            s => {
                return Err(format!(
                    "{ctx}: status `{s}` must be InProgress, Succeeded, Failed or Canceled"
                ))
            }
        };
        if let Some(p) = &of.agent_pool {
            if status == OpStatus::InProgress && !pools.contains_key(p) {
                return Err(format!(
                    "{ctx}: agent_pool `{p}` is not an agent pool of this cluster"
                ));
            }
        }
        let start = world::parse_time(&format!("{ctx}: start_time"), &of.start_time)?;
        let end = match &of.end_time {
            Some(t) => Some(world::parse_time(&format!("{ctx}: end_time"), t)?),
            None => None,
        };
        let (deadline, span) = match (status, of.remaining_seconds) {
            (OpStatus::InProgress, Some(r)) => (now + r.max(0.0) / speed, r.max(0.0) / speed),
            (OpStatus::InProgress, None) => (f64::INFINITY, 0.0),
            _ => (end.unwrap_or(start), 0.0),
        };
        ops.push(AksOp {
            id,
            kind,
            pool: of.agent_pool,
            status,
            start,
            end,
            deadline,
            span,
            target_version: of.target_version.unwrap_or_default(),
            fail: of
                .fail_code
                .map(|c| (c, of.fail_message.unwrap_or_default())),
            error: of
                .error_code
                .map(|c| (c, of.error_message.unwrap_or_default())),
            nodes_total: of.nodes_total.unwrap_or(0),
            nodes_done: if status == OpStatus::Succeeded {
                of.nodes_total.unwrap_or(0)
            } else {
                0
            },
            ignore_pdb: of.ignore_pdb.unwrap_or(false),
        });
    }
    if ops.iter().filter(|o| o.active()).count() > 1 {
        return Err("more than one operation is in progress (AKS runs one at a time)".into());
    }
    let staging = crate::stage::from_file(f.objects, f.helm_release, f.readyz_failing, false, now)?;
    let override_settings = match f.upgrade_override {
        None => None,
        Some(o) => {
            if let Some(u) = &o.until {
                crate::world::parse_time("upgrade_override: until", u)?;
            }
            Some(OverrideSettings {
                force_upgrade: o.force_upgrade,
                until: o.until,
            })
        }
    };
    let deprecated_api_usage = f.deprecated_api_usage.unwrap_or_default();
    for u in &deprecated_api_usage {
        if crate::removed_apis::by_path(u).is_none() {
            return Err(format!(
                "deprecated_api_usage: `{u}` is not a removed Kubernetes API collection (written like \"/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas\")"
            ));
        }
    }
    Ok(AksCluster {
        name: name.to_string(),
        subscription,
        resource_group,
        location,
        kubernetes_version,
        version,
        dns_prefix: f.dns_prefix.unwrap_or_else(|| format!("{name}-dns")),
        upgrade_channel,
        node_os_channel,
        max_pool_skew,
        created_at,
        pools,
        workloads,
        staging,
        ops,
        override_settings,
        deprecated_api_usage,
        endpoint: None,
    })
}

/// The file form of a runtime AKS cluster.
pub fn cluster_to_file(a: &AksCluster, now: f64, speed: f64) -> AksClusterFile {
    let (objects, helm_release, readyz_failing) = crate::stage::to_file(&a.staging);
    let remaining = |deadline: f64| ((deadline - now).max(0.0) * speed * 1000.0).round() / 1000.0;
    AksClusterFile {
        upgrade_override: a.override_settings.as_ref().map(|o| UpgradeOverrideFile {
            force_upgrade: o.force_upgrade,
            until: o.until.clone(),
        }),
        deprecated_api_usage: (!a.deprecated_api_usage.is_empty())
            .then(|| a.deprecated_api_usage.clone()),
        subscription_id: Some(a.subscription.clone()),
        resource_group: Some(a.resource_group.clone()),
        location: Some(a.location.clone()),
        version: a.version.clone(),
        kubernetes_version: (a.kubernetes_version != a.version)
            .then(|| a.kubernetes_version.clone()),
        dns_prefix: Some(a.dns_prefix.clone()),
        auto_upgrade_channel: Some(a.upgrade_channel.clone()),
        node_os_upgrade_channel: Some(a.node_os_channel.clone()),
        max_pool_skew: Some(a.max_pool_skew),
        created_at: Some(world::fmt_time(a.created_at)),
        agent_pool: OrderedMap(
            a.pools
                .values()
                .map(|p| {
                    (
                        p.name.clone(),
                        AgentPoolFile {
                            mode: Some(p.mode.clone()),
                            version: Some(p.version.clone()),
                            orchestrator_version: (p.orchestrator_version != p.version)
                                .then(|| p.orchestrator_version.clone()),
                            count: Some(p.count),
                            vm_size: Some(p.vm_size.clone()),
                            os_sku: Some(p.os_sku.clone()),
                            max_pods: Some(p.max_pods),
                            zones: Some(p.zones.clone()),
                            labels: (!p.labels.is_empty()).then(|| p.labels.clone()),
                            taints: (!p.taints.is_empty()).then(|| p.taints.clone()),
                            enable_auto_scaling: Some(p.enable_auto_scaling),
                            min_count: p.min_count,
                            max_count: p.max_count,
                            max_surge: Some(p.max_surge.clone()),
                            max_unavailable: Some(p.max_unavailable.clone()),
                            drain_timeout_minutes: Some(p.drain_timeout_minutes),
                            node_soak_minutes: Some(p.node_soak_minutes),
                            undrainable_node_behavior: p.undrainable_node_behavior.clone(),
                        },
                    )
                })
                .collect(),
        ),
        objects,
        helm_release,
        readyz_failing,
        workload: OrderedMap(
            a.workloads
                .iter()
                .map(|w| (w.name.clone(), world::workload_to_file(w)))
                .collect(),
        ),
        operation: OrderedMap(
            a.ops
                .iter()
                .map(|o| {
                    (
                        o.id.clone(),
                        AksOperationFile {
                            kind: o.kind.as_str().to_string(),
                            agent_pool: o.pool.clone(),
                            status: o.status.as_str().to_string(),
                            target_version: (!o.target_version.is_empty())
                                .then(|| o.target_version.clone()),
                            start_time: world::fmt_time(o.start),
                            end_time: o.end.map(world::fmt_time),
                            remaining_seconds: (o.active() && o.deadline.is_finite())
                                .then(|| remaining(o.deadline)),
                            nodes_total: Some(o.nodes_total),
                            ignore_pdb: o.ignore_pdb.then_some(true),
                            fail_code: o.fail.as_ref().map(|f| f.0.clone()),
                            fail_message: o.fail.as_ref().map(|f| f.1.clone()),
                            error_code: o.error.as_ref().map(|f| f.0.clone()),
                            error_message: o.error.as_ref().map(|f| f.1.clone()),
                        },
                    )
                })
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors (ARM shape: {"error": {"code", "message"}})
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
    /// `error.subcode` (AKS sets it on some validation errors).
    pub subcode: Option<String>,
}

impl ArmError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
            subcode: None,
        }
    }
}

fn request_id_headers(h: &mut HeaderMap) {
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-ms-request-id", v.clone());
        h.insert("x-ms-correlation-request-id", v);
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut err = json!({ "code": self.code, "message": self.message });
        if let Some(sc) = &self.subcode {
            err["subcode"] = json!(sc);
        }
        let mut r = (status, axum::Json(json!({ "error": err }))).into_response();
        let h = r.headers_mut();
        request_id_headers(h);
        h.insert("x-ms-failure-cause", HeaderValue::from_static("gateway"));
        if let Some(s) = self.retry_after {
            h.insert("retry-after", HeaderValue::from(s));
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                "www-authenticate",
                HeaderValue::from_static(
                    "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\"",
                ),
            );
        }
        r
    }
}

type R<T> = Result<T, ArmError>;

fn bad(code: &str, msg: impl Into<String>) -> ArmError {
    ArmError::new(400, code, msg)
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Route {
    ListBySubscription,
    ListVersions(String),
    GetOperation(String, String),
    GetOperationResult(String, String),
    ListByResourceGroup(String),
    GetCluster(String, String),
    PutCluster(String, String),
    UpgradeProfile(String, String),
    Credentials(String, String, &'static str),
    ListPools(String, String),
    GetPool(String, String, String),
    PutPool(String, String, String),
    DeletePool(String, String, String),
    PoolUpgradeProfile(String, String, String),
}

impl Route {
    fn op(&self) -> &'static str {
        match self {
            Route::ListBySubscription => "managedClusters.list",
            Route::ListVersions(_) => "managedClusters.listKubernetesVersions",
            Route::GetOperation(..) => "operationStatus.get",
            Route::GetOperationResult(..) => "operationResults.get",
            Route::ListByResourceGroup(_) => "managedClusters.listByResourceGroup",
            Route::GetCluster(..) => "managedClusters.get",
            Route::PutCluster(..) => "managedClusters.createOrUpdate",
            Route::UpgradeProfile(..) => "managedClusters.getUpgradeProfile",
            Route::Credentials(..) => "managedClusters.listClusterUserCredentials",
            Route::ListPools(..) => "agentPools.list",
            Route::GetPool(..) => "agentPools.get",
            Route::PutPool(..) => "agentPools.createOrUpdate",
            Route::DeletePool(..) => "agentPools.delete",
            Route::PoolUpgradeProfile(..) => "agentPools.getUpgradeProfile",
        }
    }

    fn mutating(&self) -> bool {
        matches!(
            self,
            Route::PutCluster(..) | Route::PutPool(..) | Route::DeletePool(..)
        )
    }

    fn target(&self) -> (Option<String>, Option<String>) {
        match self {
            Route::GetCluster(_, c)
            | Route::PutCluster(_, c)
            | Route::UpgradeProfile(_, c)
            | Route::Credentials(_, c, _)
            | Route::ListPools(_, c) => (Some(c.clone()), None),
            Route::GetPool(_, c, p)
            | Route::PutPool(_, c, p)
            | Route::DeletePool(_, c, p)
            | Route::PoolUpgradeProfile(_, c, p) => (Some(c.clone()), Some(p.clone())),
            _ => (None, None),
        }
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Parse an ARM path into (subscription, route). Fixed segments are case-insensitive, as in
/// ARM.
fn parse_route(method: &Method, path: &str) -> Option<(String, Route)> {
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let m = method.clone();
    // The operation status URL also exists without the subscription (as in the
    // AgentPoolsUpgradeNodeImageVersion example).
    if segs.len() == 6
        && eq(segs[0], "providers")
        && eq(segs[1], "Microsoft.ContainerService")
        && eq(segs[2], "locations")
        && m == Method::GET
    {
        let (l, id) = (segs[3].to_string(), segs[5].to_string());
        return match segs[4].to_ascii_lowercase().as_str() {
            "operations" => Some((String::new(), Route::GetOperation(l, id))),
            "operationresults" => Some((String::new(), Route::GetOperationResult(l, id))),
            _ => None,
        };
    }
    if segs.len() < 4 || !eq(segs[0], "subscriptions") {
        return None;
    }
    let sub = segs[1].to_string();
    let s = &segs[2..];
    let prov = |x: &[&str]| {
        x.len() >= 2 && eq(x[0], "providers") && eq(x[1], "Microsoft.ContainerService")
    };
    if prov(s) {
        let r = &s[2..];
        let route = match (m, r.len()) {
            (Method::GET, 1) if eq(r[0], "managedClusters") => Route::ListBySubscription,
            (Method::GET, 3) if eq(r[0], "locations") && eq(r[2], "kubernetesVersions") => {
                Route::ListVersions(r[1].to_string())
            }
            (Method::GET, 4) if eq(r[0], "locations") && eq(r[2], "operations") => {
                Route::GetOperation(r[1].to_string(), r[3].to_string())
            }
            (Method::GET, 4) if eq(r[0], "locations") && eq(r[2], "operationresults") => {
                Route::GetOperationResult(r[1].to_string(), r[3].to_string())
            }
            _ => return None,
        };
        return Some((sub, route));
    }
    if !eq(s[0], "resourceGroups") {
        return None;
    }
    let rg = s[1].to_string();
    let r = &s[2..];
    if !prov(r) || r.len() < 3 || !eq(r[2], "managedClusters") {
        return None;
    }
    let r = &r[3..];
    let route = match (m, r) {
        (Method::GET, []) => Route::ListByResourceGroup(rg),
        (Method::GET, [c]) => Route::GetCluster(rg, c.to_string()),
        (Method::PUT, [c]) => Route::PutCluster(rg, c.to_string()),
        (Method::GET, [c, u, d]) if eq(u, "upgradeProfiles") && eq(d, "default") => {
            Route::UpgradeProfile(rg, c.to_string())
        }
        (Method::POST, [c, x]) if eq(x, "listClusterUserCredential") => {
            Route::Credentials(rg, c.to_string(), "clusterUser")
        }
        (Method::POST, [c, x]) if eq(x, "listClusterAdminCredential") => {
            Route::Credentials(rg, c.to_string(), "clusterAdmin")
        }
        (Method::GET, [c, a]) if eq(a, "agentPools") => Route::ListPools(rg, c.to_string()),
        (Method::GET, [c, a, p]) if eq(a, "agentPools") => {
            Route::GetPool(rg, c.to_string(), p.to_string())
        }
        (Method::PUT, [c, a, p]) if eq(a, "agentPools") => {
            Route::PutPool(rg, c.to_string(), p.to_string())
        }
        (Method::DELETE, [c, a, p]) if eq(a, "agentPools") => {
            Route::DeletePool(rg, c.to_string(), p.to_string())
        }
        (Method::GET, [c, a, p, u, d])
            if eq(a, "agentPools") && eq(u, "upgradeProfiles") && eq(d, "default") =>
        {
            Route::PoolUpgradeProfile(rg, c.to_string(), p.to_string())
        }
        _ => return None,
    };
    Some((sub, route))
}

fn query_param(q: &str, key: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k.eq_ignore_ascii_case(key)
            .then(|| v.replace("%2D", "-").replace("%2d", "-"))
    })
}

/// `api-version` checks, as ARM answers them: missing → MissingApiVersionParameter; not a
/// date-shaped version → InvalidApiVersionParameter; well-formed but not served for the
/// resource type → NoRegisteredProviderFound (what ARM answers for managedClusters).
fn check_api_version(q: &str, location: &str) -> R<String> {
    let Some(v) = query_param(q, "api-version").filter(|v| !v.is_empty()) else {
        return Err(bad(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    if API_VERSIONS.contains(&v.as_str()) {
        return Ok(v);
    }
    let shaped = {
        let (date, rest) = v.split_at(v.len().min(10));
        date.len() == 10
            && date.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
            && (rest.is_empty() || rest == "-preview")
    };
    let supported = API_VERSIONS.join(", ");
    if !shaped {
        return Err(bad(
            "InvalidApiVersionParameter",
            format!("The api-version '{v}' is invalid. The supported versions are '{supported}'."),
        ));
    }
    Err(bad(
        "NoRegisteredProviderFound",
        format!(
            "No registered resource provider found for location '{location}' and API version '{v}' for type 'managedClusters'. The supported api-versions are '{supported}'."
        ),
    ))
}

/// Bearer token presence (any non-empty token is accepted).
fn check_auth(headers: &HeaderMap) -> R<()> {
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        None => Err(ArmError::new(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )),
        Some(a) => {
            let tok = a
                .strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
                .map(str::trim)
                .unwrap_or("");
            if tok.is_empty() {
                Err(ArmError::new(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// A successful answer.
struct Done {
    status: u16,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
    mutated: bool,
    op_id: Option<String>,
}

impl Done {
    fn ok(body: Value) -> Self {
        Done {
            status: 200,
            body: Some(body),
            headers: vec![],
            mutated: false,
            op_id: None,
        }
    }
}

/// The HTTP entry point for every `/subscriptions/…` (and `/providers/…`) request.
pub async fn handle(
    app: &Arc<App>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    if let Err(e) = check_auth(headers) {
        return e.into_response();
    }
    let Some((sub, route)) = parse_route(&method, &path) else {
        let ns = path
            .to_ascii_lowercase()
            .contains("/microsoft.containerservice/");
        let e = if ns {
            ArmError::new(
                404,
                "InvalidResourceType",
                format!("The resource type of '{path}' could not be found in the namespace 'Microsoft.ContainerService' (kup-sim serves managedClusters, agentPools, upgradeProfiles, kubernetesVersions, operations, operationresults and listClusterUserCredential for {method})."),
            )
        } else {
            ArmError::new(
                404,
                "NotFound",
                format!("No route matches {method} {path} (kup-sim serves Microsoft.ContainerService managed clusters only)."),
            )
        };
        return e.into_response();
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let base = format!("http://{host}");
    let body_json: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return bad(
                    "InvalidRequestContent",
                    format!(
                        "The request content was invalid and could not be deserialized: '{e}'."
                    ),
                )
                .into_response()
            }
        }
    };
    let latency = app.lock().faults.spec.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let now = now_secs();
    // The lock is held for the request, never across an await.
    let (result, fault, retry_after, stall_for) = {
        let mut inner = app.lock();
        let changed = inner.advance(now);
        let (cluster, pool) = route.target();
        let location_hint = cluster
            .as_deref()
            .and_then(|c| inner.world.aks.get(c))
            .map(|a| a.location.clone())
            .unwrap_or_else(|| "westeurope".into());
        let fault = inner.faults.roll(&format!("aks {method} {}", route.op()));
        let result = match check_api_version(&query, &location_hint) {
            Err(e) => Err(e),
            Ok(api) => match fault {
                Some(Fault::Throttle) => {
                    let secs = inner.faults.spec.retry_after.unwrap_or(5);
                    Err(ArmError::new(
                        429,
                        "SubscriptionRequestsThrottled",
                        format!("Number of requests for subscription '{sub}' exceeded the limit. Please try again after '{secs}' seconds. Refer to https://aka.ms/arm-throttling"),
                    ))
                }
                Some(Fault::Error500) => Err(ArmError::new(
                    500,
                    "InternalServerError",
                    "An internal server error occurred. Please try again later.",
                )),
                Some(Fault::Error503) => Err(ArmError::new(
                    503,
                    "ServiceUnavailable",
                    "The service is currently unavailable. Please try again later.",
                )),
                _ => {
                    let cx = Cx {
                        sub: &sub,
                        base: &base,
                        api: &api,
                        query: &query,
                        headers,
                        now,
                        speed: app.speed,
                    };
                    execute(&mut inner, &cx, &route, &body_json)
                }
            },
        };
        if route.mutating() {
            let rec = CallRecord {
                op: route.op().to_string(),
                cluster,
                nodegroup: pool,
                addon: None,
                client_request_token: None,
                update_id: result.as_ref().ok().and_then(|d| d.op_id.clone()),
                replay: false,
                mutation: result.as_ref().is_ok_and(|d| d.mutated),
                error: result.as_ref().err().map(|e| e.code.clone()),
                at: world::fmt_time(now),
                fault: fault.filter(|f| !f.refuses()).map(Fault::key),
            };
            inner.calls.push(rec);
        }
        let mutated = result.as_ref().is_ok_and(|d| d.mutated);
        if changed || mutated {
            app.save_logged(&inner, now);
        }
        let faults = &inner.faults;
        (result, fault, faults.spec.retry_after, faults.stall_for())
    };
    let resp = match result {
        Ok(d) => {
            let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::OK);
            let mut r = match d.body {
                Some(b) => (status, axum::Json(b)).into_response(),
                None => status.into_response(),
            };
            let h = r.headers_mut();
            request_id_headers(h);
            for (k, v) in d.headers {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
            r
        }
        Err(e) => e.into_response(),
    };
    crate::server::faulted(fault, resp, retry_after, stall_for).await
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

fn pool_props(a: &AksCluster, p: &AgentPool) -> Value {
    let mut us = json!({
        "maxSurge": p.max_surge,
        "maxUnavailable": p.max_unavailable,
        "drainTimeoutInMinutes": p.drain_timeout_minutes,
        "nodeSoakDurationInMinutes": p.node_soak_minutes,
    });
    if let Some(u) = &p.undrainable_node_behavior {
        us["undrainableNodeBehavior"] = json!(u);
    }
    let mut v = json!({
        "eTag": a.pool_etag(p),
        "count": p.count,
        "vmSize": p.vm_size,
        "osDiskSizeGB": 128,
        "osDiskType": "Managed",
        "kubeletDiskType": "OS",
        "maxPods": p.max_pods,
        "type": "VirtualMachineScaleSets",
        "enableAutoScaling": p.enable_auto_scaling,
        "provisioningState": a.pool_state(&p.name),
        "powerState": { "code": "Running" },
        "orchestratorVersion": p.orchestrator_version,
        "currentOrchestratorVersion": p.version,
        "enableNodePublicIP": false,
        "nodeLabels": p.labels,
        "nodeTaints": p.taints,
        "mode": p.mode,
        "osType": "Linux",
        "osSKU": p.os_sku,
        "nodeImageVersion": NODE_IMAGE,
        "upgradeSettings": us,
        "enableFIPS": false,
        "securityProfile": { "enableVTPM": false, "enableSecureBoot": false },
    });
    if !p.zones.is_empty() {
        v["availabilityZones"] = json!(p.zones);
    }
    if let Some(m) = p.min_count {
        v["minCount"] = json!(m);
    }
    if let Some(m) = p.max_count {
        v["maxCount"] = json!(m);
    }
    if let Some((code, msg)) = a.pool_error(&p.name) {
        v["status"] = json!({ "provisioningError": { "code": code, "message": msg } });
    }
    v
}

fn pool_json(a: &AksCluster, p: &AgentPool) -> Value {
    json!({
        "id": format!("{}/agentPools/{}", a.arm_id(), p.name),
        "name": p.name,
        "type": "Microsoft.ContainerService/managedClusters/agentPools",
        "properties": pool_props(a, p),
    })
}

fn cluster_json(a: &AksCluster) -> Value {
    let host = a
        .endpoint
        .as_deref()
        .map(|e| e.trim_start_matches("http://").to_string())
        .unwrap_or_default();
    let profiles: Vec<Value> = a
        .pools
        .values()
        .map(|p| {
            let mut v = pool_props(a, p);
            v["name"] = json!(p.name);
            v
        })
        .collect();
    let portal = format!(
        "{}-{:08x}.portal.hcp.{}.azmk8s.io",
        a.dns_prefix,
        fnv(&a.arm_id()) as u32,
        a.location
    );
    let mut v = json!({
        "id": a.arm_id(),
        "location": a.location,
        "name": a.name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "tags": {},
        "eTag": a.etag(),
        "sku": { "name": "Base", "tier": "Free" },
        "identity": {
            "type": "SystemAssigned",
            "principalId": uuid_of(&format!("{}/principal", a.arm_id())),
            "tenantId": "00000000-0000-0000-0000-00000000a0a0",
        },
        "properties": {
            "provisioningState": a.provisioning_state(),
            "powerState": { "code": "Running" },
            "kubernetesVersion": a.kubernetes_version,
            "currentKubernetesVersion": a.version,
            "dnsPrefix": a.dns_prefix,
            "fqdn": host,
            "azurePortalFQDN": portal,
            "agentPoolProfiles": profiles,
            "nodeResourceGroup": a.node_resource_group(),
            "enableRBAC": true,
            "supportPlan": "KubernetesOfficial",
            "maxAgentPools": 100,
            "networkProfile": {
                "networkPlugin": "azure",
                "networkPluginMode": "overlay",
                "podCidr": "10.244.0.0/16",
                "serviceCidr": "10.0.0.0/16",
                "dnsServiceIP": "10.0.0.10",
                "outboundType": "loadBalancer",
                "loadBalancerSku": "standard",
            },
            "autoUpgradeProfile": {
                "upgradeChannel": a.upgrade_channel,
                "nodeOSUpgradeChannel": a.node_os_channel,
            },
        },
    });
    if let Some(o) = &a.override_settings {
        v["properties"]["upgradeSettings"] = o.to_json();
    }
    v
}

fn uuid_of(s: &str) -> String {
    etag_of(s)
}

fn op_json(a: &AksCluster, o: &AksOp, now: f64) -> Value {
    let pct = match o.status {
        OpStatus::InProgress => {
            if o.deadline.is_finite() && o.span > 0.0 {
                (((now - (o.deadline - o.span)) / o.span).clamp(0.0, 0.99) * 100.0).floor()
            } else if o.nodes_total > 0 {
                (o.nodes_done as f64 / o.nodes_total as f64 * 100.0)
                    .min(99.0)
                    .floor()
            } else {
                0.0
            }
        }
        OpStatus::Succeeded => 100.0,
        _ => (o.nodes_done as f64 / o.nodes_total.max(1) as f64 * 100.0).floor(),
    };
    let mut v = json!({
        "id": format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/operations/{}",
            a.subscription, a.location, o.id
        ),
        "name": o.id,
        "status": o.status.as_str(),
        "startTime": world::fmt_time(o.start),
        "percentComplete": pct,
    });
    if let Some(e) = o.end {
        v["endTime"] = json!(world::fmt_time(e));
    }
    if let Some((code, msg)) = &o.error {
        v["error"] = json!({ "code": code, "message": msg });
    }
    v
}

fn versions_json() -> Value {
    let mut minors: Vec<u32> = VERSIONS.iter().filter_map(|v| minor(v)).collect();
    minors.dedup();
    let values: Vec<Value> = minors
        .iter()
        .map(|m| {
            let patches: serde_json::Map<String, Value> = VERSIONS
                .iter()
                .filter(|v| minor(v) == Some(*m))
                .map(|v| (v.to_string(), json!({ "upgrades": cp_upgrades(v) })))
                .collect();
            let mut plan = vec!["KubernetesOfficial"];
            if LTS_MINORS.contains(m) {
                plan.push("AKSLongTermSupport");
            }
            let mut v = json!({
                "version": format!("1.{m}"),
                "capabilities": { "supportPlan": plan },
                "patchVersions": patches,
            });
            if *m == DEFAULT_MINOR {
                v["isDefault"] = json!(true);
            }
            v
        })
        .collect();
    json!({ "values": values })
}

fn upgrade_profile_json(a: &AksCluster) -> Value {
    let ups = |vs: Vec<&str>| -> Vec<Value> {
        vs.into_iter()
            .map(|v| json!({ "kubernetesVersion": v }))
            .collect()
    };
    let pools: Vec<Value> = a
        .pools
        .values()
        .map(|p| {
            json!({
                "name": p.name,
                "kubernetesVersion": p.version,
                "osType": "Linux",
                "upgrades": ups(pool_upgrades(a, p)),
            })
        })
        .collect();
    json!({
        "id": format!("{}/upgradeprofiles/default", a.arm_id()),
        "name": "default",
        "type": "Microsoft.ContainerService/managedClusters/upgradeprofiles",
        "properties": {
            "controlPlaneProfile": {
                "name": "master",
                "kubernetesVersion": a.version,
                "osType": "Linux",
                "upgrades": ups(cp_upgrades(&a.version)),
            },
            "agentPoolProfiles": pools,
        },
    })
}

/// Versions a pool may be upgraded to: newer than it, not newer than the control plane.
fn pool_upgrades(a: &AksCluster, p: &AgentPool) -> Vec<&'static str> {
    VERSIONS
        .iter()
        .filter(|v| cmp(v, &p.version).is_gt() && cmp(v, &a.version).is_le())
        .copied()
        .collect()
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

struct Cx<'a> {
    sub: &'a str,
    base: &'a str,
    api: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    now: f64,
    speed: f64,
}

fn cluster_not_found(rg: &str, name: &str) -> ArmError {
    ArmError::new(
        404,
        "ResourceNotFound",
        format!("The Resource 'Microsoft.ContainerService/managedClusters/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}

fn find<'a>(inner: &'a mut Inner, sub: &str, rg: &str, name: &str) -> R<&'a mut AksCluster> {
    match inner.world.aks.get_mut(name) {
        Some(a) if eq(&a.subscription, sub) && eq(&a.resource_group, rg) => Ok(a),
        _ => Err(cluster_not_found(rg, name)),
    }
}

fn pool_not_found(cluster: &str, pool: &str) -> ArmError {
    ArmError::new(
        404,
        "NotFound",
        format!("Could not find agent pool '{pool}' in managed cluster '{cluster}'."),
    )
}

fn check_idle(a: &AksCluster) -> R<()> {
    match a.active_op() {
        Some(o) => Err(ArmError::new(
            409,
            "OperationNotAllowed",
            format!(
                "Operation is not allowed because there's an in progress {} operation (operation ID: {}) on the managed cluster started on UTC {}. Please wait for it to finish before starting a new operation. You can also use 'az aks operation-abort ...' to abort the ongoing operation. See https://aka.ms/aks-pending-operation for more details.",
                o.kind.words(),
                o.id,
                world::fmt_time(o.start)
            ),
        )),
        None => Ok(()),
    }
}

fn unquote(s: &str) -> &str {
    s.trim().trim_start_matches("W/").trim_matches('"')
}

/// `If-Match` / `If-None-Match` against the resource's eTag (None = does not exist).
fn check_preconditions(headers: &HeaderMap, etag: Option<&str>) -> R<()> {
    let get = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(m) = get("if-match") {
        let ok = match etag {
            Some(e) => m.split(',').any(|x| unquote(x) == "*" || unquote(x) == e),
            None => false,
        };
        if !ok {
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                match etag {
                    Some(e) => format!("Operation failed with status: 'Precondition Failed'. Details: the If-Match value '{}' does not match the current eTag '{e}' of the resource; it was modified since it was read.", unquote(&m)),
                    None => format!("Operation failed with status: 'Precondition Failed'. Details: the If-Match value '{}' was given but the resource does not exist.", unquote(&m)),
                },
            ));
        }
    }
    if let Some(m) = get("if-none-match") {
        if let Some(e) = etag {
            if m.split(',').any(|x| unquote(x) == "*" || unquote(x) == e) {
                return Err(ArmError::new(
                    412,
                    "PreconditionFailed",
                    format!("Operation failed with status: 'Precondition Failed'. Details: the If-None-Match value '{}' matches the existing resource (eTag '{e}').", unquote(&m)),
                ));
            }
        }
    }
    Ok(())
}

/// Take an armed `fail=` fault for this cluster (and pool).
fn take_fail(inner: &mut Inner, cluster: &str, pool: Option<&str>) -> Option<(String, String)> {
    let i = inner
        .faults
        .fails
        .iter()
        .position(|f| f.target.matches(cluster, pool, None))?;
    let f = inner.faults.fails.remove(i);
    let code = if ERROR_CODES.contains(&f.code.as_str()) {
        f.code.clone()
    } else {
        "InternalOperationError".to_string()
    };
    let msg = f.message.clone().unwrap_or_else(|| match code.as_str() {
        "UpgradeFailed" => format!(
            "Upgrade failed for {}: injected failure (kup-sim fail= fault).",
            pool.unwrap_or("the control plane")
        ),
        "QuotaExceeded" => "Operation could not be completed as it results in exceeding approved standardDSv5Family Cores quota.".into(),
        "AllocationFailed" => "Allocation failed. We do not have sufficient capacity for the requested VM size in this region.".into(),
        "SubnetIsFull" => "Subnet is full: there are not enough IP addresses for the new nodes.".into(),
        "VMExtensionProvisioningError" => "VM has reported a failure when processing extension 'vmssCSE'. Error message: \"Enable failed: failed to execute command: command terminated with exit status=50\".".into(),
        _ => format!(
            "An internal error occurred while processing the operation ({}); injected by kup-sim.",
            f.code
        ),
    });
    Some((code, msg))
}

struct NewOp {
    kind: OpKind,
    pool: Option<String>,
    target_version: String,
    secs: f64,
    nodes_total: u32,
    fail: Option<(String, String)>,
    ignore_pdb: bool,
}

fn start_op(a: &mut AksCluster, n: NewOp, now: f64, speed: f64) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let span = if n.secs.is_finite() {
        n.secs / speed
    } else {
        0.0
    };
    a.ops.push(AksOp {
        id: id.clone(),
        kind: n.kind,
        pool: n.pool,
        status: OpStatus::InProgress,
        start: now,
        end: None,
        deadline: if n.secs.is_finite() {
            now + span
        } else {
            f64::INFINITY
        },
        span,
        target_version: n.target_version,
        fail: n.fail,
        error: None,
        nodes_total: n.nodes_total,
        nodes_done: 0,
        ignore_pdb: n.ignore_pdb,
    });
    id
}

/// The async-operation headers of a started operation.
fn async_headers(cx: &Cx, a: &AksCluster, id: &str) -> Vec<(&'static str, String)> {
    let retry = (RETRY_AFTER_SECS / cx.speed).ceil().max(1.0) as u64;
    let loc = format!(
        "{}/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}",
        cx.base, a.subscription, a.location
    );
    vec![
        (
            "azure-asyncoperation",
            format!("{loc}/operations/{id}?api-version={}", cx.api),
        ),
        (
            "location",
            format!("{loc}/operationresults/{id}?api-version={}", cx.api),
        ),
        ("retry-after", retry.to_string()),
    ]
}

fn execute(inner: &mut Inner, cx: &Cx, route: &Route, body: &Value) -> R<Done> {
    let now = cx.now;
    match route {
        Route::ListBySubscription => {
            let v: Vec<Value> = inner
                .world
                .aks
                .values()
                .filter(|a| eq(&a.subscription, cx.sub))
                .map(cluster_json)
                .collect();
            Ok(Done::ok(json!({ "value": v })))
        }
        Route::ListByResourceGroup(rg) => {
            let v: Vec<Value> = inner
                .world
                .aks
                .values()
                .filter(|a| eq(&a.subscription, cx.sub) && eq(&a.resource_group, rg))
                .map(cluster_json)
                .collect();
            Ok(Done::ok(json!({ "value": v })))
        }
        Route::ListVersions(_) => Ok(Done::ok(versions_json())),
        Route::GetOperation(loc, id) | Route::GetOperationResult(loc, id) => {
            let found = inner.world.aks.values().find_map(|a| {
                let ok = (cx.sub.is_empty() || eq(&a.subscription, cx.sub))
                    && eq(&a.location.replace(' ', ""), &loc.replace(' ', ""));
                ok.then(|| {
                    a.ops
                        .iter()
                        .find(|o| o.id.eq_ignore_ascii_case(id))
                        .map(|o| (a, o))
                })
                .flatten()
            });
            let Some((a, o)) = found else {
                return Err(ArmError::new(
                    404,
                    "NotFound",
                    format!("The operation '{id}' was not found in location '{loc}'."),
                ));
            };
            if matches!(route, Route::GetOperation(..)) {
                return Ok(Done::ok(op_json(a, o, now)));
            }
            // operationresults: 202 while running, 204 when done, the error when failed.
            match o.status {
                OpStatus::InProgress => {
                    let mut h = async_headers(cx, a, &o.id);
                    h.remove(0);
                    Ok(Done {
                        status: 202,
                        body: None,
                        headers: h,
                        mutated: false,
                        op_id: None,
                    })
                }
                OpStatus::Succeeded => Ok(Done {
                    status: 204,
                    body: None,
                    headers: vec![],
                    mutated: false,
                    op_id: None,
                }),
                _ => {
                    let (code, msg) = o
                        .error
                        .clone()
                        .unwrap_or(("Canceled".into(), "The operation was canceled.".into()));
                    Err(bad(&code, msg))
                }
            }
        }
        Route::GetCluster(rg, c) => {
            let a = find(inner, cx.sub, rg, c)?;
            let mut d = Done::ok(cluster_json(a));
            d.headers.push(("etag", format!("\"{}\"", a.etag())));
            Ok(d)
        }
        Route::UpgradeProfile(rg, c) => {
            Ok(Done::ok(upgrade_profile_json(find(inner, cx.sub, rg, c)?)))
        }
        Route::Credentials(rg, c, kind) => {
            let a = find(inner, cx.sub, rg, c)?;
            let server = a.endpoint.clone().unwrap_or_default();
            let text = crate::kubeconfig_text(&a.name, &server);
            Ok(Done::ok(json!({ "kubeconfigs": [
                { "name": kind, "value": b64(text.as_bytes()) }
            ] })))
        }
        Route::ListPools(rg, c) => {
            let a = find(inner, cx.sub, rg, c)?;
            let v: Vec<Value> = a.pools.values().map(|p| pool_json(a, p)).collect();
            Ok(Done::ok(json!({ "value": v })))
        }
        Route::GetPool(rg, c, p) => {
            let a = find(inner, cx.sub, rg, c)?;
            let Some(ap) = a.pools.get(p) else {
                return Err(pool_not_found(c, p));
            };
            let mut d = Done::ok(pool_json(a, ap));
            d.headers.push(("etag", format!("\"{}\"", a.pool_etag(ap))));
            Ok(d)
        }
        Route::PoolUpgradeProfile(rg, c, p) => {
            let a = find(inner, cx.sub, rg, c)?;
            let Some(ap) = a.pools.get(p) else {
                return Err(pool_not_found(c, p));
            };
            let ups: Vec<Value> = pool_upgrades(a, ap)
                .into_iter()
                .map(|v| json!({ "kubernetesVersion": v }))
                .collect();
            Ok(Done::ok(json!({
                "id": format!("{}/agentPools/{}/upgradeProfiles/default", a.arm_id(), p),
                "name": "default",
                "type": "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles",
                "properties": {
                    "kubernetesVersion": ap.version,
                    "osType": "Linux",
                    "upgrades": ups,
                    "latestNodeImageVersion": NODE_IMAGE,
                },
            })))
        }
        Route::PutCluster(rg, c) => put_cluster(inner, cx, rg, c, body),
        Route::PutPool(rg, c, p) => put_pool(inner, cx, rg, c, p, body),
        Route::DeletePool(rg, c, p) => delete_pool(inner, cx, rg, c, p),
    }
}

fn props(body: &Value) -> R<&serde_json::Map<String, Value>> {
    body.get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            bad(
                "InvalidParameter",
                "The request body must be a resource with a 'properties' object.",
            )
        })
}

fn str_prop<'a>(p: &'a serde_json::Map<String, Value>, k: &str) -> R<Option<&'a str>> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad(
            "InvalidParameter",
            format!("The value of parameter {k} is invalid: {v} is not a string."),
        )),
    }
}

/// managedClusters PUT (createOrUpdate) on an existing cluster.
fn put_cluster(inner: &mut Inner, cx: &Cx, rg: &str, name: &str, body: &Value) -> R<Done> {
    let (now, speed) = (cx.now, cx.speed);
    let exists = inner
        .world
        .aks
        .get(name)
        .is_some_and(|a| eq(&a.subscription, cx.sub) && eq(&a.resource_group, rg));
    if !exists {
        check_preconditions(cx.headers, None)?;
        return Err(bad(
            "BadRequest",
            format!("kup-sim does not model creating managed clusters: '{name}' does not exist in resource group '{rg}'. Declare AKS clusters in the world file (aks_cluster blocks)."),
        ));
    }
    let a = find(inner, cx.sub, rg, name)?;
    check_preconditions(cx.headers, Some(&a.etag()))?;
    let p = props(body)?;
    if let Some(loc) = body.get("location").and_then(Value::as_str) {
        if !eq(&loc.replace(' ', ""), &a.location) {
            return Err(ArmError::new(
                409,
                "InvalidResourceLocation",
                format!("The resource '{name}' already exists in location '{}' in resource group '{rg}'. A resource with the same name cannot be created in location '{loc}'. Please select a new resource name.", a.location),
            ));
        }
    }
    let requested = str_prop(p, "kubernetesVersion")?
        .map(str::to_string)
        .unwrap_or_else(|| a.kubernetes_version.clone());
    let target = goal_exact(&requested, &a.version).ok_or_else(|| {
        bad(
            "K8sVersionNotSupported",
            format!("Version {requested} is not supported in this region. Please use [az aks get-versions] command to get the supported version list in this region. For more information, please check https://aka.ms/supported-version-list"),
        )
    })?;
    // Agent pools in the body: their orchestratorVersion must be unchanged (a control-plane-only
    // upgrade, as `az aks upgrade --control-plane-only` sends it).
    if let Some(profiles) = p.get("agentPoolProfiles").and_then(Value::as_array) {
        for prof in profiles {
            let pname = prof["name"].as_str().unwrap_or("");
            let Some(pool) = a.pools.get(pname) else {
                return Err(bad(
                    "BadRequest",
                    format!("Agent pool '{pname}' in agentPoolProfiles is not an agent pool of managed cluster '{name}'; kup-sim adds agent pools only through the agentPools API."),
                ));
            };
            if let Some(ov) = prof["orchestratorVersion"]
                .as_str()
                .filter(|s| !s.is_empty())
            {
                if ov != pool.orchestrator_version && ov != pool.version {
                    return Err(bad(
                        "BadRequest",
                        format!("agentPoolProfiles['{pname}'].orchestratorVersion changed from '{}' to '{ov}': kup-sim models managedClusters PUT as a control-plane-only upgrade (az aks upgrade --control-plane-only); upgrade agent pools through the agentPools API.", pool.orchestrator_version),
                    ));
                }
            }
        }
    }
    let aup = p.get("autoUpgradeProfile").filter(|v| v.is_object());
    let mut channel = a.upgrade_channel.clone();
    let mut os_channel = a.node_os_channel.clone();
    if let Some(aup) = aup {
        if let Some(c) = aup["upgradeChannel"].as_str() {
            if !UPGRADE_CHANNELS.contains(&c) {
                return Err(bad("InvalidParameter", format!("The value of parameter autoUpgradeProfile.upgradeChannel is invalid: '{c}' (one of {}).", UPGRADE_CHANNELS.join(", "))));
            }
            channel = c.to_string();
        }
        if let Some(c) = aup["nodeOSUpgradeChannel"].as_str() {
            if !NODE_OS_CHANNELS.contains(&c) {
                return Err(bad("InvalidParameter", format!("The value of parameter autoUpgradeProfile.nodeOSUpgradeChannel is invalid: '{c}' (one of {}).", NODE_OS_CHANNELS.join(", "))));
            }
            os_channel = c.to_string();
        }
    }
    let overrides = match p.get("upgradeSettings") {
        None | Some(Value::Null) => a.override_settings.clone(),
        Some(us) => Some(override_from(us)?),
    };
    check_idle(a)?;
    let cur = a.version.clone();
    let upgrade = target != cur;
    if upgrade {
        let (cm, tm) = (minor(&cur).unwrap_or(0), minor(&target).unwrap_or(0));
        if cmp(&target, &cur).is_lt() || tm > cm + 1 {
            return Err(bad(
                "OperationNotAllowed",
                format!(
                    "Upgrading Kubernetes version {cur} to {target} is not allowed. Available upgrades: [{}]. Please see https://aka.ms/aks-supported-k8s-ver for version details.",
                    cp_upgrades(&cur).iter().rev().copied().collect::<Vec<_>>().join(" ")
                ),
            ));
        }
        let behind: Vec<String> = a
            .pools
            .values()
            .filter(|p| minor(&p.version).unwrap_or(0) + a.max_pool_skew < tm)
            .map(|p| format!("{} ({})", p.name, p.version))
            .collect();
        if tm > cm && tm >= 26 && !overrides.as_ref().is_some_and(|o| o.force_active(now)) {
            check_deprecated_usage(a, tm, now)?;
        }
        if !behind.is_empty() {
            return Err(bad(
                "NodePoolMcVersionIncompatible",
                format!(
                    "Control plane version {target} and node pool versions are incompatible: agent pools {} would be more than {} minor versions behind the control plane. Upgrade those agent pools first. For more information, please check https://aka.ms/version-skew-policy",
                    behind.join(", "),
                    a.max_pool_skew
                ),
            ));
        }
    }
    let fail = take_fail(inner, name, None);
    let a = find(inner, cx.sub, rg, name)?;
    a.kubernetes_version = requested;
    a.override_settings = overrides;
    a.upgrade_channel = channel;
    a.node_os_channel = os_channel;
    let id = start_op(
        a,
        NewOp {
            kind: if upgrade {
                OpKind::UpgradeControlPlane
            } else {
                OpKind::UpdateCluster
            },
            pool: None,
            target_version: if upgrade { target } else { String::new() },
            secs: if upgrade {
                CP_UPGRADE_SECS
            } else {
                CONFIG_UPDATE_SECS
            },
            nodes_total: 0,
            fail,
            ignore_pdb: false,
        },
        now,
        speed,
    );
    let headers = async_headers(cx, a, &id);
    Ok(Done {
        status: 200,
        body: Some(cluster_json(a)),
        headers,
        mutated: true,
        op_id: Some(id),
    })
}

/// `properties.upgradeSettings` of a managedClusters PUT (`ClusterUpgradeSettings`).
fn override_from(us: &Value) -> R<OverrideSettings> {
    let invalid = |m: String| bad("InvalidParameter", m);
    let Some(us) = us.as_object() else {
        return Err(invalid(
            "The value of parameter upgradeSettings is invalid: it must be an object.".into(),
        ));
    };
    let o = match us.get("overrideSettings") {
        None | Some(Value::Null) => return Ok(OverrideSettings::default()),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(invalid(
                "The value of parameter upgradeSettings.overrideSettings is invalid: it must be an object.".into(),
            ))
        }
    };
    let force_upgrade = match o.get("forceUpgrade") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => {
            return Err(invalid(format!(
                "The value of parameter upgradeSettings.overrideSettings.forceUpgrade is invalid: {v} is not a boolean."
            )))
        }
    };
    let until = match o.get("until") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if crate::world::parse_time("until", u).is_ok() => Some(u.clone()),
        Some(v) => {
            return Err(invalid(format!(
                "The value of parameter upgradeSettings.overrideSettings.until is invalid: {v} is not an RFC 3339 date-time."
            )))
        }
    };
    Ok(OverrideSettings {
        force_upgrade,
        until,
    })
}

/// AKS's upgrade protection ("Stop cluster upgrades automatically on API breaking changes"):
/// a control-plane minor upgrade to `1.target` is refused while the cluster used, in the last
/// 12 hours, an API that `1.target` no longer serves.
fn check_deprecated_usage(a: &AksCluster, target: u32, now: f64) -> R<()> {
    // Usage is recorded hourly: report it as last seen within the past hour.
    let seen = time::OffsetDateTime::from_unix_timestamp((now - 1800.0).floor() as i64)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
            ))
            .ok()
        })
        .unwrap_or_default();
    let hits: Vec<String> = a
        .deprecated_api_usage
        .iter()
        .filter_map(|u| crate::removed_apis::by_path(u))
        .filter(|api| api.removed_in == target)
        .map(|api| {
            format!(
                "usage has been detected on API {}, and was recently seen at: {seen}, which will be removed in 1.{target}",
                api.aks_name()
            )
        })
        .collect();
    if hits.is_empty() {
        return Ok(());
    }
    let details = format!(
        "{} error{} occurred:\n{}\n\n",
        hits.len(),
        if hits.len() == 1 { "" } else { "s" },
        hits.iter()
            .map(|h| format!("\t* {h}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut e = bad(
        "ValidationError",
        format!("Control Plane upgrade is blocked due to recent usage of a Kubernetes API deprecated in the specified version. Please refer to https://kubernetes.io/docs/reference/using-api/deprecation-guide to migrate the usage. AKS records the usage over the last 12 hours, so you may need to wait that long after migrating before this error stops. To bypass this error, set forceUpgrade in upgradeSettings.overrideSettings. Bypassing this error without migrating usage will result in the deprecated Kubernetes API calls failing. See details in https://aka.ms/aks/UpgradeAndDeprecatedAPIs. Usage details: {details}"),
    );
    e.subcode = Some("UpgradeBlockedOnDeprecatedAPIUsage".into());
    Err(e)
}

fn u32_prop(p: &serde_json::Map<String, Value>, k: &str) -> R<Option<u32>> {
    match p.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n <= u32::MAX as u64)
            .map(|n| Some(n as u32))
            .ok_or_else(|| {
                bad(
                    "InvalidParameter",
                    format!(
                        "The value of parameter {k} is invalid: {v} is not a non-negative integer."
                    ),
                )
            }),
    }
}

/// Apply a request's `upgradeSettings` (absent fields keep their values).
fn settings_from(pool: &AgentPool, us: Option<&Value>) -> R<UpgradeSettings> {
    let mut s = UpgradeSettings {
        max_surge: pool.max_surge.clone(),
        max_unavailable: pool.max_unavailable.clone(),
        drain_timeout_minutes: pool.drain_timeout_minutes,
        node_soak_minutes: pool.node_soak_minutes,
        undrainable: pool.undrainable_node_behavior.clone(),
    };
    let Some(us) = us.and_then(Value::as_object) else {
        return Ok(s);
    };
    if let Some(v) = str_prop(us, "maxSurge")? {
        s.max_surge = v.to_string();
    }
    if let Some(v) = str_prop(us, "maxUnavailable")? {
        s.max_unavailable = v.to_string();
    }
    if let Some(v) = u32_prop(us, "drainTimeoutInMinutes")? {
        s.drain_timeout_minutes = v;
    }
    if let Some(v) = u32_prop(us, "nodeSoakDurationInMinutes")? {
        s.node_soak_minutes = v;
    }
    if let Some(v) = str_prop(us, "undrainableNodeBehavior")? {
        s.undrainable = Some(v.to_string());
    }
    Ok(s)
}

fn check_pool_version(a: &AksCluster, requested: &str, current: &str) -> R<String> {
    let target = goal_exact(requested, current).ok_or_else(|| {
        bad(
            "K8sVersionNotSupported",
            format!("Version {requested} is not supported in this region. Please use [az aks get-versions] command to get the supported version list in this region. For more information, please check https://aka.ms/supported-version-list"),
        )
    })?;
    if let Some(e) = skew_error(&target, &a.version, a.max_pool_skew) {
        return Err(bad("NodePoolMcVersionIncompatible", e));
    }
    Ok(target)
}

/// agentPools PUT (createOrUpdate).
fn put_pool(
    inner: &mut Inner,
    cx: &Cx,
    rg: &str,
    cluster: &str,
    pool: &str,
    body: &Value,
) -> R<Done> {
    let (now, speed) = (cx.now, cx.speed);
    let a = find(inner, cx.sub, rg, cluster)?;
    if !valid_pool_name(pool) {
        return Err(bad(
            "InvalidParameter",
            format!("The value of parameter agentPoolName '{pool}' is invalid: agent pool names must start with a lowercase letter and contain only lowercase letters and numbers, at most 12 characters (^[a-z][a-z0-9]{{0,11}}$)."),
        ));
    }
    let existing = a.pools.get(pool).cloned();
    check_preconditions(
        cx.headers,
        existing.as_ref().map(|p| a.pool_etag(p)).as_deref(),
    )?;
    let p = props(body)?;
    let labels = match p.get("nodeLabels") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        Some(v) => {
            return Err(bad(
                "InvalidParameter",
                format!("nodeLabels must be an object, got {v}"),
            ))
        }
    };
    let taints = match p.get("nodeTaints") {
        None | Some(Value::Null) => None,
        Some(Value::Array(xs)) => {
            let ts: Vec<String> = xs
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if let Some(t) = ts.iter().find(|t| !valid_taint(t)) {
                return Err(bad("InvalidParameter", format!("The value of parameter nodeTaints is invalid: '{t}' must be key=value:NoSchedule|PreferNoSchedule|NoExecute.")));
            }
            Some(ts)
        }
        Some(v) => {
            return Err(bad(
                "InvalidParameter",
                format!("nodeTaints must be an array, got {v}"),
            ))
        }
    };
    let mode = str_prop(p, "mode")?.map(str::to_string);
    if let Some(m) = &mode {
        if m != "System" && m != "User" {
            return Err(bad("InvalidParameter", format!("The value of parameter mode is invalid: '{m}' (System or User; Gateway pools are not modelled).")));
        }
    }
    let count = u32_prop(p, "count")?;
    let autoscale = p.get("enableAutoScaling").and_then(Value::as_bool);
    let (min_count, max_count) = (u32_prop(p, "minCount")?, u32_prop(p, "maxCount")?);
    if let Some(t) = str_prop(p, "osType")? {
        if t != "Linux" {
            return Err(bad(
                "InvalidParameter",
                format!("osType '{t}' is not modelled by kup-sim (Linux only)."),
            ));
        }
    }
    match existing {
        Some(old) => {
            // Immutable after creation.
            for (k, cur) in [
                ("vmSize", json!(old.vm_size)),
                ("osSKU", json!(old.os_sku)),
                ("maxPods", json!(old.max_pods)),
            ] {
                if let Some(v) = p.get(k).filter(|v| !v.is_null()) {
                    if *v != cur {
                        return Err(bad(
                            "PropertyChangeNotAllowed",
                            format!("Changing property '{k}' is not allowed."),
                        ));
                    }
                }
            }
            if let Some(z) = p.get("availabilityZones").filter(|v| !v.is_null()) {
                let zs: Vec<String> = z
                    .as_array()
                    .map(|xs| {
                        xs.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if zs != old.zones {
                    return Err(bad(
                        "PropertyChangeNotAllowed",
                        "Changing property 'availabilityZones' is not allowed.",
                    ));
                }
            }
            let mut np = old.clone();
            let requested = str_prop(p, "orchestratorVersion")?
                .map(str::to_string)
                .unwrap_or_else(|| old.orchestrator_version.clone());
            let target = check_pool_version(a, &requested, &old.version)?;
            if cmp(&target, &old.version).is_lt() {
                return Err(bad(
                    "OperationNotAllowed",
                    format!("Downgrading agent pool '{pool}' from Kubernetes version {} to {target} is not allowed.", old.version),
                ));
            }
            let s = settings_from(&old, p.get("upgradeSettings"))?;
            if let Some(m) = mode {
                np.mode = m;
            }
            check_settings(&np.mode, &s).map_err(|e| bad("InvalidParameter", e))?;
            if old.mode == "System"
                && np.mode == "User"
                && !a
                    .pools
                    .values()
                    .any(|x| x.mode == "System" && x.name != pool)
            {
                return Err(bad(
                    "OperationNotAllowed",
                    "There has to be at least one system agent pool.",
                ));
            }
            if let Some(c) = count {
                if c > 1000 || (np.mode == "System" && c == 0) {
                    return Err(bad("InvalidParameter", format!("The value of parameter count is invalid: {c} (1-1000 for System pools, 0-1000 for User pools).")));
                }
            }
            let upgrade = target != old.version;
            if upgrade && count.is_some_and(|c| c != old.count) {
                return Err(bad(
                    "OperationNotAllowed",
                    format!("Agent pool '{pool}' cannot be upgraded and scaled in the same operation: change orchestratorVersion and count in separate requests."),
                ));
            }
            check_idle(a)?;
            np.orchestrator_version = requested;
            np.max_surge = s.max_surge;
            np.max_unavailable = s.max_unavailable;
            np.drain_timeout_minutes = s.drain_timeout_minutes;
            np.node_soak_minutes = s.node_soak_minutes;
            np.undrainable_node_behavior = s.undrainable;
            if let Some(c) = count {
                np.count = c;
            }
            if let Some(l) = labels {
                np.labels = l;
            }
            if let Some(t) = taints {
                np.taints = t;
            }
            if let Some(x) = autoscale {
                np.enable_auto_scaling = x;
            }
            if p.contains_key("minCount") {
                np.min_count = min_count;
            }
            if p.contains_key("maxCount") {
                np.max_count = max_count;
            }
            let nodes = np.count;
            let fail = take_fail(inner, cluster, Some(pool));
            let a = find(inner, cx.sub, rg, cluster)?;
            a.pools.insert(pool.to_string(), np);
            let kind = if upgrade {
                OpKind::UpgradePool
            } else {
                OpKind::UpdatePool
            };
            let secs = match (upgrade, &fail) {
                (true, Some(_)) => FAILED_NODE_SECS * nodes.max(1) as f64,
                (true, None) => f64::INFINITY,
                (false, _) => CONFIG_UPDATE_SECS,
            };
            let id = start_op(
                a,
                NewOp {
                    kind,
                    pool: Some(pool.to_string()),
                    target_version: if upgrade { target } else { String::new() },
                    secs,
                    nodes_total: if upgrade { nodes } else { 0 },
                    fail,
                    ignore_pdb: false,
                },
                now,
                speed,
            );
            let headers = async_headers(cx, a, &id);
            let body = pool_json(a, &a.pools[pool]);
            Ok(Done {
                status: 200,
                body: Some(body),
                headers,
                mutated: true,
                op_id: Some(id),
            })
        }
        None => {
            let mode = mode.unwrap_or_else(|| "User".into());
            let current = a.version.clone();
            let requested = str_prop(p, "orchestratorVersion")?
                .map(str::to_string)
                .unwrap_or_else(|| current.clone());
            let version = check_pool_version(a, &requested, &current)?;
            let vm_size = str_prop(p, "vmSize")?
                .unwrap_or("Standard_DS2_v2")
                .to_string();
            if !vm_size.starts_with("Standard_") {
                return Err(bad(
                    "InvalidParameter",
                    format!("The value of parameter vmSize is invalid: '{vm_size}'."),
                ));
            }
            let os_sku = str_prop(p, "osSKU")?.unwrap_or("Ubuntu").to_string();
            if !OS_SKUS.contains(&os_sku.as_str()) {
                return Err(bad(
                    "InvalidParameter",
                    format!(
                        "The value of parameter osSKU is invalid: '{os_sku}' (kup-sim models {}).",
                        OS_SKUS.join(", ")
                    ),
                ));
            }
            let zones: Vec<String> = p
                .get("availabilityZones")
                .and_then(Value::as_array)
                .map(|xs| {
                    xs.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(z) = zones.iter().find(|z| !check_zone(z)) {
                return Err(bad(
                    "InvalidParameter",
                    format!("The value of parameter availabilityZones is invalid: '{z}'."),
                ));
            }
            let count = count.unwrap_or(1);
            if count > 1000 || (mode == "System" && count == 0) {
                return Err(bad("InvalidParameter", format!("The value of parameter count is invalid: {count} (1-1000 for System pools, 0-1000 for User pools).")));
            }
            let mut np = AgentPool {
                name: pool.to_string(),
                mode,
                version: version.clone(),
                orchestrator_version: requested,
                count,
                vm_size,
                os_sku,
                max_pods: u32_prop(p, "maxPods")?.unwrap_or(110),
                zones,
                labels: labels.unwrap_or_default(),
                taints: taints.unwrap_or_default(),
                enable_auto_scaling: autoscale.unwrap_or(false),
                min_count,
                max_count,
                max_surge: "10%".into(),
                max_unavailable: "0".into(),
                drain_timeout_minutes: 30,
                node_soak_minutes: 0,
                undrainable_node_behavior: None,
            };
            let s = settings_from(&np, p.get("upgradeSettings"))?;
            check_settings(&np.mode, &s).map_err(|e| bad("InvalidParameter", e))?;
            np.max_surge = s.max_surge;
            np.max_unavailable = s.max_unavailable;
            np.drain_timeout_minutes = s.drain_timeout_minutes;
            np.node_soak_minutes = s.node_soak_minutes;
            np.undrainable_node_behavior = s.undrainable;
            check_idle(a)?;
            let fail = take_fail(inner, cluster, Some(pool));
            let a = find(inner, cx.sub, rg, cluster)?;
            a.pools.insert(pool.to_string(), np);
            let id = start_op(
                a,
                NewOp {
                    kind: OpKind::CreatePool,
                    pool: Some(pool.to_string()),
                    target_version: version,
                    secs: if fail.is_some() {
                        FAILED_NODE_SECS * count.max(1) as f64
                    } else {
                        f64::INFINITY
                    },
                    nodes_total: count,
                    fail,
                    ignore_pdb: false,
                },
                now,
                speed,
            );
            let headers = async_headers(cx, a, &id);
            let body = pool_json(a, &a.pools[pool]);
            Ok(Done {
                status: 201,
                body: Some(body),
                headers,
                mutated: true,
                op_id: Some(id),
            })
        }
    }
}

/// agentPools DELETE.
fn delete_pool(inner: &mut Inner, cx: &Cx, rg: &str, cluster: &str, pool: &str) -> R<Done> {
    let (now, speed) = (cx.now, cx.speed);
    let a = find(inner, cx.sub, rg, cluster)?;
    let Some(np) = a.pools.get(pool).cloned() else {
        check_preconditions(cx.headers, None)?;
        // "204: Resource does not exist."
        return Ok(Done {
            status: 204,
            body: None,
            headers: vec![],
            mutated: false,
            op_id: None,
        });
    };
    check_preconditions(cx.headers, Some(&a.pool_etag(&np)))?;
    if np.mode == "System"
        && !a
            .pools
            .values()
            .any(|x| x.mode == "System" && x.name != pool)
    {
        return Err(bad(
            "OperationNotAllowed",
            "There has to be at least one system agent pool.",
        ));
    }
    check_idle(a)?;
    let ignore_pdb = query_param(cx.query, "ignore-pod-disruption-budget")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let fail = take_fail(inner, cluster, Some(pool));
    let a = find(inner, cx.sub, rg, cluster)?;
    let id = start_op(
        a,
        NewOp {
            kind: OpKind::DeletePool,
            pool: Some(pool.to_string()),
            target_version: String::new(),
            secs: if fail.is_some() {
                FAILED_NODE_SECS * np.count.max(1) as f64
            } else {
                f64::INFINITY
            },
            nodes_total: np.count,
            fail,
            ignore_pdb,
        },
        now,
        speed,
    );
    let headers = async_headers(cx, a, &id);
    Ok(Done {
        status: 202,
        body: None,
        headers,
        mutated: true,
        op_id: Some(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_resolve_like_aks() {
        assert_eq!(resolve("1.31").as_deref(), Some("1.31.11"));
        assert_eq!(resolve("1.31.7").as_deref(), Some("1.31.7"));
        assert_eq!(resolve("1.31.8"), None);
        assert_eq!(resolve("1.99"), None);
        assert_eq!(goal_exact("1.30", "1.30.5").as_deref(), Some("1.30.5"));
        assert_eq!(goal_exact("1.31", "1.30.5").as_deref(), Some("1.31.11"));
        assert!(cp_upgrades("1.30.5").contains(&"1.30.9"));
        assert!(cp_upgrades("1.30.5").contains(&"1.31.2"));
        assert!(!cp_upgrades("1.30.5").contains(&"1.32.2"));
        assert_eq!(resolve_count("10%", 3), Some(1));
        assert_eq!(resolve_count("34%", 3), Some(2));
        assert_eq!(resolve_count("2", 3), Some(2));
        assert!(skew_error("1.28.5", "1.31.2", 2).is_some());
        assert!(skew_error("1.28.5", "1.31.2", 3).is_none());
        assert!(skew_error("1.31.7", "1.31.2", 2).is_some());
    }

    #[test]
    fn routes_parse_arm_paths() {
        let base = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters";
        let r = |m: Method, p: &str| parse_route(&m, p).map(|x| x.1);
        assert_eq!(
            r(Method::PUT, &format!("{base}/c/agentPools/np")),
            Some(Route::PutPool("rg".into(), "c".into(), "np".into()))
        );
        assert_eq!(
            r(Method::GET, &format!("{base}/c/upgradeProfiles/default")),
            Some(Route::UpgradeProfile("rg".into(), "c".into()))
        );
        assert_eq!(
            r(
                Method::GET,
                "/subscriptions/s/providers/Microsoft.ContainerService/locations/westeurope/operations/x"
            ),
            Some(Route::GetOperation("westeurope".into(), "x".into()))
        );
        assert_eq!(r(Method::DELETE, &format!("{base}/c")), None);
        assert_eq!(b64(b"hello"), "aGVsbG8=");
        assert_eq!(b64(b"hi"), "aGk=");
        assert_eq!(b64(b"abc"), "YWJj");
    }

    #[test]
    fn api_versions_and_auth() {
        assert!(check_api_version("api-version=2026-10-01", "x").is_ok());
        assert_eq!(
            check_api_version("", "x").unwrap_err().code,
            "MissingApiVersionParameter"
        );
        assert_eq!(
            check_api_version("api-version=banana", "x")
                .unwrap_err()
                .code,
            "InvalidApiVersionParameter"
        );
        assert_eq!(
            check_api_version("api-version=2019-02-01", "x")
                .unwrap_err()
                .code,
            "NoRegisteredProviderFound"
        );
    }
}
