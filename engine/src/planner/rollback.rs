//! Undoing an unfinished blue/green replacement: while both colours exist, the old (blue)
//! group is uncordoned, and the new (green) one cordoned, drained and deleted. Once the
//! blue group is gone there is nothing to go back to, and the plan says so.

use crate::model::{ActualCluster, ActualNodeGroup, ClusterSpec, Strategy};
use crate::plan::{Action, ClusterPlan, Condition, Plan, Step, TimelinePoint};

use super::{is_colour_of, PlanError};

/// The pair (blue, green) serving configured group `base`, when a replacement is half done.
fn colours<'a>(
    base: &str,
    actual: &'a ActualCluster,
) -> Option<(&'a ActualNodeGroup, &'a ActualNodeGroup)> {
    let mut groups: Vec<&ActualNodeGroup> = actual
        .node_groups
        .iter()
        .filter(|n| n.name == base || is_colour_of(&n.name, base))
        .collect();
    if groups.len() != 2 {
        return None;
    }
    // Green is the newer one; on a tie, the one created later by name order.
    groups.sort_by(|a, b| a.version.cmp(&b.version).then(a.name.cmp(&b.name)));
    Some((groups[0], groups[1]))
}

/// Rollback steps for every blue/green group of `spec` caught half-way.
pub fn rollback_cluster(
    spec: &ClusterSpec,
    actual: &ActualCluster,
) -> Result<(ClusterPlan, Vec<Step>), PlanError> {
    let mut steps: Vec<Step> = Vec::new();
    let mut last: Option<String> = None;
    // A provider-native blue/green upgrade under way: the provider itself puts the old
    // nodes back (GKE nodePools.rollback, respecting PodDisruptionBudgets).
    for ng in &spec.node_groups {
        let Some(live) = actual.node_group(&ng.name) else {
            continue;
        };
        let Some(phase) = &live.upgrade_phase else {
            continue;
        };
        let id = format!("{}/node_group/{}/rollback", spec.label, ng.name);
        steps.push(Step {
            id: id.clone(),
            cluster: spec.address(),
            address: format!("{}.node_group.{}", spec.address(), ng.name),
            action: Action::RollbackNodeGroupUpgrade {
                node_group: live.name.clone(),
            },
            depends_on: last.take().into_iter().collect(),
            precondition: vec![],
            postcondition: vec![Condition::NodeGroupNotUpgrading {
                node_group: live.name.clone(),
            }],
            estimated_secs: 300,
            reason: format!(
                "the provider's blue/green upgrade of {} is in phase {phase}; its old nodes serve again",
                live.name
            ),
        });
        last = Some(id);
    }
    for ng in spec
        .node_groups
        .iter()
        .filter(|n| matches!(n.strategy, Strategy::BlueGreen { .. }))
    {
        let Some((blue, green)) = colours(&ng.name, actual) else {
            continue;
        };
        let prefix = format!("{}/node_group/{}/rollback", spec.label, ng.name);
        let address = format!("{}.node_group.{}", spec.address(), ng.name);
        let phases = vec![
            (
                "uncordon-blue",
                Action::CordonNodeGroup {
                    node_group: blue.name.clone(),
                    uncordon: true,
                },
                vec![Condition::NodeGroupCordoned {
                    node_group: blue.name.clone(),
                    cordoned: false,
                }],
                format!("{} serves again", blue.name),
            ),
            (
                "cordon-green",
                Action::CordonNodeGroup {
                    node_group: green.name.clone(),
                    uncordon: false,
                },
                vec![Condition::NodeGroupCordoned {
                    node_group: green.name.clone(),
                    cordoned: true,
                }],
                format!("no new pod may land on {}", green.name),
            ),
            (
                "drain-green",
                Action::DrainNodeGroup {
                    node_group: green.name.clone(),
                    batch_size: ng
                        .strategy
                        .max_unavailable()
                        .nodes_of(green.desired_size)
                        .max(1),
                    batch_soak_secs: 0,
                    drain: ng.drain.clone(),
                },
                vec![Condition::NodeGroupDrained {
                    node_group: green.name.clone(),
                }],
                format!("pods move back to {}", blue.name),
            ),
            (
                "delete-green",
                Action::DeleteNodeGroup {
                    node_group: green.name.clone(),
                },
                vec![Condition::NodeGroupAbsent {
                    node_group: green.name.clone(),
                }],
                format!(
                    "{} is removed; {} stays the live group",
                    green.name, blue.name
                ),
            ),
        ];
        for (phase, action, post, why) in phases {
            let id = format!("{prefix}/{phase}");
            let pre = if phase == "delete-green" {
                vec![Condition::NodeGroupDrained {
                    node_group: green.name.clone(),
                }]
            } else {
                vec![]
            };
            steps.push(Step {
                id: id.clone(),
                cluster: spec.address(),
                address: address.clone(),
                action,
                depends_on: last.take().into_iter().collect(),
                precondition: pre,
                postcondition: post,
                estimated_secs: 120,
                reason: why,
            });
            last = Some(id);
        }
    }
    let plan = ClusterPlan {
        address: spec.address(),
        name: actual.name.clone(),
        provider: spec.provider.clone(),
        from: actual.version.clone(),
        to: actual.version.clone(),
        changes: vec![],
        timeline: vec![TimelinePoint {
            after_step: None,
            control_plane: actual.version.minor(),
            node_groups: Default::default(),
        }],
        unmanaged_node_groups: vec![],
        warnings: vec![],
        findings: vec![],
        nodes: Default::default(),
        blocked_drains: vec![],
        capacity: vec![],
        pinned_pods: vec![],
    };
    Ok((plan, steps))
}

