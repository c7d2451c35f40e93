//! Pure conversions between GKE's API objects and kup's model: versions with their
//! `-gke.N` suffix, node pools, operations and their statuses, and resolving a node
//! pool's target minor to the exact version GKE offers.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use google_cloud_container_v1::model::blue_green_settings::{
    standard_rollout_policy::UpdateBatchSize, RolloutPolicy, StandardRolloutPolicy,
};
use google_cloud_container_v1::model::node_pool::update_info::blue_green_info::Phase;
use google_cloud_container_v1::model::node_pool::NodeDrainConfig;
use google_cloud_container_v1::model::node_pool::UpgradeSettings;
use google_cloud_container_v1::model::operation_progress::metric::Value as MetricValue;
use google_cloud_container_v1::model::{operation, Cluster, NodePool, Operation};
use google_cloud_container_v1::model::{BlueGreenSettings, NodePoolUpdateStrategy};
use google_cloud_gax::error::rpc::Code;
use kup_engine::maintenance::{MaintenanceExclusion, MaintenancePolicy, MaintenanceWindow};
use kup_engine::model::{
    ActualNodeGroup, DrainLimits, InFlightOperation, NativeBlueGreen, Unavailable,
};
use kup_engine::plan::Action;
use kup_engine::provider::Progress;
use kup_engine::Version;

use crate::OperationStatus;

/// The numeric parts of a GKE version, `1.29.8-gke.1031000` → `(1, 29, Some(8), Some(1031000))`,
/// so that `-gke.999` sorts below `-gke.1031000` (a plain string comparison would not).
pub(crate) fn version_key(v: &Version) -> (u32, u32, Option<u32>, Option<u64>, String) {
    let suffix = v.suffix.clone().unwrap_or_default();
    let build = suffix
        .strip_prefix("-gke.")
        .and_then(|n| n.parse::<u64>().ok());
    (v.major, v.minor, v.patch, build, suffix)
}

/// Compare two versions the way GKE orders its releases.
pub(crate) fn cmp_gke(a: &Version, b: &Version) -> Ordering {
    version_key(a).cmp(&version_key(b))
}

/// Parse every version string GKE lists; ones kup cannot read are skipped. Ascending in
/// GKE's order, without duplicates.
pub(crate) fn parse_versions(raw: &[String]) -> Vec<Version> {
    let mut out: Vec<Version> = raw.iter().filter_map(|s| s.parse().ok()).collect();
    out.sort_by(cmp_gke);
    out.dedup_by(|a, b| cmp_gke(a, b) == Ordering::Equal);
    out
}

/// The enum's name as GKE documents it (`RUNNING`), whether it arrived as an integer or a
/// name; `UNKNOWN` when neither is known.
pub(crate) fn enum_name(name: Option<&str>, value: Option<i32>) -> String {
    match (name, value) {
        (Some(n), _) => n.to_string(),
        (None, Some(v)) => format!("UNKNOWN({v})"),
        (None, None) => "UNKNOWN".to_string(),
    }
}

/// Nodes in a pool: `initialNodeCount` is per zone, so it is multiplied by the pool's
/// zones when GKE lists them.
fn zones(np: &NodePool) -> u32 {
    (np.locations.len() as u32).max(1)
}

fn non_negative(n: i32) -> u32 {
    n.max(0) as u32
}

