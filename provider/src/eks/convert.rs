//! Pure conversions between EKS API shapes and kup's model (no I/O; unit-tested here).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use aws_sdk_eks::operation::create_nodegroup::CreateNodegroupInput;
use aws_sdk_eks::types::{
    AddonInfo, AmiTypes, ClusterVersionInformation, ClusterVersionStatus,
    LaunchTemplateSpecification, Nodegroup, NodegroupStatus, Update, UpdateParamType, UpdateStatus,
    UpdateType, VersionStatus,
};
use kup_engine::model::{AddonCompatibility, InFlightOperation, Unavailable};
use kup_engine::plan::Action;
use kup_engine::{Minor, Version};

use crate::OperationStatus;

// ---------------------------------------------------------------------------------------
// Add-on versions
// ---------------------------------------------------------------------------------------

/// Sort key for add-on versions such as `v1.11.1-eksbuild.4`: the dotted numbers
/// (major.minor.patch…) compared numerically, then the `eksbuild.N` build number, then the
/// text as a final tie-break, so `v1.11.1-eksbuild.10` is newer than `v1.11.1-eksbuild.9`
/// and `v1.10.0` older than `v1.9.10` is impossible.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AddonVersionKey<'a> {
    core: Vec<u64>,
    build: u64,
    text: &'a str,
}

fn addon_version_key(v: &str) -> AddonVersionKey<'_> {
    let s = v.trim();
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let core = core.split('.').map(leading_number).collect();
    let build = rest
        .split(['-', '+'])
        .find_map(|part| {
            let part = part.strip_prefix("eksbuild").unwrap_or(part);
            let part = part.trim_start_matches('.');
            part.parse::<u64>().ok()
        })
        .unwrap_or(0);
    AddonVersionKey {
        core,
        build,
        text: v,
    }
}

fn leading_number(s: &str) -> u64 {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or(0)
}

/// Compare two add-on versions numerically (see [`addon_version_key`]).
pub(crate) fn compare_addon_versions(a: &str, b: &str) -> Ordering {
    addon_version_key(a).cmp(&addon_version_key(b))
}

/// Sort add-on versions newest first and drop duplicates.
pub(crate) fn sort_newest_first(versions: &mut Vec<String>) {
    versions.sort_by(|a, b| compare_addon_versions(b, a));
    versions.dedup();
}

/// Build the per-minor compatibility table for one add-on from DescribeAddonVersions.
pub(crate) fn addon_compatibility(
    name: &str,
    infos: &[AddonInfo],
) -> BTreeMap<Minor, AddonCompatibility> {
    let mut map: BTreeMap<Minor, AddonCompatibility> = BTreeMap::new();
    for info in infos
        .iter()
        .filter(|i| i.addon_name().is_none_or(|n| n == name))
    {
        for v in info.addon_versions() {
            let Some(version) = v.addon_version() else {
                continue;
            };
            for c in v.compatibilities() {
                let Some(minor) = c.cluster_version().and_then(|cv| cv.parse::<Minor>().ok())
                else {
                    continue;
                };
                let entry = map.entry(minor).or_default();
                entry.versions.push(version.to_string());
                if c.default_version() {
                    entry.default = match entry.default.take() {
                        // Two defaults for one minor would be a service bug; keep the newest.
                        Some(d) if compare_addon_versions(&d, version) == Ordering::Greater => {
                            Some(d)
                        }
                        _ => Some(version.to_string()),
                    };
                }
            }
        }
    }
    for c in map.values_mut() {
        sort_newest_first(&mut c.versions);
    }
    map
}

// ---------------------------------------------------------------------------------------
// Cluster versions
// ---------------------------------------------------------------------------------------

/// The version EKS marks `defaultVersion` (what `version = "-"` means), if any.
pub(crate) fn default_version(infos: &[ClusterVersionInformation]) -> Option<Version> {
    infos
        .iter()
        .find(|i| i.default_version() && !is_unsupported(i))
        .and_then(|i| {
            i.kubernetes_patch_version()
                .filter(|p| !p.trim().is_empty())
                .or(i.cluster_version())
                .and_then(|s| s.parse::<Version>().ok())
        })
}

