//! The EKS provider against kup's simulator, over HTTP with the real `aws-sdk-eks` client.
//!
//! Each test starts its own simulator on a free loopback port with its own world file.
//! No test asserts wall-clock durations; loops that wait on the simulator are bounded only
//! so a broken simulator fails the test instead of hanging it.
#![cfg(feature = "eks")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kup_engine::model::{ProviderSpec, Unavailable};
use kup_engine::plan::Action;
use kup_engine::{Minor, Version};
use kup_provider::{ClusterTarget, ErrorKind, OperationId, OperationStatus, Provider};
use kup_sim::{FaultSpec, Sim, SimConfig};

const WORLD: &str = r#"
cluster "prod" {
  region  = "eu-west-1"
  version = "1.28"
  node_group "general" {
    version         = "1.28"
    desired_size    = 3
    min_size        = 1
    max_size        = 5
    max_unavailable = 1
    labels          = { team = "core" }
  }
  node_group "spot" {
    version                    = "1.28"
    desired_size               = 4
    min_size                   = 0
    max_size                   = 8
    max_unavailable_percentage = 25
  }
  addon "coredns"    { version = "v1.10.1-eksbuild.7" }
  addon "kube-proxy" { version = "v1.28.4-eksbuild.1" }
}
"#;

/// A running simulator, the world file's directory (kept alive) and a provider on it.
struct Env {
    sim: Option<Sim>,
    _dir: tempfile::TempDir,
    provider: Arc<dyn Provider>,
}

impl Env {
    async fn start(faults: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let world: PathBuf = dir.path().join("world.hcl");
        std::fs::write(&world, WORLD).unwrap();
        let sim = Sim::start(SimConfig {
            world,
            listen: "127.0.0.1:0".parse().unwrap(),
            speed: 3000.0,
            faults: FaultSpec::parse(faults).unwrap(),
        })
        .await
        .unwrap();
        let spec = ProviderSpec {
            requests_per_second: None,
            request_timeout: None,
            operation_timeout: None,
            tls: Default::default(),
            channel_server: None,
            versions: Vec::new(),
            kind: "eks".into(),
            alias: None,
            region: Some("eu-west-1".into()),
            profile: None,
            project: None,
            location: None,
            endpoint: None,
            simulate: true,
            world: None,
            speed: None,
            poll_interval: Some(Duration::from_millis(20)),
            origin: None,
            api_version: None,
            resource_group: None,
            subscription_id: None,
        };
        let provider = kup_provider::build(&spec, Some(&sim.endpoints().eks))
            .await
            .unwrap();
        Env {
            sim: Some(sim),
            _dir: dir,
            provider,
        }
    }

    async fn stop(mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await.unwrap();
        }
    }

    /// Poll until the operation leaves InProgress.
    async fn wait(&self, action: &Action, op: &OperationId) -> OperationStatus {
        for _ in 0..3000 {
            match self.provider.poll(&target(), action, op).await.unwrap() {
                OperationStatus::InProgress(_) => {
                    tokio::time::sleep(self.provider.poll_interval()).await
                }
                done => return done,
            }
        }
        panic!("operation {op} never finished");
    }
}

fn target() -> ClusterTarget {
    ClusterTarget {
        name: "prod".into(),
        region: Some("eu-west-1".into()),
    }
}

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn cp(from: &str, to: &str) -> Action {
    Action::UpgradeControlPlane {
        from: v(from),
        to: v(to),
    }
}

