//! The pre-flight safety checks: what could make an upgrade unsafe, found from what the
//! refresh read (the provider, the Kubernetes API, the manifests). Pure: the planner turns
//! blocking findings into plan errors and the rest into warnings; `kup check` prints them
//! all.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::model::{ActualCluster, CheckMode, ClusterSpec};
use crate::policy::ProviderPolicy;
use crate::version::Minor;

/// One of the provider's own upgrade checks (EKS upgrade insights).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Insight {
    pub id: String,
    pub name: String,
    /// `UPGRADE_READINESS`, `MISCONFIGURATION`.
    pub category: String,
    /// The minor the check is about (an upgrade to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<Minor>,
    /// `PASSING`, `WARNING`, `ERROR`, `UNKNOWN`.
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub recommendation: String,
    /// What it found, e.g. the deprecated API paths still called and by whom.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// A provider's switch that bypasses its own upgrade protection (AKS
/// `upgradeSettings.overrideSettings`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UpgradeProtection {
    pub force_upgrade: bool,
    /// RFC 3339; the override only counts for upgrades started before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// Support dates for one minor as the provider publishes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SupportDates {
    pub minor: Minor,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_standard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_extended: Option<String>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    RemovedApi,
    Health,
    Addon,
    Insight,
    UpgradeProtection,
    Support,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::RemovedApi => "removed_api",
            Check::Health => "health",
            Check::Addon => "addon",
            Check::Insight => "insight",
            Check::UpgradeProtection => "upgrade_protection",
            Check::Support => "support",
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    /// What it is about: `web/Ingress/shop`, `node ip-10-0-1-5`, `add-on vpc-cni`, `1.29`.
    pub subject: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// The minor whose hop it concerns, when it concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<Minor>,
    /// The configuration says this refuses the plan (`preflight { CHECK = "block" }`).
    pub blocking: bool,
}

impl Finding {
    fn new(check: Check, severity: Severity, subject: impl Into<String>, message: String) -> Self {
        Finding {
            check,
            severity,
            subject: subject.into(),
            message,
            remedy: None,
            minor: None,
            blocking: false,
        }
    }
    fn remedy(mut self, r: impl Into<String>) -> Self {
        self.remedy = Some(r.into());
        self
    }
    fn minor(mut self, m: Minor) -> Self {
        self.minor = Some(m);
        self
    }

    /// One line: `subject: message`.
    pub fn line(&self) -> String {
        format!("{}: {}", self.subject, self.message)
    }
}

/// What the checks look at for one cluster.
pub struct Context<'a> {
    pub spec: &'a ClusterSpec,
    pub actual: &'a ActualCluster,
    pub policy: &'a ProviderPolicy,
    /// The minor the plan takes the control plane to.
    pub target: Minor,
    /// Today, for the support dates (`None`: not checked).
    pub today: Option<Date>,
}

impl Context<'_> {
    fn current(&self) -> Minor {
        self.actual.version.minor()
    }
    /// The minors the control plane passes through, after the current one.
    fn hops(&self) -> Vec<Minor> {
        let mut out = Vec::new();
        let mut m = self.current();
        while m < self.target {
            m = m.next();
            out.push(m);
        }
        out
    }
}

/// Every finding for one cluster, most severe first, with `blocking` set from the
/// configuration's modes.
pub fn findings(cx: &Context<'_>) -> Vec<Finding> {
    let p = &cx.spec.preflight;
    let mut out = Vec::new();
    let mut add = |mode: CheckMode, found: Vec<Finding>| {
        if mode == CheckMode::Off {
            return;
        }
        for mut f in found {
            f.blocking = f.severity == Severity::Error && mode == CheckMode::Block;
            out.push(f);
        }
    };
    add(p.removed_apis, removed_apis(cx));
    add(p.health, health(cx));
    add(p.addons, addons(cx));
    add(p.insights, insights(cx));
    add(CheckMode::Warn, upgrade_protection(cx));
    add(CheckMode::Warn, support(cx));
    out.sort_by_key(|f| (f.severity, f.check));
    out
}

