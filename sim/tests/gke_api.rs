//! The GKE REST API (`container.googleapis.com` v1 paths under `/v1/projects/`): clusters,
//! node pools, operations, serverConfig, enum encodings, the upgrade rules, surge node-pool
//! upgrades in the Kubernetes API, faults, persistence and the gcloud CLI.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kup_sim::{FaultSpec, Sim, SimConfig};
use serde_json::{json, Value};

const WORLD: &str = r#"
gke_cluster "shop" {
  project         = "demo-proj"
  location        = "europe-west1"
  version         = "1.29.8-gke.1031000"
  release_channel = "REGULAR"
  node_pool "default" {
    version         = "1.29.8-gke.1031000"
    node_count      = 3
    machine_type    = "e2-standard-4"
    max_surge       = 1
    max_unavailable = 0
    strategy        = "SURGE"
  }
  workload "web" {
    namespace = "shop"
    replicas  = 4
    pdb { min_available = 3 }
  }
}
"#;

const BASE: &str = "/v1/projects/demo-proj/locations/europe-west1";

struct H {
    sim: Sim,
    url: String,
    http: reqwest::Client,
    path: PathBuf,
    _dir: tempfile::TempDir,
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

async fn start(world: &str, file: &str, speed: f64, faults: &str) -> H {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, world).unwrap();
    let sim = start_on(&path, speed, faults).await;
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
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn wait_op(&self, name: &str) -> Value {
        let t = Instant::now();
        let mut seen = Vec::new();
        loop {
            let (s, op) = self.get(&format!("{BASE}/operations/{name}")).await;
            assert_eq!(s, 200, "{op}");
            let st = op["status"].as_str().unwrap().to_string();
            if seen.last() != Some(&st) {
                seen.push(st.clone());
            }
            if st == "DONE" {
                return json!({ "op": op, "seen": seen });
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "operation stuck: {op}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    async fn kube_get(&self, path: &str) -> Value {
        let k = &self.sim.endpoints().kube["shop"];
        self.http
            .get(format!("{k}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn get_cluster_with_names_and_int_enums() {
    let h = start(WORLD, "world.hcl", 1000.0, "").await;
    let (s, c) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["name"], "shop");
    assert_eq!(c["location"], "europe-west1");
    assert_eq!(c["currentMasterVersion"], "1.29.8-gke.1031000");
    assert_eq!(c["currentNodeVersion"], "1.29.8-gke.1031000");
    assert_eq!(c["initialClusterVersion"], "1.29.8-gke.1031000");
    assert_eq!(c["status"], "RUNNING");
    assert_eq!(c["releaseChannel"]["channel"], "REGULAR");
    assert!(c["etag"].as_str().is_some_and(|e| !e.is_empty()));
    let kube = &h.sim.endpoints().kube["shop"];
    assert_eq!(format!("http://{}", c["endpoint"].as_str().unwrap()), *kube);
    assert!(c["masterAuth"]["clusterCaCertificate"].is_string());
    let np = &c["nodePools"][0];
    assert_eq!(np["name"], "default");
    assert_eq!(np["config"]["machineType"], "e2-standard-4");
    assert_eq!(np["initialNodeCount"], 1); // per zone: 3 nodes over 3 zones
    assert_eq!(c["currentNodeCount"], 3);
    assert_eq!(np["upgradeSettings"]["strategy"], "SURGE");
    assert_eq!(np["upgradeSettings"]["maxSurge"], 1);
    assert_eq!(np["status"], "RUNNING");

    // The google-cloud-rust client asks for integer enums.
    let (s, c) = h
        .get(&format!(
            "{BASE}/clusters/shop?%24alt=json%3Benum-encoding%3Dint"
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(c["status"], 2); // RUNNING
    assert_eq!(c["releaseChannel"]["channel"], 2); // REGULAR
                                                   // SURGE's proto number is 3 (BLUE_GREEN = 2): int enums are proto numbers.
    assert_eq!(c["nodePools"][0]["upgradeSettings"]["strategy"], 3); // SURGE
    assert_eq!(c["nodePools"][0]["status"], 2);
    let (_, c) = h
        .get(&format!("{BASE}/clusters/shop?$alt=json;enum-encoding=int"))
        .await;
    assert_eq!(c["status"], 2);

    // Lists, node pools, serverConfig, not found.
    let (_, l) = h.get(&format!("{BASE}/clusters")).await;
    assert_eq!(l["clusters"].as_array().unwrap().len(), 1);
    let (_, l) = h.get("/v1/projects/demo-proj/locations/-/clusters").await;
    assert_eq!(l["clusters"].as_array().unwrap().len(), 1);
    let (_, l) = h.get(&format!("{BASE}/clusters/shop/nodePools")).await;
    assert_eq!(l["nodePools"][0]["version"], "1.29.8-gke.1031000");
    let (s, p) = h
        .get(&format!("{BASE}/clusters/shop/nodePools/default"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["name"], "default");
    let (s, e) = h.get(&format!("{BASE}/clusters/nope")).await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["status"], "NOT_FOUND");
    assert_eq!(e["error"]["code"], 404);
    let (s, _) = h
        .get("/v1/projects/other/locations/europe-west1/clusters/shop")
        .await;
    assert_eq!(s, 404);
    let (s, sc) = h.get(&format!("{BASE}/serverConfig")).await;
    assert_eq!(s, 200);
    assert!(sc["validMasterVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("1.30.5-gke.1014001")));
    assert!(sc["defaultClusterVersion"].is_string());
    let regular = sc["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "REGULAR")
        .unwrap();
    assert!(regular["validVersions"].as_array().unwrap().len() > 2);
    assert!(regular["defaultVersion"].is_string());

    // Kubernetes side: GKE-style nodes.
    let nodes = h.kube_get("/api/v1/nodes").await;
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for n in items {
        let name = n["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("gke-shop-default-"), "{name}");
        assert_eq!(
            n["metadata"]["labels"]["cloud.google.com/gke-nodepool"],
            "default"
        );
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.29.8-gke.1031000"
        );
    }
    let kc = std::fs::read_to_string(&h.sim.endpoints().kubeconfigs["shop"]).unwrap();
    assert!(kc.contains(kube.as_str()));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn update_master_lifecycle_and_rules() {
    let h = start(WORLD, "world.hcl", 1000.0, "").await;
    // Skipping a minor is refused.
    let (s, e) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.31.1-gke.1678000" }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than one minor version"),
        "{e}"
    );
    // Node version ahead of the master is refused.
    let (s, e) = h
        .put(
            &format!("{BASE}/clusters/shop/nodePools/default"),
            json!({ "nodeVersion": "1.30.5-gke.1014001" }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("newer than the master"));

    // One minor (alias "1.30") is accepted and returns a PENDING Operation.
    let (s, op) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.30" }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "UPGRADE_MASTER");
    assert_eq!(op["status"], "PENDING");
    assert!(op["name"].as_str().unwrap().starts_with("operation-"));
    assert!(op["selfLink"]
        .as_str()
        .unwrap()
        .ends_with(op["name"].as_str().unwrap()));
    assert!(op["targetLink"]
        .as_str()
        .unwrap()
        .ends_with("/clusters/shop"));
    assert!(op["startTime"].is_string());
    let name = op["name"].as_str().unwrap().to_string();

    // While it runs: cluster RECONCILING, a second mutating call gets FAILED_PRECONDITION.
    let (_, c) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(c["status"], "RECONCILING");
    let (s, e) = h
        .put(
            &format!("{BASE}/clusters/shop/nodePools/default"),
            json!({ "upgradeSettings": { "maxSurge": 2 } }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "FAILED_PRECONDITION");
    assert!(
        e["error"]["message"].as_str().unwrap().contains(&format!(
            "Operation {name} is currently upgrading cluster shop"
        )),
        "{e}"
    );
    // Operations can be read with integer enums too.
    let (_, o) = h
        .get(&format!(
            "{BASE}/operations/{name}?$alt=json;enum-encoding=int"
        ))
        .await;
    assert!(
        o["status"] == 1 || o["status"] == 2 || o["status"] == 3,
        "{o}"
    );
    assert_eq!(o["operationType"], 3); // UPGRADE_MASTER

    let done = h.wait_op(&name).await;
    let seen: Vec<&str> = done["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(seen.last(), Some(&"DONE"));
    assert!(
        seen.contains(&"RUNNING") || seen.contains(&"PENDING"),
        "{seen:?}"
    );
    assert!(done["op"]["endTime"].is_string());
    assert!(done["op"]["error"].is_null());
    let (_, c) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(c["currentMasterVersion"], "1.30.12-gke.1086000");
    assert_eq!(c["status"], "RUNNING");
    let (_, l) = h.get(&format!("{BASE}/operations")).await;
    assert_eq!(l["operations"].as_array().unwrap().len(), 1);

    // Stale etag → ABORTED (clusters.update and nodePools.update).
    let (s, e) = h
        .put(
            &format!("{BASE}/clusters/shop"),
            json!({ "update": { "desiredMasterVersion": "1.31", "etag": "stale" } }),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["status"], "ABORTED");
    let (s, e) = h
        .put(
            &format!("{BASE}/clusters/shop/nodePools/default"),
            json!({ "nodeVersion": "1.30.5-gke.1014001", "etag": "stale" }),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["status"], "ABORTED");
    // The current etag is accepted (clusters.update with desiredMasterVersion).
    let etag = c["etag"].as_str().unwrap();
    let (s, op) = h
        .put(
            &format!("{BASE}/clusters/shop"),
            json!({ "update": { "desiredMasterVersion": "1.31.1-gke.1678000", "etag": etag } }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "UPGRADE_MASTER");
    h.wait_op(op["name"].as_str().unwrap()).await;
    // 1.32 would leave the 1.29 pool 3 minors behind: refused.
    let (s, e) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.32" }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "FAILED_PRECONDITION");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn surge_node_pool_upgrade_replaces_nodes_within_pdbs() {
    let h = start(WORLD, "world.hcl", 1000.0, "").await;
    let (_, op) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.30.5-gke.1014001" }),
        )
        .await;
    h.wait_op(op["name"].as_str().unwrap()).await;
    let before: Vec<String> = h.kube_get("/api/v1/nodes").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let (s, op) = h
        .put(
            &format!("{BASE}/clusters/shop/nodePools/default"),
            json!({ "nodeVersion": "-", "upgradeSettings": { "maxSurge": 1, "maxUnavailable": 0, "strategy": 3 } }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "UPGRADE_NODES");
    assert!(op["targetLink"]
        .as_str()
        .unwrap()
        .ends_with("/nodePools/default"));
    let name = op["name"].as_str().unwrap().to_string();
    // During the upgrade the pool reconciles and never has more than 4 nodes (surge 1).
    let t = Instant::now();
    let mut max_nodes = 0;
    let done = loop {
        let (_, o) = h.get(&format!("{BASE}/operations/{name}")).await;
        let n = h.kube_get("/api/v1/nodes").await["items"]
            .as_array()
            .unwrap()
            .len();
        max_nodes = max_nodes.max(n);
        if o["status"] == "DONE" {
            break o;
        }
        assert!(t.elapsed() < Duration::from_secs(90), "{o}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(done["error"].is_null(), "{done}");
    let metrics = done["progress"]["metrics"].as_array().unwrap();
    assert!(
        metrics
            .iter()
            .any(|m| m["name"] == "NODES_DONE" && m["intValue"] == "3"),
        "{done}"
    );
    assert!(max_nodes <= 4, "surge exceeded: {max_nodes}");
    let nodes = h.kube_get("/api/v1/nodes").await;
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for n in items {
        let nm = n["metadata"]["name"].as_str().unwrap();
        assert!(!before.contains(&nm.to_string()), "old node {nm} survived");
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.30.5-gke.1014001"
        );
    }
    let (_, p) = h
        .get(&format!("{BASE}/clusters/shop/nodePools/default"))
        .await;
    assert_eq!(p["version"], "1.30.5-gke.1014001");
    let audit: Value = h
        .http
        .get(format!("{}/_sim/kube/shop/audit", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["pdbs"]["shop/web"]["violated"], false, "{audit}");
    assert!(audit["evictions"].as_u64().unwrap() >= 4, "{audit}");
    assert_eq!(audit["lost_pods"], json!([]), "{audit}");
    // Mutating calls are in the call log.
    let calls: Value = h
        .http
        .get(format!("{}/_sim/calls", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(calls.as_array().unwrap().iter().any(|c| c["op"]
        == "projects.locations.clusters.nodePools.update"
        && c["update_id"] == name));
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn faults_apply_to_gke() {
    let h = start(WORLD, "world.hcl", 1000.0, "throttle=1").await;
    let (s, e) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(s, 429, "{e}");
    assert_eq!(e["error"]["status"], "RESOURCE_EXHAUSTED");
    let set = |spec: &'static str| {
        let http = h.http.clone();
        let url = format!("{}/_sim/faults", h.url);
        async move {
            let r = http.post(url).body(spec).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
    };
    set("error500=1").await;
    let (s, e) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(s, 500, "{e}");
    assert_eq!(e["error"]["status"], "INTERNAL");
    set("fail=shop:INTERNAL:control plane exploded").await;
    let (s, op) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.30" }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    let done = h.wait_op(op["name"].as_str().unwrap()).await;
    assert_eq!(done["op"]["error"]["code"], 13, "{done}");
    assert_eq!(done["op"]["error"]["message"], "control plane exploded");
    let (_, c) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(c["currentMasterVersion"], "1.29.8-gke.1031000");
    // hang= pauses an operation; lifting it lets the operation finish.
    set("hang=shop").await;
    let (_, op) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.30" }),
        )
        .await;
    let name = op["name"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_, o) = h.get(&format!("{BASE}/operations/{name}")).await;
    assert_ne!(o["status"], "DONE", "{o}");
    set("none").await;
    h.wait_op(&name).await;
    let (_, c) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(c["currentMasterVersion"], "1.30.12-gke.1086000");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn gke_world_persists_with_in_flight_operation() {
    let h = start(WORLD, "world.hcl", 50.0, "").await;
    let (_, op) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.30" }),
        )
        .await;
    let name = op["name"].as_str().unwrap().to_string();
    let path = h.path.clone();
    let dir = h._dir;
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("gke_cluster \"shop\""), "{text}");
    assert!(text.contains(&name), "{text}");
    assert!(text.contains("remaining_seconds"), "{text}");
    assert!(text.contains("node_pool \"default\""), "{text}");

    // A faster simulator on the same file finishes the operation (no second call).
    let sim = start_on(&path, 2000.0, "").await;
    let h2 = H {
        url: sim.endpoints().eks,
        sim,
        http: reqwest::Client::new(),
        path: path.clone(),
        _dir: dir,
    };
    let done = h2.wait_op(&name).await;
    assert!(done["op"]["error"].is_null());
    let (_, c) = h2.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(c["currentMasterVersion"], "1.30.12-gke.1086000");
    h2.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("version         = \"1.30.12-gke.1086000\"")
            || text.contains("\"1.30.12-gke.1086000\""),
        "{text}"
    );

    // JSON form loads too.
    let json_world = r#"{"gke_cluster": {"j": {"project": "p", "location": "us-central1-a",
        "version": "1.30.5-gke.1014001", "node_pool": {"np": {"node_count": 1}}}}}"#;
    let h3 = start(json_world, "w.json", 1000.0, "").await;
    let (s, c) = h3
        .get("/v1/projects/p/locations/us-central1-a/clusters/j")
        .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["nodePools"][0]["version"], "1.30.5-gke.1014001");
    assert_eq!(c["locations"], json!(["us-central1-a"]));
    h3.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn world_errors_for_gke() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cases = [
        (
            "dup.hcl",
            r#"cluster "x" { version = "1.29" }
gke_cluster "x" { version = "1.29.8-gke.1031000" }"#,
            "already exists",
        ),
        (
            "ver.hcl",
            r#"gke_cluster "y" { version = "1.29.9-gke.1" }"#,
            "not a GKE version",
        ),
        (
            "skew.hcl",
            r#"gke_cluster "z" {
  version = "1.29.8-gke.1031000"
  node_pool "a" { version = "1.30.5-gke.1014001" }
}"#,
            "newer than the master",
        ),
    ];
    for (f, text, want) in cases {
        let p = bad(f, text);
        let e = Sim::start(SimConfig {
            world: p,
            listen: "127.0.0.1:0".parse().unwrap(),
            speed: 1.0,
            faults: FaultSpec::none(),
        })
        .await
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains(want), "{f}: {e:#}");
    }
}

#[tokio::test]
async fn gcloud_reads_the_simulated_clusters() {
    let Ok(gcloud) = which("gcloud") else {
        println!("skipping: gcloud is not on PATH");
        return;
    };
    let h = start(WORLD, "world.hcl", 1000.0, "").await;
    let cfg = tempfile::tempdir().unwrap();
    let cfg_path = cfg.path().to_path_buf();
    let url = h.url.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        let loc = [
            "--project",
            "demo-proj",
            "--location",
            "europe-west1",
            "--format",
            "json",
        ];
        let mut ok = true;
        let mut outs = Vec::new();
        let mut errs = String::new();
        for args in [
            vec!["container", "clusters", "list"],
            vec!["container", "clusters", "describe", "shop"],
            vec!["container", "node-pools", "list", "--cluster", "shop"],
        ] {
            let out = std::process::Command::new(&gcloud)
                .args(args.iter().chain(loc.iter()))
                .env("CLOUDSDK_CONFIG", &cfg_path)
                .env("CLOUDSDK_AUTH_ACCESS_TOKEN", "fake")
                .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
                .env(
                    "CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER",
                    format!("{url}/"),
                )
                .output()
                .unwrap();
            ok &= out.status.success();
            outs.push(String::from_utf8_lossy(&out.stdout).to_string());
            errs.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        (ok, outs.join("\n---\n"), errs)
    })
    .await
    .unwrap();
    drop(cfg);
    assert!(ok, "gcloud failed:\nstdout: {out}\nstderr: {err}");
    let parts: Vec<&str> = out.split("\n---\n").collect();
    let list: Value = serde_json::from_str(parts[0]).unwrap();
    assert_eq!(list[0]["name"], "shop");
    let desc: Value = serde_json::from_str(parts[1]).unwrap();
    assert_eq!(desc["currentMasterVersion"], "1.29.8-gke.1031000");
    let pools: Value = serde_json::from_str(parts[2]).unwrap();
    assert_eq!(pools[0]["name"], "default");
    h.sim.shutdown().await.unwrap();
}

fn which(bin: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .ok_or(())
}

/// The real Google client (google-cloud-container-v1, REST/JSON with integer enums).
#[tokio::test]
async fn google_cloud_container_client_talks_to_the_sim() {
    use google_cloud_container_v1::client::ClusterManager;
    use google_cloud_container_v1::model::{cluster, operation};
    let h = start(WORLD, "world.hcl", 1000.0, "").await;
    let client = ClusterManager::builder()
        .with_endpoint(h.url.clone())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let cname = "projects/demo-proj/locations/europe-west1/clusters/shop";
    let c = client.get_cluster().set_name(cname).send().await.unwrap();
    assert_eq!(c.current_master_version, "1.29.8-gke.1031000");
    assert_eq!(c.status, cluster::Status::Running);
    assert_eq!(c.node_pools.len(), 1);
    assert_eq!(c.node_pools[0].version, "1.29.8-gke.1031000");
    let op = client
        .update_master()
        .set_name(cname)
        .set_master_version("1.30")
        .send()
        .await
        .unwrap();
    assert_eq!(op.operation_type, operation::Type::UpgradeMaster);
    let oname = format!(
        "projects/demo-proj/locations/europe-west1/operations/{}",
        op.name
    );
    let t = Instant::now();
    loop {
        let o = client
            .get_operation()
            .set_name(&oname)
            .send()
            .await
            .unwrap();
        if o.status == operation::Status::Done {
            assert!(o.error.is_none(), "{o:?}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second call while nothing runs, then a concurrent one: FAILED_PRECONDITION.
    let _op = client
        .update_master()
        .set_name(cname)
        .set_master_version("1.31")
        .send()
        .await
        .unwrap();
    let e = client
        .update_master()
        .set_name(cname)
        .set_master_version("1.31")
        .send()
        .await
        .unwrap_err();
    let st = e.status().expect("a service error");
    assert_eq!(st.code.name(), "FAILED_PRECONDITION", "{e:?}");
    assert!(
        st.message.contains("is currently upgrading cluster shop"),
        "{e:?}"
    );
    let c = client.get_cluster().set_name(cname).send().await.unwrap();
    assert_eq!(c.status, cluster::Status::Reconciling);
    h.sim.shutdown().await.unwrap();
}

const BG_WORLD: &str = r#"
gke_cluster "shop" {
  project  = "demo-proj"
  location = "europe-west1"
  version  = "1.30.5-gke.1014001"
  node_pool "default" {
    version                = "1.29.8-gke.1031000"
    node_count             = 3
    machine_type           = "e2-standard-4"
    strategy               = "BLUE_GREEN"
    batch_node_count       = 1
    batch_soak_seconds     = 10
    node_pool_soak_seconds = 100000
  }
  workload "web" {
    namespace = "shop"
    replicas  = 4
    pdb { min_available = 3 }
  }
}
"#;

/// Poll the pool until its blue-green phase is `want`; returns the phases seen.
async fn wait_phase(h: &H, want: &str, seen: &mut Vec<String>, max_nodes: &mut usize) {
    let t = Instant::now();
    loop {
        let (_, p) = h
            .get(&format!("{BASE}/clusters/shop/nodePools/default"))
            .await;
        let ph = p["updateInfo"]["blueGreenInfo"]["phase"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if !ph.is_empty() && seen.last() != Some(&ph) {
            seen.push(ph.clone());
        }
        let n = h.kube_get("/api/v1/nodes").await["items"]
            .as_array()
            .unwrap()
            .len();
        *max_nodes = (*max_nodes).max(n);
        if ph == want {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "phase {want} not reached: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn audit(h: &H) -> Value {
    h.http
        .get(format!("{}/_sim/kube/shop/audit", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn native_blue_green_upgrade_with_complete_upgrade() {
    let h = start(BG_WORLD, "world.hcl", 1000.0, "").await;
    let (_, p) = h
        .get(&format!("{BASE}/clusters/shop/nodePools/default"))
        .await;
    assert_eq!(p["upgradeSettings"]["strategy"], "BLUE_GREEN");
    assert_eq!(
        p["upgradeSettings"]["blueGreenSettings"]["standardRolloutPolicy"]["batchNodeCount"],
        1
    );
    assert_eq!(
        p["upgradeSettings"]["blueGreenSettings"]["nodePoolSoakDuration"],
        "100000s"
    );
    // completeUpgrade with nothing running is refused.
    let (s, e) = h
        .post(
            &format!("{BASE}/clusters/shop/nodePools/default:completeUpgrade"),
            json!({}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "FAILED_PRECONDITION");

    let (s, op) = h
        .put(
            &format!("{BASE}/clusters/shop/nodePools/default"),
            json!({ "nodeVersion": "1.30.5-gke.1014001" }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    let name = op["name"].as_str().unwrap().to_string();
    let mut seen = Vec::new();
    let mut max_nodes = 0;
    wait_phase(&h, "NODE_POOL_SOAKING", &mut seen, &mut max_nodes).await;
    for want in [
        "CREATING_GREEN_POOL",
        "DRAINING_BLUE_POOL",
        "NODE_POOL_SOAKING",
    ] {
        assert!(seen.iter().any(|s| s == want), "{want} not in {seen:?}");
    }
    // Int enums: NODE_POOL_SOAKING = 5.
    let (_, p) = h
        .get(&format!(
            "{BASE}/clusters/shop/nodePools/default?$alt=json;enum-encoding=int"
        ))
        .await;
    assert_eq!(p["updateInfo"]["blueGreenInfo"]["phase"], 5, "{p}");
    assert_eq!(
        p["updateInfo"]["blueGreenInfo"]["greenPoolVersion"],
        "1.30.5-gke.1014001"
    );
    // Blue nodes are still there (cordoned, empty) during the soak.
    let nodes = h.kube_get("/api/v1/nodes").await;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 6);
    let (s, r) = h
        .post(
            &format!("{BASE}/clusters/shop/nodePools/default:completeUpgrade"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r, json!({}));
    let done = h.wait_op(&name).await;
    assert!(done["op"]["error"].is_null(), "{done}");
    assert!(max_nodes <= 6, "{max_nodes}");
    let nodes = h.kube_get("/api/v1/nodes").await;
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for n in items {
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.30.5-gke.1014001"
        );
        assert!(n["spec"]["unschedulable"].is_null());
    }
    let (_, p) = h
        .get(&format!("{BASE}/clusters/shop/nodePools/default"))
        .await;
    assert_eq!(p["version"], "1.30.5-gke.1014001");
    assert!(p["updateInfo"].is_null(), "{p}");
    let a = audit(&h).await;
    assert_eq!(a["pdbs"]["shop/web"]["violated"], false, "{a}");
    assert_eq!(a["lost_pods"], json!([]), "{a}");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn blue_green_rollback_during_soak_restores_the_blue_pool() {
    let h = start(BG_WORLD, "world.hcl", 1000.0, "").await;
    let blue: Vec<String> = h.kube_get("/api/v1/nodes").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let (_, op) = h
        .put(
            &format!("{BASE}/clusters/shop/nodePools/default"),
            json!({ "nodeVersion": "-" }),
        )
        .await;
    let name = op["name"].as_str().unwrap().to_string();
    let (mut seen, mut max_nodes) = (Vec::new(), 0);
    wait_phase(&h, "NODE_POOL_SOAKING", &mut seen, &mut max_nodes).await;
    let (s, r) = h
        .post(
            &format!("{BASE}/clusters/shop/nodePools/default:rollback"),
            json!({ "respectPdb": true }),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["name"], name.as_str());
    let done = h.wait_op(&name).await;
    assert_eq!(done["op"]["error"]["code"], 10, "{done}"); // ABORTED
    let nodes = h.kube_get("/api/v1/nodes").await;
    let items = nodes["items"].as_array().unwrap();
    let names: Vec<String> = items
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, blue);
    for n in items {
        assert!(n["spec"]["unschedulable"].is_null(), "{n}");
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.29.8-gke.1031000"
        );
    }
    let (_, p) = h
        .get(&format!("{BASE}/clusters/shop/nodePools/default"))
        .await;
    assert_eq!(p["version"], "1.29.8-gke.1031000");
    assert_eq!(p["status"], "RUNNING");
    let a = audit(&h).await;
    assert_eq!(a["pdbs"]["shop/web"]["violated"], false, "{a}");
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn rollback_after_a_failed_surge_upgrade() {
    let h = start(WORLD, "world.hcl", 1000.0, "").await;
    let (_, op) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.30" }),
        )
        .await;
    h.wait_op(op["name"].as_str().unwrap()).await;
    h.http
        .post(format!("{}/_sim/faults", h.url))
        .body("notready=shop/default")
        .send()
        .await
        .unwrap();
    let (_, op) = h
        .put(
            &format!("{BASE}/clusters/shop/nodePools/default"),
            json!({ "nodeVersion": "-" }),
        )
        .await;
    let done = h.wait_op(op["name"].as_str().unwrap()).await;
    assert_eq!(done["op"]["error"]["code"], 13, "{done}");
    h.http
        .delete(format!("{}/_sim/faults", h.url))
        .send()
        .await
        .unwrap();
    let (s, rb) = h
        .post(
            &format!("{BASE}/clusters/shop/nodePools/default:rollback"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{rb}");
    assert_eq!(rb["operationType"], "UPGRADE_NODES");
    let done = h.wait_op(rb["name"].as_str().unwrap()).await;
    assert!(done["op"]["error"].is_null(), "{done}");
    let nodes = h.kube_get("/api/v1/nodes").await;
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for n in items {
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.29.8-gke.1031000"
        );
    }
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn cluster_update_node_version_and_set_size() {
    let h = start(WORLD, "world.hcl", 1000.0, "latency=5ms").await;
    // clusters.update desiredNodeVersion goes through the same rules (node ahead of master).
    let (s, e) = h
        .put(
            &format!("{BASE}/clusters/shop"),
            json!({ "update": { "desiredNodeVersion": "1.30.5-gke.1014001", "desiredNodePoolId": "default" } }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("newer than the master"));
    let (s, e) = h
        .put(
            &format!("{BASE}/clusters/shop"),
            json!({ "update": { "desiredNodeVersion": "-", "desiredMasterVersion": "1.30" } }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT");
    // setSize: nodeCount is per zone (3 zones).
    let (s, op) = h
        .post(
            &format!("{BASE}/clusters/shop/nodePools/default:setSize"),
            json!({ "nodeCount": 2 }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "SET_NODE_POOL_SIZE");
    h.wait_op(op["name"].as_str().unwrap()).await;
    let nodes = h.kube_get("/api/v1/nodes").await;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 6); // 2 per zone × 3 zones
    let (_, p) = h
        .get(&format!("{BASE}/clusters/shop/nodePools/default"))
        .await;
    assert_eq!(p["initialNodeCount"], 2);
    // Unknown GKE methods are NOT_FOUND in Google's error shape.
    let (s, e) = h
        .post(&format!("{BASE}/clusters/shop:setLabels"), json!({}))
        .await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["status"], "NOT_FOUND");
    h.sim.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// nodePools.create / nodePools.delete, nodeDrainConfig, maintenancePolicy
// ---------------------------------------------------------------------------------------------

impl H {
    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
    async fn nodes_of(&self, pool: &str) -> Vec<Value> {
        self.kube_get(&format!(
            "/api/v1/nodes?labelSelector=cloud.google.com/gke-nodepool%3D{pool}"
        ))
        .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }
    async fn calls(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/_sim/calls", self.url))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn ready(n: &Value) -> bool {
    n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

#[tokio::test]
async fn create_node_pool_boots_nodes_and_validates() {
    let h = start(WORLD, "world.hcl", 1000.0, "").await;
    let url = format!("{BASE}/clusters/shop/nodePools");
    let pool = |name: &str| json!({ "nodePool": { "name": name, "initialNodeCount": 1 } });
    // Validation: name, initialNodeCount, version skew, duplicates. Nothing is created.
    for (body, want) in [
        (pool("Bad_Name"), "node_pool.name"),
        (pool("1abc"), "node_pool.name"),
        (pool(&"a".repeat(41)), "node_pool.name"),
        (
            json!({ "nodePool": { "initialNodeCount": 1 } }),
            "name must be specified",
        ),
        (
            json!({ "nodePool": { "name": "green" } }),
            "initialNodeCount must be positive",
        ),
        (
            json!({ "nodePool": { "name": "green", "initialNodeCount": 1, "version": "1.30.5-gke.1014001" } }),
            "newer than the master",
        ),
        // "1.29" resolves to the newest 1.29 patch, which is newer than this master.
        (
            json!({ "nodePool": { "name": "green", "initialNodeCount": 1, "version": "1.29" } }),
            "newer than the master",
        ),
        (
            json!({ "nodePool": { "name": "green", "initialNodeCount": 1, "config": { "machineType": "n2-weird" } } }),
            "machine_type",
        ),
        (
            json!({ "parent": "projects/demo-proj/locations/europe-west1/clusters/other", "nodePool": { "name": "green", "initialNodeCount": 1 } }),
            "does not match",
        ),
    ] {
        let (s, e) = h.post(&url, body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert_eq!(e["error"]["status"], "INVALID_ARGUMENT", "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(want),
            "{body}: {e}"
        );
    }
    let (s, e) = h.post(&url, pool("default")).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["status"], "ALREADY_EXISTS");
    assert_eq!(e["error"]["code"], 409);
    let (_, l) = h.get(&url).await;
    assert_eq!(l["nodePools"].as_array().unwrap().len(), 1, "{l}");

    // A valid request (int enums in the answer, as google-cloud-rust asks).
    let (s, op) = h
        .post(
            &format!("{url}?$alt=json;enum-encoding=int"),
            json!({
                "parent": "projects/demo-proj/locations/europe-west1/clusters/shop",
                "nodePool": {
                    "name": "green",
                    "initialNodeCount": 1,
                    "version": "-",
                    "config": { "machineType": "e2-standard-2" },
                    "upgradeSettings": { "maxSurge": 2, "maxUnavailable": 1, "strategy": "SURGE" },
                    "nodeDrainConfig": { "pdbTimeoutDuration": "900s", "respectPdbDuringNodePoolDeletion": true },
                }
            }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], 7, "{op}"); // CREATE_NODE_POOL
    assert!(op["targetLink"]
        .as_str()
        .unwrap()
        .ends_with("/clusters/shop/nodePools/green"));
    let name = op["name"].as_str().unwrap().to_string();
    // The pool exists at once, PROVISIONING, and blocks other operations.
    let (s, p) = h.get(&format!("{url}/green")).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "PROVISIONING", "{p}");
    let (s, e) = h
        .post(
            &url,
            json!({ "nodePool": { "name": "other", "initialNodeCount": 1 } }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "FAILED_PRECONDITION");
    let done = h.wait_op(&name).await;
    assert!(done["op"]["error"].is_null(), "{done}");
    assert_eq!(done["op"]["operationType"], "CREATE_NODE_POOL");

    // Its nodes are in the Kubernetes API: one per zone, Ready, at the master's version.
    let nodes = h.nodes_of("green").await;
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        assert!(ready(n), "{n}");
        let nm = n["metadata"]["name"].as_str().unwrap();
        assert!(nm.starts_with("gke-shop-green-"), "{nm}");
        assert_eq!(
            n["metadata"]["labels"]["node.kubernetes.io/instance-type"],
            "e2-standard-2"
        );
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.29.8-gke.1031000"
        );
    }
    assert_eq!(h.nodes_of("default").await.len(), 3);
    let (_, p) = h.get(&format!("{url}/green")).await;
    assert_eq!(p["status"], "RUNNING");
    assert_eq!(p["initialNodeCount"], 1);
    assert_eq!(p["version"], "1.29.8-gke.1031000");
    assert_eq!(p["config"]["machineType"], "e2-standard-2");
    assert_eq!(p["upgradeSettings"]["maxSurge"], 2);
    assert_eq!(
        p["nodeDrainConfig"],
        json!({ "pdbTimeoutDuration": "900s", "respectPdbDuringNodePoolDeletion": true })
    );
    let (_, c) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(c["currentNodeCount"], 6);
    let (s, e) = h.post(&url, pool("green")).await;
    assert_eq!(s, 409, "{e}");
    assert!(h.calls().await.iter().any(|c| c["op"]
        == "projects.locations.clusters.nodePools.create"
        && c["nodegroup"] == "green"
        && c["update_id"] == name.as_str()
        && c["mutation"] == true));

    // An armed fault fails the creation: the pool is left in ERROR without nodes.
    h.http
        .post(format!("{}/_sim/faults", h.url))
        .body("fail=shop/broken:RESOURCE_EXHAUSTED:zone out of e2 capacity")
        .send()
        .await
        .unwrap();
    let (s, op) = h.post(&url, pool("broken")).await;
    assert_eq!(s, 200, "{op}");
    let done = h.wait_op(op["name"].as_str().unwrap()).await;
    assert_eq!(done["op"]["error"]["code"], 8, "{done}");
    assert_eq!(done["op"]["error"]["message"], "zone out of e2 capacity");
    let (_, p) = h.get(&format!("{url}/broken")).await;
    assert_eq!(p["status"], "ERROR", "{p}");
    assert_eq!(p["statusMessage"], "zone out of e2 capacity");
    assert!(h.nodes_of("broken").await.is_empty());

    // The created pools survive a restart.
    let path = h.path.clone();
    let dir = h._dir;
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("node_pool \"green\""), "{text}");
    assert!(text.contains("pdb_timeout_seconds"), "{text}");
    let sim = start_on(&path, 1000.0, "").await;
    let h2 = H {
        url: sim.endpoints().eks,
        sim,
        http: reqwest::Client::new(),
        path,
        _dir: dir,
    };
    let (s, p) = h2.get(&format!("{url}/green")).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "RUNNING");
    assert_eq!(p["nodeDrainConfig"]["pdbTimeoutDuration"], "900s");
    assert_eq!(h2.nodes_of("green").await.len(), 3);
    let (_, p) = h2.get(&format!("{url}/broken")).await;
    assert_eq!(p["status"], "ERROR", "{p}");
    assert!(h2.nodes_of("broken").await.is_empty());
    h2.sim.shutdown().await.unwrap();
}

const TWO_POOLS: &str = r#"
gke_cluster "shop" {
  project  = "demo-proj"
  location = "europe-west1"
  version  = "1.29.8-gke.1031000"
  node_pool "default" {
    node_count   = 3
    machine_type = "e2-standard-4"
  }
  node_pool "old" {
    node_count   = 3
    machine_type = "e2-standard-4"
  }
  workload "web" {
    namespace                = "shop"
    replicas                 = 6
    termination_grace_period = 1200
    pdb { min_available = 5 }
  }
}
"#;

/// `ns/name` of the `web` pods on `pool`'s nodes.
async fn web_pods_on(h: &H, pool: &str) -> Vec<String> {
    let nodes: Vec<String> = h
        .nodes_of(pool)
        .await
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    h.kube_get("/api/v1/namespaces/shop/pods").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| nodes.iter().any(|x| x == n))
        })
        .map(|p| format!("shop/{}", p["metadata"]["name"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn delete_node_pool_kills_pods_ignoring_pdbs_by_default() {
    let h = start(TWO_POOLS, "world.hcl", 100.0, "").await;
    let url = format!("{BASE}/clusters/shop/nodePools");
    let victims = web_pods_on(&h, "old").await;
    assert!(!victims.is_empty(), "no web pod landed on the old pool");
    let (s, e) = h.delete(&format!("{url}/nope")).await;
    assert_eq!(s, 404, "{e}");
    assert_eq!(e["error"]["status"], "NOT_FOUND");
    let (s, op) = h.delete(&format!("{url}/old")).await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "DELETE_NODE_POOL");
    let name = op["name"].as_str().unwrap().to_string();
    let (_, p) = h
        .get(&format!("{url}/old?$alt=json;enum-encoding=int"))
        .await;
    assert_eq!(p["status"], 5, "{p}"); // STOPPING
    let (s, e) = h.delete(&format!("{url}/default")).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "FAILED_PRECONDITION");
    let done = h.wait_op(&name).await;
    assert!(done["op"]["error"].is_null(), "{done}");
    let (_, l) = h.get(&url).await;
    let names: Vec<&str> = l["nodePools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default"]);
    let (s, _) = h.get(&format!("{url}/old")).await;
    assert_eq!(s, 404);
    assert!(h.nodes_of("old").await.is_empty());
    assert_eq!(h.nodes_of("default").await.len(), 3);
    // PDBs were not respected: the pods on the pool were killed, and the audit says so.
    let a = audit(&h).await;
    let lost: Vec<&str> = a["lost_pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for v in &victims {
        assert!(lost.contains(&v.as_str()), "{v} not in {a}");
    }
    assert!(h.calls().await.iter().any(|c| c["op"]
        == "projects.locations.clusters.nodePools.delete"
        && c["nodegroup"] == "old"
        && c["mutation"] == true));
    // The deletion persists (and the finished operation on a pool that is gone still loads).
    let path = h.path.clone();
    let dir = h._dir;
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("node_pool \"old\""), "{text}");
    assert!(text.contains("DELETE_NODE_POOL"), "{text}");
    let sim = start_on(&path, 1000.0, "").await;
    let h2 = H {
        url: sim.endpoints().eks,
        sim,
        http: reqwest::Client::new(),
        path,
        _dir: dir,
    };
    let (s, _) = h2.get(&format!("{url}/old")).await;
    assert_eq!(s, 404);
    assert_eq!(
        h2.kube_get("/api/v1/nodes").await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    h2.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn delete_node_pool_respecting_pdbs_drains_within_the_budget() {
    let h = start(TWO_POOLS, "world.hcl", 100.0, "").await;
    let url = format!("{BASE}/clusters/shop/nodePools");
    let victims = web_pods_on(&h, "old").await;
    assert!(!victims.is_empty(), "no web pod landed on the old pool");
    let (s, op) = h
        .put(
            &format!("{url}/old"),
            // The pods' own grace (1200 s = 12 s wall at speed 100) is capped to 2 s.
            json!({ "nodeDrainConfig": {
                "respectPdbDuringNodePoolDeletion": true,
                "graceTerminationDuration": "2s",
            } }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    h.wait_op(op["name"].as_str().unwrap()).await;
    let t = Instant::now();
    let (s, op) = h.delete(&format!("{url}/old")).await;
    assert_eq!(s, 200, "{op}");
    let done = h.wait_op(op["name"].as_str().unwrap()).await;
    assert!(done["op"]["error"].is_null(), "{done}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "termination grace not capped: {:?}",
        t.elapsed()
    );
    assert!(h.nodes_of("old").await.is_empty());
    let a = audit(&h).await;
    assert_eq!(a["lost_pods"], json!([]), "{a}");
    assert_eq!(a["pdbs"]["shop/web"]["violated"], false, "{a}");
    assert_eq!(a["pdbs"]["shop/web"]["min_healthy_observed"], 5, "{a}");
    assert!(
        a["evictions"].as_u64().unwrap() >= victims.len() as u64,
        "{a}"
    );
    // The evicted replicas run on the remaining pool.
    let t = Instant::now();
    loop {
        let pods = h.kube_get("/api/v1/namespaces/shop/pods").await;
        let running = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .count();
        if running == 6 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{pods}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn node_drain_config_round_trips_through_update_and_etag() {
    let h = start(WORLD, "world.hcl", 1000.0, "").await;
    let url = format!("{BASE}/clusters/shop/nodePools/default");
    let (_, p) = h.get(&url).await;
    assert!(p.get("nodeDrainConfig").is_none(), "{p}");
    let etag = p["etag"].as_str().unwrap().to_string();
    let (s, e) = h
        .put(
            &url,
            json!({ "nodeDrainConfig": { "pdbTimeoutDuration": "ten minutes" } }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT");
    let cfg = json!({
        "pdbTimeoutDuration": "600s",
        "graceTerminationDuration": "30s",
        "respectPdbDuringNodePoolDeletion": true,
    });
    let (s, op) = h
        .put(&url, json!({ "nodeDrainConfig": cfg, "etag": etag }))
        .await;
    assert_eq!(s, 200, "{op}");
    assert_eq!(op["operationType"], "UPDATE_CLUSTER");
    h.wait_op(op["name"].as_str().unwrap()).await;
    let (_, p) = h.get(&url).await;
    assert_eq!(p["nodeDrainConfig"], cfg, "{p}");
    assert_ne!(p["etag"], etag.as_str());
    let (s, e) = h
        .put(
            &url,
            json!({ "nodeDrainConfig": { "pdbTimeoutDuration": "60s" }, "etag": etag }),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    // A partial update keeps the other fields.
    let (s, op) = h
        .put(
            &url,
            json!({ "nodeDrainConfig": { "pdbTimeoutDuration": "60s" }, "etag": p["etag"] }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    h.wait_op(op["name"].as_str().unwrap()).await;
    let (_, p) = h.get(&url).await;
    assert_eq!(p["nodeDrainConfig"]["pdbTimeoutDuration"], "60s");
    assert_eq!(p["nodeDrainConfig"]["graceTerminationDuration"], "30s");
    let path = h.path.clone();
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("drain_config {"), "{text}");
    assert!(text.contains("pdb_timeout_seconds = 60"), "{text}");
    assert!(
        text.contains("respect_pdb_during_deletion = true"),
        "{text}"
    );
}

#[tokio::test]
async fn pdb_timeout_from_drain_config_bounds_a_blocked_drain() {
    // The PDB allows no disruption at all; GKE gives up on it after pdbTimeoutDuration.
    let world = r#"
gke_cluster "shop" {
  project  = "demo-proj"
  location = "europe-west1"
  version  = "1.30.5-gke.1014001"
  node_pool "default" {
    version      = "1.29.8-gke.1031000"
    node_count   = 3
    machine_type = "e2-standard-4"
    drain_config {
      pdb_timeout_seconds       = 60
      grace_termination_seconds = 5
    }
  }
  workload "web" {
    namespace = "shop"
    replicas  = 3
    pdb { min_available = 3 }
  }
}
"#;
    // At speed 100 GKE's default hour would take 36 s per batch.
    let h = start(world, "world.hcl", 100.0, "").await;
    let (_, p) = h
        .get(&format!("{BASE}/clusters/shop/nodePools/default"))
        .await;
    assert_eq!(
        p["nodeDrainConfig"],
        json!({ "pdbTimeoutDuration": "60s", "graceTerminationDuration": "5s" })
    );
    let t = Instant::now();
    let (s, op) = h
        .put(
            &format!("{BASE}/clusters/shop/nodePools/default"),
            json!({ "nodeVersion": "-" }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    let done = h.wait_op(op["name"].as_str().unwrap()).await;
    assert!(done["op"]["error"].is_null(), "{done}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    let a = audit(&h).await;
    assert!(a["evictions_refused"].as_u64().unwrap() > 0, "{a}");
    assert!(
        a["lost_pods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("shop/web-")),
        "{a}"
    );
    h.sim.shutdown().await.unwrap();
}

const MAINT_WORLD: &str = r#"
gke_cluster "shop" {
  project  = "demo-proj"
  location = "europe-west1"
  version  = "1.29.8-gke.1031000"
  daily_maintenance_window { start_time = "03:00" }
  maintenance_exclusion "freeze" {
    start_time = "2020-01-01T00:00:00Z"
    end_time   = "2099-01-01T00:00:00Z"
  }
  maintenance_exclusion "black-friday" {
    start_time = "2026-11-27T00:00:00Z"
    end_time   = "2026-12-01T00:00:00Z"
    scope      = "NO_MINOR_UPGRADES"
  }
  maintenance_exclusion "nodes" {
    start_time = "2026-12-20T00:00:00Z"
    end_time   = "2027-01-05T00:00:00Z"
    scope      = "NO_MINOR_OR_NODE_UPGRADES"
  }
  node_pool "default" { node_count = 1 }
}
gke_cluster "weekend" {
  project  = "demo-proj"
  location = "europe-west1"
  version  = "1.29.8-gke.1031000"
  maintenance_window {
    start_time = "2026-01-03T01:00:00Z"
    end_time   = "2026-01-03T05:00:00Z"
    recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
  }
  node_pool "default" { node_count = 1 }
}
gke_cluster "plain" {
  project  = "demo-proj"
  location = "europe-west1"
  version  = "1.29.8-gke.1031000"
  node_pool "default" { node_count = 1 }
}
"#;

#[tokio::test]
async fn maintenance_policy_is_reported_with_names_and_int_enums() {
    let h = start(MAINT_WORLD, "world.hcl", 1000.0, "").await;
    let (s, c) = h.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(s, 200, "{c}");
    let mp = &c["maintenancePolicy"];
    let rv = mp["resourceVersion"].as_str().unwrap().to_string();
    assert_eq!(rv.len(), 8, "{mp}");
    assert_ne!(rv, "e3b0c442");
    assert_eq!(
        mp["window"],
        json!({
            "dailyMaintenanceWindow": { "startTime": "03:00", "duration": "PT4H0M0S" },
            "maintenanceExclusions": {
                "freeze": {
                    "startTime": "2020-01-01T00:00:00Z",
                    "endTime": "2099-01-01T00:00:00Z",
                    "maintenanceExclusionOptions": { "scope": "NO_UPGRADES" },
                },
                "black-friday": {
                    "startTime": "2026-11-27T00:00:00Z",
                    "endTime": "2026-12-01T00:00:00Z",
                    "maintenanceExclusionOptions": { "scope": "NO_MINOR_UPGRADES" },
                },
                "nodes": {
                    "startTime": "2026-12-20T00:00:00Z",
                    "endTime": "2027-01-05T00:00:00Z",
                    "maintenanceExclusionOptions": { "scope": "NO_MINOR_OR_NODE_UPGRADES" },
                },
            },
        })
    );
    let (_, ci) = h
        .get(&format!("{BASE}/clusters?$alt=json;enum-encoding=int"))
        .await;
    let ci = ci["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "shop")
        .unwrap()
        .clone();
    let x = &ci["maintenancePolicy"]["window"]["maintenanceExclusions"];
    assert_eq!(
        x["freeze"]["maintenanceExclusionOptions"]["scope"], 0,
        "{x}"
    );
    assert_eq!(
        x["black-friday"]["maintenanceExclusionOptions"]["scope"], 1,
        "{x}"
    );
    assert_eq!(x["nodes"]["maintenanceExclusionOptions"]["scope"], 2, "{x}");

    let (_, w) = h.get(&format!("{BASE}/clusters/weekend")).await;
    assert_eq!(
        w["maintenancePolicy"]["window"],
        json!({ "recurringWindow": {
            "window": { "startTime": "2026-01-03T01:00:00Z", "endTime": "2026-01-03T05:00:00Z" },
            "recurrence": "FREQ=WEEKLY;BYDAY=SA,SU",
        }})
    );
    let (_, p) = h.get(&format!("{BASE}/clusters/plain")).await;
    assert_eq!(
        p["maintenancePolicy"],
        json!({ "resourceVersion": "e3b0c442" })
    );

    // Windows and exclusions only hold back automatic upgrades: a user-initiated upgrade
    // inside the NO_UPGRADES exclusion goes ahead.
    let (s, op) = h
        .post(
            &format!("{BASE}/clusters/shop:updateMaster"),
            json!({ "masterVersion": "1.30" }),
        )
        .await;
    assert_eq!(s, 200, "{op}");
    h.wait_op(op["name"].as_str().unwrap()).await;

    // Persisted and reloaded unchanged.
    let path = h.path.clone();
    let dir = h._dir;
    h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("maintenance_exclusion \"black-friday\""),
        "{text}"
    );
    assert!(text.contains("daily_maintenance_window {"), "{text}");
    assert!(
        text.contains("recurrence = \"FREQ=WEEKLY;BYDAY=SA,SU\""),
        "{text}"
    );
    let sim = start_on(&path, 1000.0, "").await;
    let h2 = H {
        url: sim.endpoints().eks,
        sim,
        http: reqwest::Client::new(),
        path,
        _dir: dir,
    };
    let (_, c2) = h2.get(&format!("{BASE}/clusters/shop")).await;
    assert_eq!(c2["maintenancePolicy"], c["maintenancePolicy"]);
    let (_, w2) = h2.get(&format!("{BASE}/clusters/weekend")).await;
    assert_eq!(w2["maintenancePolicy"], w["maintenancePolicy"]);
    h2.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn world_errors_for_maintenance_and_drain_config() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = |body: &str| {
        format!("gke_cluster \"m\" {{\n  version = \"1.29.8-gke.1031000\"\n{body}\n}}\n")
    };
    let cases = [
        (
            cluster(
                r#"daily_maintenance_window { start_time = "03:00" }
maintenance_window {
  start_time = "2026-01-03T01:00:00Z"
  end_time   = "2026-01-03T05:00:00Z"
  recurrence = "FREQ=DAILY"
}"#,
            ),
            "gke_cluster \"m\": daily_maintenance_window and maintenance_window are mutually exclusive",
        ),
        (
            cluster(r#"daily_maintenance_window { start_time = "25:00" }"#),
            "gke_cluster \"m\": daily_maintenance_window: start_time `25:00`",
        ),
        (
            cluster(
                r#"maintenance_window {
  start_time = "2026-01-03T01:00:00Z"
  end_time   = "2026-01-03T05:00:00Z"
  recurrence = "WEEKLY"
}"#,
            ),
            "gke_cluster \"m\": maintenance_window: recurrence `WEEKLY`",
        ),
        (
            cluster(
                r#"maintenance_window {
  start_time = "2026-01-03T05:00:00Z"
  end_time   = "2026-01-03T01:00:00Z"
  recurrence = "FREQ=DAILY"
}"#,
            ),
            "gke_cluster \"m\": maintenance_window: end_time `2026-01-03T01:00:00Z` must be after",
        ),
        (
            cluster(
                r#"maintenance_exclusion "x" {
  start_time = "yesterday"
  end_time   = "2026-01-03T01:00:00Z"
}"#,
            ),
            "gke_cluster \"m\": maintenance_exclusion \"x\": start_time: `yesterday` is not an RFC 3339",
        ),
        (
            cluster(
                r#"maintenance_exclusion "x" {
  start_time = "2026-01-01T00:00:00Z"
  end_time   = "2026-01-03T01:00:00Z"
  scope      = "NO_PATCHES"
}"#,
            ),
            "gke_cluster \"m\": maintenance_exclusion \"x\": scope `NO_PATCHES` must be one of NO_UPGRADES",
        ),
        (
            cluster(
                r#"node_pool "a" {
  drain_config { pdb_timeout_seconds = -1 }
}"#,
            ),
            "gke_cluster \"m\": node_pool \"a\": drain_config: pdb_timeout_seconds must be a non-negative",
        ),
        (
            cluster(
                r#"node_pool "a" {
  drain_config { respect_pdb = true }
}"#,
            ),
            "respect_pdb",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("w{i}.hcl"));
        std::fs::write(&p, text).unwrap();
        let e = Sim::start(SimConfig {
            world: p,
            listen: "127.0.0.1:0".parse().unwrap(),
            speed: 1.0,
            faults: FaultSpec::none(),
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("case {i} loaded: {text}"));
        assert!(format!("{e:#}").contains(want), "case {i}: {e:#}");
    }
}

/// The real client reads maintenancePolicy and nodeDrainConfig, and creates and deletes pools.
#[tokio::test]
async fn google_client_reads_maintenance_and_manages_node_pools() {
    use google_cloud_container_v1::client::ClusterManager;
    use google_cloud_container_v1::model::{
        maintenance_exclusion_options::Scope, maintenance_window::Policy, node_pool, operation,
        time_window::Options, NodePool,
    };
    let h = start(MAINT_WORLD, "world.hcl", 1000.0, "").await;
    let client = ClusterManager::builder()
        .with_endpoint(h.url.clone())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let cname = "projects/demo-proj/locations/europe-west1/clusters/shop";
    let c = client.get_cluster().set_name(cname).send().await.unwrap();
    let mp = c.maintenance_policy.expect("maintenancePolicy");
    assert_eq!(mp.resource_version.len(), 8);
    let w = mp.window.expect("window");
    match w.policy {
        Some(Policy::DailyMaintenanceWindow(d)) => {
            assert_eq!(d.start_time, "03:00");
            assert_eq!(d.duration, "PT4H0M0S");
        }
        other => panic!("{other:?}"),
    }
    let scope = |n: &str| match &w.maintenance_exclusions[n].options {
        Some(Options::MaintenanceExclusionOptions(o)) => o.scope.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(scope("freeze"), Scope::NoUpgrades);
    assert_eq!(scope("black-friday"), Scope::NoMinorUpgrades);
    assert_eq!(scope("nodes"), Scope::NoMinorOrNodeUpgrades);
    let end = w.maintenance_exclusions["black-friday"]
        .end_time
        .expect("endTime");
    assert_eq!(end.seconds(), 1_796_083_200); // 2026-12-01T00:00:00Z

    let wait = |name: String| {
        let client = client.clone();
        async move {
            let oname = format!("projects/demo-proj/locations/europe-west1/operations/{name}");
            let t = Instant::now();
            loop {
                let o = client
                    .get_operation()
                    .set_name(&oname)
                    .send()
                    .await
                    .unwrap();
                if o.status == operation::Status::Done {
                    return o;
                }
                assert!(t.elapsed() < Duration::from_secs(30));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let op = client
        .create_node_pool()
        .set_parent(cname)
        .set_node_pool(
            NodePool::new()
                .set_name("green")
                .set_initial_node_count(1)
                .set_node_drain_config(
                    node_pool::NodeDrainConfig::new()
                        .set_respect_pdb_during_node_pool_deletion(true),
                ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(op.operation_type, operation::Type::CreateNodePool);
    let o = wait(op.name).await;
    assert!(o.error.is_none(), "{o:?}");
    let p = client
        .get_node_pool()
        .set_name(format!("{cname}/nodePools/green"))
        .send()
        .await
        .unwrap();
    assert_eq!(p.status, node_pool::Status::Running);
    assert_eq!(
        p.node_drain_config
            .expect("nodeDrainConfig")
            .respect_pdb_during_node_pool_deletion,
        Some(true)
    );
    let op = client
        .delete_node_pool()
        .set_name(format!("{cname}/nodePools/green"))
        .send()
        .await
        .unwrap();
    assert_eq!(op.operation_type, operation::Type::DeleteNodePool);
    let o = wait(op.name).await;
    assert!(o.error.is_none(), "{o:?}");
    let e = client
        .get_node_pool()
        .set_name(format!("{cname}/nodePools/green"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.status().expect("service error").code.name(), "NOT_FOUND");
    h.sim.shutdown().await.unwrap();
}
