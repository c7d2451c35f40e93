//! The safety checks against staged findings in the simulator: objects at removed APIs in
//! the cluster (last-applied, managedFields, Helm releases), API server health, EKS upgrade
//! insights, unmanaged add-ons, AKS upgrade protection, and the post-flight check with its
//! smoke pod; each in `kup plan` and `kup check -json` with its severity and exit code.

use serde_json::Value;

use crate::harness::*;

/// WORLD_ONE's cluster with `extra` inside its block.
fn world_with(extra: &str) -> String {
    WORLD_ONE.replacen(
        "  addon \"coredns\"",
        &format!("{extra}\n  addon \"coredns\""),
        1,
    )
}

/// `one_cluster(target)` with `extra` inside the cluster block.
fn cluster_with(target: &str, extra: &str) -> String {
    one_cluster(target).replacen(
        &format!("  version = \"{target}\"\n"),
        &format!("  version = \"{target}\"\n{extra}\n"),
        1,
    )
}

fn check_json(dir: &str) -> (i32, Value) {
    let run = kup(&["check", "-json", dir]);
    let v = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    (run.code, v)
}

fn findings<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["clusters"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

const IN_CLUSTER: &str = r#"
  objects = [
    {
      apiVersion = "flowcontrol.apiserver.k8s.io/v1"
      kind       = "FlowSchema"
      metadata = {
        name = "batch-jobs"
        annotations = {
          "kubectl.kubernetes.io/last-applied-configuration" = "{\"apiVersion\":\"flowcontrol.apiserver.k8s.io/v1beta2\",\"kind\":\"FlowSchema\",\"metadata\":{\"name\":\"batch-jobs\"},\"spec\":{\"priorityLevelConfiguration\":{\"name\":\"workload-low\"}}}\n"
        }
        managedFields = [
          { manager = "kubectl-client-side-apply", operation = "Update", apiVersion = "flowcontrol.apiserver.k8s.io/v1beta2",
            time = "2023-03-01T10:00:00Z", fieldsType = "FieldsV1", fieldsV1 = {} }
        ]
      }
      spec = { priorityLevelConfiguration = { name = "workload-low" }, matchingPrecedence = 500 }
    },
    {
      apiVersion = "flowcontrol.apiserver.k8s.io/v1"
      kind       = "FlowSchema"
      metadata = { name = "current" }
      spec = { priorityLevelConfiguration = { name = "workload-low" } }
    }
  ]
  helm_release "shop" {
    namespace     = "web"
    revision      = 3
    chart         = "shop"
    chart_version = "1.2.0"
    manifest      = <<EOT
---
# Source: shop/templates/flowschema.yaml
apiVersion: flowcontrol.apiserver.k8s.io/v1beta2
kind: FlowSchema
metadata:
  name: shop-priority
---
# Source: shop/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
EOT
  }
"#;

#[test]
fn objects_at_removed_apis_in_the_cluster_block_the_hop_and_kup_check_names_them() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world_with(IN_CLUSTER), 600.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.31"));
    let d = dir.to_str().unwrap();

    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 1, "{plan:?}");
    for want in [
        "2 object(s) use APIs removed in 1.29, so the control plane cannot move to 1.29",
        "FlowSchema/batch-jobs: uses flowcontrol.apiserver.k8s.io/v1beta2, removed in 1.29 (found in last-applied-configuration, managedFields of kubectl-client-side-apply): move it to flowcontrol.apiserver.k8s.io/v1",
        "FlowSchema/shop-priority: uses flowcontrol.apiserver.k8s.io/v1beta2, removed in 1.29 (found in Helm release web/shop revision 3)",
    ] {
        assert!(plan.stderr.contains(want), "{want}\n{plan:?}");
    }
    assert!(!plan.stderr.contains("FlowSchema/current"), "{plan:?}");

    let (code, report) = check_json(d);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "blocked");
    let removed = findings(&report, "removed_api");
    assert_eq!(removed.len(), 2, "{report:#}");
    assert!(removed
        .iter()
        .all(|f| f["severity"] == "error" && f["blocking"] == true && f["minor"] == "1.29"));

    // "warn": planned, with each object as a warning in the plan's JSON.
    let cfg = dir.join("main.kup.hcl");
    std::fs::write(
        &cfg,
        config_text(
            &sim,
            &cluster_with("1.31", "  preflight {\n    removed_apis = \"warn\"\n  }"),
        ),
    )
    .unwrap();
    let plan = kup(&["plan", "-json", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let saved: Value = serde_json::from_str(&plan.stdout).unwrap();
    let warnings = saved["plan"]["clusters"][0]["warnings"].to_string();
    assert!(
        warnings.contains("FlowSchema/batch-jobs: uses"),
        "{warnings}"
    );
    assert!(
        warnings.contains("FlowSchema/shop-priority: uses"),
        "{warnings}"
    );
}

/// The provider block `config_dir` writes, followed by `body`.
fn config_text(sim: &Sim, body: &str) -> String {
    format!(
        "provider \"eks\" {{\n  region        = \"eu-west-1\"\n  endpoint      = \"{}\"\n  simulate      = true\n  poll_interval = \"20ms\"\n}}\n\n{body}",
        sim.eks
    )
}

const UNHEALTHY: &str = r#"
  readyz_failing = ["etcd"]
  workload "web" {
    namespace = "shop"
    replicas  = 1
  }
  workload "crashy" {
    namespace  = "shop"
    replicas   = 2
    crash_loop = true
  }
"#;

#[test]
fn an_unready_api_server_blocks_and_sick_workloads_warn() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world_with(UNHEALTHY), 600.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.29"));
    let d = dir.to_str().unwrap();

    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stderr.contains(
            "the cluster is not healthy enough to upgrade: API server: /readyz fails: [-]etcd failed"
        ),
        "{plan:?}"
    );
    assert!(
        plan.stderr.contains("preflight { health = \"warn\" }"),
        "{plan:?}"
    );
    let (code, report) = check_json(d);
    assert_eq!(code, 2, "{report:#}");
    let health = findings(&report, "health");
    assert!(
        health
            .iter()
            .any(|f| f["subject"] == "API server" && f["blocking"] == true),
        "{report:#}"
    );

    // etcd recovers: what is left only warns.
    let r = http()
        .delete(format!("{}/kube/prod-eu/readyz", sim.admin))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{r:?}");
    // Wait until the crash-looping pods have restarted at least once.
    wait_until("pods crash-looping", || {
        let (_, report) = check_json(d);
        findings(&report, "health").iter().any(|f| {
            f["message"]
                .as_str()
                .unwrap_or("")
                .contains("CrashLoopBackOff")
        })
    });
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains("in CrashLoopBackOff: shop/crashy-"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains(
            "with a single replica and no PodDisruptionBudget are down while their node drains: shop/Deployment/web"
        ),
        "{plan:?}"
    );
    let (code, report) = check_json(d);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["verdict"], "warnings");
}

