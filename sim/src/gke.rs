//! The simulated GKE API (`container.googleapis.com`, discovery `container v1`), written from
//! `../shared/reference/gke/container.v1.json`: the world model of GKE clusters, its world-file
//! form, the Operation lifecycle and the REST/JSON handlers under `/v1/projects/`.

use crate::kube::fnv;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::catalog;
use crate::faults::Fault;
use crate::state::{now_secs, App, CallRecord, Inner};
use crate::world::{self, OrderedMap, Workload, WorkloadFile};

/// Simulated seconds an Operation stays PENDING before it turns RUNNING.
pub const PENDING_SECS: f64 = 5.0;
/// Simulated seconds of a control-plane upgrade.
pub const MASTER_UPGRADE_SECS: f64 = 900.0;
/// Simulated seconds of a configuration-only update (upgrade settings, no-op versions).
pub const CONFIG_UPDATE_SECS: f64 = 30.0;
/// Simulated seconds per node of a node-pool upgrade that fails through an armed `fail=`.
pub const FAILED_NODE_SECS: f64 = 120.0;
/// GKE respects PodDisruptionBudgets while draining for this long unless the pool's
/// `nodeDrainConfig.pdbTimeoutDuration` says otherwise; then it drains the node anyway.
pub const DEFAULT_PDB_TIMEOUT_SECS: f64 = 3600.0;
/// GKE picks the shortest duration for a daily maintenance window: 4 hours.
const DAILY_WINDOW_DURATION: &str = "PT4H0M0S";

// ---------------------------------------------------------------------------------------------
// Enums (order = the discovery document's enum arrays, so the index is the int encoding)
// ---------------------------------------------------------------------------------------------

const OP_STATUS: &[&str] = &[
    "STATUS_UNSPECIFIED",
    "PENDING",
    "RUNNING",
    "DONE",
    "ABORTING",
];
const OP_TYPE: &[&str] = &[
    "TYPE_UNSPECIFIED",
    "CREATE_CLUSTER",
    "DELETE_CLUSTER",
    "UPGRADE_MASTER",
    "UPGRADE_NODES",
    "REPAIR_CLUSTER",
    "UPDATE_CLUSTER",
    "CREATE_NODE_POOL",
    "DELETE_NODE_POOL",
    "SET_NODE_POOL_MANAGEMENT",
    "AUTO_REPAIR_NODES",
    "AUTO_UPGRADE_NODES",
    "SET_LABELS",
    "SET_MASTER_AUTH",
    "SET_NODE_POOL_SIZE",
    "SET_NETWORK_POLICY",
    "SET_MAINTENANCE_POLICY",
    "RESIZE_CLUSTER",
    "FLEET_FEATURE_UPGRADE",
];
const CLUSTER_STATUS: &[&str] = &[
    "STATUS_UNSPECIFIED",
    "PROVISIONING",
    "RUNNING",
    "RECONCILING",
    "STOPPING",
    "ERROR",
    "DEGRADED",
];
const POOL_STATUS: &[&str] = &[
    "STATUS_UNSPECIFIED",
    "PROVISIONING",
    "RUNNING",
    "RUNNING_WITH_ERROR",
    "RECONCILING",
    "STOPPING",
    "ERROR",
];
/// `ReleaseChannel.channel` (also `ReleaseChannelConfig.channel`).
pub const CHANNELS: &[&str] = &["UNSPECIFIED", "RAPID", "REGULAR", "STABLE", "EXTENDED"];
/// `UpgradeSettings.strategy`, indexed by its proto number: unlike the other enums these
/// are not consecutive (BLUE_GREEN = 2, SURGE = 3, SHORT_LIVED = 5), and clients decode
/// `enum-encoding=int` answers by number. The discovery document lists names only.
pub const STRATEGIES: &[&str] = &[
    "NODE_POOL_UPDATE_STRATEGY_UNSPECIFIED",
    "",
    "BLUE_GREEN",
    "SURGE",
    "",
    "SHORT_LIVED",
];

/// `MaintenanceExclusionOptions.scope`.
pub const EXCLUSION_SCOPES: &[&str] = &[
    "NO_UPGRADES",
    "NO_MINOR_UPGRADES",
    "NO_MINOR_OR_NODE_UPGRADES",
];

/// `BlueGreenInfo.phase`.
const BG_PHASES: &[&str] = &[
    "PHASE_UNSPECIFIED",
    "UPDATE_STARTED",
    "CREATING_GREEN_POOL",
    "CORDONING_BLUE_POOL",
    "DRAINING_BLUE_POOL",
    "NODE_POOL_SOAKING",
    "DELETING_BLUE_POOL",
    "ROLLBACK_STARTED",
];

/// google.rpc.Code names, by number.
const RPC_CODES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn rpc_code(name: &str) -> i64 {
    RPC_CODES.iter().position(|c| *c == name).unwrap_or(2) as i64
}

/// An enum value in a request: the name, or its index as a number or numeric string.
fn enum_in(table: &[&str], v: &Value) -> Option<String> {
    match v {
        // Empty entries are proto numbers no value uses.
        Value::String(s) => match s.parse::<usize>() {
            Ok(i) => table
                .get(i)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string()),
            Err(_) => (!s.is_empty() && table.contains(&s.as_str())).then(|| s.clone()),
        },
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| table.get(i as usize))
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct NodePool {
    pub name: String,
    pub version: String,
    pub node_count: u32,
    pub machine_type: String,
    pub max_surge: u32,
    pub max_unavailable: u32,
    pub strategy: String,
    pub bg: BlueGreen,
    pub drain: DrainConfig,
}

/// `NodePool.nodeDrainConfig`. Unset fields mean GKE's defaults and are not reported, as GKE
/// reports only what was set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainConfig {
    pub pdb_timeout_secs: Option<f64>,
    /// Caps the termination grace of pods GKE evicts while draining.
    pub grace_termination_secs: Option<f64>,
    pub respect_pdb_during_deletion: Option<bool>,
}

impl DrainConfig {
    pub fn pdb_timeout(&self) -> f64 {
        self.pdb_timeout_secs.unwrap_or(DEFAULT_PDB_TIMEOUT_SECS)
    }

    pub fn respect_pdb_during_deletion(&self) -> bool {
        self.respect_pdb_during_deletion.unwrap_or(false)
    }

    pub fn is_unset(&self) -> bool {
        *self == DrainConfig::default()
    }
}

/// `Cluster.maintenancePolicy.window`. Windows and exclusions only restrict automatic
/// upgrades, which the simulator does not perform, so they are modelled and reported only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Maintenance {
    /// `dailyMaintenanceWindow.startTime` ("HH:MM" GMT).
    pub daily_start: Option<String>,
    pub recurring: Option<RecurringWindow>,
    pub exclusions: BTreeMap<String, Exclusion>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecurringWindow {
    pub start: f64,
    pub end: f64,
    /// RRULE, e.g. `FREQ=WEEKLY;BYDAY=SA,SU`.
    pub recurrence: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    pub start: f64,
    pub end: f64,
    /// One of [`EXCLUSION_SCOPES`].
    pub scope: String,
}

impl Maintenance {
    pub fn is_unset(&self) -> bool {
        *self == Maintenance::default()
    }

    /// `maintenancePolicy.resourceVersion`: GKE answers `e3b0c442` (the start of the SHA-256
    /// of nothing) for a cluster without a policy; otherwise a hash of the policy.
    pub fn resource_version(&self) -> String {
        if self.is_unset() {
            "e3b0c442".to_string()
        } else {
            format!("{:08x}", fnv(&format!("{self:?}")) as u32)
        }
    }
}

/// `upgradeSettings.blueGreenSettings` (standard rollout policy).
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreen {
    pub batch_node_count: Option<u32>,
    /// (0, 1]; used when `batch_node_count` is unset. Default 1.0 (one batch).
    pub batch_percentage: f64,
    pub batch_soak_secs: f64,
    pub node_pool_soak_secs: f64,
}

impl Default for BlueGreen {
    fn default() -> Self {
        BlueGreen {
            batch_node_count: None,
            batch_percentage: 1.0,
            batch_soak_secs: 0.0,
            node_pool_soak_secs: 3600.0,
        }
    }
}

