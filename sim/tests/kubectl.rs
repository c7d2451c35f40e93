//! The real `kubectl` against the simulated Kubernetes API, with the generated kubeconfig.
//! Skipped (with a message) when no kubectl is installed.

mod common;

use std::path::{Path, PathBuf};

use common::{start_with, Harness};
use serde_json::Value;

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
  node_group "pinned" {
    version        = "1.29"
    instance_types = ["m5.large"]
    desired_size   = 1
    labels         = { pool = "pinned" }
  }
  workload "web" {
    namespace = "shop"
    replicas  = 6
    cpu       = "250m"
    memory    = "256Mi"
    node_group = "general"
    empty_dir = true
    pdb { min_available = 4 }
  }
  workload "db" {
    namespace  = "shop"
    kind       = "StatefulSet"
    replicas   = 3
    node_group = "general"
    pdb { max_unavailable = 1 }
  }
  workload "stuck" {
    replicas   = 1
    node_group = "pinned"
    pdb { min_available = 1 }
  }
}
"#;

fn find_kubectl() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("kubectl");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let p = Path::new("/usr/lib/google-cloud-sdk/bin/kubectl");
    p.is_file().then(|| p.to_path_buf())
}

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(&self.bin)
            .args(args)
            .arg("--cache-dir")
            .arg(&self.cache)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.cache.parent().unwrap())
            .output()
            .await
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }
}

async fn audit(h: &Harness) -> Value {
    h.admin_get("kube/prod-eu/audit").await
}

