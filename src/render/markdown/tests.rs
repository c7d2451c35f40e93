use super::*;
use kup_engine::plan::Step;
use serde_json::json;

fn cluster(i: usize, warnings: &[&str]) -> ClusterPlan {
    serde_json::from_value(json!({
        "address": format!("cluster.prod-{i:04}"),
        "name": format!("prod-{i:04}"),
        "provider": "eks",
        "from": "1.28",
        "to": "1.31",
        "changes": [],
        "timeline": [
            { "control_plane": "1.28", "node_groups": { "general": "1.28" } },
            { "after_step": format!("prod-{i:04}/control_plane/1.29"), "control_plane": "1.29", "node_groups": { "general": "1.28" } }
        ],
        "warnings": warnings,
        "blocked_drains": [{ "node_group": "general", "pdb": "shop/web", "reason": "allows no disruption (minAvailable 3 of 3 pods)", "pods": ["shop/web-1 on n1"], "blocking": true }]
    }))
    .unwrap()
}

fn steps_of(i: usize, n: usize) -> Vec<Step> {
    (0..n)
        .map(|k| Step {
            id: format!("prod-{i:04}/control_plane/1.{}", 29 + k),
            cluster: format!("cluster.prod-{i:04}"),
            address: format!("cluster.prod-{i:04}"),
            action: Action::UpgradeControlPlane {
                from: format!("1.{}", 28 + k).parse().unwrap(),
                to: format!("1.{}", 29 + k).parse().unwrap(),
            },
            depends_on: Vec::new(),
            precondition: Vec::new(),
            postcondition: Vec::new(),
            estimated_secs: 600,
            reason: String::new(),
        })
        .collect()
}

fn fleet(n: usize) -> Plan {
    let clusters = (0..n)
        .map(|i| cluster(i, &["support for 1.28 ends 2026-11-26 | soon <b>"]))
        .collect();
    let steps = (0..n).flat_map(|i| steps_of(i, 3)).collect();
    Plan::new(clusters, steps)
}

#[test]
fn a_small_plan_has_every_cluster_with_its_steps_and_warnings_folded() {
    let plan = fleet(2);
    let md = render_markdown(&plan, "kup show plan.kupplan");
    assert!(
        md.starts_with(&format!("### kup plan `{}`\n", plan.id)),
        "{md}"
    );
    assert!(
        md.contains("**Plan:** 2 clusters to change: 6 control-plane upgrades; 6 steps"),
        "{md}"
    );
    assert!(
        md.contains("| `cluster.prod-0000` | eks `prod-0000` | 1.28 → 1.31 | 3 | 30m | 2 |"),
        "{md}"
    );
    assert!(
        md.contains("#### `cluster.prod-0001` (eks cluster `prod-0001`): 1.28 → 1.31"),
        "{md}"
    );
    assert!(md.contains("<details><summary>3 steps</summary>"), "{md}");
    assert!(
        md.contains("1. upgrade control plane 1.28 → 1.29 (~10m)"),
        "{md}"
    );
    assert!(
        md.contains("<details><summary>⚠️ 2 warnings</summary>"),
        "{md}"
    );
    assert!(
        md.contains("- **blocked:** PodDisruptionBudget `shop/web`"),
        "{md}"
    );
    // A message cannot open HTML or break a table.
    assert!(md.contains("ends 2026-11-26 \\| soon &lt;b&gt;"), "{md}");
    assert!(!md.contains("Truncated"), "{md}");
    assert_eq!(
        md,
        render_markdown(&plan, "kup show plan.kupplan"),
        "reproducible"
    );
}

#[test]
fn a_thousand_cluster_plan_stays_under_the_comment_limit_and_says_where_the_rest_is() {
    let plan = fleet(1000);
    let md = render_markdown(&plan, "kup show plan.kupplan");
    assert!(
        md.chars().count() <= GITHUB_COMMENT_LIMIT,
        "{} chars",
        md.chars().count()
    );
    assert!(
        md.contains("**Plan:** 1000 clusters to change"),
        "the totals always show"
    );
    assert!(
        md.contains("> **Truncated to fit a comment:**")
            && md.contains("of 1000 changed clusters")
            && md.contains("`kup show plan.kupplan`"),
        "{}",
        &md[md.len() - 400..]
    );
    // It uses the room it has: more than half the limit.
    assert!(md.len() > GITHUB_COMMENT_LIMIT / 2, "{} bytes", md.len());
}

#[test]
fn a_tight_limit_keeps_the_table_and_drops_details_first() {
    let plan = fleet(20);
    let full = render_markdown(&plan, "kup show p");
    let table_end = full.find("#### ").unwrap();
    let md = render_markdown_within(&plan, "kup show p", table_end + RESERVE + 200);
    assert!(md.contains("| `cluster.prod-0019` |"), "all rows fit: {md}");
    assert!(
        md.contains("20 of 20 changed clusters in the table, 0 with their steps"),
        "{md}"
    );
}

#[test]
fn no_changes_is_one_line() {
    let plan = Plan::new(vec![cluster(0, &[])], Vec::new());
    let md = render_markdown(&plan, "p");
    assert!(
        md.contains("**No changes.** 1 cluster checked: all match the configuration."),
        "{md}"
    );
    assert!(
        md.contains("Warnings about 1 cluster; `kup check` lists them."),
        "{md}"
    );
}
