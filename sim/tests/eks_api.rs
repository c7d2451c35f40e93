//! The real aws-sdk-eks client against the simulator over HTTP on 127.0.0.1.

mod common;

use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::types::{
    ClusterStatus, ErrorCode, NodegroupScalingConfig, NodegroupStatus, NodegroupUpdateConfig,
    UpdateParamType, UpdateStatus, UpdateType,
};
use common::{start, start_with, CLUSTER, WORLD};

const FAST: f64 = 6000.0;

#[tokio::test]
async fn describe_cluster_has_realistic_fields() {
    let h = start(FAST, "").await;
    let c = h
        .eks
        .describe_cluster()
        .name(CLUSTER)
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap();
    assert_eq!(c.name(), Some(CLUSTER));
    assert_eq!(c.version(), Some("1.28"));
    assert_eq!(c.platform_version(), Some("eks.5"));
    assert_eq!(c.status(), Some(&ClusterStatus::Active));
    assert_eq!(
        c.arn(),
        Some("arn:aws:eks:eu-west-1:123456789012:cluster/prod-eu")
    );
    assert!(c.created_at().unwrap().secs() > 1_000_000_000);
    // The endpoint is the cluster's simulated Kubernetes API server.
    assert_eq!(
        c.endpoint(),
        Some(h.sim.endpoints().kube[CLUSTER].as_str()),
        "{c:?}"
    );
    assert!(c.endpoint().unwrap().starts_with("http://127.0.0.1:"));
    let ca = c.certificate_authority().unwrap().data().unwrap();
    assert!(
        ca.starts_with("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"),
        "{ca}"
    );
    assert!(c.health().unwrap().issues().is_empty());

    let list = h.eks.list_clusters().send().await.unwrap();
    assert_eq!(list.clusters(), ["prod-eu".to_string()]);

    let err = h
        .eks
        .describe_cluster()
        .name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn control_plane_update_lifecycle() {
    // Hang the cluster first so the in-progress state can be observed deterministically.
    let h = start(FAST, "hang=prod-eu").await;
    let out = h
        .eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .send()
        .await
        .unwrap();
    let u = out.update.unwrap();
    assert_eq!(u.status, Some(UpdateStatus::InProgress));
    assert_eq!(u.r#type, Some(UpdateType::VersionUpdate));
    let params: Vec<(UpdateParamType, String)> = u
        .params()
        .iter()
        .map(|p| (p.r#type.clone().unwrap(), p.value.clone().unwrap()))
        .collect();
    assert!(params.contains(&(UpdateParamType::Version, "1.29".into())));
    assert!(params.contains(&(UpdateParamType::PlatformVersion, "eks.10".into())));
    let c = h.eks.describe_cluster().name(CLUSTER).send().await.unwrap();
    assert_eq!(
        c.cluster().unwrap().status(),
        Some(&ClusterStatus::Updating)
    );
    assert_eq!(c.cluster().unwrap().version(), Some("1.28"));
    let ids = h.eks.list_updates().name(CLUSTER).send().await.unwrap();
    assert_eq!(ids.update_ids(), [u.id.clone().unwrap()]);

    h.clear_faults().await;
    let done = h.wait_update(u.id().unwrap(), None, None).await;
    assert_eq!(done.status, Some(UpdateStatus::Successful));
    assert!(done.errors().is_empty());
    let c = h.eks.describe_cluster().name(CLUSTER).send().await.unwrap();
    let c = c.cluster().unwrap();
    assert_eq!(c.version(), Some("1.29"));
    assert_eq!(c.platform_version(), Some("eks.10"));
    assert_eq!(c.status(), Some(&ClusterStatus::Active));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn skipping_a_minor_is_refused() {
    let h = start(FAST, "").await;
    for (v, needle) in [
        (
            "1.30",
            "Unsupported Kubernetes minor version update from 1.28 to 1.30",
        ),
        (
            "1.27",
            "Unsupported Kubernetes minor version update from 1.28 to 1.27",
        ),
        ("1.28", "already"),
        ("banana", "banana"),
    ] {
        let err = h
            .eks
            .update_cluster_version()
            .name(CLUSTER)
            .version(v)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_invalid_parameter_exception(), "{v}: {err:?}");
        assert!(err.message().unwrap().contains(needle), "{v}: {err:?}");
    }
    // Nothing was started.
    let ids = h.eks.list_updates().name(CLUSTER).send().await.unwrap();
    assert!(ids.update_ids().is_empty());
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn nodegroup_newer_than_control_plane_is_refused() {
    let h = start(FAST, "").await;
    let err = h
        .eks
        .update_nodegroup_version()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .version("1.29")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    assert!(err.message().unwrap().contains("newer"), "{err:?}");

    // Omitting the version moves to the newest AMI for the current minor.
    let u = h
        .eks
        .update_nodegroup_version()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = h.wait_update(u.id().unwrap(), Some("general"), None).await;
    assert_eq!(done.status, Some(UpdateStatus::Successful));
    let ng = h
        .eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.version(), Some("1.28"));
    assert_eq!(ng.release_version(), Some("1.28.15-20250407"));
    assert_eq!(ng.status(), Some(&NodegroupStatus::Active));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn concurrent_updates_get_resource_in_use() {
    let h = start(FAST, "hang=prod-eu").await;
    h.eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .send()
        .await
        .unwrap();
    let err = h
        .eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .send()
        .await
        .unwrap_err();
    let raw_status = err.raw_response().map(|r| r.status().as_u16());
    let err = err.into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    assert_eq!(raw_status, Some(409));
    // Node-group and add-on updates are refused while the control plane updates.
    let err = h
        .eks
        .update_nodegroup_version()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    let err = h
        .eks
        .update_addon()
        .cluster_name(CLUSTER)
        .addon_name("coredns")
        .addon_version("v1.10.1-eksbuild.7")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn token_replay_returns_same_update_and_counts_one_mutation() {
    let h = start(FAST, "").await;
    let call = || {
        h.eks
            .update_cluster_version()
            .name(CLUSTER)
            .version("1.29")
            .client_request_token("plan-1/step-3")
            .send()
    };
    let a = call().await.unwrap().update.unwrap();
    let b = call().await.unwrap().update.unwrap();
    assert_eq!(a.id, b.id);
    // Even after completion the replay answers with the same update.
    h.wait_update(a.id().unwrap(), None, None).await;
    let c = call().await.unwrap().update.unwrap();
    assert_eq!(a.id, c.id);
    assert_eq!(c.status, Some(UpdateStatus::Successful));

    let calls = h.admin_get("calls").await;
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 3);
    let mutations: Vec<_> = calls.iter().filter(|c| c["mutation"] == true).collect();
    assert_eq!(mutations.len(), 1);
    assert_eq!(mutations[0]["op"], "UpdateClusterVersion");
    assert_eq!(mutations[0]["client_request_token"], "plan-1/step-3");
    assert_eq!(mutations[0]["update_id"], a.id.clone().unwrap());
    assert_eq!(calls.iter().filter(|c| c["replay"] == true).count(), 2);
    let ids = h.eks.list_updates().name(CLUSTER).send().await.unwrap();
    assert_eq!(ids.update_ids().len(), 1);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn describe_update_needs_nodegroup_name_for_nodegroup_updates() {
    let h = start(FAST, "").await;
    let u = h
        .eks
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(3)
                .max_size(9)
                .desired_size(4)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    assert_eq!(u.r#type, Some(UpdateType::ConfigUpdate));
    let id = u.id().unwrap();
    let err = h
        .eks
        .describe_update()
        .name(CLUSTER)
        .update_id(id)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let done = h.wait_update(id, Some("general"), None).await;
    assert_eq!(done.status, Some(UpdateStatus::Successful));
    let ng = h
        .eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    let s = ng.scaling_config().unwrap();
    assert_eq!(
        (s.min_size, s.max_size, s.desired_size),
        (Some(3), Some(9), Some(4))
    );
    // ListUpdates filters by node group; the cluster-level list stays empty.
    let ng_ids = h
        .eks
        .list_updates()
        .name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap();
    assert_eq!(ng_ids.update_ids(), [id.to_string()]);
    let cp_ids = h.eks.list_updates().name(CLUSTER).send().await.unwrap();
    assert!(cp_ids.update_ids().is_empty());
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn nodegroup_config_validation() {
    let h = start(FAST, "").await;
    let err = h
        .eks
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .update_config(
            NodegroupUpdateConfig::builder()
                .max_unavailable(1)
                .max_unavailable_percentage(10)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    let err = h
        .eks
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .update_config(
            NodegroupUpdateConfig::builder()
                .max_unavailable(101)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    let u = h
        .eks
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .update_config(
            NodegroupUpdateConfig::builder()
                .max_unavailable_percentage(50)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    h.wait_update(u.id().unwrap(), Some("general"), None).await;
    let ng = h
        .eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    let uc = ng.update_config().unwrap();
    assert_eq!(uc.max_unavailable_percentage, Some(50));
    assert_eq!(uc.max_unavailable, None);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn injected_throttle_and_500_are_visible_without_retries() {
    let h = start(FAST, "throttle=1").await;
    let err = h
        .eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 429);
    let err = err.into_service_error();
    assert!(err.is_throttling_exception(), "{err:?}");
    // DescribeCluster does not model ThrottlingException: the code still comes through.
    let err = h
        .eks
        .describe_cluster()
        .name(CLUSTER)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ThrottlingException"));

    h.set_faults("error500=1").await;
    let err = h
        .eks
        .describe_cluster()
        .name(CLUSTER)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 500);
    assert!(err.into_service_error().is_server_exception());

    // The throttled mutation was recorded but changed nothing.
    let calls = h.admin_get("calls").await;
    assert_eq!(calls[0]["error"], "ThrottlingException");
    assert_eq!(calls[0]["mutation"], false);
    h.clear_faults().await;
    let c = h.eks.describe_cluster().name(CLUSTER).send().await.unwrap();
    assert_eq!(c.cluster().unwrap().version(), Some("1.28"));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn seeded_rates_are_deterministic() {
    async fn outcomes() -> Vec<bool> {
        let h = start(FAST, "seed=7,throttle=0.3,error500=0.2").await;
        let mut v = Vec::new();
        for _ in 0..20 {
            v.push(h.eks.list_clusters().send().await.is_ok());
        }
        h.sim.shutdown().await.unwrap();
        v
    }
    let a = outcomes().await;
    let b = outcomes().await;
    assert_eq!(a, b);
    assert!(a.iter().any(|x| !x) && a.iter().any(|x| *x), "{a:?}");
}

#[tokio::test]
async fn fail_fault_ends_update_failed_with_code() {
    let h = start(FAST, "fail=prod-eu/general:PodEvictionFailure").await;
    let cp = h
        .eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    // The fault targets the node group, so the control plane succeeds.
    assert_eq!(
        h.wait_update(cp.id().unwrap(), None, None).await.status,
        Some(UpdateStatus::Successful)
    );
    let u = h
        .eks
        .update_nodegroup_version()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .version("1.29")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = h.wait_update(u.id().unwrap(), Some("general"), None).await;
    assert_eq!(done.status, Some(UpdateStatus::Failed));
    let e = &done.errors()[0];
    assert_eq!(e.error_code, Some(ErrorCode::PodEvictionFailure));
    assert!(e.error_message().unwrap().contains("general"), "{e:?}");
    let ng = h
        .eks
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.version(), Some("1.28"));
    assert_eq!(ng.status(), Some(&NodegroupStatus::Active));
    // The fault was consumed: the retry succeeds.
    let u = h
        .eks
        .update_nodegroup_version()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .version("1.29")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = h.wait_update(u.id().unwrap(), Some("general"), None).await;
    assert_eq!(done.status, Some(UpdateStatus::Successful));

    // Runtime fault on an add-on with a custom message.
    h.set_faults("fail=prod-eu/addon:kube-proxy:ConfigurationConflict:conflicts on field x")
        .await;
    let u = h
        .eks
        .update_addon()
        .cluster_name(CLUSTER)
        .addon_name("kube-proxy")
        .addon_version("v1.29.0-eksbuild.1")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = h
        .wait_update(u.id().unwrap(), None, Some("kube-proxy"))
        .await;
    assert_eq!(done.status, Some(UpdateStatus::Failed));
    assert_eq!(
        done.errors()[0].error_code,
        Some(ErrorCode::ConfigurationConflict)
    );
    assert_eq!(
        done.errors()[0].error_message(),
        Some("conflicts on field x")
    );
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn force_gets_past_pod_eviction_failure() {
    let h = start(FAST, "fail=prod-eu/general:PodEvictionFailure").await;
    let u = h
        .eks
        .update_nodegroup_version()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .force(true)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = h.wait_update(u.id().unwrap(), Some("general"), None).await;
    assert_eq!(done.status, Some(UpdateStatus::Successful));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn addon_versions_and_updates() {
    // Slow enough that the add-on update (60 simulated seconds) is still running, one real
    // second later, when the test reads the add-on in the middle of it, even on a loaded
    // machine; at FAST it could finish first.
    let h = start(60.0, "").await;
    let out = h
        .eks
        .describe_addon_versions()
        .kubernetes_version("1.29")
        .addon_name("kube-proxy")
        .send()
        .await
        .unwrap();
    let info = &out.addons()[0];
    assert_eq!(info.addon_name(), Some("kube-proxy"));
    let versions = info.addon_versions();
    assert!(versions.len() >= 2);
    let mut defaults = 0;
    for v in versions {
        assert!(v.addon_version().unwrap().starts_with("v1.29."), "{v:?}");
        for c in v.compatibilities() {
            assert_eq!(c.cluster_version(), Some("1.29"));
            if c.default_version() {
                defaults += 1;
            }
        }
    }
    assert_eq!(defaults, 1);

    // Paginate all add-ons one per page with the SDK paginator.
    let all: Vec<_> = h
        .eks
        .describe_addon_versions()
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|a| a.addon_name().unwrap().to_string())
        .collect();
    assert_eq!(names, ["coredns", "kube-proxy", "vpc-cni"]);

    // kube-proxy for 1.29 is not compatible with a 1.28 cluster.
    let err = h
        .eks
        .update_addon()
        .cluster_name(CLUSTER)
        .addon_name("kube-proxy")
        .addon_version("v1.29.0-eksbuild.1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    assert!(
        err.message().unwrap().contains("v1.28.15-eksbuild.4"),
        "{err:?}"
    );

    let u = h
        .eks
        .update_addon()
        .cluster_name(CLUSTER)
        .addon_name("kube-proxy")
        .addon_version("v1.28.15-eksbuild.4")
        .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    assert_eq!(u.r#type, Some(UpdateType::AddonUpdate));
    let a = h
        .eks
        .describe_addon()
        .cluster_name(CLUSTER)
        .addon_name("kube-proxy")
        .send()
        .await
        .unwrap()
        .addon
        .unwrap();
    assert_eq!(a.addon_version(), Some("v1.28.4-eksbuild.1"));
    let done = h
        .wait_update(u.id().unwrap(), None, Some("kube-proxy"))
        .await;
    assert_eq!(done.status, Some(UpdateStatus::Successful));
    let a = h
        .eks
        .describe_addon()
        .cluster_name(CLUSTER)
        .addon_name("kube-proxy")
        .send()
        .await
        .unwrap()
        .addon
        .unwrap();
    assert_eq!(a.addon_version(), Some("v1.28.15-eksbuild.4"));
    assert_eq!(a.status(), Some(&aws_sdk_eks::types::AddonStatus::Active));
    let list = h
        .eks
        .list_addons()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(list.addons(), ["coredns", "kube-proxy", "vpc-cni"]);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn cluster_versions_catalog() {
    let h = start(FAST, "").await;
    let out = h
        .eks
        .describe_cluster_versions()
        .cluster_versions("1.28")
        .cluster_versions("1.31")
        .send()
        .await
        .unwrap();
    let v = out.cluster_versions();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].cluster_version(), Some("1.31"));
    assert_eq!(v[0].kubernetes_patch_version(), Some("1.31.7"));
    assert_eq!(v[1].kubernetes_patch_version(), Some("1.28.15"));
    assert_eq!(
        v[1].version_status(),
        Some(&aws_sdk_eks::types::VersionStatus::ExtendedSupport)
    );
    assert!(v[1].end_of_standard_support_date().unwrap().secs() > 1_700_000_000);

    let all: Vec<_> = h
        .eks
        .describe_cluster_versions()
        .include_all(true)
        .max_results(5)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 12);
    assert_eq!(all[0].cluster_version(), Some("1.34"));
    assert_eq!(all.last().unwrap().cluster_version(), Some("1.23"));
    let defaults: Vec<_> = all.iter().filter(|v| v.default_version()).collect();
    assert_eq!(defaults.len(), 1);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn create_and_delete_nodegroup() {
    let h = start(FAST, "").await;
    let ng = h
        .eks
        .create_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general-green")
        .subnets("subnet-1")
        .node_role("arn:aws:iam::123456789012:role/node")
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(4)
                .desired_size(3)
                .build(),
        )
        .client_request_token("bg-create-1")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(ng.status(), Some(&NodegroupStatus::Creating));
    assert_eq!(ng.version(), Some("1.28"));
    // Replay with the same token: same node group, no second creation.
    let again = h
        .eks
        .create_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general-green")
        .subnets("subnet-1")
        .node_role("arn:aws:iam::123456789012:role/node")
        .client_request_token("bg-create-1")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(again.nodegroup_arn(), ng.nodegroup_arn());
    // A different token for an existing name is refused.
    let err = h
        .eks
        .create_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general-green")
        .subnets("subnet-1")
        .node_role("arn:aws:iam::123456789012:role/node")
        .client_request_token("other")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");

    let mut status = None;
    for _ in 0..3000 {
        let d = h
            .eks
            .describe_nodegroup()
            .cluster_name(CLUSTER)
            .nodegroup_name("general-green")
            .send()
            .await
            .unwrap();
        status = d.nodegroup.unwrap().status;
        if status != Some(NodegroupStatus::Creating) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, Some(NodegroupStatus::Active));
    let names = h
        .eks
        .list_nodegroups()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(names.nodegroups(), ["general", "general-green"]);

    let del = h
        .eks
        .delete_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(del.status(), Some(&NodegroupStatus::Deleting));
    let mut gone = false;
    for _ in 0..3000 {
        match h
            .eks
            .describe_nodegroup()
            .cluster_name(CLUSTER)
            .nodegroup_name("general")
            .send()
            .await
        {
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            Err(e) => {
                assert!(e.into_service_error().is_resource_not_found_exception());
                gone = true;
                break;
            }
        }
    }
    assert!(gone);
    let calls = h.admin_get("calls").await;
    let ops: Vec<(String, bool)> = calls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["op"].as_str().unwrap().to_string(), c["mutation"] == true))
        .collect();
    assert_eq!(
        ops,
        [
            ("CreateNodegroup".to_string(), true),
            ("CreateNodegroup".to_string(), false),
            ("CreateNodegroup".to_string(), false),
            ("DeleteNodegroup".to_string(), true)
        ]
    );
    h.sim.shutdown().await.unwrap();
}

const SKEW_WORLD: &str = r#"
settings { strict_nodegroup_skew = STRICT }
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.28"
  node_group "old"   { version = "OLD" }
  node_group "fresh" { version = "1.28" }
}
"#;

async fn skew_attempt(strict: bool, old: &str) -> Result<(), String> {
    let world = SKEW_WORLD
        .replace("STRICT", if strict { "true" } else { "false" })
        .replace("OLD", old);
    let h = start_with(&world, "world.hcl", FAST, "").await;
    let r = h
        .eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .send()
        .await;
    h.sim.shutdown().await.unwrap();
    match r {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = e.into_service_error();
            assert!(e.is_invalid_request_exception(), "{e:?}");
            let msg = e.message().unwrap().to_string();
            assert!(msg.contains("old"), "{msg}");
            Err(msg)
        }
    }
}

#[tokio::test]
async fn nodegroup_skew_rules() {
    // User-guide rule (default): kubelet >= 1.25 may be 3 minors behind the new version.
    assert!(skew_attempt(false, "1.26").await.is_ok());
    assert!(skew_attempt(false, "1.25").await.is_err());
    // < 1.25: only 2 behind.
    assert!(skew_attempt(false, "1.24").await.is_err());
    // API-doc rule: every node group must match the current version.
    assert!(skew_attempt(true, "1.28").await.is_ok());
    assert!(skew_attempt(true, "1.27").await.is_err());
}

#[tokio::test]
async fn unsigned_requests_and_unknown_routes() {
    let h = start(FAST, "").await;
    let base = h.sim.endpoints().eks;
    let r = reqwest::get(format!("{base}/clusters/{CLUSTER}"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
    let r = reqwest::Client::new()
        .get(format!("{base}/no/such/route"))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKID/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["x-amzn-errortype"], "NotFoundException");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("/no/such/route"));
    let health = reqwest::get(format!("{}/health", h.admin())).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let bad = reqwest::Client::new()
        .post(format!("{}/faults", h.admin()))
        .body("throttle=7")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().await.unwrap().contains("throttle=7"));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn list_pagination_with_sdk_paginator() {
    let h = start(FAST, "").await;
    for ng in ["a1", "a2", "a3", "a4"] {
        h.eks
            .create_nodegroup()
            .cluster_name(CLUSTER)
            .nodegroup_name(ng)
            .subnets("subnet-1")
            .node_role("arn:aws:iam::123456789012:role/node")
            .send()
            .await
            .unwrap();
    }
    let pages: Vec<_> = h
        .eks
        .list_nodegroups()
        .cluster_name(CLUSTER)
        .max_results(2)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 3);
    let names: Vec<String> = pages.iter().flat_map(|p| p.nodegroups().to_vec()).collect();
    assert_eq!(names, ["a1", "a2", "a3", "a4", "general"]);
    let err = h
        .eks
        .list_nodegroups()
        .cluster_name(CLUSTER)
        .next_token("garbage")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn world_json_admin_view() {
    let h = start(FAST, "").await;
    let w = h.admin_get("world").await;
    assert_eq!(w["cluster"]["prod-eu"]["version"], "1.28");
    assert_eq!(
        w["cluster"]["prod-eu"]["node_group"]["general"]["labels"]["team"],
        "core"
    );
    assert_eq!(w["settings"]["account_id"], "123456789012");
    let _ = WORLD;
    h.sim.shutdown().await.unwrap();
}