const INSIGHT: &str = r#"
  insight "upg-129" {
    name               = "Deprecated APIs removed in Kubernetes v1.29"
    kubernetes_version = "1.29"
    status             = "ERROR"
    reason             = "Deprecated API usage detected within last 30 days."
    recommendation     = "Update manifests and API clients to use newer Kubernetes APIs."
    deprecation {
      usage = "/apis/flowcontrol.apiserver.k8s.io/v1beta2/flowschemas"
      client {
        user_agent            = "kubectl/v1.27.3"
        requests_last_30_days = 12
        last_request_time     = "2026-11-01T08:00:00Z"
      }
    }
  }
  addon "vpc-cni" { version = "v1.15.1-eksbuild.1" }
"#;

#[test]
fn eks_insights_and_unmanaged_addons_are_in_the_plan_with_their_severity() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world_with(INSIGHT), 600.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.31"));
    let d = dir.to_str().unwrap();

    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stderr.contains("the upgrade to 1.29 is not safe: insight upg-129: ERROR Deprecated APIs removed in Kubernetes v1.29"),
        "{plan:?}"
    );
    assert!(
        plan.stderr
            .contains("called by kubectl/v1.27.3 (12 requests in 30 days)"),
        "{plan:?}"
    );
    assert!(
        plan.stderr.contains("Update manifests and API clients"),
        "the recommendation is the hint: {plan:?}"
    );
    let (code, report) = check_json(d);
    assert_eq!(code, 2, "{report:#}");
    let insights = findings(&report, "insight");
    // The staged one and EKS's standard checks for the next minor, passing.
    assert!(
        insights.iter().any(|f| f["severity"] == "info"
            && f["message"]
                .as_str()
                .unwrap()
                .starts_with("PASSING Kubelet version skew")),
        "{report:#}"
    );
    let addon = findings(&report, "addon");
    assert_eq!(addon.len(), 1, "{report:#}");
    assert_eq!(addon[0]["subject"], "add-on vpc-cni");
    assert_eq!(addon[0]["blocking"], false, "add-ons warn by default");

    // Insights only warn when asked; add-ons block when asked.
    let cfg = dir.join("main.kup.hcl");
    std::fs::write(
        &cfg,
        config_text(
            &sim,
            &cluster_with("1.31", "  preflight {\n    insights = \"warn\"\n  }"),
        ),
    )
    .unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout.contains(
            "warning: insight upg-129: ERROR Deprecated APIs removed in Kubernetes v1.29"
        ),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .contains("warning: add-on vpc-cni: v1.15.1-eksbuild.1 is not compatible with 1.30"),
        "{plan:?}"
    );
    std::fs::write(
        &cfg,
        config_text(
            &sim,
            &cluster_with(
                "1.31",
                "  preflight {\n    insights = \"off\"\n    addons   = \"block\"\n  }",
            ),
        ),
    )
    .unwrap();
    let plan = kup(&["plan", d]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stderr.contains("the upgrade to 1.30 is not safe: add-on vpc-cni: v1.15.1-eksbuild.1 is not compatible with 1.30"),
        "{plan:?}"
    );
    assert!(plan.stderr.contains("addon \"vpc-cni\""), "{plan:?}");
}

