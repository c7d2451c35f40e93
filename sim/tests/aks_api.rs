//! The AKS Azure Resource Manager API (`Microsoft.ContainerService` managedClusters and
//! agentPools under `/subscriptions/`): api-version and auth checks, reads, the upgrade
//! rules, ARM async operations, surge agent-pool upgrades in the Kubernetes API, drain
//! timeouts and resume, pool create/delete, preconditions, faults and persistence.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kup_sim::{FaultSpec, Sim, SimConfig};
use serde_json::{json, Value};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const API: &str = "api-version=2026-10-01";

const WORLD: &str = r#"
aks_cluster "prod" {
  subscription_id         = "00000000-0000-0000-0000-000000000001"
  resource_group          = "rg-prod"
  location                = "westeurope"
  version                 = "1.30.5"
  auto_upgrade_channel    = "none"
  node_os_upgrade_channel = "NodeImage"
  max_pool_skew           = 2
  agent_pool "system" {
    mode            = "System"
    version         = "1.30.5"
    count           = 3
    vm_size         = "Standard_D4s_v5"
    max_surge       = "10%"
    max_unavailable = "0"
    zones           = ["1", "2", "3"]
  }
  agent_pool "apps" {
    mode                  = "User"
    version               = "1.29.9"
    count                 = 3
    vm_size               = "Standard_D4s_v5"
    max_surge             = "1"
    drain_timeout_minutes = 2
    node_soak_minutes     = 0
    zones                 = ["1", "2", "3"]
  }
  workload "web" {
    namespace  = "shop"
    replicas   = 4
    node_group = "apps"
    pdb { min_available = 3 }
  }
}

aks_cluster "legacy" {
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-old"
  location        = "northeurope"
  version         = "1.30.9"
  agent_pool "sys" {
    mode    = "System"
    version = "1.28.15"
    count   = 1
  }
}
"#;

fn mc(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}")
}

fn prod() -> String {
    mc("rg-prod", "prod")
}

