//! The GKE provider against kup's simulator, over HTTP with the real
//! `google-cloud-container-v1` client (REST/JSON, integer enums, anonymous credentials).
//!
//! Each test starts its own simulator on a free loopback port with its own world file.
//! No test asserts wall-clock durations; loops that wait on the simulator are bounded only
//! so a broken simulator fails the test instead of hanging it.
#![cfg(feature = "gke")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kup_engine::model::{ProviderSpec, Unavailable};
use kup_engine::plan::Action;
use kup_engine::{Minor, Version};
use kup_provider::{ClusterTarget, ErrorKind, KubeAccess, OperationId, OperationStatus, Provider};
use kup_sim::{FaultSpec, Sim, SimConfig};

const PROJECT: &str = "demo-proj";
/// A zone: GKE's `initialNodeCount` is per zone, so a zonal pool's count is its size.
const LOCATION: &str = "europe-west1-b";

fn world() -> String {
    format!(
        r#"
gke_cluster "shop" {{
  project  = "{PROJECT}"
  location = "{LOCATION}"
  version  = "1.29.8-gke.1031000"
  node_pool "default" {{
    version         = "1.29.8-gke.1031000"
    node_count      = 3
    machine_type    = "e2-standard-4"
    max_surge       = 1
    max_unavailable = 0
    strategy        = "SURGE"
  }}
}}
"#
    )
}

struct Env {
    sim: Option<Sim>,
    _dir: tempfile::TempDir,
    provider: Arc<dyn Provider>,
}

