use std::collections::BTreeMap;

use time::macros::date;

use super::*;
use crate::kube::{ClusterScan, KubeNode, KubePdb, KubePod, KubeSnapshot, KubeWorkload, Resources};
use crate::planner::tests::{actual, actual_ng, addon, cluster_spec, eks_policy, m, ng_spec, v};
use crate::removed_apis::ApiUse;

fn node(name: &str, group: &str, kubelet: &str, ready: bool) -> KubeNode {
    KubeNode {
        name: name.into(),
        kubelet_version: v(kubelet),
        ready,
        unschedulable: false,
        node_group: Some(group.into()),
        allocatable: Resources {
            cpu_millis: 2000,
            memory_bytes: 4 << 30,
        },
        allocatable_pods: 110,
        labels: BTreeMap::new(),
    }
}

fn pod(name: &str, owner: Option<&str>, phase: &str) -> KubePod {
    KubePod {
        namespace: "shop".into(),
        name: name.into(),
        node: None,
        owner: owner.map(|o| ("ReplicaSet".to_string(), o.to_string())),
        phase: phase.into(),
        requests: Resources::default(),
        has_empty_dir: false,
        is_mirror: false,
        labels: [("app".to_string(), "web".to_string())].into(),
        node_selector: BTreeMap::new(),
        waiting_reason: None,
        restarts: 0,
        unschedulable: None,
    }
}

fn workload(name: &str, replicas: i32, available: i32) -> KubeWorkload {
    KubeWorkload {
        namespace: "shop".into(),
        kind: "Deployment".into(),
        name: name.into(),
        replicas,
        available,
        pod_labels: [("app".to_string(), name.to_string())].into(),
    }
}

fn api_use(api_version: &str, kind: &str, name: &str, source: &str) -> ApiUse {
    ApiUse {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some("web".into()),
        name: name.into(),
        source: source.into(),
    }
}

/// The findings, without the note that the (absent) Kubernetes API was not read.
fn check(spec: &ClusterSpec, act: &ActualCluster, target: u32) -> Vec<Finding> {
    without_kube_note(findings(&Context {
        spec,
        actual: act,
        policy: &eks_policy(),
        target: m(target),
        today: None,
    }))
}

fn without_kube_note(f: Vec<Finding>) -> Vec<Finding> {
    f.into_iter()
        .filter(|f| f.subject != "Kubernetes API")
        .collect()
}

#[test]
fn a_cluster_kup_cannot_read_says_what_is_not_checked() {
    let spec = cluster_spec("1.30", vec![]);
    let f = findings(&Context {
        spec: &spec,
        actual: &actual("1.29", vec![]),
        policy: &eks_policy(),
        target: m(30),
        today: None,
    });
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (f[0].check, f[0].severity, f[0].blocking),
        (Check::Health, Severity::Warning, false)
    );
    assert!(f[0].message.contains("no post-flight check is planned"));
}