/// Objects at an API removed in a minor the plan passes through (errors), or in a later
/// minor (notes: migrate before that upgrade).
fn removed_apis(cx: &Context<'_>) -> Vec<Finding> {
    let mut uses: Vec<&crate::removed_apis::ApiUse> = cx.actual.api_uses.iter().collect();
    if let Some(scan) = &cx.actual.scan {
        uses.extend(scan.api_uses.iter());
    }
    // One finding per object and apiVersion, naming every place it was seen.
    let mut by_object: BTreeMap<
        (String, String),
        (Vec<String>, &'static crate::removed_apis::RemovedApi),
    > = BTreeMap::new();
    for u in uses {
        let Some(r) = crate::removed_apis::removal(&u.api_version, &u.kind) else {
            continue;
        };
        if r.removed_in <= cx.current() {
            // The cluster already runs without this API: a manifest nobody can apply,
            // or history in managedFields; not this upgrade's concern.
            continue;
        }
        let e = by_object
            .entry((u.object(), u.api_version.clone()))
            .or_insert((Vec::new(), r));
        if !e.0.contains(&u.source) {
            e.0.push(u.source.clone());
        }
    }
    let mut out = Vec::new();
    for ((object, api_version), (sources, r)) in by_object {
        let replacement = match r.replacement {
            Some(rep) => format!("move it to {rep}"),
            None => "the API is gone without a replacement; remove the object or the feature that needs it".into(),
        };
        let on_path = r.removed_in <= cx.target;
        let f = Finding::new(
            Check::RemovedApi,
            if on_path {
                Severity::Error
            } else {
                Severity::Info
            },
            object,
            format!(
                "uses {api_version}, removed in {}{} (found in {})",
                r.removed_in,
                if on_path {
                    ""
                } else {
                    ", after this plan's target"
                },
                sources.join(", ")
            ),
        )
        .remedy(replacement)
        .minor(r.removed_in);
        out.push(f);
    }
    out
}

/// Whether the cluster is in the middle of an upgrade: nodes being replaced or restarted
/// are expected to be NotReady or cordoned for a while then.
fn mid_upgrade(actual: &ActualCluster) -> bool {
    // Statuses of a group being changed (EKS, GKE, AKS); failed or degraded ones are
    // not, so their NotReady nodes still block.
    const CHANGING: &[&str] = &[
        "UPDATING",
        "CREATING",
        "DELETING",
        "RECONCILING",
        "PROVISIONING",
        "STOPPING",
        "Upgrading",
        "Updating",
        "Creating",
        "Deleting",
        "Scaling",
    ];
    !actual.in_flight.is_empty()
        || !actual.upgrade_plans.is_empty()
        || actual
            .node_groups
            .iter()
            .any(|g| CHANGING.contains(&g.status.as_str()))
        || actual.kube.as_ref().is_some_and(|k| {
            // Kubelets on different minors with a node cordoned: hosts upgraded in place
            // (kubeadm, K3s) by an apply that was stopped.
            let mut minors: Vec<Minor> =
                k.nodes.iter().map(|n| n.kubelet_version.minor()).collect();
            minors.sort();
            minors.dedup();
            minors.len() > 1 && k.nodes.iter().any(|n| n.unschedulable)
        })
}

fn names(list: &[String]) -> String {
    const SHOWN: usize = 10;
    if list.len() <= SHOWN {
        list.join(", ")
    } else {
        format!(
            "{} and {} more",
            list[..SHOWN].join(", "),
            list.len() - SHOWN
        )
    }
}

fn health(cx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(scan) = &cx.actual.scan {
        if let Some(why) = &scan.not_ready {
            out.push(
                Finding::new(
                    Check::Health,
                    Severity::Error,
                    "API server",
                    format!("/readyz fails: {why}"),
                )
                .remedy("fix the control plane first (its failing checks are listed); an upgrade would start from a broken state"),
            );
        }
        for gap in &scan.gaps {
            out.push(Finding::new(
                Check::Health,
                Severity::Warning,
                "Kubernetes API",
                format!("{gap}; the checks that need it are incomplete"),
            ));
        }
    }
    let Some(kube) = &cx.actual.kube else {
        out.push(
            Finding::new(
                Check::Health,
                Severity::Warning,
                "Kubernetes API",
                "cannot be read, so nodes, pods, workloads and objects at removed APIs in the cluster are not checked, and no post-flight check is planned".into(),
            )
            .remedy("set kubeconfig/context on the cluster, or give kup's credentials access to it"),
        );
        return out;
    };
    let expected = mid_upgrade(cx.actual);
    for n in &kube.nodes {
        if !n.ready {
            let f = Finding::new(
                Check::Health,
                if expected {
                    Severity::Warning
                } else {
                    Severity::Error
                },
                format!("node {}", n.name),
                if expected {
                    "is NotReady while an upgrade is in progress".to_string()
                } else {
                    "is NotReady".to_string()
                },
            );
            out.push(f.remedy(
                "repair or replace the node (kubectl describe node shows why) before upgrading; kup would count on it",
            ));
        } else if n.unschedulable && !expected {
            out.push(
                Finding::new(
                    Check::Health,
                    Severity::Warning,
                    format!("node {}", n.name),
                    "is cordoned (SchedulingDisabled): its capacity is not counted for the pods drains move".into(),
                )
                .remedy(format!("kubectl uncordon {} if that is not on purpose", n.name)),
            );
        }
    }
    let pending: Vec<String> = kube
        .pods
        .iter()
        .filter(|p| p.phase == "Pending" && p.unschedulable.is_some())
        .map(|p| p.address())
        .collect();
    if !pending.is_empty() {
        out.push(
            Finding::new(
                Check::Health,
                Severity::Warning,
                "pods",
                format!("{} Pending and not schedulable: {}", pending.len(), names(&pending)),
            )
            .remedy("drains need free capacity; pods that cannot be placed now will not be placed during the upgrade either"),
        );
    }
    let crashing: Vec<String> = kube
        .pods
        .iter()
        .filter(|p| p.waiting_reason.as_deref() == Some("CrashLoopBackOff"))
        .map(|p| format!("{} ({} restarts)", p.address(), p.restarts))
        .collect();
    if !crashing.is_empty() {
        out.push(
            Finding::new(
                Check::Health,
                Severity::Warning,
                "pods",
                format!("{} in CrashLoopBackOff: {}", crashing.len(), names(&crashing)),
            )
            .remedy("fix them first, or the post-flight check cannot tell the upgrade's damage from what was already broken"),
        );
    }
    if let Some(scan) = &cx.actual.scan {
        let single: Vec<String> = scan
            .workloads
            .iter()
            .filter(|w| w.replicas == 1)
            .filter(|w| {
                !kube.pdbs.iter().any(|pdb| {
                    pdb.namespace == w.namespace
                        && !pdb.selector_unsupported
                        && pdb
                            .match_labels
                            .iter()
                            .all(|(k, v)| w.pod_labels.get(k) == Some(v))
                })
            })
            .map(|w| w.address())
            .collect();
        if !single.is_empty() {
            out.push(
                Finding::new(
                    Check::Health,
                    Severity::Warning,
                    "workloads",
                    format!(
                        "{} with a single replica and no PodDisruptionBudget are down while their node drains: {}",
                        single.len(),
                        names(&single)
                    ),
                )
                .remedy("run two replicas with a PodDisruptionBudget (maxUnavailable: 1) where downtime matters"),
            );
        }
    }
    out
}

fn addons(cx: &Context<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let hops = cx.hops();
    for a in &cx.actual.addons {
        if cx.spec.addons.iter().any(|s| s.name == a.name) {
            continue; // planned as add-on steps at each hop
        }
        for m in &hops {
            let Some(c) = a.compatibility.get(m) else {
                continue;
            };
            if !c.versions.is_empty() && !c.versions.contains(&a.version) {
                out.push(
                    Finding::new(
                        Check::Addon,
                        Severity::Error,
                        format!("add-on {}", a.name),
                        format!(
                            "{} is not compatible with {m} (compatible: {}), and the configuration does not manage it",
                            a.version,
                            names(&c.versions)
                        ),
                    )
                    .remedy(format!(
                        "add `addon \"{}\" {{ version = \"compatible\" }}` so kup moves it with each hop, or set preflight {{ addons = \"warn\" }}",
                        a.name
                    ))
                    .minor(*m),
                );
                break;
            }
        }
    }
    if !hops.is_empty() {
        if let Some(note) = &cx.policy.bundled_addons {
            out.push(Finding::new(
                Check::Addon,
                Severity::Info,
                "bundled add-ons",
                note.clone(),
            ));
            let components: Vec<&crate::kube::Component> =
                cx.actual.scan.iter().flat_map(|s| &s.components).collect();
            if !components.is_empty() {
                out.push(Finding::new(
                    Check::Addon,
                    Severity::Info,
                    "kube-system",
                    format!(
                        "runs {}",
                        components
                            .iter()
                            .map(|c| format!("{} {}", c.name(), c.version()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            // kubeadm leaves the CNI alone: moving minors without a cni_upgrade
            // relies on the installed one supporting every hop.
            let kubeadm_without_cni_step = cx.spec.provider.split('.').next() == Some("kubeadm")
                && cx
                    .spec
                    .kubeadm
                    .as_ref()
                    .is_none_or(|k| k.cni_upgrade.is_empty());
            if kubeadm_without_cni_step {
                for c in components
                    .iter()
                    .filter(|c| c.is_cni() && c.workload.starts_with("DaemonSet/"))
                {
                    out.push(
                        Finding::new(
                            Check::Addon,
                            Severity::Warning,
                            format!("CNI {}", c.name()),
                            format!(
                                "{} is not upgraded by kubeadm and no cni_upgrade is configured; the plan takes the cluster to {}",
                                c.image, cx.target
                            ),
                        )
                        .remedy("check the CNI's supported Kubernetes versions, or set cni_upgrade { command = [...] } to move it after the first control-plane host"),
                    );
                }
            }
        }
    }
    out
}

fn insights(cx: &Context<'_>) -> Vec<Finding> {
    let hops = cx.hops();
    let mut out = Vec::new();
    for i in &cx.actual.insights {
        let on_path = i.minor.is_some_and(|m| hops.contains(&m));
        let severity = match (i.status.as_str(), on_path) {
            ("ERROR", true) => Severity::Error,
            ("WARNING", true) | ("ERROR", false) => Severity::Warning,
            _ => Severity::Info,
        };
        let mut message = format!("{} {}", i.status, i.name);
        if !i.reason.is_empty() {
            message.push_str(&format!(": {}", i.reason));
        }
        if !i.details.is_empty() {
            message.push_str(&format!(" ({})", i.details.join("; ")));
        }
        let mut f = Finding::new(
            Check::Insight,
            severity,
            format!("insight {}", i.id),
            message,
        );
        if !i.recommendation.is_empty() && i.status != "PASSING" {
            f = f.remedy(i.recommendation.clone());
        }
        if let Some(m) = i.minor {
            f = f.minor(m);
        }
        out.push(f);
    }
    out
}

fn upgrade_protection(cx: &Context<'_>) -> Vec<Finding> {
    let Some(p) = &cx.actual.upgrade_protection else {
        return Vec::new();
    };
    let until = p
        .until
        .as_deref()
        .and_then(|u| crate::support::parse_date(u.get(..10)?));
    let active = p.force_upgrade && matches!((until, cx.today), (Some(u), Some(t)) if u >= t);
    vec![if active {
        Finding::new(
            Check::UpgradeProtection,
            Severity::Warning,
            "upgrade protection",
            format!(
                "forceUpgrade is set until {}: the provider will not stop an upgrade when deprecated APIs are in use",
                p.until.as_deref().unwrap_or("-")
            ),
        )
        .remedy("clear upgradeSettings.overrideSettings once the upgrade that needed it is done")
    } else {
        Finding::new(
            Check::UpgradeProtection,
            Severity::Info,
            "upgrade protection",
            "on: the provider refuses an upgrade while APIs it removes were used in the last 12 hours".into(),
        )
    }]
}

fn support(cx: &Context<'_>) -> Vec<Finding> {
    let Some(today) = cx.today else {
        return Vec::new();
    };
    let kind = cx.spec.provider.split('.').next().unwrap_or("");
    let mut out = Vec::new();
    let current = cx.current();
    let mut minors = vec![(current, "running")];
    if cx.target != current {
        minors.push((cx.target, "target"));
    }
    for (m, role) in minors {
        let from_provider = cx.actual.support.iter().find(|s| s.minor == m);
        let end = from_provider
            .and_then(|s| s.end_of_standard.as_deref())
            .and_then(crate::support::parse_date)
            .map(|d| {
                (
                    d,
                    format!("end of standard support on {}", kind.to_uppercase()),
                )
            })
            .or_else(|| crate::support::end_of_support(kind, m));
        let extended = from_provider
            .and_then(|s| s.end_of_extended.as_deref())
            .and_then(crate::support::parse_date)
            .or_else(|| {
                (kind == "eks")
                    .then(|| crate::support::extended_support(m))
                    .flatten()
            });
        let Some((end, what)) = end else {
            out.push(Finding::new(
                Check::Support,
                Severity::Info,
                m.to_string(),
                format!("the {role} version; kup knows no support dates for it"),
            ));
            continue;
        };
        let days = (end - today).whole_days();
        let ext = extended
            .map(|e| {
                if e < today {
                    format!("; extended support ended too ({e})")
                } else {
                    format!("; extended support (charged) until {e}")
                }
            })
            .unwrap_or_default();
        let (severity, message) = if days < 0 {
            (
                Severity::Warning,
                format!(
                    "the {role} version is past its {what} ({end}, {} days ago){ext}",
                    -days
                ),
            )
        } else if days <= crate::support::WARN_DAYS {
            (
                Severity::Warning,
                format!("the {role} version reaches its {what} on {end}, in {days} days{ext}"),
            )
        } else {
            (
                Severity::Info,
                format!("the {role} version is supported until {end} ({what}){ext}"),
            )
        };
        let mut f = Finding::new(Check::Support, severity, m.to_string(), message).minor(m);
        if severity == Severity::Warning && role == "running" && cx.target == current {
            f = f.remedy("plan an upgrade to a supported minor");
        }
        out.push(f);
    }
    out
}

/// A pod as the post-flight check compares it across the upgrade: by its controller
/// (`namespace/ReplicaSet/name`, which survives the pod being recreated on another node),
/// or by name for a bare pod.
pub fn pod_identity(p: &crate::kube::KubePod) -> String {
    match &p.owner {
        Some((kind, name)) => format!("{}/{kind}/{name}", p.namespace),
        None => p.address(),
    }
}

/// What the post-flight check finds wrong now, or what it proved when nothing is.
pub fn postflight_verdict(
    kube: &crate::kube::KubeSnapshot,
    workloads: &[crate::kube::KubeWorkload],
    node_groups: &BTreeMap<String, Minor>,
    available_before: &[String],
    pending_before: &[String],
) -> Result<Vec<String>, Vec<String>> {
    let mut problems = Vec::new();
    // Only the groups the plan moved: other nodes (unmanaged groups, spot churn) are not
    // this upgrade's to prove.
    let not_ready: Vec<String> = node_groups
        .keys()
        .flat_map(|g| kube.nodes_of_group(g))
        .filter(|n| !n.ready)
        .map(|n| n.name.clone())
        .collect();
    if !not_ready.is_empty() {
        problems.push(format!("nodes not Ready: {}", names(&not_ready)));
    }
    let mut behind = Vec::new();
    for (group, minor) in node_groups {
        for n in kube.nodes_of_group(group) {
            if n.kubelet_version.minor() != *minor {
                behind.push(format!(
                    "{} ({group}) runs {}, not {minor}",
                    n.name, n.kubelet_version
                ));
            }
        }
    }
    if !behind.is_empty() {
        problems.push(format!(
            "kubelets not at the planned version: {}",
            names(&behind)
        ));
    }
    // A workload deleted since the plan was made is someone's decision, not damage.
    let gone: Vec<String> = available_before
        .iter()
        .filter(|a| !workloads.iter().any(|w| &w.address() == *a))
        .cloned()
        .collect();
    let unavailable: Vec<String> = available_before
        .iter()
        .filter_map(|a| match workloads.iter().find(|w| &w.address() == a) {
            Some(w) if !w.is_available() => {
                Some(format!("{a} has {}/{} available", w.available, w.replicas))
            }
            _ => None,
        })
        .collect();
    if !unavailable.is_empty() {
        problems.push(format!(
            "workloads available before the upgrade are not now: {}",
            names(&unavailable)
        ));
    }
    let mut new_pending: Vec<String> = kube
        .pods
        .iter()
        .filter(|p| {
            p.phase == "Pending"
                && !pending_before.contains(&pod_identity(p))
                // A smoke pod a killed run left behind is replaced by this check itself.
                && p.labels.get("app.kubernetes.io/name").map(String::as_str) != Some("kup-smoke")
        })
        .map(|p| p.address())
        .collect();
    new_pending.sort();
    if !new_pending.is_empty() {
        problems.push(format!(
            "pods Pending that were not before: {}",
            names(&new_pending)
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let checked: usize = node_groups
        .keys()
        .map(|g| kube.nodes_of_group(g).count())
        .sum();
    let mut passed = vec![format!("{checked} node(s) Ready")];
    if !node_groups.is_empty() {
        passed.push(format!(
            "kubelets at {}",
            node_groups
                .iter()
                .map(|(g, m)| format!("{m} in {g}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    passed.push(format!(
        "{} workload(s) available as before",
        available_before.len() - gone.len()
    ));
    if !gone.is_empty() {
        passed.push(format!("deleted since the plan: {}", names(&gone)));
    }
    passed.push("no new Pending pods".into());
    Ok(passed)
}

#[cfg(test)]
mod tests;
