//! `kup drift`: per cluster, what differs from the configuration, and what changed since
//! the last apply (from the state), as a readable diff. Exit 2 when drift is found.
//! Also `plan -refresh-only` / `apply -refresh-only`, which compare with the state only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use console::Style;
use kup_engine::model::{ActualCluster, AddonVersionReq, ClusterSpec};
use kup_engine::state::{StateFile, StateStore};
use serde::Serialize;
use similar::TextDiff;

use crate::cli::DriftArgs;
use crate::commands::apply::record_state;
use crate::failure::{Failure, Result};
use crate::workspace::load_config;
use crate::VarArgs;

/// One way the running cluster differs from the configuration.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConfigDrift {
    pub address: String,
    /// `changed`, `missing` (declared, not running) or `unmanaged` (running, not declared).
    pub kind: String,
    pub attribute: Option<String>,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClusterDrift {
    pub address: String,
    pub name: String,
    pub config: Vec<ConfigDrift>,
    /// Unified diff of the observed state at the last apply against now; empty when the
    /// cluster was never applied or nothing changed.
    pub since_last_apply: String,
    /// A source of drift the provider runs by itself (a GKE release channel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_upgrade: Option<String>,
    pub last_applied_at: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DriftReport {
    pub drift: bool,
    pub clusters: Vec<ClusterDrift>,
}

pub async fn run(args: DriftArgs) -> Result<ExitCode> {
    let opened = crate::workspace::open_for_reading(&args.dir, &args.vars, &args.state, "drift")?;
    let crate::workspace::Observed {
        desired, actual, ..
    } = crate::workspace::observe(&opened.loaded, args.parallelism, args.output.json).await?;
    let state = opened
        .store
        .load()
        .map_err(|e| Failure::Message(e.to_string()))?;
    let report = compute(&desired.clusters, &actual, state.as_ref());
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.drift {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn compute(
    specs: &[ClusterSpec],
    actual: &BTreeMap<String, ActualCluster>,
    state: Option<&StateFile>,
) -> DriftReport {
    let mut clusters = Vec::new();
    for spec in specs {
        let Some(a) = actual.get(&spec.label) else {
            continue;
        };
        let previous = state.and_then(|s| s.clusters.get(&spec.address()));
        let since = previous
            .map(|p| diff_observed(&p.observed, a))
            .unwrap_or_default();
        clusters.push(ClusterDrift {
            address: spec.address(),
            name: a.name.clone(),
            config: config_drift(spec, a),
            auto_upgrade: a.auto_upgrade.clone(),
            since_last_apply: since,
            last_applied_at: previous.map(|p| p.applied_at.clone()),
        });
    }
    let drift = clusters
        .iter()
        .any(|c| !c.config.is_empty() || !c.since_last_apply.is_empty());
    DriftReport { drift, clusters }
}

pub fn config_drift(spec: &ClusterSpec, a: &ActualCluster) -> Vec<ConfigDrift> {
    let mut out = Vec::new();
    let addr = spec.address();
    let changed =
        |address: String, attribute: &str, expected: String, actual: String| ConfigDrift {
            address,
            kind: "changed".into(),
            attribute: Some(attribute.into()),
            expected: Some(expected),
            actual: Some(actual),
        };
    if !spec.version.satisfied_by(&a.version) {
        out.push(changed(
            addr.clone(),
            "version",
            spec.version.to_string(),
            a.version.to_string(),
        ));
    }
    for ng in &spec.node_groups {
        let ng_addr = format!("{addr}.node_group.{}", ng.name);
        // A blue/green group lives on under a colour's name (`general-1-31`); two colours
        // at once (a replacement half done) count as the group for drift.
        let live = match kup_engine::planner::live_group(ng, a) {
            Ok(l) => l,
            Err(_) => a
                .node_groups
                .iter()
                .filter(|n| {
                    n.name == ng.name || kup_engine::planner::is_colour_of(&n.name, &ng.name)
                })
                .max_by(|x, y| x.version.cmp(&y.version)),
        };
        let Some(an) = live else {
            out.push(ConfigDrift {
                address: ng_addr,
                kind: "missing".into(),
                attribute: None,
                expected: Some(ng.version.to_string()),
                actual: None,
            });
            continue;
        };
        if ng.version.minor() != an.version.minor() {
            out.push(changed(
                ng_addr.clone(),
                "version",
                ng.version.to_string(),
                an.version.to_string(),
            ));
        }
        // Single nodes whose kubelet is not what the configuration says (a node that
        // joined at another release, or one an outside upgrade moved).
        if let Some(k) = &a.kube {
            let want = if ng.follows_cluster {
                &spec.version
            } else {
                &ng.version
            };
            for n in k.nodes_of_group(&an.name) {
                if !want.satisfied_by(&n.kubelet_version) {
                    out.push(changed(
                        format!("{ng_addr}.node.{}", n.name),
                        "kubelet",
                        want.to_string(),
                        n.kubelet_version.to_string(),
                    ));
                }
            }
        }
        if let (Some(have), kup_engine::model::Strategy::Rolling { .. }) =
            (an.max_unavailable, &ng.strategy)
        {
            let want = ng.strategy.max_unavailable();
            if have != want {
                out.push(changed(
                    ng_addr,
                    "max_unavailable",
                    want.to_string(),
                    have.to_string(),
                ));
            }
        }
    }
    for an in &a.node_groups {
        let managed = spec.node_groups.iter().any(|ng| {
            ng.name == an.name
                || (matches!(ng.strategy, kup_engine::model::Strategy::BlueGreen { .. })
                    && kup_engine::planner::is_colour_of(&an.name, &ng.name))
        });
        if !managed && an.control_plane {
            // The control plane's own hosts (kubeadm, K3s servers): their kubelets follow
            // the cluster's version.
            if let Some(k) = &a.kube {
                for n in k.nodes_of_group(&an.name) {
                    if !spec.version.satisfied_by(&n.kubelet_version) {
                        out.push(changed(
                            format!("{addr}.control_plane.node.{}", n.name),
                            "kubelet",
                            spec.version.to_string(),
                            n.kubelet_version.to_string(),
                        ));
                    }
                }
            }
            continue;
        }
        if !managed {
            out.push(ConfigDrift {
                address: format!("{addr}.node_group.{}", an.name),
                kind: "unmanaged".into(),
                attribute: None,
                expected: None,
                actual: Some(an.version.to_string()),
            });
        }
    }
    for ad in &spec.addons {
        let ad_addr = format!("{addr}.addon.{}", ad.name);
        match (a.addon(&ad.name), &ad.version) {
            (None, _) => out.push(ConfigDrift {
                address: ad_addr,
                kind: "missing".into(),
                attribute: None,
                expected: Some(format!("{:?}", ad.version)),
                actual: None,
            }),
            (Some(x), AddonVersionReq::Exact(v)) if &x.version != v => {
                out.push(changed(ad_addr, "version", v.clone(), x.version.clone()))
            }
            (Some(x), AddonVersionReq::Compatible | AddonVersionReq::Latest) => {
                if let Some(c) = x.compatibility.get(&a.version.minor()) {
                    let ok = match ad.version {
                        AddonVersionReq::Latest => c.versions.first() == Some(&x.version),
                        _ => c.versions.contains(&x.version),
                    };
                    if !ok && !c.versions.is_empty() {
                        let want = match ad.version {
                            AddonVersionReq::Latest => format!("latest ({})", c.versions[0]),
                            _ => format!("compatible with {}", a.version.minor()),
                        };
                        out.push(changed(ad_addr, "version", want, x.version.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The parts of a cluster a person cares about, one fact per line, for diffing.
fn summary_lines(a: &ActualCluster) -> String {
    let mut s = String::new();
    // Only what kup manages: sizes, status and platform versions change on their own
    // (autoscalers, provider patching) and would make drift report forever.
    let _ = writeln!(s, "version: {}", a.version);
    for n in &a.node_groups {
        let _ = writeln!(s, "node_group.{}.version: {}", n.name, n.version);
        if let Some(r) = &n.release_version {
            let _ = writeln!(s, "node_group.{}.release_version: {r}", n.name);
        }
        if let Some(u) = n.max_unavailable {
            let _ = writeln!(s, "node_group.{}.max_unavailable: {u}", n.name);
        }
    }
    for ad in &a.addons {
        let _ = writeln!(s, "addon.{}.version: {}", ad.name, ad.version);
    }
    s
}

pub fn diff_observed(before: &ActualCluster, now: &ActualCluster) -> String {
    let old = summary_lines(before);
    let new = summary_lines(now);
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(1)
        .header("at last apply", "now")
        .to_string()
}

pub fn render(report: &DriftReport) -> String {
    let mut out = String::new();
    let yellow = Style::new().yellow();
    let green = Style::new().green();
    let red = Style::new().red();
    let bold = Style::new().bold();
    for c in &report.clusters {
        let _ = writeln!(
            out,
            "{}",
            bold.apply_to(format!("# {} ({})", c.address, c.name))
        );
        if c.config.is_empty() && c.since_last_apply.is_empty() {
            let _ = writeln!(out, "  no drift");
        }
        if let Some(auto) = &c.auto_upgrade {
            let _ = writeln!(out, "  {} drift source: {auto}", yellow.apply_to("!"));
        }
        if !c.config.is_empty() {
            let _ = writeln!(out, "  Differs from the configuration:");
            for d in &c.config {
                let line = match d.kind.as_str() {
                    "missing" => format!(
                        "{} {} is declared but does not exist",
                        red.apply_to("-"),
                        d.address
                    ),
                    "unmanaged" => format!(
                        "{} {} exists ({}) but is not in the configuration",
                        green.apply_to("+"),
                        d.address,
                        d.actual.as_deref().unwrap_or("")
                    ),
                    _ => format!(
                        "{} {} {}: configuration says {}, running {}",
                        yellow.apply_to("~"),
                        d.address,
                        d.attribute.as_deref().unwrap_or(""),
                        d.expected.as_deref().unwrap_or(""),
                        d.actual.as_deref().unwrap_or("")
                    ),
                };
                let _ = writeln!(out, "    {line}");
            }
        }
        if !c.since_last_apply.is_empty() {
            let _ = writeln!(
                out,
                "  Changed since the last apply ({}):",
                c.last_applied_at.as_deref().unwrap_or("unknown")
            );
            for line in c.since_last_apply.lines() {
                let styled = if line.starts_with('+') && !line.starts_with("+++") {
                    green.apply_to(line).to_string()
                } else if line.starts_with('-') && !line.starts_with("---") {
                    red.apply_to(line).to_string()
                } else {
                    line.to_string()
                };
                let _ = writeln!(out, "    {styled}");
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{}",
        if report.drift {
            yellow.apply_to("Drift found.").bold().to_string()
        } else {
            green.apply_to("No drift.").bold().to_string()
        }
    );
    out
}

/// `kup plan -refresh-only`: show what changed since the last apply.
pub async fn refresh_only(
    dir: &Path,
    vars: &VarArgs,
    store: &StateStore,
    parallelism: usize,
    json: bool,
    detailed: bool,
) -> Result<ExitCode> {
    let (report, _) = refreshed(dir, vars, store, parallelism, json).await?;
    let changed = report
        .clusters
        .iter()
        .any(|c| !c.since_last_apply.is_empty());
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else if !changed {
        println!("No changes since the last apply.");
    } else {
        for c in report
            .clusters
            .iter()
            .filter(|c| !c.since_last_apply.is_empty())
        {
            println!("# {}\n{}", c.address, c.since_last_apply);
        }
        println!("`kup apply -refresh-only` records these in the state.");
    }
    Ok(if detailed && changed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// `kup apply -refresh-only`: record what is running in the state, change nothing.
pub async fn apply_refresh_only(
    dir: &Path,
    vars: &VarArgs,
    store: &StateStore,
    parallelism: usize,
    json: bool,
) -> Result<ExitCode> {
    let (report, (desired, actual)) = refreshed(dir, vars, store, parallelism, json).await?;
    let previous = store.load().map_err(|e| Failure::Message(e.to_string()))?;
    // Keep each cluster's last applied configuration; only the observation is new.
    let mut desired = desired;
    if let Some(prev) = &previous {
        for c in &mut desired.clusters {
            if let Some(p) = prev.clusters.get(&c.address()) {
                *c = p.desired.clone();
            }
        }
    }
    record_state(store, &desired, &actual, None)?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
    } else {
        println!(
            "The state now records what is running ({} clusters).",
            actual.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn refreshed(
    dir: &Path,
    vars: &VarArgs,
    store: &StateStore,
    parallelism: usize,
    json: bool,
) -> Result<(
    DriftReport,
    (kup_engine::model::Desired, BTreeMap<String, ActualCluster>),
)> {
    let loaded = load_config(dir, vars)?;
    let crate::workspace::Observed {
        desired, actual, ..
    } = crate::workspace::observe(&loaded, parallelism, json).await?;
    let state = store.load().map_err(|e| Failure::Message(e.to_string()))?;
    let report = compute(&desired.clusters, &actual, state.as_ref());
    Ok((report, (desired, actual)))
}