/// Parse a proto Duration string (`"3600s"`, `"1.5s"`).
fn duration_secs(v: &Value) -> Option<f64> {
    v.as_str()?
        .strip_suffix('s')?
        .parse()
        .ok()
        .filter(|d: &f64| *d >= 0.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    Pending,
    Running,
    Done,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Pending => "PENDING",
            OpStatus::Running => "RUNNING",
            OpStatus::Done => "DONE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GkeOp {
    pub name: String,
    pub op_type: String,
    /// Target node pool (UPGRADE_NODES, SET_NODE_POOL_SIZE, pool UPDATE_CLUSTER).
    pub pool: Option<String>,
    pub status: OpStatus,
    pub start: f64,
    pub end: Option<f64>,
    /// Wall time the operation turns RUNNING.
    pub running_at: f64,
    /// Wall time it completes; infinite when the Kubernetes side drives it (node replacement).
    pub deadline: f64,
    /// Version the master / pool moves to (empty for config-only updates).
    pub target_version: String,
    /// Armed failure (`fail=` fault): the operation ends DONE with this error.
    pub fail: Option<(String, String)>,
    /// Final error.
    pub error: Option<(String, String)>,
    pub nodes_total: u32,
    /// Nodes replaced so far (set by the Kubernetes side).
    pub nodes_done: u32,
    /// BLUE_GREEN upgrades: `updateInfo.blueGreenInfo.phase` (set by the Kubernetes side).
    pub bg_phase: Option<String>,
    /// nodePools.completeUpgrade was called (skip the rest of the node-pool soak).
    pub complete_requested: bool,
    /// nodePools.rollback was called while this blue-green upgrade ran.
    pub rollback_requested: bool,
    /// nodePools.rollback's `respectPdb` (drain the green nodes through PDBs).
    pub rollback_respect_pdb: bool,
    /// This operation is a rollback of a failed upgrade (always replaces nodes SURGE-style).
    pub is_rollback: bool,
}

impl GkeOp {
    pub fn active(&self) -> bool {
        self.status != OpStatus::Done
    }
}

#[derive(Debug, Clone)]
pub struct GkeCluster {
    pub name: String,
    pub project: String,
    pub location: String,
    /// Current master version (`1.29.8-gke.1031000`).
    pub version: String,
    pub initial_version: String,
    pub release_channel: String,
    pub created_at: f64,
    pub maintenance: Maintenance,
    pub node_pools: BTreeMap<String, NodePool>,
    pub workloads: Vec<Workload>,
    /// Objects, Helm releases and readiness failures staged in the Kubernetes API.
    pub staging: crate::stage::Staging,
    /// Every operation ever started, oldest first.
    pub ops: Vec<GkeOp>,
    /// Kubernetes API URL of this run (not persisted).
    pub endpoint: Option<String>,
}

impl GkeCluster {
    pub fn active_op(&self) -> Option<&GkeOp> {
        self.ops.iter().find(|o| o.active())
    }

    /// Zones nodes are spread over: the location itself when it is a zone, else `<region>-a/b/c`.
    pub fn zones(&self) -> Vec<String> {
        if is_zone(&self.location) {
            vec![self.location.clone()]
        } else {
            ["b", "c", "d"]
                .iter()
                .map(|z| format!("{}-{z}", self.location))
                .collect()
        }
    }

    pub fn status(&self) -> &'static str {
        match self.active_op() {
            Some(o) if o.pool.is_none() => "RECONCILING",
            _ => "RUNNING",
        }
    }

    pub fn pool_status(&self, pool: &str) -> &'static str {
        match self.active_op() {
            Some(o) if o.pool.as_deref() == Some(pool) => match o.op_type.as_str() {
                "CREATE_NODE_POOL" => "PROVISIONING",
                "DELETE_NODE_POOL" => "STOPPING",
                _ => "RECONCILING",
            },
            _ if self.pool_error(pool).is_some() => "ERROR",
            _ => "RUNNING",
        }
    }

    /// The last operation on `pool` (a reused name sees only its own pool's operations last).
    fn last_pool_op(&self, pool: &str) -> Option<&GkeOp> {
        self.ops
            .iter()
            .rev()
            .find(|o| o.pool.as_deref() == Some(pool))
    }

    /// A failed create or delete leaves the pool in ERROR with the operation's message.
    pub fn pool_error(&self, pool: &str) -> Option<&str> {
        self.last_pool_op(pool)
            .filter(|o| {
                matches!(o.op_type.as_str(), "CREATE_NODE_POOL" | "DELETE_NODE_POOL")
                    && o.status == OpStatus::Done
            })
            .and_then(|o| o.error.as_ref().map(|e| e.1.as_str()))
    }

    /// Whether the pool's VMs exist: not while its creation is PENDING, is about to fail
    /// (armed `fail=`) or has failed.
    pub fn pool_provisioned(&self, pool: &str) -> bool {
        match self.last_pool_op(pool) {
            Some(o) if o.op_type == "CREATE_NODE_POOL" => match o.status {
                OpStatus::Pending => false,
                OpStatus::Running => o.fail.is_none(),
                OpStatus::Done => o.error.is_none(),
            },
            _ => true,
        }
    }

    pub fn pool_etag(&self, p: &NodePool) -> String {
        let ops = self
            .ops
            .iter()
            .filter(|o| o.pool.as_deref() == Some(&p.name))
            .count();
        format!(
            "{:016x}",
            fnv(&format!(
                "{}/{}/{}/{}/{}/{}/{}/{ops}",
                p.name,
                p.version,
                p.node_count,
                p.machine_type,
                p.max_surge,
                p.max_unavailable,
                p.strategy
            )) ^ fnv(&format!("{:?}", p.bg))
                // Unset drain settings leave the etags of existing worlds unchanged.
                ^ if p.drain.is_unset() {
                    0
                } else {
                    fnv(&format!("{:?}", p.drain))
                }
        )
    }

    pub fn etag(&self) -> String {
        let mut s = format!(
            "{}/{}/{}/{}",
            self.name,
            self.version,
            self.release_channel,
            self.ops.len()
        );
        if !self.maintenance.is_unset() {
            s.push('/');
            s.push_str(&self.maintenance.resource_version());
        }
        for p in self.node_pools.values() {
            s.push('/');
            s.push_str(&self.pool_etag(p));
        }
        format!("{:016x}", fnv(&s))
    }
}

pub fn is_zone(loc: &str) -> bool {
    // `europe-west1-b` (zone) vs `europe-west1` (region).
    loc.rsplit('-')
        .next()
        .is_some_and(|l| l.len() == 1 && l.chars().all(|c| c.is_ascii_lowercase()))
}

/// Complete due operations (fixed-duration ones) and turn PENDING into RUNNING. True when the
/// world changed. `hung(cluster, pool)` pauses an operation.
pub fn advance(
    clusters: &mut BTreeMap<String, GkeCluster>,
    now: f64,
    hung: &dyn Fn(&str, Option<&str>) -> bool,
) -> bool {
    let mut changed = false;
    for g in clusters.values_mut() {
        let name = g.name.clone();
        for i in 0..g.ops.len() {
            let op = &g.ops[i];
            if !op.active() || hung(&name, op.pool.as_deref()) {
                continue;
            }
            if op.status == OpStatus::Pending && now >= op.running_at {
                g.ops[i].status = OpStatus::Running;
                changed = true;
            }
            if g.ops[i].status == OpStatus::Running && now >= g.ops[i].deadline {
                finish_op(g, i, now);
                changed = true;
            }
        }
    }
    changed
}

