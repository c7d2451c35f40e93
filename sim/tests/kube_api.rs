//! The simulated Kubernetes API over raw HTTP (no kube client): discovery, list with
//! selectors and pagination, watch, eviction and PDBs, graceful deletion, node patches.

mod common;

use std::collections::BTreeSet;

use common::{start_with, Harness};
use serde_json::{json, Value};

const WORLD: &str = r#"
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.29"
  node_group "general" {
    version         = "1.29"
    release_version = "1.29.0-20240129"
    instance_types  = ["m5.xlarge"]
    desired_size    = 3
    max_size        = 6
  }
  workload "web" {
    namespace = "shop"
    replicas  = 6
    cpu       = "250m"
    memory    = "256Mi"
    pdb { min_available = 4 }
  }
  workload "db" {
    namespace = "shop"
    kind      = "StatefulSet"
    replicas  = 3
    pdb { max_unavailable = 1 }
  }
  workload "stuck" {
    replicas = 2
    pdb { min_available = 2 }
  }
  workload "lonely" { kind = "Pod" }
}
"#;

struct K {
    h: Harness,
    base: String,
    http: reqwest::Client,
}

async fn start(speed: f64) -> K {
    let h = start_with(WORLD, "world.hcl", speed, "").await;
    let base = h.sim.endpoints().kube["prod-eu"].clone();
    K {
        h,
        base,
        http: reqwest::Client::new(),
    }
}