fn header_has(out: &str, cols: &[&str]) {
    let header = out.lines().next().unwrap_or("");
    for c in cols {
        assert!(
            header.contains(c),
            "column {c} missing from {header:?}\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_against_the_simulated_cluster() {
    let Some(bin) = find_kubectl() else {
        println!("SKIPPED: kubectl not found");
        return;
    };
    let h = start_with(WORLD, "world.hcl", 600.0, "").await;
    let ep = h.sim.endpoints();
    let kubeconfig = ep.kubeconfigs["prod-eu"].clone();
    assert!(
        kubeconfig.starts_with(h.path.parent().unwrap()),
        "{kubeconfig:?}"
    );
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        text.contains(&ep.kube["prod-eu"]) && text.contains("current-context: prod-eu"),
        "{text}"
    );
    let cache = h.path.parent().unwrap().join("home").join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let k = Kubectl {
        bin,
        kubeconfig,
        cache,
    };

    // get nodes
    let out = k.ok(&["get", "nodes"]).await;
    header_has(&out, &["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(out.lines().count(), 5, "{out}");
    assert_eq!(out.matches(" Ready ").count(), 4, "{out}");
    assert!(out.contains("v1.29.0-eks-"), "{out}");
    let out = k
        .ok(&[
            "get",
            "nodes",
            "-l",
            "eks.amazonaws.com/nodegroup=general",
            "-o",
            "name",
        ])
        .await;
    let general: Vec<String> = out
        .lines()
        .map(|l| l.trim_start_matches("node/").to_string())
        .collect();
    assert_eq!(general.len(), 3, "{out}");
    let out = k
        .ok(&["get", "nodes", "-l", "pool=pinned", "-o", "name"])
        .await;
    let pinned = out.trim().trim_start_matches("node/").to_string();
    assert!(pinned.ends_with(".eu-west-1.compute.internal"), "{out}");

    // get pods -A -o wide
    let out = k.ok(&["get", "pods", "-A", "-o", "wide"]).await;
    header_has(
        &out,
        &[
            "NAMESPACE",
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
        ],
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("shop ") && l.contains("web-"))
            .count(),
        6,
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("db-0") && l.contains("Running") && l.contains("1/1")),
        "{out}"
    );
    assert!(
        out.contains("kube-system") && out.contains("kube-proxy-") && out.contains("coredns-"),
        "{out}"
    );
    assert!(out.contains(&pinned), "{out}");

    // get pdb -A, and short names for other kinds
    let out = k.ok(&["get", "pdb", "-A"]).await;
    header_has(
        &out,
        &[
            "NAMESPACE",
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE",
        ],
    );
    let web_line = out.lines().find(|l| l.contains(" web ")).expect("web pdb");
    assert_eq!(
        web_line.split_whitespace().collect::<Vec<_>>()[..5],
        ["shop", "web", "4", "N/A", "2"],
        "{out}"
    );
    let stuck_line = out
        .lines()
        .find(|l| l.contains(" stuck "))
        .expect("stuck pdb");
    assert_eq!(stuck_line.split_whitespace().nth(4), Some("0"), "{out}");
    let out = k.ok(&["get", "deploy,sts,ds", "-A"]).await;
    assert!(
        out.contains("deployment.apps/web") && out.contains("6/6"),
        "{out}"
    );
    assert!(
        out.contains("statefulset.apps/db") && out.contains("3/3"),
        "{out}"
    );
    assert!(out.contains("daemonset.apps/kube-proxy"), "{out}");

    // cordon / uncordon
    let node = &general[0];
    let out = k.ok(&["cordon", node]).await;
    assert!(out.contains(&format!("node/{node} cordoned")), "{out}");
    let out = k.ok(&["get", "node", node]).await;
    assert!(out.contains("Ready,SchedulingDisabled"), "{out}");
    let out = k.ok(&["uncordon", node]).await;
    assert!(out.contains(&format!("node/{node} uncordoned")), "{out}");
    let out = k.ok(&["get", "node", node]).await;
    assert!(!out.contains("SchedulingDisabled"), "{out}");

    // drain a general node: PDB-protected pods move without violating their budgets.
    let out = k
        .ok(&[
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ])
        .await;
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    let left = k
        .ok(&[
            "get",
            "pods",
            "-A",
            "-o",
            "wide",
            "--field-selector",
            &format!("spec.nodeName={node}"),
        ])
        .await;
    assert!(!left.contains("web-") && !left.contains("db-"), "{left}");
    let a = audit(&h).await;
    assert!(a["evictions"].as_u64().unwrap() > 0, "{a}");
    for pdb in ["shop/web", "shop/db", "kube-system/coredns"] {
        assert_eq!(a["pdbs"][pdb]["violated"], false, "{pdb}: {a}");
    }
    assert_eq!(a["pdbs"]["shop/web"]["budget"], 4);
    assert!(
        a["pdbs"]["shop/web"]["min_healthy_observed"]
            .as_i64()
            .unwrap()
            >= 4,
        "{a}"
    );
    assert_eq!(a["lost_pods"].as_array().unwrap().len(), 0, "{a}");

    // describe node
    let out = k.ok(&["describe", "node", node]).await;
    for needle in [
        &format!("Name:               {node}"),
        "Unschedulable:      true",
        "Kubelet Version:",
        "v1.29.0-eks-",
        "Non-terminated Pods:",
        "kube-proxy-",
        "Allocated resources:",
        "Events:",
        "NodeNotSchedulable",
    ] {
        assert!(
            out.contains(needle),
            "{needle:?} missing from describe:\n{out}"
        );
    }

    // drain the node holding a pod whose PDB has minAvailable == replicas: times out.
    let (ok, out, err) = k
        .run(&[
            "drain",
            &pinned,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=3s",
        ])
        .await;
    assert!(!ok, "drain should fail:\n{out}\n{err}");
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{err}"
    );
    assert!(err.contains("global timeout reached: 3s"), "{err}");
    let a = audit(&h).await;
    assert!(a["evictions_refused"].as_u64().unwrap() >= 1, "{a}");
    assert_eq!(a["pdbs"]["default/stuck"]["violated"], false, "{a}");
    let out = k.ok(&["get", "pods", "-n", "default", "-o", "wide"]).await;
    assert!(
        out.contains("stuck-") && out.contains("Running") && out.contains(&pinned),
        "{out}"
    );
    assert!(
        a["unavailable_workloads"].as_array().unwrap().is_empty(),
        "{a}"
    );
    h.sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_the_new_kinds_and_readiness() {
    let Some(bin) = find_kubectl() else {
        println!("SKIPPED: kubectl not found");
        return;
    };
    let world = r#"
cluster "prod-eu" {
  version = "1.29"
  node_group "general" {
    instance_types = ["m5.large"]
  }
  readyz_failing = ["etcd"]
  helm_release "shop" {
    namespace     = "web"
    chart         = "shop"
    chart_version = "1.2.0"
  }
}
"#;
    let h = start_with(world, "world.hcl", 600.0, "").await;
    let cache = h.path.parent().unwrap().join("home").join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let k = Kubectl {
        bin,
        kubeconfig: h.sim.endpoints().kubeconfigs["prod-eu"].clone(),
        cache,
    };
    let out = k.ok(&["get", "secrets", "-A", "-l", "owner=helm"]).await;
    header_has(&out, &["NAMESPACE", "NAME", "TYPE", "DATA", "AGE"]);
    assert!(
        out.contains("sh.helm.release.v1.shop.v1") && out.contains("helm.sh/release.v1"),
        "{out}"
    );
    // kubectl apply (client-side): the object keeps the annotation, the manager is recorded.
    let manifest = h.path.parent().unwrap().join("ing.json");
    std::fs::write(
        &manifest,
        r#"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"shop","namespace":"web"},
"spec":{"rules":[{"host":"shop.example.com"}]}}"#,
    )
    .unwrap();
    // No OpenAPI documents are served, so kubectl cannot validate client-side.
    k.ok(&[
        "apply",
        "--validate=false",
        "-f",
        manifest.to_str().unwrap(),
    ])
    .await;
    let out = k.ok(&["get", "ingress", "-n", "web"]).await;
    header_has(&out, &["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]);
    assert!(out.contains("shop.example.com"), "{out}");
    let out = k
        .ok(&[
            "get",
            "ing",
            "shop",
            "-n",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("shop.example.com")
    );
    let mf = &v["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl-client-side-apply", "{v}");
    assert_eq!(mf["apiVersion"], "networking.k8s.io/v1");
    // Readiness: kubectl reports the failing apiserver check.
    let (ok, out, err) = k.run(&["get", "--raw", "/readyz?verbose"]).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("[-]etcd failed: reason withheld") || out.contains("[-]etcd failed"),
        "{out}\n{err}"
    );
    let out = k.ok(&["get", "--raw", "/livez"]).await;
    assert_eq!(out.trim(), "ok");
    h.sim.shutdown().await.unwrap();
}