/// A node pool as kup's model sees it.
pub(crate) fn node_group(np: &NodePool) -> Result<ActualNodeGroup, String> {
    let version: Version = np.version.parse().map_err(|e| {
        format!(
            "GKE reported node pool `{}` at version `{}`, which kup cannot read: {e}",
            np.name, np.version
        )
    })?;
    let zones = zones(np);
    let desired = non_negative(np.initial_node_count) * zones;
    let (min_size, max_size) = match &np.autoscaling {
        Some(a) if a.enabled => {
            if a.total_min_node_count > 0 || a.total_max_node_count > 0 {
                (
                    non_negative(a.total_min_node_count),
                    non_negative(a.total_max_node_count),
                )
            } else {
                (
                    non_negative(a.min_node_count) * zones,
                    non_negative(a.max_node_count) * zones,
                )
            }
        }
        _ => (desired, desired),
    };
    let labels: BTreeMap<String, String> = np
        .config
        .as_ref()
        .map(|c| {
            c.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut health_issues: Vec<String> = np
        .conditions
        .iter()
        .filter(|c| !c.message.is_empty())
        .map(|c| c.message.clone())
        .collect();
    health_issues.sort();
    Ok(ActualNodeGroup {
        control_plane: false,
        name: np.name.clone(),
        version,
        release_version: None,
        status: enum_name(np.status.name(), np.status.value()),
        desired_size: desired,
        min_size,
        max_size,
        max_unavailable: np
            .upgrade_settings
            .as_ref()
            .map(|u| Unavailable::Count(non_negative(u.max_unavailable))),
        health_issues,
        labels,
        blue_green: np.upgrade_settings.as_ref().and_then(native_blue_green),
        drain_limits: np.node_drain_config.as_ref().and_then(drain_limits),
        upgrade_phase: blue_green_phase(np)
            .filter(|p| !matches!(p, Phase::Unspecified))
            .map(|p| enum_name(p.name(), p.value())),
        max_surge: np
            .upgrade_settings
            .as_ref()
            .map(|u| Unavailable::Count(non_negative(u.max_surge))),
        node_soak: None,
    })
}

/// The cluster's maintenancePolicy: its window (daily or recurring) and exclusions.
pub(crate) fn maintenance(c: &Cluster) -> Option<MaintenancePolicy> {
    use google_cloud_container_v1::model::maintenance_window::Policy;
    use google_cloud_container_v1::model::time_window::Options;
    let w = c.maintenance_policy.as_ref()?.window.as_ref()?;
    let rfc3339 =
        |t: &Option<google_cloud_wkt::Timestamp>| (*t).map(String::from).unwrap_or_default();
    let window = match &w.policy {
        Some(Policy::DailyMaintenanceWindow(d)) => Some(MaintenanceWindow::Daily {
            start_time: d.start_time.clone(),
            // GKE chooses the length (four hours) and reports it as an ISO 8601 duration.
            duration_secs: iso8601_secs(&d.duration).unwrap_or(4 * 3600),
        }),
        Some(Policy::RecurringWindow(r)) => {
            r.window.as_ref().map(|tw| MaintenanceWindow::Recurring {
                start_time: rfc3339(&tw.start_time),
                end_time: rfc3339(&tw.end_time),
                recurrence: r.recurrence.clone(),
            })
        }
        _ => None,
    };
    let mut exclusions: Vec<MaintenanceExclusion> = w
        .maintenance_exclusions
        .iter()
        .map(|(name, tw)| MaintenanceExclusion {
            name: name.clone(),
            start_time: rfc3339(&tw.start_time),
            end_time: rfc3339(&tw.end_time),
            scope: match &tw.options {
                Some(Options::MaintenanceExclusionOptions(o)) => {
                    enum_name(o.scope.name(), o.scope.value())
                }
                _ => "NO_UPGRADES".into(),
            },
        })
        .collect();
    exclusions.sort_by(|a, b| a.name.cmp(&b.name));
    (window.is_some() || !exclusions.is_empty()).then_some(MaintenancePolicy { window, exclusions })
}

/// `PT4H0M0S` → 14400.
fn iso8601_secs(d: &str) -> Option<u64> {
    let rest = d.strip_prefix("PT")?;
    let mut total = 0u64;
    let mut num = String::new();
    for ch in rest.chars() {
        match ch {
            '0'..='9' | '.' => num.push(ch),
            'H' | 'M' | 'S' => {
                let n: f64 = num.parse().ok()?;
                num.clear();
                total += (n * match ch {
                    'H' => 3600.0,
                    'M' => 60.0,
                    _ => 1.0,
                }) as u64;
            }
            _ => return None,
        }
    }
    Some(total)
}

/// The pool's nodeDrainConfig as kup's drain limits (`None` when neither is set).
pub(crate) fn drain_limits(c: &NodeDrainConfig) -> Option<DrainLimits> {
    let d = |d: &Option<google_cloud_wkt::Duration>| {
        d.as_ref()
            .map(|d| std::time::Duration::from_secs(d.seconds().max(0) as u64))
    };
    let limits = DrainLimits {
        pdb_timeout: d(&c.pdb_timeout_duration),
        grace_termination: d(&c.grace_termination_duration),
    };
    (limits != DrainLimits::default()).then_some(limits)
}

/// kup's drain limits as a nodeDrainConfig (unset fields stay as GKE has them).
pub(crate) fn node_drain_config(l: &DrainLimits) -> NodeDrainConfig {
    let d = |d: std::time::Duration| google_cloud_wkt::Duration::clamp(d.as_secs() as i64, 0);
    NodeDrainConfig::new()
        .set_or_clear_pdb_timeout_duration(l.pdb_timeout.map(d))
        .set_or_clear_grace_termination_duration(l.grace_termination.map(d))
}

/// The pool's BLUE_GREEN settings, when GKE upgrades it that way.
pub(crate) fn native_blue_green(u: &UpgradeSettings) -> Option<NativeBlueGreen> {
    if u.strategy != Some(NodePoolUpdateStrategy::BlueGreen) {
        return None;
    }
    let bg = u.blue_green_settings.as_ref();
    let secs = |d: Option<&google_cloud_wkt::Duration>, default: u64| {
        d.map_or(default, |d| d.seconds().max(0) as u64)
    };
    let policy = bg.and_then(|b| match &b.rollout_policy {
        Some(RolloutPolicy::StandardRolloutPolicy(p)) => Some(p.as_ref()),
        _ => None,
    });
    // Unset fields: read as one node per batch (the careful reading), no batch soak and
    // GKE's documented one-hour node-pool soak.
    let batch = match policy.and_then(|p| p.update_batch_size.as_ref()) {
        Some(UpdateBatchSize::BatchNodeCount(n)) => Unavailable::Count(non_negative(*n)),
        Some(UpdateBatchSize::BatchPercentage(p)) => {
            Unavailable::Percent((p * 100.0).round().clamp(0.0, 100.0) as u32)
        }
        _ => Unavailable::Count(1),
    };
    Some(NativeBlueGreen {
        batch,
        batch_soak: std::time::Duration::from_secs(secs(
            policy.and_then(|p| p.batch_soak_duration.as_ref()),
            0,
        )),
        soak: std::time::Duration::from_secs(secs(
            bg.and_then(|b| b.node_pool_soak_duration.as_ref()),
            3600,
        )),
    })
}

/// The upgrade settings that make GKE upgrade a pool blue/green with `bg`, keeping the
/// pool's surge numbers (GKE ignores them under BLUE_GREEN, and a later switch back to
/// SURGE finds them unchanged).
pub(crate) fn blue_green_settings(
    current: Option<&UpgradeSettings>,
    bg: &NativeBlueGreen,
) -> UpgradeSettings {
    let batch = match bg.batch {
        Unavailable::Count(n) => UpdateBatchSize::BatchNodeCount(n.min(i32::MAX as u32) as i32),
        Unavailable::Percent(p) => UpdateBatchSize::BatchPercentage(p.min(100) as f32 / 100.0),
    };
    let dur = |d: std::time::Duration| google_cloud_wkt::Duration::clamp(d.as_secs() as i64, 0);
    let policy = StandardRolloutPolicy::new()
        .set_batch_soak_duration(dur(bg.batch_soak))
        .set_update_batch_size(batch);
    current
        .cloned()
        .unwrap_or_else(UpgradeSettings::new)
        .set_strategy(NodePoolUpdateStrategy::BlueGreen)
        .set_blue_green_settings(
            BlueGreenSettings::new()
                .set_node_pool_soak_duration(dur(bg.soak))
                .set_rollout_policy(RolloutPolicy::StandardRolloutPolicy(Box::new(policy))),
        )
}

fn blue_green_phase(np: &NodePool) -> Option<Phase> {
    np.update_info
        .as_ref()
        .and_then(|u| u.blue_green_info.as_ref())
        .map(|b| b.phase.clone())
}

/// What a running operation's `progress.metrics` say (GKE reports NODES_DONE and
/// NODES_TOTAL for node-pool upgrades), plus the pool's blue-green phase when known.
pub(crate) fn progress(op: &Operation, pool: Option<&NodePool>) -> Progress {
    let metric = |name: &str| {
        op.progress.as_ref().and_then(|p| {
            p.metrics
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(name))
                .and_then(|m| match &m.value {
                    Some(MetricValue::IntValue(n)) => u64::try_from(*n).ok(),
                    Some(MetricValue::DoubleValue(d)) if *d >= 0.0 => Some(*d as u64),
                    Some(MetricValue::StringValue(s)) => s.parse().ok(),
                    _ => None,
                })
        })
    };
    let phase = pool
        .and_then(blue_green_phase)
        .filter(|p| !matches!(p, Phase::Unspecified));
    Progress {
        transcript: Vec::new(),
        done: metric("NODES_DONE").or_else(|| metric("NODES_COMPLETE")),
        total: metric("NODES_TOTAL"),
        soaking: matches!(phase, Some(Phase::NodePoolSoaking)),
        stage: phase.map(|p| enum_name(p.name(), p.value())),
    }
}

/// The cluster and node pool a `targetLink` (or `selfLink`) names:
/// `https://container.googleapis.com/v1/projects/123/zones/z/clusters/c/nodePools/np[/node/n]`
/// → `("c", Some("np"))`.
pub(crate) fn target_of(link: &str) -> Option<(&str, Option<&str>)> {
    let mut parts = link.split('/');
    while let Some(p) = parts.next() {
        if p == "clusters" {
            let cluster = parts.next().filter(|c| !c.is_empty())?;
            let pool = match parts.next() {
                Some("nodePools") => parts.next().filter(|n| !n.is_empty()),
                _ => None,
            };
            return Some((cluster, pool));
        }
    }
    None
}

pub(crate) fn is_running(op: &Operation) -> bool {
    matches!(
        op.status,
        operation::Status::Pending | operation::Status::Running
    )
}

/// `control_plane` or `node_group.NAME` for an operation on `cluster`; `None` when the
/// operation is about another cluster.
pub(crate) fn resource_of(op: &Operation, cluster: &str) -> Option<String> {
    let (c, pool) = target_of(&op.target_link).or_else(|| target_of(&op.self_link))?;
    if c != cluster {
        return None;
    }
    Some(match pool {
        Some(p) => format!("node_group.{p}"),
        None => "control_plane".to_string(),
    })
}

/// The operation's short id, the last segment of its name.
pub(crate) fn op_id(op: &Operation) -> String {
    op.name.rsplit('/').next().unwrap_or(&op.name).to_string()
}

/// Running operations on `cluster`, in a stable order (resource, then id).
pub(crate) fn in_flight(ops: &[Operation], cluster: &str) -> Vec<InFlightOperation> {
    let mut out: Vec<InFlightOperation> = ops
        .iter()
        .filter(|o| is_running(o))
        .filter_map(|o| {
            let resource = resource_of(o, cluster)?;
            Some(InFlightOperation {
                id: op_id(o),
                resource,
                kind: enum_name(o.operation_type.name(), o.operation_type.value()),
                target: None,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.resource, &a.id).cmp(&(&b.resource, &b.id)));
    out
}

/// The operation types GKE reports for the call kup makes for `action`: nodePools.update
/// is UPGRADE_NODES when the version changes; a settings-only update may be reported as
/// UPDATE_CLUSTER on the node pool.
pub(crate) fn op_types_for(action: &Action) -> &'static [operation::Type] {
    match action {
        Action::UpgradeControlPlane { .. } => &[operation::Type::UpgradeMaster],
        Action::UpgradeNodeGroup { .. } => &[operation::Type::UpgradeNodes],
        // Never adopt a running upgrade as "the rollback": the rollback must be asked for
        // (a repeated nodePools.rollback is harmless while one runs).
        Action::RollbackNodeGroupUpgrade { .. } => &[],
        Action::UpdateNodeGroupConfig { .. } => &[
            operation::Type::UpgradeNodes,
            operation::Type::UpdateCluster,
        ],
        Action::CreateNodeGroup { .. } => &[operation::Type::CreateNodePool],
        Action::DeleteNodeGroup { .. } => &[operation::Type::DeleteNodePool],
        _ => &[],
    }
}

/// Does the running operation `op` carry out `action` on `cluster`?
pub(crate) fn op_matches(op: &Operation, cluster: &str, action: &Action) -> bool {
    is_running(op)
        && op_types_for(action).contains(&op.operation_type)
        && resource_of(op, cluster).is_some_and(|r| r == action.resource())
}

/// The newest running operation of `ops` that carries out `action` (newest start time,
/// then greatest id, so the choice is deterministic).
pub(crate) fn find_matching<'a>(
    ops: &'a [Operation],
    cluster: &str,
    action: &Action,
) -> Option<&'a Operation> {
    ops.iter()
        .filter(|o| op_matches(o, cluster, action))
        .max_by(|a, b| (&a.start_time, &a.name).cmp(&(&b.start_time, &b.name)))
}

