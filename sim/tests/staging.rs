//! World-file staging in the Kubernetes API of every cluster type (raw `objects`,
//! `helm_release`, `readyz_failing`, `crash_loop` workloads), the kinds added for it (Secret,
//! Ingress, CronJob, HorizontalPodAutoscaler), managedFields recording, and bare pods.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{start_on, start_with, Harness};
use serde_json::{json, Value};

const WORLD: &str = r#"
cluster "prod-eu" {
  region  = "eu-west-1"
  version = "1.29"
  node_group "general" {
    instance_types = ["m5.large"]
    desired_size   = 2
    max_size       = 4
  }
  workload "web" {
    namespace = "shop"
    replicas  = 2
  }
  workload "crashy" {
    namespace  = "shop"
    replicas   = 2
    crash_loop = true
  }
  workload "huge" {
    cpu = "64"
  }
  readyz_failing = ["etcd"]
  objects = [
    {
      apiVersion = "networking.k8s.io/v1"
      kind       = "Ingress"
      metadata = {
        name      = "shop"
        namespace = "web"
        annotations = {
          "kubectl.kubernetes.io/last-applied-configuration" = "{\"apiVersion\":\"networking.k8s.io/v1beta1\",\"kind\":\"Ingress\",\"metadata\":{\"annotations\":{},\"name\":\"shop\",\"namespace\":\"web\"},\"spec\":{\"rules\":[{\"host\":\"shop.example.com\"}]}}\n"
        }
        managedFields = [
          {
            manager    = "kubectl-client-side-apply"
            operation  = "Update"
            apiVersion = "networking.k8s.io/v1beta1"
            time       = "2021-03-01T10:00:00Z"
            fieldsType = "FieldsV1"
            fieldsV1   = { "f:spec" = {} }
          }
        ]
      }
      spec = {
        rules = [
          {
            host = "shop.example.com"
            http = {
              paths = [
                {
                  path     = "/"
                  pathType = "Prefix"
                  backend  = { service = { name = "web", port = { number = 80 } } }
                }
              ]
            }
          }
        ]
      }
    },
    {
      apiVersion = "batch/v1"
      kind       = "CronJob"
      metadata   = { name = "nightly", namespace = "web" }
      spec = {
        schedule    = "0 3 * * *"
        jobTemplate = { spec = { template = { spec = { restartPolicy = "OnFailure", containers = [{ name = "job", image = "busybox:1.36" }] } } } }
      }
    },
    {
      apiVersion = "autoscaling/v2"
      kind       = "HorizontalPodAutoscaler"
      metadata   = { name = "web", namespace = "shop" }
      spec = {
        scaleTargetRef = { apiVersion = "apps/v1", kind = "Deployment", name = "web" }
        minReplicas    = 2
        maxReplicas    = 6
      }
    },
    {
      apiVersion = "v1"
      kind       = "Secret"
      metadata   = { name = "db", namespace = "web", labels = { app = "db" } }
      stringData = { password = "hunter2" }
    }
  ]
  helm_release "shop" {
    namespace     = "web"
    revision      = 3
    status        = "deployed"
    chart         = "shop"
    chart_version = "1.2.0"
    app_version   = "2.0"
    manifest      = <<EOT
---
# Source: shop/templates/ingress.yaml
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata:
  name: shop
EOT
  }
}
"#;

struct K {
    h: Harness,
    base: String,
    http: reqwest::Client,
}

async fn start_world(world: &str, speed: f64) -> K {
    let h = start_with(world, "world.hcl", speed, "").await;
    let base = h.sim.endpoints().kube["prod-eu"].clone();
    K {
        h,
        base,
        http: reqwest::Client::new(),
    }
}