impl K {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(
                "k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9uYXdzLmNvbS8_QWN0aW9uPUdldENhbGxlcklkZW50aXR5",
            )
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        ctype: &str,
        body: Value,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", ctype)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }
    async fn names(&self, path: &str) -> Vec<String> {
        let (code, v) = self.get(path).await;
        assert_eq!(code, 200, "{path}: {v}");
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }
    async fn audit(&self) -> Value {
        self.h.admin_get("kube/prod-eu/audit").await
    }
    async fn evict(&self, ns: &str, pod: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            &format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"),
            "application/json",
            json!({ "apiVersion": "policy/v1", "kind": "Eviction", "metadata": { "name": pod, "namespace": ns } }),
        )
        .await
    }
    /// Poll until `f` holds (bounded by iterations, not wall-clock assertions).
    async fn until<F: Fn(&Value) -> bool>(&self, path: &str, f: F) -> Value {
        for _ in 0..2000 {
            let (_, v) = self.get(path).await;
            if f(&v) {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("condition on {path} never held");
    }
}

#[tokio::test]
async fn discovery_and_version() {
    let k = start(600.0).await;
    let (code, v) = k.get("/version").await;
    assert_eq!(code, 200);
    assert!(
        v["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.29.13-eks-"),
        "{v}"
    );
    let (_, v) = k.get("/api/v1").await;
    let res = v["resources"].as_array().unwrap();
    let ev = res.iter().find(|r| r["name"] == "pods/eviction").unwrap();
    assert_eq!(
        (
            ev["group"].as_str(),
            ev["version"].as_str(),
            ev["kind"].as_str()
        ),
        (Some("policy"), Some("v1"), Some("Eviction"))
    );
    let (_, v) = k.get("/apis/policy/v1").await;
    let pdb = &v["resources"][0];
    assert_eq!(pdb["name"], "poddisruptionbudgets");
    assert_eq!(pdb["shortNames"], json!(["pdb"]));
    let (_, v) = k.get("/apis").await;
    let groups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "apps",
            "autoscaling",
            "batch",
            "networking.k8s.io",
            "policy",
            "flowcontrol.apiserver.k8s.io",
            "authorization.k8s.io"
        ]
    );
    let (code, v) = k.get("/api/v1/nodes/nope").await;
    assert_eq!(code, 404);
    assert_eq!(
        (v["kind"].as_str(), v["reason"].as_str(), v["code"].as_i64()),
        (Some("Status"), Some("NotFound"), Some(404))
    );
    assert_eq!(v["message"], "nodes \"nope\" not found");
    // Review kinds are created, never listed (kup's scan must skip them).
    let (code, v) = k.get("/apis/authorization.k8s.io/v1").await;
    assert_eq!(code, 200);
    assert_eq!(v["resources"][0]["verbs"], serde_json::json!(["create"]));
    let (code, _) = k
        .get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
        .await;
    assert_eq!(code, 405);
    let (code, v) = k
        .send(
            reqwest::Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "application/json",
            serde_json::json!({ "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": { "resourceAttributes": { "verb": "list", "resource": "pods" } } }),
        )
        .await;
    assert_eq!(
        (code, &v["status"]["allowed"]),
        (201, &serde_json::json!(true))
    );
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn nodes_match_the_node_group() {
    let k = start(600.0).await;
    let (_, v) = k.get("/api/v1/nodes").await;
    assert_eq!(v["kind"], "NodeList");
    let nodes = v["items"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        let l = &n["metadata"]["labels"];
        assert_eq!(l["eks.amazonaws.com/nodegroup"], "general");
        assert_eq!(l["node.kubernetes.io/instance-type"], "m5.xlarge");
        assert!(l["topology.kubernetes.io/zone"]
            .as_str()
            .unwrap()
            .starts_with("eu-west-1"));
        assert!(n["metadata"]["name"]
            .as_str()
            .unwrap()
            .ends_with(".eu-west-1.compute.internal"));
        let kv = n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap();
        assert!(
            kv.starts_with("v1.29.0-eks-") && kv.len() == "v1.29.0-eks-".len() + 7,
            "{kv}"
        );
        assert_eq!(n["status"]["allocatable"]["pods"], "58");
        assert!(n["metadata"]["uid"].is_string() && n["metadata"]["resourceVersion"].is_string());
        assert!(n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"));
    }
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let k = start(600.0).await;
    assert_eq!(
        k.names("/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb")
            .await
            .len(),
        6
    );
    assert_eq!(
        k.names("/api/v1/pods?labelSelector=app%20in%20(web,db)")
            .await
            .len(),
        9
    );
    let not_web = k
        .names("/api/v1/namespaces/shop/pods?labelSelector=app!%3Dweb")
        .await;
    assert_eq!(not_web, ["db-0", "db-1", "db-2"]);
    assert_eq!(
        k.names("/api/v1/pods?labelSelector=app%20notin%20(web,db),app")
            .await
            .len(),
        3
    );
    assert_eq!(
        k.names("/api/v1/pods?labelSelector=!app").await.len(),
        8,
        "system pods carry k8s-app, not app"
    );
    // Field selectors.
    let (_, nodes) = k.get("/api/v1/nodes").await;
    let n0 = nodes["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, on) = k
        .get(&format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{n0}"))
        .await;
    let on = on["items"].as_array().unwrap().clone();
    assert!(!on.is_empty());
    assert!(on.iter().all(|p| p["spec"]["nodeName"] == n0.as_str()));
    // DaemonSet pods (kube-proxy, aws-node) are on every node.
    assert_eq!(
        on.iter()
            .filter(|p| p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet")
            .count(),
        2
    );
    let all = k.names("/api/v1/pods").await;
    assert_eq!(
        all.len(),
        6 + 3 + 2 + 1 + 6 + 2,
        "web, db, stuck, lonely, 2 DS × 3 nodes, coredns"
    );
    let running = k
        .names("/api/v1/pods?fieldSelector=status.phase%3DRunning,metadata.namespace%3Dshop")
        .await;
    assert_eq!(running.len(), 9);
    let (code, v) = k.get("/api/v1/pods?fieldSelector=spec.bogus%3D1").await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["reason"], "BadRequest");
    // Pagination: limit/continue visits everything once.
    let mut seen = Vec::new();
    let mut cont = String::new();
    let mut pages = 0;
    loop {
        let (_, v) = k
            .get(&format!("/api/v1/pods?limit=4&continue={cont}"))
            .await;
        pages += 1;
        assert!(v["metadata"]["resourceVersion"].is_string());
        for p in v["items"].as_array().unwrap() {
            seen.push(format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap(),
                p["metadata"]["name"].as_str().unwrap()
            ));
        }
        match v["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => break,
        }
    }
    assert_eq!(pages, all.len().div_ceil(4));
    let uniq: BTreeSet<_> = seen.iter().collect();
    assert_eq!(uniq.len(), all.len());
    // Owner references: pod → ReplicaSet → Deployment.
    let (_, web) = k
        .get("/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb&limit=1")
        .await;
    let owner = &web["items"][0]["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("ReplicaSet"), Some(true))
    );
    let (code, rs) = k
        .get(&format!(
            "/apis/apps/v1/namespaces/shop/replicasets/{}",
            owner["name"].as_str().unwrap()
        ))
        .await;
    assert_eq!(code, 200);
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["status"]["readyReplicas"], 6);
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn eviction_enforces_pod_disruption_budgets() {
    let k = start(60.0).await;
    let (_, pdb) = k
        .get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/stuck")
        .await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert_eq!(pdb["status"]["currentHealthy"], 2);
    assert_eq!(pdb["status"]["desiredHealthy"], 2);
    assert_eq!(pdb["status"]["expectedPods"], 2);
    let stuck = k
        .names("/api/v1/namespaces/default/pods?labelSelector=app%3Dstuck")
        .await;
    let (code, body) = k.evict("default", &stuck[0]).await;
    assert_eq!(code, 429);
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"Cannot evict pod as it would violate the pod's disruption budget.",
            "reason":"TooManyRequests",
            "details":{"causes":[{"reason":"DisruptionBudget","message":"The disruption budget stuck needs 2 healthy pods and has 2 currently"}]},
            "code":429})
    );
    // Allowed eviction: 201, the pod terminates gracefully and the budget drops at once.
    let (_, pdb) = k
        .get("/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web")
        .await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 2);
    let web = k
        .names("/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb")
        .await;
    let (code, body) = k.evict("shop", &web[0]).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"], "Success");
    let (_, pdb) = k
        .get("/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web")
        .await;
    assert_eq!(pdb["status"]["disruptionsAllowed"], 1);
    let (code, p) = k
        .get(&format!("/api/v1/namespaces/shop/pods/{}", web[0]))
        .await;
    assert_eq!(code, 200);
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    // Two more evictions: the second is refused (4 healthy needed).
    let (c1, _) = k.evict("shop", &web[1]).await;
    let (c2, b2) = k.evict("shop", &web[2]).await;
    assert_eq!((c1, c2), (201, 429), "{b2}");
    // Name mismatch and unknown pods.
    let (code, _) = k
        .send(reqwest::Method::POST, &format!("/api/v1/namespaces/shop/pods/{}/eviction", web[3]), "application/json",
            json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "other"}}))
        .await;
    assert_eq!(code, 400);
    let (code, _) = k.evict("shop", "nope").await;
    assert_eq!(code, 404);
    // The evicted pods come back (new names) and the budget recovers; nothing violated.
    k.until("/apis/apps/v1/namespaces/shop/deployments/web", |d| {
        d["status"]["readyReplicas"] == 6
    })
    .await;
    // Terminating pods are listed until their grace period ends.
    k.until(
        "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb",
        |l| l["items"].as_array().unwrap().len() == 6,
    )
    .await;
    let after = k
        .names("/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb")
        .await;
    assert!(!after.contains(&web[0]) && !after.contains(&web[1]));
    let a = k.audit().await;
    assert_eq!(a["evictions"], 2);
    assert_eq!(a["evictions_refused"], 2);
    assert_eq!(a["pdbs"]["shop/web"]["violated"], false);
    assert_eq!(a["pdbs"]["shop/web"]["budget"], 4);
    assert_eq!(a["pdbs"]["shop/web"]["min_healthy_observed"], 4);
    assert_eq!(a["lost_pods"], json!([]));
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_budgets_on_one_pod_is_a_server_error() {
    let k = start(600.0).await;
    let (code, _) = k
        .send(reqwest::Method::POST, "/apis/policy/v1/namespaces/shop/poddisruptionbudgets", "application/json",
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web2"},
                   "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}))
        .await;
    assert_eq!(code, 201);
    let web = k
        .names("/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb")
        .await;
    let (code, body) = k.evict("shop", &web[0]).await;
    assert_eq!(code, 500, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("more than one PodDisruptionBudget"));
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_deletion_and_statefulset_identity() {
    // Speed 60: the 30 s grace period lasts half a second of wall time.
    let k = start(60.0).await;
    let (_, before) = k.get("/api/v1/namespaces/shop/pods/db-1").await;
    let (code, p) = k
        .send(
            reqwest::Method::DELETE,
            "/api/v1/namespaces/shop/pods/db-1",
            "application/json",
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    let (_, still) = k.get("/api/v1/namespaces/shop/pods/db-1").await;
    assert_eq!(
        still["metadata"]["uid"], before["metadata"]["uid"],
        "still terminating"
    );
    // It comes back under the same name with a new uid.
    let again = k
        .until("/api/v1/namespaces/shop/pods/db-1", |p| {
            p["metadata"]["uid"].is_string()
                && p["metadata"]["uid"] != before["metadata"]["uid"]
                && p["status"]["phase"] == "Running"
        })
        .await;
    assert!(again["metadata"]["deletionTimestamp"].is_null());
    // Grace 0 deletes at once; a bare pod never comes back and counts as lost.
    let (code, _) = k
        .send(
            reqwest::Method::DELETE,
            "/api/v1/namespaces/default/pods/lonely?gracePeriodSeconds=0",
            "application/json",
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = k.get("/api/v1/namespaces/default/pods/lonely").await;
    assert_eq!(code, 404);
    let a = k.audit().await;
    assert_eq!(a["lost_pods"], json!(["default/lonely"]));
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn node_patches_cordon_and_uncordon() {
    let k = start(600.0).await;
    let (_, nodes) = k.get("/api/v1/nodes").await;
    let n = nodes["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/nodes/{n}");
    // kubectl cordon: strategic merge patch.
    let (code, v) = k
        .send(
            reqwest::Method::PATCH,
            &path,
            "application/strategic-merge-patch+json",
            json!({"spec": {"unschedulable": true}}),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["spec"]["unschedulable"], true);
    let v = k
        .until(&path, |v| {
            v["spec"]["taints"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|t| t["key"] == "node.kubernetes.io/unschedulable")
            })
        })
        .await;
    assert_eq!(v["spec"]["unschedulable"], true);
    // An evicted pod is not rescheduled onto the cordoned node.
    let (_, on) = k
        .get(&format!(
            "/api/v1/namespaces/shop/pods?fieldSelector=spec.nodeName%3D{n}"
        ))
        .await;
    for p in on["items"].as_array().unwrap() {
        k.send(
            reqwest::Method::DELETE,
            &format!(
                "/api/v1/namespaces/shop/pods/{}?gracePeriodSeconds=0",
                p["metadata"]["name"].as_str().unwrap()
            ),
            "application/json",
            json!({}),
        )
        .await;
    }
    k.until("/apis/apps/v1/namespaces/shop/deployments/web", |d| {
        d["status"]["readyReplicas"] == 6
    })
    .await;
    k.until("/apis/apps/v1/namespaces/shop/statefulsets/db", |d| {
        d["status"]["readyReplicas"] == 3
    })
    .await;
    let (_, on) = k
        .get(&format!(
            "/api/v1/namespaces/shop/pods?fieldSelector=spec.nodeName%3D{n}"
        ))
        .await;
    assert_eq!(on["items"].as_array().unwrap().len(), 0, "{on}");
    // Uncordon with a merge patch; label with a JSON patch; conflicts on a stale PUT.
    let (code, v) = k
        .send(
            reqwest::Method::PATCH,
            &path,
            "application/merge-patch+json",
            json!({"spec": {"unschedulable": null}}),
        )
        .await;
    assert_eq!(code, 200);
    assert!(v["spec"]["unschedulable"].is_null());
    let (code, v) = k
        .send(
            reqwest::Method::PATCH,
            &path,
            "application/json-patch+json",
            json!([{"op": "add", "path": "/metadata/labels/tier", "value": "gold"}]),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["metadata"]["labels"]["tier"], "gold");
    let mut stale = nodes["items"][0].clone();
    stale["metadata"]["labels"]["x"] = json!("y");
    let (code, v) = k
        .send(reqwest::Method::PUT, &path, "application/json", stale)
        .await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["reason"], "Conflict");
    let (code, _) = k
        .send(
            reqwest::Method::PATCH,
            &path,
            "application/json-patch+json",
            json!([{"op": "test", "path": "/spec/unschedulable", "value": true}]),
        )
        .await;
    assert_eq!(code, 422);
    k.h.sim.shutdown().await.unwrap();
}

/// Read newline-delimited watch events until `pred` says stop (bounded by event count).
async fn read_events(
    resp: &mut reqwest::Response,
    mut pred: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(30), resp.chunk())
        .await
        .expect("watch stalled")
        .unwrap()
    {
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let v: Value = serde_json::from_slice(&line).unwrap();
            let stop = pred(&v);
            out.push(v);
            if stop || out.len() > 500 {
                return out;
            }
        }
    }
    out
}