#[tokio::test]
async fn refresh_reads_versions_node_groups_addons_and_catalog() {
    let env = Env::start("").await;
    let a = env.provider.refresh(&target()).await.unwrap();
    assert_eq!(a.name, "prod");
    assert_eq!(a.region.as_deref(), Some("eu-west-1"));
    assert_eq!(a.version.minor(), Minor::new(1, 28));
    assert_eq!(a.status, "ACTIVE");
    assert!(a.platform_version.as_deref().unwrap().starts_with("eks."));
    assert!(a.in_flight.is_empty(), "{:?}", a.in_flight);

    // Offered versions: supported minors only, each as its patch release, ascending.
    assert!(!a.offered_versions.is_empty());
    assert!(a.offered_versions.windows(2).all(|w| w[0] < w[1]));
    assert!(a.offered_versions.iter().all(|o| o.patch.is_some()));
    assert!(
        a.offered_versions
            .iter()
            .any(|o| o.minor() == Minor::new(1, 29)),
        "{:?}",
        a.offered_versions
    );
    // 1.23 ended extended support long before the catalog date.
    assert!(a
        .offered_versions
        .iter()
        .all(|o| o.minor() != Minor::new(1, 23)));

    let names: Vec<&str> = a.node_groups.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["general", "spot"]);
    let general = &a.node_groups[0];
    assert_eq!(general.version.minor(), Minor::new(1, 28));
    assert_eq!(general.status, "ACTIVE");
    assert_eq!(
        (general.min_size, general.desired_size, general.max_size),
        (1, 3, 5)
    );
    assert_eq!(general.max_unavailable, Some(Unavailable::Count(1)));
    assert_eq!(general.labels.get("team").map(String::as_str), Some("core"));
    assert!(general.release_version.is_some());
    assert!(general.health_issues.is_empty());
    assert_eq!(
        a.node_groups[1].max_unavailable,
        Some(Unavailable::Percent(25))
    );

    let names: Vec<&str> = a.addons.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["coredns", "kube-proxy"]);
    let coredns = &a.addons[0];
    assert_eq!(coredns.version, "v1.10.1-eksbuild.7");
    assert_eq!(coredns.status, "ACTIVE");
    let c28 = &coredns.compatibility[&Minor::new(1, 28)];
    assert!(c28.versions.contains(&"v1.10.1-eksbuild.7".to_string()));
    assert!(c28.default.is_some());
    assert!(c28.versions.contains(c28.default.as_ref().unwrap()));
    // Newest first, compared numerically.
    let mut sorted = c28.versions.clone();
    sorted.sort_by_key(|x| std::cmp::Reverse(numeric(x)));
    assert_eq!(c28.versions, sorted);
    assert!(coredns.compatibility.contains_key(&Minor::new(1, 29)));
    let kp = &a.addons[1];
    assert!(kp.compatibility[&Minor::new(1, 29)]
        .versions
        .iter()
        .all(|v| v.starts_with("v1.29.")));

    // Deterministic: the same world refreshes to the same value.
    let again = env.provider.refresh(&target()).await.unwrap();
    assert_eq!(a, again);
    env.stop().await;
}

/// `v1.11.1-eksbuild.4` → [1, 11, 1, 4], for checking order independently of the provider.
fn numeric(s: &str) -> Vec<u64> {
    s.trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn control_plane_upgrade_runs_to_success_and_tokens_are_idempotent() {
    let env = Env::start("").await;
    let action = cp("1.28", "1.29.13");
    let op = env
        .provider
        .start(&target(), &action, "plan1-step-cp-1.29")
        .await
        .unwrap();
    assert!(!op.0.is_empty());
    // The same token again is the same request: same update, not a second one or an error.
    let again = env
        .provider
        .start(&target(), &action, "plan1-step-cp-1.29")
        .await
        .unwrap();
    assert_eq!(op, again);

    assert_eq!(env.wait(&action, &op).await, OperationStatus::Succeeded);
    let a = env.provider.refresh(&target()).await.unwrap();
    assert_eq!(a.version.minor(), Minor::new(1, 29));
    assert!(a.in_flight.is_empty());
    // Nothing is running any more.
    assert_eq!(
        env.provider
            .find_in_flight(&target(), &action)
            .await
            .unwrap(),
        None
    );
    env.stop().await;
}

#[tokio::test]
async fn find_in_flight_reattaches_to_a_running_update() {
    // `hang` keeps every update on the cluster InProgress.
    let env = Env::start("hang=prod").await;
    let action = cp("1.28", "1.29");
    let op = env
        .provider
        .start(&target(), &action, "token-from-a-killed-run")
        .await
        .unwrap();

    let found = env
        .provider
        .find_in_flight(&target(), &action)
        .await
        .unwrap();
    assert_eq!(found, Some(op.clone()));
    // A different action does not match it.
    assert_eq!(
        env.provider
            .find_in_flight(&target(), &cp("1.29", "1.30"))
            .await
            .unwrap(),
        None
    );

    let a = env.provider.refresh(&target()).await.unwrap();
    assert_eq!(a.in_flight.len(), 1, "{:?}", a.in_flight);
    let f = &a.in_flight[0];
    assert_eq!(f.id, op.0);
    assert_eq!(f.resource, "control_plane");
    assert_eq!(f.kind, "VersionUpdate");
    assert_eq!(f.target.as_deref(), Some("1.29"));
    assert_eq!(
        env.provider.poll(&target(), &action, &op).await.unwrap(),
        OperationStatus::in_progress()
    );

    // A second update with another token while one runs: ResourceInUseException.
    let err = env
        .provider
        .start(&target(), &action, "another-token")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("ResourceInUseException"));
    env.stop().await;
}

#[tokio::test]
async fn skipping_a_minor_is_invalid_with_eks_message() {
    let env = Env::start("").await;
    let err = env
        .provider
        .start(&target(), &cp("1.28", "1.30"), "skip")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("InvalidParameterException"));
    assert!(
        err.message
            .contains("Unsupported Kubernetes minor version update from 1.28 to 1.30"),
        "{}",
        err.message
    );
    env.stop().await;
}

