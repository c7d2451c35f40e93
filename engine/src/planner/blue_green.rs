//! Blue/green rollouts: one configured node group becomes six steps.

use super::*;

impl Walk<'_> {
    /// Blue/green: create the green group at `to`, wait for its nodes, cordon and drain the
    /// blue one, soak, delete blue. Each phase has its own postcondition, so an
    /// interrupted apply resumes at the right one.
    pub(super) fn blue_green(
        &mut self,
        name: &str,
        from: Minor,
        to: Minor,
        depends_on: Vec<String>,
        reason: &str,
    ) -> String {
        let ng = self.spec.node_group(name).expect("managed node group");
        let Strategy::BlueGreen {
            max_unavailable,
            soak,
            batch_soak,
            ..
        } = ng.strategy.clone()
        else {
            unreachable!("called for blue/green groups")
        };
        let drain = ng.drain.clone();
        let blue = self.live_names[name].clone();
        let green = green_name(name, to, self.policy.provider.compact_group_names);
        let size = self
            .actual
            .node_group(&blue)
            .map_or(1, |n| n.desired_size.max(1));
        let batch = max_unavailable.nodes_of(size).max(1);
        let prefix = format!("{}/node_group/{name}/{to}", self.label());
        let address = format!("{}.node_group.{name}", self.address());
        let est = &self.policy.provider;
        // (phase, action, precondition, postcondition, estimate in seconds, why)
        type Phase = (
            &'static str,
            Action,
            Vec<Condition>,
            Vec<Condition>,
            u64,
            String,
        );
        let phases: Vec<Phase> = vec![
            (
                "create",
                Action::CreateNodeGroup {
                    node_group: green.clone(),
                    clone_of: blue.clone(),
                    version: Version::new(to.major, to.minor, None),
                },
                vec![
                    Condition::NodeGroupExists {
                        node_group: blue.clone(),
                    },
                    Condition::ControlPlaneAtLeast { minor: to },
                ],
                vec![Condition::NodeGroupExists {
                    node_group: green.clone(),
                }],
                est.node_batch_estimate.as_secs(),
                format!(
                    "{reason}; blue/green: the new group {green} replaces {blue} (from {from})"
                ),
            ),
            (
                "ready",
                Action::WaitNodesReady {
                    node_group: green.clone(),
                    count: size,
                    minor: to,
                },
                vec![Condition::NodeGroupExists {
                    node_group: green.clone(),
                }],
                vec![Condition::NodesReady {
                    node_group: green.clone(),
                    count: size,
                    minor: to,
                }],
                60,
                format!("every green node must be Ready at {to} before any pod moves"),
            ),
            (
                "cordon",
                Action::CordonNodeGroup {
                    node_group: blue.clone(),
                    uncordon: false,
                },
                vec![Condition::NodesReady {
                    node_group: green.clone(),
                    count: size,
                    minor: to,
                }],
                vec![Condition::NodeGroupCordoned {
                    node_group: blue.clone(),
                    cordoned: true,
                }],
                10,
                "no new pod may land on the blue group".into(),
            ),
            (
                "drain",
                Action::DrainNodeGroup {
                    node_group: blue.clone(),
                    batch_size: batch,
                    batch_soak_secs: batch_soak.as_secs(),
                    drain,
                },
                vec![],
                vec![Condition::NodeGroupDrained {
                    node_group: blue.clone(),
                }],
                size.div_ceil(batch) as u64 * (120 + batch_soak.as_secs()),
                format!("{batch} blue node(s) at a time, honouring PodDisruptionBudgets"),
            ),
            (
                "soak",
                Action::Soak {
                    node_group: green.clone(),
                    secs: soak.as_secs(),
                },
                vec![],
                vec![Condition::JournalOnly],
                soak.as_secs(),
                "watch the workloads on green before the blue group is gone for good".into(),
            ),
            (
                "delete",
                Action::DeleteNodeGroup {
                    node_group: blue.clone(),
                },
                // Never delete a group that still runs pods not owned by DaemonSets.
                vec![Condition::NodeGroupDrained {
                    node_group: blue.clone(),
                }],
                vec![Condition::NodeGroupAbsent {
                    node_group: blue.clone(),
                }],
                est.node_batch_estimate.as_secs(),
                "after this, rollback to the blue group is no longer possible".into(),
            ),
        ];
        let mut prev = depends_on;
        let mut last = String::new();
        for (phase, action, pre, post, secs, why) in phases {
            let id = format!("{prefix}/{phase}");
            self.push(Step {
                id: id.clone(),
                cluster: self.address(),
                address: address.clone(),
                action,
                depends_on: prev,
                precondition: pre,
                postcondition: post,
                estimated_secs: secs,
                reason: why,
            });
            prev = vec![id.clone()];
            last = id;
        }
        self.live_names.insert(name.to_string(), green);
        last
    }
}
