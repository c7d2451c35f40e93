//! kup's node operations ([`KubeNodeOps`]) and the EKS provider's blue/green actions
//! against kup-sim's Kubernetes API, over HTTP with the real `kube` client.
//!
//! Each test starts its own simulator on a free loopback port with its own world file.
//! No test asserts wall-clock durations; loops that wait on the simulator are bounded only
//! so a broken simulator fails the test instead of hanging it.
#![cfg(feature = "eks")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kup_engine::kube::{DrainError, KubeSnapshot};
use kup_engine::model::{DrainSpec, ProviderSpec};
use kup_engine::plan::Action;
use kup_engine::Minor;
use kup_provider::kube::{KubeNodeOps, EKS_NODEGROUP_LABEL};
use kup_provider::{ClusterTarget, ErrorKind, KubeAccess, NodeOps, OperationStatus, Provider};
use kup_sim::{FaultSpec, Sim, SimConfig};

struct Env {
    sim: Option<Sim>,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(world: &str) -> Env {
        Env::start_at(world, 3000.0).await
    }

    async fn start_at(world: &str, speed: f64) -> Env {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let file: PathBuf = dir.path().join("world.hcl");
        std::fs::write(&file, world).unwrap();
        let sim = Sim::start(SimConfig {
            world: file,
            listen: "127.0.0.1:0".parse().unwrap(),
            speed,
            faults: FaultSpec::parse("").unwrap(),
        })
        .await
        .unwrap();
        Env {
            sim: Some(sim),
            dir,
        }
    }

    fn sim(&self) -> &Sim {
        self.sim.as_ref().unwrap()
    }

    fn kube_url(&self, cluster: &str) -> String {
        self.sim().endpoints().kube[cluster].clone()
    }

    async fn ops(&self, cluster: &str) -> KubeNodeOps {
        KubeNodeOps::from_endpoint(
            &self.kube_url(cluster),
            None,
            "any-token".into(),
            EKS_NODEGROUP_LABEL,
        )
        .await
        .unwrap()
    }

    fn client(&self, cluster: &str) -> kube::Client {
        let mut cfg = kube::Config::new(self.kube_url(cluster).parse().unwrap());
        cfg.default_retry = false;
        kube::Client::try_from(cfg).unwrap()
    }

    async fn provider(&self) -> Arc<dyn Provider> {
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
        kup_provider::build(&spec, Some(&self.sim().endpoints().eks))
            .await
            .unwrap()
    }

    async fn audit(&self, cluster: &str) -> serde_json::Value {
        let admin = self.sim().endpoints().admin;
        get_json(&format!("{admin}/kube/{cluster}/audit")).await
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            drop(sim);
        }
    }
}

