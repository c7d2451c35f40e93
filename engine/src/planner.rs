//! The planner: `plan(desired, actual, policies) -> Plan`, pure and deterministic.
//!
//! Per cluster it walks the control plane one minor at a time towards the target. Before
//! each hop it asks the skew policy whether every kubelet may stay; a node group that may
//! not is rolled first, as far as the control plane allows *now* (but never past its own
//! target). Rolling as late and as far as possible gives the fewest rollouts: 1.26 → 1.31
//! with 1.26 nodes is CP 1.27, 1.28, 1.29, nodes → 1.29, CP 1.30, 1.31, nodes → 1.31.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::model::{
    ActualAddon, ActualCluster, AddonSpec, AddonVersionReq, ClusterSpec, Desired, DrainLimits,
    SourceLoc, Strategy, VersionAlias,
};
use crate::plan::{
    Action, Change, ClusterPlan, Condition, NativeUpgrade, Plan, Step, TimelinePoint,
};
use crate::policy::{ProviderPolicy, SkewPolicy};
use crate::version::{Minor, Version};

/// `d` rounded up to whole `unit` seconds (no rounding when `unit` is 0 or 1).
fn round_up(d: Duration, unit: u64) -> Duration {
    if unit <= 1 {
        return d;
    }
    Duration::from_secs(d.as_secs().div_ceil(unit) * unit)
}

/// Replace `version = "latest"` / `"-"` with the exact version the provider offers now,
/// so the plan (and a saved plan) names a real release. Node groups without a version of
/// their own follow the resolved minor. Clusters not refreshed are left as they are.
pub fn resolve_version_aliases(
    desired: &mut Desired,
    actual: &BTreeMap<String, ActualCluster>,
) -> Result<(), Vec<PlanError>> {
    let mut errors = Vec::new();
    for spec in desired.clusters.iter_mut() {
        let Some(alias) = spec.version_alias else {
            continue;
        };
        let Some(a) = actual.get(&spec.label) else {
            continue;
        };
        let found = match alias {
            // Never a downgrade: a cluster already past every offered version stays.
            VersionAlias::Latest => a
                .offered_versions
                .iter()
                .max()
                .map(|v| v.max(&a.version).clone()),
            // Likewise: a cluster an auto-upgrade took past the default stays.
            VersionAlias::ProviderDefault => a
                .default_version
                .as_ref()
                .map(|v| v.max(&a.version).clone()),
        };
        let Some(v) = found else {
            errors.push(PlanError {
                address: spec.address(),
                loc: spec.version_origin.clone(),
                message: match alias {
                    VersionAlias::Latest => format!(
                        "version = \"latest\", but provider `{}` offers no versions for this cluster",
                        spec.provider
                    ),
                    VersionAlias::ProviderDefault => format!(
                        "version = \"-\" means the provider's default version, and provider `{}` reports none",
                        spec.provider
                    ),
                },
                hint: Some(format!(
                    "write the version instead; {}",
                    offered_hint(a)
                )),
            });
            continue;
        };
        for ng in spec.node_groups.iter_mut().filter(|n| n.follows_cluster) {
            ng.version = Version::new(v.major, v.minor, None);
        }
        spec.version = v;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The user's hooks around the control-plane steps and node-group rollouts (a blue/green
/// replacement counts from its create to its delete), and after the whole cluster. Each
/// hook is a step of its own, so a resumed apply never runs a finished hook again.
fn insert_hooks(spec: &ClusterSpec, steps: &mut Vec<Step>) {
    if spec.hooks.is_empty() {
        return;
    }
    let hook_step = |id: String,
                     depends_on: Vec<String>,
                     h: &crate::model::HookSpec,
                     from: &str,
                     to: &str,
                     node_group: Option<&str>| {
        let mut env = BTreeMap::new();
        env.insert("KUP_HOOK".to_string(), h.point.clone());
        env.insert("KUP_CLUSTER".to_string(), spec.label.clone());
        env.insert("KUP_CLUSTER_NAME".to_string(), spec.name.clone());
        env.insert("KUP_PROVIDER".to_string(), spec.provider.clone());
        env.insert("KUP_FROM_VERSION".to_string(), from.to_string());
        env.insert("KUP_TO_VERSION".to_string(), to.to_string());
        if let Some(ng) = node_group {
            env.insert("KUP_NODE_GROUP".to_string(), ng.to_string());
        }
        if let Some(k) = &spec.kubeconfig {
            env.insert("KUBECONFIG".to_string(), k.clone());
        }
        Step {
            id,
            cluster: spec.address(),
            address: format!("{}.hook.{}", spec.address(), h.point),
            action: Action::RunHook {
                point: h.point.clone(),
                command: h.command.clone(),
                timeout_secs: h.timeout.as_secs(),
                env,
            },
            depends_on,
            precondition: Vec::new(),
            postcondition: vec![Condition::JournalOnly],
            estimated_secs: 30,
            reason: format!("hook \"{}\" in the configuration", h.point),
        }
    };
    let hooks_at = |point: &str| -> Vec<&crate::model::HookSpec> {
        spec.hooks.iter().filter(|h| h.point == point).collect()
    };
    // A step's id → the id later steps wait for instead (its last after-hook).
    let mut later: BTreeMap<String, String> = BTreeMap::new();
    let mut out: Vec<Step> = Vec::new();
    for mut s in std::mem::take(steps) {
        s.depends_on = s
            .depends_on
            .iter()
            .map(|d| later.get(d).cloned().unwrap_or_else(|| d.clone()))
            .collect();
        let (before, after, node_group, from, to) = match &s.action {
            Action::UpgradeControlPlane { from, to } => (
                Some("before_control_plane"),
                Some("after_control_plane"),
                None,
                from.to_string(),
                to.to_string(),
            ),
            Action::UpgradeNodeGroup {
                node_group,
                from,
                to,
                ..
            } => (
                Some("before_node_group"),
                Some("after_node_group"),
                Some(node_group.clone()),
                from.to_string(),
                to.to_string(),
            ),
            Action::CreateNodeGroup {
                clone_of, version, ..
            } => (
                Some("before_node_group"),
                None,
                Some(clone_of.clone()),
                String::new(),
                version.to_string(),
            ),
            Action::DeleteNodeGroup { node_group } => (
                None,
                Some("after_node_group"),
                Some(node_group.clone()),
                String::new(),
                String::new(),
            ),
            _ => (None, None, None, String::new(), String::new()),
        };
        if let Some(point) = before {
            let mut deps = std::mem::take(&mut s.depends_on);
            for (i, h) in hooks_at(point).into_iter().enumerate() {
                let id = format!("{}/hook/{point}/{i}", s.id);
                out.push(hook_step(
                    id.clone(),
                    deps,
                    h,
                    &from,
                    &to,
                    node_group.as_deref(),
                ));
                deps = vec![id];
            }
            s.depends_on = deps;
        }
        let id = s.id.clone();
        out.push(s);
        if let Some(point) = after {
            let mut last = id.clone();
            for (i, h) in hooks_at(point).into_iter().enumerate() {
                let hid = format!("{id}/hook/{point}/{i}");
                out.push(hook_step(
                    hid.clone(),
                    vec![last],
                    h,
                    &from,
                    &to,
                    node_group.as_deref(),
                ));
                last = hid;
            }
            later.insert(id, last);
        }
    }
    if !out.is_empty() {
        let mut deps: Vec<String> = out.iter().map(|s| s.id.clone()).collect();
        let (from, to) = out
            .iter()
            .filter_map(|s| match &s.action {
                Action::UpgradeControlPlane { from, to } => {
                    Some((from.to_string(), to.to_string()))
                }
                _ => None,
            })
            .fold((None, None), |(f, _), (a, b)| (f.or(Some(a)), Some(b)));
        let (from, to) = (
            from.unwrap_or_default(),
            to.unwrap_or_else(|| spec.version.to_string()),
        );
        for (i, h) in hooks_at("after_cluster").into_iter().enumerate() {
            let id = format!("{}/hook/after_cluster/{i}", spec.label);
            out.push(hook_step(id.clone(), deps, h, &from, &to, None));
            deps = vec![id];
        }
    }
    *steps = out;
}

/// Narrow a plan to part of the configuration (`-target`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Cluster(String),
    NodeGroup { cluster: String, node_group: String },
}

impl Target {
    /// Parse `cluster.NAME` or `cluster.NAME.node_group.NAME`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            ["cluster", c] if !c.is_empty() => Ok(Target::Cluster(c.to_string())),
            ["cluster", c, "node_group", n] if !c.is_empty() && !n.is_empty() => {
                Ok(Target::NodeGroup {
                    cluster: c.to_string(),
                    node_group: n.to_string(),
                })
            }
            _ => Err(format!(
                "`{s}` is not a target address; write cluster.NAME or cluster.NAME.node_group.NAME"
            )),
        }
    }

    fn cluster(&self) -> &str {
        match self {
            Target::Cluster(c) | Target::NodeGroup { cluster: c, .. } => c,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Use the two-minor reading of the skew policy everywhere.
    pub strict_skew: bool,
    pub targets: Vec<Target>,
    /// Today, for support-date warnings (`None`: none are given).
    pub today: Option<time::Date>,
}

/// Why a plan cannot be made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanError {
    /// The resource, e.g. `cluster.prod.node_group.general`.
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loc: Option<SourceLoc>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.address, self.message)?;
        if let Some(loc) = &self.loc {
            write!(f, " (at {loc})")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// The whole input of one planning run.
pub struct PlanInput<'a> {
    pub desired: &'a Desired,
    /// Refreshed state, by cluster label.
    pub actual: &'a BTreeMap<String, ActualCluster>,
    /// Constraints of each provider, by provider key.
    pub policies: &'a BTreeMap<String, ProviderPolicy>,
    pub options: &'a PlanOptions,
}