#[test]
fn removed_apis_block_the_hop_that_removes_them_and_merge_their_sources() {
    let spec = cluster_spec("1.26", vec![]);
    let mut act = actual("1.24", vec![]);
    act.api_uses = vec![api_use(
        "policy/v1beta1",
        "PodDisruptionBudget",
        "db",
        "k8s/pdb.yaml",
    )];
    act.scan = Some(ClusterScan {
        api_uses: vec![
            api_use(
                "policy/v1beta1",
                "PodDisruptionBudget",
                "db",
                "last-applied-configuration",
            ),
            api_use(
                "policy/v1beta1",
                "PodDisruptionBudget",
                "db",
                "managedFields of kubectl",
            ),
            // Removed in 1.26, after this plan's target of 1.25: a note only.
            api_use(
                "autoscaling/v2beta2",
                "HorizontalPodAutoscaler",
                "web",
                "Helm release web/shop revision 3",
            ),
            // Still served everywhere: not a finding.
            api_use("apps/v1", "Deployment", "web", "last-applied-configuration"),
        ],
        ..ClusterScan::default()
    });
    let f = check(&spec, &act, 25);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].blocking);
    assert_eq!(f[0].subject, "web/PodDisruptionBudget/db");
    assert_eq!(f[0].minor, Some(m(25)));
    assert!(
        f[0].message.contains(
            "found in k8s/pdb.yaml, last-applied-configuration, managedFields of kubectl"
        ),
        "{}",
        f[0].message
    );
    assert_eq!(f[0].remedy.as_deref(), Some("move it to policy/v1"));
    assert_eq!(f[1].severity, Severity::Info);
    assert!(f[1].message.contains("after this plan's target"));

    // Already past the removal: history, not a finding.
    let act = actual("1.25", vec![]);
    let mut a2 = act.clone();
    a2.api_uses = vec![api_use("policy/v1beta1", "PodDisruptionBudget", "db", "x")];
    assert!(check(&spec, &a2, 26).is_empty());

    // "warn" keeps the error but does not block; "off" does not look.
    let mut warn = spec.clone();
    warn.preflight.removed_apis = CheckMode::Warn;
    let mut a3 = actual("1.24", vec![]);
    a3.api_uses = vec![api_use("policy/v1beta1", "PodDisruptionBudget", "db", "x")];
    let f = check(&warn, &a3, 25);
    assert_eq!((f[0].severity, f[0].blocking), (Severity::Error, false));
    let mut off = spec;
    off.preflight.removed_apis = CheckMode::Off;
    assert!(check(&off, &a3, 25).is_empty());
}

#[test]
fn health_blocks_on_readyz_and_not_ready_nodes_and_warns_on_the_rest() {
    let spec = cluster_spec("1.30", vec![ng_spec("general", "1.30")]);
    let mut act = actual("1.29", vec![actual_ng("general", "1.29", 2)]);
    let mut cordoned = node("n2", "general", "1.29.3", true);
    cordoned.unschedulable = true;
    let mut crashing = pod("web-1", Some("web-rs"), "Running");
    crashing.waiting_reason = Some("CrashLoopBackOff".into());
    crashing.restarts = 7;
    let mut stuck = pod("big-1", Some("big-rs"), "Pending");
    stuck.unschedulable = Some("0/2 nodes are available: 2 Insufficient cpu.".into());
    act.kube = Some(KubeSnapshot {
        nodes: vec![node("n1", "general", "1.29.3", false), cordoned],
        pods: vec![crashing, stuck],
        pdbs: vec![KubePdb {
            namespace: "shop".into(),
            name: "db".into(),
            match_labels: [("app".to_string(), "db".to_string())].into(),
            selector_unsupported: false,
            min_available: Some("1".into()),
            max_unavailable: None,
            disruptions_allowed: 0,
            current_healthy: 1,
            desired_healthy: 1,
            expected_pods: 1,
        }],
    });
    act.scan = Some(ClusterScan {
        not_ready: Some("[-]etcd failed: reason withheld".into()),
        workloads: vec![
            workload("db", 1, 1),
            workload("web", 1, 1),
            workload("api", 3, 3),
        ],
        ..ClusterScan::default()
    });
    let f = check(&spec, &act, 30);
    let lines: Vec<String> = f
        .iter()
        .map(|f| format!("{:?} {}", f.severity, f.line()))
        .collect();
    assert_eq!(
        lines,
        [
            "Error API server: /readyz fails: [-]etcd failed: reason withheld",
            "Error node n1: is NotReady",
            "Warning node n2: is cordoned (SchedulingDisabled): its capacity is not counted for the pods drains move",
            "Warning pods: 1 Pending and not schedulable: shop/big-1",
            "Warning pods: 1 in CrashLoopBackOff: shop/web-1 (7 restarts)",
            "Warning workloads: 1 with a single replica and no PodDisruptionBudget are down while their node drains: shop/Deployment/web",
        ]
    );
    assert!(f[0].blocking && f[1].blocking && !f[2].blocking);

    // Mid-upgrade (an operation running), a NotReady node is expected: a warning.
    act.in_flight.push(crate::model::InFlightOperation {
        id: "u-1".into(),
        resource: "node_group.general".into(),
        kind: "VersionUpdate".into(),
        target: None,
    });
    let f = check(&spec, &act, 30);
    let n1 = f.iter().find(|f| f.subject == "node n1").unwrap();
    assert_eq!(n1.severity, Severity::Warning);
}