#[test]
fn kup_check_exits_3_for_support_dates_near_or_past_their_end() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), WORLD_ONE, 600.0, None);
    let dir = config_dir(tmp.path(), &sim, &one_cluster("1.31"));
    let d = dir.to_str().unwrap();
    let (code, report) = check_json(d);
    // Past end of standard support (EKS's calendar): warnings only.
    assert_eq!(code, 3, "{report:#}");
    let support = findings(&report, "support");
    assert_eq!(support.len(), 2, "{report:#}");
    assert!(support.iter().all(|f| f["severity"] == "warning"));
    let text = kup(&["check", "-all", d]);
    assert_eq!(text.code, 3, "{text:?}");
    assert!(
        text.stdout
            .contains("cluster.prod (eks prod-eu): 1.28 → 1.31"),
        "{text:?}"
    );
    assert!(
        text.stdout.contains("warning: [support] 1.28: the running version is past its end of standard support on EKS"),
        "{text:?}"
    );
    assert!(text.stdout.contains("info:    [insight]"), "{text:?}");
    assert!(text.stdout.contains("Warnings only"), "{text:?}");
}

const WORKLOAD: &str = r#"
  workload "web" {
    namespace  = "shop"
    replicas   = 2
    node_group = "general"
    pdb { max_unavailable = 1 }
  }
"#;

#[test]
fn post_flight_proves_the_upgrade_and_a_failing_smoke_pod_fails_the_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(tmp.path(), &world_with(WORKLOAD), 600.0, None);
    let dir = config_dir(
        tmp.path(),
        &sim,
        &cluster_with("1.29", "  postflight {\n    smoke_pod = true\n  }"),
    );
    let d = dir.to_str().unwrap();
    let apply = kup(&["apply", "-auto-approve", "-json", d]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let post: Vec<Value> = apply
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "post_flight")
        .collect();
    assert_eq!(post.len(), 1, "{apply:?}");
    assert_eq!(post[0]["passed"], true);
    let checks = post[0]["checks"].to_string();
    for want in [
        "node(s) Ready",
        "kubelets at 1.29 in general, 1.29 in payments",
        "workload(s) available as before",
        "no new Pending pods",
        "smoke pod default/kup-smoke-",
    ] {
        assert!(checks.contains(want), "{want}: {checks}");
    }
    // The smoke pod is gone.
    let pods = sim
        .kube_request(
            "prod-eu",
            reqwest::Method::GET,
            "/api/v1/namespaces/default/pods",
        )
        .text()
        .unwrap();
    assert!(!pods.contains("kup-smoke-"), "{pods}");

    // A smoke pod that cannot start fails the apply, naming why.
    std::fs::write(
        dir.join("main.kup.hcl"),
        config_text(
            &sim,
            &cluster_with(
                "1.30",
                "  postflight {\n    smoke_pod   = true\n    smoke_image = \"registry.example/does-not-exist:1\"\n  }",
            ),
        ),
    )
    .unwrap();
    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 1, "{apply:?}");
    let all = apply.all();
    assert!(
        all.contains("post-flight smoke pod default/kup-smoke-"),
        "{all}"
    );
    assert!(
        all.contains("ErrImagePull") || all.contains("ImagePullBackOff"),
        "{all}"
    );
    assert!(all.contains("✗ cluster.prod post-flight"), "{all}");
    let w = sim.world_json();
    assert_eq!(
        cluster_version(&w, "prod-eu"),
        "1.30",
        "the upgrade itself finished"
    );
}

#[cfg(feature = "aks")]
#[test]
fn aks_refuses_an_upgrade_over_deprecated_api_use_and_kup_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let world = r#"
aks_cluster "prod" {
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-prod"
  location        = "westeurope"
  version         = "1.31.11"
  deprecated_api_usage = ["/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas"]
  agent_pool "system" {
    mode      = "System"
    version   = "1.31.11"
    count     = 2
    max_surge = "1"
  }
}
"#;
    let sim = Sim::start(tmp.path(), world, 600.0, None);
    let dir = tmp.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("main.kup.hcl"),
        format!(
            r#"provider "aks" {{
  subscription_id = "00000000-0000-0000-0000-000000000001"
  resource_group  = "rg-prod"
  endpoint        = "{}"
  simulate        = true
  speed           = 600
  poll_interval   = "20ms"
}}

cluster "prod" {{
  version = "1.32"
  node_group "system" {{
    max_surge = 1
  }}
}}
"#,
            sim.eks
        ),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let (_, report) = check_json(d);
    let protection = findings(&report, "upgrade_protection");
    assert_eq!(protection.len(), 1, "{report:#}");
    assert_eq!(protection[0]["severity"], "info");

    let apply = kup(&["apply", "-auto-approve", d]);
    assert_eq!(apply.code, 1, "{apply:?}");
    let all = apply.all();
    assert!(
        all.contains(
            "Control Plane upgrade is blocked due to recent usage of a Kubernetes API deprecated"
        ),
        "{all}"
    );
    assert!(all.contains("flowschemas"), "{all}");
}