struct H {
    sim: Sim,
    url: String,
    http: reqwest::Client,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn header(&self, k: &str) -> Option<String> {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

async fn start(world: &str, speed: f64, faults: &str) -> H {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.hcl");
    std::fs::write(&path, world).unwrap();
    let sim = Sim::start(SimConfig {
        world: path.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        speed,
        faults: FaultSpec::parse(faults).unwrap(),
    })
    .await
    .unwrap();
    let url = sim.endpoints().eks;
    H {
        sim,
        url,
        http: reqwest::Client::new(),
        path,
        _dir: dir,
    }
}

impl H {
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
        auth: bool,
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.url)
        };
        let mut rb = self.http.request(method, url);
        if auth {
            rb = rb.bearer_auth("kup-sim-token");
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }
    fn with_api(path: &str) -> String {
        if path.contains("api-version=") {
            path.to_string()
        } else if path.contains('?') {
            format!("{path}&{API}")
        } else {
            format!("{path}?{API}")
        }
    }
    async fn get(&self, path: &str) -> Resp {
        self.raw(reqwest::Method::GET, &Self::with_api(path), None, &[], true)
            .await
    }
    async fn put(&self, path: &str, body: Value) -> Resp {
        self.raw(
            reqwest::Method::PUT,
            &Self::with_api(path),
            Some(body),
            &[],
            true,
        )
        .await
    }
    async fn delete(&self, path: &str) -> Resp {
        self.raw(
            reqwest::Method::DELETE,
            &Self::with_api(path),
            None,
            &[],
            true,
        )
        .await
    }
    /// Poll an Azure-AsyncOperation URL until the status is terminal.
    async fn wait_op(&self, url: &str) -> (Value, Vec<String>) {
        let t = Instant::now();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let r = self.get(url).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let st = r.body["status"].as_str().unwrap().to_string();
            if seen.last() != Some(&st) {
                seen.push(st.clone());
            }
            if st != "InProgress" {
                return (r.body, seen);
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "operation stuck: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    async fn kube(&self, cluster: &str, path: &str) -> Value {
        let k = &self.sim.endpoints().kube[cluster];
        self.http
            .get(format!("{k}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn audit(&self, cluster: &str) -> Value {
        self.http
            .get(format!("{}/_sim/kube/{cluster}/audit", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn faults(&self, spec: &str) {
        let r = self
            .http
            .post(format!("{}/_sim/faults", self.url))
            .body(spec.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    async fn pool_nodes(&self, pool: &str) -> Vec<Value> {
        let nodes = self
            .kube(
                "prod",
                &format!("/api/v1/nodes?labelSelector=kubernetes.azure.com/agentpool%3D{pool}"),
            )
            .await;
        nodes["items"].as_array().cloned().unwrap_or_default()
    }
}

fn kubelet(n: &Value) -> String {
    n["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn b64_decode(s: &str) -> Vec<u8> {
    let t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.chars().filter(|c| *c != '=') {
        buf = buf << 6 | t.find(c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

/// The pool body the provider would send back: the GET answer with some properties changed.
fn pool_body(pool: &Value, changes: Value) -> Value {
    let mut props = pool["properties"].clone();
    for (k, v) in changes.as_object().unwrap() {
        props[k] = v.clone();
    }
    json!({ "properties": props })
}

#[tokio::test]
async fn api_version_and_auth_are_checked() {
    let h = start(WORLD, 600.0, "").await;
    let r = h
        .raw(
            reqwest::Method::GET,
            &format!("{}?{API}", prod()),
            None,
            &[],
            false,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "AuthenticationFailed");
    assert!(r.header("www-authenticate").is_some());
    let r = h.raw(reqwest::Method::GET, &prod(), None, &[], true).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "MissingApiVersionParameter");
    let r = h.get(&format!("{}?api-version=banana", prod())).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "InvalidApiVersionParameter");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'banana' is invalid"));
    // A stable version older than 2023-01-01 and a preview are not served.
    for v in ["2019-02-01", "2025-10-02-preview"] {
        let r = h.get(&format!("{}?api-version={v}", prod())).await;
        assert_eq!(r.status, 400, "{v}");
        assert_eq!(r.body["error"]["code"], "NoRegisteredProviderFound", "{v}");
    }
    for v in ["2023-01-01", "2024-09-01", "2026-08-01", "2026-10-01"] {
        let r = h.get(&format!("{}?api-version={v}", prod())).await;
        assert_eq!(r.status, 200, "{v}: {}", r.body);
    }
    // Unknown cluster / pool.
    let r = h.get(&mc("rg-prod", "nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "ResourceNotFound");
    let r = h.get(&format!("{}/agentPools/nope", prod())).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "NotFound");
    // A cluster is only found under its own resource group.
    let r = h.get(&mc("rg-old", "prod")).await;
    assert_eq!(r.status, 404);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn get_and_list_clusters_pools_versions_and_credentials() {
    let h = start(WORLD, 600.0, "").await;
    let r = h.get(&prod()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = &r.body;
    assert_eq!(c["name"], "prod");
    assert_eq!(c["location"], "westeurope");
    assert_eq!(c["type"], "Microsoft.ContainerService/ManagedClusters");
    assert!(c["id"]
        .as_str()
        .unwrap()
        .ends_with("/providers/Microsoft.ContainerService/managedClusters/prod"));
    let etag = c["eTag"].as_str().unwrap();
    assert_eq!(r.header("etag").unwrap(), format!("\"{etag}\""));
    let p = &c["properties"];
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(p["kubernetesVersion"], "1.30.5");
    assert_eq!(p["currentKubernetesVersion"], "1.30.5");
    assert_eq!(p["powerState"]["code"], "Running");
    assert_eq!(p["autoUpgradeProfile"]["upgradeChannel"], "none");
    assert_eq!(p["autoUpgradeProfile"]["nodeOSUpgradeChannel"], "NodeImage");
    let kube = &h.sim.endpoints().kube["prod"];
    assert_eq!(format!("http://{}", p["fqdn"].as_str().unwrap()), *kube);
    let profiles = p["agentPoolProfiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2);
    let apps = profiles.iter().find(|x| x["name"] == "apps").unwrap();
    assert_eq!(apps["orchestratorVersion"], "1.29.9");
    assert_eq!(apps["currentOrchestratorVersion"], "1.29.9");
    assert_eq!(apps["mode"], "User");
    assert_eq!(apps["upgradeSettings"]["maxSurge"], "1");
    assert_eq!(apps["upgradeSettings"]["drainTimeoutInMinutes"], 2);

    let r = h.get(&format!("{}/agentPools", prod())).await;
    assert_eq!(r.status, 200);
    let pools = r.body["value"].as_array().unwrap();
    assert_eq!(pools.len(), 2);
    let r = h.get(&format!("{}/agentPools/system", prod())).await;
    assert_eq!(r.status, 200);
    let sp = &r.body;
    assert_eq!(
        sp["type"],
        "Microsoft.ContainerService/managedClusters/agentPools"
    );
    let pp = &sp["properties"];
    for (k, v) in [
        ("count", json!(3)),
        ("vmSize", json!("Standard_D4s_v5")),
        ("osType", json!("Linux")),
        ("osSKU", json!("Ubuntu")),
        ("mode", json!("System")),
        ("orchestratorVersion", json!("1.30.5")),
        ("currentOrchestratorVersion", json!("1.30.5")),
        ("provisioningState", json!("Succeeded")),
        ("maxPods", json!(110)),
        ("availabilityZones", json!(["1", "2", "3"])),
        ("enableAutoScaling", json!(false)),
    ] {
        assert_eq!(pp[k], v, "{k}: {pp}");
    }
    assert_eq!(pp["upgradeSettings"]["maxSurge"], "10%");
    assert_eq!(pp["upgradeSettings"]["maxUnavailable"], "0");
    assert_eq!(pp["upgradeSettings"]["drainTimeoutInMinutes"], 30);
    assert_eq!(pp["upgradeSettings"]["nodeSoakDurationInMinutes"], 0);
    assert_eq!(
        r.header("etag").unwrap(),
        format!("\"{}\"", pp["eTag"].as_str().unwrap())
    );

    // Lists by resource group and subscription.
    let r = h
        .get(&format!(
            "/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.ContainerService/managedClusters"
        ))
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    let r = h
        .get(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.ContainerService/managedClusters"
        ))
        .await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 2);

    // Upgrade profile: newer 1.30 patches and 1.31 patches only.
    let r = h.get(&format!("{}/upgradeProfiles/default", prod())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cp = &r.body["properties"]["controlPlaneProfile"];
    assert_eq!(cp["kubernetesVersion"], "1.30.5");
    let ups: Vec<&str> = cp["upgrades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kubernetesVersion"].as_str().unwrap())
        .collect();
    assert!(
        ups.contains(&"1.30.9") && ups.contains(&"1.31.11"),
        "{ups:?}"
    );
    assert!(!ups.iter().any(|v| v.starts_with("1.32")), "{ups:?}");
    let app_prof = r.body["properties"]["agentPoolProfiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "apps")
        .unwrap()
        .clone();
    assert_eq!(app_prof["kubernetesVersion"], "1.29.9");
    assert!(app_prof["upgrades"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["kubernetesVersion"] == "1.30.5"));

    // kubernetesVersions in the KubernetesVersions_List shape.
    let r = h
        .get(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/westeurope/kubernetesVersions"
        ))
        .await;
    let vals = r.body["values"].as_array().unwrap();
    assert!(vals.len() >= 8);
    let v131 = vals.iter().find(|v| v["version"] == "1.31").unwrap();
    assert!(v131["patchVersions"]["1.31.2"]["upgrades"]
        .as_array()
        .unwrap()
        .contains(&json!("1.32.9")));
    assert!(v131["capabilities"]["supportPlan"]
        .as_array()
        .unwrap()
        .contains(&json!("KubernetesOfficial")));
    assert_eq!(vals.iter().filter(|v| v["isDefault"] == true).count(), 1);

    // listClusterUserCredential: a kubeconfig pointing at the simulated API server.
    let r = h
        .raw(
            reqwest::Method::POST,
            &format!("{}/listClusterUserCredential?{API}", prod()),
            None,
            &[],
            true,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["kubeconfigs"][0]["name"], "clusterUser");
    let kc = String::from_utf8(b64_decode(
        r.body["kubeconfigs"][0]["value"].as_str().unwrap(),
    ))
    .unwrap();
    assert!(kc.contains(&format!("server: {kube}")), "{kc}");

    // The Kubernetes side: AKS node names, labels and kubelet versions.
    let nodes = h.pool_nodes("apps").await;
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        let name = n["metadata"]["name"].as_str().unwrap();
        let rest = name.strip_prefix("aks-apps-").unwrap();
        let (digits, vmss) = rest.split_once("-vmss").unwrap();
        assert!(
            digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()),
            "{name}"
        );
        assert!(
            vmss.len() == 6 && vmss.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{name}"
        );
        let l = &n["metadata"]["labels"];
        assert_eq!(l["agentpool"], "apps");
        assert_eq!(l["kubernetes.azure.com/mode"], "user");
        assert!(l["topology.kubernetes.io/zone"]
            .as_str()
            .unwrap()
            .starts_with("westeurope-"));
        assert_eq!(kubelet(n), "v1.29.9");
    }
    let sys = h.pool_nodes("system").await;
    assert!(sys
        .iter()
        .all(|n| n["metadata"]["labels"]["kubernetes.azure.com/mode"] == "system"));
    let v = h.kube("prod", "/version").await;
    assert_eq!(v["gitVersion"], "v1.30.5");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn control_plane_only_upgrade_leaves_pools_untouched_with_async_operation() {
    let h = start(WORLD, 600.0, "").await;
    let before = h.get(&prod()).await.body;
    let mut body = before.clone();
    body["properties"]["kubernetesVersion"] = json!("1.31");
    let r = h.put(&prod(), body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Upgrading");
    assert_eq!(r.body["properties"]["kubernetesVersion"], "1.31");
    assert_eq!(r.body["properties"]["currentKubernetesVersion"], "1.30.5");
    let op_url = r.header("azure-asyncoperation").unwrap();
    let prefix = format!(
        "{}/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/westeurope/operations/",
        h.url
    );
    assert!(op_url.starts_with(&prefix), "{op_url}");
    assert!(op_url.ends_with("?api-version=2026-10-01"), "{op_url}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    let location = r.header("location").unwrap();
    assert_eq!(
        location,
        op_url.replace("/operations/", "/operationresults/")
    );
    let running = h
        .raw(reqwest::Method::GET, &location, None, &[], true)
        .await;
    assert_eq!(running.status, 202);
    assert!(running.header("retry-after").is_some());
    // The operation status resource.
    let first = h.get(&op_url).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["status"], "InProgress");
    assert!(first.body["startTime"].is_string());
    assert!(first.body["endTime"].is_null());
    let id = first.body["name"].as_str().unwrap().to_string();
    assert!(op_url.contains(&id));
    // While it runs: cluster Upgrading, a second mutation conflicts.
    let c = h.get(&prod()).await.body;
    assert_eq!(c["properties"]["provisioningState"], "Upgrading");
    let pool = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    let r = h
        .put(
            &format!("{}/agentPools/apps", prod()),
            pool_body(&pool, json!({ "orchestratorVersion": "1.30.5" })),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "OperationNotAllowed");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("operation ID: {id}")));
    let (op, seen) = h.wait_op(&op_url).await;
    assert_eq!(seen, vec!["InProgress", "Succeeded"], "{op}");
    assert_eq!(op["percentComplete"], 100.0);
    assert!(op["endTime"].is_string());
    assert!(op["error"].is_null());
    // operationresults: 204 once done.
    let loc = h
        .raw(
            reqwest::Method::GET,
            &op_url.replace("/operations/", "/operationresults/"),
            None,
            &[],
            true,
        )
        .await;
    assert_eq!(loc.status, 204);
    let c = h.get(&prod()).await.body;
    assert_eq!(c["properties"]["currentKubernetesVersion"], "1.31.11");
    assert_eq!(c["properties"]["provisioningState"], "Succeeded");
    for prof in c["properties"]["agentPoolProfiles"].as_array().unwrap() {
        let was = before["properties"]["agentPoolProfiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == prof["name"])
            .unwrap();
        assert_eq!(
            prof["currentOrchestratorVersion"],
            was["currentOrchestratorVersion"]
        );
        assert_eq!(prof["orchestratorVersion"], was["orchestratorVersion"]);
    }
    // No node was replaced.
    assert!(h
        .pool_nodes("apps")
        .await
        .iter()
        .all(|n| kubelet(n) == "v1.29.9"));
    assert!(h
        .pool_nodes("system")
        .await
        .iter()
        .all(|n| kubelet(n) == "v1.30.5"));
    assert_eq!(h.kube("prod", "/version").await["gitVersion"], "v1.31.11");
    // The call log.
    let calls: Value = h
        .http
        .get(format!("{}/_sim/calls", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = calls.as_array().unwrap();
    let cp = calls
        .iter()
        .find(|c| c["op"] == "managedClusters.createOrUpdate")
        .unwrap();
    assert_eq!(cp["cluster"], "prod");
    assert_eq!(cp["update_id"], json!(id));
    assert_eq!(cp["mutation"], true);
    let refused = calls
        .iter()
        .find(|c| c["op"] == "agentPools.createOrUpdate")
        .unwrap();
    assert_eq!(refused["nodegroup"], "apps");
    assert_eq!(refused["mutation"], false);
    assert_eq!(refused["error"], "OperationNotAllowed");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn upgrade_rules_are_enforced() {
    let h = start(WORLD, 600.0, "").await;
    let c = h.get(&prod()).await.body;
    // Skipping a minor.
    let mut b = c.clone();
    b["properties"]["kubernetesVersion"] = json!("1.32");
    let r = h.put(&prod(), b).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "OperationNotAllowed");
    let m = r.body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("Upgrading Kubernetes version 1.30.5 to 1.32.9 is not allowed"),
        "{m}"
    );
    assert!(m.contains("1.31.11"), "{m}");
    // Downgrade.
    let mut b = c.clone();
    b["properties"]["kubernetesVersion"] = json!("1.29.15");
    let r = h.put(&prod(), b).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "OperationNotAllowed");
    // A version not offered.
    let mut b = c.clone();
    b["properties"]["kubernetesVersion"] = json!("1.31.3");
    let r = h.put(&prod(), b).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "K8sVersionNotSupported");
    // A pool ahead of the control plane.
    let pool = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    let r = h
        .put(
            &format!("{}/agentPools/apps", prod()),
            pool_body(&pool, json!({ "orchestratorVersion": "1.31.7" })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "NodePoolMcVersionIncompatible");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("is bigger than control plane version"));
    // A new pool too far behind (1.27 with the control plane at 1.30, skew 2).
    let r = h
        .put(
            &format!("{}/agentPools/old", prod()),
            json!({ "properties": { "mode": "User", "count": 1, "orchestratorVersion": "1.27.16" } }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "NodePoolMcVersionIncompatible");
    // The control plane may not leave a pool more than 2 minors behind.
    let legacy = h.get(&mc("rg-old", "legacy")).await.body;
    let mut b = legacy.clone();
    b["properties"]["kubernetesVersion"] = json!("1.31");
    let r = h.put(&mc("rg-old", "legacy"), b).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "NodePoolMcVersionIncompatible");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sys (1.28.15)"));
    // Changing a pool's orchestratorVersion through the managed cluster is not a CP-only upgrade.
    let mut b = c.clone();
    b["properties"]["kubernetesVersion"] = json!("1.31");
    b["properties"]["agentPoolProfiles"][0]["orchestratorVersion"] = json!("1.31.2");
    let r = h.put(&prod(), b).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // maxUnavailable on a System pool; maxSurge 0 with maxUnavailable 0.
    let sys = h.get(&format!("{}/agentPools/system", prod())).await.body;
    let r = h
        .put(
            &format!("{}/agentPools/system", prod()),
            pool_body(
                &sys,
                json!({ "upgradeSettings": { "maxSurge": "1", "maxUnavailable": "1" } }),
            ),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "InvalidParameter");
    let r = h
        .put(
            &format!("{}/agentPools/apps", prod()),
            pool_body(
                &pool,
                json!({ "upgradeSettings": { "maxSurge": "0", "maxUnavailable": "0" } }),
            ),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maxSurge"));
    // Immutable properties.
    let r = h
        .put(
            &format!("{}/agentPools/apps", prod()),
            pool_body(&pool, json!({ "vmSize": "Standard_E8s_v5" })),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "PropertyChangeNotAllowed");
    // Nothing above started an operation.
    let calls: Value = h
        .http
        .get(format!("{}/_sim/calls", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(calls
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["mutation"] == false));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn max_pool_skew_three_allows_three_minors_behind() {
    let world = WORLD.replace(
        "  version         = \"1.30.9\"\n",
        "  version         = \"1.30.9\"\n  max_pool_skew   = 3\n",
    );
    let h = start(&world, 600.0, "").await;
    let mut b = h.get(&mc("rg-old", "legacy")).await.body;
    b["properties"]["kubernetesVersion"] = json!("1.31.2");
    let r = h.put(&mc("rg-old", "legacy"), b).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Succeeded");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn pool_surge_upgrade_replaces_nodes_within_pdbs() {
    let h = start(WORLD, 600.0, "").await;
    let old: Vec<String> = h
        .pool_nodes("apps")
        .await
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let pool = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    let r = h
        .put(
            &format!("{}/agentPools/apps", prod()),
            pool_body(&pool, json!({ "orchestratorVersion": "1.30.5" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Upgrading");
    assert_eq!(r.body["properties"]["orchestratorVersion"], "1.30.5");
    assert_eq!(r.body["properties"]["currentOrchestratorVersion"], "1.29.9");
    let url = r.header("azure-asyncoperation").unwrap();
    assert!(r.header("retry-after").is_some());
    let mut max_nodes = 0;
    let t = Instant::now();
    loop {
        let n = h.pool_nodes("apps").await.len();
        max_nodes = max_nodes.max(n);
        let op = h.get(&url).await.body;
        if op["status"] != "InProgress" {
            assert_eq!(op["status"], "Succeeded", "{op}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "stuck: {op}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        max_nodes <= 4,
        "maxSurge 1 on 3 nodes: at most 4, saw {max_nodes}"
    );
    let nodes = h.pool_nodes("apps").await;
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        assert_eq!(kubelet(n), "v1.30.5");
        assert!(!old.contains(&n["metadata"]["name"].as_str().unwrap().to_string()));
    }
    let p = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    assert_eq!(p["properties"]["currentOrchestratorVersion"], "1.30.5");
    assert_eq!(p["properties"]["provisioningState"], "Succeeded");
    let audit = h.audit("prod").await;
    assert_eq!(audit["lost_pods"], json!([]), "{audit}");
    assert_eq!(audit["pdbs"]["shop/web"]["violated"], false, "{audit}");
    assert!(audit["evictions"].as_u64().unwrap() >= 4, "{audit}");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn drain_timeout_stops_the_upgrade_and_a_second_put_resumes_it() {
    // A budget that allows no disruption blocks the drain.
    let world = WORLD.replace("pdb { min_available = 3 }", "pdb { min_available = 4 }");
    let h = start(&world, 600.0, "").await;
    let pool = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    let body = pool_body(&pool, json!({ "orchestratorVersion": "1.30.5" }));
    let r = h
        .put(&format!("{}/agentPools/apps", prod()), body.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Failed", "{op}");
    assert_eq!(op["error"]["code"], "UpgradeFailed");
    let msg = op["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Drain node aks-apps-"), "{msg}");
    assert!(msg.contains("blocked by pdb web"), "{msg}");
    assert!(msg.contains("shop/web-"), "{msg}");
    let p = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    assert_eq!(p["properties"]["provisioningState"], "Failed");
    assert_eq!(
        p["properties"]["status"]["provisioningError"]["code"],
        "UpgradeFailed"
    );
    assert_eq!(p["properties"]["currentOrchestratorVersion"], "1.29.9");
    assert_eq!(p["properties"]["orchestratorVersion"], "1.30.5");
    let c = h.get(&prod()).await.body;
    assert_eq!(c["properties"]["provisioningState"], "Failed");
    // Nodes stay as they are: the blocked node stays cordoned, the surge node stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let nodes = h.pool_nodes("apps").await;
    assert_eq!(nodes.len(), 4, "3 old + 1 surge");
    let cordoned: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["spec"]["unschedulable"] == true)
        .collect();
    assert_eq!(cordoned.len(), 1);
    assert_eq!(kubelet(cordoned[0]), "v1.29.9");
    assert_eq!(nodes.iter().filter(|n| kubelet(n) == "v1.30.5").count(), 1);
    // Relax the budget, then any PUT of the pool resumes the upgrade.
    let k = &h.sim.endpoints().kube["prod"];
    let r = h
        .http
        .patch(format!(
            "{k}/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web"
        ))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"spec":{"minAvailable":3}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let p = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    let r = h
        .put(
            &format!("{}/agentPools/apps", prod()),
            json!({ "properties": p["properties"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Upgrading");
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let nodes = h.pool_nodes("apps").await;
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| kubelet(n) == "v1.30.5"));
    assert!(nodes.iter().all(|n| n["spec"]["unschedulable"].is_null()));
    let audit = h.audit("prod").await;
    assert_eq!(audit["lost_pods"], json!([]), "{audit}");
    assert_eq!(audit["pdbs"]["shop/web"]["violated"], false, "{audit}");
    assert!(audit["evictions_refused"].as_u64().unwrap() > 0);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn undrainable_cordon_quarantines_blocked_nodes() {
    let world = WORLD
        .replace("pdb { min_available = 3 }", "pdb { min_available = 4 }")
        .replace(
            "    drain_timeout_minutes = 2\n",
            "    drain_timeout_minutes = 2\n    undrainable_node_behavior = \"Cordon\"\n",
        );
    let h = start(&world, 600.0, "").await;
    let pool = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    assert_eq!(
        pool["properties"]["upgradeSettings"]["undrainableNodeBehavior"],
        "Cordon"
    );
    let r = h
        .put(
            &format!("{}/agentPools/apps", prod()),
            pool_body(&pool, json!({ "orchestratorVersion": "1.30.5" })),
        )
        .await;
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Failed");
    let nodes = h.pool_nodes("apps").await;
    let q: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["metadata"]["labels"]["kubernetes.azure.com/upgrade-status"] == "Quarantined")
        .collect();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["spec"]["unschedulable"], true);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn create_and_delete_a_user_pool() {
    let h = start(WORLD, 600.0, "").await;
    let r = h
        .put(
            &format!("{}/agentPools/batch", prod()),
            json!({ "properties": {
                "mode": "User", "count": 2, "vmSize": "Standard_D2s_v5",
                "orchestratorVersion": "1.30", "nodeLabels": { "team": "data" },
                "nodeTaints": ["dedicated=batch:NoSchedule"],
                "upgradeSettings": { "maxSurge": "33%" }
            } }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Creating");
    assert_eq!(r.body["properties"]["currentOrchestratorVersion"], "1.30.5");
    assert_eq!(r.body["properties"]["orchestratorVersion"], "1.30");
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let nodes = h.pool_nodes("batch").await;
    assert_eq!(nodes.len(), 2);
    for n in &nodes {
        assert!(n["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("aks-batch-"));
        assert_eq!(n["metadata"]["labels"]["team"], "data");
        assert_eq!(n["metadata"]["labels"]["kubernetes.azure.com/mode"], "user");
        assert_eq!(n["spec"]["taints"][0]["key"], "dedicated");
        assert_eq!(kubelet(n), "v1.30.5");
    }
    let p = h.get(&format!("{}/agentPools/batch", prod())).await.body;
    assert_eq!(p["properties"]["provisioningState"], "Succeeded");
    assert_eq!(p["properties"]["upgradeSettings"]["maxSurge"], "33%");
    // Delete it.
    let r = h.delete(&format!("{}/agentPools/batch", prod())).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let url = r.header("azure-asyncoperation").unwrap();
    assert!(r.header("location").unwrap().contains("/operationresults/"));
    assert!(r.header("retry-after").is_some());
    let p = h.get(&format!("{}/agentPools/batch", prod())).await.body;
    assert_eq!(p["properties"]["provisioningState"], "Deleting");
    let (op, _) = h.wait_op(&url).await;
    assert_eq!(op["status"], "Succeeded", "{op}");
    let r = h.get(&format!("{}/agentPools/batch", prod())).await;
    assert_eq!(r.status, 404);
    assert!(h.pool_nodes("batch").await.is_empty());
    // Deleting a pool that does not exist: 204.
    let r = h.delete(&format!("{}/agentPools/batch", prod())).await;
    assert_eq!(r.status, 204);
    // The only System pool cannot be deleted.
    let r = h.delete(&format!("{}/agentPools/system", prod())).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "OperationNotAllowed");
    assert_eq!(
        r.body["error"]["message"],
        "There has to be at least one system agent pool."
    );
    // The world file has the operations and no longer the pool.
    let text = std::fs::read_to_string(&h.path).unwrap();
    assert!(
        text.contains("CreateAgentPool") && text.contains("DeleteAgentPool"),
        "{text}"
    );
    assert!(!text.contains("agent_pool \"batch\""), "{text}");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleting_a_pool_respects_pdbs_unless_told_to_ignore_them() {
    let h = start(WORLD, 600.0, "").await;
    // Add a user pool the "web" pods cannot move off (nodeSelector apps): deleting "apps"
    // with ignore-pod-disruption-budget kills them.
    let r = h
        .delete(&format!(
            "{}/agentPools/apps?ignore-pod-disruption-budget=true",
            prod()
        ))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Succeeded");
    let audit = h.audit("prod").await;
    let lost = audit["lost_pods"].as_array().unwrap();
    assert_eq!(
        lost.iter()
            .filter(|p| p.as_str().unwrap().starts_with("shop/web-"))
            .count(),
        4,
        "{audit}"
    );
    h.sim.shutdown().await.unwrap();

    // Without the flag the nodes are drained through the PDB first: nothing is lost until the
    // drain is blocked (the pods have nowhere to go), then the deletion fails.
    let h = start(WORLD, 600.0, "").await;
    let r = h.delete(&format!("{}/agentPools/apps", prod())).await;
    assert_eq!(r.status, 202);
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Failed", "{op}");
    assert_eq!(op["error"]["code"], "PodDrainFailure");
    let audit = h.audit("prod").await;
    assert_eq!(audit["lost_pods"], json!([]), "{audit}");
    assert_eq!(audit["pdbs"]["shop/web"]["violated"], false);
    let p = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    assert_eq!(p["properties"]["provisioningState"], "Failed");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn if_match_preconditions() {
    let h = start(WORLD, 600.0, "").await;
    let c = h.get(&prod()).await.body;
    let etag = c["eTag"].as_str().unwrap().to_string();
    let r = h
        .raw(
            reqwest::Method::PUT,
            &format!("{}?{API}", prod()),
            Some(c.clone()),
            &[("If-Match", "\"not-the-etag\"")],
            true,
        )
        .await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "PreconditionFailed");
    let r = h
        .raw(
            reqwest::Method::PUT,
            &format!("{}?{API}", prod()),
            Some(c.clone()),
            &[("If-None-Match", "*")],
            true,
        )
        .await;
    assert_eq!(r.status, 412);
    // The right etag: a no-change PUT is an Updating operation.
    let r = h
        .raw(
            reqwest::Method::PUT,
            &format!("{}?{API}", prod()),
            Some(c.clone()),
            &[("If-Match", &format!("\"{etag}\""))],
            true,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["properties"]["provisioningState"], "Updating");
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Succeeded");
    // The etag changed; the old one no longer matches (also for pools).
    let c2 = h.get(&prod()).await.body;
    assert_ne!(c2["eTag"], json!(etag));
    let pool = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    let r = h
        .raw(
            reqwest::Method::PUT,
            &format!("{}/agentPools/apps?{API}", prod()),
            Some(pool_body(&pool, json!({}))),
            &[("If-Match", "stale")],
            true,
        )
        .await;
    assert_eq!(r.status, 412);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn faults_throttle_500_fail_and_hang() {
    let h = start(WORLD, 600.0, "").await;
    h.faults("throttle=1").await;
    let r = h.get(&prod()).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "SubscriptionRequestsThrottled");
    // Retry-After only when the fault asks for it, so kup is tested both ways.
    assert_eq!(r.header("retry-after"), None);
    h.faults("throttle=1,retry_after=7").await;
    let r = h.get(&prod()).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    h.faults("error500=1").await;
    let r = h.get(&prod()).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body["error"]["code"], "InternalServerError");
    // fail=: the next pool operation ends Failed with that code, nodes untouched.
    h.faults("fail=prod/apps:UpgradeFailed").await;
    let pool = h.get(&format!("{}/agentPools/apps", prod())).await.body;
    let r = h
        .put(
            &format!("{}/agentPools/apps", prod()),
            pool_body(&pool, json!({ "orchestratorVersion": "1.30.5" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (op, _) = h.wait_op(&r.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(op["status"], "Failed");
    assert_eq!(op["error"]["code"], "UpgradeFailed");
    assert!(h
        .pool_nodes("apps")
        .await
        .iter()
        .all(|n| kubelet(n) == "v1.29.9"));
    // hang=: the control-plane upgrade stays InProgress until the fault is cleared.
    h.faults("hang=prod").await;
    let mut c = h.get(&prod()).await.body;
    c["properties"]["kubernetesVersion"] = json!("1.31.2");
    let r = h.put(&prod(), c).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.header("azure-asyncoperation").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.get(&url).await.body["status"], "InProgress");
    h.faults("none").await;
    let (op, _) = h.wait_op(&url).await;
    assert_eq!(op["status"], "Succeeded");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn operations_and_pools_persist_across_restarts() {
    let h = start(WORLD, 600.0, "").await;
    let mut c = h.get(&prod()).await.body;
    c["properties"]["kubernetesVersion"] = json!("1.30.9");
    let r = h.put(&prod(), c).await;
    let url = r.header("azure-asyncoperation").unwrap();
    let (op, _) = h.wait_op(&url).await;
    assert_eq!(op["status"], "Succeeded");
    let path = h.path.clone();
    let dir = h._dir;
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("aks_cluster \"prod\""), "{text}");
    assert!(text.contains("version = \"1.30.9\""), "{text}");
    assert!(text.contains("UpgradeControlPlane"), "{text}");
    let sim = Sim::start(SimConfig {
        world: path.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        speed: 600.0,
        faults: FaultSpec::none(),
    })
    .await
    .unwrap();
    let h2 = H {
        url: sim.endpoints().eks,
        sim,
        http: reqwest::Client::new(),
        path,
        _dir: dir,
    };
    let c = h2.get(&prod()).await.body;
    assert_eq!(c["properties"]["currentKubernetesVersion"], "1.30.9");
    // The operation is still there (new port, same path).
    let id = op["name"].as_str().unwrap();
    let r = h2
        .get(&format!(
            "/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/westeurope/operations/{id}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "Succeeded");
    h2.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn world_file_errors_name_cluster_pool_and_attribute() {
    let dir = tempfile::tempdir().unwrap();
    for (world, needle) in [
        (
            "aks_cluster \"a\" {\n version = \"1.30.5\"\n agent_pool \"u\" { mode = \"User\" }\n}\n",
            "at least one agent_pool with mode = \"System\"",
        ),
        (
            "aks_cluster \"a\" {\n version = \"1.30.5\"\n agent_pool \"s\" {\n  mode = \"System\"\n  max_unavailable = \"1\"\n }\n}\n",
            "agent_pool \"s\": upgradeSettings.maxUnavailable",
        ),
        (
            "aks_cluster \"a\" {\n version = \"1.30.5\"\n max_pool_skew = 4\n agent_pool \"s\" { mode = \"System\" }\n}\n",
            "max_pool_skew",
        ),
        (
            "aks_cluster \"a\" {\n version = \"1.30.5\"\n agent_pool \"s\" {\n  mode = \"System\"\n  version = \"1.31.2\"\n }\n}\n",
            "agent_pool \"s\": version",
        ),
        (
            "aks_cluster \"a\" {\n version = \"1.30.5\"\n agent_pool \"Sys\" { mode = \"System\" }\n}\n",
            "agent_pool \"Sys\"",
        ),
        (
            "gke_cluster \"a\" { version = \"1.29.8-gke.1031000\" }\naks_cluster \"a\" {\n version = \"1.30.5\"\n agent_pool \"s\" { mode = \"System\" }\n}\n",
            "aks_cluster \"a\": a cluster of that name already exists",
        ),
    ] {
        let path = dir.path().join("w.hcl");
        std::fs::write(&path, world).unwrap();
        let e = Sim::start(SimConfig {
            world: path.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            speed: 600.0,
            faults: FaultSpec::none(),
        })
        .await
        .err()
        .unwrap();
        let e = format!("{e:#}");
        assert!(e.contains(needle), "{needle}: {e}");
        assert!(e.contains("aks_cluster \"a\""), "{e}");
    }
}