/// `statusMessage`: deprecated in favour of `error`, but the only place older GKE
/// operations (and some servers) say what went wrong.
#[allow(deprecated)]
fn status_message(op: &Operation) -> &str {
    &op.status_message
}

/// An operation's state as the executor understands it.
pub(crate) fn operation_status(op: &Operation) -> OperationStatus {
    match op.status {
        operation::Status::Done => {}
        // PENDING, RUNNING, ABORTING and anything newer: not finished yet.
        _ => return OperationStatus::InProgress(progress(op, None)),
    }
    if let Some(err) = op.error.as_ref().filter(|e| e.code != 0) {
        let code = Code::from(err.code);
        let code = if matches!(code, Code::Unknown) && err.code != 2 {
            err.code.to_string()
        } else {
            code.name().to_string()
        };
        let message = if err.message.is_empty() {
            status_message(op).to_string()
        } else {
            err.message.clone()
        };
        return OperationStatus::Failed { code, message };
    }
    if !status_message(op).is_empty() && op.error.is_none() {
        // Before `error` existed GKE said what went wrong only in statusMessage.
        return OperationStatus::Failed {
            code: "UNKNOWN".into(),
            message: status_message(op).to_string(),
        };
    }
    OperationStatus::Succeeded
}

/// The exact node version to send for a node pool upgrade to `to`.
///
/// An exact release (`1.30.5-gke.1014001`) is sent as it is. A minor (`1.30`) or a patch
/// without GKE's build suffix (`1.30.5`) resolves to the master's own version when the
/// master satisfies it (nodes can never be ahead of the master, and matching it is what
/// GKE's `-` alias means), else to the newest `validNodeVersions` entry that satisfies it,
/// so the request never depends on an alias GKE resolves later.
pub(crate) fn resolve_node_version(
    to: &Version,
    master: &str,
    valid_node_versions: &[String],
) -> Result<String, String> {
    if to.patch.is_some() && to.suffix.is_some() {
        return Ok(to.to_string());
    }
    if let Ok(m) = master.parse::<Version>() {
        if to.satisfied_by(&m) {
            return Ok(master.to_string());
        }
    }
    let valid = parse_versions(valid_node_versions);
    valid
        .iter()
        .filter(|v| to.satisfied_by(v) && v.patch.is_some())
        .max_by(|a, b| cmp_gke(a, b))
        .map(|v| v.to_string())
        .ok_or_else(|| {
            let in_minor: Vec<String> = valid
                .iter()
                .filter(|v| v.minor() == to.minor())
                .map(|v| v.to_string())
                .collect();
            format!(
                "GKE offers no node version for {to} (the master runs {master}; valid node \
                 versions of {}: {})",
                to.minor(),
                if in_minor.is_empty() {
                    "none".to_string()
                } else {
                    in_minor.join(", ")
                }
            )
        })
}