#[tokio::test]
async fn unknown_cluster_is_not_found_naming_cluster_and_region() {
    let env = Env::start("").await;
    let err = env
        .provider
        .refresh(&ClusterTarget {
            name: "ghost".into(),
            region: Some("eu-west-1".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("ResourceNotFoundException"));
    assert!(err.message.contains("ghost"), "{}", err.message);
    assert!(err.message.contains("eu-west-1"), "{}", err.message);
    env.stop().await;
}

#[tokio::test]
async fn node_group_config_and_version_updates() {
    let env = Env::start("").await;

    // maxUnavailable 1 → 50%.
    let cfg = Action::UpdateNodeGroupConfig {
        node_group: "general".into(),
        from: Some(Unavailable::Count(1)),
        max_unavailable: Unavailable::Percent(50),
        blue_green: None,
        drain_limits: None,
        max_surge: None,
        node_soak: None,
    };
    let op = env.provider.start(&target(), &cfg, "cfg").await.unwrap();
    assert_eq!(env.wait(&cfg, &op).await, OperationStatus::Succeeded);
    let a = env.provider.refresh(&target()).await.unwrap();
    let general = a.node_group("general").unwrap();
    assert_eq!(general.max_unavailable, Some(Unavailable::Percent(50)));
    let release_before = general.release_version.clone();

    // Control plane to 1.29, then the node group follows.
    let up = cp("1.28", "1.29");
    let op = env.provider.start(&target(), &up, "cp").await.unwrap();
    assert_eq!(env.wait(&up, &op).await, OperationStatus::Succeeded);

    let roll = Action::UpgradeNodeGroup {
        node_group: "general".into(),
        from: v("1.28"),
        to: v("1.29"),
        max_unavailable: Unavailable::Percent(50),
        native: None,
    };
    let op = env.provider.start(&target(), &roll, "roll").await.unwrap();
    assert_eq!(
        env.provider.start(&target(), &roll, "roll").await.unwrap(),
        op
    );
    assert_eq!(
        env.provider.find_in_flight(&target(), &roll).await.unwrap(),
        Some(op.clone())
    );
    assert_eq!(env.wait(&roll, &op).await, OperationStatus::Succeeded);
    let a = env.provider.refresh(&target()).await.unwrap();
    let general = a.node_group("general").unwrap();
    assert_eq!(general.version.minor(), Minor::new(1, 29));
    assert_ne!(general.release_version, release_before);
    assert_eq!(
        a.node_group("spot").unwrap().version.minor(),
        Minor::new(1, 28)
    );
    env.stop().await;
}

#[tokio::test]
async fn addon_update_lifecycle() {
    let env = Env::start("").await;
    let a = env.provider.refresh(&target()).await.unwrap();
    let coredns = a.addon("coredns").unwrap();
    let newest = coredns.compatibility[&Minor::new(1, 28)].versions[0].clone();
    assert_ne!(newest, coredns.version);

    let action = Action::UpdateAddon {
        addon: "coredns".into(),
        from: coredns.version.clone(),
        to: newest.clone(),
    };
    let op = env
        .provider
        .start(&target(), &action, "addon")
        .await
        .unwrap();
    assert_eq!(
        env.provider
            .start(&target(), &action, "addon")
            .await
            .unwrap(),
        op
    );
    assert_eq!(env.wait(&action, &op).await, OperationStatus::Succeeded);
    let a = env.provider.refresh(&target()).await.unwrap();
    assert_eq!(a.addon("coredns").unwrap().version, newest);
    assert_eq!(a.addon("kube-proxy").unwrap().version, "v1.28.4-eksbuild.1");

    // A version EKS does not offer is refused as invalid.
    let bad = Action::UpdateAddon {
        addon: "coredns".into(),
        from: newest.clone(),
        to: "v9.9.9-eksbuild.1".into(),
    };
    let err = env
        .provider
        .start(&target(), &bad, "bad-addon")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err:?}");
    env.stop().await;
}

#[tokio::test]
async fn failed_update_reports_eks_error_code_and_message() {
    let env = Env::start(
        "fail=prod/general:PodEvictionFailure:Reached max retries while trying to evict pods",
    )
    .await;
    let up = cp("1.28", "1.29");
    let op = env.provider.start(&target(), &up, "cp").await.unwrap();
    assert_eq!(env.wait(&up, &op).await, OperationStatus::Succeeded);
    let roll = Action::UpgradeNodeGroup {
        node_group: "general".into(),
        from: v("1.28"),
        to: v("1.29"),
        max_unavailable: Unavailable::Count(1),
        native: None,
    };
    let op = env.provider.start(&target(), &roll, "roll").await.unwrap();
    match env.wait(&roll, &op).await {
        OperationStatus::Failed { code, message } => {
            assert_eq!(code, "PodEvictionFailure");
            assert!(
                message.starts_with("PodEvictionFailure: Reached max retries"),
                "{message}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let a = env.provider.refresh(&target()).await.unwrap();
    assert_eq!(
        a.node_group("general").unwrap().version.minor(),
        Minor::new(1, 28)
    );
    env.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried() {
    // One call in ten answers 500; the SDK's standard retries absorb them.
    let env = Env::start("seed=7,error500=0.1").await;
    for _ in 0..5 {
        let a = env.provider.refresh(&target()).await.unwrap();
        assert_eq!(a.node_groups.len(), 2);
    }
    env.stop().await;
}

#[tokio::test]
async fn node_group_and_addon_updates_show_up_in_flight() {
    let env = Env::start("hang=prod/general,hang=prod/addon:coredns").await;
    let cfg = Action::UpdateNodeGroupConfig {
        node_group: "general".into(),
        from: Some(Unavailable::Count(1)),
        max_unavailable: Unavailable::Percent(50),
        blue_green: None,
        drain_limits: None,
        max_surge: None,
        node_soak: None,
    };
    let cfg_op = env.provider.start(&target(), &cfg, "cfg").await.unwrap();
    let addon = Action::UpdateAddon {
        addon: "coredns".into(),
        from: "v1.10.1-eksbuild.7".into(),
        to: "v1.11.1-eksbuild.13".into(),
    };
    let addon_op = env
        .provider
        .start(&target(), &addon, "addon")
        .await
        .unwrap();

    let a = env.provider.refresh(&target()).await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>, &str)> = a
        .in_flight
        .iter()
        .map(|f| {
            (
                f.resource.as_str(),
                f.kind.as_str(),
                f.target.as_deref(),
                f.id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "addon.coredns",
                "AddonUpdate",
                Some("v1.11.1-eksbuild.13"),
                addon_op.0.as_str()
            ),
            (
                "node_group.general",
                "ConfigUpdate",
                Some("50%"),
                cfg_op.0.as_str()
            ),
        ]
    );
    assert_eq!(
        env.provider.find_in_flight(&target(), &cfg).await.unwrap(),
        Some(cfg_op.clone())
    );
    assert_eq!(
        env.provider
            .find_in_flight(&target(), &addon)
            .await
            .unwrap(),
        Some(addon_op.clone())
    );
    // Same node group, different setting: not the running update.
    let other = Action::UpdateNodeGroupConfig {
        node_group: "general".into(),
        from: Some(Unavailable::Count(1)),
        max_unavailable: Unavailable::Count(2),
        blue_green: None,
        drain_limits: None,
        max_surge: None,
        node_soak: None,
    };
    assert_eq!(
        env.provider
            .find_in_flight(&target(), &other)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        env.provider.poll(&target(), &cfg, &cfg_op).await.unwrap(),
        OperationStatus::in_progress()
    );
    env.stop().await;
}

/// Without `simulate`, kup never falls back to dummy credentials: an empty credential chain
/// is an Auth error that says how to configure credentials.
#[tokio::test]
async fn real_mode_without_credentials_is_an_auth_error() {
    let has_credentials = std::env::vars().any(|(k, _)| {
        matches!(
            k.as_str(),
            "AWS_ACCESS_KEY_ID"
                | "AWS_PROFILE"
                | "AWS_WEB_IDENTITY_TOKEN_FILE"
                | "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
                | "AWS_CONTAINER_CREDENTIALS_FULL_URI"
        )
    }) || std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".aws").exists())
        .unwrap_or(false);
    if has_credentials {
        eprintln!("skipped: this environment has AWS credentials configured");
        return;
    }
    let env = Env::start("").await;
    let spec = ProviderSpec {
        requests_per_second: None,
        request_timeout: None,
        operation_timeout: None,
        tls: Default::default(),
        channel_server: None,
        versions: Vec::new(),
        kind: "eks".into(),
        alias: None,
        region: Some("eu-west-1".into()),
        profile: None,
        project: None,
        location: None,
        endpoint: Some(env.sim.as_ref().unwrap().endpoints().eks),
        simulate: false,
        world: None,
        speed: None,
        poll_interval: None,
        origin: None,
        api_version: None,
        resource_group: None,
        subscription_id: None,
    };
    let real = kup_provider::build(&spec, None).await.unwrap();
    match real.refresh(&target()).await {
        Err(err) => {
            eprintln!("{err:?}");
            assert_eq!(err.kind, ErrorKind::Auth, "{err:?}");
            assert!(err.message.contains("AWS_PROFILE"), "{}", err.message);
        }
        // Only possible on a machine whose instance metadata service hands out a role.
        Ok(_) => eprintln!("skipped: instance-metadata credentials are available here"),
    }
    env.stop().await;
}
