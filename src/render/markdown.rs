//! The plan as a pull-request comment: a totals line, one table row per cluster, then per
//! cluster the version timeline, the steps and the warnings folded in `<details>` blocks.
//!
//! Byte-for-byte reproducible for the same plan (no clock, configuration order), so two
//! comments can be diffed, and never longer than GitHub's comment limit: what does not fit
//! is left out with a pointer to the full plan.

use std::fmt::Write as _;
use std::time::Duration;

use kup_engine::plan::{Action, ClusterPlan, Plan};
use kup_engine::preflight::Severity;

use super::short_duration;

/// GitHub's limit on a comment body, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// Room kept below the limit for the truncation notice and a CI system's own framing.
const RESERVE: usize = 1_536;

/// `plan_ref` names where the whole plan can be read (e.g. `kup show plan.kupplan`), for
/// the notice when something had to be left out.
pub fn render_markdown(plan: &Plan, plan_ref: &str) -> String {
    render_markdown_within(plan, plan_ref, GITHUB_COMMENT_LIMIT)
}

pub fn render_markdown_within(plan: &Plan, plan_ref: &str, limit: usize) -> String {
    let budget = limit.saturating_sub(RESERVE);
    let mut out = String::new();
    let _ = writeln!(out, "### kup plan `{}`\n", plan.id);
    let changed: Vec<&ClusterPlan> = plan
        .clusters
        .iter()
        .filter(|c| plan.steps.iter().any(|s| s.cluster == c.address))
        .collect();
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "**No changes.** {} checked: all match the configuration.",
            plural(plan.clusters.len(), "cluster")
        );
        let warned = warned_clusters(plan);
        if warned > 0 {
            let _ = writeln!(
                out,
                "\nWarnings about {}; `kup check` lists them.",
                plural(warned, "cluster")
            );
        }
        return out;
    }
    let _ = writeln!(out, "{}\n", totals(plan, changed.len()));

    // The table first: one row per changed cluster, as many as fit.
    let mut rows = String::from(
        "| Cluster | Provider | Version | Steps | Estimate | Warnings |\n|---|---|---|---:|---:|---:|\n",
    );
    let mut shown_rows = 0;
    for c in &changed {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| s.cluster == c.address)
            .collect();
        let row = format!(
            "| `{}` | {} `{}` | {} → {} | {} | {} | {} |\n",
            c.address,
            c.provider,
            c.name,
            c.from,
            c.to,
            steps.len(),
            short_duration(Duration::from_secs(
                steps.iter().map(|s| s.estimated_secs).sum()
            )),
            warnings(c).len()
        );
        if out.len() + rows.len() + row.len() > budget {
            break;
        }
        rows.push_str(&row);
        shown_rows += 1;
    }
    out.push_str(&rows);
    out.push('\n');

    // Then the details of each cluster, as many as fit after the table.
    let mut shown_details = 0;
    if shown_rows == changed.len() {
        for c in &changed {
            let section = cluster_section(plan, c);
            if out.len() + section.len() > budget {
                break;
            }
            out.push_str(&section);
            shown_details += 1;
        }
        let gates = waves(plan);
        if shown_details == changed.len() && out.len() + gates.len() <= budget {
            out.push_str(&gates);
        }
    }
    if shown_rows < changed.len() || shown_details < changed.len() {
        let _ = writeln!(
            out,
            "> **Truncated to fit a comment:** {} of {} changed clusters in the table, {} with their steps. The whole plan: `{plan_ref}`.",
            shown_rows,
            changed.len(),
            shown_details
        );
    }
    out
}