/// The node pool to create for kup-driven blue/green: `name` at `version` (exact), with
/// the blue pool's node configuration (machine type, disks, image, Kubernetes labels and
/// taints, service account, scopes, metadata), size, zones, autoscaling, management,
/// pod limits, upgrade and placement settings. Output-only fields (status, self link,
/// instance groups, conditions, update info, etag) are left out.
pub(crate) fn clone_pool(blue: &NodePool, name: &str, version: &str) -> NodePool {
    let mut np = NodePool::default();
    np.name = name.to_string();
    np.version = version.to_string();
    np.config = blue.config.clone();
    np.initial_node_count = blue.initial_node_count;
    np.locations = blue.locations.clone();
    np.autoscaling = blue.autoscaling.clone();
    np.management = blue.management.clone();
    np.max_pods_constraint = blue.max_pods_constraint.clone();
    np.upgrade_settings = blue.upgrade_settings.clone();
    np.placement_policy = blue.placement_policy.clone();
    np.node_drain_config = blue.node_drain_config.clone();
    np
}

/// `maxUnavailable` for `want` on a pool of `size` nodes: GKE takes a count only.
pub(crate) fn max_unavailable_count(want: Unavailable) -> Result<i32, String> {
    match want {
        Unavailable::Count(n) => Ok(i32::try_from(n).unwrap_or(i32::MAX)),
        Unavailable::Percent(p) => Err(format!(
            "GKE's upgradeSettings.maxUnavailable is a number of nodes, not a percentage: \
             write `max_unavailable = N` instead of \"{p}%\" for GKE node pools"
        )),
    }
}