#[tokio::test]
async fn watch_streams_changes_from_a_resource_version() {
    let k = start(600.0).await;
    let (_, list) = k
        .get("/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb")
        .await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let victim = list["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = k
        .http
        .get(format!("{}/api/v1/namespaces/shop/pods?watch=true&labelSelector=app%3Dweb&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=60", k.base))
        .send()
        .await
        .unwrap();
    assert_eq!(w.status().as_u16(), 200);
    let (code, _) = k
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/namespaces/shop/pods/{victim}?gracePeriodSeconds=0"),
            "application/json",
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    // DELETED for the victim, then ADDED for its replacement, which later turns Ready.
    let mut deleted = false;
    let mut added: Option<String> = None;
    let evs = read_events(&mut w, |e| {
        let name = e["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match e["type"].as_str().unwrap() {
            "DELETED" if name == victim => deleted = true,
            "ADDED" => added = Some(name.clone()),
            "MODIFIED" if Some(&name) == added.as_ref() => {
                return e["object"]["status"]["phase"] == "Running";
            }
            _ => {}
        }
        false
    })
    .await;
    assert!(deleted, "{evs:?}");
    let last = evs.last().unwrap();
    assert_eq!(last["object"]["kind"], "Pod");
    assert_eq!(last["object"]["metadata"]["labels"]["app"], "web");
    let rv_last: u64 = last["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv_last > rv.parse::<u64>().unwrap());
    drop(w);
    // Resuming from the last version replays nothing old; a too-old version is 410 Expired.
    let mut w = k
        .http
        .get(format!("{}/api/v1/pods?watch=1&resourceVersion=1", k.base))
        .send()
        .await
        .unwrap();
    let evs = read_events(&mut w, |_| true).await;
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");
    // A field-selector watch sees a pod leave its node as DELETED (selector transition).
    let (_, nodes) = k.get("/api/v1/nodes").await;
    let n = nodes["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = k
        .http
        .get(format!(
            "{}/api/v1/nodes?watch=true&fieldSelector=metadata.name%3D{n}",
            k.base
        ))
        .send()
        .await
        .unwrap();
    k.send(
        reqwest::Method::PATCH,
        &format!("/api/v1/nodes/{n}"),
        "application/merge-patch+json",
        json!({"spec": {"unschedulable": true}}),
    )
    .await;
    let evs = read_events(&mut w, |e| {
        e["type"] == "MODIFIED" && e["object"]["spec"]["unschedulable"] == true
    })
    .await;
    assert_eq!(evs[0]["type"], "ADDED", "initial state first");
    assert_eq!(evs.iter().filter(|e| e["type"] == "ADDED").count(), 1);
    k.h.sim.shutdown().await.unwrap();
}
