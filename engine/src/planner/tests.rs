use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::model::{
    ActualAddon, ActualNodeGroup, AddonCompatibility, DrainSpec, NodeGroupSpec, Unavailable,
};

pub(crate) fn v(s: &str) -> Version {
    s.parse().unwrap()
}

pub(crate) fn m(minor: u32) -> Minor {
    Minor::new(1, minor)
}

fn offered(from: u32, to: u32) -> Vec<Version> {
    (from..=to)
        .map(|x| v(&format!("1.{x}.{}", x % 7 + 2)))
        .collect()
}

pub(crate) fn ng_spec(name: &str, version: &str) -> NodeGroupSpec {
    NodeGroupSpec {
        hosts: Vec::new(),
        node_selector: None,
        tolerations: Vec::new(),
        window: None,
        batch_soak: None,
        timeout: None,
        name: name.into(),
        version: v(version),
        follows_cluster: false,
        strategy: Strategy::Rolling {
            max_unavailable: Unavailable::Count(1),
            max_surge: None,
        },
        drain: DrainSpec::default(),
        origin: None,
        version_origin: None,
        node_soak: None,
    }
}

pub(crate) fn cluster_spec(version: &str, ngs: Vec<NodeGroupSpec>) -> ClusterSpec {
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
        version: v(version),
        version_alias: None,
        addons: vec![],
        node_groups: ngs,
        kubeconfig: None,
        context: None,
        parallel_node_groups: 1,
        origin: None,
        version_origin: None,
    }
}

pub(crate) fn actual_ng(name: &str, version: &str, size: u32) -> ActualNodeGroup {
    ActualNodeGroup {
        control_plane: false,
        name: name.into(),
        version: v(version),
        release_version: None,
        status: "ACTIVE".into(),
        desired_size: size,
        min_size: 1,
        max_size: size * 2,
        max_unavailable: Some(Unavailable::Count(1)),
        health_issues: vec![],
        labels: BTreeMap::new(),
        blue_green: None,
        upgrade_phase: None,
        drain_limits: None,
        max_surge: None,
        node_soak: None,
    }
}

pub(crate) fn actual(version: &str, ngs: Vec<ActualNodeGroup>) -> ActualCluster {
    ActualCluster {
        scan: None,
        insights: Vec::new(),
        upgrade_protection: None,
        support: Vec::new(),
        api_uses: Vec::new(),
        upgrade_plans: Vec::new(),
        name: "prod-eu".into(),
        region: Some("eu-west-1".into()),
        version: v(version),
        platform_version: None,
        status: "ACTIVE".into(),
        offered_versions: offered(23, 34),
        node_groups: ngs,
        addons: vec![],
        in_flight: vec![],
        kube: None,
        auto_upgrade: None,
        default_version: None,
        maintenance: None,
    }
}

pub(crate) fn eks_policy() -> ProviderPolicy {
    ProviderPolicy {
        control_plane_minor_only: true,
        addons_track_control_plane: true,
        supports_blue_green: true,
        ..ProviderPolicy::default()
    }
}

pub(crate) fn run(
    spec: ClusterSpec,
    act: ActualCluster,
    policy: ProviderPolicy,
) -> Result<Plan, Vec<PlanError>> {
    run_opts(spec, act, policy, PlanOptions::default())
}

pub(crate) fn run_opts(
    spec: ClusterSpec,
    act: ActualCluster,
    policy: ProviderPolicy,
    options: PlanOptions,
) -> Result<Plan, Vec<PlanError>> {
    let desired = Desired {
        rollouts: Vec::new(),
        providers: vec![],
        clusters: vec![spec],
    };
    let actual: BTreeMap<String, ActualCluster> = [("prod".to_string(), act)].into();
    let policies: BTreeMap<String, ProviderPolicy> = [("eks".to_string(), policy)].into();
    plan(&PlanInput {
        desired: &desired,
        actual: &actual,
        policies: &policies,
        options: &options,
    })
}

fn step_ids(p: &Plan) -> Vec<&str> {
    p.steps.iter().map(|s| s.id.as_str()).collect()
}

fn rollouts(p: &Plan) -> usize {
    p.steps
        .iter()
        .filter(|s| matches!(s.action, Action::UpgradeNodeGroup { .. }))
        .count()
}

#[test]
fn issue_example_two_rollouts_not_five() {
    let p = run(
        cluster_spec("1.31", vec![ng_spec("general", "1.31")]),
        actual("1.26", vec![actual_ng("general", "1.26", 3)]),
        eks_policy(),
    )
    .unwrap();
    assert_eq!(
        step_ids(&p),
        [
            "prod/control_plane/1.27",
            "prod/control_plane/1.28",
            "prod/control_plane/1.29",
            "prod/node_group/general/1.29",
            "prod/control_plane/1.30",
            "prod/control_plane/1.31",
            "prod/node_group/general/1.31",
        ]
    );
    assert_eq!(rollouts(&p), 2);
    // Every step waits for the one before: one cluster is a chain here.
    for w in p.steps.windows(2) {
        assert_eq!(w[1].depends_on, vec![w[0].id.clone()], "{}", w[1].id);
    }
    assert!(p.steps[3].reason.contains("trail"), "{}", p.steps[3].reason);
}

#[test]
fn every_timeline_point_is_legal() {
    let policy = SkewPolicy::for_provider(eks_policy());
    for (from, to) in [(23, 34), (24, 30), (26, 31), (29, 33), (30, 31)] {
        let p = run(
            cluster_spec(&format!("1.{to}"), vec![ng_spec("a", &format!("1.{to}"))]),
            actual(
                &format!("1.{from}"),
                vec![actual_ng("a", &format!("1.{from}"), 2)],
            ),
            eks_policy(),
        )
        .unwrap_or_else(|e| panic!("1.{from}→1.{to}: {e:?}"));
        let tl = &p.clusters[0].timeline;
        assert_eq!(tl.first().unwrap().control_plane, m(from));
        assert_eq!(tl.last().unwrap().control_plane, m(to));
        for w in tl.windows(2) {
            let d = w[1].control_plane.distance_from(w[0].control_plane);
            assert!(d == 0 || d == 1, "hop of {d} minors");
        }
        for point in tl {
            for (name, k) in &point.node_groups {
                policy
                    .kubelet_ok(point.control_plane, *k)
                    .unwrap_or_else(|e| {
                        panic!("1.{from}→1.{to} at {:?}: {name}: {e}", point.after_step)
                    });
            }
        }
    }
}