/// The API name of a cluster: `projects/P/locations/L/clusters/C`.
pub(crate) fn cluster_name(project: &str, location: &str, cluster: &str) -> String {
    format!("projects/{project}/locations/{location}/clusters/{cluster}")
}

/// The API name of an operation from the id kup journaled (a short `operation-…` id, or
/// a full `projects/…/operations/…` name as some servers return).
pub(crate) fn operation_name(project: &str, location: &str, id: &str) -> String {
    let id = id.trim_start_matches('/');
    if id.starts_with("projects/") {
        id.to_string()
    } else {
        format!("projects/{project}/locations/{location}/operations/{id}")
    }
}

/// The Kubernetes API URL for a cluster's `endpoint`. Real GKE returns a bare IP served
/// over HTTPS; kup's simulator returns a bare `127.0.0.1:PORT` served over plain HTTP on
/// loopback, so a bare value gets `http://` under `simulate` and `https://` otherwise. A
/// value that already has a scheme is used as it is.
pub(crate) fn kube_url(endpoint: &str, simulated: bool) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else if simulated {
        format!("http://{e}")
    } else {
        format!("https://{e}")
    }
}

/// Cluster status name (`RUNNING`, `RECONCILING`, ...).
pub(crate) fn cluster_status(c: &Cluster) -> String {
    enum_name(c.status.name(), c.status.value())
}