/// End operation `i`: apply it (or record its armed failure).
pub fn finish_op(g: &mut GkeCluster, i: usize, now: f64) {
    let op = &mut g.ops[i];
    op.status = OpStatus::Done;
    op.end = Some(now);
    if let Some(f) = op.fail.take() {
        op.error = Some(f);
        return;
    }
    if op.error.is_some() {
        return;
    }
    op.nodes_done = op.nodes_total;
    if op.op_type == "DELETE_NODE_POOL" {
        if let Some(p) = op.pool.clone() {
            g.node_pools.remove(&p);
        }
        return;
    }
    let (ty, pool, v) = (
        op.op_type.clone(),
        op.pool.clone(),
        op.target_version.clone(),
    );
    if v.is_empty() {
        return;
    }
    match (ty.as_str(), pool) {
        ("UPGRADE_MASTER", _) => g.version = v,
        ("UPGRADE_NODES", Some(p)) => {
            if let Some(np) = g.node_pools.get_mut(&p) {
                np.version = v;
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// World file form
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GkeClusterFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// `maintenancePolicy.window.dailyMaintenanceWindow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_maintenance_window: Option<DailyWindowFile>,
    /// `maintenancePolicy.window.recurringWindow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<MaintenanceWindowFile>,
    /// `maintenancePolicy.window.maintenanceExclusions`, by name.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub maintenance_exclusion: OrderedMap<ExclusionFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub node_pool: OrderedMap<NodePoolFile>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub workload: OrderedMap<WorkloadFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub helm_release: OrderedMap<crate::stage::HelmReleaseFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readyz_failing: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub operation: OrderedMap<OperationFile>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePoolFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// BLUE_GREEN: `standardRolloutPolicy.batchNodeCount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_node_count: Option<u32>,
    /// BLUE_GREEN: `standardRolloutPolicy.batchPercentage` (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_percentage: Option<f64>,
    /// BLUE_GREEN: `standardRolloutPolicy.batchSoakDuration` in seconds (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_soak_seconds: Option<f64>,
    /// BLUE_GREEN: `nodePoolSoakDuration` in seconds (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool_soak_seconds: Option<f64>,
    /// `nodeDrainConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_config: Option<DrainConfigFile>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainConfigFile {
    /// `pdbTimeoutDuration` in seconds (GKE's default: 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb_timeout_seconds: Option<f64>,
    /// `graceTerminationDuration` in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_termination_seconds: Option<f64>,
    /// `respectPdbDuringNodePoolDeletion` (GKE's default: false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect_pdb_during_deletion: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyWindowFile {
    /// "HH:MM" (GMT).
    pub start_time: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindowFile {
    /// RFC 3339: start and end of the first recurrence.
    pub start_time: String,
    pub end_time: String,
    /// RRULE.
    pub recurrence: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExclusionFile {
    pub start_time: String,
    pub end_time: String,
    /// Default `NO_UPGRADES`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationFile {
    pub operation_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
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
    pub fail_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

fn check_version(what: &str, v: &str) -> Result<(), String> {
    if catalog::GKE_VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "{what} `{v}` is not a GKE version of the catalog (one of: {})",
            catalog::GKE_VERSIONS.join(", ")
        ))
    }
}

/// Build a runtime GKE cluster from its file form.
pub fn cluster_from_file(
    name: &str,
    f: GkeClusterFile,
    now: f64,
    speed: f64,
) -> Result<GkeCluster, String> {
    if !valid_cluster_name(name) {
        return Err("GKE cluster names must be 1-40 lowercase letters, digits or `-`, starting with a letter and not ending with `-`".into());
    }
    check_version("version", &f.version)?;
    let master_minor = catalog::gke_minor(&f.version).unwrap_or(0);
    let release_channel = f.release_channel.unwrap_or_else(|| "REGULAR".into());
    if !CHANNELS.contains(&release_channel.as_str()) {
        return Err(format!(
            "release_channel `{release_channel}` must be one of {}",
            CHANNELS.join(", ")
        ));
    }
    let created_at = match &f.created_at {
        Some(t) => world::parse_time("created_at", t)?,
        None => now,
    };
    let maintenance = maintenance_from_file(
        f.daily_maintenance_window,
        f.maintenance_window,
        f.maintenance_exclusion,
    )?;
    let mut node_pools = BTreeMap::new();
    for (pname, pf) in f.node_pool.0 {
        let ctx = format!("node_pool \"{pname}\"");
        if !valid_cluster_name(&pname) {
            return Err(format!(
                "{ctx}: node pool names must be lowercase letters, digits or `-`"
            ));
        }
        let version = pf.version.unwrap_or_else(|| f.version.clone());
        check_version(&format!("{ctx}: version"), &version)?;
        let m = catalog::gke_minor(&version).unwrap_or(0);
        if catalog::gke_cmp(&version, &f.version).is_gt() {
            return Err(format!(
                "{ctx}: version `{version}` is newer than the master version `{}`",
                f.version
            ));
        }
        if m + 2 < master_minor {
            return Err(format!(
                "{ctx}: version `{version}` is more than 2 minor versions older than the master version `{}`",
                f.version
            ));
        }
        let strategy = pf.strategy.unwrap_or_else(|| "SURGE".into());
        if !["SURGE", "BLUE_GREEN"].contains(&strategy.as_str()) {
            return Err(format!(
                "{ctx}: strategy `{strategy}` must be SURGE or BLUE_GREEN"
            ));
        }
        if pf.batch_percentage.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return Err(format!("{ctx}: batch_percentage must be in (0, 1]"));
        }
        if pf.batch_soak_seconds.is_some_and(|d| d < 0.0)
            || pf.node_pool_soak_seconds.is_some_and(|d| d < 0.0)
        {
            return Err(format!("{ctx}: soak durations must not be negative"));
        }
        let max_surge = pf.max_surge.unwrap_or(1);
        let max_unavailable = pf.max_unavailable.unwrap_or(0);
        if strategy == "SURGE" && max_surge + max_unavailable == 0 {
            return Err(format!(
                "{ctx}: max_surge and max_unavailable cannot both be 0"
            ));
        }
        let drain = match pf.drain_config {
            Some(d) => {
                for (attr, v) in [
                    ("pdb_timeout_seconds", d.pdb_timeout_seconds),
                    ("grace_termination_seconds", d.grace_termination_seconds),
                ] {
                    if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                        return Err(format!(
                            "{ctx}: drain_config: {attr} must be a non-negative number of seconds"
                        ));
                    }
                }
                DrainConfig {
                    pdb_timeout_secs: d.pdb_timeout_seconds,
                    grace_termination_secs: d.grace_termination_seconds,
                    respect_pdb_during_deletion: d.respect_pdb_during_deletion,
                }
            }
            None => DrainConfig::default(),
        };
        node_pools.insert(
            pname.clone(),
            NodePool {
                name: pname,
                version,
                node_count: pf.node_count.unwrap_or(3),
                machine_type: pf.machine_type.unwrap_or_else(|| "e2-medium".into()),
                max_surge,
                max_unavailable,
                strategy,
                bg: BlueGreen {
                    batch_node_count: pf.batch_node_count,
                    batch_percentage: pf.batch_percentage.unwrap_or(1.0),
                    batch_soak_secs: pf.batch_soak_seconds.unwrap_or(0.0),
                    node_pool_soak_secs: pf.node_pool_soak_seconds.unwrap_or(3600.0),
                },
                drain,
            },
        );
    }
    // A workload may still select a pool deleted through nodePools.delete (its pods stay
    // Pending), as in a real cluster.
    let deleted: Vec<&str> = f
        .operation
        .0
        .iter()
        .filter(|(_, o)| o.operation_type == "DELETE_NODE_POOL" && o.status == "DONE")
        .filter_map(|(_, o)| o.node_pool.as_deref())
        .collect();
    let mut workloads = Vec::new();
    for (wname, wf) in f.workload.0 {
        let ctx = format!("workload \"{wname}\"");
        let w = world::workload_from_file(&wname, wf, &|p| {
            node_pools.contains_key(p) || deleted.contains(&p)
        })
        .map_err(|e| format!("{ctx}: {e}"))?;
        if workloads
            .iter()
            .any(|x: &Workload| x.name == w.name && x.namespace == w.namespace)
        {
            return Err(format!("{ctx}: duplicate workload name in the namespace"));
        }
        workloads.push(w);
    }
    let mut ops = Vec::new();
    for (oname, of) in f.operation.0 {
        let ctx = format!("operation \"{oname}\"");
        if !OP_TYPE.contains(&of.operation_type.as_str()) {
            return Err(format!(
                "{ctx}: operation_type `{}` is not an Operation type",
                of.operation_type
            ));
        }
        let status = match of.status.as_str() {
            "PENDING" => OpStatus::Pending,
            "RUNNING" => OpStatus::Running,
            "DONE" => OpStatus::Done,
            s => {
                return Err(format!(
                    "{ctx}: status `{s}` must be PENDING, RUNNING or DONE"
                ))
            }
        };
        if let Some(p) = &of.node_pool {
            // Finished operations may name a pool deleted since.
            if status != OpStatus::Done && !node_pools.contains_key(p) {
                return Err(format!(
                    "{ctx}: node_pool `{p}` is not a node pool of this cluster"
                ));
            }
        }
        let start = world::parse_time(&format!("{ctx}: start_time"), &of.start_time)?;
        let end = match &of.end_time {
            Some(t) => Some(world::parse_time(&format!("{ctx}: end_time"), t)?),
            None => None,
        };
        let deadline = match (status, of.remaining_seconds) {
            (OpStatus::Done, _) => end.unwrap_or(start),
            (_, Some(r)) => now + r.max(0.0) / speed,
            (_, None) => f64::INFINITY,
        };
        ops.push(GkeOp {
            name: oname,
            op_type: of.operation_type,
            pool: of.node_pool,
            status,
            start,
            end,
            running_at: now,
            deadline,
            target_version: of.target_version.unwrap_or_default(),
            fail: of
                .fail_code
                .map(|c| (c, of.fail_message.unwrap_or_default())),
            error: of
                .error_code
                .map(|c| (c, of.error_message.unwrap_or_default())),
            nodes_total: of.nodes_total.unwrap_or(0),
            nodes_done: if status == OpStatus::Done {
                of.nodes_total.unwrap_or(0)
            } else {
                0
            },
            bg_phase: None,
            complete_requested: false,
            rollback_requested: false,
            rollback_respect_pdb: false,
            is_rollback: false,
        });
    }
    if ops.iter().filter(|o| o.active()).count() > 1 {
        return Err("more than one operation is in progress (GKE runs one at a time)".into());
    }
    let staging = crate::stage::from_file(f.objects, f.helm_release, f.readyz_failing, false, now)?;
    Ok(GkeCluster {
        name: name.to_string(),
        project: f.project.unwrap_or_else(|| "kup-sim".into()),
        location: f.location.unwrap_or_else(|| "us-central1".into()),
        initial_version: f.initial_version.unwrap_or_else(|| f.version.clone()),
        version: f.version,
        release_channel,
        created_at,
        maintenance,
        node_pools,
        workloads,
        staging,
        ops,
        endpoint: None,
    })
}

/// "HH:MM" with HH 00-23 and MM 00-59 (`DailyMaintenanceWindow.startTime`).
fn valid_hhmm(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b':'
        && s[..2].parse::<u32>().is_ok_and(|h| h < 24)
        && s[3..].parse::<u32>().is_ok_and(|m| m < 60)
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
}

/// An RFC 3339 time window whose end is after its start.
fn time_window(ctx: &str, start: &str, end: &str) -> Result<(f64, f64), String> {
    let s = world::parse_time(&format!("{ctx}: start_time"), start)?;
    let e = world::parse_time(&format!("{ctx}: end_time"), end)?;
    if e <= s {
        return Err(format!(
            "{ctx}: end_time `{end}` must be after start_time `{start}`"
        ));
    }
    Ok((s, e))
}

fn maintenance_from_file(
    daily: Option<DailyWindowFile>,
    recurring: Option<MaintenanceWindowFile>,
    exclusions: OrderedMap<ExclusionFile>,
) -> Result<Maintenance, String> {
    if daily.is_some() && recurring.is_some() {
        return Err(
            "daily_maintenance_window and maintenance_window are mutually exclusive (a maintenance policy has one window)"
                .into(),
        );
    }
    let mut m = Maintenance::default();
    if let Some(d) = daily {
        if !valid_hhmm(&d.start_time) {
            return Err(format!(
                "daily_maintenance_window: start_time `{}` must be \"HH:MM\" (GMT, HH 00-23, MM 00-59)",
                d.start_time
            ));
        }
        m.daily_start = Some(d.start_time);
    }
    if let Some(r) = recurring {
        let (start, end) = time_window("maintenance_window", &r.start_time, &r.end_time)?;
        if !r.recurrence.starts_with("FREQ=") {
            return Err(format!(
                "maintenance_window: recurrence `{}` must be an RRULE starting with FREQ= (e.g. \"FREQ=WEEKLY;BYDAY=SA,SU\")",
                r.recurrence
            ));
        }
        m.recurring = Some(RecurringWindow {
            start,
            end,
            recurrence: r.recurrence,
        });
    }
    for (name, x) in exclusions.0 {
        let ctx = format!("maintenance_exclusion \"{name}\"");
        if name.is_empty() {
            return Err(format!("{ctx}: the name must not be empty"));
        }
        let (start, end) = time_window(&ctx, &x.start_time, &x.end_time)?;
        let scope = x.scope.unwrap_or_else(|| "NO_UPGRADES".into());
        if !EXCLUSION_SCOPES.contains(&scope.as_str()) {
            return Err(format!(
                "{ctx}: scope `{scope}` must be one of {}",
                EXCLUSION_SCOPES.join(", ")
            ));
        }
        m.exclusions.insert(name, Exclusion { start, end, scope });
    }
    Ok(m)
}

fn valid_cluster_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The file form of a runtime GKE cluster.
pub fn cluster_to_file(g: &GkeCluster, now: f64, speed: f64) -> GkeClusterFile {
    let (objects, helm_release, readyz_failing) = crate::stage::to_file(&g.staging);
    let remaining = |deadline: f64| ((deadline - now).max(0.0) * speed * 1000.0).round() / 1000.0;
    GkeClusterFile {
        project: Some(g.project.clone()),
        location: Some(g.location.clone()),
        version: g.version.clone(),
        initial_version: Some(g.initial_version.clone()),
        release_channel: Some(g.release_channel.clone()),
        created_at: Some(world::fmt_time(g.created_at)),
        daily_maintenance_window: g
            .maintenance
            .daily_start
            .clone()
            .map(|start_time| DailyWindowFile { start_time }),
        maintenance_window: g
            .maintenance
            .recurring
            .as_ref()
            .map(|r| MaintenanceWindowFile {
                start_time: world::fmt_time(r.start),
                end_time: world::fmt_time(r.end),
                recurrence: r.recurrence.clone(),
            }),
        maintenance_exclusion: OrderedMap(
            g.maintenance
                .exclusions
                .iter()
                .map(|(n, x)| {
                    (
                        n.clone(),
                        ExclusionFile {
                            start_time: world::fmt_time(x.start),
                            end_time: world::fmt_time(x.end),
                            scope: Some(x.scope.clone()),
                        },
                    )
                })
                .collect(),
        ),
        node_pool: OrderedMap(
            g.node_pools
                .values()
                .map(|p| {
                    (
                        p.name.clone(),
                        NodePoolFile {
                            version: Some(p.version.clone()),
                            node_count: Some(p.node_count),
                            machine_type: Some(p.machine_type.clone()),
                            max_surge: Some(p.max_surge),
                            max_unavailable: Some(p.max_unavailable),
                            strategy: Some(p.strategy.clone()),
                            batch_node_count: p.bg.batch_node_count,
                            batch_percentage: Some(p.bg.batch_percentage),
                            batch_soak_seconds: Some(p.bg.batch_soak_secs),
                            node_pool_soak_seconds: Some(p.bg.node_pool_soak_secs),
                            drain_config: (!p.drain.is_unset()).then_some(DrainConfigFile {
                                pdb_timeout_seconds: p.drain.pdb_timeout_secs,
                                grace_termination_seconds: p.drain.grace_termination_secs,
                                respect_pdb_during_deletion: p.drain.respect_pdb_during_deletion,
                            }),
                        },
                    )
                })
                .collect(),
        ),
        objects,
        helm_release,
        readyz_failing,
        workload: OrderedMap(
            g.workloads
                .iter()
                .map(|w| (w.name.clone(), world::workload_to_file(w)))
                .collect(),
        ),
        operation: OrderedMap(
            g.ops
                .iter()
                .map(|o| {
                    (
                        o.name.clone(),
                        OperationFile {
                            operation_type: o.op_type.clone(),
                            node_pool: o.pool.clone(),
                            status: o.status.as_str().to_string(),
                            target_version: (!o.target_version.is_empty())
                                .then(|| o.target_version.clone()),
                            start_time: world::fmt_time(o.start),
                            end_time: o.end.map(world::fmt_time),
                            remaining_seconds: (o.active() && o.deadline.is_finite())
                                .then(|| remaining(o.deadline)),
                            nodes_total: Some(o.nodes_total),
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
// Errors
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub struct GkeError {
    pub status: &'static str,
    pub message: String,
}

impl GkeError {
    pub fn new(status: &'static str, message: impl Into<String>) -> Self {
        GkeError {
            status,
            message: message.into(),
        }
    }

    fn http(&self) -> StatusCode {
        match self.status {
            "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => StatusCode::BAD_REQUEST,
            "NOT_FOUND" => StatusCode::NOT_FOUND,
            "ABORTED" | "ALREADY_EXISTS" => StatusCode::CONFLICT,
            "RESOURCE_EXHAUSTED" => StatusCode::TOO_MANY_REQUESTS,
            "PERMISSION_DENIED" => StatusCode::FORBIDDEN,
            "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
            "UNIMPLEMENTED" => StatusCode::NOT_IMPLEMENTED,
            "UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
            "DEADLINE_EXCEEDED" => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for GkeError {
    fn into_response(self) -> Response {
        let code = self.http();
        (
            code,
            axum::Json(json!({ "error": {
                "code": code.as_u16(),
                "message": self.message,
                "status": self.status,
            }})),
        )
            .into_response()
    }
}

type R<T> = Result<T, GkeError>;

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Route {
    ServerConfig,
    ListClusters,
    GetCluster(String),
    UpdateCluster(String),
    UpdateMaster(String),
    ListPools(String),
    GetPool(String, String),
    CreatePool(String),
    DeletePool(String, String),
    UpdatePool(String, String),
    SetPoolSize(String, String),
    CompleteUpgrade(String, String),
    Rollback(String, String),
    ListOps,
    GetOp(String),
}

impl Route {
    fn op(&self) -> &'static str {
        match self {
            Route::ServerConfig => "projects.locations.getServerConfig",
            Route::ListClusters => "projects.locations.clusters.list",
            Route::GetCluster(_) => "projects.locations.clusters.get",
            Route::UpdateCluster(_) => "projects.locations.clusters.update",
            Route::UpdateMaster(_) => "projects.locations.clusters.updateMaster",
            Route::ListPools(_) => "projects.locations.clusters.nodePools.list",
            Route::GetPool(..) => "projects.locations.clusters.nodePools.get",
            Route::CreatePool(_) => "projects.locations.clusters.nodePools.create",
            Route::DeletePool(..) => "projects.locations.clusters.nodePools.delete",
            Route::UpdatePool(..) => "projects.locations.clusters.nodePools.update",
            Route::SetPoolSize(..) => "projects.locations.clusters.nodePools.setSize",
            Route::CompleteUpgrade(..) => "projects.locations.clusters.nodePools.completeUpgrade",
            Route::Rollback(..) => "projects.locations.clusters.nodePools.rollback",
            Route::ListOps => "projects.locations.operations.list",
            Route::GetOp(_) => "projects.locations.operations.get",
        }
    }

    fn mutating(&self) -> bool {
        matches!(
            self,
            Route::UpdateCluster(_)
                | Route::UpdateMaster(_)
                | Route::UpdatePool(..)
                | Route::CreatePool(_)
                | Route::DeletePool(..)
                | Route::SetPoolSize(..)
                | Route::CompleteUpgrade(..)
                | Route::Rollback(..)
        )
    }

    fn target(&self) -> (Option<String>, Option<String>) {
        match self {
            Route::GetCluster(c)
            | Route::UpdateCluster(c)
            | Route::UpdateMaster(c)
            | Route::ListPools(c)
            | Route::CreatePool(c) => (Some(c.clone()), None),
            Route::GetPool(c, p)
            | Route::UpdatePool(c, p)
            | Route::DeletePool(c, p)
            | Route::SetPoolSize(c, p)
            | Route::CompleteUpgrade(c, p)
            | Route::Rollback(c, p) => (Some(c.clone()), Some(p.clone())),
            _ => (None, None),
        }
    }
}

/// Parse `/v1/projects/{p}/locations/{l}/…` into (project, location, route).
fn parse_route(method: &Method, path: &str) -> Option<(String, String, Route)> {
    let rest = path.strip_prefix("/v1/projects/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.len() < 4 || segs[1] != "locations" {
        return None;
    }
    let (p, l) = (segs[0].to_string(), segs[2].to_string());
    let s = &segs[3..];
    let m = method.clone();
    let r = match (m, s) {
        (Method::GET, ["serverConfig"]) => Route::ServerConfig,
        (Method::GET, ["clusters"]) => Route::ListClusters,
        (Method::GET, ["operations"]) => Route::ListOps,
        (Method::GET, ["operations", o]) => Route::GetOp(o.to_string()),
        (Method::GET, ["clusters", c]) => Route::GetCluster(c.to_string()),
        (Method::PUT, ["clusters", c]) => Route::UpdateCluster(c.to_string()),
        (Method::POST, ["clusters", c]) => {
            let c = c.strip_suffix(":updateMaster")?;
            Route::UpdateMaster(c.to_string())
        }
        (Method::GET, ["clusters", c, "nodePools"]) => Route::ListPools(c.to_string()),
        (Method::POST, ["clusters", c, "nodePools"]) => Route::CreatePool(c.to_string()),
        (Method::DELETE, ["clusters", c, "nodePools", np]) => {
            Route::DeletePool(c.to_string(), np.to_string())
        }
        (Method::GET, ["clusters", c, "nodePools", np]) => {
            Route::GetPool(c.to_string(), np.to_string())
        }
        (Method::PUT, ["clusters", c, "nodePools", np]) => {
            Route::UpdatePool(c.to_string(), np.to_string())
        }
        (Method::POST, ["clusters", c, "nodePools", np]) => {
            let (np, verb) = np.split_once(':')?;
            let (c, np) = (c.to_string(), np.to_string());
            match verb {
                "setSize" => Route::SetPoolSize(c, np),
                "completeUpgrade" => Route::CompleteUpgrade(c, np),
                "rollback" => Route::Rollback(c, np),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((p, l, r))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTTP entry point for every `/v1/projects/…` request.
pub async fn handle(
    app: &Arc<App>,
    method: Method,
    uri: &Uri,
    _headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = percent_decode(uri.query().unwrap_or(""));
    let ints = query.contains("enum-encoding=int");
    let Some((project, location, route)) = parse_route(&method, &path) else {
        return GkeError::new(
            "NOT_FOUND",
            format!("No GKE method matches {method} {path} (the simulator serves clusters.get/list/update/updateMaster, nodePools.get/list/create/delete/update/setSize/completeUpgrade/rollback, operations.get/list and getServerConfig under /v1/projects/PROJECT/locations/LOCATION/)"),
        )
        .into_response();
    };
    let body_json: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return GkeError::new(
                    "INVALID_ARGUMENT",
                    format!("Invalid JSON payload received. {e}"),
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
        let fault = inner.faults.roll(&format!("gke {method} {}", route.op()));
        let result = match fault {
            Some(Fault::Throttle) => Err(GkeError::new(
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'container.googleapis.com'.",
            )),
            Some(Fault::Error500) => Err(GkeError::new(
                "INTERNAL",
                "Internal error encountered.",
            )),
            Some(Fault::Error503) => Err(GkeError::new(
                "UNAVAILABLE",
                "The service is currently unavailable.",
            )),
            _ => execute(&mut inner, &project, &location, &route, &body_json, now, app.speed),
        };
        let (cluster, mut pool) = route.target();
        if let Route::CreatePool(_) = route {
            pool = body_json["nodePool"]["name"].as_str().map(str::to_string);
        }
        if route.mutating() {
            let rec = CallRecord {
                op: route.op().to_string(),
                cluster,
                nodegroup: pool,
                addon: None,
                client_request_token: None,
                update_id: result
                    .as_ref()
                    .ok()
                    .and_then(|(v, _)| v["name"].as_str().map(str::to_string)),
                replay: false,
                mutation: result.as_ref().is_ok_and(|(_, m)| *m),
                error: result.as_ref().err().map(|e| e.status.to_string()),
                at: world::fmt_time(now),
                fault: fault.filter(|f| !f.refuses()).map(Fault::key),
            };
            inner.calls.push(rec);
        }
        let mutated = result.as_ref().is_ok_and(|(_, m)| *m);
        if changed || mutated {
            app.save_logged(&inner, now);
        }
        let faults = &inner.faults;
        (result, fault, faults.spec.retry_after, faults.stall_for())
    };
    let resp = match result {
        Ok((mut v, _)) => {
            if ints {
                intify(&route, &mut v);
            }
            (StatusCode::OK, axum::Json(v)).into_response()
        }
        Err(e) => e.into_response(),
    };
    crate::server::faulted(fault, resp, retry_after, stall_for).await
}

// ---------------------------------------------------------------------------------------------
// Enum encoding
// ---------------------------------------------------------------------------------------------

fn to_int(v: &mut Value, table: &[&str]) {
    if let Some(s) = v.as_str() {
        if let Some(i) = table.iter().position(|t| *t == s) {
            *v = json!(i);
        }
    }
}

fn intify_op(o: &mut Value) {
    to_int(&mut o["status"], OP_STATUS);
    to_int(&mut o["operationType"], OP_TYPE);
    if o["progress"].is_object() {
        to_int(&mut o["progress"]["status"], OP_STATUS);
    }
}

fn intify_pool(p: &mut Value) {
    to_int(&mut p["status"], POOL_STATUS);
    if p["upgradeSettings"].is_object() {
        to_int(&mut p["upgradeSettings"]["strategy"], STRATEGIES);
    }
    if p["updateInfo"]["blueGreenInfo"].is_object() {
        to_int(&mut p["updateInfo"]["blueGreenInfo"]["phase"], BG_PHASES);
    }
}

fn intify_cluster(c: &mut Value) {
    to_int(&mut c["status"], CLUSTER_STATUS);
    if c["releaseChannel"].is_object() {
        to_int(&mut c["releaseChannel"]["channel"], CHANNELS);
    }
    if let Some(ps) = c["nodePools"].as_array_mut() {
        ps.iter_mut().for_each(intify_pool);
    }
    if let Some(xs) = c["maintenancePolicy"]["window"]["maintenanceExclusions"].as_object_mut() {
        for x in xs.values_mut() {
            if x["maintenanceExclusionOptions"].is_object() {
                to_int(
                    &mut x["maintenanceExclusionOptions"]["scope"],
                    EXCLUSION_SCOPES,
                );
            }
        }
    }
}

fn intify(route: &Route, v: &mut Value) {
    match route {
        Route::ServerConfig => {
            if let Some(cs) = v["channels"].as_array_mut() {
                for c in cs {
                    to_int(&mut c["channel"], CHANNELS);
                }
            }
        }
        Route::ListClusters => {
            if let Some(cs) = v["clusters"].as_array_mut() {
                cs.iter_mut().for_each(intify_cluster);
            }
        }
        Route::GetCluster(_) => intify_cluster(v),
        Route::ListPools(_) => {
            if let Some(ps) = v["nodePools"].as_array_mut() {
                ps.iter_mut().for_each(intify_pool);
            }
        }
        Route::GetPool(..) => intify_pool(v),
        Route::ListOps => {
            if let Some(os) = v["operations"].as_array_mut() {
                os.iter_mut().for_each(intify_op);
            }
        }
        Route::GetOp(_)
        | Route::UpdateCluster(_)
        | Route::UpdateMaster(_)
        | Route::UpdatePool(..)
        | Route::CreatePool(_)
        | Route::DeletePool(..)
        | Route::SetPoolSize(..)
        | Route::Rollback(..) => intify_op(v),
        Route::CompleteUpgrade(..) => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

const API: &str = "https://container.googleapis.com/v1";

fn cluster_link(g: &GkeCluster) -> String {
    format!(
        "{API}/projects/{}/locations/{}/clusters/{}",
        g.project, g.location, g.name
    )
}

fn pool_json(g: &GkeCluster, p: &NodePool) -> Value {
    let mut us = json!({
        "maxSurge": p.max_surge,
        "maxUnavailable": p.max_unavailable,
        "strategy": p.strategy,
    });
    if p.strategy == "BLUE_GREEN" {
        let mut policy = json!({ "batchSoakDuration": format!("{}s", p.bg.batch_soak_secs) });
        match p.bg.batch_node_count {
            Some(n) => policy["batchNodeCount"] = json!(n),
            None => policy["batchPercentage"] = json!(p.bg.batch_percentage),
        }
        us["blueGreenSettings"] = json!({
            "standardRolloutPolicy": policy,
            "nodePoolSoakDuration": format!("{}s", p.bg.node_pool_soak_secs),
        });
    }
    let zones = g.zones();
    let update_info = g
        .active_op()
        .filter(|o| o.pool.as_deref() == Some(&p.name))
        .and_then(|o| o.bg_phase.as_ref().map(|ph| (o, ph)))
        .map(|(o, ph)| {
            let igs = |color: &str| -> Vec<String> {
                zones.iter().map(|z| format!(
                    "https://www.googleapis.com/compute/v1/projects/{}/zones/{z}/instanceGroupManagers/gke-{}-{}-{color}-{:08x}-grp",
                    g.project, g.name, p.name, fnv(&format!("{}/{}/{z}/{color}", g.name, p.name)) as u32
                )).collect()
            };
            json!({ "blueGreenInfo": {
                "phase": ph,
                "greenPoolVersion": o.target_version,
                "blueInstanceGroupUrls": igs("blue"),
                "greenInstanceGroupUrls": igs("green"),
            }})
        });
    let mut v = json!({
        "name": p.name,
        "config": {
            "machineType": p.machine_type,
            "diskSizeGb": 100,
            "diskType": "pd-balanced",
            "imageType": "COS_CONTAINERD",
            "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "serviceAccount": "default",
            "metadata": { "disable-legacy-endpoints": "true" },
        },
        // GKE counts per zone: a regional pool of node_count nodes over 3 zones reports
        // node_count / 3 (rounded up).
        "initialNodeCount": p.node_count.div_ceil(zones.len().max(1) as u32),
        "locations": zones,
        "selfLink": format!("{}/nodePools/{}", cluster_link(g), p.name),
        "version": p.version,
        "instanceGroupUrls": zones.iter().map(|z| format!(
            "https://www.googleapis.com/compute/v1/projects/{}/zones/{z}/instanceGroupManagers/gke-{}-{}-{:08x}-grp",
            g.project, g.name, p.name, fnv(&format!("{}/{}/{z}", g.name, p.name)) as u32
        )).collect::<Vec<_>>(),
        "status": g.pool_status(&p.name),
        "management": { "autoUpgrade": g.release_channel != "UNSPECIFIED", "autoRepair": true },
        "maxPodsConstraint": { "maxPodsPerNode": "110" },
        "podIpv4CidrSize": 24,
        "upgradeSettings": us,
        "updateInfo": update_info,
        "etag": g.pool_etag(p),
    });
    if !p.drain.is_unset() {
        v["nodeDrainConfig"] = drain_json(&p.drain);
    }
    if let Some(m) = g.pool_error(&p.name) {
        v["statusMessage"] = json!(m);
    }
    v
}

/// `nodeDrainConfig` with the fields that were set.
fn drain_json(d: &DrainConfig) -> Value {
    let mut v = json!({});
    if let Some(t) = d.pdb_timeout_secs {
        v["pdbTimeoutDuration"] = json!(format!("{t}s"));
    }
    if let Some(t) = d.grace_termination_secs {
        v["graceTerminationDuration"] = json!(format!("{t}s"));
    }
    if let Some(r) = d.respect_pdb_during_deletion {
        v["respectPdbDuringNodePoolDeletion"] = json!(r);
    }
    v
}

/// `Cluster.maintenancePolicy` as GKE reports it: always a `resourceVersion`, a `window` only
/// when something is set.
fn maintenance_json(m: &Maintenance) -> Value {
    let mut v = json!({ "resourceVersion": m.resource_version() });
    if m.is_unset() {
        return v;
    }
    let mut w = json!({});
    if let Some(start) = &m.daily_start {
        w["dailyMaintenanceWindow"] =
            json!({ "startTime": start, "duration": DAILY_WINDOW_DURATION });
    }
    if let Some(r) = &m.recurring {
        w["recurringWindow"] = json!({
            "window": { "startTime": world::fmt_time(r.start), "endTime": world::fmt_time(r.end) },
            "recurrence": r.recurrence,
        });
    }
    if !m.exclusions.is_empty() {
        w["maintenanceExclusions"] = m
            .exclusions
            .iter()
            .map(|(n, x)| {
                (
                    n.clone(),
                    json!({
                        "startTime": world::fmt_time(x.start),
                        "endTime": world::fmt_time(x.end),
                        "maintenanceExclusionOptions": { "scope": x.scope },
                    }),
                )
            })
            .collect::<serde_json::Map<String, Value>>()
            .into();
    }
    v["window"] = w;
    v
}

fn cluster_json(g: &GkeCluster) -> Value {
    let node_version = g
        .node_pools
        .values()
        .map(|p| p.version.as_str())
        .min_by(|a, b| catalog::gke_cmp(a, b))
        .unwrap_or(g.version.as_str())
        .to_string();
    let host = g
        .endpoint
        .as_deref()
        .map(|e| e.trim_start_matches("http://").to_string())
        .unwrap_or_default();
    let nodes: u32 = g.node_pools.values().map(|p| p.node_count).sum();
    json!({
        "name": g.name,
        "nodePools": g.node_pools.values().map(|p| pool_json(g, p)).collect::<Vec<_>>(),
        "locations": g.zones(),
        "location": g.location,
        "zone": g.location,
        "selfLink": cluster_link(g),
        "id": format!("{:032x}", fnv(&format!("{}/{}", g.project, g.name)) as u128 * 0x1_0000_0001),
        "endpoint": host,
        "masterAuth": {
            "clusterCaCertificate": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmt1cC1zaW0gZmFrZSBDQQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==",
        },
        "network": "default",
        "subnetwork": "default",
        "loggingService": "logging.googleapis.com/kubernetes",
        "monitoringService": "monitoring.googleapis.com/kubernetes",
        "initialClusterVersion": g.initial_version,
        "currentMasterVersion": g.version,
        "currentNodeVersion": node_version,
        "currentNodeCount": nodes,
        "createTime": world::fmt_time(g.created_at),
        "status": g.status(),
        "releaseChannel": { "channel": g.release_channel },
        "maintenancePolicy": maintenance_json(&g.maintenance),
        "etag": g.etag(),
    })
}

fn op_json(g: &GkeCluster, o: &GkeOp) -> Value {
    let target = match &o.pool {
        Some(p) => format!("{}/nodePools/{p}", cluster_link(g)),
        None => cluster_link(g),
    };
    let mut v = json!({
        "name": o.name,
        "zone": g.location,
        "location": g.location,
        "operationType": o.op_type,
        "status": o.status.as_str(),
        "selfLink": format!("{API}/projects/{}/locations/{}/operations/{}", g.project, g.location, o.name),
        "targetLink": target,
        "startTime": world::fmt_time(o.start),
    });
    if let Some(e) = o.end {
        v["endTime"] = json!(world::fmt_time(e));
    }
    if o.op_type == "UPGRADE_NODES" || o.op_type == "SET_NODE_POOL_SIZE" {
        let done = if o.status == OpStatus::Done && o.error.is_none() {
            o.nodes_total
        } else {
            o.nodes_done
        };
        v["progress"] = json!({
            "status": o.status.as_str(),
            "metrics": [
                { "name": "NODES_TOTAL", "intValue": o.nodes_total.to_string() },
                { "name": "NODES_FAILED", "intValue": "0" },
                { "name": "NODES_COMPLETE", "intValue": done.to_string() },
                { "name": "NODES_DONE", "intValue": done.to_string() },
            ],
        });
    } else if o.op_type == "UPGRADE_MASTER" {
        v["progress"] = json!({ "status": o.status.as_str() });
    }
    if let Some((code, msg)) = &o.error {
        v["error"] = json!({ "code": rpc_code(code), "message": msg });
        v["statusMessage"] = json!(msg);
    }
    v
}

fn server_config() -> Value {
    json!({
        "defaultClusterVersion": catalog::GKE_DEFAULT_VERSION,
        "validNodeVersions": catalog::GKE_VERSIONS,
        "defaultImageType": "COS_CONTAINERD",
        "validImageTypes": ["COS_CONTAINERD", "UBUNTU_CONTAINERD", "WINDOWS_LTSC_CONTAINERD"],
        "validMasterVersions": catalog::GKE_VERSIONS,
        "channels": catalog::GKE_CHANNELS.iter().map(|(c, _, d)| json!({
            "channel": c,
            "defaultVersion": d,
            "validVersions": catalog::gke_channel_versions(c),
            "upgradeTargetVersion": d,
        })).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

fn not_found(project: &str, location: &str, what: &str) -> GkeError {
    GkeError::new(
        "NOT_FOUND",
        format!("Not found: projects/{project}/locations/{location}/{what}."),
    )
}

fn find_cluster<'a>(
    inner: &'a mut Inner,
    project: &str,
    location: &str,
    name: &str,
) -> R<&'a mut GkeCluster> {
    match inner.world.gke.get_mut(name) {
        Some(g) if g.project == project && g.location == location => Ok(g),
        _ => Err(not_found(project, location, &format!("clusters/{name}"))),
    }
}

fn check_idle(g: &GkeCluster) -> R<()> {
    match g.active_op() {
        Some(o) if o.op_type == "UPGRADE_MASTER" => Err(GkeError::new(
            "FAILED_PRECONDITION",
            format!(
                "Operation {} is currently upgrading cluster {}. Please wait and try again once it is done.",
                o.name, g.name
            ),
        )),
        Some(o) => Err(GkeError::new(
            "FAILED_PRECONDITION",
            format!("Cluster is running incompatible operation {}.", o.name),
        )),
        None => Ok(()),
    }
}

fn check_etag(have: String, body: &Value) -> R<()> {
    match body.get("etag").and_then(Value::as_str) {
        Some(e) if !e.is_empty() && e != have => Err(GkeError::new(
            "ABORTED",
            format!("Provided etag \"{e}\" does not match the current etag \"{have}\"; the resource was modified since it was read."),
        )),
        _ => Ok(()),
    }
}

fn op_name(now: f64, seed: &str) -> String {
    format!(
        "operation-{}-{:08x}",
        (now * 1000.0) as u64,
        fnv(&format!("{seed}{now}{}", uuid::Uuid::new_v4())) as u32
    )
}

struct NewOp {
    op_type: &'static str,
    pool: Option<String>,
    target_version: String,
    secs: f64,
    nodes_total: u32,
    fail: Option<(String, String)>,
}

fn start_op(g: &mut GkeCluster, n: NewOp, now: f64, speed: f64) -> Value {
    let name = op_name(now, &g.name);
    let running_at = now + PENDING_SECS / speed;
    let deadline = if n.secs.is_finite() {
        running_at + n.secs / speed
    } else {
        f64::INFINITY
    };
    g.ops.push(GkeOp {
        name,
        op_type: n.op_type.to_string(),
        pool: n.pool,
        status: OpStatus::Pending,
        start: now,
        end: None,
        running_at,
        deadline,
        target_version: n.target_version,
        fail: n.fail,
        error: None,
        nodes_total: n.nodes_total,
        nodes_done: 0,
        bg_phase: None,
        complete_requested: false,
        rollback_requested: false,
        rollback_respect_pdb: false,
        is_rollback: false,
    });
    op_json(g, g.ops.last().expect("pushed"))
}

/// Take an armed `fail=` fault for this cluster (and pool).
/// `verb` names the pool operation in the default message ("upgrade", "create", "delete").
fn take_fail(
    inner: &mut Inner,
    cluster: &str,
    pool: Option<&str>,
    verb: &str,
) -> Option<(String, String)> {
    let i = inner
        .faults
        .fails
        .iter()
        .position(|f| f.target.matches(cluster, pool, None))?;
    let f = inner.faults.fails.remove(i);
    let code = if RPC_CODES.contains(&f.code.as_str()) {
        f.code.clone()
    } else {
        "INTERNAL".to_string()
    };
    let msg = f.message.clone().unwrap_or_else(|| match pool {
        Some(p) => format!(
            "Failed to {verb} node pool {p}: injected failure ({}).",
            f.code
        ),
        None => format!(
            "Failed to upgrade the control plane: injected failure ({}).",
            f.code
        ),
    });
    Some((code, msg))
}

/// Validate and start a master upgrade to `alias`.
fn upgrade_master(
    inner: &mut Inner,
    project: &str,
    location: &str,
    name: &str,
    alias: &str,
    now: f64,
    speed: f64,
) -> R<Value> {
    let g = find_cluster(inner, project, location, name)?;
    let target = catalog::gke_resolve(alias, catalog::GKE_DEFAULT_VERSION).ok_or_else(|| {
        GkeError::new(
            "INVALID_ARGUMENT",
            format!("Master version \"{alias}\" is unsupported."),
        )
    })?;
    let cur = g.version.clone();
    let (cm, tm) = (
        catalog::gke_minor(&cur).unwrap_or(0),
        catalog::gke_minor(&target).unwrap_or(0),
    );
    if tm > cm + 1 {
        return Err(GkeError::new(
            "INVALID_ARGUMENT",
            format!("Master cannot be upgraded to \"{target}\": upgrading the master by more than one minor version at a time is not supported (current version \"{cur}\"). Upgrade to 1.{} first.", cm + 1),
        ));
    }
    if tm < cm {
        return Err(GkeError::new(
            "INVALID_ARGUMENT",
            format!("Master cannot be downgraded from \"{cur}\" to \"{target}\": minor version downgrades are not supported."),
        ));
    }
    if target == cur {
        return Err(GkeError::new(
            "INVALID_ARGUMENT",
            format!("Master is already at version \"{cur}\"."),
        ));
    }
    if g.release_channel != "UNSPECIFIED"
        && !catalog::gke_channel_versions(&g.release_channel).contains(&target.as_str())
    {
        return Err(GkeError::new(
            "INVALID_ARGUMENT",
            format!(
                "Master version \"{target}\" is not available in the {} release channel.",
                g.release_channel
            ),
        ));
    }
    let old: Vec<String> = g
        .node_pools
        .values()
        .filter(|p| catalog::gke_minor(&p.version).unwrap_or(0) + 2 < tm)
        .map(|p| format!("{} ({})", p.name, p.version))
        .collect();
    if !old.is_empty() {
        return Err(GkeError::new(
            "FAILED_PRECONDITION",
            format!("Master cannot be upgraded to \"{target}\": node pools would be more than 2 minor versions older than the master: {}. Upgrade the node pools first.", old.join(", ")),
        ));
    }
    check_idle(g)?;
    let fail = take_fail(inner, name, None, "upgrade");
    let g = find_cluster(inner, project, location, name)?;
    Ok(start_op(
        g,
        NewOp {
            op_type: "UPGRADE_MASTER",
            pool: None,
            target_version: target,
            secs: MASTER_UPGRADE_SECS,
            nodes_total: 0,
            fail,
        },
        now,
        speed,
    ))
}

/// A node version alias (`-` = the master's version), checked against GKE's node skew rules.
fn node_version(g: &GkeCluster, a: &str) -> R<String> {
    let t = catalog::gke_resolve(a, &g.version).ok_or_else(|| {
        GkeError::new(
            "INVALID_ARGUMENT",
            format!("Node version \"{a}\" is unsupported."),
        )
    })?;
    if catalog::gke_cmp(&t, &g.version).is_gt() {
        return Err(GkeError::new(
            "INVALID_ARGUMENT",
            format!(
                "Node version \"{t}\" must not be newer than the master version \"{}\". Upgrade the master first.",
                g.version
            ),
        ));
    }
    let (mm, tm) = (
        catalog::gke_minor(&g.version).unwrap_or(0),
        catalog::gke_minor(&t).unwrap_or(0),
    );
    if tm + 2 < mm {
        return Err(GkeError::new(
            "INVALID_ARGUMENT",
            format!(
                "Node version \"{t}\" is more than 2 minor versions older than the master version \"{}\".",
                g.version
            ),
        ));
    }
    Ok(t)
}

/// Apply a request's `upgradeSettings` to `np` (nodePools.update and nodePools.create).
fn apply_upgrade_settings(np: &mut NodePool, us: &Value) -> R<()> {
    if let Some(v) = us.get("maxSurge") {
        np.max_surge = v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| {
                GkeError::new(
                    "INVALID_ARGUMENT",
                    "upgradeSettings.maxSurge must be a non-negative integer",
                )
            })? as u32;
    }
    if let Some(v) = us.get("maxUnavailable") {
        np.max_unavailable = v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| {
                GkeError::new(
                    "INVALID_ARGUMENT",
                    "upgradeSettings.maxUnavailable must be a non-negative integer",
                )
            })? as u32;
    }
    if let Some(v) = us.get("strategy") {
        let s = enum_in(STRATEGIES, v).ok_or_else(|| {
            GkeError::new(
                "INVALID_ARGUMENT",
                format!("Invalid value at 'upgrade_settings.strategy': {v}"),
            )
        })?;
        match s.as_str() {
            "SURGE" | "BLUE_GREEN" => np.strategy = s,
            "NODE_POOL_UPDATE_STRATEGY_UNSPECIFIED" => np.strategy = "SURGE".into(),
            other => {
                return Err(GkeError::new(
                    "INVALID_ARGUMENT",
                    format!(
                        "Node pool upgrade strategy {other} is not supported for this node pool."
                    ),
                ))
            }
        }
    }
    if let Some(bg) = us.get("blueGreenSettings") {
        let bad = |f: &str| {
            GkeError::new(
                "INVALID_ARGUMENT",
                format!("Invalid value at 'upgrade_settings.blue_green_settings.{f}'"),
            )
        };
        let pol = &bg["standardRolloutPolicy"];
        if let Some(n) = pol.get("batchNodeCount") {
            np.bg.batch_node_count = Some(
                n.as_u64()
                    .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("standard_rollout_policy.batch_node_count"))?
                    as u32,
            );
        }
        if let Some(pc) = pol.get("batchPercentage") {
            let pc = pc
                .as_f64()
                .filter(|p| *p > 0.0 && *p <= 1.0)
                .ok_or_else(|| bad("standard_rollout_policy.batch_percentage"))?;
            np.bg.batch_percentage = pc;
            np.bg.batch_node_count = None;
        }
        if let Some(d) = pol.get("batchSoakDuration") {
            np.bg.batch_soak_secs = duration_secs(d)
                .ok_or_else(|| bad("standard_rollout_policy.batch_soak_duration"))?;
        }
        if let Some(d) = bg.get("nodePoolSoakDuration") {
            np.bg.node_pool_soak_secs =
                duration_secs(d).ok_or_else(|| bad("node_pool_soak_duration"))?;
        }
    }
    if np.strategy == "SURGE" && np.max_surge + np.max_unavailable == 0 {
        return Err(GkeError::new(
            "INVALID_ARGUMENT",
            "upgradeSettings: maxSurge and maxUnavailable cannot both be 0.",
        ));
    }
    Ok(())
}

/// Apply a request's `nodeDrainConfig` to `np` (fields absent from the request are kept).
fn apply_drain_config(np: &mut NodePool, d: &Value) -> R<()> {
    if !d.is_object() {
        return Err(GkeError::new(
            "INVALID_ARGUMENT",
            format!("Invalid value at 'node_drain_config': {d}"),
        ));
    }
    let dur = |field: &str, v: &Value| {
        duration_secs(v).ok_or_else(|| {
            GkeError::new(
                "INVALID_ARGUMENT",
                format!("Invalid value at 'node_drain_config.{field}' (type.googleapis.com/google.protobuf.Duration), {v}"),
            )
        })
    };
    if let Some(v) = d.get("pdbTimeoutDuration").filter(|v| !v.is_null()) {
        np.drain.pdb_timeout_secs = Some(dur("pdb_timeout_duration", v)?);
    }
    if let Some(v) = d.get("graceTerminationDuration").filter(|v| !v.is_null()) {
        np.drain.grace_termination_secs = Some(dur("grace_termination_duration", v)?);
    }
    if let Some(v) = d
        .get("respectPdbDuringNodePoolDeletion")
        .filter(|v| !v.is_null())
    {
        np.drain.respect_pdb_during_deletion = Some(v.as_bool().ok_or_else(|| {
            GkeError::new(
                "INVALID_ARGUMENT",
                format!("Invalid value at 'node_drain_config.respect_pdb_during_node_pool_deletion' (TYPE_BOOL), {v}"),
            )
        })?);
    }
    Ok(())
}

/// Validate and start a node-pool version upgrade (and/or an upgradeSettings /
/// nodeDrainConfig change).
#[allow(clippy::too_many_arguments)]
fn upgrade_pool(
    inner: &mut Inner,
    project: &str,
    location: &str,
    name: &str,
    pool: &str,
    alias: Option<&str>,
    settings: Option<&Value>,
    drain: Option<&Value>,
    now: f64,
    speed: f64,
) -> R<Value> {
    let g = find_cluster(inner, project, location, name)?;
    let Some(p) = g.node_pools.get(pool).cloned() else {
        return Err(not_found(
            project,
            location,
            &format!("clusters/{name}/nodePools/{pool}"),
        ));
    };
    let mut np = p.clone();
    if let Some(us) = settings {
        apply_upgrade_settings(&mut np, us)?;
    }
    if let Some(d) = drain {
        apply_drain_config(&mut np, d)?;
    }
    let target = match alias {
        Some(a) => Some(node_version(g, a)?),
        None => None,
    };
    check_idle(g)?;
    g.node_pools.insert(pool.to_string(), np.clone());
    let upgrade = target.filter(|t| *t != p.version);
    let fail = take_fail(inner, name, Some(pool), "upgrade");
    let g = find_cluster(inner, project, location, name)?;
    let op = match upgrade {
        Some(t) => NewOp {
            op_type: "UPGRADE_NODES",
            pool: Some(pool.to_string()),
            target_version: t,
            // Without an armed failure the Kubernetes side replaces the nodes and ends it.
            secs: if fail.is_some() {
                FAILED_NODE_SECS * np.node_count.max(1) as f64
            } else {
                f64::INFINITY
            },
            nodes_total: np.node_count,
            fail,
        },
        None => NewOp {
            op_type: "UPDATE_CLUSTER",
            pool: Some(pool.to_string()),
            target_version: String::new(),
            secs: CONFIG_UPDATE_SECS,
            nodes_total: 0,
            fail,
        },
    };
    Ok(start_op(g, op, now, speed))
}

/// `e2-micro/small/medium` or `FAMILY-standard|highmem|highcpu-N`, the machine types the
/// simulated nodes know the capacity of.
fn valid_machine_type(t: &str) -> bool {
    if matches!(t, "e2-micro" | "e2-small" | "e2-medium") {
        return true;
    }
    let parts: Vec<&str> = t.split('-').collect();
    parts.len() == 3
        && !parts[0].is_empty()
        && parts[0]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && ["standard", "highmem", "highcpu"].contains(&parts[1])
        && parts[2].parse::<u32>().is_ok_and(|n| n > 0)
}

/// A non-negative int32 in a request (a number or, as Google's JSON allows, a string).
fn int_field(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// nodePools.create: validate like GKE, add the pool (PROVISIONING) and start its
/// CREATE_NODE_POOL operation; the Kubernetes side boots the nodes and ends it.
fn create_pool(
    inner: &mut Inner,
    project: &str,
    location: &str,
    cluster: &str,
    body: &Value,
    now: f64,
    speed: f64,
) -> R<Value> {
    let invalid = |m: String| GkeError::new("INVALID_ARGUMENT", m);
    if let Some(parent) = body.get("parent").and_then(Value::as_str) {
        let want = format!("projects/{project}/locations/{location}/clusters/{cluster}");
        if !parent.is_empty() && parent != want {
            return Err(invalid(format!(
                "The parent \"{parent}\" in the request body does not match the URL ({want})."
            )));
        }
    }
    let req = body
        .get("nodePool")
        .filter(|v| v.is_object())
        .ok_or_else(|| invalid("Node pool must be specified (nodePool is required).".into()))?;
    let pool = req.get("name").and_then(Value::as_str).unwrap_or("");
    if pool.is_empty() {
        return Err(invalid("Node pool name must be specified.".into()));
    }
    if !valid_cluster_name(pool) {
        return Err(invalid(format!(
            "Invalid value for field \"node_pool.name\": \"{pool}\". Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,38}}[a-z0-9])?)' (only alphanumerics and '-' allowed, must start with a letter and end with an alphanumeric, and must be no longer than 40 characters)."
        )));
    }
    let g = find_cluster(inner, project, location, cluster)?;
    if g.node_pools.contains_key(pool) {
        return Err(GkeError::new(
            "ALREADY_EXISTS",
            format!(
                "Already exists: projects/{project}/locations/{location}/clusters/{cluster}/nodePools/{pool}."
            ),
        ));
    }
    let version = match req.get("version").and_then(Value::as_str) {
        Some(a) if !a.is_empty() => node_version(g, a)?,
        _ => g.version.clone(),
    };
    let zones = g.zones().len().max(1) as i64;
    let autoscaling = req
        .get("autoscaling")
        .filter(|a| a["enabled"].as_bool() == Some(true));
    // initialNodeCount is per zone, as in GKE; an autoscaled pool may start at its minimum.
    let total = match req.get("initialNodeCount").and_then(int_field) {
        Some(n) if n > 0 => n * zones,
        Some(n) if n < 0 => {
            return Err(invalid(format!(
                "Invalid value for field \"node_pool.initial_node_count\": {n}. initialNodeCount must be positive."
            )))
        }
        _ => match autoscaling {
            Some(a) => match (
                a.get("totalMinNodeCount").and_then(int_field),
                a.get("minNodeCount").and_then(int_field),
            ) {
                (Some(t), _) => t.max(0),
                (None, Some(m)) => m.max(0) * zones,
                (None, None) => 0,
            },
            None => return Err(invalid("initialNodeCount must be positive.".into())),
        },
    };
    let machine_type = req["config"]["machineType"]
        .as_str()
        .filter(|m| !m.is_empty())
        .unwrap_or("e2-medium")
        .to_string();
    if !valid_machine_type(&machine_type) {
        return Err(invalid(format!(
            "Invalid value for field \"node_pool.config.machine_type\": \"{machine_type}\" (the simulator knows e2-micro, e2-small, e2-medium and FAMILY-standard|highmem|highcpu-N)."
        )));
    }
    let mut np = NodePool {
        name: pool.to_string(),
        version: version.clone(),
        node_count: total as u32,
        machine_type,
        max_surge: 1,
        max_unavailable: 0,
        strategy: "SURGE".into(),
        bg: BlueGreen::default(),
        drain: DrainConfig::default(),
    };
    if let Some(us) = req.get("upgradeSettings").filter(|v| !v.is_null()) {
        apply_upgrade_settings(&mut np, us)?;
    }
    if let Some(d) = req.get("nodeDrainConfig").filter(|v| !v.is_null()) {
        apply_drain_config(&mut np, d)?;
    }
    check_idle(g)?;
    let fail = take_fail(inner, cluster, Some(pool), "create");
    let g = find_cluster(inner, project, location, cluster)?;
    g.node_pools.insert(pool.to_string(), np.clone());
    Ok(start_op(
        g,
        NewOp {
            op_type: "CREATE_NODE_POOL",
            pool: Some(pool.to_string()),
            target_version: version,
            // Without an armed failure the Kubernetes side ends it once the nodes are Ready.
            secs: if fail.is_some() {
                FAILED_NODE_SECS * np.node_count.max(1) as f64
            } else {
                f64::INFINITY
            },
            nodes_total: np.node_count,
            fail,
        },
        now,
        speed,
    ))
}

/// nodePools.delete: STOPPING, then the Kubernetes side removes the nodes (draining through
/// PDBs only with `nodeDrainConfig.respectPdbDuringNodePoolDeletion`) and the pool goes.
fn delete_pool(
    inner: &mut Inner,
    project: &str,
    location: &str,
    cluster: &str,
    pool: &str,
    now: f64,
    speed: f64,
) -> R<Value> {
    let g = find_cluster(inner, project, location, cluster)?;
    let Some(np) = g.node_pools.get(pool).cloned() else {
        return Err(not_found(
            project,
            location,
            &format!("clusters/{cluster}/nodePools/{pool}"),
        ));
    };
    check_idle(g)?;
    let fail = take_fail(inner, cluster, Some(pool), "delete");
    let g = find_cluster(inner, project, location, cluster)?;
    Ok(start_op(
        g,
        NewOp {
            op_type: "DELETE_NODE_POOL",
            pool: Some(pool.to_string()),
            target_version: String::new(),
            secs: if fail.is_some() {
                FAILED_NODE_SECS * np.node_count.max(1) as f64
            } else {
                f64::INFINITY
            },
            nodes_total: np.node_count,
            fail,
        },
        now,
        speed,
    ))
}

/// Run one routed call. Returns the response body and whether the world changed.
fn execute(
    inner: &mut Inner,
    project: &str,
    location: &str,
    route: &Route,
    body: &Value,
    now: f64,
    speed: f64,
) -> R<(Value, bool)> {
    match route {
        Route::ServerConfig => Ok((server_config(), false)),
        Route::ListClusters => {
            let cs: Vec<Value> = inner
                .world
                .gke
                .values()
                .filter(|g| g.project == project && (location == "-" || g.location == location))
                .map(cluster_json)
                .collect();
            Ok((json!({ "clusters": cs }), false))
        }
        Route::GetCluster(c) => Ok((
            cluster_json(find_cluster(inner, project, location, c)?),
            false,
        )),
        Route::ListPools(c) => {
            let g = find_cluster(inner, project, location, c)?;
            let ps: Vec<Value> = g.node_pools.values().map(|p| pool_json(g, p)).collect();
            Ok((json!({ "nodePools": ps }), false))
        }
        Route::GetPool(c, p) => {
            let g = find_cluster(inner, project, location, c)?;
            match g.node_pools.get(p) {
                Some(np) => Ok((pool_json(g, np), false)),
                None => Err(not_found(
                    project,
                    location,
                    &format!("clusters/{c}/nodePools/{p}"),
                )),
            }
        }
        Route::ListOps => {
            let mut os = Vec::new();
            for g in inner.world.gke.values() {
                if g.project == project && (location == "-" || g.location == location) {
                    os.extend(g.ops.iter().map(|o| op_json(g, o)));
                }
            }
            Ok((json!({ "operations": os }), false))
        }
        Route::GetOp(name) => {
            for g in inner.world.gke.values() {
                if g.project != project || g.location != location {
                    continue;
                }
                if let Some(o) = g.ops.iter().find(|o| o.name == *name) {
                    return Ok((op_json(g, o), false));
                }
            }
            Err(not_found(project, location, &format!("operations/{name}")))
        }
        Route::UpdateMaster(c) => {
            let v = body
                .get("masterVersion")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    GkeError::new("INVALID_ARGUMENT", "Master version must be specified.")
                })?;
            upgrade_master(inner, project, location, c, v, now, speed).map(|v| (v, true))
        }
        Route::UpdateCluster(c) => {
            let upd = body.get("update").cloned().unwrap_or(json!({}));
            {
                let g = find_cluster(inner, project, location, c)?;
                check_etag(g.etag(), &upd)?;
            }
            let master = upd.get("desiredMasterVersion").and_then(Value::as_str);
            let node = upd.get("desiredNodeVersion").and_then(Value::as_str);
            match (master, node) {
                (Some(_), Some(_)) => Err(GkeError::new(
                    "INVALID_ARGUMENT",
                    "Only one of desiredMasterVersion and desiredNodeVersion may be updated at a time.",
                )),
                (Some(m), None) => {
                    upgrade_master(inner, project, location, c, m, now, speed).map(|v| (v, true))
                }
                (None, Some(n)) => {
                    let g = find_cluster(inner, project, location, c)?;
                    let pool = match upd.get("desiredNodePoolId").and_then(Value::as_str) {
                        Some(p) => p.to_string(),
                        None if g.node_pools.len() == 1 => {
                            g.node_pools.keys().next().cloned().unwrap_or_default()
                        }
                        None => {
                            return Err(GkeError::new(
                                "INVALID_ARGUMENT",
                                "desiredNodePoolId must be specified when the cluster has more than one node pool.",
                            ))
                        }
                    };
                    upgrade_pool(
                        inner,
                        project,
                        location,
                        c,
                        &pool,
                        Some(n),
                        None,
                        None,
                        now,
                        speed,
                    )
                        .map(|v| (v, true))
                }
                (None, None) => Err(GkeError::new(
                    "INVALID_ARGUMENT",
                    "The simulator supports clusters.update with desiredMasterVersion or desiredNodeVersion only.",
                )),
            }
        }
        Route::UpdatePool(c, p) => {
            {
                let g = find_cluster(inner, project, location, c)?;
                if let Some(np) = g.node_pools.get(p) {
                    check_etag(g.pool_etag(np), body)?;
                }
            }
            let v = body.get("nodeVersion").and_then(Value::as_str);
            let us = body.get("upgradeSettings");
            let drain = body.get("nodeDrainConfig").filter(|d| !d.is_null());
            if v.is_none() && us.is_none() && drain.is_none() {
                return Err(GkeError::new(
                    "INVALID_ARGUMENT",
                    "Node version must be specified (nodeVersion is required).",
                ));
            }
            upgrade_pool(inner, project, location, c, p, v, us, drain, now, speed)
                .map(|v| (v, true))
        }
        Route::CreatePool(c) => {
            create_pool(inner, project, location, c, body, now, speed).map(|v| (v, true))
        }
        Route::DeletePool(c, p) => {
            delete_pool(inner, project, location, c, p, now, speed).map(|v| (v, true))
        }
        Route::CompleteUpgrade(c, p) => {
            let g = find_cluster(inner, project, location, c)?;
            match g.ops.iter_mut().find(|o| {
                o.active()
                    && o.pool.as_deref() == Some(p.as_str())
                    && o.bg_phase.is_some()
                    && !o.rollback_requested
            }) {
                Some(o) => {
                    o.complete_requested = true;
                    Ok((json!({}), true))
                }
                None => Err(GkeError::new(
                    "FAILED_PRECONDITION",
                    format!("Node pool {p} has no blue-green upgrade in progress."),
                )),
            }
        }
        Route::Rollback(c, p) => {
            let respect = body
                .get("respectPdb")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let g = find_cluster(inner, project, location, c)?;
            let Some(np) = g.node_pools.get(p).cloned() else {
                return Err(not_found(
                    project,
                    location,
                    &format!("clusters/{c}/nodePools/{p}"),
                ));
            };
            // A running blue-green upgrade (before its blue pool is deleted) is rolled back in
            // place: blue nodes uncordoned, green nodes removed, the operation ends ABORTED.
            if let Some(i) = g.ops.iter().position(|o| {
                o.active()
                    && o.pool.as_deref() == Some(p.as_str())
                    && o.bg_phase
                        .as_deref()
                        .is_some_and(|ph| ph != "DELETING_BLUE_POOL")
            }) {
                g.ops[i].rollback_requested = true;
                g.ops[i].rollback_respect_pdb = respect;
                g.ops[i].bg_phase = Some("ROLLBACK_STARTED".into());
                let v = op_json(g, &g.ops[i]);
                return Ok((v, true));
            }
            check_idle(g)?;
            // After a failed upgrade: replace nodes not at the pool's version (SURGE).
            let failed = g
                .ops
                .iter()
                .rev()
                .find(|o| o.pool.as_deref() == Some(p.as_str()) && o.op_type == "UPGRADE_NODES")
                .is_some_and(|o| o.error.is_some());
            let mut op = start_op(
                g,
                NewOp {
                    op_type: "UPGRADE_NODES",
                    pool: Some(p.clone()),
                    target_version: if failed {
                        np.version.clone()
                    } else {
                        String::new()
                    },
                    secs: if failed {
                        f64::INFINITY
                    } else {
                        CONFIG_UPDATE_SECS
                    },
                    nodes_total: np.node_count,
                    fail: None,
                },
                now,
                speed,
            );
            if let Some(o) = g.ops.last_mut() {
                o.is_rollback = true;
                o.rollback_respect_pdb = respect;
            }
            op["operationType"] = json!("UPGRADE_NODES");
            Ok((op, true))
        }
        Route::SetPoolSize(c, p) => {
            let n = body
                .get("nodeCount")
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .ok_or_else(|| GkeError::new("INVALID_ARGUMENT", "nodeCount must be specified."))?;
            let g = find_cluster(inner, project, location, c)?;
            if !g.node_pools.contains_key(p) {
                return Err(not_found(
                    project,
                    location,
                    &format!("clusters/{c}/nodePools/{p}"),
                ));
            }
            check_idle(g)?;
            // nodeCount is per zone, as in GKE.
            let n = n as u32 * g.zones().len().max(1) as u32;
            if let Some(np) = g.node_pools.get_mut(p) {
                np.node_count = n;
            }
            let op = start_op(
                g,
                NewOp {
                    op_type: "SET_NODE_POOL_SIZE",
                    pool: Some(p.clone()),
                    target_version: String::new(),
                    secs: CONFIG_UPDATE_SECS,
                    nodes_total: n,
                    fail: None,
                },
                now,
                speed,
            );
            Ok((op, true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_follow_the_discovery_paths() {
        let r = |m: Method, p: &str| parse_route(&m, p).map(|(_, _, r)| r);
        assert_eq!(
            r(
                Method::POST,
                "/v1/projects/p/locations/l/clusters/c:updateMaster"
            ),
            Some(Route::UpdateMaster("c".into()))
        );
        assert_eq!(
            r(
                Method::PUT,
                "/v1/projects/p/locations/l/clusters/c/nodePools/np"
            ),
            Some(Route::UpdatePool("c".into(), "np".into()))
        );
        assert_eq!(
            r(Method::GET, "/v1/projects/p/locations/l/operations/op-1"),
            Some(Route::GetOp("op-1".into()))
        );
        assert_eq!(
            r(Method::DELETE, "/v1/projects/p/locations/l/clusters/c"),
            None
        );
        assert_eq!(
            r(
                Method::POST,
                "/v1/projects/p/locations/l/clusters/c/nodePools"
            ),
            Some(Route::CreatePool("c".into()))
        );
        assert_eq!(
            r(
                Method::DELETE,
                "/v1/projects/p/locations/l/clusters/c/nodePools/np"
            ),
            Some(Route::DeletePool("c".into(), "np".into()))
        );
    }

    #[test]
    fn maintenance_and_drain_validation() {
        assert!(valid_hhmm("03:00") && valid_hhmm("23:59"));
        assert!(!valid_hhmm("24:00") && !valid_hhmm("3:00") && !valid_hhmm("03:60"));
        assert_eq!(Maintenance::default().resource_version(), "e3b0c442");
        assert!(valid_machine_type("n2-highmem-8") && valid_machine_type("e2-medium"));
        assert!(!valid_machine_type("n2-weird") && !valid_machine_type("e2-standard-0"));
        let mut np = NodePool {
            name: "p".into(),
            version: "1.29.8-gke.1031000".into(),
            node_count: 1,
            machine_type: "e2-medium".into(),
            max_surge: 1,
            max_unavailable: 0,
            strategy: "SURGE".into(),
            bg: BlueGreen::default(),
            drain: DrainConfig::default(),
        };
        assert_eq!(np.drain.pdb_timeout(), DEFAULT_PDB_TIMEOUT_SECS);
        apply_drain_config(&mut np, &json!({ "pdbTimeoutDuration": "1.5s" })).unwrap();
        assert_eq!(np.drain.pdb_timeout(), 1.5);
        assert!(apply_drain_config(&mut np, &json!({ "pdbTimeoutDuration": "-1s" })).is_err());
        assert!(apply_drain_config(
            &mut np,
            &json!({ "respectPdbDuringNodePoolDeletion": "yes" })
        )
        .is_err());
    }

    #[test]
    fn enums_accept_names_and_numbers() {
        // Proto numbers: BLUE_GREEN = 2, SURGE = 3; 1 is unused.
        assert_eq!(enum_in(STRATEGIES, &json!(3)).as_deref(), Some("SURGE"));
        assert_eq!(
            enum_in(STRATEGIES, &json!("2")).as_deref(),
            Some("BLUE_GREEN")
        );
        assert_eq!(enum_in(STRATEGIES, &json!(1)), None);
        assert_eq!(
            enum_in(STRATEGIES, &json!("BLUE_GREEN")).as_deref(),
            Some("BLUE_GREEN")
        );
        assert_eq!(enum_in(STRATEGIES, &json!("NOPE")), None);
        assert!(is_zone("europe-west1-b"));
        assert!(!is_zone("europe-west1"));
        assert_eq!(
            percent_decode("%24alt=json%3Benum-encoding%3Dint"),
            "$alt=json;enum-encoding=int"
        );
    }
}
