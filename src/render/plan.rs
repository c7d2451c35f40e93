//! The plan as people read it: `~` changes, a version timeline per cluster, numbered steps
//! with why and how long, and a one-line summary.

use std::fmt::Write;
use std::time::Duration;

use console::Style;
use kup_engine::plan::{Action, ClusterPlan, Plan};
use kup_engine::planner::PlanError;

use super::short_duration;

pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    let bold = Style::new().bold();
    let yellow = Style::new().yellow();
    let dim = Style::new().dim();
    if plan.is_empty() {
        out.push_str(&format!(
            "{} Your clusters match the configuration.\n",
            Style::new().green().bold().apply_to("No changes.")
        ));
        for c in &plan.clusters {
            render_notes(&mut out, c);
        }
        return out;
    }
    let changed: Vec<&ClusterPlan> = plan
        .clusters
        .iter()
        .filter(|c| plan.steps.iter().any(|s| s.cluster == c.address))
        .collect();
    let _ = writeln!(
        out,
        "kup will make these changes ({} marks an in-place upgrade):\n",
        yellow.apply_to("~")
    );
    for c in &plan.clusters {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| s.cluster == c.address)
            .collect();
        let _ = writeln!(
            out,
            "  {} {}",
            dim.apply_to("#"),
            bold.apply_to(format!(
                "{} ({} cluster \"{}\")",
                c.address, c.provider, c.name
            ))
        );
        if steps.is_empty() {
            let _ = writeln!(out, "    no changes");
            render_notes(&mut out, c);
            out.push('\n');
            continue;
        }
        let width = c
            .changes
            .iter()
            .map(|ch| ch.address.len())
            .max()
            .unwrap_or(0);
        for ch in &c.changes {
            let _ = writeln!(
                out,
                "  {} {:width$}  {:<15} {} → {}",
                yellow.apply_to("~"),
                ch.address,
                ch.attribute,
                ch.from,
                bold.apply_to(&ch.to),
            );
        }
        out.push('\n');
        render_timeline(&mut out, c);
        let _ = writeln!(out, "    Steps:");
        for (i, s) in steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "    {:>3}. {:<60} {}",
                i + 1,
                s.action.describe(),
                dim.apply_to(format!(
                    "~{}",
                    short_duration(Duration::from_secs(s.estimated_secs))
                ))
            );
            let _ = writeln!(out, "         {} {}", dim.apply_to("why:"), s.reason);
        }
        render_notes(&mut out, c);
        out.push('\n');
    }
    // Rollout gates belong to no cluster: the waves and what each waits for.
    let gates: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::WaveGate { .. }))
        .collect();
    if !gates.is_empty() {
        let _ = writeln!(out, "  {} {}", dim.apply_to("#"), bold.apply_to("Waves"));
        for g in gates {
            if let Action::WaveGate {
                rollout, clusters, ..
            } = &g.action
            {
                let _ = writeln!(
                    out,
                    "    rollout {rollout}: {} ({})",
                    g.action.describe(),
                    clusters.join(", ")
                );
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", summary_line(plan, changed.len()));
    out
}

fn render_notes(out: &mut String, c: &ClusterPlan) {
    let yellow = Style::new().yellow();
    let red = Style::new().red().bold();
    if !c.nodes.is_empty() {
        let _ = writeln!(out, "    Nodes (from the Kubernetes API):");
        for (group, n) in &c.nodes {
            let _ = writeln!(
                out,
                "      {group}: {} nodes ({} Ready), kubelet {}, {} pods to move",
                n.nodes,
                n.ready,
                if n.kubelets.is_empty() {
                    "-".to_string()
                } else {
                    n.kubelets.join(", ")
                },
                n.pods
            );
        }
    }
    for b in &c.blocked_drains {
        let _ = writeln!(
            out,
            "    {} PodDisruptionBudget {} {}; draining {} will not get past it ({}){}",
            if b.blocking {
                red.apply_to("blocked:")
            } else {
                yellow.apply_to("will wait:")
            },
            b.pdb,
            b.reason,
            b.node_group,
            b.pods.join(", "),
            if b.blocking {
                "; apply refuses unless -allow-blocked-drain or drain { on_blocked = \"wait\" }"
            } else {
                ""
            }
        );
    }
    for p in &c.pinned_pods {
        let _ = writeln!(
            out,
            "    {} pods select node group {} by name (nodeSelector {}), so they can never move to {}; draining {} will not finish ({}); apply refuses unless -allow-blocked-drain. Select the pods by another label the new group keeps",
            red.apply_to("blocked:"),
            p.node_group,
            p.selector,
            p.new_group,
            p.node_group,
            p.pods.join(", ")
        );
    }
    if !c.unmanaged_node_groups.is_empty() {
        let _ = writeln!(
            out,
            "    {} node groups not in the configuration (kup leaves them alone): {}",
            yellow.apply_to("note:"),
            c.unmanaged_node_groups.join(", ")
        );
    }
    for w in &c.warnings {
        if w.starts_with("PodDisruptionBudget ") {
            continue; // shown above
        }
        let _ = writeln!(out, "    {} {w}", yellow.apply_to("warning:"));
    }
    // Notes worth reading in a plan; `kup check -all` lists every one.
    for f in &c.findings {
        use kup_engine::preflight::{Check, Severity};
        let passing_insight = f.check == Check::Insight && f.message.starts_with("PASSING");
        if f.severity == Severity::Info && f.check != Check::Support && !passing_insight {
            let _ = writeln!(
                out,
                "    {} {}",
                Style::new().dim().apply_to("note:"),
                f.line()
            );
        }
    }
}

fn render_timeline(out: &mut String, c: &ClusterPlan) {
    let dim = Style::new().dim();
    let groups: Vec<&String> = c
        .timeline
        .first()
        .map(|p| p.node_groups.keys().collect())
        .unwrap_or_default();
    let _ = write!(
        out,
        "    Version timeline:\n      {:<44} {:>13}",
        "", "control plane"
    );
    for g in &groups {
        let _ = write!(out, "  {:>12}", truncate(g, 12));
    }
    out.push('\n');
    for p in &c.timeline {
        let label = match &p.after_step {
            None => "now".to_string(),
            Some(s) => format!("after {}", s.split_once('/').map(|x| x.1).unwrap_or(s)),
        };
        let _ = write!(
            out,
            "      {:<44} {:>13}",
            truncate(&label, 44),
            p.control_plane.to_string()
        );
        for g in &groups {
            let v = p
                .node_groups
                .get(*g)
                .map(|m| m.to_string())
                .unwrap_or_default();
            let _ = write!(out, "  {:>12}", v);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "      {}",
        dim.apply_to("every point keeps kubelets within the version-skew policy")
    );
    out.push('\n');
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

pub fn summary_line(plan: &Plan, clusters: usize) -> String {
    let mut hops = 0;
    let mut rollouts = 0;
    let mut addons = 0;
    let mut configs = 0;
    let mut blue_green = 0;
    for s in &plan.steps {
        match s.action {
            Action::UpgradeControlPlane { .. } => hops += 1,
            Action::UpgradeNodeGroup {
                native: Some(_), ..
            } => blue_green += 1,
            Action::UpgradeNodeGroup { .. } => rollouts += 1,
            Action::UpdateAddon { .. } => addons += 1,
            Action::UpdateNodeGroupConfig { .. } => configs += 1,
            Action::CreateNodeGroup { .. } => blue_green += 1,
            _ => {}
        }
    }
    let mut parts = Vec::new();
    if hops > 0 {
        parts.push(plural(hops, "control-plane upgrade"));
    }
    if rollouts > 0 {
        parts.push(plural(rollouts, "node-group rollout"));
    }
    if addons > 0 {
        parts.push(plural(addons, "add-on update"));
    }
    if configs > 0 {
        parts.push(plural(configs, "config change"));
    }
    if blue_green > 0 {
        parts.push(plural(blue_green, "blue/green replacement"));
    }
    format!(
        "{} {} to change: {}; {} steps, estimated {} if run one after another.",
        Style::new().bold().apply_to("Plan:"),
        plural(clusters, "cluster"),
        parts.join(", "),
        plan.steps.len(),
        short_duration(Duration::from_secs(plan.estimated_secs()))
    )
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Planner errors with the configuration snippet when the location is known.
pub fn render_plan_errors(errors: &[PlanError]) -> String {
    let red = Style::new().red().bold();
    let mut out = String::new();
    for e in errors {
        let _ = writeln!(
            out,
            "{} {}: {}",
            red.apply_to("Error:"),
            e.address,
            e.message
        );
        if let Some(loc) = &e.loc {
            let _ = writeln!(out, "\n  on {loc}:");
            if let Ok(text) = std::fs::read_to_string(&loc.file) {
                if let Some(line) = text.lines().nth(loc.line.saturating_sub(1)) {
                    let _ = writeln!(out, "  {:>4} | {line}", loc.line);
                }
            }
        }
        if let Some(h) = &e.hint {
            let _ = writeln!(out, "\n  {h}");
        }
        out.push('\n');
    }
    out
}