#[test]
fn unmanaged_addons_incompatible_with_a_hop_block_and_bundled_ones_are_noted() {
    let mut spec = cluster_spec("1.30", vec![]);
    spec.preflight.addons = CheckMode::Block;
    let mut act = actual("1.28", vec![]);
    act.addons = vec![addon(
        "vpc-cni",
        "v1.12.0",
        &[
            (29, &["v1.12.0", "v1.18.0"], "v1.18.0"),
            (30, &["v1.18.0"], "v1.18.0"),
        ],
    )];
    let f = check(&spec, &act, 30);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].subject, "add-on vpc-cni");
    assert_eq!(f[0].minor, Some(m(30)));
    assert!(f[0].blocking);
    assert!(f[0]
        .remedy
        .as_deref()
        .unwrap()
        .contains("addon \"vpc-cni\""));

    // Managed add-ons are planned as steps, so they are not findings.
    let mut managed = spec.clone();
    managed.addons.push(crate::model::AddonSpec {
        name: "vpc-cni".into(),
        version: crate::model::AddonVersionReq::Compatible,
        origin: None,
    });
    assert!(check(&managed, &act, 30).is_empty());

    let policy = ProviderPolicy {
        bundled_addons: Some("CoreDNS moves with the servers".into()),
        ..ProviderPolicy::default()
    };
    let plain = actual("1.28", vec![]);
    let f = without_kube_note(findings(&Context {
        spec: &spec,
        actual: &plain,
        policy: &policy,
        target: m(29),
        today: None,
    }));
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].check, f[0].severity), (Check::Addon, Severity::Info));
}

#[test]
fn insights_block_only_when_failing_for_a_minor_on_the_path() {
    let spec = cluster_spec("1.30", vec![]);
    let mut act = actual("1.29", vec![]);
    let insight = |id: &str, minor: u32, status: &str| {
        Insight {
        id: id.into(),
        name: format!("Deprecated APIs removed in Kubernetes v1.{minor}"),
        category: "UPGRADE_READINESS".into(),
        minor: Some(m(minor)),
        status: status.into(),
        reason: "reason".into(),
        recommendation: "update the manifests".into(),
        details: vec!["/apis/x/v1beta1/things is removed in 1.30, called by kubectl/v1.20 (12 requests in 30 days)".into()],
    }
    };
    act.insights = vec![
        insight("a", 30, "ERROR"),
        insight("b", 31, "ERROR"),
        insight("c", 30, "PASSING"),
        insight("d", 30, "WARNING"),
    ];
    let f = check(&spec, &act, 30);
    let by_id = |id: &str| {
        f.iter()
            .find(|f| f.subject == format!("insight {id}"))
            .unwrap()
    };
    assert_eq!(
        (by_id("a").severity, by_id("a").blocking),
        (Severity::Error, true)
    );
    assert!(by_id("a").message.contains("called by kubectl/v1.20"));
    assert_eq!(by_id("a").remedy.as_deref(), Some("update the manifests"));
    assert_eq!(by_id("b").severity, Severity::Warning);
    assert_eq!(by_id("c").severity, Severity::Info);
    assert_eq!(by_id("c").remedy, None);
    assert_eq!(by_id("d").severity, Severity::Warning);
}

