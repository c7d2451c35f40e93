//! The world file: saved after changes, reloaded by the next simulator, errors name the file.

mod common;

use aws_sdk_eks::types::UpdateStatus;
use common::{client, start_on, start_with, CLUSTER, WORLD};
use kup_sim::{FaultSpec, Sim, SimConfig};

const FAST: f64 = 6000.0;

async fn upgrade_and_reload(file_name: &str, world: &str) {
    let h = start_with(world, file_name, FAST, "").await;
    let u = h
        .eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let done = h.wait_update(u.id().unwrap(), None, None).await;
    assert_eq!(done.status, Some(UpdateStatus::Successful));
    let path = h.path.clone();
    let dir = h._dir;
    h.sim.shutdown().await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("1.29"), "{text}");

    // A second simulator on the same file sees the upgraded version and the update history.
    let sim2 = start_on(&path, FAST, "").await;
    let eks = client(&sim2.endpoints().eks, false);
    let c = eks.describe_cluster().name(CLUSTER).send().await.unwrap();
    assert_eq!(c.cluster().unwrap().version(), Some("1.29"));
    let again = eks
        .describe_update()
        .name(CLUSTER)
        .update_id(u.id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.update().unwrap().status,
        Some(UpdateStatus::Successful)
    );
    sim2.shutdown().await.unwrap();
    drop(dir);
}

#[tokio::test]
async fn hcl_world_is_saved_and_reloaded() {
    upgrade_and_reload("world.hcl", WORLD).await;
}

#[tokio::test]
async fn json_world_is_saved_and_reloaded() {
    let json = r#"{
      "settings": { "account_id": "210987654321" },
      "cluster": { "prod-eu": {
        "region": "eu-west-1", "version": "1.28",
        "node_group": { "general": { "desired_size": 2 } },
        "addon": { "kube-proxy": { "version": "v1.28.4-eksbuild.1" } }
      } }
    }"#;
    upgrade_and_reload("world.json", json).await;
}

#[tokio::test]
async fn in_flight_update_survives_restart() {
    // Speed 1 so the update cannot finish while we look; hang to be sure.
    let h = start_with(WORLD, "world.hcl", 1.0, "hang=prod-eu").await;
    let u = h
        .eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .client_request_token("tok-1")
        .send()
        .await
        .unwrap()
        .update
        .unwrap();
    let path = h.path.clone();
    let dir = h._dir;
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("remaining_seconds"), "{text}");
    assert!(text.contains("InProgress"), "{text}");

    // Restarted fast and without the hang: the same update completes.
    let sim2 = start_on(&path, 600_000.0, "").await;
    let eks = client(&sim2.endpoints().eks, false);
    let mut status = None;
    for _ in 0..3000 {
        let d = eks
            .describe_update()
            .name(CLUSTER)
            .update_id(u.id().unwrap())
            .send()
            .await
            .unwrap();
        status = d.update().unwrap().status.clone();
        if status != Some(UpdateStatus::InProgress) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, Some(UpdateStatus::Successful));
    // The token is remembered across restarts.
    let replay = eks
        .update_cluster_version()
        .name(CLUSTER)
        .version("1.29")
        .client_request_token("tok-1")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.update().unwrap().id(), u.id());
    sim2.shutdown().await.unwrap();
    drop(dir);
}

async fn start_err(file_name: &str, text: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    if let Some(t) = text {
        std::fs::write(&path, t).unwrap();
    }
    let r = Sim::start(SimConfig {
        world: path,
        listen: "127.0.0.1:0".parse().unwrap(),
        speed: 1.0,
        faults: FaultSpec::none(),
    })
    .await;
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn world_errors_name_file_and_line() {
    let e = start_err(
        "broken.hcl",
        Some("cluster \"a\" {\n  version = \"1.28\"\n  node_group \"n\" {\n    desired_size = = 3\n  }\n}\n"),
    )
    .await;
    assert!(e.contains("broken.hcl:4:"), "{e}");
    let e = start_err("missing.hcl", None).await;
    assert!(e.contains("missing.hcl"), "{e}");
    let e = start_err(
        "bad.json",
        Some("{\"cluster\": {\"a\": {\"version\": 1.28}}}"),
    )
    .await;
    assert!(e.contains("bad.json") && e.contains("line 1"), "{e}");
    let e = start_err("world.yaml", Some("x: 1")).await;
    assert!(e.contains("world.yaml") && e.contains(".hcl"), "{e}");
    let e = start_err(
        "skew.hcl",
        Some(
            "cluster \"a\" {\n  version = \"1.28\"\n  node_group \"n\" { version = \"1.30\" }\n}\n",
        ),
    )
    .await;
    assert!(
        e.contains("skew.hcl") && e.contains("node_group \"n\""),
        "{e}"
    );
}

#[tokio::test]
async fn kubernetes_side_is_rederived_after_restart() {
    let world = r#"
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.29"
  node_group "general" {
    version         = "1.28"
    release_version = "1.28.5-20240307"
    instance_types  = ["m5.xlarge"]
    desired_size    = 2
  }
  workload "web" {
    namespace  = "shop"
    replicas   = 3
    node_group = "general"
    pdb { max_unavailable = 1 }
  }
}
"#;
    // The node replacement hangs; the update is saved in flight (no fixed remaining time).
    let h = start_with(world, "world.hcl", 6000.0, "hang=prod-eu/general").await;
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
    let path = h.path.clone();
    let dir = h._dir;
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("workload \"web\"") && text.contains("node_group = \"general\""),
        "{text}"
    );
    assert!(text.contains("InProgress"), "{text}");

    // Restarted without the hang: the replacement runs again and completes.
    let sim2 = start_on(&path, 6000.0, "").await;
    let eks = client(&sim2.endpoints().eks, false);
    let mut status = None;
    for _ in 0..3000 {
        let d = eks
            .describe_update()
            .name(CLUSTER)
            .update_id(u.id().unwrap())
            .nodegroup_name("general")
            .send()
            .await
            .unwrap();
        status = d.update().unwrap().status.clone();
        if status != Some(UpdateStatus::InProgress) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, Some(UpdateStatus::Successful));
    sim2.shutdown().await.unwrap();

    // A third run derives nodes at the node group's new version and reschedules the workload.
    let sim3 = start_on(&path, 6000.0, "").await;
    let base = sim3.endpoints().kube[CLUSTER].clone();
    let nodes: serde_json::Value = reqwest::get(format!("{base}/api/v1/nodes"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for n in items {
        let kv = n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap();
        assert!(kv.starts_with("v1.29.13-eks-"), "{kv}");
    }
    let pods: serde_json::Value = reqwest::get(format!("{base}/api/v1/namespaces/shop/pods"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pods["items"].as_array().unwrap().len(), 3);
    assert!(pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"]["phase"] == "Running"));
    sim3.shutdown().await.unwrap();
    drop(dir);
}
