//! K3s / RKE2 clusters and the system-upgrade-controller stand-in, over the simulated
//! Kubernetes API (reqwest), plus `kubectl get plans.upgrade.cattle.io -A` when installed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kup_sim::{FaultSpec, Sim, SimConfig};
use serde_json::{json, Value};

struct H {
    sim: Sim,
    http: reqwest::Client,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start(world: &str, speed: f64, faults: &str) -> H {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.hcl");
    std::fs::write(&path, world).unwrap();
    let sim = start_on(&path, speed, faults).await;
    H {
        sim,
        http: reqwest::Client::new(),
        path,
        _dir: dir,
    }
}

async fn start_on(path: &Path, speed: f64, faults: &str) -> Sim {
    Sim::start(SimConfig {
        world: path.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        speed,
        faults: FaultSpec::parse(faults).unwrap(),
    })
    .await
    .unwrap()
}

impl H {
    fn kube(&self, c: &str) -> String {
        self.sim.endpoints().kube[c].clone()
    }
    async fn get(&self, c: &str, p: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{p}", self.kube(c)))
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }
    async fn send(
        &self,
        c: &str,
        m: reqwest::Method,
        p: &str,
        ct: &str,
        b: &Value,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(m, format!("{}{p}", self.kube(c)))
            .header("content-type", ct)
            .body(b.to_string())
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }
    async fn audit(&self, c: &str) -> Value {
        reqwest::get(format!("{}/kube/{c}/audit", self.sim.endpoints().admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
    async fn plan(&self, c: &str, name: &str) -> Value {
        self.get(c, &format!("{PLANS}/{name}")).await.1
    }
    async fn nodes(&self, c: &str) -> Vec<Value> {
        self.get(c, "/api/v1/nodes").await.1["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

const PLANS: &str = "/apis/upgrade.cattle.io/v1/namespaces/system-upgrade/plans";
const MP: &str = "application/merge-patch+json";
const JSON: &str = "application/json";

const WORLD: &str = r#"
k3s_cluster "edge" {
  distribution = "k3s"
  version = "v1.29.8+k3s1"
  servers = 3
  agents = 4
  suc { installed = true }
  channel_server {
    channels = { stable = "v1.30.5+k3s1", latest = "v1.31.1+k3s1" }
  }
  workload "web" {
    namespace = "shop"
    replicas = 4
    pdb { min_available = 3 }
  }
}
k3s_cluster "bare" {
  version = "v1.29.8+k3s1"
  server "cp-0" {}
  agent "worker-0" {}
}
k3s_cluster "rk" {
  distribution = "rke2"
  version = "v1.29.8+rke2r1"
  servers = 1
  agents = 1
  suc { installed = true }
}
"#;

fn server_plan(version: &str, concurrency: i64) -> Value {
    json!({ "apiVersion": "upgrade.cattle.io/v1", "kind": "Plan",
        "metadata": { "name": "server-plan", "namespace": "system-upgrade" },
        "spec": { "concurrency": concurrency, "version": version, "cordon": true,
            "serviceAccountName": "system-upgrade",
            "nodeSelector": { "matchExpressions": [ { "key": "node-role.kubernetes.io/control-plane", "operator": "In", "values": ["true"] } ] },
            "upgrade": { "image": "rancher/k3s-upgrade" } } })
}

fn agent_plan(version: Option<&str>, channel: Option<&str>, concurrency: i64) -> Value {
    let mut p = json!({ "apiVersion": "upgrade.cattle.io/v1", "kind": "Plan",
        "metadata": { "name": "agent-plan", "namespace": "system-upgrade" },
        "spec": { "concurrency": concurrency, "serviceAccountName": "system-upgrade",
            "nodeSelector": { "matchExpressions": [ { "key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist" } ] },
            "prepare": { "image": "rancher/k3s-upgrade", "args": ["prepare", "server-plan"] },
            "drain": { "force": true, "skipWaitForDeleteTimeout": 60 },
            "upgrade": { "image": "rancher/k3s-upgrade" } } });
    if let Some(v) = version {
        p["spec"]["version"] = json!(v);
    }
    if let Some(c) = channel {
        p["spec"]["channel"] = json!(c);
    }
    p
}

async fn wait_for<F: Fn(&Value) -> bool>(h: &H, c: &str, plan: &str, secs: u64, f: F) -> Value {
    let t0 = Instant::now();
    loop {
        let p = h.plan(c, plan).await;
        if f(&p) {
            return p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out waiting on plan {plan}: {p:#}\naudit: {:#}",
            h.audit(c).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn complete(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|a| {
        a.iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
    })
}

#[tokio::test]
async fn nodes_crd_and_discovery() {
    let h = start(WORLD, 600.0, "").await;
    let nodes = h.nodes("edge").await;
    assert_eq!(nodes.len(), 7);
    let servers: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == "true")
        .collect();
    assert_eq!(servers.len(), 3);
    for s in &servers {
        assert_eq!(
            s["metadata"]["labels"]["node-role.kubernetes.io/master"],
            "true"
        );
    }
    for n in &nodes {
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.29.8+k3s1");
        assert!(n["metadata"]["labels"]["kubernetes.io/hostname"].is_string());
    }
    let (c, v) = h.get("edge", "/version").await;
    assert_eq!(c, 200);
    assert_eq!(v["gitVersion"], "v1.29.8+k3s1");
    // CRD present when SUC is installed, absent otherwise.
    let crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/plans.upgrade.cattle.io";
    let (c, v) = h.get("edge", crd).await;
    assert_eq!(c, 200);
    assert_eq!(v["spec"]["names"]["kind"], "Plan");
    assert_eq!(h.get("bare", crd).await.0, 404);
    assert_eq!(h.get("bare", "/apis/upgrade.cattle.io/v1").await.0, 404);
    assert_eq!(
        h.get(
            "bare",
            "/apis/upgrade.cattle.io/v1/namespaces/system-upgrade/plans"
        )
        .await
        .0,
        404
    );
    let (c, v) = h.get("edge", "/apis/upgrade.cattle.io/v1").await;
    assert_eq!(c, 200);
    assert!(v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "plans"));
    let (_, v) = h.get("edge", "/apis").await;
    assert!(v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "upgrade.cattle.io"));
    let (_, v) = h.get("bare", "/apis").await;
    assert!(!v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "upgrade.cattle.io"));
    // SUC deployment and service account.
    let (c, d) = h
        .get(
            "edge",
            "/apis/apps/v1/namespaces/system-upgrade/deployments/system-upgrade-controller",
        )
        .await;
    assert_eq!(c, 200);
    let t0 = Instant::now();
    loop {
        let (_, d) = h
            .get(
                "edge",
                "/apis/apps/v1/namespaces/system-upgrade/deployments/system-upgrade-controller",
            )
            .await;
        if d["status"]["availableReplicas"] == 1 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{d:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = d;
    assert_eq!(
        h.get(
            "edge",
            "/api/v1/namespaces/system-upgrade/serviceaccounts/system-upgrade"
        )
        .await
        .0,
        200
    );
    // Channel server redirect on the cluster's API port.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/v1-release/channels/stable", h.kube("edge")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("v1.30.5%2Bk3s1"));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn server_then_agents_with_gating_concurrency_and_pdbs() {
    let h = start(WORLD, 600.0, "").await;
    // Agent plan first: it must wait for the server plan.
    let (c, v) = h
        .send(
            "edge",
            reqwest::Method::POST,
            PLANS,
            JSON,
            &agent_plan(
                None,
                Some("https://update.k3s.io/v1-release/channels/stable"),
                2,
            ),
        )
        .await;
    assert_eq!(c, 201, "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = h.audit("edge").await;
    assert!(
        a["plans"]["system-upgrade/agent-plan"]["started"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{a:#}"
    );
    // Server-side apply creates the server plan.
    let (c, v) = h
        .send(
            "edge",
            reqwest::Method::PATCH,
            &format!("{PLANS}/server-plan?fieldManager=kup"),
            "application/apply-patch+yaml",
            &server_plan("v1.30.5+k3s1", 1),
        )
        .await;
    assert!(c == 201 || c == 200, "{c} {v}");
    assert_eq!(v["metadata"]["managedFields"][0]["manager"], "kup");
    let sp = wait_for(&h, "edge", "server-plan", 30, complete).await;
    assert_eq!(sp["status"]["latestVersion"], "v1.30.5+k3s1");
    let hash = sp["status"]["latestHash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 56);
    let ap = wait_for(&h, "edge", "agent-plan", 60, complete).await;
    assert_eq!(
        ap["status"]["latestVersion"], "v1.30.5+k3s1",
        "channel resolution"
    );
    assert!(ap["status"]["applying"].is_null());
    let ahash = ap["status"]["latestHash"].as_str().unwrap().to_string();
    for n in h.nodes("edge").await {
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"], "v1.30.5+k3s1",
            "{n:#}"
        );
        assert!(n["spec"]["unschedulable"].is_null(), "uncordoned");
        let l = &n["metadata"]["labels"];
        if l["node-role.kubernetes.io/control-plane"] == "true" {
            assert_eq!(l["plan.upgrade.cattle.io/server-plan"], json!(hash));
        } else {
            assert_eq!(l["plan.upgrade.cattle.io/agent-plan"], json!(ahash));
        }
    }
    let a = h.audit("edge").await;
    let s = &a["plans"]["system-upgrade/server-plan"];
    let ag = &a["plans"]["system-upgrade/agent-plan"];
    assert_eq!(s["max_applying"], 1, "{a:#}");
    assert_eq!(s["max_cordoned"], 1);
    assert!(ag["max_applying"].as_u64().unwrap() <= 2);
    assert!(ag["max_cordoned"].as_u64().unwrap() <= 2);
    assert_eq!(ag["started"].as_array().unwrap().len(), 4);
    assert_eq!(ag["started_before_gate_complete"], json!([]));
    assert_eq!(a["agents_started_before_servers"], json!([]));
    // Every agent job started after every server job finished.
    let jobs = a["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 7);
    let last_server = jobs
        .iter()
        .filter(|j| j["plan"] == "server-plan")
        .map(|j| j["finished"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    for j in jobs.iter().filter(|j| j["plan"] == "agent-plan") {
        assert!(
            j["started"].as_str().unwrap() >= last_server.as_str(),
            "{j} vs {last_server}"
        );
        assert!(j["name"]
            .as_str()
            .unwrap()
            .starts_with("apply-agent-plan-on-"));
        assert_eq!(j["outcome"], "Complete");
    }
    for (k, p) in a["pdbs"].as_object().unwrap() {
        assert_eq!(p["violated"], false, "{k}");
    }
    assert!(a["evictions"].as_u64().unwrap() > 0);
    // The world file persists node versions.
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&h.path).unwrap();
    assert!(text.contains("v1.30.5+k3s1"), "{text}");
    let sim = start_on(&h.path, 600.0, "").await;
    let r: Value = reqwest::get(format!("{}/api/v1/nodes", sim.endpoints().kube["edge"]))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for n in r["items"].as_array().unwrap() {
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.30.5+k3s1");
    }
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn window_blocks_new_jobs() {
    let h = start(WORLD, 600.0, "").await;
    // A one-minute window twelve hours from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start_s = (now + 12 * 3600) % 86_400;
    let fmt = |s: u64| format!("{:02}:{:02}", s / 3600, (s % 3600) / 60);
    let mut p = server_plan("v1.30.5+k3s1", 3);
    p["spec"]["window"] = json!({ "startTime": fmt(start_s), "endTime": fmt((start_s + 60) % 86_400), "timeZone": "UTC" });
    let (c, _) = h.send("edge", reqwest::Method::POST, PLANS, JSON, &p).await;
    assert_eq!(c, 201);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let p = h.plan("edge", "server-plan").await;
    assert!(!complete(&p), "{p:#}");
    assert!(p["status"]["applying"].is_null());
    assert_eq!(p["status"]["latestVersion"], "v1.30.5+k3s1");
    assert!(h.audit("edge").await["jobs"].is_null());
    // Removing the window lets it run.
    let (c, _) = h
        .send(
            "edge",
            reqwest::Method::PATCH,
            &format!("{PLANS}/server-plan"),
            MP,
            &json!({ "spec": { "window": null } }),
        )
        .await;
    assert_eq!(c, 200);
    let p = wait_for(&h, "edge", "server-plan", 30, complete).await;
    assert_eq!(
        h.audit("edge").await["plans"]["system-upgrade/server-plan"]["max_applying"],
        3,
        "{p:#}"
    );
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn jobfail_fault_stops_the_node() {
    let h = start(WORLD, 600.0, "jobfail=edge/server-plan:boom: disk full").await;
    let (c, _) = h
        .send(
            "edge",
            reqwest::Method::POST,
            PLANS,
            JSON,
            &server_plan("v1.30.5+k3s1", 1),
        )
        .await;
    assert_eq!(c, 201);
    let t0 = Instant::now();
    let job = loop {
        let (_, l) = h
            .get("edge", "/apis/batch/v1/namespaces/system-upgrade/jobs")
            .await;
        if let Some(j) = l["items"].as_array().unwrap().iter().find(|j| {
            j["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Failed"))
        }) {
            break j.clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{l:#}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    let failed = job["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap()
        .clone();
    assert_eq!(failed["message"], "boom: disk full");
    let node = job["metadata"]["labels"]["upgrade.cattle.io/node"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, n) = h.get("edge", &format!("/api/v1/nodes/{node}")).await;
    assert_eq!(n["spec"]["unschedulable"], true, "left cordoned");
    assert!(n["metadata"]["labels"]["plan.upgrade.cattle.io/server-plan"].is_null());
    assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.29.8+k3s1");
    let p = h.plan("edge", "server-plan").await;
    assert_eq!(p["status"]["applying"], json!([node]));
    assert!(!complete(&p));
    let a = h.audit("edge").await;
    assert_eq!(a["plans"]["system-upgrade/server-plan"]["jobs_failed"], 1);
    // Concurrency 1: nothing else started while the failed Job holds the slot.
    assert_eq!(a["plans"]["system-upgrade/server-plan"]["max_applying"], 1);
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn rke2_with_k3s_image_fails() {
    let h = start(WORLD, 600.0, "").await;
    let mut p = server_plan("v1.30.5+rke2r1", 1);
    p["spec"]["nodeSelector"] =
        json!({ "matchLabels": { "node-role.kubernetes.io/control-plane": "true" } });
    let (c, _) = h.send("rk", reqwest::Method::POST, PLANS, JSON, &p).await;
    assert_eq!(c, 201);
    let t0 = Instant::now();
    loop {
        let a = h.audit("rk").await;
        if a["jobs"][0]["outcome"] == "Failed" {
            assert!(
                a["jobs"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("rancher/rke2-upgrade"),
                "{a:#}"
            );
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{a:#}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // With the right image it succeeds (after deleting the failed Job, which retries).
    let (c, _) = h
        .send(
            "rk",
            reqwest::Method::PATCH,
            &format!("{PLANS}/server-plan"),
            MP,
            &json!({ "spec": { "upgrade": { "image": "rancher/rke2-upgrade" } } }),
        )
        .await;
    assert_eq!(c, 200);
    let (_, l) = h
        .get("rk", "/apis/batch/v1/namespaces/system-upgrade/jobs")
        .await;
    for j in l["items"].as_array().unwrap() {
        let n = j["metadata"]["name"].as_str().unwrap();
        let (c, _) = h
            .send(
                "rk",
                reqwest::Method::DELETE,
                &format!("/apis/batch/v1/namespaces/system-upgrade/jobs/{n}"),
                JSON,
                &json!({}),
            )
            .await;
        assert_eq!(c, 200);
    }
    wait_for(&h, "rk", "server-plan", 30, complete).await;
    let cp: Vec<Value> = h
        .nodes("rk")
        .await
        .into_iter()
        .filter(|n| n["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == "true")
        .collect();
    assert_eq!(
        cp[0]["status"]["nodeInfo"]["kubeletVersion"],
        "v1.30.5+rke2r1"
    );
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn plan_crud_and_validation() {
    let h = start(WORLD, 600.0, "").await;
    let mut bad = server_plan("v1.30.5+k3s1", 1);
    bad["spec"].as_object_mut().unwrap().remove("upgrade");
    assert_eq!(
        h.send("edge", reqwest::Method::POST, PLANS, JSON, &bad)
            .await
            .0,
        422
    );
    // Apply without fieldManager is rejected.
    let (c, _) = h
        .send(
            "edge",
            reqwest::Method::PATCH,
            &format!("{PLANS}/server-plan"),
            "application/apply-patch+yaml",
            &server_plan("v1.30.5+k3s1", 1),
        )
        .await;
    assert_eq!(c, 422);
    let mut p = server_plan("", 1);
    p["spec"]["channel"] = json!("https://update.k3s.io/v1-release/channels/nope");
    assert_eq!(
        h.send("edge", reqwest::Method::POST, PLANS, JSON, &p)
            .await
            .0,
        201
    );
    let p = wait_for(&h, "edge", "server-plan", 10, |p| {
        p["status"]["conditions"].is_array()
    })
    .await;
    let lr = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "LatestResolved")
        .unwrap()
        .clone();
    assert_eq!(lr["status"], "False", "{p:#}");
    assert!(p["status"]["latestVersion"].is_null());
    let (c, l) = h.get("edge", "/apis/upgrade.cattle.io/v1/plans").await;
    assert_eq!(c, 200);
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let (c, _) = h
        .send(
            "edge",
            reqwest::Method::DELETE,
            &format!("{PLANS}/server-plan"),
            JSON,
            &json!({}),
        )
        .await;
    assert_eq!(c, 200);
    assert_eq!(h.get("edge", &format!("{PLANS}/server-plan")).await.0, 404);
    h.sim.shutdown().await.unwrap();
}

fn find_kubectl() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("kubectl");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let p = Path::new("/usr/lib/google-cloud-sdk/bin/kubectl");
    p.is_file().then(|| p.to_path_buf())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_plans() {
    let Some(bin) = find_kubectl() else {
        println!("SKIPPED: kubectl not found");
        return;
    };
    let h = start(WORLD, 600.0, "").await;
    let (c, _) = h
        .send(
            "edge",
            reqwest::Method::POST,
            PLANS,
            JSON,
            &server_plan("v1.30.5+k3s1", 1),
        )
        .await;
    assert_eq!(c, 201);
    let kc = h.sim.endpoints().kubeconfigs["edge"].clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args([
                "--kubeconfig",
                kc.to_str().unwrap(),
                "get",
                "plans.upgrade.cattle.io",
                "-A",
            ])
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{so}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        so.contains("server-plan")
            && so.contains("system-upgrade")
            && so.contains("rancher/k3s-upgrade"),
        "{so}"
    );
    h.sim.shutdown().await.unwrap();
}
