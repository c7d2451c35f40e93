//! AKS upgrade protection: `upgradeSettings.overrideSettings` persisted on managedClusters
//! GET/PUT, and control-plane minor upgrades refused (`ValidationError` /
//! `UpgradeBlockedOnDeprecatedAPIUsage`) while the cluster uses APIs the target minor removes,
//! unless `forceUpgrade` is set with a future `until`.

use std::time::Duration;

use kup_sim::{FaultSpec, Sim, SimConfig};
use serde_json::{json, Value};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const API: &str = "api-version=2026-10-01";

const WORLD: &str = r#"
aks_cluster "prod" {
  resource_group       = "rg-prod"
  version              = "1.31.11"
  deprecated_api_usage = ["/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas", "/apis/networking.k8s.io/v1beta1/ingresses"]
  agent_pool "system" {
    mode = "System"
  }
}
aks_cluster "older" {
  resource_group       = "rg-prod"
  version              = "1.30.14"
  deprecated_api_usage = ["/apis/flowcontrol.apiserver.k8s.io/v1beta3/prioritylevelconfigurations"]
  agent_pool "system" {
    mode = "System"
  }
}
aks_cluster "forced" {
  resource_group       = "rg-prod"
  version              = "1.31.11"
  deprecated_api_usage = ["/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas"]
  upgrade_override {
    force_upgrade = true
    until         = "2099-01-01T00:00:00Z"
  }
  agent_pool "system" {
    mode = "System"
  }
}
"#;

struct H {
    sim: Sim,
    http: reqwest::Client,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn mc(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters/{name}?{API}"
    )
}

impl H {
    async fn call(&self, method: reqwest::Method, name: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.sim.endpoints().eks, mc(name)))
            .bearer_auth("token");
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, name: &str) -> Value {
        let (c, v) = self.call(reqwest::Method::GET, name, None).await;
        assert_eq!(c, 200, "{v}");
        v
    }
    async fn put(&self, name: &str, props: Value) -> (u16, Value) {
        let mut cur = self.get(name).await;
        for (k, v) in props.as_object().unwrap() {
            cur["properties"][k] = v.clone();
        }
        self.call(reqwest::Method::PUT, name, Some(cur)).await
    }
    /// Poll until the cluster's operation is over (bounded by iterations).
    async fn settled(&self, name: &str) -> Value {
        for _ in 0..2000 {
            let v = self.get(name).await;
            if v["properties"]["provisioningState"] == "Succeeded" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name} never settled");
    }
}

async fn start(world: &str) -> H {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.hcl");
    std::fs::write(&path, world).unwrap();
    let sim = Sim::start(SimConfig {
        world: path.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        speed: 600.0,
        faults: FaultSpec::none(),
    })
    .await
    .unwrap();
    H {
        sim,
        http: reqwest::Client::new(),
        path,
        _dir: dir,
    }
}

fn assert_blocked(code: u16, v: &Value, api: &str, minor: &str) {
    assert_eq!(code, 400, "{v}");
    let e = &v["error"];
    assert_eq!(e["code"], "ValidationError", "{v}");
    assert_eq!(e["subcode"], "UpgradeBlockedOnDeprecatedAPIUsage", "{v}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Control Plane upgrade is blocked due to recent usage of a Kubernetes API deprecated in the specified version."),
        "{msg}"
    );
    assert!(
        msg.contains("set forceUpgrade in upgradeSettings.overrideSettings"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "usage has been detected on API {api}, and was recently seen at: "
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("which will be removed in {minor}")),
        "{msg}"
    );
}