impl PlanInput<'_> {
    /// The skew rules for one cluster: upstream's (or the strict reading) and its
    /// provider's constraints.
    fn skew_policy(&self, spec: &ClusterSpec) -> SkewPolicy {
        SkewPolicy {
            strict_skew: self.options.strict_skew,
            provider: self
                .policies
                .get(&spec.provider)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

pub fn plan(input: &PlanInput<'_>) -> Result<Plan, Vec<PlanError>> {
    let mut errors = Vec::new();
    for t in &input.options.targets {
        if input.desired.cluster(t.cluster()).is_none() {
            errors.push(PlanError {
                address: format!("cluster.{}", t.cluster()),
                loc: None,
                message: "-target names a cluster that is not in the configuration".into(),
                hint: Some(format!(
                    "declared clusters: {}",
                    input
                        .desired
                        .clusters
                        .iter()
                        .map(|c| c.label.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
        }
    }
    let mut cluster_plans = Vec::new();
    let mut steps = Vec::new();
    for spec in &input.desired.clusters {
        let cluster_targets: Vec<&Target> = input
            .options
            .targets
            .iter()
            .filter(|t| t.cluster() == spec.label)
            .collect();
        if !input.options.targets.is_empty() && cluster_targets.is_empty() {
            continue;
        }
        let Some(actual) = input.actual.get(&spec.label) else {
            errors.push(PlanError {
                address: spec.address(),
                loc: spec.origin.clone(),
                message: "no refreshed state for this cluster".into(),
                hint: None,
            });
            continue;
        };
        let policy = input.skew_policy(spec);
        let narrowed;
        let whole_cluster = cluster_targets.is_empty()
            || cluster_targets
                .iter()
                .any(|t| matches!(t, Target::Cluster(_)));
        let spec = if whole_cluster {
            spec
        } else {
            narrowed = narrow_to_node_groups(spec, actual, &cluster_targets, &mut errors);
            &narrowed
        };
        match plan_cluster(spec, actual, &policy, input.options.today) {
            Ok((mut cp, mut s)) => {
                if let Some(p) = input
                    .desired
                    .provider(&spec.provider)
                    .filter(|p| p.tls.insecure_skip_tls_verify)
                {
                    cp.warnings.insert(0, insecure_warning(p));
                }
                cluster_plans.push(cp);
                steps.append(&mut s);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        waves::order(input.desired, &mut steps);
        Ok(Plan::new(cluster_plans, steps))
    } else {
        Err(errors)
    }
}

/// Said in every plan while a provider block turns certificate checks off.
fn insecure_warning(p: &crate::model::ProviderSpec) -> String {
    let at = p
        .origin
        .as_ref()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default();
    format!(
        "provider \"{}\"{at} has insecure_skip_tls_verify = true: kup does not verify the TLS certificate of its API endpoint, so anyone on the network path could impersonate it and read its credentials. Trust the endpoint's CA with ca_file instead",
        p.key()
    )
}

/// What the safety checks find for one cluster, on their own (`kup check`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterCheck {
    pub address: String,
    pub name: String,
    pub provider: String,
    pub from: Version,
    /// The version the configuration asks for, when it can be planned at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Version>,
    /// Why the target cannot be planned (a downgrade, a version not offered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub findings: Vec<crate::preflight::Finding>,
}

/// Run every safety check for every cluster without planning the steps.
pub fn check(input: &PlanInput<'_>) -> Vec<ClusterCheck> {
    let mut out = Vec::new();
    for spec in &input.desired.clusters {
        let Some(actual) = input.actual.get(&spec.label) else {
            continue;
        };
        let policy = input.skew_policy(spec);
        let (to, error) = match resolve_target(spec, actual, &policy) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let target = to
            .as_ref()
            .map(|t| t.minor())
            .unwrap_or_else(|| actual.version.minor());
        let findings = crate::preflight::findings(&crate::preflight::Context {
            spec,
            actual,
            policy: &policy.provider,
            target,
            today: input.options.today,
        });
        out.push(ClusterCheck {
            address: spec.address(),
            name: actual.name.clone(),
            provider: spec.provider.clone(),
            from: actual.version.clone(),
            to,
            error,
            findings,
        });
    }
    out
}

/// With `-target cluster.X.node_group.Y`, only those node groups move, and only as far as
/// the control plane already allows.
fn narrow_to_node_groups(
    spec: &ClusterSpec,
    actual: &ActualCluster,
    targets: &[&Target],
    errors: &mut Vec<PlanError>,
) -> ClusterSpec {
    let mut out = spec.clone();
    out.version = Version::new(actual.version.major, actual.version.minor, None);
    out.addons.clear();
    let wanted: Vec<&str> = targets
        .iter()
        .filter_map(|t| match t {
            Target::NodeGroup { node_group, .. } => Some(node_group.as_str()),
            Target::Cluster(_) => None,
        })
        .collect();
    for w in &wanted {
        if spec.node_group(w).is_none() {
            errors.push(PlanError {
                address: format!("{}.node_group.{w}", spec.address()),
                loc: spec.origin.clone(),
                message: "-target names a node group that is not in this cluster's configuration"
                    .into(),
                hint: None,
            });
        }
    }
    out.node_groups
        .retain(|n| wanted.contains(&n.name.as_str()));
    let cp = actual.version.minor();
    for ng in &mut out.node_groups {
        if ng.version.minor() > cp {
            ng.version = Version::new(cp.major, cp.minor, None);
        }
    }
    out
}

/// Tracks one cluster's versions while the planner walks forward.
struct Walk<'a> {
    spec: &'a ClusterSpec,
    actual: &'a ActualCluster,
    policy: &'a SkewPolicy,
    cp: Minor,
    /// Managed node groups: current (planned) minor, by configured name.
    groups: BTreeMap<String, Minor>,
    /// Configured name → the provider's group serving it now (differs for blue/green).
    live_names: BTreeMap<String, String>,
    /// Add-on versions as planned so far.
    addons: BTreeMap<String, String>,
    steps: Vec<Step>,
    timeline: Vec<TimelinePoint>,
    /// Steps the next "level" must wait for.
    frontier: Vec<String>,
    errors: Vec<PlanError>,
    /// With `rounds`: the exact release of the round being planned, which node groups
    /// roll to, and each managed group's exact release as planned so far.
    round_version: Option<Version>,
    exact: BTreeMap<String, Version>,
}

fn plan_cluster(
    spec: &ClusterSpec,
    actual: &ActualCluster,
    policy: &SkewPolicy,
    today: Option<time::Date>,
) -> Result<(ClusterPlan, Vec<Step>), Vec<PlanError>> {
    let mut errors = Vec::new();
    let address = spec.address();
    let target = match resolve_target(spec, actual, policy) {
        Ok(t) => t,
        Err(e) => return Err(vec![e]),
    };
    let target_minor = target.minor();
    let current = actual.version.minor();

    // Every intermediate minor must be offered, or the provider cannot step through it.
    let mut m = current;
    while m < target_minor {
        m = m.next();
        if !actual.offered_versions.iter().any(|v| v.minor() == m) {
            errors.push(PlanError {
                address: address.clone(),
                loc: spec.version_origin.clone(),
                message: format!(
                    "the upgrade from {current} to {target_minor} must pass through {m}, which the provider does not offer"
                ),
                hint: Some(offered_hint(actual)),
            });
        }
    }

    // The safety checks: blocking findings refuse the plan, the rest are warnings.
    let mut findings = crate::preflight::findings(&crate::preflight::Context {
        spec,
        actual,
        policy: &policy.provider,
        target: target_minor,
        today,
    });

    // Node groups: exist, no downgrade, final state legal.
    let mut groups = BTreeMap::new();
    let mut live_names = BTreeMap::new();
    for ng in &spec.node_groups {
        let ng_addr = format!("{address}.node_group.{}", ng.name);
        let live = match live_group(ng, actual) {
            Ok(l) => l,
            Err(message) => {
                errors.push(PlanError {
                    address: ng_addr,
                    loc: ng.origin.clone(),
                    message,
                    hint: Some(
                        "run `kup apply` to resume the replacement that was interrupted, or `kup apply -rollback` to undo it".into(),
                    ),
                });
                continue;
            }
        };
        let Some(actual_ng) = live else {
            errors.push(PlanError {
                address: ng_addr,
                loc: ng.origin.clone(),
                message: format!(
                    "node group `{}` does not exist in cluster `{}`",
                    ng.name, actual.name
                ),
                hint: Some(format!(
                    "kup upgrades existing node groups; the cluster has: {}",
                    names_or_none(actual.node_groups.iter().map(|n| n.name.as_str()))
                )),
            });
            continue;
        };
        if actual_ng.control_plane {
            // Server nodes carry the control plane: the control-plane steps upgrade them.
            if !ng.follows_cluster && ng.version.minor() != target_minor {
                errors.push(PlanError {
                    address: ng_addr,
                    loc: ng.version_origin.clone(),
                    message: format!(
                        "node group {} runs the control plane, so it goes where the cluster goes ({target_minor}), not to {}",
                        ng.name, ng.version
                    ),
                    hint: Some("remove version from this node group; it follows the cluster's".into()),
                });
                continue;
            }
            live_names.insert(ng.name.clone(), actual_ng.name.clone());
            continue;
        }
        if let (Some(soak), Some(max)) = (ng.node_soak, policy.provider.max_node_soak) {
            if policy.provider.node_soak && soak > max {
                errors.push(PlanError {
                    address: ng_addr,
                    loc: ng.origin.clone(),
                    message: format!(
                        "node_soak = \"{}\" is longer than provider `{}` allows ({})",
                        humantime::format_duration(soak),
                        spec.provider,
                        humantime::format_duration(max)
                    ),
                    hint: Some(format!(
                        "set node_soak to {} or less",
                        humantime::format_duration(max)
                    )),
                });
                continue;
            }
        }
        if ng.node_soak.is_some() && !policy.provider.node_soak {
            errors.push(PlanError {
                address: ng_addr,
                loc: ng.origin.clone(),
                message: format!(
                    "provider `{}` has no per-node soak, so `node_soak` cannot be honoured",
                    spec.provider
                ),
                hint: Some("remove node_soak (AKS has one: nodeSoakDurationInMinutes)".into()),
            });
            continue;
        }
        if let Strategy::Rolling {
            max_unavailable,
            max_surge,
        } = &ng.strategy
        {
            let p = &policy.provider;
            let too_small = match max_unavailable {
                crate::model::Unavailable::Count(n) => *n < p.min_max_unavailable,
                crate::model::Unavailable::Percent(n) => *n == 0 && p.min_max_unavailable > 0,
            };
            if too_small || (max_surge.is_some() && !p.supports_max_surge) {
                errors.push(PlanError {
                    address: ng_addr,
                    loc: ng.origin.clone(),
                    message: if too_small {
                        format!(
                            "provider `{}` needs max_unavailable of at least {} for a rolling node group",
                            spec.provider, p.min_max_unavailable
                        )
                    } else {
                        format!("provider `{}` has no max_surge for node groups; it adds replacement nodes by itself", spec.provider)
                    },
                    hint: Some(if too_small {
                        format!("set max_unavailable = {} or more (or a percentage)", p.min_max_unavailable)
                    } else {
                        "remove max_surge, or use strategy = \"blue_green\" to bring up a whole new group first".into()
                    }),
                });
                continue;
            }
        }
        // The oldest kubelet really running counts, not only what the provider says.
        let have = oldest_kubelet(actual, &actual_ng.name).map_or(actual_ng.version.minor(), |k| {
            k.min(actual_ng.version.minor())
        });
        let want = ng.version.minor();
        if want < have {
            errors.push(PlanError {
                address: ng_addr,
                loc: ng.version_origin.clone(),
                message: format!(
                    "node group runs {have} but the configuration says {want}: Kubernetes does not support downgrades"
                ),
                hint: Some(format!(
                    "set version to \"{have}\" or newer; to go back, create a new node group at {want}"
                )),
            });
            continue;
        }
        if want > target_minor {
            errors.push(PlanError {
                address: ng_addr,
                loc: ng.version_origin.clone(),
                message: format!(
                    "node group target {want} is newer than the control plane target {target_minor}; kubelet must not be newer than kube-apiserver"
                ),
                hint: Some(format!("set the node group version to \"{target_minor}\" or older")),
            });
            continue;
        }
        if let Err(v) = policy.kubelet_ok(target_minor, want) {
            errors.push(PlanError {
                address: ng_addr,
                loc: ng.version_origin.clone(),
                message: format!("the end state would break the version-skew policy: {v}"),
                hint: Some(format!(
                    "set the node group version to at least \"{}\"",
                    target_minor.minus(policy.max_kubelet_lag(want))
                )),
            });
            continue;
        }
        let native = ng
            .strategy
            .native_blue_green(policy.provider.native_blue_green);
        if let Strategy::BlueGreen {
            native: Some(true), ..
        } = &ng.strategy
        {
            if !policy.provider.native_blue_green {
                errors.push(PlanError {
                    address: ng_addr,
                    loc: ng.origin.clone(),
                    message: format!(
                        "provider `{}` has no blue/green upgrade of its own, so `native = true` cannot be honoured",
                        spec.provider
                    ),
                    hint: Some("remove `native = true`: kup then creates the new group, moves the pods and deletes the old group itself".into()),
                });
                continue;
            }
        }
        if let Strategy::BlueGreen {
            complete_when_healthy_for: Some(_),
            ..
        } = &ng.strategy
        {
            if native.is_some() && want > have && actual.kube.is_none() {
                errors.push(PlanError {
                    address: ng_addr,
                    loc: ng.origin.clone(),
                    message: "complete_when_healthy_for watches the nodes and workloads, so kup needs the cluster's Kubernetes API, which it could not read".into(),
                    hint: Some("set kubeconfig/context on the cluster, or remove complete_when_healthy_for to let the provider soak for the full `soak`".into()),
                });
                continue;
            }
        }
        if matches!(ng.strategy, Strategy::BlueGreen { .. })
            && native.is_none()
            && want > have
            && !policy.provider.supports_blue_green
        {
            errors.push(PlanError {
                address: ng_addr,
                loc: ng.origin.clone(),
                message: format!(
                    "strategy \"blue_green\" is not supported by provider `{}` in this version of kup",
                    spec.provider
                ),
                hint: Some("use strategy = \"rolling\" (the provider's own surge upgrade)".into()),
            });
            continue;
        }
        if matches!(ng.strategy, Strategy::BlueGreen { .. })
            && native.is_none()
            && want > have
            && actual.kube.is_none()
        {
            errors.push(PlanError {
                address: ng_addr,
                loc: ng.origin.clone(),
                message: "strategy \"blue_green\" moves pods itself, so kup needs the cluster's Kubernetes API, which it could not read".into(),
                hint: Some("set kubeconfig/context on the cluster, or check that the provider's credentials allow access to the cluster".into()),
            });
            continue;
        }
        groups.insert(ng.name.clone(), have);
        live_names.insert(ng.name.clone(), actual_ng.name.clone());
    }
    if !errors.is_empty() {
        errors.extend(blocking_errors(spec, &findings));
        return Err(errors);
    }

    let mut walk = Walk {
        spec,
        actual,
        policy,
        cp: current,
        groups,
        live_names,
        addons: actual
            .addons
            .iter()
            .map(|a| (a.name.clone(), a.version.clone()))
            .collect(),
        steps: Vec::new(),
        timeline: Vec::new(),
        frontier: Vec::new(),
        errors: Vec::new(),
        round_version: None,
        exact: BTreeMap::new(),
    };
    walk.record(None);
    walk.config_updates();

    if policy.provider.rounds {
        walk.rounds(&target);
    }
    while !policy.provider.rounds && walk.cp < target_minor {
        let next = walk.cp.next();
        walk.roll_forced_groups(next);
        walk.check_unmanaged(next);
        if !walk.errors.is_empty() {
            break;
        }
        let to = if next == target_minor {
            target.clone()
        } else {
            newest_offered(actual, next).unwrap_or_else(|| Version::new(1, next.minor, None))
        };
        walk.hop(to);
        walk.addons_after_hop(next == target_minor);
    }
    // A patch-level control-plane upgrade on providers that let you pick patches.
    if walk.errors.is_empty()
        && !policy.provider.rounds
        && current == target_minor
        && !policy.provider.control_plane_minor_only
        && !target.is_minor_alias()
        && !target.satisfied_by(&actual.version)
        && actual.version.patch.is_some_and(|p| Some(p) < target.patch)
    {
        walk.hop(target.clone());
    }
    if walk.errors.is_empty() && !policy.provider.rounds {
        walk.final_rollouts();
        if current == target_minor {
            walk.addons_after_hop(true);
        }
    }
    let moves = walk.steps.iter().any(|s| {
        matches!(
            s.action,
            Action::UpgradeControlPlane { .. }
                | Action::UpgradeNodeGroup { .. }
                | Action::CreateNodeGroup { .. }
                | Action::UpdateAddon { .. }
        )
    });
    if walk.errors.is_empty() && spec.postflight.enabled && moves {
        if let Some(step) = postflight_step(spec, actual, &walk) {
            walk.steps.push(step);
        }
    }
    if walk.errors.is_empty() {
        insert_hooks(spec, &mut walk.steps);
    }
    // Hosts kup reaches itself are all checked before the first change, so an unreachable
    // worker stops the plan before the control plane moves.
    if walk.errors.is_empty() && policy.provider.host_prechecks && !walk.steps.is_empty() {
        let id = format!("{}/hosts/precheck", spec.label);
        for s in walk.steps.iter_mut().filter(|s| s.depends_on.is_empty()) {
            s.depends_on.push(id.clone());
        }
        walk.steps.insert(
            0,
            Step {
                id,
                cluster: address.clone(),
                address: format!("{address}.hosts"),
                action: Action::PrecheckHosts,
                depends_on: Vec::new(),
                precondition: Vec::new(),
                postcondition: vec![Condition::JournalOnly],
                estimated_secs: 30,
                reason: "every host is checked before anything changes (planned as a gate)".into(),
            },
        );
    }
    // The controller would go on acting on nodes (new ones joining, a Plan someone edits)
    // behind kup's back: its Plans go once the last round is done.
    if walk.errors.is_empty()
        && policy.provider.upgrade_plans
        && !spec.keep_plans
        && (!walk.steps.is_empty() || !actual.upgrade_plans.is_empty())
    {
        let depends_on = walk.steps.iter().map(|s| s.id.clone()).collect();
        walk.push(Step {
            id: format!("{}/upgrade_plans/remove", spec.label),
            cluster: address.clone(),
            address: format!("{address}.upgrade_plans"),
            action: Action::RemoveUpgradePlans,
            depends_on,
            precondition: Vec::new(),
            postcondition: vec![Condition::NoUpgradePlans],
            estimated_secs: 5,
            reason: "kup's Plans are removed after the last round so the controller stops acting on the nodes (keep_plans = true leaves them)".into(),
        });
    }
    // An unhealthy cluster the plan does not move (config changes only, or nothing) is
    // worth a warning, not a refused plan.
    if !moves {
        for f in findings
            .iter_mut()
            .filter(|f| f.check == crate::preflight::Check::Health)
        {
            f.blocking = false;
        }
    }
    walk.errors.extend(blocking_errors(spec, &findings));
    if !walk.errors.is_empty() {
        return Err(walk.errors);
    }

    let mut warnings: Vec<String> = findings
        .iter()
        .filter(|f| !f.blocking && f.severity != crate::preflight::Severity::Info)
        .map(|f| f.line())
        .collect();
    let initially_live: Vec<String> = spec
        .node_groups
        .iter()
        .filter_map(|ng| {
            live_group(ng, actual)
                .ok()
                .flatten()
                .map(|n| n.name.clone())
        })
        .collect();
    // Groups that carry the control plane move with it (kubeadm's control-plane hosts,
    // K3s servers without a node group of their own).
    let unmanaged: Vec<String> = actual
        .node_groups
        .iter()
        .filter(|n| !n.control_plane && !initially_live.contains(&n.name))
        .map(|n| n.name.clone())
        .collect();
    for op in &actual.in_flight {
        warnings.push(format!(
            "an operation is already in progress on {}: {} {} (id {}); apply waits for it where it matches a step",
            op.resource,
            op.kind,
            op.target.as_deref().unwrap_or(""),
            op.id
        ));
    }
    if let Some(auto) = &actual.auto_upgrade {
        warnings.push(format!(
            "{auto}; it may move ahead of this plan on its own. To leave upgrades to kup, turn that off (GKE: leave the release channel or add a maintenance exclusion; AKS: set the channel to none)"
        ));
    }
    for ng in &spec.node_groups {
        if let Some(w) = &ng.window {
            let carries_cp = actual.node_group(&ng.name).is_some_and(|a| a.control_plane);
            if walk.steps.iter().any(|s| {
                s.address.ends_with(&format!(".node_group.{}", ng.name))
                    || (carries_cp && matches!(s.action, Action::UpgradeControlPlane { .. }))
            }) {
                warnings.push(format!(
                    "node group {} is upgraded only inside its window ({} {}–{} {}); apply waits for it{}",
                    ng.name,
                    w.days.join(", "),
                    w.start,
                    w.end,
                    w.time_zone.as_deref().unwrap_or("UTC"),
                    if ng.timeout.is_some() {
                        " up to the group's timeout"
                    } else {
                        " without a time limit"
                    }
                ));
            }
        }
        if ng.drain.disable_eviction {
            warnings.push(format!(
                "node group {}: disable_eviction = true deletes pods instead of evicting them, so PodDisruptionBudgets are not honoured during its drains",
                ng.name
            ));
        }
    }
    if policy.provider.control_plane_minor_only && spec.version.patch.is_some() {
        warnings.push(format!(
            "the provider upgrades control planes by minor; it will run its current patch of {} ({})",
            target.minor(),
            target
        ));
    }

    let changes = changes(spec, actual, &walk);
    let (nodes, blocked_drains, capacity, pinned_pods) =
        predictions(spec, actual, policy, &walk.steps);
    for b in &blocked_drains {
        warnings.push(format!(
            "PodDisruptionBudget {} {}: draining node group {} will block ({})",
            b.pdb,
            b.reason,
            b.node_group,
            b.pods.join(", ")
        ));
    }
    for c in &capacity {
        warnings.push(format!(
            "draining {} ({}) needs {}m CPU and {} MiB of requests moved, but only {}m CPU and {} MiB are free elsewhere: short by {}m CPU / {} MiB; set max_surge, or a smaller max_unavailable",
            c.node_group,
            c.nodes.join(", "),
            c.needed.cpu_millis,
            c.needed.memory_bytes >> 20,
            c.free.cpu_millis,
            c.free.memory_bytes >> 20,
            c.short.cpu_millis,
            c.short.memory_bytes >> 20
        ));
    }
    let steps = walk.steps;
    let cluster_plan = ClusterPlan {
        address,
        name: actual.name.clone(),
        provider: spec.provider.clone(),
        from: actual.version.clone(),
        to: if current == target_minor && policy.provider.control_plane_minor_only {
            actual.version.clone()
        } else {
            target
        },
        changes,
        timeline: walk.timeline,
        unmanaged_node_groups: unmanaged,
        warnings,
        findings,
        nodes,
        blocked_drains,
        capacity,
        pinned_pods,
    };
    Ok((cluster_plan, steps))
}

/// The built-in post-flight check after the cluster's last step, with what was healthy
/// when the plan was made as its baseline. Needs the Kubernetes API (`None` without it).
fn postflight_step(spec: &ClusterSpec, actual: &ActualCluster, walk: &Walk<'_>) -> Option<Step> {
    let kube = actual.kube.as_ref()?;
    let mut node_groups: BTreeMap<String, Minor> = walk
        .groups
        .iter()
        .filter_map(|(name, m)| walk.live_names.get(name).map(|live| (live.clone(), *m)))
        .collect();
    for g in actual.node_groups.iter().filter(|g| g.control_plane) {
        node_groups.entry(g.name.clone()).or_insert(walk.cp);
    }
    let available_before: Vec<String> = actual
        .scan
        .as_ref()
        .map(|s| {
            s.workloads
                .iter()
                .filter(|w| w.replicas > 0 && w.is_available())
                .map(|w| w.address())
                .collect()
        })
        .unwrap_or_default();
    let mut pending_before: Vec<String> = kube
        .pods
        .iter()
        .filter(|p| p.phase == "Pending")
        .map(crate::preflight::pod_identity)
        .collect();
    pending_before.sort();
    pending_before.dedup();
    let depends_on = walk.steps.iter().map(|s| s.id.clone()).collect();
    let pf = &spec.postflight;
    Some(Step {
        id: format!("{}/postflight", spec.label),
        cluster: spec.address(),
        address: format!("{}.postflight", spec.address()),
        action: Action::PostFlight {
            node_groups,
            available_before,
            pending_before,
            smoke_pod: pf.smoke_pod.then(|| crate::plan::SmokePod {
                namespace: pf.namespace.clone(),
                image: pf.smoke_image.clone(),
            }),
            timeout_secs: pf.timeout.as_secs(),
        },
        depends_on,
        precondition: Vec::new(),
        postcondition: vec![Condition::JournalOnly],
        estimated_secs: if pf.smoke_pod { 60 } else { 15 },
        reason: "the upgrade is proven from the cluster itself before the plan counts it done (postflight { enabled = false } skips it)".into(),
    })
}

/// Blocking findings as plan errors, one per check and hop, naming every object.
fn blocking_errors(spec: &ClusterSpec, findings: &[crate::preflight::Finding]) -> Vec<PlanError> {
    use crate::preflight::Check;
    let mut groups: BTreeMap<(Check, Option<Minor>), Vec<&crate::preflight::Finding>> =
        BTreeMap::new();
    for f in findings.iter().filter(|f| f.blocking) {
        groups.entry((f.check, f.minor)).or_default().push(f);
    }
    let setting = |c: Check| match c {
        Check::RemovedApi => "removed_apis",
        Check::Health => "health",
        Check::Addon => "addons",
        _ => "insights",
    };
    groups
        .into_iter()
        .map(|((check, minor), fs)| {
            let list = fs
                .iter()
                .map(|f| match &f.remedy {
                    Some(r) if check == Check::RemovedApi => format!("{}: {r}", f.line()),
                    _ => f.line(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let message = match (check, minor) {
                (Check::RemovedApi, Some(m)) => format!(
                    "{} object(s) use APIs removed in {m}, so the control plane cannot move to {m}: {list}",
                    fs.len()
                ),
                (Check::Health, _) => format!("the cluster is not healthy enough to upgrade: {list}"),
                (_, Some(m)) => format!("the upgrade to {m} is not safe: {list}"),
                (_, None) => list,
            };
            let mut remedies: Vec<String> = Vec::new();
            for r in fs
                .iter()
                .filter(|_| check != Check::RemovedApi)
                .filter_map(|f| f.remedy.clone())
            {
                if !remedies.contains(&r) {
                    remedies.push(r);
                }
            }
            let mut hint = if check == Check::RemovedApi {
                "migrate the objects to the replacement apiVersion (re-apply the manifests, upgrade the Helm releases)".to_string()
            } else {
                remedies.join("; ")
            };
            hint.push_str(&format!(
                "{}or set preflight {{ {} = \"warn\" }} to plan anyway",
                if hint.is_empty() { "" } else { "; " },
                setting(check)
            ));
            PlanError {
                address: spec.address(),
                loc: spec.origin.clone(),
                message,
                hint: Some(hint),
            }
        })
        .collect()
}

impl Walk<'_> {
    fn address(&self) -> String {
        self.spec.address()
    }

    fn label(&self) -> &str {
        &self.spec.label
    }

    fn record(&mut self, after: Option<String>) {
        self.timeline.push(TimelinePoint {
            after_step: after,
            control_plane: self.cp,
            node_groups: self.groups.clone(),
        });
    }

    fn push(&mut self, step: Step) -> String {
        let id = step.id.clone();
        self.steps.push(step);
        id
    }

    /// Rolling strategy settings that differ from the provider's go first, so every
    /// rollout runs with the bounds the user asked for.
    fn config_updates(&mut self) {
        let mut ids = Vec::new();
        let has_native = self.policy.provider.native_blue_green;
        for ng in &self.spec.node_groups {
            let Some(actual_ng) = self.actual.node_group(&ng.name) else {
                continue;
            };
            let native = ng.strategy.native_blue_green(has_native);
            let kup_driven = matches!(ng.strategy, Strategy::BlueGreen { .. }) && native.is_none();
            // kup creates and deletes groups itself: the provider's settings do not matter.
            if kup_driven {
                continue;
            }
            // The provider drains by itself: the `drain` block's limits go to it (only the
            // timeout where the provider has no grace-period cap).
            let unit = self.policy.provider.duration_unit_secs;
            let drain = DrainLimits::from_drain(&ng.drain)
                .filter(|_| self.policy.provider.drain_limits)
                .map(|mut l| {
                    if !self.policy.provider.drain_grace_limit {
                        l.grace_termination = None;
                    }
                    l.pdb_timeout = l.pdb_timeout.map(|d| round_up(d, unit));
                    l.grace_termination = l.grace_termination.map(|d| round_up(d, unit));
                    l
                })
                .filter(|l| l.pdb_timeout.is_some() || l.grace_termination.is_some())
                .filter(|want| actual_ng.drain_limits.as_ref() != Some(want));
            let node_soak = ng
                .node_soak
                .filter(|_| self.policy.provider.node_soak)
                .map(|d| round_up(d, unit))
                .filter(|want| actual_ng.node_soak != Some(*want));
            // A rolling max_surge goes to providers that take one.
            let surge = match &ng.strategy {
                Strategy::Rolling {
                    max_surge: Some(want),
                    ..
                } if self.policy.provider.supports_max_surge && native.is_none() => actual_ng
                    .max_surge
                    .filter(|have| have != want)
                    .map(|have| (have, *want)),
                _ => None,
            };
            let mut reasons = Vec::new();
            let mut postcondition = Vec::new();
            let want = ng.strategy.max_unavailable();
            let have = actual_ng.max_unavailable;
            match &native {
                // The provider's blue/green upgrade, with the configured batches and soaks.
                Some(bg) => {
                    if actual_ng.blue_green.as_ref() != Some(bg) {
                        reasons.push(match &actual_ng.blue_green {
                            Some(have) => {
                                format!("the provider has {have}; the configuration says {bg}")
                            }
                            None => format!(
                                "the provider upgrades {} by surge; the configuration says blue_green",
                                ng.name
                            ),
                        });
                        postcondition.push(Condition::NodeGroupUpgradeStrategy {
                            node_group: ng.name.clone(),
                            blue_green: Some(bg.clone()),
                        });
                    }
                }
                None => {
                    if has_native && actual_ng.blue_green.is_some() {
                        reasons.push(format!(
                            "the provider upgrades {} blue/green; the configuration says rolling",
                            ng.name
                        ));
                        postcondition.push(Condition::NodeGroupUpgradeStrategy {
                            node_group: ng.name.clone(),
                            blue_green: None,
                        });
                    }
                    if let Some(have) = have.filter(|h| *h != want) {
                        reasons.push(format!(
                            "max_unavailable is {have} at the provider and {want} in the configuration"
                        ));
                    }
                    if !reasons.is_empty() {
                        postcondition.push(Condition::NodeGroupMaxUnavailable {
                            node_group: ng.name.clone(),
                            max_unavailable: want,
                        });
                    }
                }
            }
            if let Some(want) = node_soak {
                reasons.push(format!(
                    "the provider waits {} after draining each node; the configuration says {}",
                    actual_ng
                        .node_soak
                        .map(|d| humantime::format_duration(d).to_string())
                        .unwrap_or_else(|| "nothing".into()),
                    humantime::format_duration(want)
                ));
                postcondition.push(Condition::NodeGroupNodeSoak {
                    node_group: ng.name.clone(),
                    secs: want.as_secs(),
                });
            }
            if let Some((have, want)) = surge {
                reasons.push(format!(
                    "max_surge is {have} at the provider and {want} in the configuration"
                ));
                postcondition.push(Condition::NodeGroupMaxSurge {
                    node_group: ng.name.clone(),
                    max_surge: want,
                });
            }
            if let Some(limits) = &drain {
                reasons.push(format!(
                    "the provider drains {} with {}; the configuration says {limits}",
                    ng.name,
                    actual_ng
                        .drain_limits
                        .as_ref()
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "its default limits".into())
                ));
                postcondition.push(Condition::NodeGroupDrainLimits {
                    node_group: ng.name.clone(),
                    limits: limits.clone(),
                });
            }
            if reasons.is_empty() {
                continue;
            }
            ids.push(self.push(Step {
                id: format!("{}/node_group/{}/config", self.label(), ng.name),
                cluster: self.address(),
                address: format!("{}.node_group.{}", self.address(), ng.name),
                action: Action::UpdateNodeGroupConfig {
                    node_group: ng.name.clone(),
                    from: have,
                    max_unavailable: want,
                    max_surge: surge.map(|(_, w)| w),
                    node_soak,
                    blue_green: native,
                    drain_limits: drain,
                },
                depends_on: vec![],
                precondition: vec![],
                postcondition,
                estimated_secs: self.policy.provider.config_update_estimate.as_secs(),
                reason: reasons.join("; "),
            }));
        }
        self.frontier = ids;
    }

    /// Before the control plane reaches `next`, roll every node group whose kubelets
    /// would fall out of the skew window, as far as the control plane allows now.
    fn roll_forced_groups(&mut self, next: Minor) {
        let mut rollouts = Vec::new();
        for ng in &self.spec.node_groups {
            let Some(&have) = self.groups.get(&ng.name) else {
                continue;
            };
            let target = ng.version.minor();
            let needs_match = self
                .policy
                .provider
                .nodes_must_match_before_control_plane_upgrade
                && have != self.cp;
            let violation = self.policy.kubelet_ok(next, have).err();
            if violation.is_none() && !needs_match {
                continue;
            }
            let to = target.min(self.cp);
            if to <= have || self.policy.kubelet_ok(next, to).is_err() {
                self.errors.push(PlanError {
                    address: format!("{}.node_group.{}", self.address(), ng.name),
                    loc: ng.version_origin.clone(),
                    message: format!(
                        "node group {} must be at {} or newer before the control plane can reach {next}, but its target is {target}",
                        ng.name,
                        next.minus(self.policy.max_kubelet_lag(have).min(3)),
                    ),
                    hint: Some(format!("raise the node group version to \"{}\" or newer", self.cp)),
                });
                continue;
            }
            let reason = match violation {
                Some(v) => format!(
                    "before the control plane moves to {next}: {v}; rolled to {to}, as far as the control plane allows now"
                ),
                None => format!(
                    "the provider requires node groups to match the control plane ({}) before it is upgraded",
                    self.cp
                ),
            };
            rollouts.push((ng.name.clone(), have, to, reason));
        }
        self.roll(rollouts);
    }

    /// Unmanaged node groups cannot be moved by kup, so they must already be legal.
    fn check_unmanaged(&mut self, next: Minor) {
        // Nodes that belong to no node group the provider knows (self-managed nodes) are
        // just as unmovable.
        if let Some(k) = &self.actual.kube {
            let known: Vec<&str> = self
                .actual
                .node_groups
                .iter()
                .map(|n| n.name.as_str())
                .collect();
            let stray: Vec<String> = k
                .nodes
                .iter()
                .filter(|n| !n.node_group.as_deref().is_some_and(|g| known.contains(&g)))
                .filter(|n| {
                    self.policy
                        .kubelet_ok(next, n.kubelet_version.minor())
                        .is_err()
                })
                .map(|n| format!("{} ({})", n.name, n.kubelet_version))
                .collect();
            if !stray.is_empty() {
                self.errors.push(PlanError {
                    address: self.address(),
                    loc: self.spec.origin.clone(),
                    message: format!(
                        "nodes outside every node group would break the skew policy when the control plane reaches {next}: {}",
                        stray.join(", ")
                    ),
                    hint: Some("upgrade or remove those nodes first; kup cannot roll nodes it does not manage".into()),
                });
            }
        }
        for ng in &self.actual.node_groups {
            if ng.control_plane || self.live_names.values().any(|l| l == &ng.name) {
                continue;
            }
            let have = ng.version.minor();
            let problem = if self
                .policy
                .provider
                .nodes_must_match_before_control_plane_upgrade
                && have != self.cp
            {
                Some(format!(
                    "the provider requires it to match the control plane ({}) first",
                    self.cp
                ))
            } else {
                self.policy
                    .kubelet_ok(next, have)
                    .err()
                    .map(|v| v.to_string())
            };
            if let Some(problem) = problem {
                self.errors.push(PlanError {
                    address: format!("{}.node_group.{}", self.address(), ng.name),
                    loc: self.spec.origin.clone(),
                    message: format!(
                        "node group {} runs {have} and is not in the configuration, so kup cannot move it; the control plane cannot reach {next}: {problem}",
                        ng.name
                    ),
                    hint: Some(format!(
                        "add node_group \"{}\" to cluster \"{}\" so kup can roll it",
                        ng.name, self.spec.label
                    )),
                });
            }
        }
    }

    fn roll(&mut self, rollouts: Vec<(String, Minor, Minor, String)>) {
        if rollouts.is_empty() {
            return;
        }
        let width = self.spec.parallel_node_groups.max(1) as usize;
        let base = std::mem::take(&mut self.frontier);
        // The last step of each rollout: what the next rollouts and the next hop wait for.
        let mut ids: Vec<String> = Vec::new();
        for (i, (name, from, to, reason)) in rollouts.into_iter().enumerate() {
            let mut depends_on = base.clone();
            if i >= width {
                depends_on.push(ids[i - width].clone());
            }
            let strategy = &self.spec.node_group(&name).expect("managed").strategy;
            let native = strategy.native_blue_green(self.policy.provider.native_blue_green);
            let last = match strategy {
                Strategy::BlueGreen { .. } if native.is_none() => {
                    self.blue_green(&name, from, to, depends_on, &reason)
                }
                _ => self.rolling(&name, from, to, depends_on, reason),
            };
            self.groups.insert(name, to);
            self.record(Some(last.clone()));
            ids.push(last);
        }
        self.frontier = ids;
    }

    fn rolling(
        &mut self,
        name: &str,
        from: Minor,
        to: Minor,
        depends_on: Vec<String>,
        reason: String,
    ) -> String {
        let ng = self.spec.node_group(name).expect("managed node group");
        let live = self.live_names[name].clone();
        let actual_ng = self.actual.node_group(&live).expect("checked above");
        let max_unavailable = ng.strategy.max_unavailable();
        let per_batch = max_unavailable.nodes_of(actual_ng.desired_size).max(1);
        let batches = actual_ng.desired_size.max(1).div_ceil(per_batch) as u64;
        let native = ng
            .strategy
            .native_blue_green(self.policy.provider.native_blue_green)
            .map(|blue_green| NativeUpgrade {
                blue_green,
                complete_when_healthy_secs: match &ng.strategy {
                    Strategy::BlueGreen {
                        complete_when_healthy_for,
                        ..
                    } => complete_when_healthy_for.map(|d| d.as_secs()),
                    Strategy::Rolling { .. } => None,
                },
            });
        let batch_estimate = self.policy.provider.node_batch_estimate.as_secs();
        let estimated_secs = match &native {
            // Green nodes come up at once; blue ones drain in batches, then the pool soaks.
            Some(n) => {
                batch_estimate
                    + batches * (batch_estimate + n.blue_green.batch_soak.as_secs())
                    + n.complete_when_healthy_secs
                        .unwrap_or(n.blue_green.soak.as_secs())
                        .min(n.blue_green.soak.as_secs())
            }
            None => batches * batch_estimate,
        };
        let (from_v, to_v, id, postcondition) = match &self.round_version {
            Some(v) => (
                self.exact
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| Version::new(from.major, from.minor, None)),
                v.clone(),
                format!("{}/node_group/{name}/{v}", self.label()),
                Condition::NodeGroupAtLeastVersion {
                    node_group: live.clone(),
                    version: v.clone(),
                },
            ),
            None => (
                Version::new(from.major, from.minor, None),
                Version::new(to.major, to.minor, None),
                format!("{}/node_group/{name}/{to}", self.label()),
                Condition::NodeGroupAtLeast {
                    node_group: live.clone(),
                    minor: to,
                },
            ),
        };
        if let Some(v) = &self.round_version {
            self.exact.insert(name.to_string(), v.clone());
        }
        self.push(Step {
            id: id.clone(),
            cluster: self.address(),
            address: format!("{}.node_group.{name}", self.address()),
            action: Action::UpgradeNodeGroup {
                node_group: live.clone(),
                from: from_v,
                to: to_v,
                max_unavailable,
                native,
            },
            depends_on,
            precondition: vec![
                Condition::NodeGroupAt {
                    node_group: live.clone(),
                    minor: from,
                },
                Condition::ControlPlaneAtLeast { minor: to },
            ],
            postcondition: vec![postcondition],
            estimated_secs,
            reason,
        })
    }

    /// Providers that upgrade in rounds (K3s/RKE2, kubeadm): for every minor from the
    /// current one to the target, the control-plane nodes move to the round's exact
    /// release, then every managed node group follows to the same release (up to its own
    /// target minor), before the next round starts.
    fn rounds(&mut self, target: &Version) {
        let current = self.actual.version.clone();
        let target_minor = target.minor();
        for ng in &self.spec.node_groups {
            if let Some(live) = self.live_names.get(&ng.name) {
                if let Some(a) = self.actual.node_group(live) {
                    self.exact.insert(ng.name.clone(), a.version.clone());
                }
            }
        }
        let mut m = current.minor();
        loop {
            let v = if m == target_minor {
                target.clone()
            } else if m == current.minor() {
                current.clone()
            } else {
                newest_offered(self.actual, m).unwrap_or_else(|| Version::new(1, m.minor, None))
            };
            if m > current.minor() || (m == current.minor() && current < v) {
                self.hop(v.clone());
                if !self.errors.is_empty() {
                    return;
                }
            }
            let mut rollouts = Vec::new();
            for ng in &self.spec.node_groups {
                let Some(&have) = self.groups.get(&ng.name) else {
                    continue;
                };
                if ng.version.minor() < m {
                    continue;
                }
                let behind = self
                    .exact
                    .get(&ng.name)
                    .is_none_or(|e| e.minor() < m || (e.minor() == m && *e < v));
                if behind {
                    let reason = if m == target_minor {
                        format!("node groups follow the control plane to {v} in the same round")
                    } else {
                        format!(
                            "round {m}: every node moves to {v} before the control plane goes on"
                        )
                    };
                    rollouts.push((ng.name.clone(), have, m, reason));
                }
            }
            self.round_version = Some(v);
            self.roll(rollouts);
            self.round_version = None;
            if m >= target_minor {
                break;
            }
            m = m.next();
        }
    }

    fn hop(&mut self, to: Version) {
        let from = self.cp;
        let from_v = if from == self.actual.version.minor() {
            self.actual.version.clone()
        } else {
            newest_offered(self.actual, from).unwrap_or_else(|| Version::new(1, from.minor, None))
        };
        let id = format!("{}/control_plane/{}", self.label(), to.minor());
        let target_minor = self.spec.version.minor();
        let total = target_minor.distance_from(self.actual.version.minor());
        let reason = if total > 1 {
            format!(
                "the control plane moves one minor at a time ({} → {target_minor} takes {total} hops)",
                self.actual.version.minor()
            )
        } else if to.minor() == from {
            format!("patch upgrade to {to}")
        } else {
            format!("target version is {}", self.spec.version)
        };
        let step = Step {
            id: id.clone(),
            cluster: self.address(),
            address: format!("{}.control_plane", self.address()),
            action: Action::UpgradeControlPlane {
                from: from_v,
                to: to.clone(),
            },
            depends_on: std::mem::take(&mut self.frontier),
            precondition: vec![Condition::ControlPlaneAt { minor: from }],
            postcondition: if to.patch.is_some() && !self.policy.provider.control_plane_minor_only {
                vec![Condition::ControlPlaneAtLeastVersion {
                    version: to.clone(),
                }]
            } else {
                vec![Condition::ControlPlaneAtLeast { minor: to.minor() }]
            },
            estimated_secs: self
                .policy
                .provider
                .control_plane_upgrade_estimate
                .as_secs(),
            reason,
        };
        self.push(step);
        self.cp = to.minor();
        self.frontier = vec![id.clone()];
        self.record(Some(id));
    }

    /// After the control plane reaches a new minor, add-ons that are not compatible with
    /// it move to the provider's default for it; at the final minor, add-ons go where the
    /// configuration says.
    fn addons_after_hop(&mut self, is_final: bool) {
        let mut ids = Vec::new();
        let minor = self.cp;
        for addon in &self.spec.addons {
            let Some(actual) = self.actual.addon(&addon.name) else {
                self.errors.push(PlanError {
                    address: format!("{}.addon.{}", self.address(), addon.name),
                    loc: addon.origin.clone(),
                    message: format!("add-on `{}` is not installed in the cluster", addon.name),
                    hint: Some(format!(
                        "kup updates installed add-ons; installed: {}",
                        names_or_none(self.actual.addons.iter().map(|a| a.name.as_str()))
                    )),
                });
                continue;
            };
            let current = self.addons.get(&addon.name).cloned().unwrap_or_default();
            let want = match self.addon_target(addon, actual, minor, &current, is_final) {
                Ok(Some(v)) => v,
                Ok(None) => continue,
                Err(e) => {
                    self.errors.push(e);
                    continue;
                }
            };
            if want == current {
                continue;
            }
            if !self.policy.provider.addons_track_control_plane && !is_final {
                continue;
            }
            let id = format!("{}/addon/{}/{minor}", self.label(), addon.name);
            let reason = if is_final {
                format!("configuration asks for {:?} at {minor}", addon.version)
                    .replace("Compatible", "compatible")
                    .replace("Latest", "latest")
            } else {
                format!("{current} is not compatible with {minor}; moved to the provider's default for {minor}")
            };
            ids.push(self.push(Step {
                id,
                cluster: self.address(),
                address: format!("{}.addon.{}", self.address(), addon.name),
                action: Action::UpdateAddon {
                    addon: addon.name.clone(),
                    from: current.clone(),
                    to: want.clone(),
                },
                depends_on: self.frontier.clone(),
                precondition: vec![Condition::ControlPlaneAtLeast { minor }],
                postcondition: vec![Condition::AddonAt {
                    addon: addon.name.clone(),
                    version: want.clone(),
                }],
                estimated_secs: self.policy.provider.addon_update_estimate.as_secs(),
                reason,
            }));
            self.addons.insert(addon.name.clone(), want);
        }
        if !ids.is_empty() {
            // The next hop waits for the hop itself and for every add-on update.
            self.frontier.extend(ids);
        }
    }

    fn addon_target(
        &self,
        spec: &AddonSpec,
        actual: &ActualAddon,
        minor: Minor,
        current: &str,
        is_final: bool,
    ) -> Result<Option<String>, PlanError> {
        let compat = actual.compatibility.get(&minor);
        let compatible_now = compat.is_some_and(|c| c.versions.iter().any(|v| v == current));
        let default_for = |c: &crate::model::AddonCompatibility| {
            c.default.clone().or_else(|| c.versions.first().cloned())
        };
        let addr = format!("{}.addon.{}", self.address(), spec.name);
        match (&spec.version, is_final) {
            (AddonVersionReq::Exact(v), true) => match compat {
                Some(c) if c.versions.iter().any(|x| x == v) => {
                    Ok((v != current).then(|| v.clone()))
                }
                Some(c) => Err(PlanError {
                    address: addr,
                    loc: spec.origin.clone(),
                    message: format!("add-on version {v} is not offered for Kubernetes {minor}"),
                    hint: Some(format!(
                        "versions compatible with {minor}: {}",
                        names_or_none(c.versions.iter().map(|s| s.as_str()))
                    )),
                }),
                None => Ok(Some(v.clone())),
            },
            (AddonVersionReq::Latest, true) => Ok(compat.and_then(|c| c.versions.first().cloned())),
            _ => {
                if compatible_now || compat.is_none() {
                    return Ok(None);
                }
                Ok(compat.and_then(default_for))
            }
        }
    }

    fn final_rollouts(&mut self) {
        let mut rollouts = Vec::new();
        for ng in &self.spec.node_groups {
            let Some(&have) = self.groups.get(&ng.name) else {
                continue;
            };
            let target = ng.version.minor();
            if have < target {
                rollouts.push((
                    ng.name.clone(),
                    have,
                    target,
                    format!("node group target is {}", ng.version),
                ));
            }
        }
        self.roll(rollouts);
    }
}

fn resolve_target(
    spec: &ClusterSpec,
    actual: &ActualCluster,
    policy: &SkewPolicy,
) -> Result<Version, PlanError> {
    let want = &spec.version;
    let have = &actual.version;
    let err = |message: String, hint: Option<String>| PlanError {
        address: spec.address(),
        loc: spec.version_origin.clone().or_else(|| spec.origin.clone()),
        message,
        hint,
    };
    if want.minor() < have.minor()
        || (want.minor() == have.minor()
            && !policy.provider.control_plane_minor_only
            && matches!((want.patch, have.patch), (Some(w), Some(h)) if w < h))
    {
        return Err(err(
            format!(
                "the cluster runs {have} but the configuration says {want}: Kubernetes does not support downgrades"
            ),
            Some(format!(
                "set version to \"{}\" or newer",
                have.minor()
            )),
        ));
    }
    if want.minor() == have.minor() && (want.is_minor_alias() || want.satisfied_by(have)) {
        return Ok(have.clone());
    }
    let offered_in_minor: Vec<&Version> = actual
        .offered_versions
        .iter()
        .filter(|v| v.minor() == want.minor())
        .collect();
    let found = if want.is_minor_alias() {
        offered_in_minor.iter().max().map(|v| (*v).clone())
    } else {
        // `1.30.5` on GKE is offered as several builds (`1.30.5-gke.N`): the newest wins.
        offered_in_minor
            .iter()
            .filter(|v| {
                want.satisfied_by(v)
                    && (v.patch.is_some() || policy.provider.control_plane_minor_only)
            })
            .max()
            .map(|v| (*v).clone())
    };
    found.ok_or_else(|| {
        err(
            format!("the provider does not offer Kubernetes {want}"),
            Some(offered_hint(actual)),
        )
    })
}

/// The provider's group that serves configured node group `ng` now. A rolling group is
/// found by its name; a blue/green group is `NAME` or one of its colours `NAME-1-31`.
/// Two colours at once mean a replacement did not finish.
pub fn live_group<'a>(
    ng: &crate::model::NodeGroupSpec,
    actual: &'a ActualCluster,
) -> Result<Option<&'a crate::model::ActualNodeGroup>, String> {
    if !matches!(ng.strategy, Strategy::BlueGreen { .. }) {
        return Ok(actual.node_group(&ng.name));
    }
    let candidates: Vec<&crate::model::ActualNodeGroup> = actual
        .node_groups
        .iter()
        .filter(|n| n.name == ng.name || is_colour_of(&n.name, &ng.name))
        .collect();
    match candidates.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(format!(
            "node groups {} all serve `{}`: a blue/green replacement did not finish",
            many.iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(" and "),
            ng.name
        )),
    }
}

/// Whether `candidate` is a blue/green colour of configured group `base`: `base-1-31`,
/// or in compact form `basev131` (with `base` cut to [`COMPACT_BASE_LEN`] characters; the
/// `v` keeps a base that ends in a digit, like AKS's `nodepool1`, apart from the version).
pub fn is_colour_of(candidate: &str, base: &str) -> bool {
    let hyphenated = candidate
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|v| v.split_once('-'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    let compact = candidate.rfind('v').is_some_and(|i| {
        let (prefix, digits) = (&candidate[..i], &candidate[i + 1..]);
        digits.len() >= 3
            && digits.bytes().all(|c| c.is_ascii_digit())
            && !prefix.is_empty()
            && (prefix == base || (prefix.len() == COMPACT_BASE_LEN && base.starts_with(prefix)))
    });
    hyphenated || compact
}

/// Compact colour names keep this much of the base name, leaving room for `v`, `MAJOR`
/// and a two-digit minor within AKS's 12 characters.
pub const COMPACT_BASE_LEN: usize = 8;

/// The green group's name: deterministic, so a resumed apply finds the group it created.
pub fn green_name(base: &str, to: Minor, compact: bool) -> String {
    if compact {
        let cut: String = base.chars().take(COMPACT_BASE_LEN).collect();
        format!("{cut}v{}{:02}", to.major, to.minor)
    } else {
        format!("{base}-{}-{}", to.major, to.minor)
    }
}

/// The oldest kubelet among the group's nodes, when the Kubernetes API was read.
fn oldest_kubelet(actual: &ActualCluster, group: &str) -> Option<Minor> {
    actual
        .kube
        .as_ref()?
        .nodes_of_group(group)
        .map(|n| n.kubelet_version.minor())
        .min()
}

type Predictions = (
    BTreeMap<String, crate::plan::GroupNodes>,
    Vec<crate::plan::BlockedDrain>,
    Vec<crate::plan::CapacityShortfall>,
    Vec<crate::plan::PinnedPods>,
);

/// Node counts per group, and what the cluster's pods and PDBs say about the drains the
/// plan will cause. Only groups that exist now have pods to predict from.
fn predictions(
    spec: &ClusterSpec,
    actual: &ActualCluster,
    policy: &SkewPolicy,
    steps: &[Step],
) -> Predictions {
    let Some(k) = &actual.kube else {
        return Default::default();
    };
    let mut nodes = BTreeMap::new();
    for g in &actual.node_groups {
        let members: Vec<_> = k.nodes_of_group(&g.name).collect();
        let mut kubelets: Vec<String> = members
            .iter()
            .map(|n| n.kubelet_version.to_string())
            .collect();
        kubelets.sort();
        kubelets.dedup();
        nodes.insert(
            g.name.clone(),
            crate::plan::GroupNodes {
                nodes: members.len() as u32,
                ready: members.iter().filter(|n| n.ready).count() as u32,
                kubelets,
                pods: members
                    .iter()
                    .map(|n| predict::evictable(k, &n.name).count() as u32)
                    .sum(),
            },
        );
    }
    let mut blocked = Vec::new();
    let mut capacity = Vec::new();
    let mut pinned = Vec::new();
    let mut seen = Vec::new();
    for step in steps {
        // kup-driven blue/green: the new group has another name, so pods that select
        // the old one by name can never move.
        if let Action::CreateNodeGroup {
            node_group: green,
            clone_of,
            ..
        } = &step.action
        {
            let members: Vec<&str> = k
                .nodes_of_group(clone_of)
                .map(|n| n.name.as_str())
                .collect();
            for (selector, pods) in predict::pinned_to_group(k, clone_of, &members) {
                pinned.push(crate::plan::PinnedPods {
                    node_group: clone_of.clone(),
                    new_group: green.clone(),
                    selector,
                    pods,
                });
            }
        }
        let (group, blue_green) = match &step.action {
            Action::UpgradeNodeGroup {
                node_group, native, ..
            } => (node_group, native.is_some()),
            Action::DrainNodeGroup { node_group, .. } => (node_group, true),
            _ => continue,
        };
        if seen.contains(group) || actual.node_group(group).is_none() {
            continue;
        }
        seen.push(group.clone());
        let configured = spec.node_groups.iter().find(|ng| {
            live_group(ng, actual)
                .ok()
                .flatten()
                .is_some_and(|l| &l.name == group)
        });
        // A rollout already running at the provider is waited on, not started: refusing
        // the apply would only stop kup from following it (its drains are under way, and
        // a budget caught mid-eviction says nothing about whether they finish).
        let running = actual
            .in_flight
            .iter()
            .any(|o| o.resource == format!("node_group.{group}"));
        let blocking = !configured.is_some_and(|ng| ng.drain.on_blocked_wait) && !running;
        let members: Vec<&crate::kube::KubeNode> = k.nodes_of_group(group).collect();
        let names: Vec<&str> = members.iter().map(|n| n.name.as_str()).collect();
        blocked.extend(predict::blocked_drains(k, group, &names, blocking));
        if blue_green {
            // The green clone adds what the blue nodes offer, less their DaemonSet pods.
            let green = members
                .iter()
                .fold(crate::kube::Resources::default(), |acc, n| {
                    let ds = k
                        .pods_on(&n.name)
                        .filter(|p| p.is_daemonset())
                        .fold(crate::kube::Resources::default(), |a, p| a + p.requests);
                    acc + n.allocatable.saturating_sub(ds)
                });
            capacity.extend(predict::capacity_shortfall(k, group, &names, green));
        } else if !policy.provider.surges_before_drain {
            // Worst case: the batch whose pods ask for the most.
            let Some(ng) = configured else { continue };
            let batch_size = ng.strategy.max_unavailable().nodes_of(members.len() as u32) as usize;
            let mut by_need: Vec<(&str, u64)> = names
                .iter()
                .map(|n| {
                    (
                        *n,
                        predict::evictable(k, n)
                            .map(|p| p.requests.cpu_millis)
                            .sum::<u64>(),
                    )
                })
                .collect();
            by_need.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let batch: Vec<&str> = by_need
                .iter()
                .take(batch_size.max(1))
                .map(|(n, _)| *n)
                .collect();
            let surge = match &ng.strategy {
                Strategy::Rolling {
                    max_surge: Some(s), ..
                } => {
                    let per_node = members.first().map(|n| n.allocatable).unwrap_or_default();
                    (0..s.nodes_of(members.len() as u32))
                        .fold(crate::kube::Resources::default(), |a, _| a + per_node)
                }
                _ => crate::kube::Resources::default(),
            };
            capacity.extend(predict::capacity_shortfall(k, group, &batch, surge));
        }
    }
    (nodes, blocked, capacity, pinned)
}

fn newest_offered(actual: &ActualCluster, minor: Minor) -> Option<Version> {
    actual
        .offered_versions
        .iter()
        .filter(|v| v.minor() == minor)
        .max()
        .cloned()
}

fn offered_hint(actual: &ActualCluster) -> String {
    let mut v: Vec<&Version> = actual.offered_versions.iter().collect();
    v.sort();
    format!(
        "the provider offers: {}",
        names_or_none(v.iter().map(|x| x.to_string()))
    )
}

fn names_or_none<I, S>(names: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let v: Vec<String> = names.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

fn changes(spec: &ClusterSpec, actual: &ActualCluster, walk: &Walk<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    let addr = spec.address();
    if walk.cp != actual.version.minor()
        || walk
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::UpgradeControlPlane { .. }))
    {
        let to = walk
            .steps
            .iter()
            .rev()
            .find_map(|s| match &s.action {
                Action::UpgradeControlPlane { to, .. } => Some(to.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| walk.cp.to_string());
        out.push(Change {
            address: addr.clone(),
            attribute: "version".into(),
            from: actual.version.to_string(),
            to,
        });
    }
    for ng in &spec.node_groups {
        let Ok(Some(a)) = live_group(ng, actual) else {
            continue;
        };
        let ng_addr = format!("{addr}.node_group.{}", ng.name);
        if let Some(exact) = walk.exact.get(&ng.name) {
            if *exact != a.version {
                out.push(Change {
                    address: ng_addr.clone(),
                    attribute: "version".into(),
                    from: a.version.to_string(),
                    to: exact.to_string(),
                });
            }
        } else if let Some(&now) = walk.groups.get(&ng.name) {
            if now != a.version.minor() {
                out.push(Change {
                    address: ng_addr.clone(),
                    attribute: "version".into(),
                    from: a.version.to_string(),
                    to: now.to_string(),
                });
            }
        }
        if let (Some(have), Strategy::Rolling { .. }) = (a.max_unavailable, &ng.strategy) {
            let want = ng.strategy.max_unavailable();
            if have != want {
                out.push(Change {
                    address: ng_addr,
                    attribute: "max_unavailable".into(),
                    from: have.to_string(),
                    to: want.to_string(),
                });
            }
        }
    }
    for a in &actual.addons {
        if let Some(now) = walk.addons.get(&a.name) {
            if now != &a.version {
                out.push(Change {
                    address: format!("{addr}.addon.{}", a.name),
                    attribute: "version".into(),
                    from: a.version.clone(),
                    to: now.clone(),
                });
            }
        }
    }
    out
}

mod blue_green;
mod predict;
pub mod rollback;
pub mod waves;

#[cfg(test)]
pub(crate) mod tests;