impl Env {
    async fn start(faults: &str) -> Env {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let world_path: PathBuf = dir.path().join("world.hcl");
        std::fs::write(&world_path, world()).unwrap();
        let sim = Sim::start(SimConfig {
            world: world_path,
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
            kind: "gke".into(),
            alias: None,
            region: None,
            profile: None,
            project: Some(PROJECT.into()),
            location: Some(LOCATION.into()),
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
        // The simulator serves the GKE API on the same base URL as the EKS one.
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
        name: "shop".into(),
        // Ignored by GKE: the provider block's `location` names where the cluster is.
        region: Some("us-east-1".into()),
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

fn pool_upgrade(to: &str) -> Action {
    Action::UpgradeNodeGroup {
        node_group: "default".into(),
        from: v("1.29"),
        to: v(to),
        max_unavailable: Unavailable::Count(0),
        native: None,
    }
}

fn pool_config(n: u32) -> Action {
    Action::UpdateNodeGroupConfig {
        node_group: "default".into(),
        from: Some(Unavailable::Count(0)),
        max_unavailable: Unavailable::Count(n),
        blue_green: None,
        drain_limits: None,
        max_surge: None,
        node_soak: None,
    }
}

#[tokio::test]
async fn refresh_reads_master_node_pools_and_server_config() {
    let env = Env::start("").await;
    let a = env.provider.refresh(&target()).await.unwrap();
    assert_eq!(a.name, "shop");
    assert_eq!(a.region.as_deref(), Some(LOCATION));
    assert_eq!(a.version, v("1.29.8-gke.1031000"));
    assert_eq!(a.version.to_string(), "1.29.8-gke.1031000");
    assert_eq!(a.status, "RUNNING");
    assert!(a.addons.is_empty());
    assert!(a.in_flight.is_empty(), "{:?}", a.in_flight);
    assert!(a.offered_versions.contains(&v("1.30.12-gke.1086000")));
    assert!(a
        .offered_versions
        .iter()
        .all(|o| o.patch.is_some() && o.suffix.is_some()));
    assert_eq!(a.node_groups.len(), 1);
    let ng = &a.node_groups[0];
    assert_eq!(ng.name, "default");
    assert_eq!(ng.version, v("1.29.8-gke.1031000"));
    assert_eq!(ng.status, "RUNNING");
    assert_eq!(ng.desired_size, 3);
    assert_eq!(ng.max_unavailable, Some(Unavailable::Count(0)));
    // Deterministic: a second refresh reads the same.
    assert_eq!(env.provider.refresh(&target()).await.unwrap(), a);

    // A cluster that does not exist: NotFound naming the project and location.
    let err = env
        .provider
        .refresh(&ClusterTarget {
            name: "nope".into(),
            region: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert!(err.message.contains(PROJECT), "{}", err.message);
    assert!(err.message.contains(LOCATION), "{}", err.message);
    env.stop().await;
}

#[tokio::test]
async fn master_then_node_pool_upgrade_and_config_update() {
    let env = Env::start("").await;
    let t = target();

    // Master: clusters.update (desiredMasterVersion + etag) with the exact version, Operation to DONE.
    let up = cp("1.29.8-gke.1031000", "1.30.12-gke.1086000");
    let op = env.provider.start(&t, &up, "tok-1").await.unwrap();
    assert!(op.0.starts_with("operation-"), "{op}");
    assert_eq!(env.wait(&up, &op).await, OperationStatus::Succeeded);
    let a = env.provider.refresh(&t).await.unwrap();
    assert_eq!(a.version.to_string(), "1.30.12-gke.1086000");
    assert!(a.in_flight.is_empty(), "{:?}", a.in_flight);

    // Node pool: the bare minor resolves to the master's exact version.
    let ng = pool_upgrade("1.30");
    let op = env.provider.start(&t, &ng, "tok-2").await.unwrap();
    assert_eq!(env.wait(&ng, &op).await, OperationStatus::Succeeded);
    let a = env.provider.refresh(&t).await.unwrap();
    assert_eq!(
        a.node_group("default").unwrap().version.to_string(),
        "1.30.12-gke.1086000"
    );

    // Upgrade settings: maxUnavailable changes, the version stays.
    let cfg = pool_config(2);
    let op = env.provider.start(&t, &cfg, "tok-3").await.unwrap();
    assert_eq!(env.wait(&cfg, &op).await, OperationStatus::Succeeded);
    let a = env.provider.refresh(&t).await.unwrap();
    let pool = a.node_group("default").unwrap();
    assert_eq!(pool.max_unavailable, Some(Unavailable::Count(2)));
    assert_eq!(pool.version.to_string(), "1.30.12-gke.1086000");
    assert_eq!(pool.version.minor(), Minor::new(1, 30));

    // A percentage is refused: GKE takes a node count.
    let err = env
        .provider
        .start(
            &t,
            &Action::UpdateNodeGroupConfig {
                node_group: "default".into(),
                from: None,
                max_unavailable: Unavailable::Percent(25),
                blue_green: None,
                drain_limits: None,
                max_surge: None,
                node_soak: None,
            },
            "tok-4",
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    env.stop().await;
}

#[tokio::test]
async fn skipping_a_minor_is_invalid_with_googles_text() {
    let env = Env::start("").await;
    let err = env
        .provider
        .start(
            &target(),
            &cp("1.29.8-gke.1031000", "1.31.9-gke.1044001"),
            "tok",
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("INVALID_ARGUMENT"));
    assert!(
        err.message.contains("more than one minor version"),
        "{}",
        err.message
    );
    env.stop().await;
}

#[tokio::test]
async fn running_operation_is_found_adopted_and_blocks_others() {
    let env = Env::start("hang=shop").await;
    let t = target();
    let up = cp("1.29.8-gke.1031000", "1.30.12-gke.1086000");
    assert_eq!(env.provider.find_in_flight(&t, &up).await.unwrap(), None);
    let op = env.provider.start(&t, &up, "tok-1").await.unwrap();

    // Found again by type and target (what a resumed apply does when it lost the id).
    assert_eq!(
        env.provider.find_in_flight(&t, &up).await.unwrap(),
        Some(op.clone())
    );
    assert_eq!(
        env.provider
            .find_in_flight(&t, &pool_upgrade("1.30"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        env.provider.poll(&t, &up, &op).await.unwrap(),
        OperationStatus::in_progress()
    );
    let a = env.provider.refresh(&t).await.unwrap();
    assert_eq!(a.in_flight.len(), 1, "{:?}", a.in_flight);
    assert_eq!(a.in_flight[0].id, op.0);
    assert_eq!(a.in_flight[0].resource, "control_plane");
    assert_eq!(a.in_flight[0].kind, "UPGRADE_MASTER");

    // No request token at GKE: starting the same action again adopts the running one.
    assert_eq!(env.provider.start(&t, &up, "tok-1").await.unwrap(), op);

    // Another mutation while it runs: GKE's FAILED_PRECONDITION, a Conflict to wait out.
    let err = env
        .provider
        .start(&t, &pool_config(1), "tok-2")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("FAILED_PRECONDITION"));
    assert!(err.message.contains(&op.0), "{}", err.message);
    env.stop().await;
}

#[tokio::test]
async fn failed_operation_reports_googles_code_and_text() {
    let env = Env::start("fail=shop:INTERNAL:control plane exploded").await;
    let up = cp("1.29.8-gke.1031000", "1.30.12-gke.1086000");
    let op = env.provider.start(&target(), &up, "tok").await.unwrap();
    assert_eq!(
        env.wait(&up, &op).await,
        OperationStatus::Failed {
            code: "INTERNAL".into(),
            message: "control plane exploded".into()
        }
    );
    let a = env.provider.refresh(&target()).await.unwrap();
    assert_eq!(a.version.to_string(), "1.29.8-gke.1031000");
    env.stop().await;
}

#[tokio::test]
async fn node_ops_reach_the_simulated_kubernetes_api() {
    let env = Env::start("").await;
    let ops = env
        .provider
        .node_ops(&target(), &KubeAccess::default())
        .await
        .unwrap()
        .expect("gke offers node ops");
    let snap = ops.snapshot().await.unwrap();
    let pool_nodes = snap
        .nodes
        .iter()
        .filter(|n| n.node_group.as_deref() == Some("default"))
        .count();
    assert_eq!(pool_nodes, 3, "{:?}", snap.nodes);
    env.stop().await;
}

#[tokio::test]
async fn throttling_is_transient() {
    let env = Env::start("throttle=1").await;
    let err = env.provider.refresh(&target()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
    env.stop().await;
}

#[tokio::test]
async fn server_errors_are_transient() {
    let env = Env::start("error500=1").await;
    let err = env.provider.refresh(&target()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{err:?}");
    env.stop().await;
}

#[tokio::test]
async fn running_node_pool_upgrade_is_found_by_pool() {
    let env = Env::start("hang=shop/default").await;
    let t = target();
    let up = cp("1.29.8-gke.1031000", "1.30.12-gke.1086000");
    let op = env.provider.start(&t, &up, "tok-1").await.unwrap();
    assert_eq!(env.wait(&up, &op).await, OperationStatus::Succeeded);

    let ng = pool_upgrade("1.30");
    let op = env.provider.start(&t, &ng, "tok-2").await.unwrap();
    assert_eq!(
        env.provider.find_in_flight(&t, &ng).await.unwrap(),
        Some(op.clone())
    );
    // Not the control plane's, and not another pool's.
    assert_eq!(env.provider.find_in_flight(&t, &up).await.unwrap(), None);
    let other = Action::UpgradeNodeGroup {
        node_group: "other".into(),
        from: v("1.29"),
        to: v("1.30"),
        max_unavailable: Unavailable::Count(1),
        native: None,
    };
    assert_eq!(env.provider.find_in_flight(&t, &other).await.unwrap(), None);
    // GKE's progress metrics reach the progress display: nodes done of nodes total.
    match env.provider.poll(&t, &ng, &op).await.unwrap() {
        OperationStatus::InProgress(p) => {
            assert_eq!((p.done, p.total), (Some(0), Some(3)), "{p:?}");
            assert_eq!(p.to_string(), "0/3 nodes");
        }
        other => panic!("{other:?}"),
    }
    let a = env.provider.refresh(&t).await.unwrap();
    let got: Vec<(&str, &str, &str)> = a
        .in_flight
        .iter()
        .map(|o| (o.resource.as_str(), o.kind.as_str(), o.id.as_str()))
        .collect();
    assert_eq!(
        got,
        [("node_group.default", "UPGRADE_NODES", op.0.as_str())]
    );
    env.stop().await;
}