/// A bare HTTP/1.0 GET on loopback (the admin API), body parsed as JSON.
async fn get_json(url: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(" 200 "), "{url}: {head}\n{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

fn target() -> ClusterTarget {
    ClusterTarget {
        name: "prod".into(),
        region: None,
    }
}

const BASE: &str = r#"
cluster "prod" {
  region  = "eu-west-1"
  version = "1.29"
  node_group "general" {
    version         = "1.29"
    desired_size    = 3
    min_size        = 1
    max_size        = 6
    instance_types  = ["m6i.large", "m5.large"]
    labels          = { team = "core" }
  }
"#;

fn world(workloads: &str) -> String {
    format!("{BASE}{workloads}\n}}\n")
}

const WEB: &str = r#"
  workload "web" {
    kind       = "Deployment"
    namespace  = "shop"
    replicas   = 6
    cpu        = "100m"
    memory     = "128Mi"
    node_group = "general"
    labels     = { app = "web" }
    pdb { max_unavailable = 1 }
  }
  workload "agent" {
    kind      = "DaemonSet"
    namespace = "kube-system"
    cpu       = "50m"
    memory    = "64Mi"
    labels    = { app = "agent" }
  }
"#;

/// Poll (bounded) until `f` holds on a fresh snapshot.
async fn until(ops: &KubeNodeOps, what: &str, f: impl Fn(&KubeSnapshot) -> bool) -> KubeSnapshot {
    let start = Instant::now();
    loop {
        let s = ops.snapshot().await.unwrap();
        if f(&s) {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn running_of<'a>(
    s: &'a KubeSnapshot,
    prefix: &'a str,
) -> impl Iterator<Item = &'a kup_engine::kube::KubePod> {
    s.pods
        .iter()
        .filter(move |p| p.name.starts_with(prefix) && p.phase == "Running")
}

/// The node of `group` holding the most pods whose name starts with `prefix`.
fn busiest_node(s: &KubeSnapshot, prefix: &str) -> String {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for p in s.pods.iter().filter(|p| p.name.starts_with(prefix)) {
        if let Some(n) = &p.node {
            *count.entry(n.clone()).or_default() += 1;
        }
    }
    count
        .into_iter()
        .max_by_key(|(n, c)| (*c, std::cmp::Reverse(n.clone())))
        .map(|(n, _)| n)
        .unwrap_or_else(|| panic!("no pod {prefix}* on any node: {s:#?}"))
}

#[tokio::test]
async fn snapshot_reads_nodes_pods_and_pdbs() {
    let env = Env::start(&world(WEB)).await;
    let ops = env.ops("prod").await;
    let s = until(&ops, "6 running web pods", |s| {
        running_of(s, "web-").count() == 6
    })
    .await;
    let nodes: Vec<_> = s.nodes_of_group("general").collect();
    assert_eq!(nodes.len(), 3, "{s:#?}");
    for n in &nodes {
        assert_eq!(n.kubelet_version.minor(), Minor::new(1, 29), "{n:?}");
        assert!(n.ready, "{n:?}");
        assert!(!n.unschedulable);
        assert!(
            n.allocatable.cpu_millis > 0 && n.allocatable.memory_bytes > 0,
            "{n:?}"
        );
        assert!(n.allocatable_pods > 0);
        assert_eq!(n.labels.get("team").map(String::as_str), Some("core"));
    }
    let web: Vec<_> = running_of(&s, "web-").collect();
    for p in &web {
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.requests.cpu_millis, 100, "{p:?}");
        assert_eq!(p.requests.memory_bytes, 128 << 20, "{p:?}");
        assert_eq!(
            p.owner.as_ref().map(|o| o.0.as_str()),
            Some("ReplicaSet"),
            "{p:?}"
        );
        assert_eq!(p.labels.get("app").map(String::as_str), Some("web"));
    }
    let agents: Vec<_> = s
        .pods
        .iter()
        .filter(|p| p.name.starts_with("agent-"))
        .collect();
    assert!(agents.len() >= 3, "one DaemonSet pod per node: {agents:#?}");
    assert!(agents.iter().all(|p| p.is_daemonset()));
    let pdb = s
        .pdbs
        .iter()
        .find(|p| p.namespace == "shop")
        .unwrap_or_else(|| panic!("web PDB: {:#?}", s.pdbs));
    assert_eq!(pdb.max_unavailable.as_deref(), Some("1"));
    assert_eq!(pdb.match_labels.get("app").map(String::as_str), Some("web"));
    assert!(web.iter().all(|p| pdb.selects(p)));
}

#[tokio::test]
async fn cordon_and_uncordon_are_idempotent() {
    let env = Env::start(&world(WEB)).await;
    let ops = env.ops("prod").await;
    let s = ops.snapshot().await.unwrap();
    let node = s.nodes[0].name.clone();
    for _ in 0..2 {
        ops.set_unschedulable(&node, true).await.unwrap();
        let s = ops.snapshot().await.unwrap();
        assert!(
            s.nodes
                .iter()
                .find(|n| n.name == node)
                .unwrap()
                .unschedulable
        );
    }
    for _ in 0..2 {
        ops.set_unschedulable(&node, false).await.unwrap();
        let s = ops.snapshot().await.unwrap();
        assert!(
            !s.nodes
                .iter()
                .find(|n| n.name == node)
                .unwrap()
                .unschedulable
        );
    }
    let e = ops
        .set_unschedulable("no-such-node", true)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    assert!(e.message.contains("no-such-node"), "{}", e.message);
}

#[tokio::test]
async fn drain_respects_the_budget_and_pods_come_back_elsewhere() {
    let env = Env::start(&world(WEB)).await;
    let ops = env.ops("prod").await;
    let s = until(&ops, "6 running web pods", |s| {
        running_of(s, "web-").count() == 6
    })
    .await;
    let node = busiest_node(&s, "web-");
    let on_node: Vec<String> = s
        .pods_on(&node)
        .filter(|p| !p.is_daemonset() && !p.is_mirror)
        .map(|p| p.address())
        .collect();
    assert!(!on_node.is_empty());

    let report = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut evicted = report.evicted.clone();
    evicted.sort();
    let mut want = on_node.clone();
    want.sort();
    assert_eq!(evicted, want, "{report:?}");
    assert!(report.deleted.is_empty());
    assert!(
        report
            .skipped
            .iter()
            .any(|p| p.starts_with("kube-system/agent-")),
        "DaemonSet pod skipped: {report:?}"
    );

    let s = until(&ops, "6 web pods running off the drained node", |s| {
        running_of(s, "web-").count() == 6
            && running_of(s, "web-").all(|p| p.node.as_deref() != Some(node.as_str()))
    })
    .await;
    assert!(
        s.nodes
            .iter()
            .find(|n| n.name == node)
            .unwrap()
            .unschedulable
    );
    assert!(s.pods_on(&node).all(|p| p.is_daemonset() || p.is_mirror));

    let audit = env.audit("prod").await;
    let pdbs = audit["pdbs"].as_object().unwrap();
    assert!(!pdbs.is_empty(), "{audit}");
    for (name, a) in pdbs {
        assert_eq!(a["violated"], false, "budget {name} violated: {audit}");
    }
    assert!(
        audit["lost_pods"].as_array().is_none_or(|l| l.is_empty()),
        "{audit}"
    );
    assert!(
        audit["evictions"].as_u64().unwrap() >= on_node.len() as u64,
        "{audit}"
    );
}

const STUCK: &str = r#"
  workload "db" {
    kind       = "StatefulSet"
    namespace  = "data"
    replicas   = 3
    cpu        = "100m"
    memory     = "128Mi"
    node_group = "general"
    labels     = { app = "db" }
    pdb { min_available = 3 }
  }
"#;

#[tokio::test]
async fn drain_blocked_by_a_budget_names_pod_and_budget_after_the_timeout() {
    let env = Env::start(&world(STUCK)).await;
    let ops = env.ops("prod").await;
    let s = until(&ops, "3 running db pods", |s| {
        running_of(s, "db-").count() == 3
    })
    .await;
    let node = busiest_node(&s, "db-");
    let pod = s
        .pods_on(&node)
        .find(|p| p.name.starts_with("db-"))
        .unwrap()
        .address();
    let err = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_secs(3)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match &err {
        DrainError::BlockedByPdb {
            node: n,
            pod: p,
            pdb,
            message,
            waited,
        } => {
            assert_eq!(n, &node);
            assert!(p.starts_with("data/db-"), "{err}");
            if s.pods_on(&node)
                .filter(|p| p.name.starts_with("db-"))
                .count()
                == 1
            {
                assert_eq!(p, &pod);
            }
            assert!(pdb.starts_with("data/"), "{err}");
            assert!(pdb.contains("db"), "{err}");
            assert!(!message.is_empty(), "{err}");
            assert!(*waited >= Duration::from_secs(3), "{err}");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("PodDisruptionBudget data/"), "{text}");
    // Nothing was lost: every db pod still runs.
    let s = ops.snapshot().await.unwrap();
    assert_eq!(running_of(&s, "db-").count(), 3);
    let audit = env.audit("prod").await;
    assert!(audit["evictions_refused"].as_u64().unwrap() >= 1, "{audit}");

    // disable_eviction deletes instead (bypassing the budget), as users who ask for it want.
    let report = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_secs(60)),
                disable_eviction: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(report.evicted.is_empty(), "{report:?}");
    assert!(
        report.deleted.iter().any(|p| p.starts_with("data/db-")),
        "{report:?}"
    );
    let s = ops.snapshot().await.unwrap();
    assert!(
        s.pods_on(&node).all(|p| !p.name.starts_with("db-")),
        "{s:#?}"
    );
}

const UNSAFE: &str = r#"
  workload "lonely" {
    kind       = "Pod"
    namespace  = "default"
    cpu        = "100m"
    memory     = "64Mi"
    node_group = "general"
  }
  workload "cache" {
    kind       = "Deployment"
    namespace  = "default"
    replicas   = 3
    cpu        = "100m"
    memory     = "64Mi"
    node_group = "general"
    empty_dir  = true
    labels     = { app = "cache" }
  }
"#;

#[tokio::test]
async fn bare_and_emptydir_pods_are_refused_without_options() {
    let env = Env::start(&world(UNSAFE)).await;
    let ops = env.ops("prod").await;
    let s = until(&ops, "pods running", |s| {
        running_of(s, "lonely").count() == 1 && running_of(s, "cache-").count() == 3
    })
    .await;
    let node = s
        .pods
        .iter()
        .find(|p| p.name == "lonely")
        .and_then(|p| p.node.clone())
        .unwrap();
    let caches_here = s
        .pods_on(&node)
        .filter(|p| p.name.starts_with("cache-"))
        .count();

    let err = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_secs(30)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match &err {
        DrainError::Refused { node: n, pods, .. } => {
            assert_eq!(n, &node);
            assert!(
                pods.iter().any(|p| p.starts_with("default/lonely")),
                "{err}"
            );
            assert_eq!(
                pods.iter()
                    .filter(|p| p.starts_with("default/cache-"))
                    .count(),
                caches_here,
                "{err}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Nothing was touched.
    let s2 = ops.snapshot().await.unwrap();
    assert!(s2.pods.iter().any(|p| p.name == "lonely"));

    // emptyDir allowed, bare pod still refused.
    let err = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_secs(30)),
                delete_emptydir_data: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match &err {
        DrainError::Refused { pods, reason, .. } => {
            assert_eq!(pods, &vec!["default/lonely".to_string()], "{err}");
            assert!(reason.contains("no controller"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // With both options the node empties; the bare pod is gone for good.
    let report = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_secs(60)),
                delete_emptydir_data: true,
                force: true,
                grace_period: Some(Duration::from_secs(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        report.evicted.iter().any(|p| p == "default/lonely"),
        "{report:?}"
    );
    let s = until(&ops, "3 cache pods back", |s| {
        running_of(s, "cache-").count() == 3
    })
    .await;
    assert!(s.pods.iter().all(|p| p.name != "lonely"));
    assert!(s.pods_on(&node).all(|p| p.is_daemonset()));
}

#[tokio::test]
async fn pod_selector_limits_the_drain() {
    let env = Env::start(&world(&format!("{WEB}{UNSAFE}"))).await;
    let ops = env.ops("prod").await;
    let s = until(&ops, "web running", |s| running_of(s, "web-").count() == 6).await;
    let node = busiest_node(&s, "web-");
    let report = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_secs(60)),
                pod_selector: Some("app=web".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!report.evicted.is_empty());
    assert!(
        report.evicted.iter().all(|p| p.starts_with("shop/web-")),
        "{report:?}"
    );
    // Pods outside the selector stay, refused or not.
    let pods: Api<Pod> = Api::all(env.client("prod"));
    let left = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .unwrap();
    assert!(left.items.iter().all(|p| !p
        .metadata
        .name
        .as_deref()
        .unwrap_or("")
        .starts_with("web-")));
}

#[tokio::test]
async fn wait_ready_succeeds_and_names_late_nodes_on_timeout() {
    let env = Env::start(&world("")).await;
    let ops = env.ops("prod").await;
    ops.wait_ready("general", 3, Minor::new(1, 29), Duration::from_secs(30))
        .await
        .unwrap();

    let e = ops
        .wait_ready("general", 5, Minor::new(1, 29), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("3 of 5 nodes of node group `general`"),
        "{}",
        e.message
    );
    assert!(e.message.contains("missing: 2 nodes"), "{}", e.message);

    let e = ops
        .wait_ready("general", 3, Minor::new(1, 30), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(e.message.contains("0 of 3"), "{}", e.message);
    let s = ops.snapshot().await.unwrap();
    for n in s.nodes_of_group("general") {
        assert!(
            e.message.contains(&n.name),
            "{} should name {}",
            e.message,
            n.name
        );
    }
    assert!(e.message.contains("expected 1.30"), "{}", e.message);

    let e = ops
        .wait_ready("nope", 1, Minor::new(1, 29), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(e.message.contains("0 of 1"), "{}", e.message);
    assert!(e.message.contains("missing: 1 node "), "{}", e.message);
}

#[tokio::test]
async fn eks_node_ops_from_describe_cluster_and_from_kubeconfig() {
    let env = Env::start(&world(WEB)).await;
    let p = env.provider().await;
    // No kubeconfig: endpoint + CA from DescribeCluster, an EKS token from the provider's
    // (dummy, simulated) credentials.
    let ops = p
        .node_ops(&target(), &KubeAccess::default())
        .await
        .unwrap()
        .expect("EKS offers node ops");
    let s = ops.snapshot().await.unwrap();
    assert_eq!(s.nodes_of_group("general").count(), 3, "{s:#?}");

    // The kubeconfig the simulator wrote next to the world file (context = cluster name).
    let kc = env.sim().endpoints().kubeconfigs["prod"].clone();
    assert!(kc.starts_with(env.dir.path()), "{}", kc.display());
    for context in [None, Some("prod".to_string())] {
        let ops = p
            .node_ops(
                &target(),
                &KubeAccess {
                    kubeconfig: Some(kc.to_string_lossy().into_owned()),
                    context,
                },
            )
            .await
            .unwrap()
            .unwrap();
        let s = ops.snapshot().await.unwrap();
        assert_eq!(s.nodes_of_group("general").count(), 3);
    }

    let e = p
        .node_ops(
            &target(),
            &KubeAccess {
                kubeconfig: Some(
                    env.dir
                        .path()
                        .join("missing")
                        .to_string_lossy()
                        .into_owned(),
                ),
                context: None,
            },
        )
        .await
        .err()
        .unwrap();
    assert!(e.message.contains("does not exist"), "{}", e.message);
}

fn eks_client(env: &Env) -> aws_sdk_eks::Client {
    let conf = aws_sdk_eks::Config::builder()
        .behavior_version(aws_sdk_eks::config::BehaviorVersion::latest())
        .endpoint_url(env.sim().endpoints().eks)
        .region(aws_sdk_eks::config::Region::new("eu-west-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .build();
    aws_sdk_eks::Client::from_conf(conf)
}

async fn poll_until_done(
    p: &Arc<dyn Provider>,
    a: &Action,
    op: &kup_provider::OperationId,
) -> OperationStatus {
    let start = Instant::now();
    loop {
        let st = p.poll(&target(), a, op).await.unwrap();
        if st != OperationStatus::in_progress() {
            return st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "operation {op} never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn blue_green_create_and_delete_node_groups() {
    let env = Env::start(&world(WEB)).await;
    let p = env.provider().await;
    let create = Action::CreateNodeGroup {
        node_group: "general-green".into(),
        clone_of: "general".into(),
        version: "1.29".parse().unwrap(),
    };
    assert_eq!(p.find_in_flight(&target(), &create).await.unwrap(), None);
    let op = p.start(&target(), &create, "tok-create-1").await.unwrap();
    assert_eq!(op.0, "create-nodegroup/general-green");
    // While it is being created, a resumed apply finds it, and starting again is harmless.
    if p.poll(&target(), &create, &op).await.unwrap() == OperationStatus::in_progress() {
        if let Some(found) = p.find_in_flight(&target(), &create).await.unwrap() {
            assert_eq!(found, op);
        }
    }
    assert_eq!(
        p.start(&target(), &create, "tok-create-1").await.unwrap(),
        op
    );
    assert_eq!(
        poll_until_done(&p, &create, &op).await,
        OperationStatus::Succeeded
    );
    // Idempotent once ACTIVE too (a crash after creation, before the journal said so).
    assert_eq!(
        p.start(&target(), &create, "tok-create-2").await.unwrap(),
        op
    );

    let actual = p.refresh(&target()).await.unwrap();
    let blue = actual
        .node_groups
        .iter()
        .find(|g| g.name == "general")
        .unwrap();
    let green = actual
        .node_groups
        .iter()
        .find(|g| g.name == "general-green")
        .unwrap();
    assert_eq!(green.version.minor(), Minor::new(1, 29));
    assert_eq!(green.labels.get("team").map(String::as_str), Some("core"));
    assert_eq!(
        (green.min_size, green.max_size, green.desired_size),
        (blue.min_size, blue.max_size, blue.desired_size)
    );
    assert_eq!(
        actual
            .node_groups
            .iter()
            .filter(|g| g.name.starts_with("general"))
            .count(),
        2,
        "no double create"
    );

    // The clone's EKS-side details (instance types are not in ActualNodeGroup).
    let eks = eks_client(&env);
    let green_ng = eks
        .describe_nodegroup()
        .cluster_name("prod")
        .nodegroup_name("general-green")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(green_ng.instance_types(), ["m6i.large", "m5.large"]);
    assert_eq!(green_ng.version(), Some("1.29"));
    let blue_ng = eks
        .describe_nodegroup()
        .cluster_name("prod")
        .nodegroup_name("general")
        .send()
        .await
        .unwrap()
        .nodegroup
        .unwrap();
    assert_eq!(green_ng.subnets(), blue_ng.subnets());
    assert_eq!(green_ng.node_role(), blue_ng.node_role());
    assert_eq!(green_ng.ami_type(), blue_ng.ami_type());
    assert_eq!(green_ng.capacity_type(), blue_ng.capacity_type());
    assert_eq!(green_ng.disk_size(), blue_ng.disk_size());
    assert_eq!(green_ng.taints(), blue_ng.taints());
    assert_eq!(green_ng.update_config(), blue_ng.update_config());

    // The green nodes join the cluster.
    let ops = p
        .node_ops(&target(), &KubeAccess::default())
        .await
        .unwrap()
        .unwrap();
    ops.wait_ready(
        "general-green",
        green.desired_size as usize,
        Minor::new(1, 29),
        Duration::from_secs(60),
    )
    .await
    .unwrap();

    // A group that exists at another version is not silently adopted.
    let wrong = Action::CreateNodeGroup {
        node_group: "general".into(),
        clone_of: "general".into(),
        version: "1.30".parse().unwrap(),
    };
    let e = p.start(&target(), &wrong, "t").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{e:?}");

    let delete = Action::DeleteNodeGroup {
        node_group: "general-green".into(),
    };
    let dop = p.start(&target(), &delete, "tok-del").await.unwrap();
    assert_eq!(dop.0, "delete-nodegroup/general-green");
    if p.poll(&target(), &delete, &dop).await.unwrap() == OperationStatus::in_progress() {
        assert_eq!(
            p.find_in_flight(&target(), &delete).await.unwrap(),
            Some(dop.clone())
        );
        assert_eq!(p.start(&target(), &delete, "tok-del").await.unwrap(), dop);
    }
    assert_eq!(
        poll_until_done(&p, &delete, &dop).await,
        OperationStatus::Succeeded
    );
    // Already gone: starting again is an operation that has succeeded.
    let again = p.start(&target(), &delete, "tok-del").await.unwrap();
    assert_eq!(
        poll_until_done(&p, &delete, &again).await,
        OperationStatus::Succeeded
    );
    assert_eq!(p.find_in_flight(&target(), &delete).await.unwrap(), None);
    let actual = p.refresh(&target()).await.unwrap();
    assert!(actual.node_groups.iter().all(|g| g.name != "general-green"));

    // Cloning a group that does not exist says so.
    let missing = Action::CreateNodeGroup {
        node_group: "x-green".into(),
        clone_of: "x".into(),
        version: "1.29".parse().unwrap(),
    };
    let e = p.start(&target(), &missing, "t").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    assert!(e.message.contains("`x` does not exist"), "{}", e.message);
}

#[tokio::test]
async fn in_cluster_actions_are_not_eks_operations() {
    let env = Env::start(&world("")).await;
    let p = env.provider().await;
    for a in [
        Action::WaitNodesReady {
            node_group: "general".into(),
            count: 3,
            minor: Minor::new(1, 29),
        },
        Action::CordonNodeGroup {
            node_group: "general".into(),
            uncordon: false,
        },
        Action::Soak {
            node_group: "general".into(),
            secs: 1,
        },
    ] {
        let e = p.start(&target(), &a, "t").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.message.contains("NodeOps"), "{}", e.message);
        assert_eq!(p.find_in_flight(&target(), &a).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_budget_relaxed_during_the_drain_lets_it_finish() {
    let env = Env::start(&world(STUCK)).await;
    let ops = env.ops("prod").await;
    let s = until(&ops, "3 running db pods", |s| {
        running_of(s, "db-").count() == 3
    })
    .await;
    let node = busiest_node(&s, "db-");
    let pdb_name = s
        .pdbs
        .iter()
        .find(|p| p.namespace == "data")
        .unwrap()
        .name
        .clone();
    let client = env.client("prod");
    let relax = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
            Api::namespaced(client, "data");
        pdbs.patch(
            &pdb_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"spec": {"minAvailable": 2}})),
        )
        .await
        .unwrap();
    };
    let spec = DrainSpec {
        timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let (report, ()) = tokio::join!(ops.drain(&node, &spec), relax);
    let report = report.unwrap();
    assert!(
        report.evicted.iter().any(|p| p.starts_with("data/db-")),
        "{report:?}"
    );
    until(&ops, "3 db pods back", |s| {
        running_of(s, "db-").count() == 3
    })
    .await;
    let audit = env.audit("prod").await;
    assert!(audit["evictions_refused"].as_u64().unwrap() >= 1, "{audit}");
    for (name, a) in audit["pdbs"].as_object().unwrap() {
        assert_eq!(a["violated"], false, "budget {name} violated: {audit}");
    }
}

const SLOW: &str = r#"
  workload "slow" {
    kind                     = "Deployment"
    namespace                = "default"
    replicas                 = 3
    cpu                      = "100m"
    memory                   = "64Mi"
    node_group               = "general"
    termination_grace_period = 30
    labels                   = { app = "slow" }
  }
"#;

#[tokio::test]
async fn drain_waits_for_terminating_pods_with_a_watch() {
    // Speed 10: a 30 s grace period takes 3 s.
    let env = Env::start_at(&world(SLOW), 10.0).await;
    let ops = env.ops("prod").await;
    let s = until(&ops, "slow pods running", |s| {
        running_of(s, "slow-").count() == 3
    })
    .await;
    let node = busiest_node(&s, "slow-");
    let pods: Api<Pod> = Api::all(env.client("prod"));
    let on_node = |list: &[Pod]| -> Vec<String> {
        list.iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("slow-")
            })
            .map(|p| p.metadata.uid.clone().unwrap_or_default())
            .collect()
    };
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    let before = on_node(&pods.list(&lp).await.unwrap().items);
    assert!(!before.is_empty());

    // Too short a timeout: the pods are still terminating and are named.
    let err = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_millis(500)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match &err {
        DrainError::Timeout { node: n, pods, .. } => {
            assert_eq!(n, &node);
            assert!(pods.iter().any(|p| p.starts_with("default/slow-")), "{err}");
        }
        other => panic!("{other:?}"),
    }
    // Again with time enough: it returns only once they are gone (the terminating ones
    // are waited for, not evicted twice).
    let report = ops
        .drain(
            &node,
            &DrainSpec {
                timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let after = on_node(&pods.list(&lp).await.unwrap().items);
    assert!(
        before.iter().all(|uid| !after.contains(uid)),
        "{report:?}: {after:?}"
    );
}