/// What `version = "-"` means for this cluster: its release channel's default version
/// when it is enrolled in one, else the server's default for new clusters.
pub(crate) fn default_version(
    c: &Cluster,
    sc: &google_cloud_container_v1::model::ServerConfig,
) -> Option<Version> {
    let channel = c
        .release_channel
        .as_ref()
        .map(|rc| enum_name(rc.channel.name(), rc.channel.value()))
        .filter(|n| n != "UNSPECIFIED");
    let raw = match channel {
        Some(name) => sc
            .channels
            .iter()
            .find(|ch| enum_name(ch.channel.name(), ch.channel.value()) == name)
            .map(|ch| ch.default_version.as_str())
            .unwrap_or(""),
        None => sc.default_cluster_version.as_str(),
    };
    raw.parse().ok()
}

/// What GKE does to the cluster by itself: a cluster enrolled in a release channel is
/// upgraded automatically towards the channel's default version, whatever kup plans.
pub(crate) fn auto_upgrade(
    c: &Cluster,
    channels: &[google_cloud_container_v1::model::server_config::ReleaseChannelConfig],
) -> Option<String> {
    let rc = c.release_channel.as_ref()?;
    let name = enum_name(rc.channel.name(), rc.channel.value());
    if name == "UNSPECIFIED" {
        return None;
    }
    let default = channels
        .iter()
        .find(|ch| enum_name(ch.channel.name(), ch.channel.value()) == name)
        .map(|ch| ch.default_version.clone())
        .filter(|v| !v.is_empty());
    Some(match default {
        Some(v) => format!(
            "release channel {name} upgrades this cluster automatically (the channel's default is {v})"
        ),
        None => format!("release channel {name} upgrades this cluster automatically"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn a_release_channel_is_an_automatic_upgrade_source() {
        let c: Cluster =
            serde_json::from_value(json!({"releaseChannel": {"channel": "REGULAR"}})).unwrap();
        let sc: google_cloud_container_v1::model::ServerConfig = serde_json::from_value(json!({
            "channels": [{"channel": "REGULAR", "defaultVersion": "1.31.9-gke.1044001"}]
        }))
        .unwrap();
        let text = auto_upgrade(&c, &sc.channels).unwrap();
        assert!(
            text.contains("REGULAR") && text.contains("1.31.9-gke.1044001"),
            "{text}"
        );
        let none: Cluster =
            serde_json::from_value(json!({"releaseChannel": {"channel": "UNSPECIFIED"}})).unwrap();
        assert!(auto_upgrade(&none, &sc.channels).is_none());
        assert!(auto_upgrade(&Cluster::default(), &sc.channels).is_none());
    }

    fn op(value: serde_json::Value) -> Operation {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn gke_versions_parse_and_order_by_build_number() {
        let a = v("1.29.8-gke.1031000");
        assert_eq!(a.minor(), kup_engine::Minor::new(1, 29));
        assert_eq!(a.patch, Some(8));
        assert_eq!(a.to_string(), "1.29.8-gke.1031000");
        let vs = parse_versions(&[
            "1.30.5-gke.1014001".into(),
            "1.29.8-gke.1031000".into(),
            "1.29.8-gke.999".into(),
            "latest".into(),
            "1.29.8-gke.999".into(),
        ]);
        let s: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
        assert_eq!(
            s,
            ["1.29.8-gke.999", "1.29.8-gke.1031000", "1.30.5-gke.1014001"]
        );
    }

    #[test]
    fn enums_read_as_integers_and_as_names() {
        let by_int = op(json!({"name": "operation-1", "status": 2, "operationType": 3}));
        let by_name = op(
            json!({"name": "operation-1", "status": "RUNNING", "operationType": "UPGRADE_MASTER"}),
        );
        assert_eq!(by_int.status, by_name.status);
        assert_eq!(by_int.operation_type, operation::Type::UpgradeMaster);
        assert_eq!(
            enum_name(by_int.status.name(), by_int.status.value()),
            "RUNNING"
        );
        let future = op(json!({"status": 42}));
        assert_eq!(
            enum_name(future.status.name(), future.status.value()),
            "UNKNOWN(42)"
        );
        assert_eq!(operation_status(&future), OperationStatus::in_progress());

        let np: NodePool = serde_json::from_value(json!({
            "name": "default", "version": "1.29.8-gke.1031000", "status": 2,
            "initialNodeCount": 3,
            "upgradeSettings": {"maxSurge": 1, "maxUnavailable": 2, "strategy": "SURGE"},
            "config": {"labels": {"team": "core"}}
        }))
        .unwrap();
        let ng = node_group(&np).unwrap();
        assert_eq!(ng.status, "RUNNING");
        assert_eq!(ng.version, v("1.29.8-gke.1031000"));
        assert_eq!(ng.desired_size, 3);
        assert_eq!((ng.min_size, ng.max_size), (3, 3));
        assert_eq!(ng.max_unavailable, Some(Unavailable::Count(2)));
        assert_eq!(ng.labels.get("team").map(String::as_str), Some("core"));
    }

    #[test]
    fn node_pool_sizes_count_zones_and_autoscaling() {
        let np: NodePool = serde_json::from_value(json!({
            "name": "p", "version": "1.29.8-gke.1", "status": "RUNNING",
            "initialNodeCount": 2, "locations": ["a", "b", "c"],
            "autoscaling": {"enabled": true, "minNodeCount": 1, "maxNodeCount": 4}
        }))
        .unwrap();
        let ng = node_group(&np).unwrap();
        assert_eq!(ng.desired_size, 6);
        assert_eq!((ng.min_size, ng.max_size), (3, 12));
        assert_eq!(ng.max_unavailable, None);
        let bad: NodePool =
            serde_json::from_value(json!({"name": "p", "version": "banana"})).unwrap();
        assert!(node_group(&bad).unwrap_err().contains("banana"));
    }

    #[test]
    fn operation_status_mapping() {
        for s in [
            json!("PENDING"),
            json!("RUNNING"),
            json!("ABORTING"),
            json!(1),
            json!(4),
        ] {
            assert_eq!(
                operation_status(&op(json!({"status": s}))),
                OperationStatus::in_progress()
            );
        }
        assert_eq!(
            operation_status(&op(json!({"status": "DONE"}))),
            OperationStatus::Succeeded
        );
        assert_eq!(
            operation_status(&op(json!({"status": 3, "error": {"code": 0}}))),
            OperationStatus::Succeeded
        );
        assert_eq!(
            operation_status(&op(
                json!({"status": 3, "error": {"code": 9, "message": "nodes never became ready"}})
            )),
            OperationStatus::Failed {
                code: "FAILED_PRECONDITION".into(),
                message: "nodes never became ready".into()
            }
        );
        assert_eq!(
            operation_status(&op(json!({"status": "DONE", "statusMessage": "boom"}))),
            OperationStatus::Failed {
                code: "UNKNOWN".into(),
                message: "boom".into()
            }
        );
        assert_eq!(
            operation_status(&op(
                json!({"status": "DONE", "statusMessage": "m", "error": {"code": 77}})
            )),
            OperationStatus::Failed {
                code: "77".into(),
                message: "m".into()
            }
        );
    }

    #[test]
    fn target_links_and_in_flight() {
        assert_eq!(
            target_of("https://container.googleapis.com/v1/projects/123/zones/z/clusters/c/nodePools/np/node/n1"),
            Some(("c", Some("np")))
        );
        assert_eq!(
            target_of("/v1/projects/p/locations/l/clusters/c"),
            Some(("c", None))
        );
        assert_eq!(target_of("projects/p/locations/l"), None);
        let ops = vec![
            op(
                json!({"name": "operation-2", "status": "RUNNING", "operationType": "UPGRADE_NODES",
                      "targetLink": "https://x/v1/projects/p/locations/l/clusters/prod/nodePools/b", "startTime": "2026-01-01T00:00:02Z"}),
            ),
            op(
                json!({"name": "operation-1", "status": 1, "operationType": 3,
                      "targetLink": "https://x/v1/projects/p/locations/l/clusters/prod", "startTime": "2026-01-01T00:00:01Z"}),
            ),
            op(
                json!({"name": "operation-3", "status": "DONE", "operationType": "UPGRADE_MASTER",
                      "targetLink": "https://x/v1/projects/p/locations/l/clusters/prod"}),
            ),
            op(
                json!({"name": "operation-4", "status": "RUNNING", "operationType": "UPGRADE_MASTER",
                      "targetLink": "https://x/v1/projects/p/locations/l/clusters/other"}),
            ),
        ];
        let f = in_flight(&ops, "prod");
        let got: Vec<(&str, &str, &str)> = f
            .iter()
            .map(|o| (o.resource.as_str(), o.kind.as_str(), o.id.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("control_plane", "UPGRADE_MASTER", "operation-1"),
                ("node_group.b", "UPGRADE_NODES", "operation-2")
            ]
        );

        let cp = Action::UpgradeControlPlane {
            from: v("1.29"),
            to: v("1.30.5-gke.1"),
        };
        assert_eq!(
            find_matching(&ops, "prod", &cp).map(op_id),
            Some("operation-1".into())
        );
        assert!(find_matching(&ops, "other", &cp).is_some());
        let ng = |name: &str| Action::UpgradeNodeGroup {
            node_group: name.into(),
            from: v("1.29"),
            to: v("1.30"),
            max_unavailable: Unavailable::Count(1),
            native: None,
        };
        assert_eq!(
            find_matching(&ops, "prod", &ng("b")).map(op_id),
            Some("operation-2".into())
        );
        assert!(find_matching(&ops, "prod", &ng("a")).is_none());
        let drain = Action::Soak {
            node_group: "b".into(),
            secs: 1,
        };
        assert!(find_matching(&ops, "prod", &drain).is_none());
    }

    #[test]
    fn node_version_resolution() {
        let valid = vec![
            "1.31.1-gke.5".to_string(),
            "1.30.5-gke.1014001".to_string(),
            "1.30.5-gke.999".to_string(),
            "1.30.4-gke.7".to_string(),
            "1.29.8-gke.1031000".to_string(),
        ];
        // The master's own version when it is on that minor.
        assert_eq!(
            resolve_node_version(&v("1.30"), "1.30.4-gke.7", &valid).unwrap(),
            "1.30.4-gke.7"
        );
        // Else the newest valid node version of the minor (build numbers compared as numbers).
        assert_eq!(
            resolve_node_version(&v("1.30"), "1.31.1-gke.5", &valid).unwrap(),
            "1.30.5-gke.1014001"
        );
        assert_eq!(
            resolve_node_version(&v("1.30.4"), "1.31.1-gke.5", &valid).unwrap(),
            "1.30.4-gke.7"
        );
        // Exact versions are sent as written.
        assert_eq!(
            resolve_node_version(&v("1.30.5-gke.999"), "1.31.1-gke.5", &valid).unwrap(),
            "1.30.5-gke.999"
        );
        let err = resolve_node_version(&v("1.28"), "1.29.8-gke.1031000", &valid).unwrap_err();
        assert!(err.contains("no node version for 1.28"), "{err}");
    }

    #[test]
    fn clone_keeps_configuration_and_drops_output_fields() {
        let blue: NodePool = serde_json::from_value(json!({
            "name": "blue", "version": "1.29.8-gke.1031000", "status": "RUNNING",
            "initialNodeCount": 2, "locations": ["europe-west1-b"],
            "config": {"machineType": "e2-standard-4", "labels": {"team": "core"},
                       "taints": [{"key": "k", "value": "v", "effect": "NO_SCHEDULE"}]},
            "autoscaling": {"enabled": true, "minNodeCount": 1, "maxNodeCount": 5},
            "upgradeSettings": {"maxSurge": 1, "maxUnavailable": 0, "strategy": "SURGE"},
            "selfLink": "https://x/v1/projects/p/locations/l/clusters/c/nodePools/blue",
            "instanceGroupUrls": ["https://x/ig"], "etag": "e1",
            "conditions": [{"message": "m"}]
        }))
        .unwrap();
        let green = clone_pool(&blue, "blue-green", "1.30.12-gke.1086000");
        assert_eq!(green.name, "blue-green");
        assert_eq!(green.version, "1.30.12-gke.1086000");
        assert_eq!(green.config, blue.config);
        assert_eq!(green.initial_node_count, 2);
        assert_eq!(green.locations, blue.locations);
        assert_eq!(green.autoscaling, blue.autoscaling);
        assert_eq!(green.upgrade_settings, blue.upgrade_settings);
        assert!(green.self_link.is_empty());
        assert!(green.instance_group_urls.is_empty());
        assert!(green.etag.is_empty());
        assert!(green.conditions.is_empty());
        let body = serde_json::to_value(&green).unwrap();
        assert!(body.get("status").is_none(), "{body}");
    }

    #[test]
    fn names_and_urls() {
        assert_eq!(
            cluster_name("p", "europe-west1", "prod"),
            "projects/p/locations/europe-west1/clusters/prod"
        );
        assert_eq!(
            operation_name("p", "l", "operation-1"),
            "projects/p/locations/l/operations/operation-1"
        );
        assert_eq!(
            operation_name("p", "l", "projects/q/locations/m/operations/op"),
            "projects/q/locations/m/operations/op"
        );
        assert_eq!(kube_url("34.1.2.3", false), "https://34.1.2.3");
        assert_eq!(kube_url("127.0.0.1:8080", true), "http://127.0.0.1:8080");
        assert_eq!(
            kube_url("http://127.0.0.1:8080/", false),
            "http://127.0.0.1:8080"
        );
        assert_eq!(kube_url("https://10.0.0.1", true), "https://10.0.0.1");
        assert_eq!(max_unavailable_count(Unavailable::Count(2)), Ok(2));
        assert!(max_unavailable_count(Unavailable::Percent(25))
            .unwrap_err()
            .contains("25%"));
        let o = op(json!({"name": "projects/p/locations/l/operations/operation-9"}));
        assert_eq!(op_id(&o), "operation-9");
    }
}