/// Control-plane versions EKS offers now: each non-UNSUPPORTED version's patch release
/// (`kubernetesPatchVersion`) or, without one, its minor; sorted ascending, deduplicated.
pub(crate) fn offered_versions(infos: &[ClusterVersionInformation]) -> Vec<Version> {
    let mut out: Vec<Version> = infos
        .iter()
        .filter(|i| !is_unsupported(i))
        .filter_map(|i| {
            i.kubernetes_patch_version()
                .filter(|p| !p.trim().is_empty())
                .or(i.cluster_version())
                .and_then(|s| s.parse::<Version>().ok())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The support dates DescribeClusterVersions publishes, per minor.
pub(crate) fn support_dates(
    infos: &[ClusterVersionInformation],
) -> Vec<kup_engine::preflight::SupportDates> {
    let day = |d: Option<&aws_smithy_types::DateTime>| {
        d.and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
            .and_then(|s| s.get(..10).map(str::to_string))
    };
    let mut out: Vec<kup_engine::preflight::SupportDates> = infos
        .iter()
        .filter_map(|i| {
            let minor = i.cluster_version()?.parse::<Version>().ok()?.minor();
            Some(kup_engine::preflight::SupportDates {
                minor,
                end_of_standard: day(i.end_of_standard_support_date()),
                end_of_extended: day(i.end_of_extended_support_date()),
            })
        })
        .collect();
    out.sort_by_key(|s| s.minor);
    out.dedup_by_key(|s| s.minor);
    out
}

/// An insight from its summary, and its full description when kup asked for one.
pub(crate) fn insight(
    s: &aws_sdk_eks::types::InsightSummary,
    full: Option<&aws_sdk_eks::types::Insight>,
) -> kup_engine::preflight::Insight {
    let mut details = Vec::new();
    if let Some(f) = full {
        for d in f
            .category_specific_summary()
            .map(|c| c.deprecation_details())
            .unwrap_or_default()
        {
            let clients: Vec<String> = d
                .client_stats()
                .iter()
                .map(|c| {
                    format!(
                        "{} ({} requests in 30 days)",
                        c.user_agent().unwrap_or("an unnamed client"),
                        c.number_of_requests_last30_days()
                    )
                })
                .collect();
            details.push(format!(
                "{} is removed in {}{}{}",
                d.usage().unwrap_or("?"),
                d.stop_serving_version().unwrap_or("?"),
                d.replaced_with()
                    .map(|r| format!(", use {r}"))
                    .unwrap_or_default(),
                if clients.is_empty() {
                    String::new()
                } else {
                    format!(", called by {}", clients.join(", "))
                }
            ));
        }
        for r in f.resources() {
            if let Some(uri) = r.kubernetes_resource_uri() {
                details.push(format!("resource {uri}"));
            }
        }
    }
    let status = s.insight_status();
    kup_engine::preflight::Insight {
        id: s.id().unwrap_or_default().to_string(),
        name: s.name().unwrap_or_default().to_string(),
        category: s
            .category()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        minor: s
            .kubernetes_version()
            .and_then(|v| v.parse::<Version>().ok())
            .map(|v| v.minor()),
        status: status
            .and_then(|st| st.status())
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| "UNKNOWN".into()),
        reason: status
            .and_then(|st| st.reason())
            .unwrap_or_default()
            .to_string(),
        recommendation: full
            .and_then(|f| f.recommendation())
            .unwrap_or_default()
            .to_string(),
        details,
    }
}

#[allow(deprecated)]
fn is_unsupported(i: &ClusterVersionInformation) -> bool {
    match i.version_status() {
        Some(s) => *s == VersionStatus::Unsupported,
        None => i
            .status()
            .is_some_and(|s| *s == ClusterVersionStatus::Unsupported),
    }
}

/// `MAJOR.MINOR` of a version, the form EKS takes for cluster and node-group versions.
pub(crate) fn minor_string(v: &Version) -> String {
    v.minor().to_string()
}

// ---------------------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------------------

pub(crate) fn param<'a>(u: &'a Update, t: &UpdateParamType) -> Option<&'a str> {
    u.params()
        .iter()
        .find(|p| p.r#type() == Some(t))
        .and_then(|p| p.value())
}

/// What an update is moving to: its Version, AddonVersion or MaxUnavailable(Percentage)
/// parameter (percentages are written `25%`, like [`Unavailable`]'s display).
pub(crate) fn update_target(u: &Update) -> Option<String> {
    param(u, &UpdateParamType::Version)
        .or_else(|| param(u, &UpdateParamType::AddonVersion))
        .or_else(|| param(u, &UpdateParamType::MaxUnavailable))
        .map(str::to_string)
        .or_else(|| param(u, &UpdateParamType::MaxUnavailablePercentage).map(|p| format!("{p}%")))
}

pub(crate) fn is_in_progress(u: &Update) -> bool {
    u.status() == Some(&UpdateStatus::InProgress)
}

pub(crate) fn in_flight(resource: &str, u: &Update) -> Option<InFlightOperation> {
    Some(InFlightOperation {
        id: u.id()?.to_string(),
        resource: resource.to_string(),
        kind: u
            .r#type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_else(|| "Unknown".into()),
        target: update_target(u),
    })
}

/// Does this update carry out `action`? (Type and parameters must match.)
pub(crate) fn update_matches(u: &Update, action: &Action) -> bool {
    let ty = u.r#type();
    match action {
        Action::UpgradeControlPlane { to, .. } | Action::UpgradeNodeGroup { to, .. } => {
            ty == Some(&UpdateType::VersionUpdate)
                && param(u, &UpdateParamType::Version)
                    .and_then(|v| v.parse::<Minor>().ok())
                    .is_some_and(|m| m == to.minor())
        }
        Action::UpdateNodeGroupConfig {
            max_unavailable, ..
        } => {
            if ty != Some(&UpdateType::ConfigUpdate) {
                return false;
            }
            let (t, want) = match max_unavailable {
                Unavailable::Count(n) => (UpdateParamType::MaxUnavailable, *n),
                Unavailable::Percent(p) => (UpdateParamType::MaxUnavailablePercentage, *p),
            };
            param(u, &t)
                .and_then(|v| v.trim().trim_end_matches('%').parse::<u32>().ok())
                .is_some_and(|v| v == want)
        }
        Action::UpdateAddon { to, .. } => {
            ty == Some(&UpdateType::AddonUpdate)
                && param(u, &UpdateParamType::AddonVersion).is_some_and(|v| v == to)
        }
        // Creating and deleting a node group are not updates: they are tracked through
        // the node group's own status (see `nodegroup_create_status`).
        Action::CreateNodeGroup { .. }
        | Action::DeleteNodeGroup { .. }
        | Action::RollbackNodeGroupUpgrade { .. } => false,
        // Carried out by kup through the Kubernetes API, never by EKS.
        Action::WaitNodesReady { .. }
        | Action::CordonNodeGroup { .. }
        | Action::DrainNodeGroup { .. }
        | Action::Soak { .. }
        | Action::RemoveUpgradePlans
        | Action::PrecheckHosts
        | Action::RunHook { .. }
        | Action::PostFlight { .. }
        | Action::WaveGate { .. } => false,
    }
}

/// The newest of several matching updates (by creation time, then id), deterministically.
pub(crate) fn newest(mut updates: Vec<Update>) -> Option<Update> {
    updates.sort_by(|a, b| {
        let ta = a.created_at().map(|t| (t.secs(), t.subsec_nanos()));
        let tb = b.created_at().map(|t| (t.secs(), t.subsec_nanos()));
        ta.cmp(&tb).then_with(|| a.id().cmp(&b.id()))
    });
    updates.pop()
}

/// The operation status a DescribeUpdate result means.
pub(crate) fn operation_status(u: &Update) -> OperationStatus {
    match u.status() {
        Some(UpdateStatus::Successful) => OperationStatus::Succeeded,
        Some(UpdateStatus::Failed) => {
            let errs = u.errors();
            let code = errs
                .iter()
                .find_map(|e| e.error_code().map(|c| c.as_str().to_string()))
                .unwrap_or_else(|| "Failed".to_string());
            let mut parts: Vec<String> = errs
                .iter()
                .map(|e| {
                    let c = e.error_code().map(|c| c.as_str()).unwrap_or("Unknown");
                    let mut s = format!("{c}: {}", e.error_message().unwrap_or(""));
                    if !e.resource_ids().is_empty() {
                        s.push_str(&format!(" (resources: {})", e.resource_ids().join(", ")));
                    }
                    s
                })
                .collect();
            if parts.is_empty() {
                parts.push(format!(
                    "EKS reports update {} as Failed without error details",
                    u.id().unwrap_or("?")
                ));
            }
            OperationStatus::Failed {
                code,
                message: parts.join("; "),
            }
        }
        Some(UpdateStatus::Cancelled) => OperationStatus::Cancelled {
            message: u
                .cancellation()
                .and_then(|c| c.reason())
                .map(str::to_string)
                .unwrap_or_else(|| format!("update {} was cancelled", u.id().unwrap_or("?"))),
        },
        // InProgress, a missing status, or a status this SDK does not know yet: keep waiting.
        _ => OperationStatus::in_progress(),
    }
}

// ---------------------------------------------------------------------------------------
// Blue/green node groups
// ---------------------------------------------------------------------------------------

/// Operation ids for node-group creation and deletion (EKS has no update for them; the
/// node group's status is the operation's status).
pub(crate) const CREATE_OP: &str = "create-nodegroup/";
pub(crate) const DELETE_OP: &str = "delete-nodegroup/";

/// Tags EKS and AWS set themselves and refuse in a request.
fn settable_tag(k: &str) -> bool {
    !k.starts_with("aws:")
}

/// The CreateNodegroup request that clones `blue` as `name` at `version`: same instance
/// types, scaling, subnets, labels, taints, AMI and capacity type, disk size (only without
/// a launch template, which EKS requires), launch template (id, else name, and version),
/// node role, tags, update, repair and warm-pool configuration, remote access (only
/// without a launch template). The release version is not copied: EKS picks the newest AMI
/// for `version`. A node group on a custom AMI cannot be cloned at another version (its
/// launch template fixes the AMI), and is refused.
pub(crate) fn clone_request(
    blue: &Nodegroup,
    cluster: &str,
    name: &str,
    version: &Version,
    token: &str,
) -> Result<CreateNodegroupInput, String> {
    let blue_name = blue.nodegroup_name().unwrap_or("?");
    if blue.ami_type() == Some(&AmiTypes::Custom) {
        return Err(format!(
            "node group `{blue_name}` runs a custom AMI from its launch template; kup cannot \
             choose the AMI for Kubernetes {} — create a launch template version with that \
             AMI and upgrade it with strategy = \"rolling\" instead",
            version.minor()
        ));
    }
    let lt = blue.launch_template().map(|lt| {
        let by_id = lt.id().filter(|i| !i.is_empty());
        LaunchTemplateSpecification::builder()
            .set_id(by_id.map(str::to_string))
            .set_name(if by_id.is_some() {
                None
            } else {
                lt.name().map(str::to_string)
            })
            .set_version(lt.version().map(str::to_string))
            .build()
    });
    let has_lt = lt.is_some();
    let tags = blue.tags().map(|t| {
        t.iter()
            .filter(|(k, _)| settable_tag(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    let nonempty = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
    CreateNodegroupInput::builder()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .set_scaling_config(blue.scaling_config().cloned())
        .set_disk_size(if has_lt { None } else { blue.disk_size() })
        .set_subnets(nonempty(blue.subnets()))
        .set_instance_types(nonempty(blue.instance_types()))
        .set_ami_type(blue.ami_type().cloned())
        .set_remote_access(if has_lt {
            None
        } else {
            blue.remote_access().cloned()
        })
        .set_node_role(blue.node_role().map(str::to_string))
        .set_labels(blue.labels().cloned())
        .set_taints((!blue.taints().is_empty()).then(|| blue.taints().to_vec()))
        .set_tags(tags)
        .client_request_token(token)
        .set_launch_template(lt)
        .set_update_config(blue.update_config().cloned())
        .set_node_repair_config(blue.node_repair_config().cloned())
        .set_capacity_type(blue.capacity_type().cloned())
        .version(minor_string(version))
        .set_warm_pool_config(blue.warm_pool_config().cloned())
        .build()
        .map_err(|e| e.to_string())
}

fn health_text(ng: &Nodegroup) -> String {
    let issues: Vec<String> = ng
        .health()
        .map(|h| {
            h.issues()
                .iter()
                .map(|i| {
                    let mut s = format!(
                        "{}: {}",
                        i.code().map(|c| c.as_str()).unwrap_or("Unknown"),
                        i.message().unwrap_or("")
                    );
                    if !i.resource_ids().is_empty() {
                        s.push_str(&format!(" (resources: {})", i.resource_ids().join(", ")));
                    }
                    s
                })
                .collect()
        })
        .unwrap_or_default();
    issues.join("; ")
}

fn first_issue_code(ng: &Nodegroup) -> Option<String> {
    ng.health()
        .and_then(|h| h.issues().iter().find_map(|i| i.code()))
        .map(|c| c.as_str().to_string())
}

/// The status of a node-group creation, from the group (None = it does not exist).
pub(crate) fn nodegroup_create_status(ng: Option<&Nodegroup>, name: &str) -> OperationStatus {
    let Some(ng) = ng else {
        return OperationStatus::Failed {
            code: "ResourceNotFoundException".into(),
            message: format!("node group `{name}` no longer exists"),
        };
    };
    match ng.status() {
        Some(NodegroupStatus::Active) => OperationStatus::Succeeded,
        Some(NodegroupStatus::CreateFailed) => {
            let h = health_text(ng);
            OperationStatus::Failed {
                code: first_issue_code(ng).unwrap_or_else(|| "CREATE_FAILED".into()),
                message: if h.is_empty() {
                    format!("EKS could not create node group `{name}` (CREATE_FAILED)")
                } else {
                    format!("EKS could not create node group `{name}`: {h}")
                },
            }
        }
        Some(NodegroupStatus::Degraded) => OperationStatus::Failed {
            code: first_issue_code(ng).unwrap_or_else(|| "DEGRADED".into()),
            message: format!(
                "node group `{name}` was created DEGRADED: {}",
                health_text(ng)
            ),
        },
        Some(NodegroupStatus::Deleting | NodegroupStatus::DeleteFailed) => {
            OperationStatus::Failed {
                code: ng
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                message: format!("node group `{name}` is being deleted, not created"),
            }
        }
        // CREATING, UPDATING, or a status this SDK does not know yet.
        _ => OperationStatus::in_progress(),
    }
}

/// The status of a node-group deletion (None = it is gone: done).
pub(crate) fn nodegroup_delete_status(ng: Option<&Nodegroup>, name: &str) -> OperationStatus {
    let Some(ng) = ng else {
        return OperationStatus::Succeeded;
    };
    match ng.status() {
        Some(NodegroupStatus::DeleteFailed) => {
            let h = health_text(ng);
            OperationStatus::Failed {
                code: first_issue_code(ng).unwrap_or_else(|| "DELETE_FAILED".into()),
                message: if h.is_empty() {
                    format!("EKS could not delete node group `{name}` (DELETE_FAILED)")
                } else {
                    format!("EKS could not delete node group `{name}`: {h}")
                },
            }
        }
        _ => OperationStatus::in_progress(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eks::types::{
        AddonVersionInfo, Cancellation, Compatibility, ErrorCode, ErrorDetail, UpdateParam,
    };

    #[test]
    fn addon_versions_sort_numerically_not_lexically() {
        let mut v: Vec<String> = [
            "v1.9.3-eksbuild.2",
            "v1.11.1-eksbuild.4",
            "v1.11.1-eksbuild.10",
            "v1.10.1-eksbuild.7",
            "v1.11.1-eksbuild.9",
            "v1.11.3-eksbuild.1",
            "v1.10.1-eksbuild.13",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sort_newest_first(&mut v);
        assert_eq!(
            v,
            [
                "v1.11.3-eksbuild.1",
                "v1.11.1-eksbuild.10",
                "v1.11.1-eksbuild.9",
                "v1.11.1-eksbuild.4",
                "v1.10.1-eksbuild.13",
                "v1.10.1-eksbuild.7",
                "v1.9.3-eksbuild.2",
            ]
        );
        assert_eq!(
            compare_addon_versions("v1.28.10-eksbuild.2", "v1.28.9-eksbuild.30"),
            Ordering::Greater
        );
        assert_eq!(
            compare_addon_versions("v1.2.0", "v1.2.0-eksbuild.1"),
            Ordering::Less
        );
        assert_eq!(
            compare_addon_versions("1.19.0", "v1.18.9"),
            Ordering::Greater
        );
    }

    fn compat(minor: &str, default: bool) -> Compatibility {
        Compatibility::builder()
            .cluster_version(minor)
            .default_version(default)
            .build()
    }

    #[test]
    fn compatibility_groups_by_minor_newest_first_with_default() {
        let info = AddonInfo::builder()
            .addon_name("coredns")
            .addon_versions(
                AddonVersionInfo::builder()
                    .addon_version("v1.10.1-eksbuild.7")
                    .compatibilities(compat("1.28", true))
                    .compatibilities(compat("1.29", false))
                    .build(),
            )
            .addon_versions(
                AddonVersionInfo::builder()
                    .addon_version("v1.11.1-eksbuild.9")
                    .compatibilities(compat("1.28", false))
                    .compatibilities(compat("1.29", true))
                    .build(),
            )
            .addon_versions(
                AddonVersionInfo::builder()
                    .addon_version("v1.9.3-eksbuild.22")
                    .compatibilities(compat("1.28", false))
                    .build(),
            )
            .build();
        let m = addon_compatibility("coredns", &[info]);
        let m28 = &m[&Minor::new(1, 28)];
        assert_eq!(
            m28.versions,
            [
                "v1.11.1-eksbuild.9",
                "v1.10.1-eksbuild.7",
                "v1.9.3-eksbuild.22"
            ]
        );
        assert_eq!(m28.default.as_deref(), Some("v1.10.1-eksbuild.7"));
        let m29 = &m[&Minor::new(1, 29)];
        assert_eq!(m29.versions, ["v1.11.1-eksbuild.9", "v1.10.1-eksbuild.7"]);
        assert_eq!(m29.default.as_deref(), Some("v1.11.1-eksbuild.9"));
    }

    #[test]
    fn offered_versions_skip_unsupported_and_prefer_patch() {
        let infos = vec![
            ClusterVersionInformation::builder()
                .cluster_version("1.24")
                .kubernetes_patch_version("1.24.17")
                .version_status(VersionStatus::Unsupported)
                .build(),
            ClusterVersionInformation::builder()
                .cluster_version("1.30")
                .version_status(VersionStatus::StandardSupport)
                .build(),
            ClusterVersionInformation::builder()
                .cluster_version("1.28")
                .kubernetes_patch_version("1.28.15")
                .version_status(VersionStatus::ExtendedSupport)
                .build(),
        ];
        let v: Vec<String> = offered_versions(&infos)
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(v, ["1.28.15", "1.30"]);
    }

    fn update(ty: UpdateType, status: UpdateStatus, params: &[(UpdateParamType, &str)]) -> Update {
        let mut b = Update::builder().id("u-1").r#type(ty).status(status);
        for (t, v) in params {
            b = b.params(UpdateParam::builder().r#type(t.clone()).value(*v).build());
        }
        b.build()
    }

    #[test]
    fn matching_and_targets() {
        let cp = update(
            UpdateType::VersionUpdate,
            UpdateStatus::InProgress,
            &[
                (UpdateParamType::Version, "1.29"),
                (UpdateParamType::PlatformVersion, "eks.1"),
            ],
        );
        let to_29 = Action::UpgradeControlPlane {
            from: "1.28".parse().unwrap(),
            to: "1.29.10".parse().unwrap(),
        };
        let to_30 = Action::UpgradeControlPlane {
            from: "1.29".parse().unwrap(),
            to: "1.30".parse().unwrap(),
        };
        assert!(update_matches(&cp, &to_29));
        assert!(!update_matches(&cp, &to_30));
        assert_eq!(update_target(&cp).as_deref(), Some("1.29"));

        let cfg = update(
            UpdateType::ConfigUpdate,
            UpdateStatus::InProgress,
            &[(UpdateParamType::MaxUnavailablePercentage, "25")],
        );
        let pct = |p| Action::UpdateNodeGroupConfig {
            node_group: "g".into(),
            from: None,
            max_unavailable: Unavailable::Percent(p),
            blue_green: None,
            drain_limits: None,
            max_surge: None,
            node_soak: None,
        };
        assert!(update_matches(&cfg, &pct(25)));
        assert!(!update_matches(&cfg, &pct(30)));
        assert!(!update_matches(
            &cfg,
            &Action::UpdateNodeGroupConfig {
                node_group: "g".into(),
                from: None,
                max_unavailable: Unavailable::Count(25),
                blue_green: None,
                drain_limits: None,
                max_surge: None,
                node_soak: None,
            }
        ));
        assert_eq!(update_target(&cfg).as_deref(), Some("25%"));

        let addon = update(
            UpdateType::AddonUpdate,
            UpdateStatus::InProgress,
            &[(UpdateParamType::AddonVersion, "v1.11.1-eksbuild.9")],
        );
        let a = |to: &str| Action::UpdateAddon {
            addon: "coredns".into(),
            from: "v1.10.1-eksbuild.7".into(),
            to: to.into(),
        };
        assert!(update_matches(&addon, &a("v1.11.1-eksbuild.9")));
        assert!(!update_matches(&addon, &a("v1.11.1-eksbuild.4")));
        assert!(!update_matches(&addon, &to_29));
        let f = in_flight("addon.coredns", &addon).unwrap();
        assert_eq!(f.kind, "AddonUpdate");
        assert_eq!(f.target.as_deref(), Some("v1.11.1-eksbuild.9"));
    }

    #[test]
    fn failed_update_reports_all_errors() {
        let u = Update::builder()
            .id("u-9")
            .r#type(UpdateType::VersionUpdate)
            .status(UpdateStatus::Failed)
            .errors(
                ErrorDetail::builder()
                    .error_code(ErrorCode::PodEvictionFailure)
                    .error_message("Reached max retries while trying to evict pods")
                    .resource_ids("ip-10-0-0-1.ec2.internal")
                    .build(),
            )
            .errors(
                ErrorDetail::builder()
                    .error_code(ErrorCode::NodeCreationFailure)
                    .error_message("Instances failed to join")
                    .build(),
            )
            .build();
        match operation_status(&u) {
            OperationStatus::Failed { code, message } => {
                assert_eq!(code, "PodEvictionFailure");
                assert_eq!(
                    message,
                    "PodEvictionFailure: Reached max retries while trying to evict pods \
                     (resources: ip-10-0-0-1.ec2.internal); \
                     NodeCreationFailure: Instances failed to join"
                );
            }
            other => panic!("{other:?}"),
        }
        let c = Update::builder()
            .status(UpdateStatus::Cancelled)
            .cancellation(Cancellation::builder().reason("rolled back").build())
            .build();
        assert_eq!(
            operation_status(&c),
            OperationStatus::Cancelled {
                message: "rolled back".into()
            }
        );
        let ok = Update::builder().status(UpdateStatus::Successful).build();
        assert_eq!(operation_status(&ok), OperationStatus::Succeeded);
    }

    fn blue_group(with_lt: bool) -> Nodegroup {
        use aws_sdk_eks::types::{
            CapacityTypes, NodegroupScalingConfig, NodegroupUpdateConfig, RemoteAccessConfig,
            Taint, TaintEffect,
        };
        let mut b = Nodegroup::builder()
            .nodegroup_name("general")
            .cluster_name("prod")
            .version("1.28")
            .release_version("1.28.15-20250101")
            .status(NodegroupStatus::Active)
            .capacity_type(CapacityTypes::Spot)
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .min_size(1)
                    .max_size(6)
                    .desired_size(3)
                    .build(),
            )
            .instance_types("m6i.large")
            .instance_types("m5.large")
            .subnets("subnet-a")
            .subnets("subnet-b")
            .ami_type(AmiTypes::Al2023X8664Standard)
            .node_role("arn:aws:iam::111122223333:role/nodes")
            .labels("team", "core")
            .taints(
                Taint::builder()
                    .key("dedicated")
                    .value("core")
                    .effect(TaintEffect::NoSchedule)
                    .build(),
            )
            .tags("owner", "platform")
            .tags("aws:cloudformation:stack-name", "x")
            .disk_size(50)
            .remote_access(
                RemoteAccessConfig::builder()
                    .ec2_ssh_key("ops")
                    .source_security_groups("sg-1")
                    .build(),
            )
            .update_config(
                NodegroupUpdateConfig::builder()
                    .max_unavailable_percentage(25)
                    .build(),
            );
        if with_lt {
            b = b.launch_template(
                LaunchTemplateSpecification::builder()
                    .id("lt-0abc")
                    .name("general-lt")
                    .version("7")
                    .build(),
            );
        }
        b.build()
    }

    #[test]
    fn clone_copies_the_blue_group() {
        let blue = blue_group(false);
        let v: Version = "1.29.4".parse().unwrap();
        let r = clone_request(&blue, "prod", "general-1-29", &v, "tok-1").unwrap();
        assert_eq!(r.cluster_name(), Some("prod"));
        assert_eq!(r.nodegroup_name(), Some("general-1-29"));
        assert_eq!(r.version(), Some("1.29"));
        assert_eq!(r.release_version(), None);
        assert_eq!(r.client_request_token(), Some("tok-1"));
        assert_eq!(r.instance_types(), ["m6i.large", "m5.large"]);
        assert_eq!(r.subnets(), ["subnet-a", "subnet-b"]);
        let sc = r.scaling_config().unwrap();
        assert_eq!(
            (sc.min_size(), sc.max_size(), sc.desired_size()),
            (Some(1), Some(6), Some(3))
        );
        assert_eq!(r.ami_type(), Some(&AmiTypes::Al2023X8664Standard));
        assert_eq!(r.capacity_type().map(|c| c.as_str()), Some("SPOT"));
        assert_eq!(r.node_role(), Some("arn:aws:iam::111122223333:role/nodes"));
        assert_eq!(
            r.labels().unwrap().get("team").map(String::as_str),
            Some("core")
        );
        assert_eq!(r.taints().len(), 1);
        assert_eq!(r.taints()[0].key(), Some("dedicated"));
        assert_eq!(
            r.taints()[0].effect().map(|e| e.as_str()),
            Some("NO_SCHEDULE")
        );
        let tags = r.tags().unwrap();
        assert_eq!(tags.get("owner").map(String::as_str), Some("platform"));
        assert!(!tags.contains_key("aws:cloudformation:stack-name"));
        assert_eq!(r.disk_size(), Some(50));
        assert_eq!(r.remote_access().and_then(|a| a.ec2_ssh_key()), Some("ops"));
        assert_eq!(
            r.update_config()
                .and_then(|u| u.max_unavailable_percentage()),
            Some(25)
        );
        assert!(r.launch_template().is_none());
    }

    #[test]
    fn clone_with_launch_template_drops_disk_size_and_remote_access() {
        let blue = blue_group(true);
        let v: Version = "1.29".parse().unwrap();
        let r = clone_request(&blue, "prod", "g2", &v, "t").unwrap();
        let lt = r.launch_template().unwrap();
        assert_eq!(lt.id(), Some("lt-0abc"));
        assert_eq!(lt.name(), None, "id and name are mutually exclusive");
        assert_eq!(lt.version(), Some("7"));
        assert_eq!(r.disk_size(), None);
        assert!(r.remote_access().is_none());
        assert_eq!(r.instance_types(), ["m6i.large", "m5.large"]);

        let mut custom = blue_group(true);
        custom.ami_type = Some(AmiTypes::Custom);
        let e = clone_request(&custom, "prod", "g2", &v, "t").unwrap_err();
        assert!(e.contains("custom AMI"), "{e}");
    }

    #[test]
    fn nodegroup_lifecycle_statuses() {
        use aws_sdk_eks::types::{Issue, NodegroupHealth, NodegroupIssueCode};
        let ng = |s: NodegroupStatus| Nodegroup::builder().nodegroup_name("g").status(s).build();
        assert_eq!(
            nodegroup_create_status(Some(&ng(NodegroupStatus::Creating)), "g"),
            OperationStatus::in_progress()
        );
        assert_eq!(
            nodegroup_create_status(Some(&ng(NodegroupStatus::Active)), "g"),
            OperationStatus::Succeeded
        );
        let failed = Nodegroup::builder()
            .status(NodegroupStatus::CreateFailed)
            .health(
                NodegroupHealth::builder()
                    .issues(
                        Issue::builder()
                            .code(NodegroupIssueCode::NodeCreationFailure)
                            .message("Instances failed to join the kubernetes cluster")
                            .resource_ids("i-1")
                            .build(),
                    )
                    .build(),
            )
            .build();
        match nodegroup_create_status(Some(&failed), "g") {
            OperationStatus::Failed { code, message } => {
                assert_eq!(code, "NodeCreationFailure");
                assert!(
                    message.contains(
                        "Instances failed to join the kubernetes cluster (resources: i-1)"
                    ),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            nodegroup_create_status(None, "g"),
            OperationStatus::Failed { .. }
        ));
        assert_eq!(
            nodegroup_delete_status(None, "g"),
            OperationStatus::Succeeded
        );
        assert_eq!(
            nodegroup_delete_status(Some(&ng(NodegroupStatus::Deleting)), "g"),
            OperationStatus::in_progress()
        );
        assert!(matches!(
            nodegroup_delete_status(Some(&ng(NodegroupStatus::DeleteFailed)), "g"),
            OperationStatus::Failed { code, .. } if code == "DELETE_FAILED"
        ));
        for a in [
            Action::CreateNodeGroup {
                node_group: "g2".into(),
                clone_of: "g".into(),
                version: "1.29".parse().unwrap(),
            },
            Action::DeleteNodeGroup {
                node_group: "g".into(),
            },
        ] {
            let u = update(
                UpdateType::VersionUpdate,
                UpdateStatus::InProgress,
                &[(UpdateParamType::Version, "1.29")],
            );
            assert!(!update_matches(&u, &a));
        }
    }
}