#[test]
fn support_dates_prefer_the_provider_and_warn_near_the_end() {
    let spec = cluster_spec("1.30", vec![]);
    let mut act = actual("1.29", vec![]);
    act.support = vec![SupportDates {
        minor: m(30),
        end_of_standard: Some("2026-12-01".into()),
        end_of_extended: Some("2027-12-01".into()),
    }];
    let f = findings(&Context {
        spec: &spec,
        actual: &act,
        policy: &eks_policy(),
        target: m(30),
        today: Some(date!(2026 - 11 - 23)),
    });
    let target = f.iter().find(|f| f.subject == "1.30").unwrap();
    assert_eq!(target.severity, Severity::Warning);
    assert_eq!(
        target.message,
        "the target version reaches its end of standard support on EKS on 2026-12-01, in 8 days; extended support (charged) until 2027-12-01"
    );
    // 1.29 from kup's table (EKS standard support ended 2025-03-23).
    let running = f.iter().find(|f| f.subject == "1.29").unwrap();
    assert_eq!(running.severity, Severity::Warning);
    assert!(running
        .message
        .starts_with("the running version is past its end of standard support on EKS"));
    assert!(!f.iter().any(|f| f.blocking));
}

#[test]
fn upgrade_protection_is_noted_and_an_active_override_warned() {
    let spec = cluster_spec("1.30", vec![]);
    let mut act = actual("1.29", vec![]);
    act.upgrade_protection = Some(UpgradeProtection {
        force_upgrade: true,
        until: Some("2026-12-01T00:00:00Z".into()),
    });
    let at = |today| {
        findings(&Context {
            spec: &spec,
            actual: &act,
            policy: &ProviderPolicy::default(),
            target: m(30),
            today: Some(today),
        })
        .into_iter()
        .find(|f| f.check == Check::UpgradeProtection)
        .unwrap()
    };
    assert_eq!(at(date!(2026 - 11 - 23)).severity, Severity::Warning);
    // Expired: protection is on again.
    assert_eq!(at(date!(2026 - 12 - 02)).severity, Severity::Info);
}

#[test]
fn postflight_waits_for_the_baseline_and_ignores_what_was_already_broken() {
    let groups: BTreeMap<String, Minor> = [("general".to_string(), m(30))].into();
    let before = vec!["shop/Deployment/web".to_string()];
    let pending_before = vec!["shop/ReplicaSet/big-rs".to_string()];
    let mut kube = KubeSnapshot {
        nodes: vec![
            node("n1", "general", "1.30.2", true),
            node("n2", "general", "1.29.3", true),
        ],
        pods: vec![pod("big-2", Some("big-rs"), "Pending")],
        pdbs: vec![],
    };
    let workloads = vec![workload("web", 2, 1), workload("was-down", 1, 0)];
    let e = postflight_verdict(&kube, &workloads, &groups, &before, &pending_before).unwrap_err();
    assert_eq!(
        e,
        [
            "kubelets not at the planned version: n2 (general) runs 1.29.3, not 1.30",
            "workloads available before the upgrade are not now: shop/Deployment/web has 1/2 available",
        ]
    );
    kube.nodes[1] = node("n2", "general", "1.30.2", true);
    kube.pods.push(pod("web-9", Some("web-rs"), "Pending"));
    let workloads = vec![workload("web", 2, 2)];
    let e = postflight_verdict(&kube, &workloads, &groups, &before, &pending_before).unwrap_err();
    assert_eq!(e, ["pods Pending that were not before: shop/web-9"]);
    kube.pods.pop();
    let ok = postflight_verdict(&kube, &workloads, &groups, &before, &pending_before).unwrap();
    assert_eq!(
        ok,
        [
            "2 node(s) Ready",
            "kubelets at 1.30 in general",
            "1 workload(s) available as before",
            "no new Pending pods",
        ]
    );
    // Deleted since the plan: said, not failed.
    let gone = postflight_verdict(&kube, &[], &groups, &before, &pending_before).unwrap();
    assert!(
        gone.contains(&"deleted since the plan: shop/Deployment/web".to_string()),
        "{gone:?}"
    );
    // A NotReady node outside the planned groups, and a smoke pod left Pending by a killed
    // run, are not this upgrade's to prove.
    kube.nodes
        .push(node("spot-1", "unmanaged", "1.28.1", false));
    let mut smoke = pod("kup-smoke-1", None, "Pending");
    smoke.labels = [(
        "app.kubernetes.io/name".to_string(),
        "kup-smoke".to_string(),
    )]
    .into();
    kube.pods.push(smoke);
    assert!(postflight_verdict(&kube, &workloads, &groups, &before, &pending_before).is_ok());
    kube.nodes[0].ready = false;
    let e = postflight_verdict(&kube, &workloads, &groups, &before, &pending_before).unwrap_err();
    assert_eq!(e, ["nodes not Ready: n1"]);
}