#[test]
fn cluster_api_reference_case_1_29_to_1_33() {
    // CAPI's "efficient upgrade": CP ×4, workers at 1.32 and 1.33 only.
    let p = run(
        cluster_spec("1.33", vec![ng_spec("w", "1.33")]),
        actual("1.29", vec![actual_ng("w", "1.29", 3)]),
        eks_policy(),
    )
    .unwrap();
    let worker_targets: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::UpgradeNodeGroup { to, .. } => Some(to.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(worker_targets, ["1.32", "1.33"]);
}

#[test]
fn kubelets_older_than_1_25_may_trail_by_two_only() {
    let p = run(
        cluster_spec("1.26", vec![ng_spec("a", "1.26")]),
        actual("1.22", vec![actual_ng("a", "1.22", 2)]),
        eks_policy(),
    )
    .unwrap();
    assert_eq!(
        step_ids(&p),
        [
            "prod/control_plane/1.23",
            "prod/control_plane/1.24",
            "prod/node_group/a/1.24",
            "prod/control_plane/1.25",
            "prod/control_plane/1.26",
            "prod/node_group/a/1.26",
        ]
    );
}

#[test]
fn strict_provider_rule_rolls_before_every_hop() {
    let policy = ProviderPolicy {
        nodes_must_match_before_control_plane_upgrade: true,
        ..eks_policy()
    };
    let p = run(
        cluster_spec("1.30", vec![ng_spec("a", "1.30")]),
        actual("1.28", vec![actual_ng("a", "1.28", 2)]),
        policy,
    )
    .unwrap();
    assert_eq!(
        step_ids(&p),
        [
            "prod/control_plane/1.29",
            "prod/node_group/a/1.29",
            "prod/control_plane/1.30",
            "prod/node_group/a/1.30",
        ]
    );
}

#[test]
fn nothing_to_do_is_an_empty_plan() {
    let p = run(
        cluster_spec("1.31", vec![ng_spec("a", "1.31")]),
        actual("1.31", vec![actual_ng("a", "1.31", 2)]),
        eks_policy(),
    )
    .unwrap();
    assert!(p.is_empty(), "{:?}", step_ids(&p));
    assert!(p.clusters[0].changes.is_empty());
}

#[test]
fn minor_alias_resolves_to_newest_offered_patch() {
    let mut act = actual("1.30", vec![]);
    act.offered_versions = vec![v("1.30.2"), v("1.31.1"), v("1.31.9"), v("1.31.4")];
    let p = run(cluster_spec("1.31", vec![]), act, ProviderPolicy::default()).unwrap();
    match &p.steps[0].action {
        Action::UpgradeControlPlane { to, .. } => assert_eq!(to.to_string(), "1.31.9"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn exact_patch_resolves_to_the_newest_build_offered() {
    let mut act = actual("1.30", vec![]);
    act.offered_versions = vec![
        v("1.31.2-gke.999"),
        v("1.31.2-gke.1014001"),
        v("1.31.3-gke.5"),
    ];
    let p = run(
        cluster_spec("1.31.2", vec![]),
        act,
        ProviderPolicy::default(),
    )
    .unwrap();
    match &p.steps[0].action {
        Action::UpgradeControlPlane { to, .. } => assert_eq!(to.to_string(), "1.31.2-gke.1014001"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn downgrade_is_refused_with_reason() {
    let e = run(
        cluster_spec("1.29", vec![]),
        actual("1.30", vec![]),
        eks_policy(),
    )
    .unwrap_err();
    assert!(
        e[0].message.contains("does not support downgrades"),
        "{}",
        e[0]
    );
    assert_eq!(e[0].address, "cluster.prod");
    let e = run(
        cluster_spec("1.30", vec![ng_spec("a", "1.28")]),
        actual("1.30", vec![actual_ng("a", "1.29", 2)]),
        eks_policy(),
    )
    .unwrap_err();
    assert!(
        e[0].message.contains("does not support downgrades"),
        "{}",
        e[0]
    );
    assert_eq!(e[0].address, "cluster.prod.node_group.a");
}

#[test]
fn unoffered_target_lists_offered_versions() {
    let mut act = actual("1.30", vec![]);
    act.offered_versions = vec![v("1.30.2"), v("1.31.4")];
    let e = run(cluster_spec("1.35", vec![]), act.clone(), eks_policy()).unwrap_err();
    assert!(
        e[0].message.contains("does not offer Kubernetes 1.35"),
        "{}",
        e[0]
    );
    assert!(e[0].hint.as_deref().unwrap().contains("1.30.2, 1.31.4"));
    // An exact patch the provider does not have.
    let e = run(
        cluster_spec("1.31.2", vec![]),
        act,
        ProviderPolicy::default(),
    )
    .unwrap_err();
    assert!(e[0].message.contains("1.31.2"), "{}", e[0]);
}

#[test]
fn node_group_newer_than_control_plane_is_refused() {
    let e = run(
        cluster_spec("1.30", vec![ng_spec("a", "1.31")]),
        actual("1.29", vec![actual_ng("a", "1.29", 2)]),
        eks_policy(),
    )
    .unwrap_err();
    assert!(
        e[0].message.contains("newer than the control plane"),
        "{}",
        e[0]
    );
}

#[test]
fn end_state_must_be_inside_skew() {
    let e = run(
        cluster_spec("1.31", vec![ng_spec("a", "1.27")]),
        actual("1.27", vec![actual_ng("a", "1.27", 2)]),
        eks_policy(),
    )
    .unwrap_err();
    assert!(e[0].message.contains("skew"), "{}", e[0]);
    assert!(
        e[0].hint.as_deref().unwrap().contains("1.28"),
        "{:?}",
        e[0].hint
    );
}

#[test]
fn node_group_left_behind_on_purpose_is_rolled_only_when_forced() {
    // Target 1.28 for nodes while the CP goes to 1.31: one rollout, to 1.28 exactly.
    let p = run(
        cluster_spec("1.31", vec![ng_spec("a", "1.28")]),
        actual("1.27", vec![actual_ng("a", "1.27", 2)]),
        eks_policy(),
    )
    .unwrap();
    assert_eq!(rollouts(&p), 1);
    assert!(step_ids(&p).contains(&"prod/node_group/a/1.28"));
}

#[test]
fn unmanaged_node_group_blocks_with_hint() {
    let e = run(
        cluster_spec("1.31", vec![]),
        actual("1.28", vec![actual_ng("legacy", "1.27", 2)]),
        eks_policy(),
    )
    .unwrap_err();
    assert!(
        e[0].message.contains("not in the configuration"),
        "{}",
        e[0]
    );
    assert!(e[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("node_group \"legacy\""));
}

#[test]
fn unmanaged_node_groups_are_listed_when_harmless() {
    let p = run(
        cluster_spec("1.29", vec![]),
        actual("1.28", vec![actual_ng("legacy", "1.28", 2)]),
        eks_policy(),
    )
    .unwrap();
    assert_eq!(p.clusters[0].unmanaged_node_groups, ["legacy"]);
}

#[test]
fn max_unavailable_change_is_planned_before_rollouts() {
    let mut spec = cluster_spec("1.29", vec![ng_spec("a", "1.29")]);
    spec.node_groups[0].strategy = Strategy::Rolling {
        max_unavailable: Unavailable::Percent(25),
        max_surge: None,
    };
    let p = run(
        spec,
        actual("1.28", vec![actual_ng("a", "1.28", 8)]),
        eks_policy(),
    )
    .unwrap();
    assert_eq!(
        step_ids(&p),
        [
            "prod/node_group/a/config",
            "prod/control_plane/1.29",
            "prod/node_group/a/1.29"
        ]
    );
    assert_eq!(p.steps[1].depends_on, ["prod/node_group/a/config"]);
    // 8 nodes at 25% = 2 per batch = 4 batches.
    assert_eq!(
        p.steps[2].estimated_secs,
        4 * eks_policy().node_batch_estimate.as_secs()
    );
    let change = &p.clusters[0]
        .changes
        .iter()
        .find(|c| c.attribute == "max_unavailable")
        .unwrap();
    assert_eq!((change.from.as_str(), change.to.as_str()), ("1", "25%"));
}

#[test]
fn parallel_node_groups_bounds_concurrent_rollouts() {
    let mut spec = cluster_spec(
        "1.29",
        vec![
            ng_spec("a", "1.29"),
            ng_spec("b", "1.29"),
            ng_spec("c", "1.29"),
        ],
    );
    spec.parallel_node_groups = 2;
    let act = actual(
        "1.28",
        vec![
            actual_ng("a", "1.28", 2),
            actual_ng("b", "1.28", 2),
            actual_ng("c", "1.28", 2),
        ],
    );
    let p = run(spec, act, eks_policy()).unwrap();
    let deps = |id: &str| p.step(id).unwrap().depends_on.clone();
    assert_eq!(deps("prod/node_group/a/1.29"), ["prod/control_plane/1.29"]);
    assert_eq!(deps("prod/node_group/b/1.29"), ["prod/control_plane/1.29"]);
    assert_eq!(
        deps("prod/node_group/c/1.29"),
        ["prod/control_plane/1.29", "prod/node_group/a/1.29"]
    );
}

pub(crate) fn addon(name: &str, version: &str, compat: &[(u32, &[&str], &str)]) -> ActualAddon {
    ActualAddon {
        name: name.into(),
        version: version.into(),
        status: "ACTIVE".into(),
        compatibility: compat
            .iter()
            .map(|(minor, versions, default)| {
                (
                    m(*minor),
                    AddonCompatibility {
                        versions: versions.iter().map(|s| s.to_string()).collect(),
                        default: Some(default.to_string()),
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn addons_follow_each_hop_when_incompatible() {
    let mut spec = cluster_spec("1.30", vec![]);
    spec.addons = vec![
        AddonSpec {
            name: "kube-proxy".into(),
            version: AddonVersionReq::Compatible,
            origin: None,
        },
        AddonSpec {
            name: "coredns".into(),
            version: AddonVersionReq::Latest,
            origin: None,
        },
    ];
    let mut act = actual("1.28", vec![]);
    act.addons = vec![
        addon(
            "coredns",
            "v1.10.1",
            &[
                (28, &["v1.10.1"], "v1.10.1"),
                (29, &["v1.11.1", "v1.10.1"], "v1.10.1"),
                (30, &["v1.11.3", "v1.11.1"], "v1.11.1"),
            ],
        ),
        addon(
            "kube-proxy",
            "v1.28.4",
            &[
                (28, &["v1.28.4"], "v1.28.4"),
                (29, &["v1.29.1"], "v1.29.1"),
                (30, &["v1.30.0"], "v1.30.0"),
            ],
        ),
    ];
    let p = run(spec, act, eks_policy()).unwrap();
    assert_eq!(
        step_ids(&p),
        [
            "prod/control_plane/1.29",
            "prod/addon/kube-proxy/1.29",
            "prod/control_plane/1.30",
            "prod/addon/kube-proxy/1.30",
            "prod/addon/coredns/1.30",
        ]
    );
    // The second hop waits for the add-on update of the first.
    assert!(p.steps[2]
        .depends_on
        .contains(&"prod/addon/kube-proxy/1.29".to_string()));
    match &p.steps[4].action {
        Action::UpdateAddon { to, .. } => assert_eq!(to, "v1.11.3", "latest = newest"),
        a => panic!("{a:?}"),
    }
}

#[test]
fn exact_addon_version_must_be_compatible() {
    let mut spec = cluster_spec("1.29", vec![]);
    spec.addons = vec![AddonSpec {
        name: "kube-proxy".into(),
        version: AddonVersionReq::Exact("v1.28.4".into()),
        origin: None,
    }];
    let mut act = actual("1.28", vec![]);
    act.addons = vec![addon(
        "kube-proxy",
        "v1.28.4",
        &[
            (28, &["v1.28.4"], "v1.28.4"),
            (29, &["v1.29.1", "v1.29.0"], "v1.29.1"),
        ],
    )];
    let e = run(spec, act, eks_policy()).unwrap_err();
    assert!(
        e[0].message
            .contains("v1.28.4 is not offered for Kubernetes 1.29"),
        "{}",
        e[0]
    );
    assert!(e[0].hint.as_deref().unwrap().contains("v1.29.1, v1.29.0"));
}

#[test]
fn plans_are_deterministic_and_ids_depend_on_content() {
    let mk = || {
        run(
            cluster_spec("1.31", vec![ng_spec("b", "1.31"), ng_spec("a", "1.31")]),
            actual(
                "1.27",
                vec![actual_ng("a", "1.27", 3), actual_ng("b", "1.27", 3)],
            ),
            eks_policy(),
        )
        .unwrap()
    };
    let one = serde_json::to_vec(&mk()).unwrap();
    let two = serde_json::to_vec(&mk()).unwrap();
    assert_eq!(one, two);
    let other = run(
        cluster_spec("1.30", vec![ng_spec("b", "1.30"), ng_spec("a", "1.30")]),
        actual(
            "1.27",
            vec![actual_ng("a", "1.27", 3), actual_ng("b", "1.27", 3)],
        ),
        eks_policy(),
    )
    .unwrap();
    assert_ne!(mk().id, other.id);
    assert_ne!(
        mk().idempotency_token("r", "x"),
        mk().idempotency_token("r", "y")
    );
    assert_ne!(
        mk().idempotency_token("r1", "x"),
        mk().idempotency_token("r2", "x")
    );
    assert_eq!(
        mk().idempotency_token("r", "x"),
        mk().idempotency_token("r", "x")
    );
}

#[test]
fn target_narrows_to_one_node_group() {
    let spec = cluster_spec("1.31", vec![ng_spec("a", "1.31"), ng_spec("b", "1.31")]);
    let act = actual(
        "1.30",
        vec![actual_ng("a", "1.28", 2), actual_ng("b", "1.28", 2)],
    );
    let p = run_opts(
        spec,
        act,
        eks_policy(),
        PlanOptions {
            targets: vec![Target::parse("cluster.prod.node_group.a").unwrap()],
            ..PlanOptions::default()
        },
    )
    .unwrap();
    assert_eq!(step_ids(&p), ["prod/node_group/a/1.30"]);
    assert!(Target::parse("cluster").is_err());
    assert!(Target::parse("cluster.x.nodegroup.y").is_err());
}

mod kube_side {
    use super::*;
    use crate::kube::{KubeNode, KubePdb, KubePod, KubeSnapshot, Resources};

    fn knode(name: &str, group: &str, kubelet: &str) -> KubeNode {
        KubeNode {
            name: name.into(),
            kubelet_version: kubelet.parse().unwrap(),
            ready: true,
            unschedulable: false,
            node_group: Some(group.into()),
            allocatable: Resources {
                cpu_millis: 2000,
                memory_bytes: 8 << 30,
            },
            allocatable_pods: 29,
            labels: Default::default(),
        }
    }

    fn kpod(name: &str, node: &str, app: &str) -> KubePod {
        KubePod {
            waiting_reason: None,
            restarts: 0,
            unschedulable: None,
            namespace: "shop".into(),
            name: name.into(),
            node: Some(node.into()),
            owner: Some(("ReplicaSet".into(), format!("{app}-rs"))),
            phase: "Running".into(),
            requests: Resources {
                cpu_millis: 100,
                memory_bytes: 128 << 20,
            },
            has_empty_dir: false,
            is_mirror: false,
            labels: [("app".to_string(), app.to_string())].into(),
            node_selector: Default::default(),
        }
    }

    fn snapshot(group: &str, kubelet: &str) -> KubeSnapshot {
        KubeSnapshot {
            nodes: vec![knode("n1", group, kubelet), knode("n2", group, kubelet)],
            pods: vec![kpod("web-1", "n1", "web"), kpod("web-2", "n2", "web")],
            pdbs: vec![KubePdb {
                namespace: "shop".into(),
                name: "web".into(),
                match_labels: [("app".to_string(), "web".to_string())].into(),
                selector_unsupported: false,
                min_available: Some("2".into()),
                max_unavailable: None,
                disruptions_allowed: 0,
                current_healthy: 2,
                desired_healthy: 2,
                expected_pods: 2,
            }],
        }
    }

    fn bg(name: &str, version: &str) -> NodeGroupSpec {
        let mut ng = ng_spec(name, version);
        ng.strategy = Strategy::BlueGreen {
            max_unavailable: Unavailable::Count(1),
            soak: Duration::from_secs(600),
            batch_soak: Duration::ZERO,
            native: None,
            complete_when_healthy_for: None,
        };
        ng
    }

    #[test]
    fn blue_green_phases_run_in_order_with_their_conditions() {
        let mut act = actual("1.28", vec![actual_ng("general", "1.28", 2)]);
        act.kube = Some(snapshot("general", "v1.28.5-eks-1"));
        let p = run(
            cluster_spec("1.29", vec![bg("general", "1.29")]),
            act,
            eks_policy(),
        )
        .unwrap();
        assert_eq!(
            step_ids(&p),
            [
                "prod/control_plane/1.29",
                "prod/node_group/general/1.29/create",
                "prod/node_group/general/1.29/ready",
                "prod/node_group/general/1.29/cordon",
                "prod/node_group/general/1.29/drain",
                "prod/node_group/general/1.29/soak",
                "prod/node_group/general/1.29/delete",
                "prod/postflight",
            ]
        );
        // The post-flight check waits for everything and expects the green group's
        // kubelets at the new minor.
        match &p.steps[7].action {
            Action::PostFlight { node_groups, .. } => {
                assert_eq!(node_groups.len(), 1);
                assert_eq!(node_groups.values().next(), Some(&m(29)));
                assert_ne!(
                    node_groups.keys().next().map(String::as_str),
                    Some("general")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.steps[7].depends_on.len(), 7);
        match &p.steps[1].action {
            Action::CreateNodeGroup {
                node_group,
                clone_of,
                version,
            } => {
                assert_eq!(
                    (
                        node_group.as_str(),
                        clone_of.as_str(),
                        version.to_string().as_str()
                    ),
                    ("general-1-29", "general", "1.29")
                );
            }
            a => panic!("{a:?}"),
        }
        // Never delete a group that still runs pods.
        assert_eq!(
            p.steps[6].precondition,
            vec![Condition::NodeGroupDrained {
                node_group: "general".into()
            }]
        );
        assert_eq!(
            p.steps[6].action,
            Action::DeleteNodeGroup {
                node_group: "general".into()
            }
        );
        assert_eq!(p.steps[5].postcondition, vec![Condition::JournalOnly]);
        // No provider-side update config for a group kup drains itself.
        assert!(!p
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::UpdateNodeGroupConfig { .. })));
    }

    #[test]
    fn the_live_colour_is_the_next_blue() {
        let mut act = actual("1.29", vec![actual_ng("general-1-29", "1.29", 2)]);
        act.kube = Some(snapshot("general-1-29", "v1.29.1"));
        let p = run(
            cluster_spec("1.30", vec![bg("general", "1.30")]),
            act,
            eks_policy(),
        )
        .unwrap();
        match &p.steps[1].action {
            Action::CreateNodeGroup {
                node_group,
                clone_of,
                ..
            } => {
                assert_eq!(
                    (node_group.as_str(), clone_of.as_str()),
                    ("general-1-30", "general-1-29")
                );
            }
            a => panic!("{a:?}"),
        }
        assert!(p.clusters[0].unmanaged_node_groups.is_empty());
    }

    #[test]
    fn two_colours_at_once_mean_an_unfinished_replacement() {
        let mut act = actual(
            "1.29",
            vec![
                actual_ng("general", "1.28", 2),
                actual_ng("general-1-29", "1.29", 2),
            ],
        );
        act.kube = Some(snapshot("general", "v1.28.1"));
        let e = run(
            cluster_spec("1.29", vec![bg("general", "1.29")]),
            act,
            eks_policy(),
        )
        .unwrap_err();
        assert!(
            e[0].message.contains("general and general-1-29"),
            "{}",
            e[0]
        );
        assert!(e[0].hint.as_deref().unwrap().contains("-rollback"));
    }

    #[test]
    fn blue_green_is_refused_where_the_provider_cannot_clone_groups() {
        let mut act = actual("1.28", vec![actual_ng("general", "1.28", 2)]);
        act.kube = Some(snapshot("general", "v1.28.5"));
        let policy = ProviderPolicy {
            supports_blue_green: false,
            ..eks_policy()
        };
        let e = run(
            cluster_spec("1.29", vec![bg("general", "1.29")]),
            act,
            policy,
        )
        .unwrap_err();
        assert!(
            e[0].message.contains("not supported by provider"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn blue_green_without_the_kubernetes_api_is_refused() {
        let p = run(
            cluster_spec("1.29", vec![bg("general", "1.29")]),
            actual("1.28", vec![actual_ng("general", "1.28", 2)]),
            eks_policy(),
        )
        .unwrap_err();
        assert!(p[0].message.contains("Kubernetes API"), "{}", p[0]);
    }

    #[test]
    fn real_kubelets_older_than_the_provider_says_force_an_earlier_rollout() {
        // The provider says 1.28 but the nodes still run 1.26 kubelets.
        let mut act = actual("1.28", vec![actual_ng("general", "1.28", 2)]);
        act.kube = Some(snapshot("general", "v1.26.9"));
        let p = run(
            cluster_spec("1.30", vec![ng_spec("general", "1.30")]),
            act,
            eks_policy(),
        )
        .unwrap();
        assert_eq!(
            step_ids(&p),
            [
                "prod/control_plane/1.29",
                "prod/node_group/general/1.29",
                "prod/control_plane/1.30",
                "prod/node_group/general/1.30",
                "prod/postflight",
            ]
        );
        assert_eq!(p.clusters[0].nodes["general"].kubelets, ["1.26.9"]);
    }

    #[test]
    fn blocked_drains_are_predicted_and_opt_in_to_wait() {
        let mut act = actual("1.28", vec![actual_ng("general", "1.28", 2)]);
        act.kube = Some(snapshot("general", "v1.28.5"));
        let p = run(
            cluster_spec("1.29", vec![ng_spec("general", "1.29")]),
            act.clone(),
            eks_policy(),
        )
        .unwrap();
        let b = &p.clusters[0].blocked_drains;
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].pdb, "shop/web");
        assert!(b[0].blocking);
        assert!(b[0].reason.contains("never allows"), "{}", b[0].reason);
        assert!(p.clusters[0]
            .warnings
            .iter()
            .any(|w| w.contains("shop/web")));
        let mut waiting = ng_spec("general", "1.29");
        waiting.drain.on_blocked_wait = true;
        let p = run(cluster_spec("1.29", vec![waiting]), act, eks_policy()).unwrap();
        assert!(!p.clusters[0].blocked_drains[0].blocking);
    }

    #[test]
    fn pods_selecting_the_blue_group_by_name_are_predicted_pinned() {
        let mut act = actual("1.28", vec![actual_ng("general", "1.28", 2)]);
        let mut k = snapshot("general", "v1.28.5-eks-1");
        for n in &mut k.nodes {
            n.labels
                .insert("eks.amazonaws.com/nodegroup".into(), "general".into());
        }
        k.pods[0]
            .node_selector
            .insert("eks.amazonaws.com/nodegroup".into(), "general".into());
        // Selecting by another label the clone keeps is fine.
        k.pods[1]
            .node_selector
            .insert("eks.amazonaws.com/nodegroup".into(), "other".into());
        act.kube = Some(k);
        let p = run(
            cluster_spec("1.29", vec![bg("general", "1.29")]),
            act.clone(),
            eks_policy(),
        )
        .unwrap();
        let pinned = &p.clusters[0].pinned_pods;
        assert_eq!(pinned.len(), 1, "{pinned:?}");
        assert_eq!(pinned[0].selector, "eks.amazonaws.com/nodegroup=general");
        assert_eq!(pinned[0].new_group, "general-1-29");
        assert_eq!(pinned[0].pods, ["shop/web-1 on n1"]);
        // Rolling keeps the group's name: nothing is pinned.
        let p = run(
            cluster_spec("1.29", vec![ng_spec("general", "1.29")]),
            act,
            eks_policy(),
        )
        .unwrap();
        assert!(p.clusters[0].pinned_pods.is_empty());
    }

    fn gke_policy() -> ProviderPolicy {
        ProviderPolicy {
            supports_blue_green: true,
            native_blue_green: true,
            max_kubelet_skew: Some(2),
            ..ProviderPolicy::default()
        }
    }

    #[test]
    fn native_blue_green_is_one_provider_step_after_a_strategy_switch() {
        let act = actual("1.29", vec![actual_ng("general", "1.28", 3)]);
        let mut ng = bg("general", "1.29");
        if let Strategy::BlueGreen {
            complete_when_healthy_for,
            ..
        } = &mut ng.strategy
        {
            *complete_when_healthy_for = Some(Duration::from_secs(120));
        }
        // Native blue/green needs no Kubernetes API unless completing early: give it one.
        let mut act = act;
        act.kube = Some(snapshot("general", "v1.28.5-gke.1"));
        let p = run(cluster_spec("1.29", vec![ng]), act, gke_policy()).unwrap();
        assert_eq!(
            step_ids(&p),
            [
                "prod/node_group/general/config",
                "prod/node_group/general/1.29",
                "prod/postflight"
            ]
        );
        let want = crate::model::NativeBlueGreen {
            batch: Unavailable::Count(1),
            batch_soak: Duration::ZERO,
            soak: Duration::from_secs(600),
        };
        match &p.steps[0].action {
            Action::UpdateNodeGroupConfig { blue_green, .. } => {
                assert_eq!(blue_green.as_ref(), Some(&want))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p.steps[0].postcondition,
            [Condition::NodeGroupUpgradeStrategy {
                node_group: "general".into(),
                blue_green: Some(want.clone()),
            }]
        );
        assert_eq!(p.steps[1].depends_on, ["prod/node_group/general/config"]);
        match &p.steps[1].action {
            Action::UpgradeNodeGroup {
                node_group,
                native: Some(n),
                ..
            } => {
                assert_eq!(node_group, "general");
                assert_eq!(n.blue_green, want);
                assert_eq!(n.complete_when_healthy_secs, Some(120));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn native_blue_green_already_configured_needs_no_switch_and_no_kube_api() {
        let mut g = actual_ng("general", "1.28", 3);
        g.blue_green = Some(crate::model::NativeBlueGreen {
            batch: Unavailable::Count(1),
            batch_soak: Duration::ZERO,
            soak: Duration::from_secs(600),
        });
        let p = run(
            cluster_spec("1.29", vec![bg("general", "1.29")]),
            actual("1.29", vec![g]),
            gke_policy(),
        )
        .unwrap();
        assert_eq!(step_ids(&p), ["prod/node_group/general/1.29"]);
    }

    #[test]
    fn native_false_uses_kup_driven_blue_green_and_rolling_switches_back_to_surge() {
        let mut act = actual("1.28", vec![actual_ng("general", "1.28", 2)]);
        act.kube = Some(snapshot("general", "v1.28.5-gke.1"));
        let mut ng = bg("general", "1.28");
        if let Strategy::BlueGreen { native, .. } = &mut ng.strategy {
            *native = Some(false);
        }
        ng.version = "1.29".parse().unwrap();
        let p = run(cluster_spec("1.29", vec![ng]), act.clone(), gke_policy()).unwrap();
        assert!(step_ids(&p).contains(&"prod/node_group/general/1.29/create"));

        // A pool GKE upgrades blue/green, configured rolling: back to surge first.
        act.node_groups[0].blue_green = Some(crate::model::NativeBlueGreen {
            batch: Unavailable::Count(1),
            batch_soak: Duration::ZERO,
            soak: Duration::from_secs(600),
        });
        let p = run(
            cluster_spec("1.28", vec![ng_spec("general", "1.28")]),
            act,
            gke_policy(),
        )
        .unwrap();
        assert_eq!(step_ids(&p), ["prod/node_group/general/config"]);
        assert!(p.steps[0]
            .postcondition
            .contains(&Condition::NodeGroupUpgradeStrategy {
                node_group: "general".into(),
                blue_green: None,
            }));
    }

    #[test]
    fn native_true_on_a_provider_without_it_is_refused() {
        let mut act = actual("1.28", vec![actual_ng("general", "1.28", 2)]);
        act.kube = Some(snapshot("general", "v1.28.5-eks-1"));
        let mut ng = bg("general", "1.29");
        if let Strategy::BlueGreen { native, .. } = &mut ng.strategy {
            *native = Some(true);
        }
        let errs = run(cluster_spec("1.29", vec![ng]), act, eks_policy()).unwrap_err();
        assert!(errs[0].message.contains("native = true"), "{errs:?}");
    }
}

#[test]
fn version_aliases_resolve_to_offered_versions_and_node_groups_follow() {
    let mut desired = Desired {
        rollouts: Vec::new(),
        providers: vec![],
        clusters: vec![cluster_spec(
            "1.28",
            vec![ng_spec("general", "1.28"), ng_spec("pinned", "1.28")],
        )],
    };
    desired.clusters[0].version_alias = Some(crate::model::VersionAlias::Latest);
    desired.clusters[0].node_groups[0].follows_cluster = true;
    let mut act = actual("1.28", vec![]);
    act.offered_versions = vec![v("1.28.3"), v("1.30.2"), v("1.29.9")];
    act.default_version = Some(v("1.29.9"));
    let actual_map: BTreeMap<String, ActualCluster> = [("prod".to_string(), act.clone())].into();
    resolve_version_aliases(&mut desired, &actual_map).unwrap();
    let c = &desired.clusters[0];
    assert_eq!(c.version.to_string(), "1.30.2");
    assert_eq!(c.node_groups[0].version.to_string(), "1.30");
    assert_eq!(c.node_groups[1].version.to_string(), "1.28", "pinned stays");

    desired.clusters[0].version_alias = Some(crate::model::VersionAlias::ProviderDefault);
    resolve_version_aliases(&mut desired, &actual_map).unwrap();
    assert_eq!(desired.clusters[0].version.to_string(), "1.29.9");

    let mut none = act;
    none.default_version = None;
    let errs =
        resolve_version_aliases(&mut desired, &[("prod".to_string(), none)].into()).unwrap_err();
    assert!(errs[0].message.contains("reports none"), "{errs:?}");
}

#[test]
fn max_surge_differences_become_a_config_step_where_the_provider_takes_one() {
    let mut g = actual_ng("general", "1.28", 3);
    g.max_surge = Some(Unavailable::Count(1));
    let mut ng = ng_spec("general", "1.28");
    ng.strategy = Strategy::Rolling {
        max_unavailable: Unavailable::Count(1),
        max_surge: Some(Unavailable::Percent(33)),
    };
    let policy = ProviderPolicy::default();
    let p = run(
        cluster_spec("1.28", vec![ng]),
        actual("1.28", vec![g]),
        policy,
    )
    .unwrap();
    assert_eq!(step_ids(&p), ["prod/node_group/general/config"]);
    match &p.steps[0].action {
        Action::UpdateNodeGroupConfig { max_surge, .. } => {
            assert_eq!(*max_surge, Some(Unavailable::Percent(33)))
        }
        other => panic!("{other:?}"),
    }
    assert!(p.steps[0]
        .postcondition
        .contains(&Condition::NodeGroupMaxSurge {
            node_group: "general".into(),
            max_surge: Unavailable::Percent(33),
        }));
}

#[test]
fn drain_limits_leave_out_grace_where_the_provider_has_no_grace_cap() {
    let g = actual_ng("general", "1.28", 3);
    let mut ng = ng_spec("general", "1.28");
    ng.drain.timeout = Some(Duration::from_secs(600));
    ng.drain.grace_period = Some(Duration::from_secs(30));
    let policy = ProviderPolicy {
        drain_limits: true,
        ..ProviderPolicy::default()
    };
    let p = run(
        cluster_spec("1.28", vec![ng]),
        actual("1.28", vec![g]),
        policy,
    )
    .unwrap();
    match &p.steps[0].action {
        Action::UpdateNodeGroupConfig { drain_limits, .. } => assert_eq!(
            drain_limits.as_ref().unwrap(),
            &crate::model::DrainLimits {
                pdb_timeout: Some(Duration::from_secs(600)),
                grace_termination: None,
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn compact_colour_names_fit_aks_and_are_recognised() {
    let m = Minor::new(1, 31);
    assert_eq!(green_name("system", m, true), "systemv131");
    assert_eq!(green_name("userpoolbig", m, true), "userpoolv131");
    assert!(green_name("userpoolbig", m, true).len() <= 12);
    assert_eq!(green_name("general", m, false), "general-1-31");
    assert!(is_colour_of("systemv131", "system"));
    assert!(is_colour_of("userpoolv131", "userpoolbig"));
    assert!(is_colour_of("general-1-31", "general"));
    // AKS's default pool name ends in a digit: the v keeps it apart from the version.
    assert_eq!(green_name("nodepool1", m, true), "nodepoolv131");
    assert!(is_colour_of(&green_name("nodepool1", m, true), "nodepool1"));
    assert!(!is_colour_of("system", "system"));
    assert!(
        !is_colour_of("systemv2", "system"),
        "one digit is not a version"
    );
    assert!(!is_colour_of("otherv131", "system"));
}

#[test]
fn node_soak_is_a_config_step_where_the_provider_has_one_and_refused_elsewhere() {
    let mut g = actual_ng("general", "1.28", 3);
    g.node_soak = Some(Duration::ZERO);
    let mut ng = ng_spec("general", "1.28");
    ng.node_soak = Some(Duration::from_secs(300));
    let aks_like = ProviderPolicy {
        node_soak: true,
        ..ProviderPolicy::default()
    };
    let p = run(
        cluster_spec("1.28", vec![ng.clone()]),
        actual("1.28", vec![g.clone()]),
        aks_like,
    )
    .unwrap();
    assert_eq!(
        p.steps[0].postcondition,
        [Condition::NodeGroupNodeSoak {
            node_group: "general".into(),
            secs: 300
        }]
    );
    let errs = run(
        cluster_spec("1.28", vec![ng]),
        actual("1.28", vec![g]),
        eks_policy(),
    )
    .unwrap_err();
    assert!(errs[0].message.contains("no per-node soak"), "{errs:?}");
}

#[test]
fn durations_round_up_to_the_providers_unit_so_config_steps_settle() {
    let mut g = actual_ng("general", "1.28", 3);
    // What AKS reports after being sent "90s": two whole minutes.
    g.drain_limits = Some(crate::model::DrainLimits {
        pdb_timeout: Some(Duration::from_secs(120)),
        grace_termination: None,
    });
    g.node_soak = Some(Duration::from_secs(60));
    let mut ng = ng_spec("general", "1.28");
    ng.drain.timeout = Some(Duration::from_secs(90));
    ng.node_soak = Some(Duration::from_secs(30));
    let aks_like = ProviderPolicy {
        drain_limits: true,
        node_soak: true,
        duration_unit_secs: 60,
        max_node_soak: Some(Duration::from_secs(1800)),
        ..ProviderPolicy::default()
    };
    let p = run(
        cluster_spec("1.28", vec![ng.clone()]),
        actual("1.28", vec![g.clone()]),
        aks_like.clone(),
    )
    .unwrap();
    assert!(p.steps.is_empty(), "{:?}", step_ids(&p));
    ng.node_soak = Some(Duration::from_secs(3600));
    let errs = run(
        cluster_spec("1.28", vec![ng]),
        actual("1.28", vec![g]),
        aks_like,
    )
    .unwrap_err();
    assert!(errs[0].message.contains("longer than provider"), "{errs:?}");
}

// --- rounds (K3s/RKE2 through system-upgrade-controller) ---------------------------------

fn k3s_policy() -> ProviderPolicy {
    ProviderPolicy {
        rounds: true,
        upgrade_plans: true,
        supports_max_surge: false,
        min_max_unavailable: 1,
        ..ProviderPolicy::default()
    }
}

fn k3s_case(cp: &str, agents: &str, target: &str) -> (ClusterSpec, ActualCluster) {
    let mut servers = ng_spec("servers", target);
    servers.follows_cluster = true;
    let mut agents_spec = ng_spec("agents", target);
    agents_spec.follows_cluster = true;
    let spec = cluster_spec(target, vec![servers, agents_spec]);
    let mut s = actual_ng("servers", cp, 3);
    s.control_plane = true;
    s.max_unavailable = None;
    let mut a = actual_ng("agents", agents, 5);
    a.max_unavailable = None;
    let mut act = actual(cp, vec![s, a]);
    act.offered_versions = vec![
        v("v1.29.12+k3s1"),
        v("v1.30.9+k3s1"),
        v("v1.31.2+k3s1"),
        v("v1.31.4+k3s1"),
    ];
    (spec, act)
}

fn step_kinds(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .map(|s| match &s.action {
            Action::UpgradeControlPlane { to, .. } => format!("cp {to}"),
            Action::UpgradeNodeGroup { node_group, to, .. } => format!("{node_group} {to}"),
            Action::RemoveUpgradePlans => "remove plans".into(),
            other => other.describe(),
        })
        .collect()
}

#[test]
fn rounds_move_servers_then_agents_per_minor_to_exact_releases() {
    let (spec, act) = k3s_case("v1.29.8+k3s1", "v1.29.8+k3s1", "v1.31.4+k3s1");
    let p = run(spec, act, k3s_policy()).unwrap();
    assert_eq!(
        step_kinds(&p),
        [
            "cp 1.30.9+k3s1",
            "agents 1.30.9+k3s1",
            "cp 1.31.4+k3s1",
            "agents 1.31.4+k3s1",
            "remove plans"
        ]
    );
    // The server group is the control plane: never rolled on its own.
    assert!(!p
        .steps
        .iter()
        .any(|s| s.address.ends_with("node_group.servers")));
    // Each agent round waits for its control-plane step; exact postconditions.
    assert_eq!(p.steps[1].depends_on, vec![p.steps[0].id.clone()]);
    assert_eq!(p.steps[2].depends_on, vec![p.steps[1].id.clone()]);
    assert_eq!(
        p.steps[3].postcondition,
        vec![Condition::NodeGroupAtLeastVersion {
            node_group: "agents".into(),
            version: v("v1.31.4+k3s1")
        }]
    );
    assert_eq!(
        p.steps[2].postcondition,
        vec![Condition::ControlPlaneAtLeastVersion {
            version: v("v1.31.4+k3s1")
        }]
    );
    assert_eq!(p.steps[4].depends_on.len(), 4);
}

#[test]
fn rounds_handle_patch_upgrades_and_agents_behind() {
    // A patch upgrade: the minor already matches, yet both move.
    let (spec, act) = k3s_case("v1.31.2+k3s1", "v1.31.2+k3s1", "v1.31.4+k3s1");
    let p = run(spec, act, k3s_policy()).unwrap();
    assert_eq!(
        step_kinds(&p),
        ["cp 1.31.4+k3s1", "agents 1.31.4+k3s1", "remove plans"]
    );
    // Agents behind the control plane catch up in the first round without a hop.
    let (spec, act) = k3s_case("v1.30.9+k3s1", "v1.29.8+k3s1", "v1.31.4+k3s1");
    let p = run(spec, act, k3s_policy()).unwrap();
    assert_eq!(
        step_kinds(&p),
        [
            "agents 1.30.9+k3s1",
            "cp 1.31.4+k3s1",
            "agents 1.31.4+k3s1",
            "remove plans"
        ]
    );
}

#[test]
fn rounds_keep_plans_and_no_change() {
    let (mut spec, act) = k3s_case("v1.29.8+k3s1", "v1.29.8+k3s1", "v1.30.9+k3s1");
    spec.keep_plans = true;
    let p = run(spec, act, k3s_policy()).unwrap();
    assert_eq!(step_kinds(&p), ["cp 1.30.9+k3s1", "agents 1.30.9+k3s1"]);
    // Nothing to do, but Plans left from an interrupted run are still removed.
    let (spec, mut act) = k3s_case("v1.31.4+k3s1", "v1.31.4+k3s1", "v1.31.4+k3s1");
    assert!(run(spec.clone(), act.clone(), k3s_policy())
        .unwrap()
        .steps
        .is_empty());
    act.upgrade_plans = vec!["system-upgrade/kup-agents".into()];
    let p = run(spec, act, k3s_policy()).unwrap();
    assert_eq!(step_kinds(&p), ["remove plans"]);
}

#[test]
fn rounds_refuse_a_server_group_version_of_its_own() {
    let (mut spec, act) = k3s_case("v1.29.8+k3s1", "v1.29.8+k3s1", "v1.30.9+k3s1");
    spec.node_groups[0].follows_cluster = false;
    spec.node_groups[0].version = v("1.29");
    let e = run(spec, act, k3s_policy()).unwrap_err();
    assert!(
        e[0].message.contains("runs the control plane"),
        "{}",
        e[0].message
    );
}

#[test]
fn rounds_warn_that_windows_hold_the_apply() {
    let (mut spec, act) = k3s_case("v1.29.8+k3s1", "v1.29.8+k3s1", "v1.30.9+k3s1");
    spec.node_groups[1].window = Some(crate::model::UpgradeWindow {
        days: vec!["saturday".into()],
        start: "01:00".into(),
        end: "05:00".into(),
        time_zone: None,
    });
    let p = run(spec, act, k3s_policy()).unwrap();
    let w = &p.clusters[0].warnings;
    assert!(
        w.iter().any(|w| w.contains(
            "node group agents is upgraded only inside its window (saturday 01:00–05:00 UTC); apply waits for it without a time limit"
        )),
        "{w:?}"
    );
}

#[test]
fn host_prechecks_gate_the_first_change() {
    let (spec, act) = k3s_case("v1.29.8+k3s1", "v1.29.8+k3s1", "v1.30.9+k3s1");
    let policy = ProviderPolicy {
        host_prechecks: true,
        upgrade_plans: false,
        ..k3s_policy()
    };
    let p = run(spec.clone(), act.clone(), policy.clone()).unwrap();
    assert_eq!(p.steps[0].action, Action::PrecheckHosts);
    assert_eq!(p.steps[0].postcondition, vec![Condition::JournalOnly]);
    assert_eq!(p.steps[1].depends_on, vec![p.steps[0].id.clone()]);
    // Nothing to do: no gate either.
    let (spec, act) = k3s_case("v1.30.9+k3s1", "v1.30.9+k3s1", "v1.30.9+k3s1");
    assert!(run(spec, act, policy).unwrap().steps.is_empty());
}

#[test]
fn hooks_wrap_the_steps_they_name_and_the_cluster() {
    let (mut spec, act) = k3s_case("v1.29.8+k3s1", "v1.29.8+k3s1", "v1.30.9+k3s1");
    let hook = |point: &str| crate::model::HookSpec {
        point: point.into(),
        command: vec!["./check.sh".to_string()].into(),
        timeout: Duration::from_secs(60),
    };
    spec.hooks = vec![
        hook("before_control_plane"),
        hook("after_control_plane"),
        hook("after_node_group"),
        hook("after_cluster"),
    ];
    let p = run(spec, act, k3s_policy()).unwrap();
    let kinds: Vec<String> = p
        .steps
        .iter()
        .map(|s| match &s.action {
            Action::RunHook { point, env, .. } => format!(
                "hook {point} {}",
                env.get("KUP_TO_VERSION").cloned().unwrap_or_default()
            ),
            Action::UpgradeControlPlane { to, .. } => format!("cp {to}"),
            Action::UpgradeNodeGroup { node_group, .. } => node_group.to_string(),
            Action::RemoveUpgradePlans => "remove".into(),
            other => other.describe(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "hook before_control_plane 1.30.9+k3s1",
            "cp 1.30.9+k3s1",
            "hook after_control_plane 1.30.9+k3s1",
            "agents",
            "hook after_node_group 1.30.9+k3s1",
            "hook after_cluster 1.30.9+k3s1",
            "remove"
        ]
    );
    // Each waits for the one before it: the agents for the after-hook, not the hop.
    for w in p.steps.windows(2).take(5) {
        assert!(
            w[1].depends_on.contains(&w[0].id),
            "{} → {}",
            w[0].id,
            w[1].id
        );
    }
    assert!(p
        .steps
        .iter()
        .all(|s| !matches!(s.action, Action::RunHook { .. })
            || s.postcondition == vec![Condition::JournalOnly]));
}

#[test]
fn a_saved_plan_holds_no_sensitive_hook_argument_and_takes_it_back_from_the_configuration() {
    let (mut spec, act) = k3s_case("v1.29.8+k3s1", "v1.29.8+k3s1", "v1.30.9+k3s1");
    let secret = crate::model::Argv::new(
        vec!["./notify.sh".into(), "Bearer tok-plan-7781".into()],
        vec![false, true],
    );
    spec.hooks = vec![crate::model::HookSpec {
        point: "after_cluster".into(),
        command: secret.clone(),
        timeout: Duration::from_secs(60),
    }];
    let desired = Desired {
        rollouts: Vec::new(),
        providers: vec![],
        clusters: vec![spec.clone()],
    };
    let plan = run(spec.clone(), act, k3s_policy()).unwrap();
    let saved = crate::plan::SavedPlan {
        kup_version: "test".into(),
        format_version: crate::plan::PLAN_FORMAT_VERSION,
        created_at: String::new(),
        config_dir: String::new(),
        config_hash: String::new(),
        state_fingerprints: Default::default(),
        desired: desired.clone(),
        plan,
        integrity: String::new(),
    }
    .seal();
    let file = serde_json::to_string(&saved).unwrap();
    assert!(!file.contains("tok-plan-7781"), "{file}");
    let mut back: crate::plan::SavedPlan = serde_json::from_str(&file).unwrap();
    assert!(back.verify_integrity());
    assert!(back.needs_sensitive_values());
    let hook_args = |p: &crate::plan::SavedPlan| {
        p.plan
            .steps
            .iter()
            .find_map(|s| match &s.action {
                Action::RunHook { command, .. } => Some(command.clone()),
                _ => None,
            })
            .unwrap()
    };
    assert!(!hook_args(&back).is_filled());

    // A configuration whose hook changed is refused.
    let mut changed = desired.clone();
    changed.clusters[0].hooks[0].command = crate::model::Argv::new(
        vec!["./other.sh".into(), "Bearer tok-plan-7781".into()],
        vec![false, true],
    );
    let e = back.clone().fill_sensitive(&changed).unwrap_err();
    assert!(e.contains("changed since the plan was made"), "{e}");
    let e = back
        .clone()
        .fill_sensitive(&Desired::default())
        .unwrap_err();
    assert!(e.contains("no longer has this hook"), "{e}");

    back.fill_sensitive(&desired).unwrap();
    assert!(!back.needs_sensitive_values());
    assert_eq!(hook_args(&back).args(), secret.args());
    // Still the plan that was saved.
    assert!(back.verify_integrity());
}