impl K {
    async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.req(reqwest::Method::GET, path, &[], None).await
    }
    async fn text(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
    /// Poll until `f` holds (bounded by iterations, not wall-clock assertions).
    async fn until<F: Fn(&Value) -> bool>(&self, path: &str, f: F) -> Value {
        let mut last = Value::Null;
        for _ in 0..1000 {
            let (_, v) = self.get(path).await;
            if f(&v) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{path} never matched; last: {last}");
    }
}

fn names(v: &Value) -> Vec<&str> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn new_kinds_are_discovered_and_served() {
    let k = start_world(WORLD, 600.0).await;
    let (_, v) = k.get("/api/v1").await;
    let secrets = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "secrets")
        .expect("secrets listed");
    assert_eq!(
        (&secrets["kind"], &secrets["namespaced"]),
        (&json!("Secret"), &json!(true))
    );
    let (c, v) = k.get("/apis/networking.k8s.io/v1").await;
    assert_eq!(c, 200);
    assert_eq!(v["resources"][0]["name"], "ingresses");
    assert_eq!(v["resources"][0]["shortNames"], json!(["ing"]));
    let (c, v) = k.get("/apis/autoscaling").await;
    assert_eq!(c, 200);
    assert_eq!(v["preferredVersion"]["groupVersion"], "autoscaling/v2");
    let (_, v) = k.get("/apis/autoscaling/v2").await;
    assert_eq!(v["resources"][0]["name"], "horizontalpodautoscalers");
    // batch is served on every cluster (not only with the system-upgrade-controller).
    let (c, v) = k.get("/apis/batch/v1").await;
    assert_eq!(c, 200);
    let res: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        res.contains(&"jobs") && res.contains(&"cronjobs"),
        "{res:?}"
    );
    let (c, _) = k.get("/apis/autoscaling/v1").await;
    assert_eq!(c, 404);

    // Create / get / list / update / patch / delete for each new kind.
    let ua = [(
        "user-agent",
        "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505",
    )];
    let json_ct = ("content-type", "application/json");
    let cases = [
        (
            "/api/v1/namespaces/web/secrets",
            json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "api-key" },
                "type": "Opaque", "data": { "key": b64("s3cret") } }),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/web/ingresses",
            json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": { "name": "api" },
                "spec": { "defaultBackend": { "service": { "name": "api", "port": { "number": 80 } } } } }),
        ),
        (
            "/apis/batch/v1/namespaces/web/cronjobs",
            json!({ "apiVersion": "batch/v1", "kind": "CronJob", "metadata": { "name": "hourly" },
                "spec": { "schedule": "@hourly", "jobTemplate": { "spec": { "template": { "spec": {
                    "restartPolicy": "Never", "containers": [{ "name": "c", "image": "busybox" }] } } } } } }),
        ),
        (
            "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers",
            json!({ "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": { "name": "api" },
                "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" }, "maxReplicas": 3 } }),
        ),
    ];
    for (coll, body) in cases {
        let name = body["metadata"]["name"].as_str().unwrap();
        let item = format!("{coll}/{name}");
        let (c, created) = k
            .req(
                reqwest::Method::POST,
                coll,
                &[ua[0], json_ct],
                Some(body.clone()),
            )
            .await;
        assert_eq!(c, 201, "{coll}: {created}");
        assert_eq!(created["kind"], body["kind"]);
        assert!(created["metadata"]["uid"].is_string());
        // The apiserver records the writer: the User-Agent's program name, the request's
        // group/version.
        let mf = &created["metadata"]["managedFields"];
        assert_eq!(mf.as_array().unwrap().len(), 1, "{mf}");
        assert_eq!(mf[0]["manager"], "kubectl");
        assert_eq!(mf[0]["operation"], "Update");
        assert_eq!(mf[0]["apiVersion"], body["apiVersion"]);
        assert_eq!(mf[0]["fieldsType"], "FieldsV1");
        let (c, got) = k.get(&item).await;
        assert_eq!(
            (c, &got["metadata"]["uid"]),
            (200, &created["metadata"]["uid"])
        );
        let (c, list) = k.get(coll).await;
        assert_eq!(c, 200);
        assert!(names(&list).contains(&name), "{list}");
        assert_eq!(
            list["kind"],
            format!("{}List", body["kind"].as_str().unwrap())
        );
        // PUT with another field manager: a second entry, the first kept.
        let mut upd = got.clone();
        upd["metadata"]["labels"] = json!({ "tier": "gold" });
        let (c, put) = k
            .req(
                reqwest::Method::PUT,
                &format!("{item}?fieldManager=kup"),
                &[json_ct],
                Some(upd),
            )
            .await;
        assert_eq!(c, 200, "{put}");
        let managers: Vec<&str> = put["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["kubectl", "kup"]);
        let (c, patched) = k
            .req(
                reqwest::Method::PATCH,
                &item,
                &[
                    ("content-type", "application/merge-patch+json"),
                    ("user-agent", "kup/0.1.0"),
                ],
                Some(json!({ "metadata": { "labels": { "tier": "silver" } } })),
            )
            .await;
        assert_eq!(c, 200, "{patched}");
        assert_eq!(patched["metadata"]["labels"]["tier"], "silver");
        // Same manager and operation: the entry is replaced, not added.
        assert_eq!(
            patched["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let (c, _) = k.req(reqwest::Method::DELETE, &item, &[], None).await;
        assert_eq!(c, 200);
        let (c, _) = k.get(&item).await;
        assert_eq!(c, 404);
    }
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn secrets_validate_and_select_by_label() {
    let k = start_world(WORLD, 600.0).await;
    let ct = [("content-type", "application/json")];
    // stringData is folded into base64 data, type defaults to Opaque.
    let (c, s) = k
        .req(
            reqwest::Method::POST,
            "/api/v1/namespaces/web/secrets",
            &ct,
            Some(json!({ "metadata": { "name": "plain" }, "stringData": { "user": "admin" } })),
        )
        .await;
    assert_eq!(c, 201, "{s}");
    assert_eq!(s["data"]["user"], b64("admin"));
    assert!(s.get("stringData").is_none());
    assert_eq!(s["type"], "Opaque");
    let (c, e) = k
        .req(
            reqwest::Method::POST,
            "/api/v1/namespaces/web/secrets",
            &ct,
            Some(json!({ "metadata": { "name": "broken" }, "data": { "k": "not base64!" } })),
        )
        .await;
    assert_eq!((c, &e["reason"]), (400, &json!("BadRequest")), "{e}");
    let (c, e) = k
        .req(
            reqwest::Method::POST,
            "/apis/batch/v1/namespaces/web/cronjobs",
            &ct,
            Some(json!({ "metadata": { "name": "x" }, "spec": {} })),
        )
        .await;
    assert_eq!(c, 422, "{e}");
    assert!(e["message"].as_str().unwrap().contains("spec.schedule"));
    // The staged secret (stringData converted at load) and Helm's record.
    let (_, db) = k.get("/api/v1/namespaces/web/secrets/db").await;
    assert_eq!(db["data"]["password"], b64("hunter2"));
    let (_, v) = k.get("/api/v1/secrets?labelSelector=owner%3Dhelm").await;
    assert_eq!(names(&v), ["sh.helm.release.v1.shop.v3"]);
    let (_, v) = k
        .get("/api/v1/namespaces/web/secrets?labelSelector=owner%21%3Dhelm")
        .await;
    assert_eq!(names(&v), ["db", "plain"]);
    // Watches work for the new kinds like for any other.
    let (c, body) = k
        .text("/api/v1/namespaces/web/secrets?watch=1&timeoutSeconds=1&labelSelector=owner%3Dhelm")
        .await;
    assert_eq!(c, 200);
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(
        events[0]["object"]["metadata"]["name"],
        "sh.helm.release.v1.shop.v3"
    );
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_op_writes_keep_managed_fields() {
    let k = start_world(WORLD, 600.0).await;
    let path = "/api/v1/namespaces/web/secrets/db";
    let (_, cur) = k.get(path).await;
    let (c, same) = k
        .req(
            reqwest::Method::PUT,
            &format!("{path}?fieldManager=kup"),
            &[("content-type", "application/json")],
            Some(cur.clone()),
        )
        .await;
    assert_eq!(c, 200);
    assert_eq!(
        same["metadata"]["resourceVersion"],
        cur["metadata"]["resourceVersion"]
    );
    assert_eq!(
        same["metadata"]["managedFields"],
        cur["metadata"]["managedFields"]
    );
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn staged_objects_are_stored_as_given() {
    let k = start_world(WORLD, 600.0).await;
    let (c, ing) = k
        .get("/apis/networking.k8s.io/v1/namespaces/web/ingresses/shop")
        .await;
    assert_eq!(c, 200, "{ing}");
    assert_eq!(ing["apiVersion"], "networking.k8s.io/v1");
    let last: Value = serde_json::from_str(
        ing["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["apiVersion"], "networking.k8s.io/v1beta1");
    let mf = &ing["metadata"]["managedFields"][0];
    assert_eq!(
        (&mf["manager"], &mf["apiVersion"], &mf["time"]),
        (
            &json!("kubectl-client-side-apply"),
            &json!("networking.k8s.io/v1beta1"),
            &json!("2021-03-01T10:00:00Z")
        )
    );
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
        80
    );
    assert_eq!(ing["status"], json!({ "loadBalancer": {} }));
    // The namespace of staged objects exists.
    let (c, _) = k.get("/api/v1/namespaces/web").await;
    assert_eq!(c, 200);
    let (_, cj) = k
        .get("/apis/batch/v1/namespaces/web/cronjobs/nightly")
        .await;
    assert_eq!(cj["spec"]["schedule"], "0 3 * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    let (_, hpa) = k
        .get("/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web")
        .await;
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    // Helm 3's release record.
    let (c, s) = k
        .get("/api/v1/namespaces/web/secrets/sh.helm.release.v1.shop.v3")
        .await;
    assert_eq!(c, 200);
    assert_eq!(s["type"], "helm.sh/release.v1");
    let l = &s["metadata"]["labels"];
    assert_eq!(
        (&l["name"], &l["owner"], &l["status"], &l["version"]),
        (
            &json!("shop"),
            &json!("helm"),
            &json!("deployed"),
            &json!("3")
        )
    );
    let rel = decode_release(s["data"]["release"].as_str().unwrap());
    assert_eq!(rel["name"], "shop");
    assert_eq!(rel["namespace"], "web");
    assert_eq!(rel["version"], 3);
    assert_eq!(rel["info"]["status"], "deployed");
    assert!(rel["info"]["first_deployed"].is_string());
    assert!(rel["info"]["last_deployed"].is_string());
    assert_eq!(rel["chart"]["metadata"]["name"], "shop");
    assert_eq!(rel["chart"]["metadata"]["version"], "1.2.0");
    assert_eq!(rel["chart"]["metadata"]["appVersion"], "2.0");
    assert_eq!(rel["chart"]["metadata"]["apiVersion"], "v2");
    assert!(rel["manifest"]
        .as_str()
        .unwrap()
        .contains("apiVersion: networking.k8s.io/v1beta1\nkind: Ingress"));
    assert_eq!(rel["config"], json!({}));
    // The world file keeps the staging (defaults written out); a restart stores it again.
    let path = k.h.path.clone();
    k.h.sim.shutdown().await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("helm_release \"shop\""), "{text}");
    assert!(text.contains("readyz_failing"), "{text}");
    let sim = start_on(&path, 600.0, "").await;
    let base = sim.endpoints().kube["prod-eu"].clone();
    let v: Value = reqwest::get(format!(
        "{base}/apis/networking.k8s.io/v1/namespaces/web/ingresses/shop"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        v["metadata"]["managedFields"][0]["apiVersion"],
        "networking.k8s.io/v1beta1"
    );
    let v: Value = reqwest::get(format!("{base}/api/v1/secrets?labelSelector=owner%3Dhelm"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(names(&v), ["sh.helm.release.v1.shop.v3"]);
    sim.shutdown().await.unwrap();
}

fn decode_release(data: &str) -> Value {
    use std::io::Read;
    let b = base64::engine::general_purpose::STANDARD;
    let inner = b.decode(data).unwrap();
    let gz = b.decode(inner).unwrap();
    let mut s = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut s)
        .unwrap();
    serde_json::from_str(&s).unwrap()
}

#[tokio::test]
async fn bad_staged_objects_name_file_and_cluster() {
    for (obj, want) in [
        (
            r#"{ apiVersion = "networking.k8s.io/v1beta1", kind = "Ingress", metadata = { name = "old" } }"#,
            "was removed in Kubernetes 1.22",
        ),
        (
            r#"{ apiVersion = "v1", kind = "Service", metadata = { name = "svc" } }"#,
            "does not serve this kind",
        ),
        (
            r#"{ apiVersion = "v1", kind = "ConfigMap", metadata = { namespace = "web" } }"#,
            "metadata.name is required",
        ),
        (
            r#"{ apiVersion = "v1", kind = "Node", metadata = { name = "n1" } }"#,
            "node groups",
        ),
    ] {
        let world =
            format!("cluster \"prod-eu\" {{\n  version = \"1.29\"\n  objects = [{obj}]\n}}\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.hcl");
        std::fs::write(&path, world).unwrap();
        let err = kup_sim::Sim::start(kup_sim::SimConfig {
            world: path.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            speed: 1.0,
            faults: kup_sim::FaultSpec::none(),
        })
        .await
        .err()
        .expect("refused");
        let msg = format!("{err:#}");
        assert!(msg.contains("bad.hcl"), "{msg}");
        assert!(msg.contains("cluster \"prod-eu\""), "{msg}");
        assert!(msg.contains("objects[0]"), "{msg}");
        assert!(msg.contains(want), "{msg}");
    }
}

#[tokio::test]
async fn readyz_reports_failing_checks() {
    let k = start_world(WORLD, 600.0).await;
    let (c, body) = k.text("/readyz").await;
    assert_eq!(c, 500);
    assert!(
        body.starts_with("[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n"),
        "{body}"
    );
    assert!(body.ends_with("readyz check failed\n"), "{body}");
    let (c, verbose) = k.text("/readyz?verbose").await;
    assert_eq!((c, &verbose), (500, &body));
    let (c, one) = k.text("/readyz/etcd").await;
    assert_eq!(c, 500, "{one}");
    let (c, _) = k.text("/readyz/ping").await;
    assert_eq!(c, 200);
    let (c, excluded) = k.text("/readyz?exclude=etcd").await;
    assert_eq!((c, excluded.as_str()), (200, "ok"));
    for p in ["/livez", "/healthz"] {
        let (c, b) = k.text(p).await;
        assert_eq!((c, b.as_str()), (200, "ok"), "{p}");
    }
    // Runtime control through the admin API, saved in the world file.
    let admin = format!("{}/kube/prod-eu/readyz", k.h.admin());
    let http = reqwest::Client::new();
    let r = http.delete(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (c, b) = k.text("/readyz").await;
    assert_eq!((c, b.as_str()), (200, "ok"));
    let (c, b) = k.text("/readyz?verbose").await;
    assert_eq!(c, 200);
    assert!(
        b.contains("[+]etcd ok\n") && b.ends_with("readyz check passed\n"),
        "{b}"
    );
    assert!(!b.contains("[-]"));
    let r = http
        .post(&admin)
        .body(r#"{"failing": ["informer-sync"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (c, b) = k.text("/readyz").await;
    assert_eq!(c, 500);
    assert!(
        b.contains("[-]informer-sync failed: reason withheld\n"),
        "{b}"
    );
    let v: Value = http.get(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(v, json!({ "failing": ["informer-sync"] }));
    let r = http.post(&admin).body(r#"["etcd3"]"#).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{}/kube/nope/readyz", k.h.admin()))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = std::fs::read_to_string(&k.h.path).unwrap();
    assert!(
        text.contains("readyz_failing = [\n    \"informer-sync\"\n  ]"),
        "{text}"
    );
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn crash_looping_and_unschedulable_workloads() {
    let k = start_world(WORLD, 600.0).await;
    let sel = "/api/v1/namespaces/shop/pods?labelSelector=app%3Dcrashy";
    let v = k
        .until(sel, |v| {
            v["items"].as_array().is_some_and(|a| {
                a.len() == 2
                    && a.iter().all(|p| {
                        p["status"]["containerStatuses"][0]["restartCount"]
                            .as_i64()
                            .unwrap_or(0)
                            >= 3
                    })
            })
        })
        .await;
    for p in v["items"].as_array().unwrap() {
        assert_eq!(p["status"]["phase"], "Running");
        assert!(p["spec"]["nodeName"].is_string());
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["ready"], false);
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        let msg = cs["state"]["waiting"]["message"].as_str().unwrap();
        assert!(msg.starts_with("back-off "), "{msg}");
        assert!(
            msg.contains(&format!(
                "restarting failed container=app pod={}_shop(",
                p["metadata"]["name"].as_str().unwrap()
            )),
            "{msg}"
        );
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        let ready = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
    }
    // The kubelet's back-off grows to its 5-minute cap.
    k.until(sel, |v| {
        v["items"][0]["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("back-off 5m0s"))
    })
    .await;
    let (_, d) = k
        .get("/apis/apps/v1/namespaces/shop/deployments/crashy")
        .await;
    assert_eq!(d["status"]["replicas"], 2);
    assert_eq!(d["status"]["unavailableReplicas"], 2);
    assert!(
        d["status"]["availableReplicas"].is_null(),
        "{}",
        d["status"]
    );
    let (_, web) = k.get("/apis/apps/v1/namespaces/shop/deployments/web").await;
    assert_eq!(web["status"]["availableReplicas"], 2);
    let audit = k.h.admin_get("kube/prod-eu/audit").await;
    let unavailable: Vec<&str> = audit["unavailable_workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        unavailable
            .iter()
            .any(|s| s.starts_with("Deployment/shop/crashy")),
        "{unavailable:?}"
    );
    assert!(
        !unavailable
            .iter()
            .any(|s| s.starts_with("Deployment/shop/web ")),
        "{unavailable:?}"
    );
    // A Table shows the reason as kubectl does.
    let r = reqwest::Client::new()
        .get(format!("{}{sel}", k.base))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["rows"][0]["cells"][2], "CrashLoopBackOff");
    // Too big for any node: Pending, PodScheduled=False/Unschedulable.
    let (_, v) = k
        .get("/api/v1/namespaces/default/pods?labelSelector=app%3Dhuge")
        .await;
    let p = &v["items"][0];
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(p["spec"]["nodeName"].is_null());
    let cond = &p["status"]["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &json!("PodScheduled"),
            &json!("False"),
            &json!("Unschedulable")
        )
    );
    assert!(cond["message"]
        .as_str()
        .unwrap()
        .contains("Insufficient cpu"));
    k.h.sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn bare_pods_run_and_bad_images_do_not() {
    let k = start_world(WORLD, 600.0).await;
    let ct = [
        ("content-type", "application/json"),
        ("user-agent", "kup/0.1.0"),
    ];
    let pod = |name: &str, image: &str| {
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": name, "labels": { "app": "kup-smoke" } },
            "spec": { "restartPolicy": "Never", "containers": [ { "name": "pause", "image": image,
                "resources": { "requests": { "cpu": "10m", "memory": "16Mi" } } } ] } })
    };
    let (c, p) = k
        .req(
            reqwest::Method::POST,
            "/api/v1/namespaces/default/pods",
            &ct,
            Some(pod("kup-smoke", "registry.k8s.io/pause:3.10")),
        )
        .await;
    assert_eq!(c, 201, "{p}");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["metadata"]["managedFields"][0]["manager"], "kup");
    let path = "/api/v1/namespaces/default/pods/kup-smoke";
    let p = k
        .until(path, |p| {
            p["status"]["phase"] == "Running"
                && p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .await;
    assert!(p["spec"]["nodeName"].is_string());
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    let (c, _) = k.req(reqwest::Method::DELETE, path, &ct, None).await;
    assert_eq!(c, 200);
    k.until(path, |v| v["code"] == 404).await;

    let (c, _) = k
        .req(
            reqwest::Method::POST,
            "/api/v1/namespaces/default/pods",
            &ct,
            Some(pod("kup-smoke-bad", "registry.k8s.io/does-not-exist:1.0")),
        )
        .await;
    assert_eq!(c, 201);
    let bad = "/api/v1/namespaces/default/pods/kup-smoke-bad";
    let p = k
        .until(bad, |p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
        })
        .await;
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(p["spec"]["nodeName"].is_string());
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["ready"], false);
    assert_eq!(
        cs["state"]["waiting"]["message"],
        "Back-off pulling image \"registry.k8s.io/does-not-exist:1.0\""
    );
    // It stays that way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, p) = k.get(bad).await;
    assert_eq!(p["status"]["phase"], "Pending");
    let (_, ev) = k
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dkup-smoke-bad")
        .await;
    let reasons: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"Error: ErrImagePull"), "{reasons:?}");
    assert!(reasons.contains(&"Error: ImagePullBackOff"), "{reasons:?}");
    let (c, _) = k
        .req(
            reqwest::Method::DELETE,
            &format!("{bad}?gracePeriodSeconds=0"),
            &ct,
            None,
        )
        .await;
    assert_eq!(c, 200);
    let (c, _) = k.get(bad).await;
    assert_eq!(c, 404);
    k.h.sim.shutdown().await.unwrap();
}

/// Every cluster type with a Kubernetes API takes the same staging.
#[tokio::test]
async fn every_cluster_type_stages_objects() {
    let staging = r#"
  readyz_failing = ["etcd"]
  objects = [
    { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "staged", namespace = "web" }, data = { k = "v" } }
  ]
  helm_release "app" {
    namespace     = "web"
    chart         = "app"
    chart_version = "0.1.0"
  }
"#;
    let world = format!(
        r#"
gke_cluster "g" {{
  version = "1.29.8-gke.1031000"
  {staging}
}}
aks_cluster "a" {{
  version = "1.30.5"
  agent_pool "sys" {{
    mode = "System"
  }}
  {staging}
}}
k3s_cluster "k" {{
  version = "v1.29.8+k3s1"
  {staging}
}}
kubeadm_cluster "lab" {{
  version       = "1.29.8"
  control_plane = ["cp1"]
  workers       = ["w1"]
  {staging}
}}
cluster "e" {{
  version = "1.30"
  {staging}
}}
"#
    );
    let h = start_with(&world, "world.hcl", 600.0, "").await;
    for name in ["g", "a", "k", "lab", "e"] {
        let base = h.sim.endpoints().kube[name].clone();
        let get = |p: &str| {
            let url = format!("{base}{p}");
            async move {
                let r = reqwest::get(url).await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (c, b) = get("/api/v1/namespaces/web/configmaps/staged").await;
        assert_eq!(c, 200, "{name}: {b}");
        let (c, b) = get("/api/v1/namespaces/web/secrets/sh.helm.release.v1.app.v1").await;
        assert_eq!(c, 200, "{name}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(
            decode_release(v["data"]["release"].as_str().unwrap())["info"]["description"],
            "Install complete"
        );
        let (c, _) = get("/readyz").await;
        assert_eq!(c, 500, "{name}");
    }
    // The JSON world form: objects is a plain list.
    let wf = h.admin_get("world").await;
    assert!(
        wf["aks_cluster"]["a"]["objects"].is_array(),
        "{}",
        wf["aks_cluster"]["a"]
    );
    assert_eq!(wf["k3s_cluster"]["k"]["helm_release"]["app"]["revision"], 1);
    h.sim.shutdown().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("world.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&wf).unwrap()).unwrap();
    let sim = start_on(&json_path, 600.0, "").await;
    let base = sim.endpoints().kube["g"].clone();
    let r = reqwest::get(format!("{base}/api/v1/namespaces/web/configmaps/staged"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.shutdown().await.unwrap();
}
