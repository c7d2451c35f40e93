//! Planning cost of the pure planner: 1,000 clusters × 10 node groups, 1.26 → 1.31
//! (five hops, two rollouts per group), against 100 clusters for the scaling ratio.
//!
//!     cargo bench --bench planner

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kup_engine::model::{
    ActualCluster, ActualNodeGroup, ClusterSpec, Desired, DrainSpec, NodeGroupSpec, Strategy,
    Unavailable,
};
use kup_engine::planner::{plan, PlanInput, PlanOptions};
use kup_engine::policy::ProviderPolicy;
use kup_engine::Version;

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn world(clusters: usize, groups: usize) -> (Desired, BTreeMap<String, ActualCluster>) {
    let mut desired = Desired::default();
    let mut actual = BTreeMap::new();
    for c in 0..clusters {
        let label = format!("c{c:04}");
        let node_groups = (0..groups)
            .map(|g| NodeGroupSpec {
                hosts: Vec::new(),
                node_selector: None,
                tolerations: Vec::new(),
                window: None,
                batch_soak: None,
                timeout: None,
                name: format!("ng{g}"),
                version: v("1.31"),
                follows_cluster: false,
                strategy: Strategy::Rolling {
                    max_unavailable: Unavailable::Percent(25),
                    max_surge: None,
                },
                drain: DrainSpec::default(),
                origin: None,
                version_origin: None,
                node_soak: None,
            })
            .collect();
        desired.clusters.push(ClusterSpec {
            postflight: Default::default(),
            hooks: Vec::new(),
            preflight: Default::default(),
            kubeadm: None,
            channel: None,
            namespace: None,
            upgrade_image: None,
            keep_plans: false,
            label: label.clone(),
            provider: "eks".into(),
            name: label.clone(),
            region: None,
            version: v("1.31"),
            version_alias: None,
            addons: vec![],
            node_groups,
            kubeconfig: None,
            context: None,
            parallel_node_groups: 2,
            origin: None,
            version_origin: None,
        });
        actual.insert(
            label.clone(),
            ActualCluster {
                scan: None,
                insights: Vec::new(),
                upgrade_protection: None,
                support: Vec::new(),
                api_uses: Vec::new(),
                upgrade_plans: Vec::new(),
                name: label,
                region: None,
                version: v("1.26"),
                platform_version: None,
                status: "ACTIVE".into(),
                offered_versions: (26..=34).map(|m| v(&format!("1.{m}.3"))).collect(),
                node_groups: (0..groups)
                    .map(|g| ActualNodeGroup {
                        control_plane: false,
                        name: format!("ng{g}"),
                        version: v("1.26"),
                        release_version: None,
                        status: "ACTIVE".into(),
                        desired_size: 8,
                        min_size: 2,
                        max_size: 16,
                        max_unavailable: Some(Unavailable::Percent(25)),
                        health_issues: vec![],
                        labels: BTreeMap::new(),
                        blue_green: None,
                        upgrade_phase: None,
                        drain_limits: None,
                        max_surge: None,
                        node_soak: None,
                    })
                    .collect(),
                addons: vec![],
                in_flight: vec![],
                kube: None,
                auto_upgrade: None,
                default_version: None,
                maintenance: None,
            },
        );
    }
    (desired, actual)
}

fn bench(c: &mut Criterion) {
    let policies: BTreeMap<String, ProviderPolicy> = [(
        "eks".to_string(),
        ProviderPolicy {
            control_plane_minor_only: true,
            addons_track_control_plane: true,
            ..ProviderPolicy::default()
        },
    )]
    .into();
    let options = PlanOptions::default();
    let mut group = c.benchmark_group("plan");
    group.sample_size(20);
    for clusters in [100usize, 1000] {
        let (desired, actual) = world(clusters, 10);
        group.bench_with_input(
            BenchmarkId::new("clusters_x10_node_groups", clusters),
            &clusters,
            |b, _| {
                b.iter(|| {
                    let p = plan(&PlanInput {
                        desired: &desired,
                        actual: &actual,
                        policies: &policies,
                        options: &options,
                    })
                    .unwrap();
                    assert_eq!(p.steps.len(), clusters * (5 + 20));
                    p
                })
            },
        );
    }
    group.finish();
    // Peak memory of planning 1,000 clusters: the process's high-water mark after one
    // plan (inputs, plan and criterion's own state), against its size before the inputs.
    if let Some(before) = rss_kib("VmRSS") {
        let (desired, actual) = world(1000, 10);
        let p = plan(&PlanInput {
            desired: &desired,
            actual: &actual,
            policies: &policies,
            options: &options,
        })
        .unwrap();
        let plan_json = serde_json::to_vec(&p).unwrap().len();
        if let Some(peak) = rss_kib("VmHWM") {
            println!(
                "peak RSS with the 1,000-cluster plan: {} MiB (process before building the inputs: {} MiB; the plan as JSON: {} MiB)",
                peak / 1024,
                before / 1024,
                plan_json >> 20
            );
        }
    }
}

/// A `/proc/self/status` field in KiB (Linux only).
fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

criterion_group!(benches, bench);
criterion_main!(benches);
