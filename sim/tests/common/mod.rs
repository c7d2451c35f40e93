//! Shared helpers: start a simulator on a temp world file and point the real aws-sdk-eks at it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_eks::config::{BehaviorVersion, Region};
use aws_sdk_eks::types::UpdateStatus;
use aws_sdk_eks::Client;
use kup_sim::{FaultSpec, Sim, SimConfig};
use serde_json::Value;

pub const WORLD: &str = r#"
settings {
  strict_nodegroup_skew = false
  account_id = "123456789012"
}
cluster "prod-eu" {
  region   = "eu-west-1"
  version  = "1.28"
  platform_version = "eks.5"
  node_group "general" {
    version         = "1.28"
    release_version = "1.28.5-20240307"
    instance_types  = ["m5.large"]
    ami_type        = "AL2023_x86_64_STANDARD"
    capacity_type   = "ON_DEMAND"
    min_size = 2
    max_size = 6
    desired_size = 3
    max_unavailable = 1
    labels = { team = "core" }
  }
  addon "coredns"    { version = "v1.10.1-eksbuild.7" }
  addon "kube-proxy" { version = "v1.28.4-eksbuild.1" }
  addon "vpc-cni"    { version = "v1.16.0-eksbuild.1" }
}
"#;

pub const CLUSTER: &str = "prod-eu";

pub struct Harness {
    pub sim: Sim,
    pub eks: Client,
    pub path: PathBuf,
    pub _dir: tempfile::TempDir,
}

pub fn client(endpoint: &str, retries: bool) -> Client {
    let mut b = aws_sdk_eks::config::Builder::new()
        .endpoint_url(endpoint)
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "sim"))
        .behavior_version(BehaviorVersion::latest());
    if !retries {
        b = b.retry_config(aws_sdk_eks::config::retry::RetryConfig::disabled());
    }
    Client::from_conf(b.build())
}

pub async fn start_with(world: &str, file_name: &str, speed: f64, faults: &str) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(file_name);
    std::fs::write(&path, world).expect("write world");
    let sim = start_on(&path, speed, faults).await;
    let eks = client(&sim.endpoints().eks, false);
    Harness {
        sim,
        eks,
        path,
        _dir: dir,
    }
}

pub async fn start_on(path: &std::path::Path, speed: f64, faults: &str) -> Sim {
    Sim::start(SimConfig {
        world: path.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        speed,
        faults: FaultSpec::parse(faults).expect("faults"),
    })
    .await
    .expect("sim starts")
}

pub async fn start(speed: f64, faults: &str) -> Harness {
    start_with(WORLD, "world.hcl", speed, faults).await
}

impl Harness {
    pub fn admin(&self) -> String {
        self.sim.endpoints().admin
    }

    pub async fn admin_get(&self, what: &str) -> Value {
        reqwest::get(format!("{}/{what}", self.admin()))
            .await
            .expect("admin get")
            .json()
            .await
            .expect("admin json")
    }

    pub async fn set_faults(&self, spec: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/faults", self.admin()))
            .body(spec.to_string())
            .send()
            .await
            .expect("post faults");
        assert!(r.status().is_success(), "{:?}", r.text().await);
    }

    pub async fn clear_faults(&self) {
        let r = reqwest::Client::new()
            .delete(format!("{}/faults", self.admin()))
            .send()
            .await
            .expect("delete faults");
        assert!(r.status().is_success());
    }

    /// Poll DescribeUpdate until the update leaves InProgress (bounded by iterations, not by a
    /// wall-clock assertion).
    pub async fn wait_update(
        &self,
        id: &str,
        nodegroup: Option<&str>,
        addon: Option<&str>,
    ) -> aws_sdk_eks::types::Update {
        for _ in 0..3000 {
            let out = self
                .eks
                .describe_update()
                .name(CLUSTER)
                .update_id(id)
                .set_nodegroup_name(nodegroup.map(str::to_string))
                .set_addon_name(addon.map(str::to_string))
                .send()
                .await
                .expect("describe update");
            let u = out.update.expect("update");
            if u.status != Some(UpdateStatus::InProgress) {
                return u;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("update {id} never left InProgress");
    }
}