fn cluster_section(plan: &Plan, c: &ClusterPlan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#### `{}` ({} cluster `{}`): {} → {}\n",
        c.address, c.provider, c.name, c.from, c.to
    );
    if !c.timeline.is_empty() {
        let groups: Vec<&String> = c.timeline[0].node_groups.keys().collect();
        let _ = write!(s, "| | control plane |");
        for g in &groups {
            let _ = write!(s, " `{g}` |");
        }
        let _ = write!(s, "\n|---|---|");
        for _ in &groups {
            s.push_str("---|");
        }
        s.push('\n');
        for p in &c.timeline {
            let label = match &p.after_step {
                None => "now".to_string(),
                Some(step) => format!(
                    "after `{}`",
                    step.split_once('/').map(|x| x.1).unwrap_or(step)
                ),
            };
            let _ = write!(s, "| {label} | {} |", p.control_plane);
            for g in &groups {
                let _ = write!(
                    s,
                    " {} |",
                    p.node_groups
                        .get(*g)
                        .map(|m| m.to_string())
                        .unwrap_or_default()
                );
            }
            s.push('\n');
        }
        s.push('\n');
    }
    let steps: Vec<_> = plan
        .steps
        .iter()
        .filter(|st| st.cluster == c.address)
        .collect();
    let _ = writeln!(
        s,
        "<details><summary>{}</summary>\n",
        plural(steps.len(), "step")
    );
    for (i, st) in steps.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. {} (~{})",
            i + 1,
            escape(&st.action.describe()),
            short_duration(Duration::from_secs(st.estimated_secs))
        );
    }
    s.push_str("\n</details>\n\n");
    let w = warnings(c);
    if !w.is_empty() {
        let _ = writeln!(
            s,
            "<details><summary>⚠️ {}</summary>\n",
            plural(w.len(), "warning")
        );
        for line in &w {
            let _ = writeln!(s, "- {}", escape(line));
        }
        s.push_str("\n</details>\n\n");
    }
    s
}

/// Everything a reviewer should not miss about one cluster: drains that will not get
/// through, pods that cannot move, the planner's warnings, and pre-flight findings that
/// warn or block (removed APIs, health, add-ons, insights, support dates).
fn warnings(c: &ClusterPlan) -> Vec<String> {
    let mut out = Vec::new();
    for b in &c.blocked_drains {
        out.push(format!(
            "{} PodDisruptionBudget `{}` {}; draining `{}` will not get past it",
            if b.blocking {
                "**blocked:**"
            } else {
                "will wait:"
            },
            b.pdb,
            b.reason,
            b.node_group
        ));
    }
    for p in &c.pinned_pods {
        out.push(format!(
            "**blocked:** pods select node group `{}` by name (`{}`) and cannot move to `{}`",
            p.node_group, p.selector, p.new_group
        ));
    }
    for s in &c.capacity {
        out.push(format!(
            "draining `{}` in `{}` needs {}m CPU / {} MiB more than the other nodes have free",
            s.nodes.join(", "),
            s.node_group,
            s.short.cpu_millis,
            s.short.memory_bytes >> 20
        ));
    }
    for w in &c.warnings {
        if !w.starts_with("PodDisruptionBudget ") {
            out.push(w.clone());
        }
    }
    for f in &c.findings {
        if f.severity != Severity::Info {
            out.push(f.line());
        }
    }
    // The planner also lists warning findings among its warnings: once each.
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|w| seen.insert(w.clone()));
    out
}

fn warned_clusters(plan: &Plan) -> usize {
    plan.clusters
        .iter()
        .filter(|c| !warnings(c).is_empty())
        .count()
}

fn waves(plan: &Plan) -> String {
    let mut s = String::new();
    for g in plan
        .steps
        .iter()
        .filter(|st| matches!(st.action, Action::WaveGate { .. }))
    {
        if s.is_empty() {
            s.push_str("#### Waves\n\n");
        }
        let _ = writeln!(s, "- {}", escape(&g.action.describe()));
    }
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// The totals line, without the terminal's colours.
fn totals(plan: &Plan, clusters: usize) -> String {
    let line = console::strip_ansi_codes(&super::plan::summary_line(plan, clusters)).into_owned();
    match line.strip_prefix("Plan: ") {
        Some(rest) => format!("**Plan:** {rest}"),
        None => line,
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Text from descriptions and messages shown as text: no HTML, no table breaks.
fn escape(s: &str) -> String {
    s.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests;