/// A rollback plan for the whole configuration. Clusters with nothing half done get no
/// steps; a blue/green group whose blue side is already deleted cannot be rolled back.
pub fn rollback(
    desired: &crate::model::Desired,
    actual: &std::collections::BTreeMap<String, ActualCluster>,
    state_colours: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<Plan, Vec<PlanError>> {
    let mut clusters = Vec::new();
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for spec in &desired.clusters {
        let Some(a) = actual.get(&spec.label) else {
            continue;
        };
        for ng in spec
            .node_groups
            .iter()
            .filter(|n| matches!(n.strategy, Strategy::BlueGreen { .. }))
        {
            // Only one colour exists, and it is not the one that served before: the blue
            // group is gone, so there is nothing to go back to.
            if colours(&ng.name, a).is_none() {
                if let (Some(previous), Ok(Some(live))) = (
                    state_colours(&spec.address(), &ng.name),
                    super::live_group(ng, a),
                ) {
                    if previous != live.name {
                        errors.push(PlanError {
                            address: format!("{}.node_group.{}", spec.address(), ng.name),
                            loc: ng.origin.clone(),
                            message: format!(
                                "cannot roll back: the previous group {previous} was already deleted; {} serves now",
                                live.name
                            ),
                            hint: Some("rollback is possible only until the blue group is deleted (after the soak)".into()),
                        });
                    }
                }
            }
        }
        match rollback_cluster(spec, a) {
            Ok((cp, mut s)) if !s.is_empty() => {
                clusters.push(cp);
                steps.append(&mut s);
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(Plan::new(clusters, steps))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActualNodeGroup, DrainSpec, NodeGroupSpec, Unavailable};
    use std::time::Duration;

    fn ang(name: &str, v: &str) -> ActualNodeGroup {
        ActualNodeGroup {
            control_plane: false,
            name: name.into(),
            version: v.parse().unwrap(),
            release_version: None,
            status: "ACTIVE".into(),
            desired_size: 3,
            min_size: 1,
            max_size: 6,
            max_unavailable: Some(Unavailable::Count(1)),
            health_issues: vec![],
            labels: Default::default(),
            blue_green: None,
            upgrade_phase: None,
            drain_limits: None,
            max_surge: None,
            node_soak: None,
        }
    }

    fn spec() -> ClusterSpec {
        ClusterSpec {
            postflight: Default::default(),
            hooks: Vec::new(),
            preflight: Default::default(),
            kubeadm: None,
            channel: None,
            namespace: None,
            upgrade_image: None,
            keep_plans: false,
            label: "prod".into(),
            provider: "eks".into(),
            name: "prod-eu".into(),
            region: None,
            version: "1.29".parse().unwrap(),
            version_alias: None,
            addons: vec![],
            node_groups: vec![NodeGroupSpec {
                hosts: Vec::new(),
                node_selector: None,
                tolerations: Vec::new(),
                window: None,
                batch_soak: None,
                timeout: None,
                name: "general".into(),
                version: "1.29".parse().unwrap(),
                follows_cluster: false,
                strategy: Strategy::BlueGreen {
                    max_unavailable: Unavailable::Count(1),
                    soak: Duration::from_secs(60),
                    batch_soak: Duration::ZERO,
                    native: None,
                    complete_when_healthy_for: None,
                },
                drain: DrainSpec::default(),
                origin: None,
                version_origin: None,
                node_soak: None,
            }],
            kubeconfig: None,
            context: None,
            parallel_node_groups: 1,
            origin: None,
            version_origin: None,
        }
    }

    fn actual(groups: Vec<ActualNodeGroup>) -> ActualCluster {
        ActualCluster {
            scan: None,
            insights: Vec::new(),
            upgrade_protection: None,
            support: Vec::new(),
            api_uses: Vec::new(),
            upgrade_plans: Vec::new(),
            name: "prod-eu".into(),
            region: None,
            version: "1.29".parse().unwrap(),
            platform_version: None,
            status: "ACTIVE".into(),
            offered_versions: vec![],
            node_groups: groups,
            addons: vec![],
            in_flight: vec![],
            kube: None,
            auto_upgrade: None,
            default_version: None,
            maintenance: None,
        }
    }

    #[test]
    fn half_done_replacement_rolls_back_to_blue() {
        let (_, steps) = rollback_cluster(
            &spec(),
            &actual(vec![ang("general", "1.28"), ang("general-1-29", "1.29")]),
        )
        .unwrap();
        let actions: Vec<String> = steps.iter().map(|s| s.action.describe()).collect();
        assert_eq!(
            actions,
            [
                "uncordon every node of general",
                "cordon every node of general-1-29",
                "drain general-1-29, 1 node(s) at a time",
                "delete node group general-1-29",
            ]
        );
        assert_eq!(
            steps[3].precondition,
            vec![Condition::NodeGroupDrained {
                node_group: "general-1-29".into()
            }]
        );
    }

    #[test]
    fn nothing_to_roll_back_when_one_colour_and_after_blue_is_deleted_it_is_impossible() {
        let desired = crate::model::Desired {
            rollouts: Vec::new(),
            providers: vec![],
            clusters: vec![spec()],
        };
        let one: std::collections::BTreeMap<_, _> =
            [("prod".to_string(), actual(vec![ang("general", "1.28")]))].into();
        assert!(rollback(&desired, &one, &|_, _| Some("general".into()))
            .unwrap()
            .is_empty());
        let after: std::collections::BTreeMap<_, _> = [(
            "prod".to_string(),
            actual(vec![ang("general-1-29", "1.29")]),
        )]
        .into();
        let e = rollback(&desired, &after, &|_, _| Some("general".into())).unwrap_err();
        assert!(e[0].message.contains("already deleted"), "{}", e[0]);
    }
}