#[tokio::test]
async fn deprecated_api_usage_blocks_minor_upgrades_until_forced() {
    let h = start(WORLD).await;
    let v = h.get("prod").await;
    assert!(v["properties"].get("upgradeSettings").is_none(), "{v}");

    // Blocked: flowschemas v1beta3 is removed in 1.32 (the ingress usage was removed long ago
    // and is not reported).
    let (c, v) = h.put("prod", json!({ "kubernetesVersion": "1.32" })).await;
    assert_blocked(
        c,
        &v,
        "flowcontrol.apiserver.k8s.io.flowschemas.v1beta3",
        "1.32",
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Usage details: 1 error occurred:\n\t* usage"),
        "{msg}"
    );
    assert!(!msg.contains("ingresses"), "{msg}");
    // Overrides that do not take effect: forceUpgrade without a future `until`, or false.
    for us in [
        json!({ "overrideSettings": { "forceUpgrade": true } }),
        json!({ "overrideSettings": { "forceUpgrade": true, "until": "2020-01-01T00:00:00Z" } }),
        json!({ "overrideSettings": { "forceUpgrade": false, "until": "2099-01-01T00:00:00Z" } }),
    ] {
        let (c, v) = h
            .put(
                "prod",
                json!({ "kubernetesVersion": "1.32", "upgradeSettings": us }),
            )
            .await;
        assert_blocked(
            c,
            &v,
            "flowcontrol.apiserver.k8s.io.flowschemas.v1beta3",
            "1.32",
        );
    }
    assert_eq!(
        h.get("prod").await["properties"]["currentKubernetesVersion"],
        "1.31.11"
    );
    let (c, v) = h
        .put(
            "prod",
            json!({ "upgradeSettings": { "overrideSettings": { "forceUpgrade": true, "until": "tomorrow" } } }),
        )
        .await;
    assert_eq!(
        (c, &v["error"]["code"]),
        (400, &json!("InvalidParameter")),
        "{v}"
    );

    // Set the override on its own (no version change), then upgrade with the stored setting.
    let (c, v) = h
        .put(
            "prod",
            json!({ "upgradeSettings": { "overrideSettings": { "forceUpgrade": true, "until": "2099-01-01T00:00:00Z" } } }),
        )
        .await;
    assert_eq!(c, 200, "{v}");
    let v = h.settled("prod").await;
    assert_eq!(
        v["properties"]["upgradeSettings"],
        json!({ "overrideSettings": { "forceUpgrade": true, "until": "2099-01-01T00:00:00Z" } })
    );
    let mut body = h.get("prod").await;
    body["properties"]["kubernetesVersion"] = json!("1.32");
    body["properties"]
        .as_object_mut()
        .unwrap()
        .remove("upgradeSettings");
    let (c, v) = h.call(reqwest::Method::PUT, "prod", Some(body)).await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["properties"]["provisioningState"], "Upgrading");
    let v = h.settled("prod").await;
    assert!(v["properties"]["currentKubernetesVersion"]
        .as_str()
        .unwrap()
        .starts_with("1.32."));

    // A minor that removes nothing the cluster uses is not blocked.
    let (c, v) = h.put("older", json!({ "kubernetesVersion": "1.31" })).await;
    assert_eq!(c, 200, "{v}");
    h.settled("older").await;
    let (c, v) = h.put("older", json!({ "kubernetesVersion": "1.32" })).await;
    assert_blocked(
        c,
        &v,
        "flowcontrol.apiserver.k8s.io.prioritylevelconfigurations.v1beta3",
        "1.32",
    );

    // Seeded from the world file.
    let v = h.get("forced").await;
    assert_eq!(
        v["properties"]["upgradeSettings"]["overrideSettings"]["forceUpgrade"],
        true
    );
    let (c, v) = h
        .put("forced", json!({ "kubernetesVersion": "1.32" }))
        .await;
    assert_eq!(c, 200, "{v}");

    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&h.path).unwrap();
    assert!(text.contains("upgrade_override {"), "{text}");
    assert!(text.contains("until = \"2099-01-01T00:00:00Z\""), "{text}");
    assert!(text.contains("deprecated_api_usage"), "{text}");
}

#[tokio::test]
async fn unknown_deprecated_apis_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.hcl");
    std::fs::write(
        &path,
        r#"aks_cluster "x" {
  version              = "1.31.11"
  deprecated_api_usage = ["/apis/apps/v1/deployments"]
  agent_pool "system" {
    mode = "System"
  }
}"#,
    )
    .unwrap();
    let err = Sim::start(SimConfig {
        world: path,
        listen: "127.0.0.1:0".parse().unwrap(),
        speed: 1.0,
        faults: FaultSpec::none(),
    })
    .await
    .err()
    .expect("refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("aks_cluster \"x\""), "{msg}");
    assert!(msg.contains("not a removed Kubernetes API"), "{msg}");
}