#[test]
fn kubeadm_reports_its_components_and_warns_about_a_cni_it_does_not_move() {
    let mut spec = cluster_spec("1.31", vec![]);
    spec.provider = "kubeadm".into();
    let mut act = actual("1.30", vec![]);
    act.scan = Some(ClusterScan {
        components: vec![
            crate::kube::Component {
                workload: "DaemonSet/calico-node".into(),
                image: "quay.io/calico/node:v3.26.1".into(),
            },
            crate::kube::Component {
                workload: "Deployment/coredns".into(),
                image: "registry.k8s.io/coredns/coredns:v1.11.1".into(),
            },
            crate::kube::Component {
                workload: "DaemonSet/kube-proxy".into(),
                image: "registry.k8s.io/kube-proxy:v1.30.4".into(),
            },
        ],
        ..ClusterScan::default()
    });
    let policy = ProviderPolicy {
        bundled_addons: Some("kubeadm moves CoreDNS and kube-proxy".into()),
        ..ProviderPolicy::default()
    };
    let run = |spec: &ClusterSpec| {
        without_kube_note(findings(&Context {
            spec,
            actual: &act,
            policy: &policy,
            target: m(31),
            today: None,
        }))
    };
    let f = run(&spec);
    let lines: Vec<String> = f
        .iter()
        .map(|f| format!("{:?} {}", f.severity, f.line()))
        .collect();
    assert_eq!(
        lines,
        [
            "Warning CNI calico-node: quay.io/calico/node:v3.26.1 is not upgraded by kubeadm and no cni_upgrade is configured; the plan takes the cluster to 1.31",
            "Info bundled add-ons: kubeadm moves CoreDNS and kube-proxy",
            "Info kube-system: runs calico-node v3.26.1, coredns v1.11.1, kube-proxy v1.30.4",
        ]
    );
    // With a cni_upgrade command, the CNI is the plan's to move.
    let mut with_cni = spec.clone();
    with_cni.kubeadm = Some(crate::model::KubeadmSpec {
        cni_upgrade: vec![
            "kubectl".into(),
            "apply".into(),
            "-f".into(),
            "calico.yaml".into(),
        ],
        ..Default::default()
    });
    assert!(run(&with_cni).iter().all(|f| f.severity == Severity::Info));
}

#[test]
fn an_unhealthy_cluster_blocks_only_a_plan_that_moves_it() {
    let sick = |version: &str| {
        let mut act = actual(version, vec![actual_ng("general", version, 2)]);
        act.kube = Some(KubeSnapshot {
            nodes: vec![node("n1", "general", &format!("{version}.3"), false)],
            pods: vec![],
            pdbs: vec![],
        });
        act
    };
    // Nothing to move: planned, with the finding as a warning.
    let p = crate::planner::tests::run(
        cluster_spec("1.29", vec![ng_spec("general", "1.29")]),
        sick("1.29"),
        eks_policy(),
    )
    .unwrap();
    assert!(p.steps.is_empty());
    assert!(
        p.clusters[0]
            .warnings
            .iter()
            .any(|w| w == "node n1: is NotReady"),
        "{:?}",
        p.clusters[0].warnings
    );
    // An upgrade: refused, naming the node and the fix once.
    let e = crate::planner::tests::run(
        cluster_spec("1.30", vec![ng_spec("general", "1.30")]),
        sick("1.29"),
        eks_policy(),
    )
    .unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        e[0].message,
        "the cluster is not healthy enough to upgrade: node n1: is NotReady"
    );
    assert_eq!(
        e[0].hint
            .as_deref()
            .map(|h| h.matches("repair or replace").count()),
        Some(1)
    );
}
