//! The plan's step graph in Graphviz DOT, like `terraform graph`: one box per step, grouped
//! by cluster, an arrow from each step to the steps that wait for it. Reproducible: steps
//! in plan order, edges in dependency order.

use std::fmt::Write as _;

use kup_engine::plan::{Action, Plan};

pub fn render_dot(plan: &Plan) -> String {
    let mut s = String::new();
    s.push_str("digraph kup {\n");
    s.push_str("  rankdir = \"LR\";\n");
    s.push_str("  compound = \"true\";\n");
    s.push_str(
        "  node [shape = \"box\", style = \"rounded\", fontname = \"Helvetica\", fontsize = 10];\n",
    );
    let _ = writeln!(s, "  label = {};", quote(&format!("kup plan {}", plan.id)));
    for (i, c) in plan.clusters.iter().enumerate() {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .filter(|st| st.cluster == c.address)
            .collect();
        if steps.is_empty() {
            continue;
        }
        // Graphviz draws a subgraph as a box only when its name starts with "cluster".
        let _ = writeln!(s, "  subgraph \"cluster_{i}\" {{");
        let _ = writeln!(
            s,
            "    label = {};",
            quote(&format!(
                "{} ({} {}: {} → {})",
                c.address, c.provider, c.name, c.from, c.to
            ))
        );
        for st in steps {
            let _ = writeln!(
                s,
                "    {} [label = {}];",
                quote(&st.id),
                quote(&st.action.describe())
            );
        }
        s.push_str("  }\n");
    }
    for st in plan
        .steps
        .iter()
        .filter(|st| !plan.clusters.iter().any(|c| c.address == st.cluster))
    {
        let shape = if matches!(st.action, Action::WaveGate { .. }) {
            "hexagon"
        } else {
            "box"
        };
        let _ = writeln!(
            s,
            "  {} [shape = \"{shape}\", label = {}];",
            quote(&st.id),
            quote(&st.action.describe())
        );
    }
    for st in &plan.steps {
        for d in &st.depends_on {
            let _ = writeln!(s, "  {} -> {};", quote(d), quote(&st.id));
        }
    }
    s.push_str("}\n");
    s
}

/// A DOT double-quoted string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(ch),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kup_engine::plan::Step;

    fn step(id: &str, cluster: &str, deps: &[&str]) -> Step {
        Step {
            id: id.into(),
            cluster: cluster.into(),
            address: cluster.into(),
            action: Action::UpgradeControlPlane {
                from: "1.28".parse().unwrap(),
                to: "1.29".parse().unwrap(),
            },
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            precondition: Vec::new(),
            postcondition: Vec::new(),
            estimated_secs: 600,
            reason: String::new(),
        }
    }

    #[test]
    fn steps_are_boxes_in_their_cluster_and_dependencies_are_edges() {
        let cluster: kup_engine::plan::ClusterPlan = serde_json::from_value(serde_json::json!({
            "address": "cluster.prod", "name": "prod \"eu\"", "provider": "eks",
            "from": "1.28", "to": "1.30", "changes": [], "timeline": []
        }))
        .unwrap();
        let plan = Plan::new(
            vec![cluster],
            vec![
                step("prod/control_plane/1.29", "cluster.prod", &[]),
                step(
                    "prod/control_plane/1.30",
                    "cluster.prod",
                    &["prod/control_plane/1.29"],
                ),
            ],
        );
        let dot = render_dot(&plan);
        assert!(dot.starts_with("digraph kup {\n"), "{dot}");
        assert!(dot.contains("subgraph \"cluster_0\" {\n    label = \"cluster.prod (eks prod \\\"eu\\\": 1.28 → 1.30)\";"), "{dot}");
        assert!(
            dot.contains(
                "    \"prod/control_plane/1.29\" [label = \"upgrade control plane 1.28 → 1.29\"];"
            ),
            "{dot}"
        );
        assert!(
            dot.contains("  \"prod/control_plane/1.29\" -> \"prod/control_plane/1.30\";"),
            "{dot}"
        );
        assert!(dot.ends_with("}\n"));
        // Balanced braces: Graphviz would refuse anything else.
        assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    }
}
